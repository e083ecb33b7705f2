"""The client that calls ``shutdown()``: the note's ``client-shutdown.py`` in Python 3.

It connects, sends ``Hello, world``, shuts the connection down for writing
(``SHUT_WR``: our FIN goes to the server) and then for reading (``SHUT_RD``),
and only then calls ``recv()``:

    shut_wr
    shut_rd
    Received b'Hello, world'

Unlike ``close()``, ``shutdown()`` leaves the socket open, so ``recv()`` still
works.  What it returns depends on *when the server's echo arrives*: before
``SHUT_RD`` the echo is already queued and ``recv()`` returns it; after
``SHUT_RD``, ``recv()`` returns ``b''`` at once and the echo, when it comes,
is answered with a reset.  And if the server has echoed and closed before
``SHUT_RD``, the connection is already over: ``shutdown()`` fails with
ENOTCONN, and ``recv()`` still returns the echo.  The lab runs all three
orders; see ``--run``.

Run it alone to see the whole experiment (it starts the forking server in a
network namespace of its own and shows both ends, and the wire, at each step):

    python examples/client-shutdown.py
    python examples/client-shutdown.py --run echo-after-shut-rd

Or talk to a server you started yourself in another terminal:

    python examples/client-shutdown.py --port 50008
"""

import errno
import socket

from lab import run_example, step


def main(host: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, port))
    step("connected")

    s.sendall(b"Hello, world")
    step("sent")

    s.shutdown(socket.SHUT_WR)
    print("shut_wr")
    step("shut_wr")

    try:
        s.shutdown(socket.SHUT_RD)
    except OSError as e:
        # If the server has already echoed *and closed*, the connection is over (only a
        # TIME_WAIT is left of it) and Linux refuses to shut it down: ENOTCONN.
        name = errno.errorcode[e.errno]
        print(f"shut_rd failed: [Errno {e.errno}] {name}: {e.strerror} ({type(e).__name__})")
        step("shut_rd failed", error=e)
    else:
        print("shut_rd")
        step("shut_rd")

    try:
        data = s.recv(1024)
    except OSError as e:
        name = errno.errorcode[e.errno]  # e.g. EBADF: the name to look up in man 2 recv
        print(f"recv failed: [Errno {e.errno}] {name}: {e.strerror} ({type(e).__name__})")
        step("recv failed", error=e)
    else:
        print("Received", repr(data))
        step("received", data=data)

    s.close()


if __name__ == "__main__":
    run_example(main, __file__)
