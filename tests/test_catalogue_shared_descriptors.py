"""The shared-descriptors experiment: only the last close() of a connection sends the FIN.

Real runs through the ``lab_run`` fixture of test_lab_coordinator (nothing
may outlive a run), checked table by table, then 20 runs in a row that must
give the same normalised capture.
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

EXPERIMENT = "shared-descriptors"
CONNECTED = [LISTENER, ("server", "ESTABLISHED", 12, 0), ("client", "ESTABLISHED", 0, 0)]
HALF_CLOSED = [LISTENER, ("server", "CLOSE_WAIT", 13, 0), ("client", "FIN_WAIT2", 0, 0)]
READ_TO_END = [LISTENER, ("server", "CLOSE_WAIT", 0, 0), ("client", "FIN_WAIT2", 0, 0)]
ENDED = [LISTENER, ("client", "TIME_WAIT", 0, 0)]


def check_client_side(record: Record) -> None:
    """What both runs share: the client's dup(), makefile(), shutdown() and close()s."""
    # close() of one of two descriptors: nothing sent, the connection is as it was.
    assert table(record.snapshot("client:closed s")) == CONNECTED
    # shutdown() through the other descriptor, while a file still holds it: the FIN is out.
    assert table(record.snapshot("client:shut_wr")) == HALF_CLOSED
    assert record.snapshot("client:shut_wr").row("client").expires is None  # still held by the program
    # close() of that descriptor too: the file keeps the socket open, nothing changes ...
    assert table(record.snapshot("client:closed copy")) == HALF_CLOSED
    assert record.snapshot("client:closed copy").row("client").expires is None
    # ... and it reads the whole echo afterwards.
    assert fact(record, "client:received", "data") == {"bytes": "b'Hello, world'"}
    assert table(record.snapshot("server:received")) == READ_TO_END
    assert fact(record, "server:received", "data") == {"bytes": "b'Hello, world'"}
    assert fact(record, "server:received#2", "data") == {"bytes": "b''"}
    assert table(record.final) == ENDED
    assert [(row.role, row.state) for row in record.leftover] == [("client", "TIME_WAIT")]
    assert record.programs["client"].stdout == (
        "closed s: copy still holds the connection\n"
        "shut down for writing through copy\n"
        "closed copy: reader still holds the connection\n"
        "received b'Hello, world'\n"
    )
    assert (record.programs["client"].exit_status, record.programs["server"].exit_status) == (0, -9)


def check_parent_closes_first(record: Record) -> None:
    check_client_side(record)
    # The parent's close(), one of two references, sent nothing; the client had not even sent yet.
    assert table(record.snapshot("server:parent closed")) == [
        LISTENER,
        ("server", "ESTABLISHED", 0, 0),
        ("client", "ESTABLISHED", 0, 0),
    ]
    # The child held the last reference: its close() sent the FIN, and the client's read() returned.
    assert table(record.snapshot("server:closed")) == ENDED


def check_parent_closes_late(record: Record) -> None:
    check_client_side(record)
    # The child's close() sent nothing: the parent still holds the connection.
    assert table(record.snapshot("server:closed")) == READ_TO_END
    # The parent's close() is the last one: now the FIN goes out.
    assert table(record.snapshot("server:parent closed")) == ENDED
    # The client's read() returned only after the parent's close(), not at the child's.
    assert record.event("client:received").epoch >= record.event("server:parent closed").epoch
    assert record.event("client:received").epoch > record.event("server:closed").epoch + 1


STORIES = {"parent-closes-first": check_parent_closes_first, "parent-closes-late": check_parent_closes_late}


@pytest.mark.parametrize("run", list(STORIES))
def test_story(lab_run, run):
    record = lab_run(load_experiment(EXPERIMENT), run)
    STORIES[run](record)
    assert Record.from_json(record.to_json()) == record


@pytest.mark.parametrize("run", list(STORIES))
def test_repeated_runs_capture_the_same(lab_run, run):
    assert_repeats_the_same(lab_run, load_experiment(EXPERIMENT), run, STORIES[run])
