"""lab/sockets.py read_zero_window_sockets(): data that waits only for the peer's window to open.

On real loopback sockets: a receiver with a small buffer that does not read
closes its window; the sender's queued data (and, after close(), its FIN)
then waits with nothing in flight.  Those sockets, and only those, are
reported, and the coordinator counts them as quiet.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from lab.sockets import Endpoint, read_table, read_zero_window_sockets

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tcp_info through sock_diag is Linux's")


def _until(condition: Callable[[], object], what: str, timeout: float = 3.0) -> object:
    """Poll ``condition`` until it is truthy (bounded): the kernel settles in a few milliseconds."""
    end = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < end, f"not within {timeout} s: {what}"
    return result


def _ends(sock: socket.socket) -> tuple[Endpoint, Endpoint]:
    local, remote = sock.getsockname(), sock.getpeername()
    return Endpoint(local[0], local[1]), Endpoint(remote[0], remote[1])


@contextmanager
def _pair(receive_buffer: int) -> Iterator[tuple[socket.socket, socket.socket]]:
    """(sender, receiver): the receiver's small buffer is set before connecting, so its window stays small."""
    with socket.socket() as listener, socket.socket() as receiver:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        receiver.connect(listener.getsockname())
        sender, _ = listener.accept()
        with sender:
            yield sender, receiver


def _send_q(ends: tuple[Endpoint, Endpoint]) -> int | None:
    rows = [s for s in read_table().sockets if (s.local, s.remote) == ends]
    return rows[0].send_q if rows else None


def test_data_behind_a_zero_window_is_reported_and_idle_data_is_not() -> None:
    with _pair(4096) as (sender, receiver):
        ends = _ends(sender)
        assert ends not in read_zero_window_sockets()  # nothing queued: not "waiting", just idle
        sender.sendall(b"x" * 20000)  # far more than the receiver's window
        _until(lambda: ends in read_zero_window_sockets(), "the sender's data waits for the window")
        assert (_send_q(ends) or 0) > 0
        assert _ends(receiver) not in read_zero_window_sockets()  # the receiver sends nothing
        # The receiver reads everything: the window opens, the data goes, nothing waits any more.
        received = 0
        while received < 20000:
            received += len(receiver.recv(65536))
        _until(lambda: _send_q(ends) == 0, "the sender's queue to empty")
        assert ends not in read_zero_window_sockets()


def test_a_fin_queued_behind_a_zero_window_is_reported() -> None:
    """close() with data still queued: FIN_WAIT1, with the FIN waiting behind the data, not in flight."""
    with _pair(4096) as (sender, receiver):
        ends = _ends(sender)
        sender.sendall(b"x" * 20000)
        _until(lambda: ends in read_zero_window_sockets(), "the sender's data waits for the window")
        sender.close()
        rows = _until(lambda: [s for s in read_table().sockets if (s.local, s.remote) == ends and s.state == "FIN_WAIT1"], "FIN_WAIT1")
        assert ends in read_zero_window_sockets()
        assert rows[0].send_q == 20000 - 4096 + 1  # the unsent bytes and the FIN: measured on 6.18, see docs/catalogue/linger.md


def test_data_in_flight_is_not_reported() -> None:
    """A receiver with room acknowledges at once; a sender with unacknowledged data is never in the set."""
    with _pair(1 << 20) as (sender, receiver):
        ends = _ends(sender)
        sender.sendall(b"x" * 1000)
        _until(lambda: _send_q(ends) == 0, "the data to be acknowledged")
        assert ends not in read_zero_window_sockets()
