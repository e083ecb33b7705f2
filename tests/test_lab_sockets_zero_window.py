"""lab/sockets.py and the coordinator's quiet test: a socket held by its peer's zero window.

A sender whose peer advertises no room keeps its unsent bytes (and a FIN queued
behind them) for as long as the peer program does not read; the kernel runs
the zero-window probe timer meanwhile.  Both table readers report that timer,
and the coordinator counts such a socket as settled, not as in flight: the
simultaneous-close experiment's snapshots depend on it.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest
from lab.sockets import TIMER_ZERO_WINDOW_PROBE, TcpSocket, parse_proc_net_tcp, read_netlink_table

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timer codes are Linux's")


def _row(rows: list[TcpSocket], local_port: int, remote_port: int) -> TcpSocket | None:
    return next((r for r in rows if (r.local.port, r.remote.port) == (local_port, remote_port)), None)


@pytest.mark.parametrize("reader", ["netlink", "proc"])
def test_a_sender_facing_a_zero_window_shows_the_probe_timer(reader):
    read = read_netlink_table if reader == "netlink" else lambda: parse_proc_net_tcp(Path("/proc/net/tcp").read_text())
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the smallest window, inherited
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            with accepted:
                client_port = client.getsockname()[1]
                idle = _row(read(), client_port, port)
                assert idle is not None and idle.timer != TIMER_ZERO_WINDOW_PROBE
                client.sendall(b"x" * 4000)  # the server never reads: most of it stays unsent
                client.shutdown(socket.SHUT_WR)  # and the FIN waits behind it
                deadline = time.monotonic() + 3
                while True:
                    row = _row(read(), client_port, port)
                    if row is not None and row.timer == TIMER_ZERO_WINDOW_PROBE:
                        break
                    assert time.monotonic() < deadline, row
                assert row.state == "FIN_WAIT1" and row.send_q > 0
                accepted.recv(65536)  # reading opens the window: the data flows, the timer stops
                deadline = time.monotonic() + 3
                while (row := _row(read(), client_port, port)) is not None and row.timer == TIMER_ZERO_WINDOW_PROBE:
                    assert time.monotonic() < deadline, row


def test_the_timer_is_not_part_of_a_rows_identity():
    """Rows compare as netstat shows them; the timer is extra information."""
    a = parse_proc_net_tcp(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt\n"
        "   0: 0100007F:C358 0100007F:D2F0 04 00000B21:00000480 04:00000062 00000003\n"
    )
    assert a[0].timer == 4 and a[0].send_q == 0xB21 and a[0].recv_q == 0x480
    assert a[0] == TcpSocket(a[0].local, a[0].remote, "FIN_WAIT1", 0x480, 0xB21)
