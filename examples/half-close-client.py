"""A client that half-closes: it sends its request, then ``shutdown(SHUT_WR)``, and reads the whole reply.

This is what ``shutdown()`` is for.  The FIN says "no more requests"; the
connection stays open for reading, so the reply arrives in full, and the
server's own FIN (``recv()`` returning ``b''``) says it is complete:

    shut_wr
    Received b'Hello, world'

It works against servers we did not write: the standard library's
``socketserver`` and ``asyncio`` echo servers in this folder, ``socat``,
or anything else that echoes until end of file:

    python examples/half-close-client.py                      # against socketserver-echo-server.py
    python examples/half-close-client.py --experiment other-peers-asyncio
    python examples/half-close-client.py --port 50008         # against a server you started
"""

import socket

from lab import run_example, step


def main(host: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, port))
    step("connected")

    s.sendall(b"Hello, world")
    step("sent")

    s.shutdown(socket.SHUT_WR)  # our FIN: the request is complete
    print("shut_wr")
    step("shut_wr")

    reply = b""
    while data := s.recv(1024):  # until the server's FIN: the reply is complete
        reply += data
    print("Received", repr(reply))
    step("received", data=reply)

    s.close()


if __name__ == "__main__":
    run_example(main, __file__)
