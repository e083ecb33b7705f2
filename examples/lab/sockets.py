"""Read the machine's TCP socket table, the way ``netstat -tan`` shows it.

On Linux the table comes straight from ``/proc/net/tcp`` and ``/proc/net/tcp6``:
the same numbers netstat prints, including Recv-Q and Send-Q, read without
starting another program.  Elsewhere we fall back to parsing ``netstat -an``
(BSD/macOS layout), and when even that is missing the reader says so instead of
failing: a capture then simply has no tables, and says why.

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

import ipaddress
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TableReading:
    """The sockets, plus where they came from (or why there are none)."""

    sockets: tuple[TcpSocket, ...]
    source: str
    available: bool = True


class SocketTableUnavailable(RuntimeError):
    """This system offers no way to read the TCP table."""


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
    packed = b"".join(words)
    address = ipaddress.ip_address(packed)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # an IPv4 peer of a dual-stack socket
    return Endpoint(str(address), int(port_hex, 16))


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


def read_table() -> TableReading:
    """Read every TCP socket of this network namespace."""
    proc = Path("/proc/net/tcp")
    if proc.exists():
        rows = parse_proc_net_tcp(proc.read_text())
        proc6 = Path("/proc/net/tcp6")
        if proc6.exists():
            rows += parse_proc_net_tcp(proc6.read_text())
        return TableReading(tuple(rows), "/proc/net/tcp")
    netstat = shutil.which("netstat")
    if netstat:
        done = subprocess.run([netstat, "-an", "-p", "tcp"], capture_output=True, text=True, timeout=5, check=False)
        if done.returncode == 0:
            return TableReading(tuple(parse_bsd_netstat(done.stdout)), "netstat -an -p tcp")
    return TableReading((), "none: no /proc/net/tcp and no netstat on this system", available=False)
