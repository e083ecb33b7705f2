"""A forking echo server whose parent closes its copy of each connection *late*.

After ``fork()`` the parent and the child both hold the accepted socket: two
descriptors, one connection.  The child serves the client and closes; the
parent should close its copy at once, as ``multi-process-server.py`` does.
Here the parent's ``close()`` is a step of its own, so a run can put it
before the child's (the right way) or after it (the classic bug: a parent
that forgets, and closes only much later, or never):

    child: connected by ('127.0.0.1', 38136)
    child: received b'Hello, world'
    child: sent 12 bytes
    child: received b''
    child: closed

Only the last ``close()`` of a connection sends the FIN.  While the parent
still holds it, the child's ``close()`` sends nothing and the client waits.

    python examples/shared-descriptors-server.py          # listens on 127.0.0.1:50008
    python examples/shared-descriptors-client.py --port 50008
"""

import os
import signal
import socket
import sys

from lab import run_server, step


def handle(conn: socket.socket, addr: tuple) -> None:
    """The child's whole conversation with one client."""
    step("accepted")  # before any print: the parent may be reaching its own step right now
    print("child: connected by", addr)

    data = conn.recv(1024)
    print("child: received", data)
    step("received", data=data)

    conn.sendall(data)
    print("child: sent", len(data), "bytes")
    step("sent")

    data = conn.recv(1024)  # b'': the client has shut down its sending side
    print("child: received", data)
    step("received", data=data)

    conn.close()  # the FIN goes out only if no other process holds the connection
    print("child: closed")
    step("closed")


def serve(host: str, port: int) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # finished children are reaped by the kernel

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(5)
    port = s.getsockname()[1]
    print(f"listening on {host}:{port}", file=sys.stderr)
    step("listening", port=port)

    while True:
        conn, addr = s.accept()
        if os.fork() == 0:
            s.close()
            handle(conn, addr)
            sys.stdout.flush()
            os._exit(0)
        step("forked")  # the parent holds its copy of conn until the next line
        conn.close()
        step("parent closed")


if __name__ == "__main__":
    run_server(serve, __file__)
