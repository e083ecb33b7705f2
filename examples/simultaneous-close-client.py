"""The client of the simultaneous-close experiment: both ends close at once, on purpose.

Client and server each send 4000 bytes, call ``shutdown(SHUT_WR)`` and only
then read.  Their receive buffers are tiny, so each FIN is held back behind
bytes the other side has no room for: both have closed, neither FIN is on
the wire.  Then one side reads.  Its window opens, the other's data and FIN
pour in, and it receives a FIN while its own FIN is still unacknowledged:
the rare state CLOSING.  When the other side reads too, both end in
TIME_WAIT.

    python examples/simultaneous-close-client.py --all

``shutdown(SHUT_WR)`` sends the same FIN as ``close()``; it is used here
because a program that closes with unread data sends a reset instead.
"""

import socket

from lab import run_example, step

SIZE = 4000


def main(host: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # before connect(): the smallest window
    s.connect((host, port))
    step("connected")

    s.sendall(b"c" * SIZE)
    step("sent")

    s.shutdown(socket.SHUT_WR)
    step("shut_wr")

    received = 0
    while data := s.recv(65536):
        received += len(data)
    print("received", received, "bytes and the end of file")
    step("read all", received=received)

    s.close()


if __name__ == "__main__":
    run_example(main, __file__)
