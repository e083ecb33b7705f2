"""The linger experiment: SO_LINGER with a zero time aborts; with one second, close() waits.

Both runs on real sockets, their story checked table by table, and 20 runs in
a row of each giving the same normalised capture.  The run in which close()
waits out its linger time takes a little over a second, so the repeats of
that run are what make this file slow (about 25 s).
"""

from __future__ import annotations

import pytest
from lab.record import Record
from lab.schedule import load_experiment
from lab_helpers import (
    LISTENER,
    assert_repeats_the_same,
    fact,
    table,
)


def error(record: Record, label: str) -> str | None:
    recorded = fact(record, label, "error")
    return recorded and recorded["exception"]["errno_name"]


def check_server_not_reading(record: Record) -> None:
    held = [LISTENER, ("server", "ESTABLISHED", 4096, 0), ("client", "ESTABLISHED", 0, 15904)]
    assert table(record.snapshot("client:sent")) == held
    # Zero linger: a reset at once, nothing left of the connection, not even a TIME_WAIT.
    assert table(record.snapshot("client:closed")) == [LISTENER]
    assert fact(record, "client:closed", "waited_seconds") == 0
    assert fact(record, "client:closed", "waited_ms") < 30  # at once: less than a delayed ACK
    # What had reached the server is still read; the 15904 unsent bytes are not; then the reset.
    assert (fact(record, "server:received", "nbytes"), error(record, "server:received")) == (4096, "ECONNRESET")
    assert table(record.snapshot("client:sent#2")) == held
    # One second: close() waits the whole second, returns without an error, and the socket stays,
    # orphaned in FIN_WAIT1 with its data and its FIN (Send-Q + 1) still queued.  No reset.
    assert fact(record, "client:closed#2", "waited_seconds") == 1
    assert 1000 <= fact(record, "client:closed#2", "waited_ms") <= 1300
    assert table(record.snapshot("client:closed#2")) == [LISTENER, ("server", "ESTABLISHED", 4096, 0), ("client", "FIN_WAIT1", 0, 15905)]
    # Nothing was lost: once the server reads, all 20000 bytes and the FIN arrive.
    assert (fact(record, "server:received#2", "nbytes"), error(record, "server:received#2")) == (20000, None)
    assert table(record.snapshot("server:received#2")) == [LISTENER, ("server", "CLOSE_WAIT", 0, 0), ("client", "FIN_WAIT2", 0, 0)]
    assert table(record.final) == [LISTENER, ("client", "TIME_WAIT", 0, 0)]
    assert record.programs["client"].stdout == (
        "SO_LINGER on, 0 s\nclose() returned after 0 s\nSO_LINGER on, 1 s\nclose() returned after 1 s\n"
    )


def check_server_reading(record: Record) -> None:
    delivered = [LISTENER, ("server", "ESTABLISHED", 0, 0), ("client", "ESTABLISHED", 0, 0)]
    assert table(record.snapshot("client:sent")) == delivered
    assert table(record.snapshot("client:closed")) == [LISTENER]
    # Everything had arrived, and still the server's recv() reports a reset, not an end of file.
    assert (fact(record, "server:received", "nbytes"), error(record, "server:received")) == (20000, "ECONNRESET")
    assert table(record.snapshot("client:sent#2")) == delivered
    assert fact(record, "client:closed#2", "waited_seconds") == 0
    # Not at once: close() blocks until the FIN is acknowledged, and that ACK is the delayed one.
    assert 30 <= fact(record, "client:closed#2", "waited_ms") <= 500
    assert table(record.snapshot("client:closed#2")) == [LISTENER, ("server", "CLOSE_WAIT", 0, 0), ("client", "FIN_WAIT2", 0, 0)]
    assert (fact(record, "server:received#2", "nbytes"), error(record, "server:received#2")) == (20000, None)
    assert table(record.final) == [LISTENER, ("client", "TIME_WAIT", 0, 0)]


STORIES = {"server-not-reading": check_server_not_reading, "server-reading": check_server_reading}


@pytest.mark.parametrize("run", list(STORIES))
def test_story(lab_run, run):
    STORIES[run](lab_run(load_experiment("linger"), run))


@pytest.mark.parametrize("run", list(STORIES))
def test_repeated_runs_capture_the_same(lab_run, run):
    assert_repeats_the_same(lab_run, load_experiment("linger"), run, STORIES[run])
