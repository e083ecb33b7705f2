"""lab/sockets.py: the NETLINK_SOCK_DIAG reader gives exactly the rows /proc/net/tcp gives.

The live tests build each state of the note's story on real loopback sockets
(127.0.0.1, ::1, and an IPv4 peer of a dual-stack socket), wait for it with a
bounded poll, and compare the netlink reader's rows for those ports with the
/proc parser's.  The rest feed the netlink parser hand-made datagrams (several
messages per datagram, several datagrams, errors) and make netlink fail to see
read_table() fall back to /proc.
"""

from __future__ import annotations

import errno
import socket
import struct
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest
from lab import sockets as lab_sockets
from lab.sockets import (
    Endpoint,
    TcpSocket,
    parse_proc_net_tcp,
    read_netlink_table,
    read_table,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="NETLINK_SOCK_DIAG is Linux's")

Rows = list[TcpSocket]


def _proc_rows() -> Rows:
    rows = parse_proc_net_tcp(Path("/proc/net/tcp").read_text())
    if Path("/proc/net/tcp6").exists():
        rows += parse_proc_net_tcp(Path("/proc/net/tcp6").read_text())
    return rows


def _selected(rows: Rows, ours: Callable[[TcpSocket], bool]) -> Rows:
    # Sorted: the comparison is about each row's content; both sources happen to
    # walk the kernel's hashes in the same order, but nothing promises it.
    return sorted(filter(ours, rows), key=lambda r: (r.local, r.remote, r.state))


def _pair(port: int, client_port: int) -> Callable[[TcpSocket], bool]:
    """The listener on ``port`` and the two ends of the one connection from ``client_port``.

    Exact pairs, not "any row on these ports": a TIME_WAIT left by an earlier
    test may hold one of these port numbers for a minute.
    """
    ends = {(port, client_port), (client_port, port)}
    return lambda r: (r.local.port, r.remote.port) in ends or (r.state == "LISTEN" and r.local.port == port)


def _both_when(ours: Callable[[TcpSocket], bool], condition: Callable[[Rows], bool], what: str, timeout: float = 3.0) -> Rows:
    """Read both sources until each shows ``condition`` on our rows and they agree; return the rows.

    A bounded poll over the condition itself, never a sleep.  The two reads
    are not atomic, so a reading taken while the kernel was still moving is
    simply read again; a real difference persists and fails the test.
    """
    end = time.monotonic() + timeout
    while True:
        netlink = _selected(read_netlink_table(), ours)
        proc = _selected(_proc_rows(), ours)
        if condition(netlink) and condition(proc) and netlink == proc:
            return netlink
        if time.monotonic() > end:
            assert netlink == proc, f"netlink and /proc disagree about {what}"
            raise AssertionError(f"within {timeout} s the table never showed {what}; last reading:\n" + "\n".join(map(str, netlink)))


def _states(rows: Rows) -> list[tuple[str, int, int]]:
    return sorted((r.state, r.recv_q, r.send_q) for r in rows)


@pytest.mark.parametrize(
    ("family", "listen_at", "connect_to", "shown_as"),
    [
        (socket.AF_INET, "127.0.0.1", "127.0.0.1", "127.0.0.1"),
        (socket.AF_INET6, "::1", "::1", "::1"),
        # A dual-stack listener with an IPv4 peer: inet_diag reports it under
        # AF_INET6 with ::ffff:127.0.0.1, shown as plain IPv4 like /proc's rows.
        (socket.AF_INET6, "::ffff:127.0.0.1", "127.0.0.1", "127.0.0.1"),
    ],
    ids=["ipv4", "ipv6", "ipv4-mapped"],
)
def test_netlink_rows_equal_proc_rows_through_the_story(family: int, listen_at: str, connect_to: str, shown_as: str) -> None:
    with ExitStack() as stack:
        listener = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
        if family == socket.AF_INET6:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if listen_at.startswith("::ffff:") else 1)
        listener.bind((listen_at, 0))
        listener.listen(5)
        port = listener.getsockname()[1]
        client = stack.enter_context(socket.create_connection((connect_to, port)))
        client_port = client.getsockname()[1]
        ours = _pair(port, client_port)

        # LISTEN with one connection not accepted yet: Recv-Q 1 and, like /proc, Send-Q 0
        # (inet_diag's own idiag_wqueue would be the backlog limit, 5).
        rows = _both_when(
            ours,
            lambda rows: ("LISTEN", 1, 0) in _states(rows) and _states(rows).count(("ESTABLISHED", 0, 0)) == 2,
            "the connection waiting in the accept queue",
        )
        listening = [r for r in rows if r.state == "LISTEN"]
        nobody = "0.0.0.0" if family == socket.AF_INET else "::"  # a dual-stack listener's peer is ::, not mapped
        assert listening == [TcpSocket(Endpoint(shown_as, port), Endpoint(nobody, 0), "LISTEN", 1, 0)]

        conn, _ = listener.accept()
        stack.enter_context(conn)
        client.sendall(b"Hello, world")
        # ESTABLISHED with 12 unread bytes at the server end, nothing unacknowledged.
        rows = _both_when(
            ours,
            lambda rows: _states(rows) == [("ESTABLISHED", 0, 0), ("ESTABLISHED", 12, 0), ("LISTEN", 0, 0)],
            "12 unread bytes at the server end",
        )
        server = next(r for r in rows if r.local.port == port and r.state != "LISTEN")
        assert server == TcpSocket(Endpoint(shown_as, port), Endpoint(shown_as, client_port), "ESTABLISHED", 12, 0)

        # The client closes: its FIN makes 13 at the server end (CLOSE_WAIT); the
        # orphaned client end waits in FIN_WAIT2, a timewait mini-socket whose
        # substate inet_diag reports, as /proc does.
        client.close()
        _both_when(
            ours,
            lambda rows: _states(rows) == [("CLOSE_WAIT", 13, 0), ("FIN_WAIT2", 0, 0), ("LISTEN", 0, 0)],
            "CLOSE_WAIT with 13 and FIN_WAIT2",
        )

        # The server reads it all (closing with unread data would send a RST, not a FIN) ...
        assert conn.recv(1024) == b"Hello, world" and conn.recv(1024) == b""
        _both_when(
            ours,
            lambda rows: _states(rows) == [("CLOSE_WAIT", 0, 0), ("FIN_WAIT2", 0, 0), ("LISTEN", 0, 0)],
            "the server end's queue read empty",
        )
        # ... and closes: the client end goes to TIME_WAIT, the server end's is gone.
        conn.close()
        rows = _both_when(
            ours,
            lambda rows: _states(rows) == [("LISTEN", 0, 0), ("TIME_WAIT", 0, 0)],
            "TIME_WAIT at the client end",
        )
        assert [r.local for r in rows if r.state == "TIME_WAIT"] == [Endpoint(shown_as, client_port)]


def test_netlink_rows_equal_proc_rows_for_a_half_closed_pair() -> None:
    """shutdown(SHUT_WR), not close(): a full FIN_WAIT2 socket, and a FIN_WAIT1/CLOSE_WAIT never confused."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            conn, _ = listener.accept()
            with conn:
                client.sendall(b"abc")
                client.shutdown(socket.SHUT_WR)
                conn.sendall(b"unread by the client")
                _both_when(
                    _pair(port, client.getsockname()[1]),
                    lambda rows: _states(rows) == [("CLOSE_WAIT", 4, 0), ("FIN_WAIT2", 20, 0), ("LISTEN", 0, 0)],
                    "CLOSE_WAIT with 3 bytes + FIN, FIN_WAIT2 with 20 unread bytes",
                )


def test_netlink_reads_a_table_bigger_than_one_datagram() -> None:
    """250 connections, 501 sockets: a dump spread over several datagrams, all of it read."""
    pairs = 250
    with ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(pairs)
        port = listener.getsockname()[1]
        connections = [stack.enter_context(socket.create_connection(("127.0.0.1", port))) for _ in range(pairs)]
        clients = {c.getsockname()[1] for c in connections}
        rows = _both_when(
            lambda r: (r.local.port == port and r.remote.port in clients | {0}) or (r.remote.port == port and r.local.port in clients),
            lambda rows: len(rows) == 2 * pairs + 1 and ("LISTEN", pairs, 0) in _states(rows),
            f"{pairs} connections in the accept queue",
        )
        assert sum(r.state == "ESTABLISHED" for r in rows) == 2 * pairs


def test_read_table_uses_netlink_on_linux() -> None:
    reading = read_table()
    assert reading.available
    assert reading.source == "netlink sock_diag (what ss reads)"


def test_read_table_falls_back_to_proc_when_netlink_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> Rows:
        raise OSError(errno.EPROTONOSUPPORT, "no sock_diag here")

    monkeypatch.setattr(lab_sockets, "read_netlink_table", refuse)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        reading = read_table()
        assert reading.available and reading.source == "/proc/net/tcp"
        assert TcpSocket(Endpoint("127.0.0.1", port), Endpoint("0.0.0.0", 0), "LISTEN", 0, 0) in reading.sockets


# -- the dump parser on hand-made datagrams ----------------------------------------

_HEADER = struct.Struct("=IHHII")


def _message(kind: int, seq: int, payload: bytes, flags: int = 0x02) -> bytes:
    body = _HEADER.pack(_HEADER.size + len(payload), kind, flags, seq, 0) + payload
    return body + b"\0" * (-len(body) % 4)


def _diag(
    family: int,
    state: int,
    local: tuple[bytes, int],
    remote: tuple[bytes, int],
    rqueue: int,
    wqueue: int,
    timer: tuple[int, int] = (0, 0),
) -> bytes:
    """A struct inet_diag_msg (``timer``: idiag_timer, idiag_expires in ms), then an attribute the parser must skip."""
    sockid = struct.pack("!HH", local[1], remote[1]) + local[0].ljust(16, b"\0") + remote[0].ljust(16, b"\0") + bytes(12)
    msg = struct.pack("=BBBB", family, state, timer[0], 0) + sockid + struct.pack("=IIIII", timer[1], rqueue, wqueue, 1000, 4242)
    assert len(msg) == 72
    return msg + struct.pack("=HHB", 5, 8, 0) + b"\0\0\0"  # INET_DIAG_SHUTDOWN, padded


class _FakeNetlink:
    """Stands in for the netlink socket: records the request, hands out the given datagrams."""

    def __init__(self, datagrams: list[bytes], flags: int = 0) -> None:
        self.datagrams = list(datagrams)
        self.flags = flags
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, address: tuple[int, int]) -> int:
        self.sent.append(data)
        return len(data)

    def recvmsg(self, bufsize: int) -> tuple[bytes, list, int, tuple[int, int]]:
        return self.datagrams.pop(0), [], self.flags, (0, 0)


LOOPBACK = socket.inet_pton(socket.AF_INET, "127.0.0.1")
MAPPED = socket.inet_pton(socket.AF_INET6, "::ffff:127.0.0.1")


def test_dump_reads_multipart_answers_until_done() -> None:
    listen = _diag(socket.AF_INET, 0x0A, (LOOPBACK, 50008), (b"", 0), 2, 128)
    close_wait = _diag(socket.AF_INET, 0x08, (LOOPBACK, 50008), (LOOPBACK, 54000), 13, 0)
    time_wait = _diag(socket.AF_INET, 0x06, (LOOPBACK, 54000), (LOOPBACK, 50008), 0, 0)
    fake = _FakeNetlink(
        [
            _message(20, 7, listen) + _message(20, 7, close_wait),
            _message(20, 99, close_wait) + _message(1, 7, b""),  # another request's answer, a NOOP: skipped
            _message(20, 7, time_wait),
            _message(3, 7, struct.pack("=i", 0)),  # NLMSG_DONE
        ]
    )
    rows = lab_sockets._dump_inet_diag(fake, socket.AF_INET, 7)  # type: ignore[arg-type]
    assert rows == [
        # The listener's idiag_wqueue (the backlog limit, 128) is shown as 0, like /proc.
        TcpSocket(Endpoint("127.0.0.1", 50008), Endpoint("0.0.0.0", 0), "LISTEN", 2, 0),
        TcpSocket(Endpoint("127.0.0.1", 50008), Endpoint("127.0.0.1", 54000), "CLOSE_WAIT", 13, 0),
        TcpSocket(Endpoint("127.0.0.1", 54000), Endpoint("127.0.0.1", 50008), "TIME_WAIT", 0, 0),
    ]
    assert not fake.datagrams
    # The request: SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, then inet_diag_req_v2
    # asking for TCP in every state /proc lists (bits 1-12), and no more.
    [request] = fake.sent
    length, kind, flags, seq, _ = _HEADER.unpack_from(request)
    assert (length, kind, flags, seq) == (len(request), 20, 0x301, 7) and length == 16 + 56
    assert struct.unpack_from("=BBBxI", request, 16) == (socket.AF_INET, socket.IPPROTO_TCP, 0, 0x1FFE)


def test_dump_maps_ipv4_mapped_addresses_like_proc() -> None:
    row = _diag(socket.AF_INET6, 0x01, (MAPPED, 8080), (MAPPED, 42000), 12, 0)
    fake = _FakeNetlink([_message(20, 1, row) + _message(3, 1, struct.pack("=i", 0))])
    assert lab_sockets._dump_inet_diag(fake, socket.AF_INET6, 1) == [  # type: ignore[arg-type]
        TcpSocket(Endpoint("127.0.0.1", 8080), Endpoint("127.0.0.1", 42000), "ESTABLISHED", 12, 0)
    ]


@pytest.mark.parametrize(
    ("datagram", "recv_flags", "code"),
    [
        (_message(2, 1, struct.pack("=i", -errno.ENOENT) + bytes(16)), 0, errno.ENOENT),  # NLMSG_ERROR
        (_message(20, 1, bytes(72), flags=0x02 | 0x10), 0, errno.EINTR),  # NLM_F_DUMP_INTR
        (_message(3, 1, struct.pack("=i", 0)), socket.MSG_TRUNC, errno.EMSGSIZE),  # cut short
        (_HEADER.pack(64, 20, 2, 1, 0), 0, errno.EBADMSG),  # claims more than arrived
    ],
    ids=["nlmsg-error", "dump-interrupted", "truncated", "malformed"],
)
def test_dump_failures_raise_oserror(datagram: bytes, recv_flags: int, code: int) -> None:
    with pytest.raises(OSError) as raised:
        lab_sockets._dump_inet_diag(_FakeNetlink([datagram], recv_flags), socket.AF_INET, 1)  # type: ignore[arg-type]
    assert raised.value.errno == code


def test_a_failing_dump_falls_back_to_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's error (not just a missing function) takes read_table() to /proc."""

    real_dump = lab_sockets._dump_inet_diag

    def kernel_says_enoent(sock: socket.socket, family: int, seq: int) -> Rows:
        return real_dump(
            _FakeNetlink([_message(2, seq, struct.pack("=i", -errno.ENOENT) + bytes(16))]), family, seq  # type: ignore[arg-type]
        )

    monkeypatch.setattr(lab_sockets, "_dump_inet_diag", kernel_says_enoent)
    reading = read_table()
    assert reading.available and reading.source == "/proc/net/tcp"


def test_dump_reads_the_time_wait_timer_only() -> None:
    """idiag_timer 3 is the TIME_WAIT timer: its idiag_expires (ms) is kept, in whole seconds rounded up."""
    rows = [
        _diag(socket.AF_INET, 0x06, (LOOPBACK, 54000), (LOOPBACK, 50008), 0, 0, timer=(3, 59001)),
        _diag(socket.AF_INET, 0x05, (LOOPBACK, 54002), (LOOPBACK, 50008), 0, 0, timer=(3, 60000)),  # orphaned FIN_WAIT2
        _diag(socket.AF_INET, 0x06, (LOOPBACK, 54004), (LOOPBACK, 50008), 0, 0, timer=(3, 1)),
        _diag(socket.AF_INET, 0x01, (LOOPBACK, 54006), (LOOPBACK, 50008), 0, 26, timer=(1, 204)),  # retransmit
        _diag(socket.AF_INET, 0x01, (LOOPBACK, 54008), (LOOPBACK, 50008), 0, 0, timer=(2, 7200000)),  # keepalive
    ]
    fake = _FakeNetlink([b"".join(_message(20, 1, row) for row in rows) + _message(3, 1, struct.pack("=i", 0))])
    found = lab_sockets._dump_inet_diag(fake, socket.AF_INET, 1)  # type: ignore[arg-type]
    assert [(row.state, row.expires) for row in found] == [
        ("TIME_WAIT", 60),
        ("FIN_WAIT2", 60),
        ("TIME_WAIT", 1),
        ("ESTABLISHED", None),
        ("ESTABLISHED", None),
    ]


def test_time_wait_and_closed_fin_wait2_expire_in_60_seconds_by_both_sources() -> None:
    """Live: a FIN_WAIT2 end still open has no timer; closed, it is a mini-socket dropped within 60 s, as TIME_WAIT is."""
    with ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(2)
        port = listener.getsockname()[1]
        first = socket.create_connection(("127.0.0.1", port))
        stack.callback(first.close)
        accepted, _ = listener.accept()
        stack.enter_context(accepted)
        first_port = first.getsockname()[1]
        ours = _pair(port, first_port)
        first.shutdown(socket.SHUT_WR)
        rows = _both_when(ours, lambda rows: "FIN_WAIT2" in [r.state for r in rows], "FIN_WAIT2 after shutdown()")
        assert [r.expires for r in rows if r.state == "FIN_WAIT2"] == [None]
        first.close()
        rows = _both_when(
            ours,
            lambda rows: [r.expires for r in rows if r.state == "FIN_WAIT2"] == [60],
            "FIN_WAIT2 with a 60 s timer after close()",
        )
        accepted.close()  # our FIN answers it: the closed end goes to TIME_WAIT, a fresh 60 s
        rows = _both_when(ours, lambda rows: "TIME_WAIT" in [r.state for r in rows], "TIME_WAIT at the client end")
        assert [(r.local.port, r.expires) for r in rows if r.state == "TIME_WAIT"] == [(first_port, 60)]
