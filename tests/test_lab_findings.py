"""lab/findings.py: the check language, and checks held against a real run of the close experiment."""

from __future__ import annotations

import pytest
from lab.coordinator import run_experiment
from lab.findings import Check, CheckSyntaxError, evaluate, parse_check
from lab.record import Record
from lab.schedule import load_experiment


@pytest.fixture(scope="module")
def close_record() -> Record:
    return run_experiment(load_experiment("close"))


def test_parse_well_formed_checks():
    assert parse_check("  state client:closed server CLOSE_WAIT recv-q 13 send-q 0 ") == Check(
        "state client:closed server CLOSE_WAIT recv-q 13 send-q 0",
        "state",
        ("client:closed", "server", "CLOSE_WAIT", "recv-q", "13", "send-q", "0"),
    )
    assert parse_check("fact server:received#2 data = b''").value == b""
    assert parse_check("fact server:received#2 data = b''").args == ("server:received#2", "data")
    assert parse_check('fact "client:recv failed" error = EBADF') == Check(
        'fact "client:recv failed" error = EBADF', "fact", ("client:recv failed", "error"), "EBADF"
    )
    assert parse_check("fact server:listening port = 12").value == 12
    assert parse_check('prints client "recv failed: [Errno 9] EBADF"').args == ("client", "recv failed: [Errno 9] EBADF")
    assert parse_check("exits server -9").args == ("server", "-9")
    assert parse_check("state end client TIME_WAIT expires 60").args == ("end", "client", "TIME_WAIT", "expires", "60")
    assert parse_check("state end client FIN_WAIT2 expires none").args[-1] == "none"


@pytest.mark.parametrize(
    "line, message",
    [
        ("", "empty check"),
        ("   ", "empty check"),
        ("status client:closed server CLOSE_WAIT", "a check starts with state, fact, prints, exits, packets"),
        ("state client:closed server", "expected 'state AT ROLE STATE [recv-q N] [send-q N]'"),
        ("state client:closed server CLOSE_WAIT recv-q", "expected 'state AT ROLE STATE"),
        ("state client:closed server CLOSE_WAIT recv-q 13 send-q", "expected 'state AT ROLE STATE"),
        ("state client:closed server CLOSE_WAIT recv-q many", "only 'recv-q N' and 'send-q N' may follow"),
        ("state client:closed server CLOSE_WAIT queue 13", "only 'recv-q N' and 'send-q N' may follow"),
        ("state client:closed server CLOSE_WAIT recv-q none", "only 'recv-q N' and 'send-q N' may follow"),
        ("state client:closed server CLOSE_WAIT expires soon", "and 'expires N' or 'expires none'"),
        ("state client:closed peer CLOSE_WAIT", "role must be listener, server or client, not 'peer'"),
        ("fact server:received data", "expected 'fact STEP NAME = VALUE'"),
        ("fact server:received = b''", "expected 'fact STEP NAME = VALUE'"),
        ("prints client", "a check starts with state, fact, prints, exits, packets"),
        ("exits client zero", "a check starts with state, fact, prints, exits, packets"),
        ('prints client "unterminated', "No closing quotation"),
        ("packets client:closed client FIN+ACK", "expected 'packets STEP = ROLE FLAGS, ROLE FLAGS, ...' or '= none'"),
        ("packets client:closed = client FIN+ACK, peer ACK", "a segment's sender is client or server, not 'peer'"),
        ("packets client:closed = client FIN+ACKK", "unknown TCP flag 'ACKK'"),
        ("packets client:closed = client FIN+ACK length 0", "a segment is written 'ROLE FLAGS [len N]'"),
        ("packet client:closed client", "expected 'packet STEP ROLE FLAGS [len N]'"),
        ("no-packet client:closed = client RST", "expected 'no-packet STEP ROLE FLAGS [len N]'"),
    ],
)
def test_syntax_errors(line, message):
    with pytest.raises(CheckSyntaxError) as error:
        parse_check(line)
    assert message in str(error.value)


FIN_WAIT2_CLOSED = "at client:closed the client is FIN_WAIT2 with Recv-Q 0, Send-Q 0, dropped by the kernel within 60 s"


@pytest.mark.parametrize(
    "line, holds, observed",
    [
        ("state client:sent server ESTABLISHED recv-q 12 send-q 0", True, "at client:sent the server is ESTABLISHED with Recv-Q 12, Send-Q 0"),
        ("state client:sent server ESTABLISHED recv-q 13", False, "at client:sent the server is ESTABLISHED with Recv-Q 12, Send-Q 0"),
        ("state client:closed server CLOSE_WAIT recv-q 13", True, "at client:closed the server is CLOSE_WAIT with Recv-Q 13, Send-Q 0"),
        ("state client:closed client FIN_WAIT2", True, FIN_WAIT2_CLOSED),
        # Closed by its program, the FIN_WAIT2 end is a mini-socket the kernel drops after tcp_fin_timeout (60 s).
        ("state client:closed client FIN_WAIT2 expires 60", True, FIN_WAIT2_CLOSED),
        ("state client:closed client FIN_WAIT2 expires none", False, FIN_WAIT2_CLOSED),
        ("state client:closed server CLOSE_WAIT expires none", True, "at client:closed the server is CLOSE_WAIT with Recv-Q 13, Send-Q 0"),
        ("state client:closed client TIME_WAIT", False, FIN_WAIT2_CLOSED),
        ("state server:sent server gone", True, "at server:sent there is no server socket"),
        ("state server:sent client gone", True, "at server:sent there is no client socket"),
        ("state client:closed client gone", False, FIN_WAIT2_CLOSED),
        # Every step has a table in the record, captioned (shown) or not.
        ("state client:connected server ESTABLISHED recv-q 0", True, "at client:connected the server is ESTABLISHED with Recv-Q 0, Send-Q 0"),
        ("state server:received#2 server gone", True, "at server:received#2 there is no server socket"),
        ("state end listener LISTEN", True, "at end the listener is LISTEN with Recv-Q 0, Send-Q 0"),
        ("state end server gone", True, "at end there is no server socket"),
        ("fact server:received data = b'Hello, world'", True, "at server:received, data was b'Hello, world'"),
        ("fact server:received#2 data = b''", True, "at server:received#2, data was b''"),
        ("fact server:received#2 data = b'Hello, world'", False, "at server:received#2, data was b''"),
        ("fact server:received#2 data = ''", False, "at server:received#2, data was b''"),  # str is not bytes
        ('fact "client:recv failed" error = EBADF', True, "at client:recv failed, error was OSError [Errno 9] EBADF"),
        ('fact "client:recv failed" error = OSError', True, "at client:recv failed, error was OSError [Errno 9] EBADF"),
        ('fact "client:recv failed" error = 9', True, "at client:recv failed, error was OSError [Errno 9] EBADF"),
        ('fact "client:recv failed" error = ECONNRESET', False, "at client:recv failed, error was OSError [Errno 9] EBADF"),
        ("fact client:sent error = EBADF", False, "step client:sent recorded no 'error' (it recorded: nothing)"),
        ('prints client "closed"', True, "client printed 2 lines"),
        ('prints client "recv failed: [Errno 9] EBADF: Bad file descriptor (OSError)"', True, "client printed 2 lines"),
        ('prints client "Received b\'\'"', False, "client printed 2 lines, none of them \"Received b''\""),
        ("prints server \"data: b''\"", True, "server printed 6 lines"),
        ("exits client 0", True, "client exited with status 0"),
        ("exits client 1", False, "client exited with status 0"),
        ("exits server -9", True, "server exited with status -9"),  # stopped by the lab
        ("packets client:closed = client FIN+ACK, server ACK", True, "at client:closed: client FIN+ACK, server ACK"),
        ("packets client:closed = client fin+ack len 0, server ACK len 0", True, "at client:closed: client FIN+ACK, server ACK"),
        ("packets client:closed = client FIN+ACK", False, "at client:closed: client FIN+ACK, server ACK"),
        ("packets client:closed = server ACK, client FIN+ACK", False, "at client:closed: client FIN+ACK, server ACK"),
        ("packets server:received = none", True, "at server:received: no segment"),
        ("packets server:sent = server PSH+ACK len 12, client RST", True, "at server:sent: server PSH+ACK len 12, client RST"),
        ("packets server:sent = server PSH+ACK len 11, client RST", False, "at server:sent: server PSH+ACK len 12, client RST"),
        ("packet server:sent client RST", True, "at server:sent: server PSH+ACK len 12, client RST"),
        ("packet client:closed client RST", False, "at client:closed: client FIN+ACK, server ACK"),
        ("no-packet client:closed client RST", True, "at client:closed: client FIN+ACK, server ACK"),
        ("packet any client FIN", False, "at any: client SYN, server SYN+ACK, client ACK, client PSH+ACK len 12, server ACK, client FIN+ACK, server ACK, server PSH+ACK len 12, client RST"),
    ],
)
def test_evaluate_on_a_real_close_run(close_record, line, holds, observed):
    outcome = evaluate(parse_check(line), close_record)
    assert (outcome.holds, outcome.observed) == (holds, observed)


@pytest.mark.parametrize(
    "line, message",
    [
        ("state client:nowhere server ESTABLISHED", "run 'close' has no snapshot at 'client:nowhere' (it has: client:sent, client:closed, server:received, server:sent, end)"),
        ("state server:received#3 server gone", "run 'close' has no snapshot at 'server:received#3'"),
        ("fact server:received#3 data = b''", "run 'close' has no step 'server:received#3' (it has: server:listening, client:connected,"),
        ("exits nobody 0", "no program 'nobody' (programs: server, client)"),
        ('prints nobody "x"', "no program 'nobody'"),
        ("packet client:nowhere client RST", "run 'close' has no step 'client:nowhere' (it has: server:listening,"),
    ],
)
def test_references_to_what_the_record_lacks(close_record, line, message):
    with pytest.raises(CheckSyntaxError) as error:
        evaluate(parse_check(line), close_record)
    assert message in str(error.value)


def test_packet_checks_are_not_checked_without_a_capture(close_record):
    """A machine that could not capture cannot contradict a packet claim: the check says so instead."""
    from dataclasses import replace

    blind = replace(close_record, packets=[], packets_source="no packet capture: packet capture needs CAP_NET_RAW")
    outcome = evaluate(parse_check("packet server:sent client RST"), blind)
    assert outcome.unchecked == "no packet capture: packet capture needs CAP_NET_RAW"
    # ... while a state check on the same record is still held.
    assert evaluate(parse_check("state server:sent server gone"), blind).holds


def test_normalising_replaces_ports_where_they_stand_not_numbers_that_equal_them(close_record):
    """A byte count that happens to equal the client's port (ports run to 60999) must stay a byte count."""
    from dataclasses import replace

    port = close_record.ports["client"]
    printed = f"Connected by ('127.0.0.1', {port})\nsent {port} bytes\n"
    server = replace(close_record.programs["server"], stdout=printed, command=["python3", "x.py", "--port", str(port)])
    record = replace(close_record, programs=close_record.programs | {"server": server})
    normalised = record.normalised()["programs"]["server"]
    assert normalised["stdout"] == f"Connected by ('127.0.0.1', <client-port>)\nsent {port} bytes\n"
    assert normalised["command"][-1] == "<client-port>"
    rows = record.normalised()["events"][2]["snapshot"]["sockets"]
    assert {row["local"] for row in rows} >= {"127.0.0.1:<server-port>", "127.0.0.1:<client-port>"}


# -- durations: ranges of measured facts, and the time between two segments --------------------


@pytest.mark.parametrize(
    "line, message",
    [
        ("fact client:closed waited_ms in 500..30", "the range 500..30 is empty"),
        ("fact client:closed waited_ms in 30", "a bound is written '>= N', '<= N' or 'in LO..HI'"),
        ("fact client:closed waited_ms in a..b", "'a' is not a number"),
        ("gap client:closed client FIN+ACK server ACK >= 30 ms", "expected 'gap STEP ROLE FLAGS [len N] -> ROLE FLAGS"),
        ("gap client:closed client FIN+ACK -> server ACK >= 30", "expected 'gap STEP ROLE FLAGS [len N] -> ROLE FLAGS"),
        ("gap client:closed client FIN+ACK -> server ACK = 30 ms", "expected 'gap STEP"),
        ("gap client:closed client FIN+ACK -> server ACK > 30 ms", "a bound is written '>= N', '<= N' or 'in LO..HI'"),
        ("gap client:closed client FIN+ACK -> server ACK >= 30 s", "expected 'gap STEP ROLE FLAGS"),
        ("gap client:closed client FIN+ACK -> nobody ACK >= 30 ms", "a segment's sender is client or server"),
    ],
)
def test_duration_syntax_errors(line, message):
    with pytest.raises(CheckSyntaxError) as error:
        parse_check(line)
    assert message in str(error.value)


def _with_times(record: Record, *milliseconds: float) -> Record:
    """The record's client:closed segments (FIN, its ACK) at the given times after the FIN."""
    from dataclasses import replace

    closing = [p for p in record.packets if p.step == "client:closed"]
    start = closing[0].time
    moved = {id(p): replace(p, time=start + ms / 1000) for p, ms in zip(closing, milliseconds)}
    return replace(record, packets=[moved.get(id(p), p) for p in record.packets])


@pytest.mark.parametrize(
    "line, holds",
    [
        ("gap client:closed client FIN+ACK -> server ACK >= 30 ms", True),
        ("gap client:closed client FIN+ACK -> server ACK >= 41 ms", False),
        ("gap client:closed client FIN+ACK -> server ACK <= 40 ms", True),
        ("gap client:closed client FIN+ACK -> server ACK <= 39.9 ms", False),
        ("gap client:closed client FIN+ACK -> server ACK in 30..50 ms", True),
        ("gap client:closed client FIN+ACK -> server ACK in 0..1 ms", False),
        ("gap any client FIN+ACK -> server ACK in 39..41 ms", True),  # the FIN's ACK, not an earlier one
    ],
)
def test_gaps_measure_the_time_from_one_segment_to_the_next_that_matches(close_record, line, holds):
    record = _with_times(close_record, 0.0, 40.0)
    outcome = evaluate(parse_check(line), record)
    assert outcome.holds is holds
    assert outcome.observed == "at client:closed, server ACK came 40.000 ms after client FIN+ACK" or line.startswith("gap any")


def test_a_gap_whose_segments_are_missing_fails_saying_which(close_record):
    outcome = evaluate(parse_check("gap client:closed client RST -> server ACK >= 0 ms"), close_record)
    assert not outcome.holds and outcome.observed.startswith("at client:closed no segment is client RST")
    outcome = evaluate(parse_check("gap client:closed server ACK -> client FIN+ACK >= 0 ms"), close_record)
    assert (outcome.holds, outcome.observed) == (False, "at client:closed no client FIN+ACK follows the server ACK")


def test_a_gap_is_not_checked_without_a_capture(close_record):
    from dataclasses import replace

    blind = replace(close_record, packets=[], packets_source="no packet capture: packet capture needs CAP_NET_RAW")
    outcome = evaluate(parse_check("gap client:closed client FIN+ACK -> server ACK >= 30 ms"), blind)
    assert outcome.unchecked == "no packet capture: packet capture needs CAP_NET_RAW"


def test_the_real_fin_waits_for_the_delayed_ack(close_record):
    """On this kernel the FIN's ACK waits for the delayed-ACK timer (40 ms at least, TCP_DELACK_MIN)."""
    outcome = evaluate(parse_check("gap client:closed client FIN+ACK -> server ACK >= 30 ms"), close_record)
    assert outcome.holds, outcome.observed


@pytest.mark.parametrize(
    "line, holds",
    [
        ("fact server:listening port in 1..65535", True),
        ("fact server:listening port in 1..10", False),
        ("fact server:received data in 0..100", False),  # bytes are no number
        ("fact server:received missing_ms in 0..100", False),
    ],
)
def test_fact_ranges(close_record, line, holds):
    assert evaluate(parse_check(line), close_record).holds is holds


def test_normalising_leaves_out_measured_milliseconds_only(close_record):
    from dataclasses import replace

    events = list(close_record.events)
    events[1] = replace(events[1], facts={"waited_ms": 43.2, "linger": 1})
    other = replace(events[1], facts={"waited_ms": 46.9, "linger": 1})
    first = replace(close_record, events=events).normalised()
    second = replace(close_record, events=[events[0], other, *events[2:]]).normalised()
    assert first == second
    assert first["events"][1]["facts"] == {"waited_ms": "<ms>", "linger": 1}
    changed = replace(close_record, events=[events[0], replace(other, facts={"waited_ms": 46.9, "linger": 2}), *events[2:]])
    assert changed.normalised() != first
