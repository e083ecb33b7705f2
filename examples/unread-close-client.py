"""The client of a server that closes with part of the request unread.

It sends ``Hello, world`` (the server reads only ``Hello``), reads the
server's 20000-byte reply, then tries ``recv()`` and ``send()`` once more:

    received 4096 of 20000 bytes
    recv failed: [Errno 104] ECONNRESET: Connection reset by peer (ConnectionResetError)
    recv returned b''
    send failed: [Errno 32] EPIPE: Broken pipe (BrokenPipeError)

Its receive buffer is small on purpose (a slow reader): only the first
4096 bytes of the reply fit, the rest waits in the server's kernel.  What it
gets depends on whether it read the reply before the server's ``close()``;
the lab runs both orders (``--all``).

    python examples/unread-close-client.py --all
    python examples/unread-close-client.py --port 50008   # against unread-close-server.py
"""

import errno
import socket

from lab import run_example, step

REPLY_SIZE = 20000


def failed(call: str, e: OSError) -> None:
    print(f"{call} failed: [Errno {e.errno}] {errno.errorcode[e.errno]}: {e.strerror} ({type(e).__name__})")


def main(host: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect(): it sets the window we offer
    s.connect((host, port))
    step("connected")

    s.sendall(b"Hello, world")
    step("sent")

    received, error = 0, None
    try:
        while received < REPLY_SIZE:
            chunk = s.recv(65536)
            if not chunk:
                break
            received += len(chunk)
    except OSError as e:
        error = e
    print(f"received {received} of {REPLY_SIZE} bytes")
    if error:
        failed("recv", error)
    step("received", nbytes=received, error=error)

    try:
        data = s.recv(1024)
        print("recv returned", data)
        step("received again", data=data)
    except OSError as e:
        failed("recv", e)
        step("received again", error=e)

    try:
        sent = s.send(b"more")
        print("send returned", sent)
        step("sent again", bytes_sent=sent)
    except OSError as e:
        failed("send", e)
        step("sent again", error=e)

    s.close()


if __name__ == "__main__":
    run_example(main, __file__)
