"""A server that writes to a client that has gone: twice, then once more with SIGPIPE at its default.

It serves one client at a time.  For each connection it forks a handler
and waits for it; the handler, once the client has closed, calls ``send()``
twice, then ``recv()``, then restores ``SIGPIPE`` to its default action and
calls ``send()`` a third time:

    Connected by ('127.0.0.1', 38136)
    send returned 12
    send failed: [Errno 32] EPIPE: Broken pipe (BrokenPipeError)
    recv returned b''
    SIGPIPE restored to its default action
    handler killed by SIGPIPE: exit status -13

Python ignores SIGPIPE from the start, so a write to a broken connection
raises ``BrokenPipeError``; a C program, or Python with the default action
restored, is killed by the signal instead.  The parent reports how its
handler ended, so that death can be seen.

    python examples/write-after-close-server.py            # listens on 127.0.0.1:50008
    python examples/write-after-close-client.py --port 50008
"""

import errno
import os
import signal
import socket
import sys

from lab import run_server, step


def failed(call: str, e: OSError) -> None:
    print(f"{call} failed: [Errno {e.errno}] {errno.errorcode[e.errno]}: {e.strerror} ({type(e).__name__})")


def send_once(conn: socket.socket, name: str) -> None:
    """One send(), printed and recorded at step ``name``."""
    try:
        sent = conn.send(b"Hello, world")
    except OSError as e:
        failed("send", e)
        step(name, error=e)
    else:
        print("send returned", sent)
        step(name, bytes_sent=sent)


def handle(conn: socket.socket, addr: tuple) -> None:
    """The handler's whole conversation with one client, which has closed already."""
    print("Connected by", addr)
    step("accepted")

    send_once(conn, "sent")
    send_once(conn, "sent again")

    try:
        data = conn.recv(1024)
        print("recv returned", data)
        step("received", data=data)
    except OSError as e:
        failed("recv", e)
        step("received", error=e)

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # as a C program has it
    print("SIGPIPE restored to its default action")
    step("sigpipe default")
    conn.send(b"Hello, world")  # EPIPE again, and this time the signal that comes with it kills us
    print("still alive")


def serve(host: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(5)
    port = s.getsockname()[1]  # the real port, if we asked for any free one (0)
    print(f"listening on {host}:{port}", file=sys.stderr)
    step("listening", port=port)

    while True:
        conn, addr = s.accept()
        pid = os.fork()
        if pid == 0:
            s.close()
            handle(conn, addr)
            sys.stdout.flush()
            os._exit(0)
        conn.close()  # the handler holds the connection; closing our copy sends nothing
        _, status = os.waitpid(pid, 0)  # one client at a time: wait for the handler, see how it ended
        code = os.waitstatus_to_exitcode(status)  # -N: killed by signal N, as subprocess reports it
        if code < 0:
            print(f"handler killed by {signal.Signals(-code).name}: exit status {code}")
        else:
            print(f"handler exited with status {code}")
        step("handler ended", status=code)


if __name__ == "__main__":
    run_server(serve, __file__)
