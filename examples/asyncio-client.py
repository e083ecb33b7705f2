"""An ``asyncio`` client that half-closes with ``writer.write_eof()``, against the note's server.

``write_eof()`` is asyncio's ``shutdown(SHUT_WR)``: once everything written
before it has been sent, the transport shuts the socket down for writing.
Reading goes on: ``reader.read()`` returns the whole echo when the server's
FIN arrives.

    shut_wr
    Received b'Hello, world'

Run alone, it starts the note's forking server (multi-process-server.py):

    python examples/asyncio-client.py
    python examples/asyncio-client.py --port 50008     # against a server you started
"""

import asyncio

from lab import run_example, step


async def talk(host: str, port: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    step("connected")

    writer.write(b"Hello, world")
    await writer.drain()
    step("sent")

    writer.write_eof()  # the transport calls shutdown(SHUT_WR) on the socket
    print("shut_wr")
    step("shut_wr")

    data = await reader.read()  # the echo, up to the server's FIN
    print("Received", repr(data))
    step("received", data=data)

    writer.close()
    await writer.wait_closed()


def main(host: str, port: int) -> None:
    asyncio.run(talk(host, port))


if __name__ == "__main__":
    run_example(main, __file__)
