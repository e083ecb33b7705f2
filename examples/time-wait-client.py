"""The client of the TIME_WAIT experiment: it connects, and closes.

    closed

Which end of a connection waits in TIME_WAIT, the client's or the server's,
depends only on which one closes first; the lab runs both orders with
``time-wait-server.py``, which then restarts on the same port:

    python examples/time-wait-client.py --all
"""

import socket

from lab import run_example, step


def main(host: str, port: int) -> None:
    s = socket.create_connection((host, port))
    step("connected")

    s.close()
    print("closed")
    step("closed")


if __name__ == "__main__":
    run_example(main, __file__)
