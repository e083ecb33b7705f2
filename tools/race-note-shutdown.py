"""The note's shutdown run, by hand, many times: which of the four endings does it meet?

The note ran its two programs by hand and its client printed
``Received 'Hello, world'``.  What the client gets is a race: between its
``shutdown(SHUT_WR)`` and its ``shutdown(SHUT_RD)`` the server may or may not
have read, echoed, and even closed.  The shutdown page runs each ending in a
fixed order; this tool runs the two programs the note's way, with nothing
held, and counts the endings:

    echo        recv() returned b'Hello, world' (the echo came before SHUT_RD)
    b''         recv() returned b'' (SHUT_RD came first, the echo was reset)
    ECONNRESET  recv() failed (the echo came between SHUT_RD and recv())
    ENOTCONN    shutdown(SHUT_RD) failed (the server had echoed and closed)

    python tools/race-note-shutdown.py             # 40 runs
    python tools/race-note-shutdown.py --runs 100

It starts ``examples/multi-process-server.py`` on a free loopback port (the
machine's own network, outside the lab), runs ``examples/client-shutdown.py
--port P`` once per run, and prints the count of each ending.  The counts are
the machine's: its CPUs, its load, Python's start-up time.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def ending(stdout: str) -> str:
    if "shut_rd failed" in stdout:
        return "ENOTCONN"
    if "Received b'Hello, world'" in stdout:
        return "echo"
    if "Received b''" in stdout:
        return "b''"
    if "ECONNRESET" in stdout:
        return "ECONNRESET"
    return f"other: {stdout.strip()!r}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="how many runs (default: %(default)s)")
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "multi-process-server.py"), "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stderr.readline()  # "listening on 127.0.0.1:PORT": the server is ready
        port = line.rsplit(":", 1)[1].strip()
        counts = collections.Counter()
        for _ in range(args.runs):
            client = subprocess.run(
                [sys.executable, str(EXAMPLES / "client-shutdown.py"), "--port", port],
                capture_output=True,
                text=True,
                check=False,
            )
            counts[ending(client.stdout)] += 1
    finally:
        server.terminate()
        server.wait()
    print(f"{args.runs} runs: " + ", ".join(f"{name} {count}" for name, count in counts.most_common()))


if __name__ == "__main__":
    main()
