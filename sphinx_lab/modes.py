"""The execution modes: how a build gets each run's record, one strategy class per mode.

As MyST-NB's ``nb_execution_mode``, the mode is picked once per build
(``lab_execution_mode``; see config.py for where it may be set) and every
page asks it for its runs' evidence:

``auto``    capture live where this host can capture everything a page shows
            (a network namespace and its packets, probed once per process by
            host.py), else take the recorded evidence (docs/captures);
``force``   always capture live; where this host cannot capture everything,
            say so with a located ``lab.capture`` warning (``-W`` fails);
``replay``  the recorded evidence only; run nothing (a documentation host);
``off``     sources only: nothing is run or read, nothing is checked.

A live capture comes from the build's cache when the same sources were
captured before (origin "cache"); a recorded one from the evidence folder
committed with the sources (origin "recorded").
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from lab.evidence import EvidenceError, EvidenceStore
from lab.record import Record

from .config import MODES
from .capture import CaptureCache, CaptureError, CaptureJob, cache_key, capture
from .host import HostCapability, probe_host
from .logs import LabWarning

RECORD_COMMAND = "make captures"  # what re-records the evidence, when the store does not say

Origin = Literal["live", "cache", "recorded"]

# When this build began (set at builder-inited, inherited by -j's forked readers): a run
# another page of this same build captured is live too, whichever page happened to be first.
_build_started = time.time()


def note_build_start() -> None:
    global _build_started
    _build_started = time.time()


@dataclass(frozen=True)
class Evidence:
    """A run's record, where it came from, and the files a reader may download."""

    record: Record
    origin: Origin
    seconds: float  # how long the capture took (for a cache hit or a recording: the original run's time)
    json_path: Path
    pcap_path: Path | None  # None where the run has no packets file
    why_recorded: str = ""  # for origin "recorded": why this build did not capture it itself

    @property
    def live(self) -> bool:
        return self.origin != "recorded"


class Unavailable(Exception):
    """No evidence for a run: ``summary`` for the page, ``detail`` for the warning, of ``subtype``."""

    def __init__(self, summary: str, detail: str = "", subtype: LabWarning = LabWarning.CAPTURE) -> None:
        super().__init__(summary)
        self.summary, self.detail, self.subtype = summary, detail, subtype


Starting = Callable[[], None]


@dataclass(frozen=True)
class ModeSettings:
    cache_dir: Path  # the build's capture cache (live captures)
    evidence_dir: Path  # the recorded evidence committed with the sources


class ExecutionMode:
    """The base strategy: what a mode does for each run a page shows."""

    name: ClassVar[str]
    runs: ClassVar[bool] = True  # False: nothing is captured or read, nothing checked

    def __init__(self, settings: ModeSettings) -> None:
        self.settings = settings

    def prepare(self) -> None:
        """Once per build, before any page is read (so forked readers inherit what it learnt)."""
        note_build_start()

    def evidence(self, job: CaptureJob, starting: Starting) -> Evidence:
        raise NotImplementedError

    def shortfall(self) -> str | None:
        """What this build cannot check that a page shows, to be warned about; None when nothing."""
        return None

    # -- the two ways to evidence, shared by the modes -------------------------------

    def _live(self, job: CaptureJob, starting: Starting) -> Evidence:
        cache = CaptureCache(self.settings.cache_dir)
        try:
            result = capture(job, cache, starting=starting)
        except CaptureError as error:
            raise Unavailable(f"the capture of {job.label} failed: {error.reason}", str(error)) from error
        seconds = result.seconds if not result.from_cache else float(result.record.metadata.get("seconds") or 0.0)
        pcap = getattr(result, "pcap_path", None)  # the evidence store's Capture carries its pcap
        json_path = cache.path(job, cache_key(job))
        earlier = result.from_cache and json_path.stat().st_mtime < _build_started
        return Evidence(
            record=result.record,
            origin="cache" if earlier else "live",
            seconds=seconds,
            json_path=json_path,
            pcap_path=pcap if pcap is not None and Path(pcap).exists() else None,
        )

    def _recorded(self, job: CaptureJob, why: str) -> Evidence:
        store = EvidenceStore(self.settings.evidence_dir)
        try:
            recorded = store.load(job.experiment, job.run, job.source_key())
        except EvidenceError as error:
            where = _shown(Path(error.path))
            raise Unavailable(
                f"no usable recorded evidence for {job.label}: {where} is {error.reason}",
                f"recorded evidence for {job.label}: {where} is {error.reason}; re-record it with: {error.remedy}",
                subtype=LabWarning.EVIDENCE,
            ) from error
        pcap = Path(recorded.pcap_path) if recorded.pcap_path is not None else None
        return Evidence(
            record=recorded.record,
            origin="recorded",
            seconds=float(recorded.record.metadata.get("seconds") or 0.0),
            json_path=Path(recorded.json_path),
            pcap_path=pcap if pcap is not None and pcap.exists() else None,
            why_recorded=why,
        )


def _shown(path: Path) -> str:
    """A path as a reader at the project's top would type it."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


class Auto(ExecutionMode):
    name = "auto"

    def prepare(self) -> None:
        super().prepare()
        probe_host()

    def evidence(self, job: CaptureJob, starting: Starting) -> Evidence:
        host = probe_host()
        if host.can_capture:
            return self._live(job, starting)
        return self._recorded(job, f"this host could not capture: {host.reason}")


class Force(ExecutionMode):
    name = "force"

    def prepare(self) -> None:
        super().prepare()
        probe_host()

    def evidence(self, job: CaptureJob, starting: Starting) -> Evidence:
        return self._live(job, starting)

    def shortfall(self) -> str | None:
        host: HostCapability = probe_host()
        if host.can_capture:
            return None
        return (
            f"lab_execution_mode is force, but this host cannot capture everything the page shows: {host.reason}; "
            f"what needs it is not checked (use auto or replay to show the recorded evidence)"
        )


class Replay(ExecutionMode):
    name = "replay"

    def evidence(self, job: CaptureJob, starting: Starting) -> Evidence:
        return self._recorded(job, "this build runs nothing (lab_execution_mode is replay)")


class Off(ExecutionMode):
    name = "off"
    runs = False


STRATEGIES: dict[str, type[ExecutionMode]] = {mode.name: mode for mode in (Auto, Force, Replay, Off)}
assert tuple(STRATEGIES) == MODES


def make_mode(name: str, settings: ModeSettings) -> ExecutionMode:
    return STRATEGIES[name](settings)
