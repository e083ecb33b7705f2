"""The fine-print experiment: four claims, each on a connection of its own.

The run on real sockets, its story checked table by table, and 20 runs in a
row giving the same normalised capture (the measured milliseconds, facts
named ``*_ms``, are left out by normalising; their ranges are checked here).
The third connection's close() lingers a whole second, so this file takes
about 30 s.
"""

from __future__ import annotations

from lab.record import Record
from lab.schedule import load_experiment
from lab_helpers import LISTENER, assert_repeats_the_same, fact, table


def error(record: Record, label: str) -> str | None:
    recorded = fact(record, label, "error")
    return recorded and recorded["exception"]["errno_name"]


def check_four_claims(record: Record) -> None:
    # 1. The reset's error goes to the first call that asks, SO_ERROR here, and only to it.
    assert table(record.snapshot("server:reset")) == [LISTENER]
    assert fact(record, "client:so_error", "so_error") == "ECONNRESET"
    assert fact(record, "client:received", "data") == {"bytes": "b''"}
    assert error(record, "client:send failed") == "EPIPE"
    # 2. SHUT_RDWR sends the FIN and keeps the unread bytes; the close() after it resets.
    assert table(record.snapshot("client:data queued"))[-1] == ("client", "ESTABLISHED", 12, 0)
    assert table(record.snapshot("client:shut_rdwr")) == [LISTENER, ("server", "CLOSE_WAIT", 1, 0), ("client", "FIN_WAIT2", 12, 0)]
    assert table(record.snapshot("client:closed")) == [LISTENER]
    assert [(p.sender, p.flags) for p in record.packets if p.step == "client:closed"] == [("client", ["RST", "ACK"])]
    # 3. shutdown() does not linger, close() does: milliseconds against a whole second.
    assert fact(record, "client:shut_wr", "shut_ms") <= 30
    assert table(record.snapshot("client:shut_wr"))[-1] == ("client", "FIN_WAIT1", 0, 15905)
    assert 1000 <= fact(record, "client:closed#2", "close_ms") <= 1300
    assert fact(record, "server:received#2", "nbytes") == 20000
    # 4. detach() sends nothing; os.close() of the descriptor sends the FIN.
    assert fact(record, "client:detached", "fileno") == -1
    assert [p for p in record.packets if p.step == "client:detached"] == []
    assert ("client", "FIN_WAIT2", 0, 0) in table(record.snapshot("client:closed descriptor"))
    assert table(record.final) == [LISTENER, ("client", "TIME_WAIT", 0, 0)]


def test_story(lab_run):
    check_four_claims(lab_run(load_experiment("fine-print"), "four-claims"))


def test_repeated_runs_capture_the_same(lab_run):
    assert_repeats_the_same(lab_run, load_experiment("fine-print"), "four-claims", check_four_claims)
