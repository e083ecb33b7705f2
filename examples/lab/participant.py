"""The one call an example makes: ``step("name")``.

Run by hand, ``step()`` does nothing, so the examples work like plain scripts.
Run by the lab (which sets ``LAB_CONTROL``), ``step()`` tells the lab which step
this process has reached, with any facts worth recording, and then waits until
the lab lets it go on.  That wait is what fixes the order of the two programs.

Each process talks over its own connection to the lab: a forked child notices
that it is not the process that opened the inherited connection and opens a
new one (closing only its copy of the old one, which leaves the parent's
connection alone: the lesson of close() on a shared descriptor, in passing).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from types import TracebackType
from typing import Any

CONTROL_ENV = "LAB_CONTROL"  # path of the lab's Unix socket
PROGRAM_ENV = "LAB_PROGRAM"  # "server" or "client"

_connection: socket.socket | None = None
_connection_pid: int | None = None


def describe_exception(error: BaseException) -> dict[str, Any]:
    """An exception as the record stores it: type, errno and its name, message."""
    described: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    number = getattr(error, "errno", None)
    if isinstance(number, int):
        described["errno"] = number
        described["errno_name"] = errno.errorcode.get(number, "?")
        described["strerror"] = getattr(error, "strerror", None)
    return described


def encode_fact(value: object) -> object:
    """Make a fact JSON-safe while keeping what a reader needs to see.

    Bytes keep their Python spelling (``b'Hello, world'``), so a finding can
    compare against the literal a reader would write.
    """
    if isinstance(value, bytes):
        return {"bytes": repr(value)}
    if isinstance(value, BaseException):
        return {"exception": describe_exception(value)}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [encode_fact(v) for v in value]
    return repr(value)


def _control() -> socket.socket:
    """This process's connection to the lab, opened on first use."""
    global _connection, _connection_pid
    if _connection is not None and _connection_pid != os.getpid():
        # Inherited from the parent across fork(): close our copy only.  No FIN
        # is sent, because the parent still holds the connection open.
        _connection.close()
        _connection = None
    if _connection is None:
        _connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        _connection.connect(os.environ[CONTROL_ENV])
        _connection_pid = os.getpid()
    return _connection


def _send(message: dict[str, Any]) -> None:
    message |= {"program": os.environ.get(PROGRAM_ENV, "?"), "pid": os.getpid()}
    _control().sendall(json.dumps(message).encode() + b"\n")


def step(name: str, **facts: object) -> None:
    """Mark that this program has reached step ``name``; wait for the lab if it runs us."""
    if CONTROL_ENV not in os.environ:
        return
    # Everything printed before this step belongs before it in the record.
    sys.stdout.flush()
    sys.stderr.flush()
    _send({"kind": "step", "step": name, "facts": {k: encode_fact(v) for k, v in facts.items()}})
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = _control().recv(64)
        if not chunk:  # the lab has gone: nobody is left to let us go on
            os._exit(3)
        reply += chunk


def _report_uncaught(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    try:
        _send({"kind": "exception", "exception": describe_exception(error)})
    except OSError:
        pass
    sys.__excepthook__(kind, error, trace)


if CONTROL_ENV in os.environ:
    # Under the lab, an exception nobody caught is recorded with its errno.
    sys.excepthook = _report_uncaught
