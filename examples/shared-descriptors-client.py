"""Two descriptors and a file for one connection: which close() ends it?

The client sends ``Hello, world`` and then holds its connection three ways:
the socket ``s``, a duplicate ``copy = s.dup()`` (another descriptor for the
same socket, as ``fork()`` gives a child), and a file ``reader`` made by
``copy.makefile()``.  It closes ``s``, shuts the connection down for
writing through ``copy``, closes ``copy`` too, and reads the reply through
``reader`` until the end of the stream:

    closed s: copy still holds the connection
    shut down for writing through copy
    closed copy: reader still holds the connection
    received b'Hello, world'

``close()`` gives up one reference; the connection ends only with the last
one.  ``shutdown()`` acts on the connection itself, whoever else holds it.

Run it alone to see the whole experiment with the forking server of
``shared-descriptors-server.py``; ``--run parent-closes-late`` shows the
classic bug of a forking server:

    python examples/shared-descriptors-client.py --all
"""

import socket

from lab import run_example, step


def main(host: str, port: int) -> None:
    s = socket.create_connection((host, port))
    step("connected")

    s.sendall(b"Hello, world")
    copy = s.dup()  # a second descriptor for the same socket
    s.close()  # one of two: nothing is sent, the connection stays open
    print("closed s: copy still holds the connection")
    step("closed s")

    reader = copy.makefile("rb")  # Python counts the file as one more user of copy
    copy.shutdown(socket.SHUT_WR)  # the FIN goes out now, although reader still holds the socket
    print("shut down for writing through copy")
    step("shut_wr")

    copy.close()  # reader still uses the socket: Python keeps the descriptor open
    print("closed copy: reader still holds the connection")
    step("closed copy")

    data = reader.read()  # everything up to the end of the stream: returns at the server's FIN
    print("received", data)
    step("received", data=data)
    reader.close()  # the last reference: the descriptor is closed now


if __name__ == "__main__":
    run_example(main, __file__)
