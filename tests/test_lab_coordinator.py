"""lab/coordinator.py: real runs of the note's experiments, and runs that go wrong.

Every run here goes through ``lab_run`` (conftest.py), which calls
``lab.coordinator.run_experiment`` and afterwards, whether the run succeeded or
failed, checks that it left nothing behind: no process (by the pids the
programs reported and the coordinator started, and by an environment mark
every process of the run inherits) and no socket on its server port but
TIME_WAIT.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lab.coordinator import ExperimentError
from lab.record import Record
from lab.schedule import load_experiment, load_experiments
from lab.tcp_states import disagreements
from lab_helpers import (
    LISTENER,
    REPEATS,
    assert_all_equal,
    fact,
    normalised_json,
    table,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


# -- the note's story ------------------------------------------------------------


# The note's handshake, as every run opens: the segments tied to the client's connect().
HANDSHAKE = [
    ("client:connected", "client", "SYN", 0, None, 0),
    ("client:connected", "server", "SYN+ACK", 0, 1, 0),
    ("client:connected", "client", "ACK", 1, 1, 0),
]


def segments(record: Record) -> list[tuple]:
    """Each captured segment: the step it belongs to, sender, flags, relative seq and ack, length."""
    assert record.packets_source.startswith("AF_PACKET"), record.packets_source
    return [(p.step, p.sender, "+".join(p.flags), p.seq, p.ack, p.length) for p in record.packets]


def check_close_story(record: Record) -> None:
    assert (record.experiment, record.run) == ("close", "close")
    assert table(record.snapshot("client:sent")) == [
        LISTENER,
        ("server", "ESTABLISHED", 12, 0),  # sent, not read yet
        ("client", "ESTABLISHED", 0, 0),
    ]
    assert table(record.snapshot("client:closed")) == [
        LISTENER,
        ("server", "CLOSE_WAIT", 13, 0),  # 12 bytes and the FIN
        ("client", "FIN_WAIT2", 0, 0),
    ]
    assert table(record.snapshot("server:received")) == [LISTENER, ("server", "CLOSE_WAIT", 0, 0), ("client", "FIN_WAIT2", 0, 0)]
    # The send to the closed client is answered with a reset: both ends are gone.
    assert table(record.snapshot("server:sent")) == [LISTENER]
    assert table(record.final) == [LISTENER]
    assert record.final.at == "end" and record.final.caption == "Both programs have finished"
    assert fact(record, "server:received", "data") == {"bytes": "b'Hello, world'"}
    assert fact(record, "server:received#2", "data") == {"bytes": "b''"}
    error = fact(record, "client:recv failed", "error")["exception"]
    assert (error["type"], error["errno_name"]) == ("OSError", "EBADF")
    assert record.programs["client"].stdout == "closed\nrecv failed: [Errno 9] EBADF: Bad file descriptor (OSError)\n"
    assert record.programs["server"].stdout.splitlines()[1:] == [
        "success recv",
        "data: b'Hello, world'",
        "success send",
        "success recv",
        "data: b''",
    ]
    assert record.programs["server"].stdout.startswith("Connected by ('127.0.0.1', ")
    assert (record.programs["client"].exit_status, record.programs["server"].exit_status) == (0, -9)
    assert record.leftover == []
    assert segments(record) == HANDSHAKE + [
        ("client:sent", "client", "PSH+ACK", 1, 1, 12),
        ("client:sent", "server", "ACK", 1, 13, 0),
        ("client:closed", "client", "FIN+ACK", 13, 1, 0),  # close() sends a FIN ...
        ("client:closed", "server", "ACK", 1, 14, 0),  # ... which the server's kernel acknowledges alone
        ("server:sent", "server", "PSH+ACK", 1, 14, 12),  # the echo ...
        ("server:sent", "client", "RST", 14, None, 0),  # ... meets a reset: no program reads there any more
    ]


def check_echo_before_shut_rd_story(record: Record) -> None:
    assert (record.experiment, record.run) == ("shutdown", "echo-before-shut-rd")
    assert table(record.snapshot("client:sent")) == [LISTENER, ("server", "ESTABLISHED", 12, 0), ("client", "ESTABLISHED", 0, 0)]
    # Taken when the server's child is let go past "accepted": the client is held after SHUT_WR.
    assert table(record.snapshot("server:accepted")) == [LISTENER, ("server", "CLOSE_WAIT", 13, 0), ("client", "FIN_WAIT2", 0, 0)]
    assert table(record.snapshot("server:received")) == [LISTENER, ("server", "CLOSE_WAIT", 0, 0), ("client", "FIN_WAIT2", 0, 0)]
    # The echo waits in the client's receive queue, and is still there after SHUT_RD.
    assert table(record.snapshot("server:sent")) == [LISTENER, ("server", "CLOSE_WAIT", 0, 0), ("client", "FIN_WAIT2", 12, 0)]
    assert table(record.snapshot("client:shut_rd")) == [LISTENER, ("server", "CLOSE_WAIT", 0, 0), ("client", "FIN_WAIT2", 12, 0)]
    assert table(record.snapshot("client:received")) == [LISTENER, ("server", "CLOSE_WAIT", 0, 0), ("client", "FIN_WAIT2", 0, 0)]
    assert table(record.final) == [LISTENER, ("client", "TIME_WAIT", 0, 0)]
    assert [(row.role, row.state) for row in record.leftover] == [("client", "TIME_WAIT")]
    assert fact(record, "client:received", "data") == {"bytes": "b'Hello, world'"}
    assert fact(record, "server:received", "data") == {"bytes": "b'Hello, world'"}
    assert fact(record, "server:received#2", "data") == {"bytes": "b''"}
    assert record.programs["client"].stdout == "shut_wr\nshut_rd\nReceived b'Hello, world'\n"
    assert (record.programs["client"].exit_status, record.programs["server"].exit_status) == (0, -9)
    assert segments(record) == HANDSHAKE + [
        ("client:sent", "client", "PSH+ACK", 1, 1, 12),
        ("client:sent", "server", "ACK", 1, 13, 0),
        # The client's shutdown(SHUT_WR) happened before the server's accept step was let go.
        ("server:accepted", "client", "FIN+ACK", 13, 1, 0),
        ("server:accepted", "server", "ACK", 1, 14, 0),
        ("server:sent", "server", "PSH+ACK", 1, 14, 12),  # the echo is accepted and acknowledged
        ("server:sent", "client", "ACK", 14, 13, 0),
        ("end", "server", "FIN+ACK", 13, 14, 0),  # the server's child closes when it is done
        ("end", "client", "ACK", 14, 14, 0),
    ]


def check_echo_after_shut_rd_story(record: Record) -> None:
    assert (record.experiment, record.run) == ("shutdown", "echo-after-shut-rd")
    assert table(record.snapshot("client:sent")) == [LISTENER, ("server", "ESTABLISHED", 12, 0), ("client", "ESTABLISHED", 0, 0)]
    assert table(record.snapshot("client:shut_wr")) == [LISTENER, ("server", "CLOSE_WAIT", 13, 0), ("client", "FIN_WAIT2", 0, 0)]
    assert table(record.snapshot("client:shut_rd")) == [LISTENER, ("server", "CLOSE_WAIT", 13, 0), ("client", "FIN_WAIT2", 0, 0)]
    assert table(record.snapshot("server:accepted")) == [LISTENER, ("server", "CLOSE_WAIT", 13, 0), ("client", "FIN_WAIT2", 0, 0)]
    assert table(record.snapshot("server:received")) == [LISTENER, ("server", "CLOSE_WAIT", 0, 0), ("client", "FIN_WAIT2", 0, 0)]
    # The echo reaches a client shut for reading: it answers with a reset, and both ends are gone.
    assert table(record.snapshot("server:sent")) == [LISTENER]
    assert table(record.final) == [LISTENER]
    assert record.leftover == []
    # recv() after SHUT_RD returned b'' at once, before the server had even read the request.
    assert fact(record, "client:received", "data") == {"bytes": "b''"}
    assert record.event("client:received").epoch < record.event("server:received").epoch
    assert fact(record, "server:received", "data") == {"bytes": "b'Hello, world'"}
    assert fact(record, "server:received#2", "data") == {"bytes": "b''"}
    assert record.programs["client"].stdout == "shut_wr\nshut_rd\nReceived b''\n"
    assert (record.programs["client"].exit_status, record.programs["server"].exit_status) == (0, -9)
    assert segments(record) == HANDSHAKE + [
        ("client:sent", "client", "PSH+ACK", 1, 1, 12),
        ("client:sent", "server", "ACK", 1, 13, 0),
        ("client:shut_wr", "client", "FIN+ACK", 13, 1, 0),
        ("client:shut_wr", "server", "ACK", 1, 14, 0),
        # shutdown(SHUT_RD) sent nothing: no segment is tied to client:shut_rd.
        ("server:sent", "server", "PSH+ACK", 1, 14, 12),
        ("server:sent", "client", "RST", 14, None, 0),  # a client shut for reading resets the echo
    ]


def check_echo_between_story(record: Record) -> None:
    assert (record.experiment, record.run) == ("shutdown", "echo-between-shut-rd-and-recv")
    assert table(record.snapshot("server:received")) == [LISTENER, ("server", "CLOSE_WAIT", 0, 0), ("client", "FIN_WAIT2", 0, 0)]
    assert table(record.snapshot("server:sent")) == [LISTENER]  # the reset: both ends gone
    error = fact(record, "client:recv failed", "error")["exception"]
    assert (error["type"], error["errno_name"]) == ("ConnectionResetError", "ECONNRESET")
    assert record.programs["client"].stdout == (
        "shut_wr\nshut_rd\nrecv failed: [Errno 104] ECONNRESET: Connection reset by peer (ConnectionResetError)\n"
    )
    assert [(p.step, p.sender, "+".join(p.flags)) for p in record.packets][-2:] == [
        ("server:sent", "server", "PSH+ACK"),
        ("server:sent", "client", "RST"),
    ]
    assert [p for p in record.packets if p.step == "client:shut_rd"] == []  # SHUT_RD sends nothing


def check_server_closes_first_story(record: Record) -> None:
    assert (record.experiment, record.run) == ("shutdown", "server-closes-first")
    assert table(record.snapshot("server:sent")) == [LISTENER, ("server", "CLOSE_WAIT", 0, 0), ("client", "FIN_WAIT2", 12, 0)]
    # The server closed after its second recv(): the connection is over, the client in TIME_WAIT.
    for at in ("client:shut_wr", "client:shut_rd failed", "client:received", "end"):
        assert table(record.snapshot(at)) == [LISTENER, ("client", "TIME_WAIT", 0, 0)], at
    error = fact(record, "client:shut_rd failed", "error")["exception"]
    assert (error["type"], error["errno_name"]) == ("OSError", "ENOTCONN")
    assert fact(record, "client:received", "data") == {"bytes": "b'Hello, world'"}  # still there to read
    assert record.programs["client"].stdout == (
        "shut_wr\nshut_rd failed: [Errno 107] ENOTCONN: Transport endpoint is not connected (OSError)\n"
        "Received b'Hello, world'\n"
    )
    assert [(p.step, p.sender, "+".join(p.flags)) for p in record.packets][-4:] == [
        ("server:sent", "server", "PSH+ACK"),
        ("server:sent", "client", "ACK"),
        ("client:shut_wr", "server", "FIN+ACK"),  # the server closed after its step; seen at the next one
        ("client:shut_wr", "client", "ACK"),
    ]


STORIES = {
    ("close", "close"): check_close_story,
    ("shutdown", "echo-before-shut-rd"): check_echo_before_shut_rd_story,
    ("shutdown", "echo-after-shut-rd"): check_echo_after_shut_rd_story,
    ("shutdown", "echo-between-shut-rd-and-recv"): check_echo_between_story,
    ("shutdown", "server-closes-first"): check_server_closes_first_story,
}
RUNS = pytest.mark.parametrize("experiment, run", list(STORIES), ids=[run for _, run in STORIES])


@RUNS
def test_story(lab_run, experiment, run):
    record = lab_run(load_experiment(experiment), run)
    STORIES[experiment, run](record)
    # Events come in the run's order, each with the table taken when it was reached.
    assert [e.label for e in record.events] == [s.label for s in load_experiment(experiment).run(run).steps]
    assert all(e.snapshot is not None and e.snapshot.at == e.label for e in record.events)
    # The record survives JSON unchanged.
    assert Record.from_json(record.to_json()) == record
    # The packets and the tables tell one story: RFC 9293's state machine, fed the captured
    # segments, reaches at every step the states the kernel's table shows.
    assert disagreements(record) == []


@RUNS
def test_repeated_runs_capture_the_same(lab_run, experiment, run):
    found = load_experiment(experiment)
    records = [lab_run(found, run) for _ in range(REPEATS)]
    STORIES[experiment, run](records[0])
    # The ports really differ from run to run; normalising is what makes them equal.
    assert len({r.ports["client"] for r in records}) > 1
    assert_all_equal([normalised_json(r) for r in records], f"{REPEATS} runs of {experiment}/{run}")


BURN = "while True: pass"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@RUNS
def test_repeated_runs_under_cpu_load_capture_the_same(lab_run, experiment, run):
    found = load_experiment(experiment)
    baseline = lab_run(found, run)  # on an idle machine
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(os.cpu_count() or 2)]
    try:
        started = time.monotonic()
        records = [lab_run(found, run) for _ in range(REPEATS)]
        elapsed = time.monotonic() - started
        assert [b.poll() for b in burners] == [None] * len(burners), "a CPU burner stopped early"
        burnt = [cpu_seconds(b.pid) for b in burners]
    finally:
        for burner in burners:
            burner.kill()
        for burner in burners:
            burner.wait()
    # The load was real: each burner ran throughout, busy.  Its share of a core is smaller the
    # busier the machine already is (a parallel build, another test run), so only a floor is asked.
    assert all(seconds > 0.1 * elapsed for seconds in burnt), (burnt, elapsed)
    STORIES[experiment, run](records[0])
    assert_all_equal([normalised_json(r) for r in [baseline, *records]], f"{experiment}/{run} idle, then {REPEATS} runs under load")


# -- runs that go wrong ---------------------------------------------------------


@pytest.fixture(scope="module")
def broken():
    return load_experiments(FIXTURES / "broken" / "experiments.toml")


def test_hung_client_is_stopped_at_the_deadline(lab_run, broken):
    started = time.monotonic()
    with pytest.raises(ExperimentError) as error:
        lab_run(broken["hang"], "recv-forever", deadline=1.0)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 2.5, elapsed
    message = str(error.value)
    assert message.startswith(
        "experiment 'hang', run 'recv-forever': no progress within 1 s while waiting for client:answered to be reached."
    )
    assert "  client (client-hang.py): running, last step 'waiting'  <- stuck" in message
    assert "  server (server.py): running, last step 'accepted'\n" in message
    assert message.endswith(
        "--- last output of server (server.py) ---\n[stdout]\nfixture server accepted a connection\n"
        "--- last output of client (client-hang.py) ---\n[stdout]\nclient-hang: waiting for an answer that never comes"
    )


def test_run_waiting_for_a_step_that_never_comes(lab_run, broken):
    started = time.monotonic()
    with pytest.raises(ExperimentError) as error:
        lab_run(broken["hang"], "step-never-comes", deadline=0.5)
    assert time.monotonic() - started < 2.0
    message = str(error.value)
    assert message.startswith(
        "experiment 'hang', run 'step-never-comes': no progress within 0.5 s while waiting for client:no-such-step to be reached."
    )
    assert "client (client-hang.py): running, last step 'waiting'  <- stuck" in message
    assert "client-hang: waiting for an answer that never comes" in message


def test_program_hanging_after_its_last_step(lab_run, broken):
    """The deadline of the experiment itself (1 s in its experiments.toml) applies."""
    started = time.monotonic()
    with pytest.raises(ExperimentError) as error:
        lab_run(broken["hang"], "after-last-step")
    assert 1.0 <= time.monotonic() - started < 2.5
    message = str(error.value)
    assert message.startswith(
        "experiment 'hang', run 'after-last-step': no progress within 1 s while waiting for "
        "the client and the server's children to finish."
    )
    assert "client (client-hang.py): running, last step 'waiting'" in message
    assert message.endswith("client-hang: waiting for an answer that never comes")


def test_crashing_client_fails_the_run_at_once(lab_run, broken):
    started = time.monotonic()
    with pytest.raises(ExperimentError) as error:
        lab_run(broken["crash"], "raises")  # deadline 10 s: the crash must not wait for it
    assert time.monotonic() - started < 3.0
    message = str(error.value)
    assert message.startswith(
        "experiment 'crash', run 'raises': client (client-crash.py) exited with status 1 while the run was "
        "waiting for client:closed; its last step was 'sent'."
    )
    tail = message.split("--- last output of client (client-crash.py) ---\n")[1]
    # stdout and stderr are labelled apart, so a long traceback cannot push out the last print.
    assert tail.startswith("[stdout]\nclient-crash: sent, now giving up\n[stderr]\nTraceback (most recent call last):")
    assert 'raise RuntimeError("fixture client gives up on purpose")' in tail
    assert tail.endswith("RuntimeError: fixture client gives up on purpose")


def test_unexpected_step(lab_run, broken):
    started = time.monotonic()
    with pytest.raises(ExperimentError) as error:
        lab_run(broken["surprise"], "unlisted-step")
    assert time.monotonic() - started < 3.0
    message = str(error.value)
    assert message.startswith(
        "experiment 'surprise', run 'unlisted-step': client reached step 'surprise', which run 'unlisted-step' "
        "does not list next; it was waiting for client:done."
    )
    assert message.endswith("client-surprise: about to surprise the lab")


def test_experiments_file_given_by_a_relative_path(lab_run, monkeypatch):
    """The programs run in their own folder, so their paths must not stay relative to ours."""
    monkeypatch.chdir(FIXTURES)
    experiments = load_experiments(Path("broken/experiments.toml"))
    with pytest.raises(ExperimentError) as error:
        lab_run(experiments["surprise"], "unlisted-step")
    assert "client reached step 'surprise'" in str(error.value)


def test_time_wait_of_an_earlier_connection_is_not_part_of_the_run(lab_run, monkeypatch):
    """The kernel hands out a server port again while an earlier client's end to it is in TIME_WAIT.

    Seen under load in the repeated runs: that stale socket was shown as the
    run's client in every table.  Here the port is reused on purpose.
    """
    import socket

    from lab.sockets import read_table

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        earlier = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        earlier_port = earlier.getsockname()[1]
        earlier.close()  # the active close: the earlier client's end goes to TIME_WAIT
        accepted.close()

    def stale_rows():
        return [(s.state, s.local.port) for s in read_table().sockets if s.remote.port == port]

    end = time.monotonic() + 3
    while stale_rows() != [("TIME_WAIT", earlier_port)]:
        assert time.monotonic() < end, stale_rows()

    monkeypatch.setenv("LAB_TEST_SERVER_PORT", str(port))
    experiment = load_experiments(FIXTURES / "stale-time-wait" / "experiments.toml")["close-on-a-used-port"]
    record = lab_run(experiment)
    assert record.ports["server"] == port
    assert ("TIME_WAIT", earlier_port) in stale_rows()  # it was there all along
    assert record.ports["client"] != earlier_port
    for snapshot in record.all_snapshots():
        assert f"127.0.0.1:{earlier_port}" not in {row.local for row in snapshot.sockets}, snapshot
    assert table(record.snapshot("client:sent")) == [LISTENER, ("server", "ESTABLISHED", 12, 0), ("client", "ESTABLISHED", 0, 0)]
    assert table(record.snapshot("client:closed")) == [LISTENER, ("server", "CLOSE_WAIT", 13, 0), ("client", "FIN_WAIT2", 0, 0)]
    assert table(record.snapshot("server:sent")) == [LISTENER]
    assert table(record.final) == [LISTENER]
    assert record.leftover == []


def test_a_closing_listener_is_no_connection():
    """Seen once in 20 runs as an ordinary user: a dump taken as the server closes its listener
    shows it in CLOSE, bound to the server port with no peer.  It is no client connection, and
    naming port 0 a client's port made normalising replace every 0 in the record."""
    from lab.coordinator import Coordinator
    from lab.sockets import Endpoint, TableReading, TcpSocket

    coordinator = Coordinator.__new__(Coordinator)  # only the table-reading state, no programs
    coordinator.ports, coordinator.stale = {"server": 50008}, set()
    listener = Endpoint("127.0.0.1", 50008)
    reading = TableReading(
        (
            TcpSocket(listener, Endpoint("0.0.0.0", 0), "LISTEN", 0, 0),
            TcpSocket(listener, Endpoint("0.0.0.0", 0), "CLOSE", 0, 0),
            TcpSocket(Endpoint("127.0.0.1", 41000), listener, "FIN_WAIT2", 0, 0),
        ),
        "hand-made",
    )
    rows = coordinator._experiment_rows(reading)
    assert [(row.role, row.state) for row in rows] == [("listener", "LISTEN"), ("client", "FIN_WAIT2")]
    assert coordinator.ports == {"server": 50008, "client": 41000}
