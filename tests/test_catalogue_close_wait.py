"""The close-wait experiment: CLOSE_WAIT lasts until the program closes; the peer's FIN_WAIT2 has a timer only once closed."""

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

EXPERIMENT = "close-wait"
HALF_CLOSED = [LISTENER, ("server", "CLOSE_WAIT", 13, 0), ("client", "FIN_WAIT2", 0, 0)]
READ_TO_END = [LISTENER, ("server", "CLOSE_WAIT", 0, 0), ("client", "FIN_WAIT2", 0, 0)]
ENDED = [LISTENER, ("client", "TIME_WAIT", 0, 0)]


def timers(record: Record, at: str) -> dict[str, int | None]:
    snapshot = record.snapshot(at)
    assert snapshot is not None
    return {row.role: row.expires for row in snapshot.sockets}


def check_common(record: Record) -> None:
    assert table(record.snapshot("server:accepted")) == HALF_CLOSED
    # Neither end has a timer: CLOSE_WAIT never has one; FIN_WAIT2 has none while its program holds it.
    assert timers(record, "server:accepted") == {"listener": None, "server": None, "client": None}
    assert fact(record, "server:received", "data") == {"bytes": "b'Hello, world'"}
    assert fact(record, "server:received#2", "data") == {"bytes": "b''"}
    assert table(record.final) == ENDED
    assert [(row.role, row.state) for row in record.leftover] == [("client", "TIME_WAIT")]
    assert record.programs["client"].stdout == "shut_wr\nclosed\n"
    assert record.programs["server"].stdout.splitlines()[1:] == ["received b'Hello, world'", "received b''", "closed"]
    assert (record.programs["client"].exit_status, record.programs["server"].exit_status) == (0, -9)


def check_client_closes_first(record: Record) -> None:
    check_common(record)
    assert table(record.snapshot("client:shut_wr")) == READ_TO_END
    assert timers(record, "client:shut_wr") == {"listener": None, "server": None, "client": None}
    # The client's close(): nothing changes for the server, and the client's FIN_WAIT2 now has
    # tcp_fin_timeout (60 s) to live; the server's CLOSE_WAIT still has no timer at all.
    assert table(record.snapshot("client:closed")) == READ_TO_END
    assert timers(record, "client:closed") == {"listener": None, "server": None, "client": 60}
    assert table(record.snapshot("server:received#2")) == READ_TO_END  # the client has finished
    # The server's close() at last: its FIN answers, the client's end goes to TIME_WAIT for 60 s.
    assert table(record.snapshot("server:closed")) == ENDED
    assert timers(record, "server:closed") == {"listener": None, "client": 60}


def check_server_closes_first(record: Record) -> None:
    check_common(record)
    assert table(record.snapshot("server:received#2")) == READ_TO_END
    # The client's program still holds its socket: its end goes to TIME_WAIT all the same.
    assert table(record.snapshot("server:closed")) == ENDED
    assert table(record.snapshot("client:closed")) == ENDED


STORIES = {"client-closes-first": check_client_closes_first, "server-closes-first": check_server_closes_first}


@pytest.mark.parametrize("run", list(STORIES))
def test_story(lab_run, run):
    record = lab_run(load_experiment(EXPERIMENT), run)
    STORIES[run](record)
    assert Record.from_json(record.to_json()) == record


@pytest.mark.parametrize("run", list(STORIES))
def test_repeated_runs_capture_the_same(lab_run, run):
    assert_repeats_the_same(lab_run, load_experiment(EXPERIMENT), run, STORIES[run])
