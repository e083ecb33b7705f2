"""The time-wait experiment: the end that closes first waits in TIME_WAIT, 60 s, and what that blocks.

Also, outside the lab, the Linux rule behind the restart: a TIME_WAIT left by a
socket without SO_REUSEADDR blocks bind() on its port even for a socket that
sets SO_REUSEADDR.
"""

from __future__ import annotations

import errno
import socket
import time

import pytest
from lab.record import Record
from lab.schedule import load_experiment
from lab.sockets import read_table
from lab_helpers import (
    LISTENER,
    assert_repeats_the_same,
    fact,
    table,
)

EXPERIMENT = "time-wait"


def timers(record: Record, at: str) -> dict[str, int | None]:
    snapshot = record.snapshot(at)
    assert snapshot is not None
    return {row.role: row.expires for row in snapshot.sockets}


def check_server_closes_first(record: Record) -> None:
    assert table(record.snapshot("server:accepted")) == [LISTENER, ("server", "ESTABLISHED", 0, 0), ("client", "ESTABLISHED", 0, 0)]
    assert table(record.snapshot("client:connected")) == [LISTENER, ("server", "FIN_WAIT2", 0, 0), ("client", "CLOSE_WAIT", 1, 0)]
    assert table(record.snapshot("client:closed")) == [LISTENER, ("server", "TIME_WAIT", 0, 0)]
    # The server's end waits 60 s (TCP_TIMEWAIT_LEN), whole seconds rounded up.
    assert timers(record, "client:closed") == {"listener": None, "server": 60}
    assert table(record.snapshot("server:stopped")) == [("server", "TIME_WAIT", 0, 0)]
    # Restarting: a plain bind() fails while the server's own port is in TIME_WAIT ...
    error = fact(record, "server:bind failed", "error")["exception"]
    assert (error["type"], error["errno_name"]) == ("OSError", "EADDRINUSE")
    # ... and one with SO_REUSEADDR works.
    assert table(record.snapshot("server:listening again")) == [LISTENER, ("server", "TIME_WAIT", 0, 0)]
    assert record.programs["server"].stdout.splitlines()[-2:] == [
        "bind failed: [Errno 98] EADDRINUSE: Address already in use (OSError)",
        "listening again, with SO_REUSEADDR",
    ]
    assert [(row.role, row.state) for row in record.leftover] == [("server", "TIME_WAIT")]


def check_client_closes_first(record: Record) -> None:
    assert table(record.snapshot("client:closed")) == [LISTENER, ("server", "CLOSE_WAIT", 1, 0), ("client", "FIN_WAIT2", 0, 0)]
    assert table(record.snapshot("server:closed")) == [LISTENER, ("client", "TIME_WAIT", 0, 0)]
    assert timers(record, "server:closed") == {"listener": None, "client": 60}
    # The TIME_WAIT holds the client's port, not the server's: a plain bind() works.
    assert record.event("server:bind failed") is None
    assert table(record.snapshot("server:listening again")) == [LISTENER, ("client", "TIME_WAIT", 0, 0)]
    assert record.programs["server"].stdout.splitlines()[-1] == "listening again"
    assert [(row.role, row.state) for row in record.leftover] == [("client", "TIME_WAIT")]


STORIES = {"server-closes-first": check_server_closes_first, "client-closes-first": check_client_closes_first}


@pytest.mark.parametrize("run", list(STORIES))
def test_story(lab_run, run):
    record = lab_run(load_experiment(EXPERIMENT), run)
    STORIES[run](record)
    assert record.programs["client"].stdout == "closed\n"
    assert (record.programs["client"].exit_status, record.programs["server"].exit_status) == (0, -9)
    assert Record.from_json(record.to_json()) == record


@pytest.mark.parametrize("run", list(STORIES))
def test_repeated_runs_capture_the_same(lab_run, run):
    assert_repeats_the_same(lab_run, load_experiment(EXPERIMENT), run, STORIES[run])


def _time_wait_on_server_port(old_reuse: bool) -> int:
    """A server end in TIME_WAIT on a port nobody listens on any more; returns the port."""
    listener = socket.socket()
    if old_reuse:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server's end closes first ...
    client.close()
    listener.close()
    end = time.monotonic() + 3
    while not any(s.state == "TIME_WAIT" and s.local.port == port for s in read_table().sockets):
        assert time.monotonic() < end, "no TIME_WAIT at the server's end"
    return port


def _bind_error(port: int, reuse: bool) -> int | None:
    with socket.socket() as again:
        if reuse:
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            again.bind(("127.0.0.1", port))
        except OSError as error:
            return error.errno
    return None


@pytest.mark.parametrize(
    "old_reuse, new_reuse, expected",
    [
        (False, False, errno.EADDRINUSE),
        (False, True, errno.EADDRINUSE),  # SO_REUSEADDR on the new socket alone is not enough on Linux
        (True, False, errno.EADDRINUSE),
        (True, True, None),
    ],
    ids=["neither", "new-only", "old-only", "both"],
)
def test_bind_over_time_wait_needs_so_reuseaddr_on_both_sockets(old_reuse, new_reuse, expected):
    """inet_bind_conflict(): a TIME_WAIT conflicts unless it and the new socket both have sk_reuse."""
    port = _time_wait_on_server_port(old_reuse)
    assert _bind_error(port, new_reuse) == expected


def test_which_python_servers_set_so_reuseaddr():
    """What the time-wait page says of Python's servers (POSIX)."""
    import http.server
    import socketserver
    import xmlrpc.server

    assert socketserver.TCPServer.allow_reuse_address is False
    assert http.server.HTTPServer.allow_reuse_address
    assert xmlrpc.server.SimpleXMLRPCServer.allow_reuse_address
    with socket.create_server(("127.0.0.1", 0)) as server:
        assert server.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
    with socket.socket() as plain:
        assert plain.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0


def test_asyncio_create_server_sets_so_reuseaddr():
    import asyncio

    async def listen() -> int:
        server = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
        try:
            return server.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(listen()) == 1
