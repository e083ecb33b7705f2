"""A server that ends each connection the way its client asks.

For each connection it reads one word from the client, then:

``shutdown``  calls ``shutdown(SHUT_WR)``: its FIN goes out, and it still reads
              until the client's own end of file, then closes;
``close``     calls ``close()`` at once;
``reset``     sets ``SO_LINGER`` to (on, 0 seconds) and closes: the kernel
              sends a reset (RST) instead of a FIN.

It serves one connection at a time.  The multiplexing and shutdown-after-end
experiments use it as the peer whose ending the client observes:

    python examples/peer-ends-server.py                # listens on 127.0.0.1:50008
    python examples/multiplexing-client.py --port 50008
"""

import socket
import struct
import sys

from lab import run_server, step


def handle(conn: socket.socket) -> None:
    step("accepted")
    how = conn.recv(16).decode()  # the client sent the word alone, before anything else
    print("asked to", how)
    step("asked", how=how)

    if how == "shutdown":
        conn.shutdown(socket.SHUT_WR)
        step("ended", how=how)
        while data := conn.recv(1024):  # the other direction is still open
            print("still received", data)
        conn.close()
    elif how == "close":
        conn.close()
        step("ended", how=how)
    elif how == "reset":
        # Linger on, with a timeout of 0: close() drops the connection with a reset.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        step("ended", how=how)


def serve(host: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(5)
    port = s.getsockname()[1]
    print(f"listening on {host}:{port}", file=sys.stderr)
    step("listening", port=port)
    while True:
        conn, _ = s.accept()
        handle(conn)


if __name__ == "__main__":
    run_server(serve, __file__)
