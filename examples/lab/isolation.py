"""Give a run a network of its own: a fresh Linux network namespace, or plain loopback.

In a namespace of its own an experiment has a loopback interface nobody else
uses: the server can take the note's port 50008, no other program's
connection shows up in its tables or its packet capture, runs can go side by
side (``sphinx-build -j``), and whatever the run leaves in the kernel (a
TIME_WAIT) goes away with the namespace.

Three ways, tried in this order:

- ``namespace``: as root, ``unshare(CLONE_NEWNET)``;
- ``user-namespace``: as an ordinary user, ``unshare(CLONE_NEWUSER |
  CLONE_NEWNET)`` and a map of our uid to root inside it, which gives us the
  rights over the new network (bring ``lo`` up, capture packets) and none
  outside it (what ``unshare --user --map-root-user --net`` does);
- ``loopback``: where the system allows neither, the machine's own loopback
  with a free port, and the record says why.

A process cannot leave a user namespace again, so the run happens in a forked
child (``run_isolated``) and only its result comes back.  The child is
forked before anything else is started, so it is single-threaded, as
``unshare(CLONE_NEWUSER)`` requires.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import pickle
import signal
import socket
import struct
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

MODES = ("auto", "namespace", "loopback")
MODE_ENV = "LAB_ISOLATION"  # "loopback" forces the machine's loopback, e.g. to compare

T = TypeVar("T")


class IsolationError(RuntimeError):
    """The isolated child failed in a way that is not the experiment's own error."""


@dataclass(frozen=True)
class Isolation:
    """Where a run takes place."""

    kind: str  # "namespace", "user-namespace" or "loopback"
    reason: str = ""  # for loopback: why not a namespace of its own

    @property
    def isolated(self) -> bool:
        return self.kind != "loopback"

    def describe(self) -> str:
        """One line for the record, the terminal and the page."""
        if self.kind == "namespace":
            return "a network namespace of its own (created as root)"
        if self.kind == "user-namespace":
            return "a network namespace of its own, inside an unprivileged user namespace"
        return f"the machine's own loopback, with a free port ({self.reason})"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> None:
    if _libc().unshare(flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as file:
        file.write(text)


def _loopback_up() -> None:
    """``ip link set lo up``, without needing the ip command: a new namespace starts with lo down."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def _errno_name(error: OSError) -> str:
    return errno.errorcode.get(error.errno or 0, str(error.errno))


def enter_network_namespace() -> Isolation:
    """Move this (single-threaded) process into a new network namespace with ``lo`` up.

    Returns how it was done, or a loopback Isolation that says why it could not be.
    """
    if not sys.platform.startswith("linux"):
        return Isolation("loopback", f"network namespaces are Linux's; this is {sys.platform}")
    uid, gid = os.geteuid(), os.getegid()
    try:
        if uid == 0:
            _unshare(CLONE_NEWNET)
            kind = "namespace"
        else:
            _unshare(CLONE_NEWUSER | CLONE_NEWNET)
            # Inside, we are root over the new network only.  setgroups must be denied
            # before an unprivileged process may write its gid_map.
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"0 {uid} 1")
            _write("/proc/self/gid_map", f"0 {gid} 1")
            kind = "user-namespace"
    except OSError as error:
        how = "unshare(CLONE_NEWNET)" if uid == 0 else "an unprivileged user namespace"
        return Isolation("loopback", f"{how} is not allowed here: {_errno_name(error)}")
    _loopback_up()
    return Isolation(kind)


def requested_mode(mode: str | None = None) -> str:
    """The mode asked for: the argument, else $LAB_ISOLATION, else auto."""
    chosen = mode or os.environ.get(MODE_ENV) or "auto"
    if chosen not in MODES:
        raise IsolationError(f"isolation {chosen!r} is not one of {', '.join(MODES)} (from ${MODE_ENV} or --isolation)")
    return chosen


def run_isolated(work: Callable[[Isolation], T], mode: str | None = None) -> T:
    """Call ``work(isolation)`` in a forked child that first enters a network namespace of its own.

    ``work``'s result, or the exception it raised, comes back through a pipe
    (pickled); the child then exits, and its namespace goes with it.  With
    mode "loopback" (or where fork is unavailable) ``work`` runs here, on the
    machine's loopback.  "namespace" insists on a namespace and fails if
    there can be none.
    """
    mode = requested_mode(mode)
    if mode == "loopback":
        return work(Isolation("loopback", f"asked for with {MODE_ENV}=loopback or --isolation loopback"))
    if not hasattr(os, "fork"):
        return work(Isolation("loopback", "this system cannot fork"))
    reader, writer = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(reader)
        _child(work, mode, writer)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        try:
            payload = pipe.read()
        except KeyboardInterrupt:
            # Ctrl-C reached the child too; let it stop its programs before we go.
            payload = pipe.read()
            os.waitpid(pid, 0)
            raise
    _, status = os.waitpid(pid, 0)
    if not payload:
        raise IsolationError(f"the isolated run ended without a result (wait status {status:#x})")
    outcome, value = pickle.loads(payload)
    if outcome == "ok":
        return value
    if outcome == "raised":
        raise value
    raise IsolationError(f"the isolated run failed:\n{value}")


def _child(work: Callable[[Isolation], object], mode: str, writer: int) -> None:
    code = 0
    try:
        isolation = enter_network_namespace()
        if mode == "namespace" and not isolation.isolated:
            raise IsolationError(f"no network namespace could be made: {isolation.reason}")
        result: tuple[str, object] = ("ok", work(isolation))
    except KeyboardInterrupt:
        result, code = ("crash", "interrupted"), 130
    except Exception as error:  # noqa: BLE001 - every failure goes back to the parent, which raises it
        error.add_note("(raised in the isolated run:)\n" + traceback.format_exc().rstrip())
        result = ("raised", error)
    try:
        payload = pickle.dumps(result)
    except Exception:  # noqa: BLE001 - an exception that cannot be pickled still gets its traceback home
        payload = pickle.dumps(("crash", traceback.format_exc()))
    try:
        with os.fdopen(writer, "wb") as pipe:
            pipe.write(payload)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os._exit(code)  # no atexit handlers, no pytest teardown: this is only a copy of the parent
