"""The structured record of one run: what each program printed, its steps, the tables.

The record is plain JSON (``Record.to_json()``); the Sphinx build reads exactly
what ``python examples/client-close.py --json FILE`` writes.  ``normalised()``
drops what legitimately differs between two runs (ports, pids, dates, timing),
so that two runs of one experiment can be compared for equality.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 3  # bump when the JSON layout changes; cached records are then ignored

ROLE_ORDER = ("listener", "server", "client")

# A state table's columns: those of `netstat -tan`, then the part each socket plays.
TABLE_COLUMNS = ("Proto", "Recv-Q", "Send-Q", "Local Address", "Foreign Address", "State", "Who")


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

    def tail_output(self, program: str) -> str:
        """What ``program`` printed after its last step."""
        printed = "".join(e.output for e in self.events if e.program == program)
        return self.programs[program].stdout[len(printed) :]

    # -- JSON ----------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Record:
        data = json.loads(text)
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
        return cls(**data)

    def normalised(self) -> dict[str, Any]:
        """The record as a dict, with ports, pids, dates and timings replaced.

        Two runs of the same experiment on the same machine give equal results.
        """
        data = asdict(self)
        data.pop("metadata")
        data.pop("ports")
        by_port = {port: f"<{role}-port>" for role, port in self.ports.items()}
        patterns = [(re.compile(rf"(?<!\d){port}(?!\d)"), f"<{role}-port>") for role, port in self.ports.items()]

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

        return scrub(data)
