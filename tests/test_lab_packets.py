"""lab/packets.py: decoding loopback frames, numbering segments, capturing them live.

The frames in tests/fixtures/frames/*.hex are real: recorded on Linux 6.18 in a
network namespace of their own by tests/fixtures/frames/record.py (the
PACKET_HOST copy of each segment).  The numbers the tests expect of them are
tcpdump's reading of the same bytes (``tcpdump -nn -v`` and, for relative
numbers, its default output), not this decoder's.  The live tests run a
connection in a fresh network namespace and capture it with LoopbackCapture.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from lab import packets as lab_packets
from lab.packets import (
    CaptureUnavailable,
    LoopbackCapture,
    PacketLog,
    Segment,
    decode_frame,
    to_packets,
)

FRAMES = Path(__file__).parent / "fixtures" / "frames"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


# A connection that sends 12 bytes and is closed by both ends, the client first, as Linux
# numbers it (relative, tcpdump's way): sender, flags, seq, ack, length.
CONNECT_SEND_CLOSE = [
    ("client", "SYN", 0, None, 0),
    ("server", "SYN, ACK", 0, 1, 0),
    ("client", "ACK", 1, 1, 0),
    ("client", "PSH, ACK", 1, 1, 12),
    ("server", "ACK", 1, 13, 0),
    ("client", "FIN, ACK", 13, 1, 0),
    ("server", "ACK", 1, 14, 0),
    ("server", "FIN, ACK", 1, 14, 0),
    ("client", "ACK", 14, 2, 0),
]


def frames(name: str) -> list[bytes]:
    lines = (FRAMES / f"{name}.hex").read_text().splitlines()
    return [bytes.fromhex(line) for line in lines if line and not line.startswith("#")]


def segments(name: str) -> list[Segment]:
    """The fixture's segments, half a second apart (the fixtures keep no time)."""
    decoded = [decode_frame(frame, time=100.0 + i / 2) for i, frame in enumerate(frames(name))]
    assert None not in decoded
    return decoded  # type: ignore[return-value]


# -- decode_frame() on recorded frames ---------------------------------------------------

# What tcpdump reads in ipv4-close.hex, client 127.0.0.1.41584, server .43509:
# (flags, from the client?, payload length, window field, window scale).
CLOSE = [
    (("SYN",), True, 0, 65495, 10),
    (("SYN", "ACK"), False, 0, 65483, 10),
    (("ACK",), True, 0, 64, None),
    (("PSH", "ACK"), True, 12, 64, None),
    (("ACK",), False, 0, 64, None),
    (("FIN", "ACK"), True, 0, 64, None),
    (("ACK",), False, 0, 64, None),
    (("FIN", "ACK"), False, 0, 64, None),
    (("ACK",), True, 0, 64, None),
]


def _shape(segment: Segment, client_port: int) -> tuple:
    return (segment.flags, segment.sport == client_port, segment.length, segment.window, segment.wscale)


def test_ipv4_conversation_reads_as_tcpdump_reads_it() -> None:
    decoded = segments("ipv4-close")
    assert [_shape(s, 41584) for s in decoded] == CLOSE
    syn, syn_ack = decoded[0], decoded[1]
    assert (syn.src, syn.sport, syn.dst, syn.dport) == ("127.0.0.1", 41584, "127.0.0.1", 43509)
    assert (syn.seq, syn_ack.seq, syn_ack.ack) == (3858594090, 97786236, 3858594091)
    assert decoded[3].seq == 3858594091 and decoded[3].ack == 97786237
    assert decoded[3].time == 101.5  # the time given is the time kept


def test_ipv6_conversation_reads_as_tcpdump_reads_it() -> None:
    decoded = segments("ipv6-close")
    assert [_shape(s, 54630) for s in decoded] == [
        (flags, client, length, 65476 if i == 0 else 65464 if i == 1 else window, scale)
        for i, (flags, client, length, window, scale) in enumerate(CLOSE)
    ]
    syn = decoded[0]
    assert (syn.src, syn.sport, syn.dst, syn.dport, syn.seq) == ("::1", 54630, "::1", 59965, 2276206661)
    assert decoded[1].ack == 2276206662


def test_reset_is_read() -> None:
    last = segments("ipv4-reset")[-1]
    assert (last.flags, last.sport, last.dport, last.seq, last.length) == (("RST", "ACK"), 41134, 47289, 600588525, 0)


def test_an_ipv6_extension_header_is_walked() -> None:
    # The client's segments carry a destination-options header (next header 60).
    decoded = segments("ipv6-dstopts")
    assert frames("ipv6-dstopts")[0][20] == 60
    assert [_shape(s, 53592) for s in decoded][:6] == [
        (("SYN",), True, 0, 65476, 10),
        (("SYN", "ACK"), False, 0, 65464, 10),
        (("ACK",), True, 0, 64, None),
        (("PSH", "ACK"), True, 12, 64, None),
        (("ACK",), False, 0, 64, None),
        (("FIN", "ACK"), True, 0, 64, None),
    ]
    assert (decoded[0].seq, decoded[1].ack) == (2012840251, 2012840252)


def _ipv6_with(frame: bytes, headers: list[tuple[int, bytes]]) -> bytes:
    """``frame`` (IPv6, straight to TCP) with extension headers put before TCP.

    ``headers``: (its type, its body after the next-header byte).  Each
    header's next-header byte is the following one's type; the last says TCP.
    """
    kinds = [kind for kind, _ in headers] + [frame[20]]
    chain = b"".join(bytes([kinds[i + 1]]) + body for i, (_, body) in enumerate(headers))
    payload = struct.unpack_from("!H", frame, 18)[0] + len(chain)
    return frame[:18] + struct.pack("!HB", payload, kinds[0]) + frame[21:54] + chain + frame[54:]


def test_hop_by_hop_routing_and_first_fragment_headers_are_walked() -> None:
    data = frames("ipv6-close")[3]  # PSH, ACK with 12 bytes
    hop_by_hop = (0, bytes([0, 1, 4, 0, 0, 0, 0]))  # PadN: 8 bytes in all
    routing = (43, bytes([1, 4, 0, 0, 0, 0, 0]) + bytes(8))  # length 1: 16 bytes
    first_fragment = (44, bytes([0, 0, 1, 0, 0, 0, 7]))  # offset 0, more fragments
    segment = decode_frame(_ipv6_with(data, [hop_by_hop, routing, first_fragment]))
    assert segment is not None
    assert (segment.flags, segment.length, segment.sport) == (("PSH", "ACK"), 12, 54630)
    later_fragment = (44, bytes([0, 0, 0x08, 0, 0, 0, 7]))  # offset 1 (8 bytes in)
    assert decode_frame(_ipv6_with(data, [hop_by_hop, later_fragment])) is None
    assert decode_frame(_ipv6_with(data, [(59, bytes(7))])) is None  # "no next header"


def test_ipv4_options_are_skipped_by_the_header_length() -> None:
    data = frames("ipv4-close")[3]
    ihl, total = data[14] & 0x0F, struct.unpack_from("!H", data, 16)[0]
    options = bytes([1, 1, 1, 0])  # NOP, NOP, NOP, end of options: one more 32-bit word
    longer = data[:14] + bytes([0x40 | ihl + 1, data[15]]) + struct.pack("!H", total + 4) + data[18:34] + options + data[34:]
    assert decode_frame(longer) == decode_frame(data)
    assert decode_frame(longer).seq == 3858594091  # type: ignore[union-attr]


def test_addresses_are_read_from_their_places() -> None:
    # The recordings talk to themselves (::1 to ::1): give the sender another address.
    v4, v6 = frames("ipv4-close")[0], frames("ipv6-close")[0]
    v4 = v4[:26] + bytes([127, 0, 0, 2]) + v4[30:]
    v6 = v6[:22] + bytes(15) + b"\x02" + v6[38:]
    assert [(s.src, s.dst) for s in map(decode_frame, (v4, v6))] == [("127.0.0.2", "127.0.0.1"), ("::2", "::1")]  # type: ignore[union-attr]


def test_window_scale_option_among_others() -> None:
    scale = lab_packets._window_scale
    assert scale(bytes([2, 4, 0xFF, 0xD7, 4, 2, 1, 3, 3, 7])) == 7  # MSS, SACK permitted, NOP, wscale
    assert [scale(bytes(o)) for o in ([1, 3, 3], [3], [8, 0, 3, 3, 1], [0, 3, 3, 1], [])] == [None] * 5


def test_padding_beyond_the_ip_packet_is_not_payload() -> None:
    for frame in (frames("ipv4-close")[3], frames("ipv6-close")[3], frames("ipv4-close")[0]):
        plain, padded = decode_frame(frame), decode_frame(frame + bytes(18))
        assert padded == plain and padded is not None
    assert decode_frame(frames("ipv4-close")[3] + bytes(18)).length == 12  # type: ignore[union-attr]


def test_a_snap_length_cut_into_the_payload_still_gives_the_ip_length() -> None:
    frame = frames("ipv4-close")[3]  # 14 + 20 + 32 bytes of headers, 12 of payload
    assert len(frame) == 78
    assert decode_frame(frame[:66]).length == 12  # type: ignore[union-attr]


def test_truncated_frames_are_none_not_errors() -> None:
    for frame, headers in ((frames("ipv4-close")[0], 74), (frames("ipv6-dstopts")[3], 14 + 40 + 8 + 32)):
        assert [n for n in range(len(frame)) if decode_frame(frame[:n]) is not None] == list(range(headers, len(frame)))


def test_what_is_not_tcp_is_none() -> None:
    udp4, udp6 = frames("udp")
    assert decode_frame(udp4) is None and decode_frame(udp6) is None
    syn = frames("ipv4-close")[0]
    arp = syn[:12] + b"\x08\x06" + syn[14:]
    later_fragment = syn[:20] + struct.pack("!H", 0x4000 | 3) + syn[22:]  # DF, offset 3 (24 bytes in)
    not_ipv4 = syn[:14] + bytes([0x65]) + syn[15:]  # ethertype says IPv4, the version says 6
    udp = syn[:23] + bytes([17]) + syn[24:]  # long enough to pass for TCP, but protocol 17
    assert [decode_frame(f) for f in (arp, later_fragment, not_ipv4, udp, b"")] == [None] * 5
    assert decode_frame(syn[:20] + struct.pack("!H", 0x4000) + syn[22:]) is not None  # offset 0 is fine


# -- PacketLog: numbering as tcpdump numbers --------------------------------------------


def _rows(packets) -> list[tuple]:
    return [(p.sender, p.flags_text(), p.seq, p.ack, p.length) for p in packets]


def test_relative_numbers_and_senders() -> None:
    log = PacketLog(server_port=43509)
    decoded = segments("ipv4-close")
    log.add(decoded[:4], "client:sent")
    log.add(decoded[4:], "client:closed")
    packets = log.packets()
    # tcpdump's relative numbers for the same frames (SYN and SYN, ACK show absolute).
    assert _rows(packets) == CONNECT_SEND_CLOSE
    assert [p.step for p in packets] == ["client:sent"] * 4 + ["client:closed"] * 5
    assert [p.time for p in packets] == [i / 2 for i in range(9)]
    assert [p.receiver for p in packets[:2]] == ["server", "client"]


def test_windows_are_scaled_except_on_syns() -> None:
    windows = [p.window for p in to_packets(segments("ipv4-close"), 43509, "end")]
    assert windows == [65495, 65483] + [64 << 10] * 7


def test_no_scaling_unless_both_syns_offer_it() -> None:
    decoded = segments("ipv4-close")
    decoded[1] = replace(decoded[1], wscale=None)  # a server that does not scale
    assert [p.window for p in to_packets(decoded, 43509, "end")][2:] == [64] * 7


def test_without_syns_numbers_count_from_the_first_seen() -> None:
    packets = to_packets(segments("ipv4-close")[3:], 43509, "end")
    assert _rows(packets)[:4] == [
        ("client", "PSH, ACK", 0, 0, 12),
        ("server", "ACK", 0, 12, 0),
        ("client", "FIN, ACK", 12, 0, 0),
        ("server", "ACK", 0, 13, 0),
    ]
    assert packets[0].time == 0.0


def test_only_the_server_port_counts_and_steps_may_vary_per_segment() -> None:
    # Another connection on lo (server port 47289), begun 10 s earlier, interleaved.
    other = [replace(s, time=s.time - 10) for s in segments("ipv4-reset")]
    mixed = other[:3] + segments("ipv4-close") + other[3:]
    packets = to_packets(mixed, 43509, lambda s: "early" if s.flags == ("SYN",) else "late")
    assert len(packets) == 9 and [p.step for p in packets] == ["early"] + ["late"] * 8
    assert packets[0].time == 0.0 and packets[1].time == 0.5  # from the first segment that counts
    resets = to_packets(mixed, 47289, "end")
    assert [p.flags for p in resets][-1] == ["RST", "ACK"] and _rows(resets)[-1][2:] == (13, 1, 0)
    assert PacketLog(1).packets() == []


def test_a_new_connection_on_the_same_ports_is_numbered_afresh() -> None:
    first = segments("ipv4-close")
    again = [replace(s, seq=(s.seq + 10**6) % 2**32, ack=(s.ack + 10**6) % 2**32) for s in first]
    packets = to_packets(first + again, 43509, "end")
    assert _rows(packets[9:]) == _rows(packets[:9])


# -- LoopbackCapture -------------------------------------------------------------------


def test_capture_unavailable_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(lab_packets.socket, "socket", refused)
    with pytest.raises(CaptureUnavailable, match="needs CAP_NET_RAW") as caught:
        LoopbackCapture()
    assert "\n" not in caught.value.reason
    monkeypatch.delattr(lab_packets.socket, "AF_PACKET")
    with pytest.raises(CaptureUnavailable, match="no AF_PACKET"):
        LoopbackCapture()


# Runs in a fresh network namespace: lo up, a listener, one connection that sends
# 12 bytes and is closed by the client first, the server closing once it has
# acknowledged the client's FIN (Linux delays that ACK, ~40 ms: waiting for it
# makes the order of segments certain).  Prints the captured segments as JSON.
LIVE = r"""
import fcntl, json, select, socket, struct, sys, time
from dataclasses import asdict
sys.path.insert(0, sys.argv[1])
from lab.packets import CaptureUnavailable, LoopbackCapture

family = socket.AF_INET6 if sys.argv[2] == "6" else socket.AF_INET
host = "::1" if sys.argv[2] == "6" else "127.0.0.1"
with socket.socket() as s:  # ip link set lo up
    fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", 0x1 | 0x8 | 0x40))  # SIOCSIFFLAGS UP|LOOPBACK|RUNNING
try:
    capture = LoopbackCapture()
except CaptureUnavailable as e:
    print(e.reason, file=sys.stderr)
    sys.exit(77)
seen = []

def until(done, what):
    deadline = time.monotonic() + 2
    while not done():
        seen.extend(capture.drain())
        if time.monotonic() > deadline:
            sys.exit(f"no {what} within 2 s; seen: {seen}")
        time.sleep(0.002)

before = time.time()
with capture, socket.socket(family) as listener, socket.socket(family, socket.SOCK_DGRAM) as udp:
    listener.bind((host, 0))
    listener.listen()
    udp.sendto(b"not tcp", listener.getsockname()[:2])  # on lo too: the filter must keep it out
    udp_queued = bool(select.select([capture], [], [], 0.02)[0])
    client = socket.create_connection(listener.getsockname()[:2])
    connected = time.time()
    server, _ = listener.accept()
    client.sendall(b"hello world\n")
    assert server.recv(100) == b"hello world\n"
    client.close()
    assert server.recv(100) == b""
    until(lambda: sum(1 for s in seen if s.sport == listener.getsockname()[1]) >= 3, "ACK of the FIN")
    server.close()
    until(lambda: len(seen) >= 9, "last ACK")
    time.sleep(0.01)
    seen.extend(capture.drain())
    out = {"port": listener.getsockname()[1], "segments": [asdict(s) | {"frame": s.frame.hex()} for s in seen], "drops": capture.drops,
           "timestamps": capture.timestamps, "before": before, "connected": connected, "after": time.time(),
           "udp_queued": udp_queued}

# A buffer too small for a burst: the capture must say it lost segments.
with LoopbackCapture(receive_buffer=1) as small, socket.socket(family) as listener:
    listener.bind((host, 0))
    listener.listen()
    with socket.create_connection(listener.getsockname()[:2]) as client, listener.accept()[0] as server:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(50):
            client.send(b"x")
    time.sleep(0.01)
    out["small_buffer_kept"] = len(small.drain())
    out["small_buffer_drops"] = small.drops
print(json.dumps(out))
"""


@functools.cache  # one child per address family serves every live test
def _run_in_network_namespace(family: str) -> dict:
    if not sys.platform.startswith("linux"):
        pytest.skip("capture on lo uses Linux AF_PACKET")
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare(1) to make a network namespace")
    # As root a network namespace alone; otherwise inside a user namespace, where we are its root.
    command = [unshare, "--net"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    done = subprocess.run(
        [*command, sys.executable, "-c", LIVE, str(EXAMPLES), family], capture_output=True, text=True, timeout=20, check=False
    )
    if done.returncode == 77:
        pytest.skip(f"packet capture unavailable: {done.stderr.strip()}")
    if done.returncode != 0 and done.stderr.startswith("unshare:"):
        pytest.skip(f"cannot make a network namespace (not root, no user namespaces?): {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("family", ["4", "6"])
def test_live_connection_is_captured_once_per_segment(family: str) -> None:
    run = _run_in_network_namespace(family)
    seen = [Segment(**(raw | {"flags": tuple(raw["flags"]), "frame": bytes.fromhex(raw["frame"])})) for raw in run["segments"]]
    # Each segment keeps the frame it was read from (for the pcap file), and its kernel timestamp.
    assert all(decode_frame(s.frame, s.time) == s and s.wire_length >= len(s.frame) and s.stamp_ns for s in seen)
    log = PacketLog(run["port"])
    log.add(seen, "end")
    # What Linux 6.18 sends: an immediate ACK of the data (a new connection acks
    # quickly), a delayed one of the FIN, and the last ACK from TIME_WAIT.
    assert _rows(log.packets()) == CONNECT_SEND_CLOSE
    assert len(seen) == 9, "a second copy of a segment was captured"
    assert not run["udp_queued"], "the filter let a UDP datagram through"
    assert run["drops"] == 0
    times = [s.time for s in seen]
    assert run["timestamps"] == "kernel"
    assert run["before"] <= times[0] and times == sorted(times) and times[-1] <= run["after"]
    assert times[0] < run["connected"], "the SYN's time is not the kernel's (it is later than connect())"
    assert times[6] - times[5] >= 0.03, "the FIN's ACK came at once: Linux no longer delays it?"
    assert seen[0].wscale is not None and seen[1].wscale is not None


def test_live_losses_are_counted() -> None:
    run = _run_in_network_namespace("4")
    assert run["small_buffer_drops"] > 0 and run["small_buffer_kept"] < 100
