"""lab/tcp_states.py: each end's TCP state, replayed from the segments, against RFC 9293 and the kernel.

The hand-made segment lists follow tcpdump's relative numbering (each end's
SYN is 0).  The records in tests/fixtures/records/ are real runs of the three
experiments (``python examples/client-close.py --json ...``), with their
segments captured and the kernel's tables at every step.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lab.record import SCHEMA_VERSION, Packet, Record
from lab.sockets import LINUX_STATES
from lab.tcp_states import (
    RFC_NAMES,
    Transition,
    disagreements,
    display_name,
    kernel_state,
    path,
    states_at_steps,
    transitions,
)

RECORDS = Path(__file__).parent / "fixtures" / "records"
RUNS = ("close", "echo-before-shut-rd", "echo-after-shut-rd")


def load(name: str) -> Record:
    """A recorded run; its schema number is the current one, so new optional fields do not void it."""
    data = json.loads((RECORDS / f"{name}.json").read_text(encoding="utf-8"))
    data["schema"] = SCHEMA_VERSION
    return Record.from_json(json.dumps(data))


def seg(sender: str, flags: str, seq: int, ack: int | None = None, length: int = 0, step: str = "s") -> Packet:
    """A segment: ``seg("client", "FIN ACK", 13, 1)``."""
    return Packet(0.0, sender, flags.split(), seq, ack, length, 65536, step)


HANDSHAKE = [seg("client", "SYN", 0), seg("server", "SYN ACK", 0, 1), seg("client", "ACK", 1, 1)]
REQUEST = [seg("client", "PSH ACK", 1, 1, 12), seg("server", "ACK", 1, 13)]


def moves(found: list[Transition]) -> list[tuple[str, int, str, str, str]]:
    return [(t.end, t.packet_index, t.before, t.after, t.cause) for t in found]


# -- the note's experiments, by hand ------------------------------------------------------


def test_handshake_takes_both_ends_to_established():
    assert moves(transitions(HANDSHAKE)) == [
        ("client", 0, "CLOSE", "SYN_SENT", "sent SYN"),
        ("server", 0, "LISTEN", "SYN_RECV", "received SYN"),
        ("client", 1, "SYN_SENT", "ESTABLISHED", "received SYN, ACK"),
        ("server", 2, "SYN_RECV", "ESTABLISHED", "received ACK of SYN"),
    ]


def test_close_then_data_from_the_server_is_answered_with_a_reset():
    segments = (
        HANDSHAKE
        + REQUEST
        + [
            seg("client", "FIN ACK", 13, 1),  # close()
            seg("server", "ACK", 1, 14),  # the server's kernel acknowledges the FIN at once
            seg("server", "PSH ACK", 1, 14, 12),  # the echo, to a client that has closed
            seg("client", "RST", 14),
        ]
    )
    found = transitions(segments)
    assert moves(found)[4:] == [
        ("client", 5, "ESTABLISHED", "FIN_WAIT1", "sent FIN"),
        ("server", 5, "ESTABLISHED", "CLOSE_WAIT", "received FIN"),
        ("client", 6, "FIN_WAIT1", "FIN_WAIT2", "received ACK of FIN"),
        ("client", 8, "FIN_WAIT2", "CLOSE", "sent RST"),
        ("server", 8, "CLOSE_WAIT", "CLOSE", "received RST"),
    ]
    assert [t.rst for t in found[-2:]] == [True, True]
    assert not any(t.rst for t in found[:-2])
    assert path("client", found) == ["CLOSE", "SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSE"]
    assert path("server", found) == ["LISTEN", "SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "CLOSE"]


def test_shutdown_then_the_server_closes_passes_through_last_ack_and_time_wait():
    segments = (
        HANDSHAKE
        + REQUEST
        + [
            seg("client", "FIN ACK", 13, 1),  # shutdown(SHUT_WR)
            seg("server", "ACK", 1, 14),
            seg("server", "PSH ACK", 1, 14, 12),  # the echo: the client can still read it
            seg("client", "ACK", 14, 13),
            seg("server", "FIN ACK", 13, 14),  # the server's close()
            seg("client", "ACK", 14, 14),
        ]
    )
    found = transitions(segments)
    assert moves(found)[-3:] == [
        ("server", 9, "CLOSE_WAIT", "LAST_ACK", "sent FIN"),
        ("client", 9, "FIN_WAIT2", "TIME_WAIT", "received FIN"),
        ("server", 10, "LAST_ACK", "CLOSE", "received ACK of FIN"),
    ]
    assert path("client", found)[-1] == "TIME_WAIT"
    assert not any(t.rst for t in found)


def test_an_ack_that_does_not_cover_the_fin_leaves_fin_wait1():
    # The FIN comes after 12 bytes of data (seq 13): ack 13 covers the data, not the FIN.
    segments = HANDSHAKE + [seg("client", "FIN PSH ACK", 1, 1, 12), seg("server", "ACK", 1, 13)]
    assert path("client", transitions(segments))[-1] == "FIN_WAIT1"
    segments[-1] = seg("server", "ACK", 1, 14)
    assert path("client", transitions(segments))[-1] == "FIN_WAIT2"


def test_a_retransmitted_fin_changes_nothing():
    segments = HANDSHAKE + [seg("client", "FIN ACK", 1, 1), seg("client", "FIN ACK", 1, 1), seg("server", "ACK", 1, 2)]
    found = transitions(segments)
    assert [t.after for t in found if t.end == "client"][-2:] == ["FIN_WAIT1", "FIN_WAIT2"]
    assert [t.after for t in found if t.end == "server"][-1] == "CLOSE_WAIT"


def test_simultaneous_close_goes_through_closing():
    # Each FIN is sent before the other arrives: the server's FIN does not acknowledge the client's.
    segments = HANDSHAKE + [
        seg("client", "FIN ACK", 1, 1),
        seg("server", "FIN ACK", 1, 1),
        seg("client", "ACK", 2, 2),
        seg("server", "ACK", 2, 2),
    ]
    found = transitions(segments)
    assert path("client", found) == ["CLOSE", "SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSING", "TIME_WAIT"]
    assert path("server", found) == ["LISTEN", "SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSING", "TIME_WAIT"]
    # The client's FIN reached the server only after the server had sent its own.
    late = next(t for t in found if t.end == "server" and t.after == "CLOSING")
    assert (late.packet_index, late.when, late.cause) == (3, 4, "received FIN")


def test_fin_with_the_ack_of_ours_goes_from_fin_wait1_through_fin_wait2_to_time_wait():
    segments = HANDSHAKE + [seg("client", "FIN ACK", 1, 1), seg("server", "FIN ACK", 1, 2), seg("client", "ACK", 2, 2)]
    found = transitions(segments)
    assert [(t.before, t.after, t.cause) for t in found if t.end == "client" and t.packet_index == 4] == [
        ("FIN_WAIT1", "FIN_WAIT2", "received ACK of FIN"),
        ("FIN_WAIT2", "TIME_WAIT", "received FIN"),
    ]
    assert path("server", found)[-2:] == ["LAST_ACK", "CLOSE"]


# -- resets ---------------------------------------------------------------------------------


def test_a_refused_connection_is_reset_in_syn_sent():
    segments = [seg("client", "SYN", 0), seg("server", "RST ACK", 0, 1)]
    found = transitions(segments, initial={"server": "CLOSE"})  # nobody listens on that port
    assert moves(found) == [
        ("client", 0, "CLOSE", "SYN_SENT", "sent SYN"),
        ("client", 1, "SYN_SENT", "CLOSE", "received RST"),
    ]
    assert found[-1].rst


def test_an_abortive_close_resets_both_ends_from_established():
    found = transitions(HANDSHAKE + [seg("client", "RST ACK", 1, 1)])  # close() with SO_LINGER 0
    assert [(t.end, t.before, t.after, t.rst) for t in found[-2:]] == [
        ("client", "ESTABLISHED", "CLOSE", True),
        ("server", "ESTABLISHED", "CLOSE", True),
    ]


def test_a_reset_for_a_gone_socket_or_to_a_listener_changes_nothing():
    # The client is gone already (CLOSE) when the second reset goes; a listener ignores resets.
    found = transitions(
        HANDSHAKE + [seg("client", "RST", 1), seg("server", "PSH ACK", 1, 1, 5), seg("client", "RST", 1)]
    )
    assert len([t for t in found if t.rst]) == 2
    assert transitions([seg("client", "RST", 0)]) == []


# -- real runs, against the kernel's tables -------------------------------------------------


@pytest.mark.parametrize("name", RUNS)
def test_recorded_runs_agree_with_the_kernel_at_every_step(name):
    record = load(name)
    assert record.packets, "the fixture has its segments"
    assert disagreements(record) == []


def test_states_at_steps_of_the_close_run():
    states = states_at_steps(load("close"))
    assert list(states)[-1] == "end"
    assert states["server:listening"] == {"client": "CLOSE", "server": "LISTEN"}
    assert states["client:connected"] == {"client": "ESTABLISHED", "server": "ESTABLISHED"}
    assert states["client:closed"] == {"client": "FIN_WAIT2", "server": "CLOSE_WAIT"}
    assert states["server:sent"] == {"client": "CLOSE", "server": "CLOSE"}
    assert kernel_state(load("close"), "client:closed", "server") == "CLOSE_WAIT"
    assert kernel_state(load("close"), "server:sent", "server") == ""  # gone


def test_states_at_steps_of_the_shutdown_run_ends_in_time_wait():
    record = load("echo-before-shut-rd")
    states = states_at_steps(record)
    # The FIN of shutdown(SHUT_WR) is tied to the server's step that came after it.
    assert states["server:accepted"] == {"client": "FIN_WAIT2", "server": "CLOSE_WAIT"}
    assert states["end"] == {"client": "TIME_WAIT", "server": "CLOSE"}
    assert kernel_state(record, "end", "client") == "TIME_WAIT"


def test_a_table_that_contradicts_the_segments_is_reported():
    record = load("close")
    row = record.snapshot("client:closed").row("client")
    row.state = "FIN_WAIT1"
    assert disagreements(record) == [
        "at client:closed: the segments put the client in FIN_WAIT2, the table lists FIN_WAIT1"
    ]
    record.snapshot("server:sent").sockets.append(row)  # a client row where the client is gone
    assert len(disagreements(record)) == 2


def test_state_names_are_the_tables_and_map_to_the_rfc():
    tracked = {t.after for name in RUNS for t in transitions(load(name).packets)} | {"LISTEN", "CLOSING", "LAST_ACK"}
    assert tracked <= set(RFC_NAMES)
    assert set(RFC_NAMES) <= set(LINUX_STATES.values())
    assert RFC_NAMES["FIN_WAIT1"] == "FIN-WAIT-1" and RFC_NAMES["SYN_RECV"] == "SYN-RECEIVED"
    assert display_name("CLOSE") == "CLOSED" and display_name("TIME_WAIT") == "TIME_WAIT"
