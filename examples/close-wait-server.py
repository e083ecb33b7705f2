"""A server that reads a request to the end and is slow to close: CLOSE_WAIT.

It accepts one connection, reads until ``recv()`` returns ``b''`` (the
client's FIN), and only closes when the lab lets it go on:

    Connected by ('127.0.0.1', 38136)
    received b'Hello, world'
    received b''
    closed

From the client's FIN to the server's ``close()`` the server's end is in
CLOSE_WAIT: the kernel has nothing left to do there, and no timer ends it.
A server that forgets ``close()`` keeps it so for as long as it runs.

    python examples/close-wait-server.py          # listens on 127.0.0.1:50008
    python examples/close-wait-client.py --port 50008
"""

import socket
import sys

from lab import run_server, step


def handle(conn: socket.socket, addr: tuple) -> None:
    print("Connected by", addr)
    step("accepted")

    data = conn.recv(1024)
    print("received", data)
    step("received", data=data)

    data = conn.recv(1024)  # b'': the client has finished sending
    print("received", data)
    step("received", data=data)

    # A server that forgets to close stops here for good, in CLOSE_WAIT.
    # This one closes when the run lets it go on: the last step of the connection.
    conn.close()
    print("closed")
    step("closed")


def serve(host: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(5)
    port = s.getsockname()[1]
    print(f"listening on {host}:{port}", file=sys.stderr)
    step("listening", port=port)
    while True:  # one client at a time: no fork
        conn, addr = s.accept()
        handle(conn, addr)


if __name__ == "__main__":
    run_server(serve, __file__)
