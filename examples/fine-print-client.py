"""Four connections, four sentences of the fine print, each put to the kernel.

1. A reset is reported once, to the first call that asks: here
   ``getsockopt(SO_ERROR)``, before ``recv()`` and ``send()``.
2. ``shutdown(SHUT_RDWR)`` before ``close()`` does not stop the reset that
   closing with unread data sends.
3. ``shutdown()`` never lingers: with ``SO_LINGER`` set to 1 s and data held
   back by the server's zero window, ``shutdown(SHUT_WR)`` returns at once,
   and the ``close()`` after it waits the whole second.
4. ``socket.detach()`` sends nothing; ``os.close()`` of the descriptor it
   returns sends the FIN.

Each connection meets the server's matching way of ending (see
``fine-print-server.py``).

    python examples/fine-print-client.py
    python examples/fine-print-client.py --port 50008   # against fine-print-server.py
"""

import errno
import os
import socket
import struct
import time

from lab import run_example, step

DATA = b"x" * 20000  # far more than the server's 4096-byte window


def error_goes_to_the_first_caller(host: str, port: int) -> None:
    s = socket.create_connection((host, port))
    step("connected")  # the server resets the connection while we wait here

    pending = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # reads the pending error, and clears it
    name = errno.errorcode.get(pending, "0")
    print(f"SO_ERROR: {name}")
    step("so_error", so_error=name)

    data = s.recv(1024)
    print("recv returned", repr(data))
    step("received", data=data)

    try:
        s.send(b"x")
    except OSError as e:
        print(f"send failed: [Errno {e.errno}] {errno.errorcode[e.errno]}")
        step("send failed", error=e)
    s.close()


def shutdown_rdwr_then_close_with_unread(host: str, port: int) -> None:
    s = socket.create_connection((host, port))
    step("connected")

    s.recv(1, socket.MSG_PEEK)  # wait until the server's 12 bytes are in; read none of them
    step("data queued")

    s.shutdown(socket.SHUT_RDWR)
    print("shutdown(SHUT_RDWR)")
    step("shut_rdwr")

    s.close()  # the 12 bytes are still unread
    print("close() with 12 bytes unread")
    step("closed")


def shutdown_does_not_linger(host: str, port: int) -> None:
    s = socket.create_connection((host, port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 1))  # on, 1 s
    step("connected")

    s.sendall(DATA)  # returns once our kernel holds all of it, sent or not
    step("sent")

    started = time.monotonic()
    s.shutdown(socket.SHUT_WR)
    shut_ms = round((time.monotonic() - started) * 1000, 1)
    print("shutdown(SHUT_WR) returned")
    step("shut_wr", shut_ms=shut_ms)

    started = time.monotonic()
    s.close()
    elapsed = time.monotonic() - started
    print(f"close() returned after {round(elapsed)} s")
    step("closed", close_ms=round(elapsed * 1000, 1))


def detach_then_os_close(host: str, port: int) -> None:
    s = socket.create_connection((host, port))
    step("connected")

    fd = s.detach()  # the socket object lets go of the descriptor without closing it
    print("detached")
    step("detached", fileno=s.fileno())

    os.close(fd)
    print("os.close() of the detached descriptor")
    step("closed descriptor")


def main(host: str, port: int) -> None:
    error_goes_to_the_first_caller(host, port)
    shutdown_rdwr_then_close_with_unread(host, port)
    shutdown_does_not_linger(host, port)
    detach_then_os_close(host, port)


if __name__ == "__main__":
    run_example(main, __file__)
