"""Watching and stopping the processes of an experiment.

Two questions matter to the coordinator: "is any process of the experiment
still doing something?" (a snapshot waits until none is), and "is every one
of them gone?" (after a run, nothing may be left behind).  On Linux both are
answered from ``/proc``; elsewhere the first is answered optimistically and
the report says that snapshots were taken without that check.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

PROC = Path("/proc")
CAN_SEE_PROCESSES = sys.platform.startswith("linux") and (PROC / "self" / "stat").exists()

# /proc/PID/stat states that mean "not running on a CPU, nor about to":
# sleeping (S), stopped (T, t), zombie (Z), dead (X), idle (I).
_AT_REST = frozenset("STtZXI")


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process, or None if it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces or ")".
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def descendants(roots: list[int]) -> list[int]:
    """The given processes and all their descendants that are still alive."""
    if not CAN_SEE_PROCESSES:
        return list(roots)
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                children.setdefault(stat[1], []).append(int(entry.name))
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        if _stat(pid) is not None:
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


def _busy(pid: int) -> bool:
    """Whether any thread of the process is running or about to run.

    /proc/PID/stat gives the main thread's state only: a server that handles a
    connection in a thread of its own (socketserver.ThreadingTCPServer) would
    look at rest while that thread runs.  So a process with several threads
    has each of them looked at; the common single-threaded case costs one read.
    """
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False  # gone
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] not in _AT_REST:
        return True
    if int(fields[17]) == 1:  # num_threads (field 20 of proc_pid_stat(5))
        return False
    try:
        threads = os.listdir(PROC / str(pid) / "task")
    except OSError:
        return False
    for tid in threads:
        try:
            text = (PROC / str(pid) / "task" / tid / "stat").read_text()
        except OSError:
            continue  # that thread has ended meanwhile
        if text[text.rindex(")") + 2] not in _AT_REST:
            return True
    return False


def busy(pids: list[int]) -> list[int]:
    """Those of ``pids`` with a thread running or about to run (not blocked, not exited)."""
    if not CAN_SEE_PROCESSES:
        return []
    return [pid for pid in pids if _busy(pid)]


def become_subreaper() -> None:
    """Adopt our orphaned grandchildren (Linux), so that none can outlive a run unseen.

    The forking server's children are orphaned when the server is stopped;
    with this they are re-parented to us and we reap them, instead of init.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def reap_orphans() -> None:
    """Collect the exit status of any adopted orphan that has ended."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill a program and every process it started (they share its process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def wait_for_exit(pids: list[int], timeout: float) -> list[int]:
    """Wait until each of ``pids`` has exited; return those still alive after ``timeout``.

    A pidfd becomes readable when its process exits, so this waits for the
    event itself, for our children and for processes that are not.
    """
    if not hasattr(os, "pidfd_open"):
        return []
    waiting: dict[int, int] = {}
    for pid in pids:
        try:
            waiting[os.pidfd_open(pid)] = pid
        except (ProcessLookupError, OSError):
            continue  # already gone
    end = time.monotonic() + timeout
    try:
        while waiting and (remaining := end - time.monotonic()) > 0:
            ready, _, _ = select.select(list(waiting), [], [], remaining)
            for fd in ready:
                waiting.pop(fd)
                os.close(fd)
        return sorted(waiting.values())
    finally:
        for fd in waiting:
            os.close(fd)
