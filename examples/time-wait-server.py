"""A server that serves one connection, then restarts on the same port.

It accepts one client and closes the connection; then, as a server being
restarted would, it closes its listening socket and opens a new one on the
same port: first without ``SO_REUSEADDR``, and if the kernel refuses, with it:

    Connected by ('127.0.0.1', 38136)
    closed the connection
    closed the listening socket
    bind failed: [Errno 98] EADDRINUSE: Address already in use (OSError)
    listening again, with SO_REUSEADDR

Whether the plain ``bind()`` fails depends on which end closed first: the
end that sends the first FIN keeps the connection in TIME_WAIT (60 s on
Linux), and a TIME_WAIT on the server's own port blocks a plain bind().

    python examples/time-wait-server.py          # listens on 127.0.0.1:50008
    python examples/time-wait-client.py --port 50008
"""

import errno
import socket
import sys

from lab import run_server, step


def listen(host: str, port: int, reuse: bool) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse:
        # Lets bind() share the port with connections in TIME_WAIT (never with a listener).
        # On Linux the connection's old socket must have had it too, as it does here.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(5)
    return s


def serve(host: str, port: int) -> None:
    s = listen(host, port, reuse=True)
    port = s.getsockname()[1]
    print(f"listening on {host}:{port}", file=sys.stderr)
    step("listening", port=port)

    conn, addr = s.accept()
    print("Connected by", addr)
    step("accepted")

    conn.close()
    print("closed the connection")
    step("closed")

    s.close()  # the "restart": the old listening socket goes away ...
    print("closed the listening socket")
    step("stopped")

    try:  # ... and a new one wants the same port
        s = listen(host, port, reuse=False)
        print("listening again")
    except OSError as e:
        name = errno.errorcode[e.errno]
        print(f"bind failed: [Errno {e.errno}] {name}: {e.strerror} ({type(e).__name__})")
        step("bind failed", error=e)
        s = listen(host, port, reuse=True)
        print("listening again, with SO_REUSEADDR")
    step("listening again")

    while True:  # serve on; the lab stops us
        conn, addr = s.accept()
        conn.close()


if __name__ == "__main__":
    run_server(serve, __file__)
