"""An echo server built on ``asyncio`` streams: it reads everything, then echoes it.

``reader.read()`` with no size reads until the client's end of file.  The
connection is still open for writing after that FIN: asyncio's stream
protocol keeps the transport open on end of file (``eof_received()``
returns True), so the echo goes out, and ``writer.close()`` sends our FIN.

    python examples/asyncio-echo-server.py             # listens on 127.0.0.1:50008
    python examples/half-close-client.py --port 50008
"""

import argparse
import asyncio
import sys

from lab import step


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    step("accepted")  # (the lab's steps block the event loop; this server has one client at a time)
    data = await reader.read()  # until the client's FIN
    print("received", data)
    step("received", data=data)

    writer.write(data)
    await writer.drain()
    print("echoed")
    step("echoed")

    writer.close()
    await writer.wait_closed()


async def serve(host: str, port: int) -> None:
    server = await asyncio.start_server(handle, host, port)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on {host}:{port}", file=sys.stderr)
    step("listening", port=port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=50008, help="port to listen on, 0 for any free one (default: %(default)s)")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass  # Ctrl-C is how you stop it


if __name__ == "__main__":
    main()
