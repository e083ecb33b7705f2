"""The client of the CLOSE_WAIT experiment: it sends, shuts down for writing, and closes.

    shut_wr
    closed

After ``shutdown(SHUT_WR)`` its end waits in FIN_WAIT2 for the server's FIN,
with no time limit: the program may still read the answer.  After
``close()`` no program can, and Linux gives the FIN_WAIT2 end
``net.ipv4.tcp_fin_timeout`` (60 s) before dropping it.  The server of
``close-wait-server.py`` is slow to close; the lab runs two orders:

    python examples/close-wait-client.py --all
"""

import socket

from lab import run_example, step


def main(host: str, port: int) -> None:
    s = socket.create_connection((host, port))
    step("connected")

    s.sendall(b"Hello, world")
    s.shutdown(socket.SHUT_WR)  # our FIN: no more requests
    print("shut_wr")
    step("shut_wr")

    s.close()
    print("closed")
    step("closed")


if __name__ == "__main__":
    run_example(main, __file__)
