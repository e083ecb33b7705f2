"""The client that calls ``shutdown(SHUT_RD)`` first, and reads anyway.

It connects, shuts the connection down for reading, calls ``recv()`` twice,
then shuts it down for writing too and calls ``recv()`` once more:

    shut_rd
    received b'Hello, world'
    received b''
    shut_wr
    recv failed: [Errno 104] ECONNRESET: Connection reset by peer (ConnectionResetError)

On Linux ``SHUT_RD`` sends nothing and throws nothing away: bytes already
queued are still returned, a ``recv()`` with nothing queued returns ``b''``
at once instead of waiting, and bytes that arrive later are accepted and can
be read.  Only once our own FIN is out (``SHUT_WR``) does new data from the
server get a reset.  Which ``recv()`` returns the server's first message
depends on whether it arrives before or after ``SHUT_RD``; the lab runs both
orders:

    python examples/shut-rd-client.py --all
"""

import errno
import select
import socket

from lab import run_example, step


def main(host: str, port: int) -> None:
    s = socket.create_connection((host, port))
    step("connected")

    s.shutdown(socket.SHUT_RD)
    print("shut_rd")
    # Asked without waiting (timeout 0): does select() call the socket readable now?
    readable = bool(select.select([s], [], [], 0)[0])
    step("shut_rd", readable=readable)

    for _ in range(2):
        data = s.recv(1024)
        print("received", data)
        step("received", data=data)

    s.shutdown(socket.SHUT_WR)
    print("shut_wr")
    step("shut_wr")

    try:
        data = s.recv(1024)
    except OSError as e:
        name = errno.errorcode[e.errno]
        print(f"recv failed: [Errno {e.errno}] {name}: {e.strerror} ({type(e).__name__})")
        step("recv failed", error=e)
    else:
        print("received", data)
        step("received", data=data)
    s.close()


if __name__ == "__main__":
    run_example(main, __file__)
