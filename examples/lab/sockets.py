"""Read the machine's TCP socket table, the way ``netstat -tan`` shows it.

Sources, tried in this order (``TableReading.source`` says which one answered):

1. Linux ``NETLINK_SOCK_DIAG`` (inet_diag, what ``ss`` reads): one dump request
   per address family, answered from the kernel's socket hashes.  It gives the
   same state and queue numbers as ``/proc/net/tcp`` (see
   ``_row_from_inet_diag()`` for the one place they differ and how it is
   evened out), and costs well under a millisecond for both families where
   reading each ``/proc`` file costs several (measured on a 6.18 kernel: about
   0.4 ms against 4.5 ms per file, nearly all of it spent in the kernel).  A
   snapshot re-reads the table until two readings agree, so this was most of
   a run's time.
2. ``/proc/net/tcp`` and ``/proc/net/tcp6``, when netlink is unavailable or
   fails (no ``AF_NETLINK``, ``tcp_diag`` not loadable, a sandbox refusing the
   socket): the same numbers netstat prints, read without starting another
   program.
3. Elsewhere ``netstat -an`` (BSD/macOS layout), and when even that is missing
   the reader says so instead of failing: a capture then simply has no tables,
   and says why.

What the two queues mean (Linux, ``get_tcp4_sock()`` in net/ipv4/tcp_ipv4.c):

* LISTEN sockets: Recv-Q is the number of connections waiting in the accept
  queue; Send-Q is 0 here (``ss`` shows the backlog limit instead).
* Every other state: Recv-Q is ``rcv_nxt - copied_seq``, the sequence space
  received but not yet read by the program.  A FIN takes one sequence number,
  so an unread FIN counts as one byte: 12 unread bytes plus a FIN show as 13.
  Send-Q is ``write_seq - snd_una``, bytes sent (or queued) but not yet
  acknowledged by the peer.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Kernel state numbers, from include/net/tcp_states.h.
LINUX_STATES = {
    0x01: "ESTABLISHED",
    0x02: "SYN_SENT",
    0x03: "SYN_RECV",
    0x04: "FIN_WAIT1",
    0x05: "FIN_WAIT2",
    0x06: "TIME_WAIT",
    0x07: "CLOSE",
    0x08: "CLOSE_WAIT",
    0x09: "LAST_ACK",
    0x0A: "LISTEN",
    0x0B: "CLOSING",
    0x0C: "NEW_SYN_RECV",
}

# States in which a segment is still waiting for the peer's answer.  While any
# socket of an experiment is in one of them the network is not quiet yet.
AWAITING_PEER = frozenset({"SYN_SENT", "SYN_RECV", "NEW_SYN_RECV", "FIN_WAIT1", "CLOSING", "LAST_ACK"})

# The kernel's timer codes (``tr`` in /proc/net/tcp, ``idiag_timer`` in sock_diag):
# 4 is the zero-window probe (ICSK_TIME_PROBE0).  It runs when the socket has
# data (or a FIN) to send and the peer advertises no room for it: what the
# socket waits for then is the peer *program* reading, not the network.
TIMER_ZERO_WINDOW_PROBE = 4


@dataclass(frozen=True, order=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        if self.port == 0 and self.host in ("0.0.0.0", "::"):
            return f"{self.host}:*" if ":" not in self.host else "[::]:*"
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class TcpSocket:
    """One row of the table."""

    local: Endpoint
    remote: Endpoint
    state: str
    recv_q: int
    send_q: int
    # The kernel's timer code (see TIMER_ZERO_WINDOW_PROBE); not part of what netstat shows,
    # so not compared either.
    timer: int = field(default=0, compare=False)


@dataclass(frozen=True)
class TableReading:
    """The sockets, plus where they came from (or why there are none)."""

    sockets: tuple[TcpSocket, ...]
    source: str
    available: bool = True


def _decode_proc_address(text: str) -> Endpoint:
    """Decode ``0100007F:C358`` (IPv4) or the 32-hex-digit IPv6 form.

    The kernel prints the address as host-order 32-bit words, so each word's
    bytes are reversed on little-endian machines; the port is plain hex.
    """
    addr_hex, port_hex = text.split(":")
    raw = bytes.fromhex(addr_hex)
    words = [raw[i : i + 4] for i in range(0, len(raw), 4)]
    if sys.byteorder == "little":
        words = [w[::-1] for w in words]
    return Endpoint(_address_text(b"".join(words)), int(port_hex, 16))


@functools.lru_cache(maxsize=1024)
def _address_text(packed: bytes) -> str:
    """Network-order address bytes (4 or 16) as netstat prints them.

    Shared by the ``/proc`` and netlink readers so both spell every address the
    same way (``ipaddress``'s spelling, not ``inet_ntop``'s, which differs for
    ``::a.b.c.d``).  Cached: a table repeats the same few addresses, and a run
    reads the table many times.
    """
    address = ipaddress.ip_address(packed)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # an IPv4 peer of a dual-stack socket
    return str(address)


def parse_proc_net_tcp(text: str) -> list[TcpSocket]:
    """Parse the contents of ``/proc/net/tcp`` or ``/proc/net/tcp6``."""
    sockets = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5:
            continue
        tx_queue, rx_queue = fields[4].split(":")
        sockets.append(
            TcpSocket(
                local=_decode_proc_address(fields[1]),
                remote=_decode_proc_address(fields[2]),
                state=LINUX_STATES.get(int(fields[3], 16), f"UNKNOWN({fields[3]})"),
                recv_q=int(rx_queue, 16),
                send_q=int(tx_queue, 16),
                timer=int(fields[5].split(":")[0], 16) if len(fields) > 5 else 0,
            )
        )
    return sockets


_BSD_ADDRESS = re.compile(r"^(?P<host>.*)\.(?P<port>\d+|\*)$")
_BSD_STATES = {"FIN_WAIT_1": "FIN_WAIT1", "FIN_WAIT_2": "FIN_WAIT2", "SYN_RCVD": "SYN_RECV", "CLOSED": "CLOSE"}


def _decode_bsd_address(text: str) -> Endpoint:
    match = _BSD_ADDRESS.match(text)
    if not match:
        raise ValueError(f"unexpected netstat address {text!r}")
    host = match["host"].replace("*", "0.0.0.0")
    if host == "localhost":
        host = "127.0.0.1"
    port = 0 if match["port"] == "*" else int(match["port"])
    return Endpoint(host, port)


def parse_bsd_netstat(text: str) -> list[TcpSocket]:
    """Parse ``netstat -an -p tcp`` as printed by macOS and the BSDs.

    Rows look like ``tcp4  0  0  127.0.0.1.50008  127.0.0.1.51234  ESTABLISHED``.
    """
    sockets = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or not fields[0].startswith("tcp"):
            continue
        try:
            local, remote = _decode_bsd_address(fields[3]), _decode_bsd_address(fields[4])
        except ValueError:
            continue
        state = _BSD_STATES.get(fields[5], fields[5])
        sockets.append(TcpSocket(local, remote, state, int(fields[1]), int(fields[2])))
    return sockets


# -- Linux: NETLINK_SOCK_DIAG (inet_diag) --------------------------------------
#
# Constants from include/uapi/linux/{netlink,sock_diag,inet_diag}.h.  The socket
# module has AF_NETLINK and NETLINK_* for some protocols, but not all of these.
_NETLINK_SOCK_DIAG = 4  # NETLINK_INET_DIAG, renamed NETLINK_SOCK_DIAG
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x01
_NLM_F_DUMP_INTR = 0x10  # the dump raced with a change and may be inconsistent
_NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
_NLMSG_NOOP, _NLMSG_ERROR, _NLMSG_DONE = 1, 2, 3

# struct nlmsghdr: length, type, flags, sequence number, port id (host order).
_NLMSGHDR = struct.Struct("=IHHII")
# struct inet_diag_req_v2: family, protocol, extensions, pad, states bitmask, then
# struct inet_diag_sockid (ports big-endian, addresses in network order,
# interface, cookie), all zero: we ask for every socket, not one.
_INET_DIAG_REQ_V2 = struct.Struct("=BBBxI48x")
# struct inet_diag_msg: family, state, timer, retrans (skipped); inet_diag_sockid (source
# and destination port big-endian, then the two 16-byte addresses in network
# order; interface and cookie skipped); expires, rqueue, wqueue, uid, inode.
_INET_DIAG_MSG_HEAD = struct.Struct("=BBBx")
_INET_DIAG_PORTS = struct.Struct("!HH")
_INET_DIAG_QUEUES = struct.Struct("=4xII8x")  # expires skipped; rqueue, wqueue; uid, inode skipped
_INET_DIAG_MSG_SIZE = 72
_NLMSGERR = struct.Struct("=i")

# The states whose sockets /proc/net/tcp lists: bits 1 (ESTABLISHED) to 12
# (NEW_SYN_RECV).  Not all 32 bits: since Linux 6.5 bit 13 (TCP_BOUND_INACTIVE)
# also dumps sockets that are only bound, which /proc (and netstat) never show.
_PROC_STATES_MASK = sum(1 << state for state in LINUX_STATES)
_TCP_LISTEN = 0x0A

# A dump answer is at most a few pages per datagram; a buffer bigger than any
# of them avoids truncation (checked anyway, through MSG_TRUNC).
_RECV_BUFFER = 1 << 17
# The kernel answers a dump at once; a reply that takes longer is a failure
# (and /proc is read instead), never a hang of the whole run.
_NETLINK_TIMEOUT = 2.0


def _align4(length: int) -> int:
    return (length + 3) & ~3  # NLMSG_ALIGN


def _dump_inet_diag(sock: socket.socket, family: int, seq: int) -> list[TcpSocket]:
    """Send one SOCK_DIAG_BY_FAMILY dump request for TCP in ``family``; collect every answer.

    A dump comes back as any number of datagrams, each holding several
    messages (flagged NLM_F_MULTI), until a NLMSG_DONE, read however many
    datagrams that takes; a NLMSG_ERROR instead carries a
    negative errno (e.g. ENOENT when no inet_diag handler can be loaded).
    """
    payload = _INET_DIAG_REQ_V2.pack(family, socket.IPPROTO_TCP, 0, _PROC_STATES_MASK)
    header = _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP, seq, 0)
    sock.sendto(header + payload, (0, 0))  # port id 0: the kernel
    rows: list[TcpSocket] = []
    while True:
        data, _, msg_flags, _ = sock.recvmsg(_RECV_BUFFER)
        if msg_flags & socket.MSG_TRUNC:
            raise OSError(errno.EMSGSIZE, "sock_diag answer larger than the receive buffer")
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, kind, flags, msg_seq, _ = _NLMSGHDR.unpack_from(data, offset)
            if length < _NLMSGHDR.size or offset + length > len(data):
                raise OSError(errno.EBADMSG, f"malformed netlink message (length {length})")
            body = offset + _NLMSGHDR.size
            next_offset = offset + _align4(length)
            if msg_seq != seq or kind == _NLMSG_NOOP:
                offset = next_offset  # not an answer to this request
                continue
            if flags & _NLM_F_DUMP_INTR:
                # Tables changed under the dump.  The caller falls back to /proc for
                # this reading; the snapshot's "two readings agree" covers the race.
                raise OSError(errno.EINTR, "sock_diag dump interrupted")
            if kind == _NLMSG_DONE:
                return rows
            if kind == _NLMSG_ERROR:
                (error,) = _NLMSGERR.unpack_from(data, body)
                if error == 0:  # an acknowledgement, not an error
                    offset = next_offset
                    continue
                raise OSError(-error, f"sock_diag: {os.strerror(-error)}")
            if kind == _SOCK_DIAG_BY_FAMILY and length - _NLMSGHDR.size >= _INET_DIAG_MSG_SIZE:
                rows.append(_row_from_inet_diag(data, body))
            offset = next_offset


def _row_from_inet_diag(data: bytes, at: int) -> TcpSocket:
    """One ``struct inet_diag_msg`` at ``data[at:]``, as the ``/proc/net/tcp`` row it matches.

    The kernel fills the two from the same fields (``tcp_diag_get_info()`` and
    ``get_tcp4_sock()``), with one difference: for a LISTEN socket both give
    Recv-Q = ``sk_ack_backlog`` (the accept queue), but inet_diag puts the
    backlog limit in ``idiag_wqueue`` where /proc prints ``write_seq - snd_una``,
    always 0 for a listener.  Send-Q is set to 0 here so the tables read the
    same whichever source answered (``ss`` shows the limit; netstat does not).
    TIME_WAIT mini-sockets come with their ``tw_substate`` (TIME_WAIT, or
    FIN_WAIT2 for an orphaned FIN_WAIT2 socket) and request sockets as
    SYN_RECV, with 0 queues: exactly what /proc prints for them.
    """
    family, state, timer = _INET_DIAG_MSG_HEAD.unpack_from(data, at)
    sport, dport = _INET_DIAG_PORTS.unpack_from(data, at + 4)
    size = 4 if family == socket.AF_INET else 16  # an IPv4 address fills only the first word
    src = data[at + 8 : at + 8 + size]
    dst = data[at + 24 : at + 24 + size]
    recv_q, send_q = _INET_DIAG_QUEUES.unpack_from(data, at + 52)
    if state == _TCP_LISTEN:
        send_q = 0  # the backlog limit, which /proc and netstat do not show
    return TcpSocket(
        local=Endpoint(_address_text(src), sport),
        remote=Endpoint(_address_text(dst), dport),
        state=LINUX_STATES.get(state, f"UNKNOWN({state:02X})"),
        recv_q=recv_q,
        send_q=send_q,
        timer=timer,
    )


def read_netlink_table() -> list[TcpSocket]:
    """Every TCP socket of this network namespace, IPv4 then IPv6, from NETLINK_SOCK_DIAG.

    Raises OSError (or AttributeError where there is no ``AF_NETLINK``) when
    the kernel will not answer; ``read_table()`` then reads ``/proc``.
    """
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, _NETLINK_SOCK_DIAG) as sock:
        sock.settimeout(_NETLINK_TIMEOUT)
        rows = _dump_inet_diag(sock, socket.AF_INET, 1)
        if socket.has_ipv6:
            rows += _dump_inet_diag(sock, socket.AF_INET6, 2)
        return rows


NETLINK_SOURCE = "netlink sock_diag (what ss reads)"
PROC_SOURCE = "/proc/net/tcp"


def read_table() -> TableReading:
    """Read every TCP socket of this network namespace (see the module docstring for the sources)."""
    if sys.platform.startswith("linux"):
        try:
            return TableReading(tuple(read_netlink_table()), NETLINK_SOURCE)
        except (OSError, AttributeError, struct.error):
            pass  # no netlink here, or it failed: /proc has the same numbers, only slower
    proc = Path("/proc/net/tcp")
    if proc.exists():
        rows = parse_proc_net_tcp(proc.read_text())
        proc6 = Path("/proc/net/tcp6")
        if proc6.exists():
            rows += parse_proc_net_tcp(proc6.read_text())
        return TableReading(tuple(rows), PROC_SOURCE)
    netstat = shutil.which("netstat")
    if netstat:
        done = subprocess.run([netstat, "-an", "-p", "tcp"], capture_output=True, text=True, timeout=5, check=False)
        if done.returncode == 0:
            return TableReading(tuple(parse_bsd_netstat(done.stdout)), "netstat -an -p tcp")
    return TableReading((), "none: no /proc/net/tcp and no netstat on this system", available=False)
