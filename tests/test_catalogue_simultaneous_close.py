"""The simultaneous-close experiment: CLOSING, reached on purpose and the same every time.

Both programs queue their FIN behind data the peer has no room for, so both
are in FIN_WAIT1 before either FIN is on the wire; whichever side reads first
receives the other's FIN while its own is still unsent: CLOSING.
"""

from __future__ import annotations

import pytest
from lab.schedule import load_experiment
from lab_helpers import (
    LISTENER,
    assert_repeats_the_same,
    fact,
    table,
)

SIZE, WINDOW = 4000, 1152  # bytes each side sends; what the peer's smallest receive buffer takes in
HELD = SIZE - WINDOW


def check_client_reads_first(record) -> None:
    assert table(record.snapshot("client:sent")) == [
        LISTENER,
        ("server", "ESTABLISHED", WINDOW, HELD),
        ("client", "ESTABLISHED", WINDOW, HELD),
    ]
    # The FIN counts in Send-Q (one sequence number), and the socket is in FIN_WAIT1 although no FIN has left.
    assert table(record.snapshot("server:sent")) == [
        LISTENER,
        ("server", "ESTABLISHED", WINDOW, HELD),
        ("client", "FIN_WAIT1", WINDOW, HELD + 1),
    ]
    assert table(record.snapshot("client:shut_wr")) == [
        LISTENER,
        ("server", "FIN_WAIT1", WINDOW, HELD + 1),
        ("client", "FIN_WAIT1", WINDOW, HELD + 1),
    ]
    assert table(record.snapshot("client:read all")) == [
        LISTENER,
        ("server", "FIN_WAIT2", WINDOW, 0),
        ("client", "CLOSING", 0, HELD + 1),
    ]
    assert table(record.snapshot("server:shut_wr")) == table(record.snapshot("client:read all"))
    assert table(record.snapshot("server:read all")) == [LISTENER, ("server", "TIME_WAIT", 0, 0), ("client", "TIME_WAIT", 0, 0)]
    assert table(record.final) == [LISTENER, ("server", "TIME_WAIT", 0, 0), ("client", "TIME_WAIT", 0, 0)]
    assert fact(record, "client:read all", "received") == SIZE
    assert fact(record, "server:read all", "received") == SIZE
    assert sorted(row.role for row in record.leftover) == ["client", "server"]


def check_server_reads_first(record) -> None:
    assert table(record.snapshot("server:shut_wr")) == [
        LISTENER,
        ("server", "FIN_WAIT1", WINDOW, HELD + 1),
        ("client", "FIN_WAIT1", WINDOW, HELD + 1),
    ]
    assert table(record.snapshot("server:read all")) == [
        LISTENER,
        ("server", "CLOSING", 0, HELD + 1),
        ("client", "FIN_WAIT2", WINDOW, 0),
    ]
    assert table(record.snapshot("client:read all")) == [LISTENER, ("server", "TIME_WAIT", 0, 0), ("client", "TIME_WAIT", 0, 0)]


STORIES = {"client-reads-first": check_client_reads_first, "server-reads-first": check_server_reads_first}


@pytest.mark.parametrize("run", list(STORIES))
def test_repeated_runs_capture_the_same(lab_run, run):
    assert_repeats_the_same(lab_run, load_experiment("simultaneous-close"), run, STORIES[run])
