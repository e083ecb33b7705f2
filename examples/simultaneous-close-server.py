"""The server of the simultaneous-close experiment: it closes while the client closes.

Both programs do the same thing, in the same order: send 4000 bytes, call
``shutdown(SHUT_WR)`` without reading anything, then read until end of file,
then close.  Each socket has the smallest receive buffer Linux allows, so
neither FIN can leave: it waits behind data the peer has no room for.  Both
ends have asked to close before either has heard the other's FIN, which is
what a simultaneous close is; the lab then lets the two programs read in a
chosen order.

    python examples/simultaneous-close-server.py       # listens on 127.0.0.1:50008
    python examples/simultaneous-close-client.py --port 50008
"""

import socket
import sys

from lab import run_server, step

SIZE = 4000  # more than the peer's receive window, so some of it waits in our send queue


def handle(conn: socket.socket) -> None:
    step("accepted")

    conn.sendall(b"s" * SIZE)  # returns at once: the kernel queues what the peer has no room for
    step("sent")

    conn.shutdown(socket.SHUT_WR)  # our FIN is queued behind the unsent bytes
    step("shut_wr")

    received = 0
    while data := conn.recv(65536):
        received += len(data)
    print("received", received, "bytes and the end of file")
    step("read all", received=received)

    conn.close()


def serve(host: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Before listen(): the accepted socket inherits the buffer, and the window offered in the
    # handshake is sized from it.  1 byte is rounded up to the kernel's minimum (2304 on Linux).
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    s.bind((host, port))
    s.listen(1)
    port = s.getsockname()[1]
    print(f"listening on {host}:{port}", file=sys.stderr)
    step("listening", port=port)
    while True:
        conn, _ = s.accept()
        handle(conn)


if __name__ == "__main__":
    run_server(serve, __file__)
