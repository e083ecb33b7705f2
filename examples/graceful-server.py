"""A server that reads the request to its end, then sends a 30 KB reply.

For every connection it forks a child that reads until end of file: the
client's FIN is what says the request is complete.  It then sends a header
line and a 30000-byte body, in two writes, and closes:

    Connected by ('127.0.0.1', 38136)
    request: b'send me the report'
    sent the header
    sent the body, 30000 bytes

Run it by hand and point its client at it from another terminal:

    python examples/graceful-server.py            # listens on 127.0.0.1:50008
    python examples/graceful-client.py --port 50008
"""

import errno
import os
import signal
import socket
import sys

from lab import run_server, step

BODY = b"r" * 30_000


def handle(conn: socket.socket, addr: tuple) -> None:
    """The child's whole conversation with one client."""
    print("Connected by", addr)
    step("accepted")

    request = b""
    while chunk := conn.recv(1024):  # until end of file: the client has sent all it will
        request += chunk
    print("request:", request)
    step("received", data=request)

    try:
        conn.sendall(f"{len(BODY)} bytes follow\n".encode())
        print("sent the header")
        step("sent header")
        conn.sendall(BODY)
        print(f"sent the body, {len(BODY)} bytes")
        step("sent body")
    except OSError as e:
        print(f"send failed: [Errno {e.errno}] {errno.errorcode[e.errno]}: {e.strerror} ({type(e).__name__})")
        step("send failed", error=e)

    conn.close()


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
