"""A client that closes with ``SO_LINGER`` on: first with a zero time, then with one second.

Each time it connects, turns ``SO_LINGER`` on, sends 20000 bytes and calls
``close()``, timing it:

    SO_LINGER on, 0 s
    close() returned after 0 s
    SO_LINGER on, 1 s
    close() returned after 1 s

A zero linger time makes ``close()`` abort the connection: a reset (RST),
no FIN, no TIME_WAIT, and unsent data is thrown away.  A non-zero time makes
``close()`` wait until the peer's kernel has acknowledged everything (the
data and the FIN), or until the time runs out.  What happens depends on
whether the server reads; the lab runs both orders (``--all``).

    python examples/linger-client.py --all
    python examples/linger-client.py --port 50008   # against linger-server.py
"""

import errno
import socket
import struct
import time

from lab import run_example, step

DATA = b"x" * 20000  # far more than the server's 4096-byte window


def send_and_close(host: str, port: int, linger_seconds: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, port))
    # struct linger { int l_onoff; int l_linger; }: on, for this many seconds.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, linger_seconds))
    print(f"SO_LINGER on, {linger_seconds} s")
    step("connected", linger=linger_seconds)

    s.sendall(DATA)  # returns once our kernel holds all of it, sent or not
    step("sent")

    started = time.monotonic()
    try:
        s.close()
    except OSError as e:  # what a BSD close() reports when the linger time runs out (Stevens, UNP 7.5)
        print(f"close failed: [Errno {e.errno}] {errno.errorcode[e.errno]}")
        step("closed", error=e)
        return
    elapsed = time.monotonic() - started
    waited = round(elapsed)  # whole seconds, for the printed line: the same on every run
    print(f"close() returned after {waited} s")
    # Milliseconds tell "at once" from "until the FIN's delayed ACK" (some 40 ms).
    step("closed", waited_seconds=waited, waited_ms=round(elapsed * 1000, 1))


def main(host: str, port: int) -> None:
    send_and_close(host, port, 0)
    send_and_close(host, port, 1)


if __name__ == "__main__":
    run_example(main, __file__)
