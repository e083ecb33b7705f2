"""The shut-rd experiment: what shutdown(SHUT_RD) does on Linux, measured.

Linux discards nothing: bytes queued before SHUT_RD are returned, bytes that
arrive after it (while our side is still open for sending) are acknowledged,
queued and returned too; a recv() with nothing queued returns b'' at once.
Only data arriving after our own FIN is answered with a reset.
"""

from __future__ import annotations

import pytest
from lab.record import Record
from lab.schedule import load_experiment
from lab_helpers import (
    assert_repeats_the_same,
    fact,
    table,
)

EXPERIMENT = "shut-rd"
LISTENER = ("listener", "LISTEN", 0, 0)
IDLE = [LISTENER, ("server", "ESTABLISHED", 0, 0), ("client", "ESTABLISHED", 0, 0)]
QUEUED = [LISTENER, ("server", "ESTABLISHED", 0, 0), ("client", "ESTABLISHED", 12, 0)]


def check_the_reset(record: Record) -> None:
    """Both orders end alike: after the client's FIN, the server's Goodbye gets a reset."""
    assert table(record.snapshot("server:sent")) == [LISTENER, ("server", "CLOSE_WAIT", 1, 0), ("client", "FIN_WAIT2", 0, 0)]
    assert table(record.snapshot("server:sent#2")) == [LISTENER]
    assert fact(record, "server:sent#2", "bytes_sent") == 7
    error = fact(record, "client:recv failed", "error")["exception"]
    assert (error["type"], error["errno_name"]) == ("ConnectionResetError", "ECONNRESET")
    assert table(record.final) == [LISTENER] and record.leftover == []
    assert (record.programs["client"].exit_status, record.programs["server"].exit_status) == (0, -9)


def check_data_before(record: Record) -> None:
    assert table(record.snapshot("client:connected")) == QUEUED
    assert table(record.snapshot("client:shut_rd")) == QUEUED  # nothing sent, nothing discarded
    assert fact(record, "client:received", "data") == {"bytes": "b'Hello, world'"}
    assert table(record.snapshot("client:received")) == IDLE
    assert fact(record, "client:received#2", "data") == {"bytes": "b''"}
    check_the_reset(record)
    assert record.programs["client"].stdout.splitlines()[:3] == ["shut_rd", "received b'Hello, world'", "received b''"]


def check_data_after(record: Record) -> None:
    assert table(record.snapshot("client:shut_rd")) == IDLE  # nothing sent
    assert fact(record, "client:shut_rd", "readable") is True  # select(): readable, with nothing queued
    assert fact(record, "client:received", "data") == {"bytes": "b''"}  # at once: nothing had been sent yet
    assert record.event("client:received").epoch < record.event("server:sent").epoch
    # Data after SHUT_RD: acknowledged (the server's Send-Q is 0) and queued at the client
    # (the table taken when the run lets the client's first recv() step pass, after the server sent) ...
    assert table(record.snapshot("client:received")) == QUEUED
    # ... and returned by the next recv(), after one that returned b''.
    assert fact(record, "client:received#2", "data") == {"bytes": "b'Hello, world'"}
    assert table(record.snapshot("client:received#2")) == IDLE
    check_the_reset(record)
    assert record.programs["client"].stdout.splitlines()[:3] == ["shut_rd", "received b''", "received b'Hello, world'"]


STORIES = {"data-before-shut-rd": check_data_before, "data-after-shut-rd": check_data_after}


@pytest.mark.parametrize("run", list(STORIES))
def test_story(lab_run, run):
    record = lab_run(load_experiment(EXPERIMENT), run)
    STORIES[run](record)
    assert Record.from_json(record.to_json()) == record


@pytest.mark.parametrize("run", list(STORIES))
def test_repeated_runs_capture_the_same(lab_run, run):
    assert_repeats_the_same(lab_run, load_experiment(EXPERIMENT), run, STORIES[run])
