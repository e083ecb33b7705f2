"""The client that calls ``close()``: the note's ``client-close.py`` in Python 3.

It connects, sends ``Hello, world``, closes the socket, and then tries to
``recv()`` on it anyway:

    closed
    recv failed: [Errno 9] EBADF: Bad file descriptor (OSError)

After ``close()`` the socket object no longer has a file descriptor, so every
call on it fails with EBADF, whatever the connection is doing.

Run it alone to see the whole experiment: it starts the forking server in a
network namespace of its own, prints what each program printed, and shows the
state of both ends at each step, like ``netstat -tan``, with the segments
that crossed the wire, like ``tcpdump``:

    python examples/client-close.py

Or talk to a server you started yourself in another terminal:

    python examples/client-close.py --port 50008

``--json FILE`` also writes the structured record the documentation is built from.
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

    s.close()
    print("closed")
    step("closed")

    try:
        data = s.recv(1024)
    except OSError as e:
        name = errno.errorcode[e.errno]  # e.g. EBADF: the name to look up in man 2 recv
        print(f"recv failed: [Errno {e.errno}] {name}: {e.strerror} ({type(e).__name__})")
        step("recv failed", error=e)
    else:
        print("Received", repr(data))


if __name__ == "__main__":
    run_example(main, __file__)
