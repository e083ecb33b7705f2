"""A client that goes away before the server writes: first with close(), then with an abort.

The first connection ends with a plain ``close()`` (a FIN); the second with
``SO_LINGER`` on and a zero time, which makes ``close()`` abort it (a RST).
Each time the server then writes to it, twice, and once more with SIGPIPE at
its default action (see ``write-after-close-server.py``):

    closed
    aborted

Run it alone to see the server's side too:

    python examples/write-after-close-client.py
    python examples/write-after-close-client.py --port 50008   # against write-after-close-server.py
"""

import socket
import struct

from lab import run_example, step


def close_normally(host: str, port: int) -> None:
    s = socket.create_connection((host, port))
    step("connected")
    s.close()  # a FIN: "I will send no more"
    print("closed")
    step("closed")


def abort(host: str, port: int) -> None:
    s = socket.create_connection((host, port))
    step("connected")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # on, 0 seconds
    s.close()  # a RST: the connection is gone at once, on both sides
    print("aborted")
    step("aborted")


def main(host: str, port: int) -> None:
    close_normally(host, port)
    abort(host, port)


if __name__ == "__main__":
    run_example(main, __file__)
