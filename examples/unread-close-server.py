"""A server that closes with part of the request unread.

For every connection it forks a child that reads only the first 5 bytes of
the request, sends a 20000-byte reply, and closes the socket:

    Connected by ('127.0.0.1', 38136)
    request: b'Hello'
    sent 20000 bytes
    closed

The 7 bytes it did not read are still in its receive queue when it calls
``close()``.  Linux then does not send a FIN: it resets the connection (RST),
and whatever of the reply the client had not yet received is thrown away.

Run it by hand and point its client at it from another terminal:

    python examples/unread-close-server.py            # listens on 127.0.0.1:50008
    python examples/unread-close-client.py --port 50008
"""

import os
import signal
import socket
import sys

from lab import run_server, step

REPLY = b"r" * 20000  # more than the client's small receive window: most of it waits in our kernel


def handle(conn: socket.socket, addr: tuple) -> None:
    """The child's whole conversation with one client."""
    print("Connected by", addr)
    step("accepted")

    request = conn.recv(5)  # only the part we need; the rest of the request stays unread
    print("request:", request)
    step("received", data=request)

    conn.sendall(REPLY)  # returns once the kernel holds all of it, sent or not
    print(f"sent {len(REPLY)} bytes")
    step("sent", bytes_sent=len(REPLY))

    conn.close()  # with unread data: the kernel resets the connection instead of closing it
    print("closed")
    step("closed")


def serve(host: str, port: int) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # finished children are reaped by the kernel

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
