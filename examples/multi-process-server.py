"""A forking echo server: the note's ``multi-process-server.py`` in Python 3.

For every connection the server forks a child.  The child receives once,
sends what it got back, and receives again, printing what each call did:

    Connected by ('127.0.0.1', 38136)
    success recv
    data: b'Hello, world'
    success send
    success recv
    data: b''

Run it by hand and point a client at it from another terminal (the note's way):

    python examples/multi-process-server.py            # listens on 127.0.0.1:50008
    python examples/client-close.py --port 50008

Or let a client start it for you: ``python examples/client-close.py`` alone
runs the whole experiment and shows both sides.  ``--host 0.0.0.0`` listens on
every interface; the default is loopback only.

The ``step(...)`` calls mark the moments the lab may stop at; run by hand they
do nothing.
"""

import os
import signal
import socket
import sys

from lab import run_server, step


def handle(conn: socket.socket, addr: tuple) -> None:
    """The child's whole conversation with one client."""
    print("Connected by", addr)
    step("accepted")

    data = conn.recv(1024)
    print("success recv")
    print("data:", data)
    step("received", data=data)

    sent = conn.send(data)  # echo it back; returns how many bytes the kernel took
    print("success send")
    step("sent", bytes_sent=sent)

    data = conn.recv(1024)
    print("success recv")
    print("data:", data)
    step("received", data=data)

    conn.close()


def serve(host: str, port: int) -> None:
    # Children that have finished are reaped by the kernel, not left as zombies.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once despite TIME_WAIT
    s.bind((host, port))
    s.listen(5)
    port = s.getsockname()[1]  # the real port, if we asked for any free one (0)
    print(f"listening on {host}:{port}", file=sys.stderr)
    step("listening", port=port)

    while True:
        conn, addr = s.accept()
        if os.fork() == 0:
            # The child: it serves this client only, so it drops its copy of the listener.
            s.close()
            handle(conn, addr)
            sys.stdout.flush()
            os._exit(0)  # leave without running the parent's clean-up code
        # The parent: the child holds the connection now.  Closing our copy sends
        # nothing; a connection ends only when its last reference is closed.
        conn.close()


if __name__ == "__main__":
    run_server(serve, __file__)
