"""Capture the TCP segments of a run on the loopback interface, as tcpdump would.

Three layers, each usable alone:

* ``decode_frame()`` turns one link-layer frame, as a Linux ``AF_PACKET``
  socket on ``lo`` delivers it, into a ``Segment`` (raw numbers, absolute
  sequence numbers), or ``None`` for anything that is not a whole TCP header.
* ``LoopbackCapture`` is that socket: it keeps one copy of each segment, with
  the kernel's timestamp, and counts what the kernel dropped.
* ``PacketLog`` (and ``to_packets()``) turn the segments of one server port
  into ``lab.record.Packet`` rows: who sent them, relative sequence numbers,
  scaled windows, and the step each belongs to.

Only the headers matter here: a segment's payload length comes from the IP
header, so frames are read with a short snap length, like ``tcpdump -s``.
"""

from __future__ import annotations

import ctypes
import errno
import socket
import struct
import time as _time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from types import TracebackType
from typing import Self

from lab.record import FLAG_ORDER, Packet

# Linux constants the socket module does not export (include/uapi/linux/*.h).
ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35  # the "old" timespec layout: two native longs
SCM_TIMESTAMPNS = SO_TIMESTAMPNS

ETHERNET_HEADER = 14
IPPROTO_TCP = 6
# IPv6 extension headers that may stand between the fixed header and TCP.
IPV6_HOP_BY_HOP, IPV6_ROUTING, IPV6_FRAGMENT, IPV6_DEST_OPTIONS = 0, 43, 44, 60

# Bit of the TCP flags byte for each name (tcp[13]); FLAG_ORDER says the printing order.
FLAG_BITS = {"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10, "URG": 0x20, "ECE": 0x40, "CWR": 0x80}

# Enough for Ethernet + IPv6 with a few extension headers + 60 bytes of TCP.
SNAP_LENGTH = 1024
RECEIVE_BUFFER = 16 * 1024 * 1024  # a run's segments, with room to spare: a drop ruins the capture


@dataclass(frozen=True)
class Segment:
    """One TCP segment as it crossed the wire: absolute numbers, raw window."""

    time: float  # seconds since the epoch: the kernel's receive timestamp when there is one
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    ack: int  # the field as sent; meaningful only when "ACK" is in flags
    flags: tuple[str, ...]  # names from FLAG_ORDER, in that order
    window: int  # the 16-bit field, unscaled
    wscale: int | None  # the window-scale option (SYN segments only), else None
    length: int  # payload bytes, from the IP header
    # The frame as captured (cut at SNAP_LENGTH), for a pcap file: lab/pcap.py writes these.
    frame: bytes = field(default=b"", repr=False, compare=False)
    wire_length: int = field(default=0, compare=False)  # the whole frame's length, from the IP header
    stamp_ns: int = field(default=0, compare=False)  # ``time`` in nanoseconds, as the kernel gave it


def decode_frame(frame: bytes, time: float = 0.0, stamp_ns: int | None = None) -> Segment | None:
    """The TCP segment in an Ethernet frame from ``lo``, or None if it holds none.

    ``None`` also for non-first IP fragments (no TCP header in them) and for a
    frame cut short inside its headers; never an exception.  The frame may be
    longer than its IP packet (padding) or shorter (a snap length cut into the
    payload): the payload length is the IP header's word.
    """
    if len(frame) < ETHERNET_HEADER:
        return None
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    if ethertype == ETH_P_IP:
        found = _ipv4(frame, ETHERNET_HEADER)
    elif ethertype == ETH_P_IPV6:
        found = _ipv6(frame, ETHERNET_HEADER)
    else:
        return None
    if found is None:
        return None
    src, dst, tcp, ip_end = found
    segment = _tcp(frame, tcp, ip_end, src, dst, time)
    if segment is None:
        return None
    stamp = stamp_ns if stamp_ns is not None else round(time * 1e9)
    # A frame on lo ends with its IP packet (no trailer): ip_end is the length it had on the wire.
    return dataclass_replace(segment, frame=bytes(frame), wire_length=max(ip_end, len(frame)), stamp_ns=stamp)


def _ipv4(frame: bytes, at: int) -> tuple[str, str, int, int] | None:
    """(src, dst, offset of the TCP header, end of the IP packet) of an IPv4 packet."""
    if len(frame) < at + 20 or frame[at] >> 4 != 4:
        return None
    header = (frame[at] & 0x0F) * 4
    total, fragment, protocol = struct.unpack_from("!H2xH xB", frame, at + 2)
    if protocol != IPPROTO_TCP or fragment & 0x1FFF or header < 20 or total < header:
        return None  # not TCP, or a later fragment (its TCP header is in the first one)
    src = socket.inet_ntop(socket.AF_INET, frame[at + 12 : at + 16])
    dst = socket.inet_ntop(socket.AF_INET, frame[at + 16 : at + 20])
    return src, dst, at + header, at + total


def _ipv6(frame: bytes, at: int) -> tuple[str, str, int, int] | None:
    """(src, dst, offset of the TCP header, end of the IP packet) of an IPv6 packet."""
    if len(frame) < at + 40 or frame[at] >> 4 != 6:
        return None
    payload, next_header = struct.unpack_from("!HB", frame, at + 4)
    src = socket.inet_ntop(socket.AF_INET6, frame[at + 8 : at + 24])
    dst = socket.inet_ntop(socket.AF_INET6, frame[at + 24 : at + 40])
    end = at + 40 + payload
    at += 40
    while next_header != IPPROTO_TCP:
        if len(frame) < at + 8:
            return None
        if next_header in (IPV6_HOP_BY_HOP, IPV6_ROUTING, IPV6_DEST_OPTIONS):
            next_header, units = frame[at], frame[at + 1]
            at += (units + 1) * 8
        elif next_header == IPV6_FRAGMENT:
            (offset,) = struct.unpack_from("!H", frame, at + 2)
            if offset & 0xFFF8:
                return None  # a later fragment: no TCP header here
            next_header = frame[at]
            at += 8
        else:
            return None  # another protocol, or an extension this reader does not walk (AH, ESP)
    return (src, dst, at, end) if at <= end else None


def _tcp(frame: bytes, at: int, ip_end: int, src: str, dst: str, time: float) -> Segment | None:
    if len(frame) < at + 20:
        return None
    sport, dport, seq, ack, offset, bits, window = struct.unpack_from("!HHIIBBH", frame, at)
    header = (offset >> 4) * 4
    if header < 20 or len(frame) < at + header or ip_end < at + header:
        return None
    flags = tuple(name for name in FLAG_ORDER if bits & FLAG_BITS[name])
    wscale = _window_scale(frame[at + 20 : at + header])
    return Segment(time, src, sport, dst, dport, seq, ack, flags, window, wscale, ip_end - at - header)


def _window_scale(options: bytes) -> int | None:
    """The shift count of the window-scale option (kind 3), if the options carry one."""
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:  # end of options
            break
        if kind == 1:  # no-operation (padding)
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2:
            break  # malformed: stop rather than guess
        size = options[i + 1]
        if kind == 3 and size == 3 and i + 2 < len(options):
            return options[i + 2]
        i += size
    return None


# -- The capture socket --------------------------------------------------------------


class CaptureUnavailable(Exception):
    """Packet capture cannot work here; ``reason`` is one line for the reader."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _tcp_filter() -> bytes:
    """A classic BPF program keeping TCP (IPv4 first fragments, IPv6): a sock_filter array.

    The kernel then queues nothing else, so unrelated traffic on ``lo`` can
    neither fill the buffer nor cost a wake-up.  IPv6 packets with extension
    headers are kept for ``decode_frame()`` to sort out.  Jump offsets count
    from the next instruction.
    """
    ld_h, ld_b, jeq, jset, ret = 0x28, 0x30, 0x15, 0x45, 0x06  # BPF_LD|BPF_H|BPF_ABS, ...
    keep, drop = SNAP_LENGTH, 0  # bytes of the packet to queue
    program = [  # (code, jump if true, jump if false, k)
        (ld_h, 0, 0, 12),  # 0: ethertype
        (jeq, 0, 5, ETH_P_IP),  # 1: IPv4? else 7
        (ld_b, 0, 0, 23),  # 2: protocol
        (jeq, 0, 2, IPPROTO_TCP),  # 3: TCP? else 6 (drop)
        (ld_h, 0, 0, 20),  # 4: flags and fragment offset
        (jset, 0, 9, 0x1FFF),  # 5: a later fragment? 6 (drop), else 15 (keep)
        (ret, 0, 0, drop),  # 6
        (jeq, 1, 0, ETH_P_IPV6),  # 7: IPv6? 9, else 8 (drop)
        (ret, 0, 0, drop),  # 8
        (ld_b, 0, 0, 20),  # 9: next header
        (jeq, 4, 0, IPPROTO_TCP),  # 10..14: TCP, or an extension header: 15 (keep)
        (jeq, 3, 0, IPV6_HOP_BY_HOP),
        (jeq, 2, 0, IPV6_ROUTING),
        (jeq, 1, 0, IPV6_FRAGMENT),
        (jeq, 0, 1, IPV6_DEST_OPTIONS),
        (ret, 0, 0, keep),  # 15
        (ret, 0, 0, drop),  # 16
    ]
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


class LoopbackCapture:
    """Every TCP segment crossing ``lo`` from now on, each exactly once.

    On ``lo`` the kernel hands a packet socket each segment twice: leaving
    (``PACKET_OUTGOING``) and arriving (``PACKET_HOST``).  Like libpcap, this
    keeps the arriving copy: the one the receiving TCP is about to process.
    Its timestamp is the kernel's, taken as the segment entered the receive
    path, a microsecond or two after the leaving copy's.
    """

    def __init__(self, interface: str = "lo", receive_buffer: int = RECEIVE_BUFFER) -> None:
        if not hasattr(socket, "AF_PACKET"):
            raise CaptureUnavailable("no AF_PACKET on this system (packet capture here is Linux's)")
        try:
            # Protocol 0 receives nothing until bind(): the filter and the buffer
            # are in place before the first packet can be queued.
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise CaptureUnavailable(
                "packet capture needs CAP_NET_RAW (run as root, or in a user namespace)"
            ) from None
        except OSError as e:
            if e.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
                raise CaptureUnavailable("no AF_PACKET on this system (kernel without packet sockets)") from None
            raise CaptureUnavailable(f"cannot open a packet socket: {e.strerror or e}") from None
        # Frames the kernel dropped for want of room (either copy of a segment),
        # summed over drains: any at all means the capture is not the whole story.
        self.drops = 0
        self.timestamps = "kernel"  # or "time.time()" when the kernel gives none
        try:
            self._configure(receive_buffer)
            self._sock.bind((interface, ETH_P_ALL))  # Python puts the protocol in network order
        except OSError as e:
            self._sock.close()
            if e.errno == errno.ENODEV:
                raise CaptureUnavailable(f"no {interface} interface to capture on") from None
            raise CaptureUnavailable(f"cannot capture on {interface}: {e.strerror or e}") from None
        self._sock.setblocking(False)

    def _configure(self, receive_buffer: int) -> None:
        s = self._sock
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, receive_buffer)  # root may exceed rmem_max
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # capped at rmem_max
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            self.timestamps = "time.time()"
        code = _tcp_filter()
        program = ctypes.create_string_buffer(code, len(code))  # must live until setsockopt returns
        fprog = struct.pack("HP", len(code) // 8, ctypes.addressof(program))  # struct sock_fprog
        s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)

    def drain(self) -> list[Segment]:
        """The TCP segments queued now, in the order the kernel received them."""
        found: list[Segment] = []
        space = socket.CMSG_SPACE(struct.calcsize("@ll"))
        while True:
            try:
                frame, ancillary, _flags, address = self._sock.recvmsg(SNAP_LENGTH, space)
            except (BlockingIOError, InterruptedError):
                break
            if address[2] == PACKET_OUTGOING:
                continue  # the same segment arrives on lo right after; that copy is kept
            stamp = _timestamp_ns(ancillary)
            segment = decode_frame(frame, stamp / 1e9, stamp)
            if segment is not None:
                found.append(segment)
        self.drops += self._dropped_since_last_asked()
        return found

    def _dropped_since_last_asked(self) -> int:
        # struct tpacket_stats {unsigned tp_packets, tp_drops}; reading it resets it.
        raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        _packets, drops = struct.unpack("II", raw)
        return drops

    def fileno(self) -> int:
        """For selectors: readable when segments are queued."""
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _timestamp_ns(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The kernel's receive timestamp in nanoseconds since the epoch (now, if it gave none)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(data) >= struct.calcsize("@ll"):
            seconds, nanoseconds = struct.unpack_from("@ll", data)
            return seconds * 1_000_000_000 + nanoseconds
    return _time.time_ns()


# -- From segments to the record's packets ----------------------------------------------


Flow = tuple[str, int, str, int]  # (src, sport, dst, dport): one direction of one connection


class PacketLog:
    """The segments of a run's server port, kept across drains, each with its step.

    Numbering needs the whole connection: a sender's sequence numbers count
    from its SYN, an acknowledgement from the receiver's SYN, and the window
    is scaled by the shift the sender announced in its SYN.  So ``add()`` only
    keeps segments; ``packets()`` numbers them all.  Each direction of each
    connection (its addresses and ports) is numbered on its own, and a SYN
    starts the numbering afresh (a new connection reusing the same ports).
    """

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self._seen: list[tuple[Segment, str]] = []
        self.connection_ports: dict[int, int] = {}  # set by packets(): connection number -> client port

    def add(self, segments: Iterable[Segment], step: str) -> None:
        """Keep the segments on the server port (others on ``lo`` are not the run's)."""
        self._seen += [(s, step) for s in segments if self.server_port in (s.sport, s.dport)]

    def __len__(self) -> int:
        return len(self._seen)

    def segments(self) -> list[Segment]:
        """The run's segments as captured, in order, each with its frame (for a pcap file)."""
        return [segment for segment, _ in self._seen]

    def packets(self, connections: dict[int, int] | None = None) -> list[Packet]:
        """The record's packets.  ``connections`` numbers the client's ports (port -> 1, 2, ...);
        a port it lacks gets the next number, in the order its first segment was seen."""
        if not self._seen:
            return []
        numbers = dict(connections or {})
        for segment, _ in self._seen:
            client_port = segment.sport if segment.dport == self.server_port else segment.dport
            numbers.setdefault(client_port, max(numbers.values(), default=0) + 1)
        self.connection_ports = {number: port for port, number in numbers.items()}
        # Without a SYN a direction counts from the first number seen of it: its
        # first sequence number, or, if it sent nothing, the first ack it got.
        first: dict[Flow, int] = {}
        for segment, _ in self._seen:
            first.setdefault(_flow(segment), segment.seq)
        for segment, _ in self._seen:
            if "ACK" in segment.flags:
                first.setdefault(_reverse(_flow(segment)), segment.ack)
        isn = dict(first)
        shift: dict[Flow, int | None] = {}
        start = self._seen[0][0].time
        result = []
        for segment, step in self._seen:
            flow = _flow(segment)
            if "SYN" in segment.flags:
                isn[flow] = segment.seq  # also a new connection reusing the same ports
                shift[flow] = segment.wscale
            window = segment.window
            if "SYN" not in segment.flags:
                window <<= _scale(shift, flow)  # RFC 7323: a SYN's window is never scaled
            result.append(
                Packet(
                    time=segment.time - start,
                    sender="client" if segment.dport == self.server_port else "server",
                    flags=list(segment.flags),
                    seq=(segment.seq - isn[flow]) % 2**32,
                    ack=(segment.ack - isn[_reverse(flow)]) % 2**32 if "ACK" in segment.flags else None,
                    length=segment.length,
                    window=window,
                    step=step,
                    connection=numbers[segment.sport if segment.dport == self.server_port else segment.dport],
                )
            )
        return result


def _flow(segment: Segment) -> Flow:
    return (segment.src, segment.sport, segment.dst, segment.dport)


def _reverse(flow: Flow) -> Flow:
    return (flow[2], flow[3], flow[0], flow[1])


def _scale(shift: dict[Flow, int | None], flow: Flow) -> int:
    """The sender's shift, in force only when both SYNs carried the option (RFC 7323)."""
    mine, theirs = shift.get(flow), shift.get(_reverse(flow))
    return mine if mine is not None and theirs is not None else 0


def to_packets(segments: Iterable[Segment], server_port: int, step: str | Callable[[Segment], str]) -> list[Packet]:
    """The record's packets for ``segments``; ``step`` is one label, or a label per segment."""
    log = PacketLog(server_port)
    for segment in segments:
        log.add([segment], step(segment) if callable(step) else step)
    return log.packets()
