"""Getting a run's record: from the cache, or by running the example as a reader would.

Nothing here imports Sphinx (or docutils): the cache and the subprocess are
tested on their own, and a capture is exactly the command a reader types::

    python examples/client-close.py --run close --json FILE --quiet

so what the documentation shows is what that command gives, and a failure is
reported with that command, ready to paste into a terminal.

The cache holds one JSON file per capture, named by a key that changes when
anything that decides the capture changes (see ``cache_key``).  Writes are
atomic, because ``sphinx-build -j N`` reads pages in parallel processes that
may look up or store the same capture at the same time.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from lab import evidence
from lab.isolation import MODE_ENV
from lab.processes import descendants, wait_for_exit
from lab.record import SCHEMA_VERSION, Record

TIMEOUT_MARGIN = 5.0  # seconds on top of the run's deadline: start-up and the coordinator's own clean-up
GRACE_SECONDS = 2.5  # after Ctrl-C, how long the coordinator gets to stop its programs itself
TAIL_LINES = 12  # lines of each stream quoted in a failure


@dataclass(frozen=True)
class CaptureJob:
    """One run of one experiment to capture, and everything its result depends on."""

    experiment: str
    run: str
    client: Path  # the client script: running it runs the whole experiment
    experiment_files: tuple[Path, ...]  # experiments.toml and both programs (Experiment.files())
    lab_files: tuple[Path, ...]  # the capture code itself: lab/*.py
    deadline: float  # the experiment's own deadline, in seconds
    deadline_override: float | None = None  # lab_deadline, passed on as --deadline
    lab_home: Path | None = None  # the folder holding the lab package, if not next to the client

    @property
    def label(self) -> str:
        return f"{self.experiment}/{self.run}"

    @property
    def timeout(self) -> float:
        """The coordinator stops a stuck run at its deadline; this only catches a stuck coordinator."""
        return (self.deadline_override or self.deadline) + TIMEOUT_MARGIN

    def command(self, json_file: Path, pcap_file: Path | None = None) -> list[str]:
        command = [sys.executable, str(self.client), "--run", self.run, "--json", str(json_file)]
        if pcap_file is not None:
            command += ["--pcap", str(pcap_file)]
        command.append("--quiet")
        if self.deadline_override is not None:
            command += ["--deadline", f"{self.deadline_override:g}"]
        return command

    def inputs(self) -> list[Path]:
        """Every file whose content decides the capture (and whose edit must re-read the page)."""
        return [*self.experiment_files, *sorted(self.lab_files)]

    def source_key(self) -> str:
        """The key of the recorded evidence (lab/evidence.py): the inputs only, no host facts."""
        return evidence.source_key(self.inputs(), self.experiment, self.run)


class CaptureError(RuntimeError):
    """A capture failed; ``str()`` holds the command, the exit status and the tails of its output."""

    def __init__(
        self,
        job: CaptureJob,
        reason: str,
        command: list[str],
        status: int | None = None,
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        self.job, self.reason, self.command = job, reason, command
        self.status, self.stdout, self.stderr = status, stdout, stderr
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [
            f"capture of {self.job.label} failed: {self.reason}",
            f"  command: {shlex.join(self.command)}",
            f"  exit status: {'none (it was stopped)' if self.status is None else self.status}",
        ]
        for name, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            lines.append(f"  --- {name} (last {TAIL_LINES} lines) ---" if text.strip() else f"  --- {name}: empty ---")
            lines += [f"  {line}" for line in tail(text)]
        return "\n".join(lines)


def tail(text: str, lines: int = TAIL_LINES) -> list[str]:
    return text.rstrip("\n").splitlines()[-lines:] if text.strip() else []


def cache_key(job: CaptureJob) -> str:
    """A digest of everything that decides what a capture shows.

    The files are hashed by content, not by date, so a checkout or a touched
    file does not invalidate the cache.  The kernel release and the Python
    version are in the key because the socket states are the kernel's answer,
    and the record's schema because an old record cannot be read back.  Where
    the run takes place is too: the isolation asked for ($LAB_ISOLATION), and
    whether we are root (a namespace of our own, or one in a user namespace;
    packets or none), since the page says which.
    """
    digest = hashlib.sha256()
    for path in job.inputs():
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    where = (os.environ.get(MODE_ENV) or "auto", "root" if os.geteuid() == 0 else "user")
    for part in (job.experiment, job.run, sys.version, platform.release(), str(SCHEMA_VERSION), *where):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


class CaptureCache:
    """A folder of records, one JSON file per capture key."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, job: CaptureJob, key: str) -> Path:
        # The names are for the humans who look in the folder; the key alone decides a hit.
        return self.directory / f"{job.experiment}-{job.run}-{key[:32]}.json"

    def pcap_path(self, job: CaptureJob, key: str) -> Path:
        """The run's pcap file, beside its record."""
        return self.path(job, key).with_suffix(".pcap")

    def load(self, job: CaptureJob, key: str) -> Record | None:
        """The cached record, or None for a miss: absent, unreadable, corrupt or of an old schema."""
        try:
            record = Record.from_json(self.path(job, key).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        if (record.experiment, record.run) != (job.experiment, job.run):
            return None
        return record

    def store(self, job: CaptureJob, key: str, text: str, pcap: bytes | None = None) -> None:
        """Write atomically: a parallel reader sees the old file, or none, or the whole new one.

        The pcap file is written first, so a record found in the cache has its pcap beside it.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        if pcap is not None:
            self._write(self.pcap_path(job, key), pcap)
        self._write(self.path(job, key), text.encode("utf-8"))

    def _write(self, target: Path, data: bytes) -> None:
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


@dataclass(frozen=True)
class Capture:
    record: Record
    from_cache: bool
    seconds: float  # time the run took (0 for a cache hit)
    pcap_path: Path | None = None  # the run's segments as a pcap file (in the cache); None: no packets


def capture(job: CaptureJob, cache: CaptureCache, starting: Callable[[], None] | None = None) -> Capture:
    """The record of ``job``: from the cache if it holds it, else by running it (and caching it).

    ``starting`` is called just before a run, for progress messages.  Raises
    CaptureError; a failure is never cached, so the next build tries again.
    """
    key = cache_key(job)
    record = cache.load(job, key)
    pcap_file = cache.pcap_path(job, key)
    if record is not None:
        return Capture(record, from_cache=True, seconds=0.0, pcap_path=pcap_file if pcap_file.is_file() else None)
    if starting is not None:
        starting()
    started = time.monotonic()
    result = run_capture_files(job)
    cache.store(job, key, result.text, result.pcap)
    seconds = time.monotonic() - started
    return Capture(result.record, from_cache=False, seconds=seconds, pcap_path=pcap_file if result.pcap is not None else None)


@dataclass(frozen=True)
class CaptureResult:
    """What one run of the client's command line wrote: the record, its JSON text, its pcap file's bytes."""

    record: Record
    text: str
    pcap: bytes | None  # None: no packets could be captured (the record says why)


def run_capture(job: CaptureJob) -> tuple[Record, str]:
    """Run the client's command line once and read back the record it wrote (and its JSON text)."""
    result = run_capture_files(job)
    return result.record, result.text


def run_capture_files(job: CaptureJob) -> CaptureResult:
    """Run the client's command line once (with ``--pcap``) and read back everything it wrote."""
    with tempfile.TemporaryDirectory(prefix="sphinx-lab-") as workdir:
        json_file = Path(workdir) / "record.json"
        pcap_file = Path(workdir) / "segments.pcap"
        command = job.command(json_file, pcap_file)
        env = os.environ | {
            # The reader's run would leave __pycache__ in examples/; a build must
            # not write there (sphinx-autobuild watches it and would loop).
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        if job.lab_home is not None:
            # An examples folder without its own lab/ (a test's) still finds it.
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(job.lab_home), os.environ.get("PYTHONPATH")]))
        # Output goes to files, not pipes: a leaked grandchild holding a pipe
        # open could otherwise keep us waiting after the client has exited.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    cwd=job.client.parent,  # as a reader does: cd examples
                    env=env,
                    start_new_session=True,  # its own process group, so a stuck run can be stopped whole
                )
            except OSError as error:
                raise CaptureError(job, f"could not start it: {error}", command) from error
            try:
                status: int | None = process.wait(timeout=job.timeout)
                reason = f"exited with status {status}"
            except subprocess.TimeoutExpired:
                _stop(process)
                status = None
                reason = f"no result within {job.timeout:g} s (the run's deadline plus {TIMEOUT_MARGIN:g} s); stopped it"
            stdout, stderr = _read(out), _read(err)
        if status != 0:
            raise CaptureError(job, reason, command, status, stdout, stderr)
        try:
            text = json_file.read_text(encoding="utf-8")
            record = Record.from_json(text)
            pcap = pcap_file.read_bytes() if pcap_file.exists() else None
            return CaptureResult(record, text, pcap)
        except FileNotFoundError as error:
            raise CaptureError(job, "it exited with status 0 but wrote no record", command, status, stdout, stderr) from error
        except (ValueError, KeyError, TypeError) as error:
            raise CaptureError(job, f"its record cannot be read: {error}", command, status, stdout, stderr) from error


def _read(stream: IO[bytes]) -> str:
    stream.seek(0)
    return stream.read().decode(errors="replace")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a stuck capture and everything it started, leaving no process behind.

    Ctrl-C first: the coordinator then stops both programs itself (they run in
    process groups of their own, which killing ours would miss).  Whatever is
    still there after a grace period is killed, group by group.
    """
    tree = descendants([process.pid])
    try:
        os.kill(process.pid, signal.SIGINT)
        process.wait(timeout=GRACE_SECONDS)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    own_group = os.getpgrp()
    everyone = [*tree, *descendants([process.pid])]
    for pid in everyone:
        try:
            group = os.getpgid(pid)
            if group != own_group:
                os.killpg(group, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    process.wait()
    # A killed process dies a moment later, not during kill(): wait for the exits themselves.
    wait_for_exit(everyone, timeout=GRACE_SECONDS)
