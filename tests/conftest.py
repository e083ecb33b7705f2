"""Shared test set-up: Sphinx's own test fixtures, and the lab importable as `lab`."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "examples"), str(ROOT)]

pytest_plugins = ["sphinx.testing.fixtures"]


# -- Lab engine tests: nothing of a run may outlive it ---------------------------
#
# Every run a test makes is marked by a unique environment variable, which the
# lab passes on to both programs and to every process they fork.  Afterwards no
# live process may carry that mark, no pid a program reported may still exist
# (not even as a zombie), and no socket on the run's server port may be left
# but the kernel's own TIME_WAIT entries.

import os
import time
import uuid

import lab.coordinator
import pytest
from lab.coordinator import ExperimentError
from lab.record import Record

LAB_MARK_ENV = "LAB_TEST_RUN_MARK"


class LabLeftovers:
    mark_env = LAB_MARK_ENV

    @staticmethod
    def new_mark() -> str:
        return uuid.uuid4().hex

    @staticmethod
    def processes_marked(mark: str) -> list[int]:
        """Live processes (other than this one) whose environment holds ``mark``."""
        needle = f"{LAB_MARK_ENV}={mark}".encode()
        found = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry.name}/environ", "rb") as f:
                    environ = f.read().split(b"\0")
            except OSError:
                continue  # gone meanwhile, or not ours to read
            if needle in environ:
                found.append(int(entry.name))
        return found

    @staticmethod
    def existing(pids) -> list[int]:
        """Those of ``pids`` that still exist in /proc, zombies included."""
        return sorted(pid for pid in set(pids) if os.path.exists(f"/proc/{pid}"))

    @staticmethod
    def sockets_left(port: int, timeout: float = 3.0) -> list:
        """Sockets on ``port`` other than TIME_WAIT, once the kernel has settled (bounded poll)."""
        from lab.sockets import read_table

        end = time.monotonic() + timeout
        while True:
            rows = [
                s
                for s in read_table().sockets
                if port in (s.local.port, s.remote.port) and s.state != "TIME_WAIT"
            ]
            if not rows or time.monotonic() > end:
                return rows


@pytest.fixture
def lab_leftovers() -> type[LabLeftovers]:
    return LabLeftovers


def python_for_user(user: str) -> str | None:
    """A Python 3.11+ that ``user`` may run (root's own may sit in a folder only root can enter)."""
    import shutil
    import subprocess
    import sys

    if os.geteuid() != 0 or not shutil.which("runuser"):
        return None
    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if not candidate:
            continue
        probe = subprocess.run(
            ["runuser", "-u", user, "--", candidate, "-c", "import sys, tomllib; print(sys.version_info >= (3, 11))"],
            capture_output=True,
            text=True,
        )
        if probe.stdout.strip() == "True":
            return candidate
    return None


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)  # the files are world-readable already; only the folders above them are not
    except OSError:
        import shutil

        shutil.copy2(source, target)


@pytest.fixture(scope="session")
def nobody_packages(nobody_python: str):
    """Our installed packages, on a path the user ``nobody`` can read, for its PYTHONPATH.

    In a fresh clone made with ``mktemp -d`` the venv sits in a folder only its
    owner may enter; nobody then finds no Sphinx.  A hard-linked copy (a copy
    across file systems) in a folder nobody may enter fixes that.
    """
    import shutil
    import subprocess
    import sysconfig
    import tempfile

    packages = sysconfig.get_paths()["purelib"]
    probe = subprocess.run(["runuser", "-u", "nobody", "--", "test", "-r", f"{packages}/sphinx/__init__.py"])
    if probe.returncode == 0:
        yield packages
        return
    # Not under pytest's tmp_path: its base folder is private to us too.
    place = Path(tempfile.mkdtemp(prefix="packages-for-nobody-"))
    try:
        target = place / "site-packages"
        shutil.copytree(packages, target, copy_function=_link_or_copy, ignore=shutil.ignore_patterns("__pycache__"))
        for path in (place, *place.rglob("*")):
            if path.is_dir():
                path.chmod(0o755)
        yield str(target)
    finally:
        shutil.rmtree(place)


@pytest.fixture(scope="session")
def nobody_python() -> str:
    """An interpreter the user ``nobody`` may run, for the tests run as an ordinary user (as root only)."""
    python = python_for_user("nobody")
    if python is None:
        pytest.skip("running as the user nobody needs root, runuser (util-linux) and a Python 3.11+ nobody may run")
    return python


@pytest.fixture
def lab_run(monkeypatch, lab_leftovers):
    """``run_experiment(experiment, run, deadline, isolation)``, checked afterwards for what it left behind.

    The run happens in a forked child (in a network namespace of its own when
    it can), so what we check comes back with its result: the pids of every
    process it started or heard from, and its server port.
    """

    def run(experiment, run_name=None, deadline=None, isolation=None) -> Record:
        mark = lab_leftovers.new_mark()
        monkeypatch.setenv(lab_leftovers.mark_env, mark)  # inherited by both programs and their children
        pids: list[int] = []
        port, namespaced = None, False
        try:
            record = lab.coordinator.run_experiment(experiment, run_name, deadline, isolation)
            pids, port = record.metadata["pids"], record.ports.get("server")
            namespaced = record.isolation.startswith("a network namespace")
        except ExperimentError as error:
            pids, port = error.pids, error.server_port
            namespaced = isolation != "loopback" and os.geteuid() == 0
            raise
        finally:
            monkeypatch.delenv(lab_leftovers.mark_env)
            assert pids, "the run started no program"
            assert lab_leftovers.existing(pids) == [], f"processes of the run still exist (pids {pids})"
            assert lab_leftovers.processes_marked(mark) == [], "processes carrying the run's mark are alive"
            if port and not namespaced:  # a namespace takes its sockets with it
                left = lab_leftovers.sockets_left(port)
                assert left == [], f"sockets of the run on port {port} left in the kernel: {left}"
        assert all(row.state == "TIME_WAIT" for row in record.leftover), record.leftover
        return record

    return run
