"""Write a run's segments as a pcap file, the format of ``tcpdump -w``, for Wireshark and ``tcpdump -r``.

The classic libpcap format (not pcapng), with nanosecond timestamps (magic
``0xa1b23c4d``; tcpdump and Wireshark both read it).  An ``AF_PACKET``
socket on Linux's ``lo`` delivers each frame with an Ethernet header (zero
addresses, the real ethertype), so the link type is ``LINKTYPE_ETHERNET``,
exactly what ``tcpdump -i lo -w`` writes.  The frames are those the capture
kept (lab/packets.py: one copy of each segment, cut at ``SNAP_LENGTH``), and
each record says both the length kept and the length the frame had.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .packets import SNAP_LENGTH, Segment

MAGIC_NANOSECONDS = 0xA1B23C4D  # written in native order; a reader tells the order by it
VERSION = (2, 4)
LINKTYPE_ETHERNET = 1


def pcap_bytes(segments: Iterable[Segment], snap_length: int = SNAP_LENGTH) -> bytes:
    """The whole file: the global header, then one record per segment that kept its frame."""
    parts = [struct.pack("=IHHiIII", MAGIC_NANOSECONDS, *VERSION, 0, 0, snap_length, LINKTYPE_ETHERNET)]
    for segment in segments:
        if not segment.frame:
            continue  # decoded from numbers alone (a test's): there is no frame to write
        frame = segment.frame[:snap_length]
        seconds, nanoseconds = divmod(segment.stamp_ns, 1_000_000_000)
        wire = max(segment.wire_length, len(frame))
        parts.append(struct.pack("=IIII", seconds, nanoseconds, len(frame), wire) + frame)
    return b"".join(parts)


def write_pcap(path: Path, segments: Iterable[Segment]) -> None:
    """Write the file atomically: a reader finds the old file, or the whole new one."""
    data = pcap_bytes(segments)
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would keep it from a web server's reader
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
