"""The shutdown-after-end experiment: what shutdown() raises once a connection is over."""

from __future__ import annotations

from lab.schedule import load_experiment
from lab_helpers import (
    LISTENER,
    assert_repeats_the_same,
    fact,
    table,
)


def error_name(record, label: str, name: str = "error") -> str | None:
    value = fact(record, label, name)
    return None if value is None else value["exception"]["errno_name"]


def check_story(record) -> None:
    assert error_name(record, "client:shutdown") == "ENOTCONN"  # after a reset
    assert error_name(record, "client:shutdown#2") is None  # in CLOSE_WAIT: it sends our FIN
    assert error_name(record, "client:shutdown#3") == "ENOTCONN"  # both FINs acknowledged
    assert error_name(record, "client:shutdown#4") == "ENOTCONN"  # in TIME_WAIT
    assert error_name(record, "client:shutdown#5") == "EBADF"  # after close()
    assert error_name(record, "client:skipped close") == "ENOTCONN"
    assert fact(record, "client:skipped close", "still_open") is True
    assert fact(record, "client:closed", "still_open") is False
    assert table(record.snapshot("server:ended")) == [LISTENER]  # the reset left nothing
    assert table(record.snapshot("server:ended#2")) == [LISTENER, ("server", "FIN_WAIT2", 0, 0), ("client", "CLOSE_WAIT", 1, 0)]
    assert table(record.snapshot("client:shutdown#2")) == [LISTENER, ("server", "TIME_WAIT", 0, 0)]
    assert table(record.snapshot("server:ended#3")) == [
        LISTENER,
        ("server", "TIME_WAIT", 0, 0),
        ("client", "TIME_WAIT", 0, 0),
    ]
    assert record.programs["client"].exit_status == 0


def test_repeated_runs_capture_the_same(lab_run):
    assert_repeats_the_same(lab_run, load_experiment("shutdown-after-end"), "after-the-end", check_story)
