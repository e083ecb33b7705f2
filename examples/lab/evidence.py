"""The recorded evidence: every run's record and pcap file, kept with the sources.

``make captures`` writes ``docs/captures/EXPERIMENT/RUN.json`` (the record,
with a top-level ``"source_key"``) and ``RUN.pcap`` beside it (the run's
frames, lab/pcap.py).  A host that cannot capture (no network namespace, no
packet capture) shows these instead of a live run; ``make verify`` compares
them with live runs.

A record is keyed by the content of what it was made from (``source_key``),
as the build's cache is, but without the host's facts (kernel, Python,
root): the record is meant to be shown on other hosts, while a changed
example, experiments.toml or lab file must never pass an old record as
current.  Nothing here imports Sphinx.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .record import SCHEMA_VERSION, Record

DEFAULT_DIRECTORY = Path("docs") / "captures"  # relative to the repository root
SOURCE_KEY_FIELD = "source_key"

# EvidenceError.reason is one of these.
MISSING, CORRUPT, NEWER_SCHEMA, OLDER_SCHEMA, OTHER_SOURCES = (
    "missing",
    "corrupt",
    "newer schema",
    "older schema",
    "made from other sources",
)


def source_key(files: Iterable[Path], experiment: str, run: str) -> str:
    """A sha256 hex digest of what a run is made from: each file's name and content, the run, the schema.

    Names, not paths: a copy of the examples folder elsewhere has the same key.
    """
    digest = hashlib.sha256()
    for path in files:
        path = Path(path)
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    for part in (experiment, run, str(SCHEMA_VERSION)):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def remedy(experiment: str, run: str) -> str:
    """The command that records one run afresh."""
    return f"make captures ONLY={experiment}/{run}"


class EvidenceError(Exception):
    """A recorded run that cannot be shown as current: ``str()`` names the file, the problem and the fix."""

    def __init__(self, path: Path, reason: str, remedy: str, detail: str = "") -> None:
        self.path, self.reason, self.remedy, self.detail = path, reason, remedy, detail
        super().__init__(path, reason, remedy, detail)

    def __str__(self) -> str:
        what = {
            MISSING: "there is no recorded evidence",
            CORRUPT: "the record is corrupt",
            NEWER_SCHEMA: "the record was written by a newer version of the lab",
            OLDER_SCHEMA: "the record was written by an older version of the lab",
            OTHER_SOURCES: "the record was made from other sources than today's (an example, "
            "experiments.toml or the lab changed since)",
        }.get(self.reason, self.reason)
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.path}: {what}{detail}; re-record it with: {self.remedy}"


@dataclass(frozen=True)
class Recorded:
    """A run's record as committed, and where its files are (for download links)."""

    record: Record
    json_path: Path
    pcap_path: Path | None  # None: the run was recorded without packets


class EvidenceStore:
    """The folder of recorded runs: ``DIRECTORY/EXPERIMENT/RUN.json`` and ``RUN.pcap``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def json_path(self, experiment: str, run: str) -> Path:
        return self.directory / experiment / f"{run}.json"

    def pcap_path(self, experiment: str, run: str) -> Path:
        return self.directory / experiment / f"{run}.pcap"

    def save(self, record_json_text: str, pcap_bytes: bytes | None, source_key: str) -> None:
        """Keep one run: its record (with ``source_key`` added) and its pcap file, each written atomically.

        ``pcap_bytes`` None: the run has no packets; an older pcap of it is removed.
        """
        data = json.loads(record_json_text)
        experiment, run = data["experiment"], data["run"]
        data[SOURCE_KEY_FIELD] = source_key
        target = self.json_path(experiment, run)
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(target, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode())
        pcap = self.pcap_path(experiment, run)
        if pcap_bytes is None:
            pcap.unlink(missing_ok=True)
        else:
            _write_atomically(pcap, pcap_bytes)

    def load(self, experiment: str, run: str, expected_key: str) -> Recorded:
        """The recorded run, if it is there, readable, of this schema and made from these sources.

        Raises EvidenceError otherwise, never anything else for a bad file.
        """
        path = self.json_path(experiment, run)
        fix = remedy(experiment, run)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise EvidenceError(path, MISSING, fix) from None
        except (OSError, UnicodeDecodeError) as error:
            raise EvidenceError(path, CORRUPT, fix, f"cannot be read: {error}") from None
        try:
            data: Any = json.loads(text)
        except ValueError as error:
            raise EvidenceError(path, CORRUPT, fix, f"not JSON: {error}") from None
        if not isinstance(data, dict):
            raise EvidenceError(path, CORRUPT, fix, "not a JSON object")
        schema = data.get("schema")
        if not isinstance(schema, int):
            raise EvidenceError(path, CORRUPT, fix, "no schema number")
        if schema > SCHEMA_VERSION:
            raise EvidenceError(path, NEWER_SCHEMA, fix, f"schema {schema}; this lab reads {SCHEMA_VERSION}")
        if schema < SCHEMA_VERSION:
            raise EvidenceError(path, OLDER_SCHEMA, fix, f"schema {schema}; this lab reads {SCHEMA_VERSION}")
        if data.pop(SOURCE_KEY_FIELD, None) != expected_key:
            raise EvidenceError(path, OTHER_SOURCES, fix)
        try:
            record = Record.from_data(data)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise EvidenceError(path, CORRUPT, fix, f"not a record: {type(error).__name__}: {error}") from None
        if (record.experiment, record.run) != (experiment, run):
            raise EvidenceError(path, CORRUPT, fix, f"it holds {record.experiment}/{record.run}")
        pcap = self.pcap_path(experiment, run)
        return Recorded(record, path, pcap if pcap.is_file() else None)


def _write_atomically(target: Path, data: bytes) -> None:
    """A parallel reader sees the old file, or the whole new one; never half of it."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)  # committed and served: readable by all, as a checkout makes it
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# -- comparing a live run with its record -----------------------------------------------


def first_difference(recorded: Record, live: Record) -> str | None:
    """Where a live run first departs from its record, normalised as the determinism tests do; None if nowhere.

    Walked in run order: for each step, the segments tied to it, then the step
    itself (its output, facts, snapshot); then what follows the last step.
    The answer names the step (or the packet and its step), the field, and
    both values.
    """
    old, new = recorded.normalised(), live.normalised()
    labels = [event.label for event in recorded.events]
    for index, label in enumerate([*labels, "end"]):
        old_packets = [p for p in old["packets"] if p["step"] == label]
        new_packets = [p for p in new["packets"] if p["step"] == label]
        found = _first_change(old_packets, new_packets, f"the segments of step {label}")
        if found:
            return found
        if index < len(labels):
            old_event = old["events"][index]
            new_event = new["events"][index] if index < len(new["events"]) else None
            found = _first_change(old_event, new_event, f"step {label}")
            if found:
                return found
    stray = [p for p in new["packets"] if p["step"] not in [*labels, "end"]]
    if stray:
        return f"the live run has segments at a step the record lacks: {_show(stray[0])}"
    for key in sorted(old.keys() | new.keys()):
        if key in ("packets", "events"):
            continue
        found = _first_change(old.get(key), new.get(key), key)
        if found:
            return found
    return None


def _first_change(old: Any, new: Any, path: str) -> str:
    """'' if equal, else ``PATH: recorded X, live Y`` for the first place that differs."""
    if old == new:
        return ""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            found = _first_change(old.get(key), new.get(key), f"{path}.{key}")
            if found:
                return found
    if isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            a = old[index] if index < len(old) else _ABSENT
            b = new[index] if index < len(new) else _ABSENT
            if a == b:
                continue
            if not isinstance(a, dict | list) and not isinstance(b, dict | list):
                break  # a list of plain values (a segment's flags) is shown whole
            return _first_change(a, b, f"{path}[{index}]")
    return f"{path}: recorded {_show(old)}, live {_show(new)}"


class _Absent:
    def __repr__(self) -> str:
        return "(nothing)"


_ABSENT = _Absent()


def _show(value: Any) -> str:
    if isinstance(value, _Absent):
        return "(nothing)"
    return json.dumps(value, ensure_ascii=False)


# -- can this host capture everything a page checks? ------------------------------------


def capture_problem(mode: str | None = None) -> str | None:
    """Why a live run here would hold less than a recorded one (no namespace, no packets); None if nothing.

    Asked the way a run asks (lab/isolation.py's ``run_isolated``, in a forked
    child), so the answer is the one a capture would meet.
    """
    from .isolation import IsolationError, run_isolated
    from .packets import CaptureUnavailable, LoopbackCapture

    def probe(where: Any) -> str | None:
        if not where.isolated:
            return f"no network namespace: {where.reason}"
        try:
            LoopbackCapture().close()
        except CaptureUnavailable as why:
            return f"no packet capture: {why.reason}"
        return None

    try:
        return run_isolated(probe, mode)
    except IsolationError as error:
        return str(error)
