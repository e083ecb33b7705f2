"""A server that ends each of its connections its own way, for the fine-print client.

It counts the connections it accepts and forks a child for each; the child's
way depends on the count, so that the client knows what to expect:

1. ``reset``: it resets the connection at once (``SO_LINGER`` on, time 0, then ``close()``).
2. ``greet``: it sends ``Hello, world``, then reads until end of file or an error.
3. ``read, then reset``: it reads until end of file, then resets the
   connection, so that no TIME_WAIT of it is left beside the fourth.
4. ``read``: it reads until end of file or an error, says how many bytes it
   got, and closes.

Its receive buffer is small, as in the linger experiment: a client that sends
20000 bytes while the server is not reading fills the server's 4096-byte
window, and the rest waits in the client's kernel.

    python examples/fine-print-server.py            # listens on 127.0.0.1:50008
    python examples/fine-print-client.py --port 50008
"""

import errno
import os
import signal
import socket
import struct
import sys

from lab import run_server, step

ENDINGS = ["reset", "greet", "read, then reset", "read"]  # the child's way, by connection number


def handle(conn: socket.socket, ending: str) -> None:
    """The child's whole conversation with one client."""
    print(f"connection {ending!r}")
    step("accepted", ending=ending)

    if ending == "reset":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # a zero linger time: a reset, not a FIN
        print("reset the connection")
        step("reset")
        return

    if ending == "greet":
        conn.sendall(b"Hello, world")
        print("sent 12 bytes")
        step("sent")

    received, error = 0, None
    try:
        while chunk := conn.recv(65536):
            received += len(chunk)
    except OSError as e:
        error = e
    if error:
        print(f"received {received} bytes, then recv failed: [Errno {error.errno}] {errno.errorcode[error.errno]}")
    else:
        print(f"received {received} bytes, then end of file")
    step("received", nbytes=received, error=error)
    if ending == "read, then reset":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    step("closed")


def serve(host: str, port: int) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # finished children are reaped by the kernel

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by accepted sockets
    s.bind((host, port))
    s.listen(5)
    port = s.getsockname()[1]  # the real port, if we asked for any free one (0)
    print(f"listening on {host}:{port}", file=sys.stderr)
    step("listening", port=port)

    number = 0
    while True:
        conn, _ = s.accept()
        ending = ENDINGS[number % len(ENDINGS)]
        number += 1
        if os.fork() == 0:
            s.close()
            handle(conn, ending)
            sys.stdout.flush()
            os._exit(0)
        conn.close()  # the child holds the connection; closing our copy sends nothing


if __name__ == "__main__":
    run_server(serve, __file__)
