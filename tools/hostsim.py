"""Run a command as a documentation host would: as ``nobody``, with user namespaces really refused.

Read the Docs builds as an ordinary user in a container, and GitHub's Ubuntu
24.04 runners refuse unprivileged user namespaces unless a root step lifts
the restriction.  Neither is reachable from here, so this makes such a host:

- a new user namespace (made by us, as root) that maps root and ``nobody``
  to themselves, in which ``user.max_user_namespaces`` is set to 0: a limit
  the kernel applies to that namespace and everything in it, so a later
  ``unshare(CLONE_NEWUSER)`` fails with ENOSPC, as a refusing host's does
  (the host's own limit is untouched);
- then ``nobody`` inside it, with no capabilities: no ``CAP_NET_RAW``, so no
  packet socket opens (EPERM), and no way back.

Usage (as root)::

    python tools/hostsim.py -- COMMAND [ARG...]

The command runs in the current folder with the current environment; it
must be readable by ``nobody`` (copy the tree somewhere it may read first:
/root is not).  The exit status is the command's.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys

CLONE_NEWUSER = 0x10000000
NOBODY = 65534


def _unshare_user() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"unshare(CLONE_NEWUSER): {os.strerror(code)}")


def run_as_refusing_host(command: list[str]) -> int:
    """Run ``command`` as nobody where no user namespace can be made; return its exit status."""
    if os.geteuid() != 0:
        raise SystemExit("hostsim: run as root (it makes the user namespace nobody is then held in)")
    # Found now, as root: once nobody, this interpreter may not read its own library (under /root, say).
    program = shutil.which(command[0])
    if program is None:
        raise SystemExit(f"hostsim: no program {command[0]!r}")
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: into its namespace, wait for its maps, then become nobody
        try:
            os.close(ready_r)
            os.close(go_w)
            _unshare_user()
            os.write(ready_w, b"1")
            if os.read(go_r, 1) != b"1":
                os._exit(125)
            with open("/proc/sys/user/max_user_namespaces", "w", encoding="ascii") as limit:
                limit.write("0")
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.environ["HOME"] = "/nonexistent"
            os.execv(program, command)
        except BaseException as error:  # noqa: BLE001 - the parent gets a status, the reader the reason
            print(f"hostsim: {error}", file=sys.stderr)
            os._exit(126)
    os.close(ready_w)
    os.close(go_r)
    started = os.read(ready_r, 1) == b"1"
    if started:
        # Written from outside (we are root in the parent namespace): root and nobody map to themselves.
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{pid}/{name}", "w", encoding="ascii") as mapping:
                mapping.write(f"0 0 1\n{NOBODY} {NOBODY} 1\n")
        os.write(go_w, b"1")
    os.close(go_w)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    return run_as_refusing_host(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
