"""The unread-close experiment: close() with part of the request unread resets the connection.

Both runs on real sockets, their story checked table by table, and 20 runs in
a row of each giving the same normalised capture.
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

SERVER_HOLDING_THE_REPLY = [LISTENER, ("server", "ESTABLISHED", 7, 15904), ("client", "ESTABLISHED", 4096, 0)]


def error(record: Record, label: str) -> str:
    return fact(record, label, "error")["exception"]["errno_name"]


def check_reply_unsent(record: Record) -> None:
    assert table(record.snapshot("server:received")) == [LISTENER, ("server", "ESTABLISHED", 7, 0), ("client", "ESTABLISHED", 0, 0)]
    # 4096 bytes fill the client's window; the other 15904 wait in the server's kernel, not in flight.
    assert table(record.snapshot("server:sent")) == SERVER_HOLDING_THE_REPLY
    # close() with 7 unread bytes: a reset, and both ends are gone at once.
    assert table(record.snapshot("server:closed")) == [LISTENER]
    assert fact(record, "client:received", "nbytes") == 4096
    assert error(record, "client:received") == "ECONNRESET"
    assert fact(record, "client:received again", "data") == {"bytes": "b''"}
    assert error(record, "client:sent again") == "EPIPE"
    assert record.programs["client"].stdout == (
        "received 4096 of 20000 bytes\n"
        "recv failed: [Errno 104] ECONNRESET: Connection reset by peer (ConnectionResetError)\n"
        "recv returned b''\n"
        "send failed: [Errno 32] EPIPE: Broken pipe (BrokenPipeError)\n"
    )
    assert table(record.final) == [LISTENER] and record.leftover == []


def check_reply_read_first(record: Record) -> None:
    assert table(record.snapshot("server:received")) == [LISTENER, ("server", "ESTABLISHED", 7, 0), ("client", "ESTABLISHED", 0, 0)]
    assert table(record.snapshot("client:received")) == [LISTENER, ("server", "ESTABLISHED", 7, 0), ("client", "ESTABLISHED", 0, 0)]
    assert fact(record, "client:received", "nbytes") == 20000
    assert fact(record, "client:received", "error") is None
    assert table(record.snapshot("server:closed")) == [LISTENER]
    # The reset is reported once, to the next call; the one after that gets EPIPE.
    assert error(record, "client:received again") == "ECONNRESET"
    assert error(record, "client:sent again") == "EPIPE"
    assert table(record.final) == [LISTENER] and record.leftover == []


STORIES = {"reply-unsent": check_reply_unsent, "reply-read-first": check_reply_read_first}


@pytest.mark.parametrize("run", list(STORIES))
def test_story(lab_run, run):
    record = lab_run(load_experiment("unread-close"), run)
    STORIES[run](record)
    assert record.programs["server"].stdout.splitlines()[1:] == ["request: b'Hello'", "sent 20000 bytes", "closed"]


@pytest.mark.parametrize("run", list(STORIES))
def test_repeated_runs_capture_the_same(lab_run, run):
    assert_repeats_the_same(lab_run, load_experiment("unread-close"), run, STORIES[run])
