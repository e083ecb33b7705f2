"""The capture and its cache, without Sphinx: real runs of the examples on real sockets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lab.schedule import load_experiment

from sphinx_lab import capture as capture_module
from sphinx_lab.capture import (
    CaptureCache,
    CaptureError,
    CaptureJob,
    cache_key,
    capture,
    run_capture,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BROKEN = Path(__file__).resolve().parent / "roots" / "test-lab-broken" / "examples"


def job_for(examples: Path, experiment_name: str, run: str | None = None, deadline: float | None = None) -> CaptureJob:
    experiment = load_experiment(experiment_name, examples / "experiments.toml")
    lab_dir = examples / "lab" if (examples / "lab").is_dir() else EXAMPLES / "lab"
    return CaptureJob(
        experiment=experiment.name,
        run=experiment.run(run).name,
        client=experiment.programs["client"],
        experiment_files=tuple(experiment.files()),
        lab_files=tuple(sorted(lab_dir.glob("*.py"))),
        deadline=experiment.deadline,
        deadline_override=deadline,
        lab_home=lab_dir.parent,
    )


@pytest.fixture
def examples_copy(tmp_path: Path) -> Path:
    """The examples in a folder of the test's own, free to edit."""
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_module_imports_nothing_from_sphinx() -> None:
    code = "import sys, sphinx_lab.capture; sys.exit(any(m.split('.')[0] in ('sphinx', 'docutils') for m in sys.modules))"
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(EXAMPLES), str(ROOT)]), "PYTHONDONTWRITEBYTECODE": "1"}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


def test_command_is_the_readers_own() -> None:
    job = job_for(EXAMPLES, "close")
    command = job.command(Path("/tmp/record.json"))
    assert command == [sys.executable, str(EXAMPLES / "client-close.py"), "--run", "close", "--json", "/tmp/record.json", "--quiet"]
    assert job.timeout == job.deadline + capture_module.TIMEOUT_MARGIN
    slow = job_for(EXAMPLES, "close", deadline=12.5)  # lab_deadline: passed on, and the timeout follows it
    assert slow.command(Path("/tmp/r.json"))[-2:] == ["--deadline", "12.5"]
    assert slow.timeout == 12.5 + capture_module.TIMEOUT_MARGIN


def test_key_changes_with_every_input(examples_copy: Path) -> None:
    job = job_for(examples_copy, "close")
    first = cache_key(job)
    assert cache_key(job_for(examples_copy, "close")) == first  # by content: stable

    client = examples_copy / "client-close.py"
    client.write_text(client.read_text() + "\n# an edit\n")
    after_client = cache_key(job)
    assert after_client != first

    coordinator = examples_copy / "lab" / "coordinator.py"
    coordinator.write_text(coordinator.read_text() + "\n# an edit\n")
    assert cache_key(job) != after_client

    shutdown = job_for(examples_copy, "shutdown")
    other_run = job_for(examples_copy, "shutdown", "echo-after-shut-rd")
    assert cache_key(shutdown) != cache_key(other_run)


def test_key_changes_with_where_the_run_takes_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """A capture made on the machine's loopback (no packets) must not stand in for a namespaced one."""
    job = job_for(EXAMPLES, "close")
    monkeypatch.delenv("LAB_ISOLATION", raising=False)
    auto = cache_key(job)
    monkeypatch.setenv("LAB_ISOLATION", "loopback")
    assert cache_key(job) != auto


def test_capture_then_cache_hit(tmp_path: Path) -> None:
    cache = CaptureCache(tmp_path / "captures")
    job = job_for(EXAMPLES, "close")
    started: list[str] = []

    first = capture(job, cache, starting=lambda: started.append(job.label))
    assert not first.from_cache and started == ["close/close"]
    assert first.record.snapshot("client:closed").row("server").recv_q == 13  # type: ignore[union-attr]

    second = capture(job, cache, starting=lambda: started.append(job.label))
    assert second.from_cache and started == ["close/close"]  # nothing ran
    assert second.record.normalised() == first.record.normalised()
    # The record and its pcap file beside it, and no temporary file left.
    key = cache_key(job)
    assert sorted(p.name for p in cache.directory.iterdir()) == [cache.path(job, key).name, cache.pcap_path(job, key).name]
    assert first.pcap_path == second.pcap_path == cache.pcap_path(job, key)
    assert second.pcap_path.read_bytes()[:4] == (0xA1B23C4D).to_bytes(4, sys.byteorder)  # type: ignore[union-attr]


def test_corrupt_or_old_cache_file_is_a_miss(tmp_path: Path) -> None:
    cache = CaptureCache(tmp_path / "captures")
    job = job_for(EXAMPLES, "close")
    capture(job, cache)
    path = cache.path(job, cache_key(job))
    good = path.read_text()

    path.write_text(good[: len(good) // 2])  # cut short, as by a crash mid-write without os.replace
    assert cache.load(job, cache_key(job)) is None

    old = json.loads(good) | {"schema": 0}
    path.write_text(json.dumps(old))
    assert cache.load(job, cache_key(job)) is None

    again = capture(job, cache)  # a miss runs again, and repairs the file
    assert not again.from_cache
    assert cache.load(job, cache_key(job)) is not None


def test_failure_is_reported_and_never_cached(tmp_path: Path) -> None:
    cache = CaptureCache(tmp_path / "captures")
    job = job_for(BROKEN, "crash")
    for _ in range(2):  # the second attempt runs again: nothing was cached
        with pytest.raises(CaptureError) as caught:
            capture(job, cache)
        message = str(caught.value)
        assert caught.value.status == 1
        assert "client-crash.py --run boom --json" in message
        assert "the broken client starts" in message  # stdout tail
        assert "KeyError: 'port'" in message  # stderr tail
    assert not cache.directory.exists() or not list(cache.directory.iterdir())


def test_stuck_capture_is_stopped_with_everything_it_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture_module, "TIMEOUT_MARGIN", 0.5)
    monkeypatch.setattr(capture_module, "GRACE_SECONDS", 0.5)
    job = job_for(BROKEN, "hang")  # its deadline is 0.5 s
    with pytest.raises(CaptureError) as caught:
        run_capture(job)
    assert caught.value.status is None
    assert "no result within 1 s" in str(caught.value)
    child = int(caught.value.stdout.split()[1])
    assert _gone(child)


def _gone(pid: int) -> bool:
    """Gone, or a zombie waiting for an init that does not reap (as in some containers)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"
