"""The graceful experiment: a request ended with close() loses its reply; with shutdown(SHUT_WR) it does not.

The run on real sockets, its story checked table by table, and 20 runs in a
row giving the same normalised capture.
"""

from __future__ import annotations

from lab.schedule import load_experiment
from lab_helpers import (
    LISTENER,
    assert_repeats_the_same,
    fact,
    table,
)

RUN = "close-then-shutdown"
REQUEST_AND_FIN = len(b"send me the report") + 1


def check_story(record) -> None:
    # Ended with close(): to the server the request looks exactly as it will with shutdown().
    assert table(record.snapshot("server:accepted")) == [LISTENER, ("server", "CLOSE_WAIT", REQUEST_AND_FIN, 0), ("client", "FIN_WAIT2", 0, 0)]
    assert fact(record, "server:received", "data") == {"bytes": "b'send me the report'"}
    # The header is answered with a reset: both ends are gone, and the body's send fails with EPIPE.
    assert table(record.snapshot("server:sent header")) == [LISTENER]
    assert fact(record, "server:send failed", "error")["exception"]["errno_name"] == "EPIPE"
    # Ended with shutdown(SHUT_WR): the same states, and then the whole reply arrives.
    assert table(record.snapshot("client:shut_wr")) == [LISTENER, ("server", "CLOSE_WAIT", REQUEST_AND_FIN, 0), ("client", "FIN_WAIT2", 0, 0)]
    assert table(record.snapshot("server:sent body")) == [LISTENER, ("server", "CLOSE_WAIT", 0, 0), ("client", "FIN_WAIT2", 0, 0)]
    assert fact(record, "client:received", "nbytes") == 30019
    assert table(record.snapshot("client:received")) == [LISTENER, ("client", "TIME_WAIT", 0, 0)]
    assert table(record.final) == [LISTENER, ("client", "TIME_WAIT", 0, 0)]
    assert record.programs["client"].stdout == (
        "closed right after sending\nshut down for writing\nreceived 30019 bytes, then end of file\n"
    )
    server = [line for line in record.programs["server"].stdout.splitlines() if not line.startswith("Connected by")]
    assert server == [
        "request: b'send me the report'",
        "sent the header",
        "send failed: [Errno 32] EPIPE: Broken pipe (BrokenPipeError)",
        "request: b'send me the report'",
        "sent the header",
        "sent the body, 30000 bytes",
    ]


def test_story(lab_run):
    check_story(lab_run(load_experiment("graceful"), RUN))


def test_repeated_runs_capture_the_same(lab_run):
    assert_repeats_the_same(lab_run, load_experiment("graceful"), RUN, check_story)
