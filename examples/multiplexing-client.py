"""What ``select()``, ``poll()`` and ``selectors`` report when the peer ends the connection.

The client opens three connections to ``peer-ends-server.py`` and asks it to
end each one differently: ``shutdown(SHUT_WR)``, ``close()``, and a reset.
After each ending, and after a few more moves of its own, it asks all three
interfaces, without waiting (timeout 0), what they report for its socket,
and prints one line per look:

    select: read write | poll: POLLIN POLLOUT POLLRDHUP | selectors: READ WRITE

    python examples/multiplexing-client.py
    python examples/multiplexing-client.py --port 50008   # against a server you started
"""

import errno
import select
import selectors
import socket

from lab import run_example, step

POLL_BITS = ["POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP", "POLLRDHUP"]


def look(s: socket.socket, moment: str) -> None:
    """Ask select(), poll() and a selector about ``s`` right now; print and record the answers."""
    r, w, x = select.select([s], [s], [s], 0)
    chosen = [name for name, ready in (("read", r), ("write", w), ("except", x)) if ready]

    poller = select.poll()
    poller.register(s, select.POLLIN | select.POLLPRI | select.POLLOUT | select.POLLRDHUP)
    mask = sum(events for _, events in poller.poll(0))  # POLLERR and POLLHUP are always reported
    polled = [name for name in POLL_BITS if mask & getattr(select, name)]

    with selectors.DefaultSelector() as selector:
        selector.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        events = sum(e for _, e in selector.select(0))
    selected = [name for name, bit in (("READ", selectors.EVENT_READ), ("WRITE", selectors.EVENT_WRITE)) if events & bit]

    print(f"{moment}: select: {' '.join(chosen)} | poll: {' '.join(polled)} | selectors: {' '.join(selected)}")
    step("looked", select=" ".join(chosen), poll=" ".join(polled), selectors=" ".join(selected))


def receive(s: socket.socket) -> None:
    try:
        data = s.recv(1024)
    except OSError as e:
        print(f"  recv: {errno.errorcode[e.errno]}")
        step("received", error=e)
    else:
        print(f"  recv: {data!r}")
        step("received", data=data)


def connect_and_ask(host: str, port: int, how: str) -> socket.socket:
    s = socket.create_connection((host, port))
    look(s, "connected")
    s.sendall(how.encode())
    step("asked", how=how)  # the lab lets the server end the connection before we go on
    return s


def main(host: str, port: int) -> None:
    # 1. The server shuts down for writing; then we do too.
    s = connect_and_ask(host, port, "shutdown")
    look(s, "after the server's shutdown(SHUT_WR)")
    receive(s)
    s.shutdown(socket.SHUT_WR)
    step("shut_wr")
    look(s, "after our shutdown(SHUT_WR) as well")
    s.close()

    # 2. The server closes; we write to it anyway, and its kernel answers with a reset.
    s = connect_and_ask(host, port, "close")
    look(s, "after the server's close()")
    s.sendall(b"anyone there?")
    step("sent")
    look(s, "after our send() to the closed server")
    receive(s)
    s.close()

    # 3. The server resets the connection.
    s = connect_and_ask(host, port, "reset")
    look(s, "after the server's reset")
    receive(s)
    s.close()


if __name__ == "__main__":
    run_example(main, __file__)
