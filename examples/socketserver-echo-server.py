"""An echo server built on the standard library's ``socketserver``, as its documentation shows.

``ThreadingTCPServer`` runs each connection's handler in a thread of its own;
``StreamRequestHandler`` gives the handler file objects over the socket.  The
handler echoes line by line.  A client that half-closes without a final
newline still gets its echo: the last "line" ends at the client's FIN.

When the handler returns, ``socketserver`` itself ends the connection: its
``shutdown_request()`` calls ``shutdown(SHUT_WR)`` and then ``close()``.

    python examples/socketserver-echo-server.py        # listens on 127.0.0.1:50008
    python examples/half-close-client.py --port 50008
"""

import argparse
import socketserver
import sys

from lab import step


class EchoHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        step("accepted")
        for line in self.rfile:  # a line ends at b"\n", or at the client's end of file
            self.wfile.write(line)
            print("echoed", line)
            step("echoed", line=line)
        print("end of file")
        step("end of file")
        # Returning hands the socket back to socketserver: shutdown(SHUT_WR), then close().


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True  # restart at once despite TIME_WAIT
    daemon_threads = True  # Ctrl-C does not wait for open connections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=50008, help="port to listen on, 0 for any free one (default: %(default)s)")
    args = parser.parse_args()
    with Server((args.host, args.port), EchoHandler) as server:
        host, port = server.server_address[:2]
        print(f"listening on {host}:{port}", file=sys.stderr)
        step("listening", port=port)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass  # Ctrl-C is how you stop it


if __name__ == "__main__":
    main()
