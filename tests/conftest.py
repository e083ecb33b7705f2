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

import os  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import pytest  # noqa: E402

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


@pytest.fixture(scope="session")
def nobody_python() -> str:
    """An interpreter the user ``nobody`` may run, for the tests run as an ordinary user (as root only)."""
    python = python_for_user("nobody")
    if python is None:
        pytest.skip("running as the user nobody needs root, runuser (util-linux) and a Python 3.11+ nobody may run")
    return python
