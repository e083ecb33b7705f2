"""The multiplexing experiment: what select(), poll() and selectors report as the peer ends a connection."""

from __future__ import annotations

from lab.schedule import load_experiment
from lab_helpers import (
    LISTENER,
    assert_repeats_the_same,
    fact,
    table,
)

OPEN = ("write", "POLLOUT", "WRITE")
PEER_DONE = ("read write", "POLLIN POLLOUT POLLRDHUP", "READ WRITE")  # the peer's FIN, whether shutdown or close
BOTH_DONE = ("read write", "POLLIN POLLOUT POLLHUP POLLRDHUP", "READ WRITE")
RESET = ("read write", "POLLIN POLLOUT POLLERR POLLHUP POLLRDHUP", "READ WRITE")


def looks(record) -> list[tuple[str, str, str]]:
    return [
        (event.facts["select"], event.facts["poll"], event.facts["selectors"])
        for event in record.events
        if (event.program, event.step) == ("client", "looked")
    ]


def check_story(record) -> None:
    assert looks(record) == [OPEN, PEER_DONE, BOTH_DONE, OPEN, PEER_DONE, RESET, OPEN, RESET]
    assert fact(record, "client:received", "data") == {"bytes": "b''"}
    # After a reset that comes in CLOSE_WAIT, recv() still reports the end of file, not the reset.
    assert fact(record, "client:received#2", "data") == {"bytes": "b''"}
    assert fact(record, "client:received#3", "error")["exception"]["errno_name"] == "ECONNRESET"
    rows = table(record.snapshot("server:ended"))
    assert rows == [LISTENER, ("server", "FIN_WAIT2", 0, 0), ("client", "CLOSE_WAIT", 1, 0)]
    assert table(record.snapshot("client:shut_wr")) == [LISTENER, ("server", "TIME_WAIT", 0, 0)]
    # The second connection's two ends are gone after the reset; the first's TIME_WAIT remains.
    assert table(record.snapshot("client:sent")) == [LISTENER, ("server", "TIME_WAIT", 0, 0)]
    assert table(record.snapshot("server:ended#3")) == [LISTENER, ("server", "TIME_WAIT", 0, 0)]
    assert record.programs["server"].stdout.splitlines() == ["asked to shutdown", "asked to close", "asked to reset"]


def test_repeated_runs_capture_the_same(lab_run):
    assert_repeats_the_same(lab_run, load_experiment("multiplexing"), "three-endings", check_story)
