"""A server that reads each connection to its end, with a small receive buffer.

For every connection it forks a child that reads until end of file (or an
error) and says how many bytes it got:

    Connected by ('127.0.0.1', 38136)
    received 20000 bytes, then end of file

Its receive buffer is small on purpose: a client that sends 20000 bytes
while the server is not reading fills the server's 4096-byte window, and the
rest waits in the client's kernel.  That is the data ``SO_LINGER`` is about.

    python examples/linger-server.py            # listens on 127.0.0.1:50008
    python examples/linger-client.py --port 50008
"""

import errno
import os
import signal
import socket
import sys

from lab import run_server, step


def handle(conn: socket.socket, addr: tuple) -> None:
    """The child's whole conversation with one client."""
    print("Connected by", addr)
    step("accepted")

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

    conn.close()


def serve(host: str, port: int) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # finished children are reaped by the kernel

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Before listen(): accepted sockets inherit it, and it sets the window they offer.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind((host, port))
    s.listen(5)
    port = s.getsockname()[1]  # the real port, if we asked for any free one (0)
    print(f"listening on {host}:{port}", file=sys.stderr)
    step("listening", port=port)

    while True:
        conn, addr = s.accept()
        if os.fork() == 0:
            s.close()
            handle(conn, addr)
            sys.stdout.flush()
            os._exit(0)
        conn.close()  # the child holds the connection; closing our copy sends nothing


if __name__ == "__main__":
    run_server(serve, __file__)
