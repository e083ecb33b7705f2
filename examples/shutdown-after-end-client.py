"""``shutdown()`` on a connection that is already over, and closing code that survives it.

The client asks ``peer-ends-server.py`` to end each connection, then calls
``shutdown()`` itself and prints what happens:

1. after the server's reset;
2. after the server's ``close()``: the first ``shutdown()`` sends our FIN, the
   second comes when both FINs are acknowledged;
3. after we shut down first and the server closed (our end is in TIME_WAIT),
   and once more after our own ``close()``;
4. closing code on a reset connection: ``shutdown(); close()`` in a row lets
   the exception skip ``close()``; ``close_connection()`` below does not.

    python examples/shutdown-after-end-client.py
"""

import errno
import socket

from lab import run_example, step


def close_connection(s: socket.socket) -> None:
    """Shut down both directions if the connection is still there, and always close."""
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError as e:
        if e.errno != errno.ENOTCONN:  # ENOTCONN: already over (reset, or both FINs done)
            raise
    finally:
        s.close()


def try_shutdown(s: socket.socket, how: int, moment: str) -> None:
    try:
        s.shutdown(how)
    except OSError as e:
        print(f"{moment}: shutdown() raised {errno.errorcode[e.errno]} ({e.strerror})")
        step("shutdown", error=e)
    else:
        print(f"{moment}: shutdown() returned")
        step("shutdown", error=None)


def ask(host: str, port: int, how: str) -> socket.socket:
    s = socket.create_connection((host, port))
    s.sendall(how.encode())
    step("asked", how=how)  # the lab lets the server end the connection before we go on
    return s


def main(host: str, port: int) -> None:
    s = ask(host, port, "reset")
    try_shutdown(s, socket.SHUT_RDWR, "1. after the server's reset")
    s.close()

    s = ask(host, port, "close")
    try_shutdown(s, socket.SHUT_WR, "2. after the server's close()")
    try_shutdown(s, socket.SHUT_WR, "2. again, once both FINs are acknowledged")
    s.close()

    s = socket.create_connection((host, port))
    s.sendall(b"close")
    s.shutdown(socket.SHUT_WR)  # our FIN first; the server closes after it
    step("asked", how="close")
    try_shutdown(s, socket.SHUT_RDWR, "3. in TIME_WAIT")
    s.close()
    try_shutdown(s, socket.SHUT_RDWR, "3. after our close()")

    s = ask(host, port, "reset")
    try:
        s.shutdown(socket.SHUT_RDWR)  # raises ENOTCONN...
        s.close()  # ...so this line never runs
    except OSError as e:
        print(f"4. shutdown(); close() raised {errno.errorcode[e.errno]}; descriptor {s.fileno()} still open")
        step("skipped close", error=e, still_open=s.fileno() != -1)
    close_connection(s)
    print(f"4. close_connection() raised nothing; descriptor now {s.fileno()}")
    step("closed", still_open=s.fileno() != -1)


if __name__ == "__main__":
    run_example(main, __file__)
