"""The structured record of one run: what each program printed, its steps, the tables.

The record is plain JSON (``Record.to_json()``); the Sphinx build reads exactly
what ``python examples/client-close.py --json FILE`` writes.  ``normalised()``
drops what legitimately differs between two runs (ports, pids, dates, timing),
so that two runs of one experiment can be compared for equality.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

SCHEMA_VERSION = 5  # bump when the JSON layout changes; cached records are then ignored

ROLE_ORDER = ("listener", "server", "client")

# A state table's columns: those of `netstat -tan`, then the part each socket plays.
TABLE_COLUMNS = ("Proto", "Recv-Q", "Send-Q", "Local Address", "Foreign Address", "State", "Who")

# A packet table's columns: tcpdump's, with relative sequence numbers and the sender by role.
PACKET_COLUMNS = ("Time", "Direction", "Flags", "Seq", "Ack", "Length", "Window")


def client_port_name(connection: int) -> str:
    """How ``Record.ports`` names the port of the client's n-th connection: client, client-2, ..."""
    return "client" if connection == 1 else f"client-{connection}"


def _port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def step_label(program: str, step: str, occurrence: int) -> str:
    """How runs, records and findings name a step: ``client:closed``, ``server:received#2``."""
    return f"{program}:{step}" + (f"#{occurrence}" if occurrence > 1 else "")


@dataclass
class SocketRow:
    """A socket of the experiment, with the part it plays."""

    role: str  # "listener", "server" (the server's end) or "client" (the client's end)
    local: str
    remote: str
    state: str
    recv_q: int
    send_q: int
    # Seconds (rounded up) before the kernel drops a TIME_WAIT mini-socket on its own;
    # None for every other socket (see lab/sockets.py).  Not a netstat -tan column.
    expires: int | None = None

    def cells(self) -> tuple[str, ...]:
        """The row's values, in the order of TABLE_COLUMNS."""
        return ("tcp", str(self.recv_q), str(self.send_q), self.local, self.remote, self.state, self.role)


@dataclass
class Snapshot:
    at: str  # the step label the run had reached, e.g. "client:closed"
    caption: str
    sockets: list[SocketRow]
    shown: bool = True  # captioned in experiments.toml: shown on pages and in the terminal

    def row(self, role: str) -> SocketRow | None:
        return next((row for row in self.sockets if row.role == role), None)


# TCP flags in the order tcpdump prints them; Packet.flags keeps this order.
FLAG_ORDER = ("SYN", "FIN", "RST", "PSH", "ACK", "URG", "ECE", "CWR")


@dataclass
class Packet:
    """A TCP segment that crossed the experiment's loopback, as tcpdump would show it.

    Sequence numbers are relative, as tcpdump prints them: ``seq`` counts from
    the sender's initial sequence number (its SYN is 0), ``ack`` from the
    receiver's.  ``step`` ties the segment to the run: it is the label of the
    step whose snapshot came right after the segment was seen (the FIN that
    ``close()`` sends belongs to ``client:closed``), or ``"end"`` for the
    segments seen after the last step.
    """

    time: float  # seconds since the run's first segment
    sender: str  # "client" or "server"
    flags: list[str]  # names from FLAG_ORDER, in that order
    seq: int
    ack: int | None  # None when the ACK flag is off
    length: int  # payload bytes
    window: int  # the receive window the sender advertised, in bytes (scaled)
    step: str
    connection: int = 1  # which of the client's connections: 1 for its first, 2 for the next...

    @property
    def receiver(self) -> str:
        return "server" if self.sender == "client" else "client"

    def flags_text(self) -> str:
        """``SYN, ACK``: the flags as a reader would say them."""
        return ", ".join(self.flags)

    def cells(self, numbered: bool = False) -> tuple[str, ...]:
        """The segment's values, in the order of PACKET_COLUMNS; ``numbered``: say which connection."""
        return (
            f"{self.time:.6f}",
            (f"#{self.connection} " if numbered else "") + f"{self.sender} → {self.receiver}",
            self.flags_text(),
            str(self.seq),
            "" if self.ack is None else str(self.ack),
            str(self.length),
            str(self.window),
        )


@dataclass
class Event:
    """A program passed one step of the run (events are in run order)."""

    program: str
    step: str
    occurrence: int
    facts: dict[str, Any]
    output: str  # what the program printed on stdout since its previous step
    epoch: int  # how many snapshots had been taken when the step was reached
    snapshot: Snapshot | None = None  # taken when the run reached this step
    call: str = ""  # the socket call the program made just before this step, e.g. "close()" (experiments.toml)

    @property
    def label(self) -> str:
        return step_label(self.program, self.step, self.occurrence)


@dataclass
class ProgramResult:
    script: str
    command: list[str]
    exit_status: int | None  # negative: killed by that signal (the server is stopped by the lab)
    stdout: str
    stderr: str
    exceptions: list[dict[str, Any]] = field(default_factory=list)  # uncaught, with errno


# The sysctls that shape how a connection ends, read where the run took place (a namespace
# has its own): how long FIN_WAIT2 and TIME_WAIT last, how often an orphan's FIN or a
# segment is retried, when the kernel gives up on orphans or answers an overflow with RST.
TEARDOWN_SYSCTLS = (
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_orphan_retries",
    "net.ipv4.tcp_max_orphans",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_retries2",
    "net.ipv4.tcp_abort_on_overflow",
    "net.ipv4.tcp_rfc1337",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_syn_retries",
    "net.ipv4.tcp_synack_retries",
    "net.ipv4.tcp_window_scaling",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
)


@dataclass
class Provenance:
    """Where and when a record was made: what a reader needs to weigh it, or to redo it.

    ``normalised()`` leaves it out: it is the host's and the date's, not the run's.
    """

    kernel: str  # "Linux 6.1.0-18-amd64"
    python: str  # "3.11.2"
    date: str  # UTC, ISO 8601: "2026-12-03T08:30:00+00:00"
    isolation: str  # Record.isolation: its own namespace (as root, or in a user namespace), or the loopback
    states_source: str  # Record.states_source: where the socket tables came from
    packets_source: str  # Record.packets_source: how the segments were captured, or why there are none
    sysctls: dict[str, str]  # TEARDOWN_SYSCTLS as read where the run took place; "unreadable: ..." if not


@dataclass
class Record:
    experiment: str
    run: str
    title: str
    run_title: str
    description: str
    programs: dict[str, ProgramResult]
    events: list[Event]
    final: Snapshot | None
    leftover: list[SocketRow]  # sockets of the run still in the kernel after cleanup (TIME_WAIT)
    ports: dict[str, int]
    states_source: str  # where the tables came from, or why there are none
    metadata: dict[str, Any]
    packets: list[Packet] = field(default_factory=list)  # every TCP segment of the run, in order
    packets_source: str = ""  # how the segments were captured, or why there are none
    isolation: str = ""  # where the run took place: its own network namespace, or the machine's loopback
    provenance: Provenance | None = None  # kernel, Python, date, isolation, sources and sysctls of the run
    schema: int = SCHEMA_VERSION

    # -- looking things up ---------------------------------------------------

    def all_snapshots(self) -> list[Snapshot]:
        """A table for every step of the run (and the final one), in run order."""
        found = [e.snapshot for e in self.events if e.snapshot is not None]
        return found + ([self.final] if self.final else [])

    def snapshots(self) -> list[Snapshot]:
        """The tables worth showing: those the run gave a caption."""
        return [s for s in self.all_snapshots() if s.shown]

    def snapshot(self, at: str) -> Snapshot | None:
        return next((s for s in self.all_snapshots() if s.at == at), None)

    def event(self, label: str) -> Event | None:
        return next((e for e in self.events if e.label == label), None)

    def packets_at(self, step: str) -> list[Packet]:
        """The segments tied to ``step`` (a step label, or "end")."""
        return [packet for packet in self.packets if packet.step == step]

    def connections(self) -> list[int]:
        """The client's connections that crossed the wire, by number (``[1]`` for most runs)."""
        return sorted({packet.connection for packet in self.packets})

    def for_connection(self, number: int) -> Record:
        """The run as seen by one connection: its segments, its sockets, the steps it spans.

        For a client that opens several connections one after another, each
        can be drawn and checked on its own: the other connections' rows and
        segments are left out, and so are the steps before its first segment
        and from the next connection's first segment on (the calls drawn are
        then the ones that concern it).
        """
        port = self.ports.get(client_port_name(number))
        packets = [packet for packet in self.packets if packet.connection == number]
        labels = [event.label for event in self.events]

        def first_step(connection: int) -> int:
            steps = [labels.index(p.step) for p in self.packets if p.connection == connection and p.step in labels]
            return min(steps, default=len(labels))

        # From the step of its first segment to the step before the next connection's first:
        # the calls made after its last segment (a failing shutdown(), say) are its own too.
        first = first_step(number)
        last = first_step(number + 1) - 1 if number + 1 in self.connections() else len(labels) - 1

        def mine(row: SocketRow) -> bool:
            if row.role == "listener":
                return True
            return _port_of(row.local if row.role == "client" else row.remote) == port

        def view(snapshot: Snapshot | None) -> Snapshot | None:
            if snapshot is None:
                return None
            return replace(snapshot, sockets=[row for row in snapshot.sockets if mine(row)])

        events = [replace(event, snapshot=view(event.snapshot)) for event in self.events[first : last + 1]]
        return replace(self, packets=packets, events=events, final=view(self.final))

    def tail_output(self, program: str) -> str:
        """What ``program`` printed after its last step."""
        printed = "".join(e.output for e in self.events if e.program == program)
        return self.programs[program].stdout[len(printed) :]

    # -- JSON ----------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Record:
        return cls.from_data(json.loads(text))

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Record:
        """The record from its parsed JSON (``from_json`` without the parsing)."""
        data = dict(data)
        if data.get("schema") != SCHEMA_VERSION:
            raise ValueError(f"record schema {data.get('schema')} is not {SCHEMA_VERSION}")

        def snapshot(raw: dict | None) -> Snapshot | None:
            if raw is None:
                return None
            return Snapshot(raw["at"], raw["caption"], [SocketRow(**row) for row in raw["sockets"]], raw["shown"])

        data["programs"] = {name: ProgramResult(**raw) for name, raw in data["programs"].items()}
        data["events"] = [Event(**(raw | {"snapshot": snapshot(raw["snapshot"])})) for raw in data["events"]]
        data["final"] = snapshot(data["final"])
        data["leftover"] = [SocketRow(**row) for row in data["leftover"]]
        data["packets"] = [Packet(**raw) for raw in data.get("packets", [])]
        if data.get("provenance") is not None:
            data["provenance"] = Provenance(**data["provenance"])
        return cls(**data)

    def normalised(self) -> dict[str, Any]:
        """The record as a dict, with ports, pids, dates and timings (segment times, ``*_ms`` facts) replaced.

        Two runs of the same experiment on the same machine give equal results.
        """
        data = asdict(self)
        data.pop("metadata")
        data.pop("provenance")  # the host's and the date's
        data.pop("ports")
        # Numbers only, none of them a port: not scrubbed (a window may equal one).  The zero-window
        # probes are left out: how many the persist timer sends follows how long a window stays shut.
        packets = [asdict(packet) for packet in without_probes(self.packets)]
        data.pop("packets")
        for packet in packets:
            packet.pop("time")  # the order of the segments stays; their timing is the machine's
            # How far a window is open follows the kernel's buffer autotuning, which depends on
            # timing; whether it is shut (a zero window holds the sender back) is the story.
            packet["window"] = "shut" if packet["window"] == 0 else "open"
        ports = {role: port for role, port in self.ports.items() if port}  # 0 is no port, but a count
        by_port = {port: f"<{role}-port>" for role, port in ports.items()}
        # Where a port stands in text: after the colon of an address (127.0.0.1:50008), in a
        # Python address tuple ('127.0.0.1', 50008), or alone (a command's "--port", "50008").
        # Not any number that happens to equal one: "sent 40000 bytes" is not a port.
        patterns = [
            (re.compile(rf"(?:(?<=:)|(?<=', )){port}(?!\d)|^{port}$"), f"<{role}-port>")
            for role, port in ports.items()
        ]

        def scrub(value: Any) -> Any:
            if isinstance(value, str):
                for pattern, placeholder in patterns:
                    value = pattern.sub(placeholder, value)
                return value
            if isinstance(value, int) and not isinstance(value, bool) and value in by_port:
                return by_port[value]  # e.g. the port the server reported in its first step
            if isinstance(value, dict):
                return {key: scrub(item) for key, item in value.items()}
            if isinstance(value, list):
                return [scrub(item) for item in value]
            return value

        for event in data["events"]:
            # A duration a program measured (``waited_ms``) is the machine's; a finding checks its range.
            event["facts"] = {name: "<ms>" if name.endswith("_ms") else value for name, value in event["facts"].items()}
        return scrub(data) | {"packets": packets}


def without_probes(packets: list[Packet]) -> list[Packet]:
    """The segments less the zero-window probes (and keepalives) and the ACKs that answer them.

    Linux probes a shut window with a bare ACK one byte behind what the peer
    has acknowledged (``tcp_xmit_probe_skb()``: seq = snd_una - 1), which no
    other segment carries; the peer answers with a bare ACK of what it has,
    its window still shut (an answer that opens it is the window update the
    story needs, and is kept).
    How many such pairs a run holds is the persist timer's (200 ms, doubling),
    so it follows timing: under load a window shut a little longer gets one
    more pair.  Everything else the run sent is kept, in order.
    """
    acked: dict[tuple[int, str], int] = {}  # (connection, sender) -> what the peer acknowledged last
    kept: list[Packet] = []
    answer_due: dict[tuple[int, str], int] = {}  # (connection, answerer) -> the ack an answer carries
    for packet in packets:
        mine, peer = (packet.connection, packet.sender), (packet.connection, packet.receiver)
        bare_ack = packet.flags == ["ACK"] and packet.length == 0
        if bare_ack and mine in acked and packet.seq == acked[mine] - 1:
            answer_due[peer] = acked[mine]
            continue  # a probe
        if bare_ack and packet.window == 0 and answer_due.pop(mine, None) == packet.ack:
            continue  # the peer's answer to it: still shut (an answer that opens the window is kept)
        answer_due.pop(mine, None)
        if packet.ack is not None:
            acked[peer] = max(acked.get(peer, 0), packet.ack)
        kept.append(packet)
    return kept
