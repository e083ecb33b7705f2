"""The write-after-close experiment: writing to a peer that closed, then to one that aborted.

The run on real sockets, its story checked table by table, and 20 runs in a
row giving the same normalised capture.
"""

from __future__ import annotations

from lab.record import Record
from lab.schedule import load_experiment
from lab_helpers import (
    LISTENER,
    assert_repeats_the_same,
    fact,
    table,
)

RUN = "closed-then-aborted"


def error(record: Record, label: str) -> str:
    return fact(record, label, "error")["exception"]["errno_name"]


def check_story(record: Record) -> None:
    # After the client's close(): CLOSE_WAIT with the FIN unread (Recv-Q 1).
    assert table(record.snapshot("server:accepted")) == [LISTENER, ("server", "CLOSE_WAIT", 1, 0), ("client", "FIN_WAIT2", 0, 0)]
    assert fact(record, "server:sent", "bytes_sent") == 12  # accepted by the kernel...
    assert table(record.snapshot("server:sent")) == [LISTENER]  # ...and answered with a reset
    assert error(record, "server:sent again") == "EPIPE"
    assert fact(record, "server:received", "data") == {"bytes": "b''"}
    assert fact(record, "server:handler ended", "status") == -13
    # After the abort the server's socket is gone before its program does anything.
    assert table(record.snapshot("server:accepted#2")) == [LISTENER]
    assert error(record, "server:sent#2") == "ECONNRESET"
    assert error(record, "server:sent again#2") == "EPIPE"
    assert fact(record, "server:received#2", "data") == {"bytes": "b''"}
    assert fact(record, "server:handler ended#2", "status") == -13
    assert table(record.final) == [LISTENER] and record.leftover == []
    server = [line for line in record.programs["server"].stdout.splitlines() if not line.startswith("Connected by")]
    assert server == [
        "send returned 12",
        "send failed: [Errno 32] EPIPE: Broken pipe (BrokenPipeError)",
        "recv returned b''",
        "SIGPIPE restored to its default action",
        "handler killed by SIGPIPE: exit status -13",
        "send failed: [Errno 104] ECONNRESET: Connection reset by peer (ConnectionResetError)",
        "send failed: [Errno 32] EPIPE: Broken pipe (BrokenPipeError)",
        "recv returned b''",
        "SIGPIPE restored to its default action",
        "handler killed by SIGPIPE: exit status -13",
    ]
    assert "still alive" not in record.programs["server"].stdout
    assert record.programs["client"].stdout == "closed\naborted\n"


def test_story(lab_run):
    check_story(lab_run(load_experiment("write-after-close"), RUN))


def test_repeated_runs_capture_the_same(lab_run):
    assert_repeats_the_same(lab_run, load_experiment("write-after-close"), RUN, check_story)
