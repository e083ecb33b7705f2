"""A server that sends twice, for the SHUT_RD experiment: ``shut-rd-client.py`` shuts its reading side.

For each connection it sends ``Hello, world``, then ``Goodbye``, and closes:

    Connected by ('127.0.0.1', 38136)
    sent 12 bytes
    sent 7 bytes

``send()`` returns as soon as the kernel has taken the bytes, so it reports
nothing of what the client's kernel then does with them: the tables do.

    python examples/shut-rd-server.py          # listens on 127.0.0.1:50008
    python examples/shut-rd-client.py --port 50008
"""

import socket
import sys

from lab import run_server, step


def handle(conn: socket.socket, addr: tuple) -> None:
    print("Connected by", addr)
    step("accepted")

    sent = conn.send(b"Hello, world")
    print("sent", sent, "bytes")
    step("sent", bytes_sent=sent)

    sent = conn.send(b"Goodbye")
    print("sent", sent, "bytes")
    step("sent", bytes_sent=sent)

    conn.close()


def serve(host: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(5)
    port = s.getsockname()[1]
    print(f"listening on {host}:{port}", file=sys.stderr)
    step("listening", port=port)
    while True:  # one client at a time is enough here: no fork
        conn, addr = s.accept()
        handle(conn, addr)


if __name__ == "__main__":
    run_server(serve, __file__)
