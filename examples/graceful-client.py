"""Two clients that say "that is my whole request" to the server: one with close(), one with shutdown().

The server reads a request until end of file, then replies.  The first
client ends its request with ``close()``, and loses the reply; the second
ends it with ``shutdown(SHUT_WR)``, reads the reply to its end of file, and
only then calls ``close()``:

    closed right after sending
    shut down for writing
    received 30019 bytes, then end of file

Run it alone to see both, with the server's side:

    python examples/graceful-client.py
    python examples/graceful-client.py --port 50008   # against graceful-server.py
"""

import socket

from lab import run_example, step

REQUEST = b"send me the report"


def close_after_sending(host: str, port: int) -> None:
    s = socket.create_connection((host, port))
    step("connected")
    s.sendall(REQUEST)
    step("sent")
    s.close()  # the end of the request, and of everything else: nothing can read the reply now
    print("closed right after sending")
    step("closed")


def shut_wr_then_read(host: str, port: int) -> None:
    s = socket.create_connection((host, port))
    step("connected")
    s.sendall(REQUEST)
    step("sent")
    s.shutdown(socket.SHUT_WR)  # the end of the request only: our FIN goes out, reading goes on
    print("shut down for writing")
    step("shut_wr")

    reply = b""
    while chunk := s.recv(65536):  # to end of file: the server has sent all it will
        reply += chunk
    print(f"received {len(reply)} bytes, then end of file")
    step("received", nbytes=len(reply))

    s.close()
    step("closed")


def main(host: str, port: int) -> None:
    close_after_sending(host, port)
    shut_wr_then_read(host, port)


if __name__ == "__main__":
    run_example(main, __file__)
