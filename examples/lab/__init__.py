"""The lab: runs the examples as experiments and records what the kernel did.

Examples import three names from here:

* ``step("name", **facts)``: mark a moment the lab may stop at (a no-op when
  the example is run by hand against a server of your own);
* ``run_example(main, __file__)``: the command line of a client example, which
  runs the whole experiment when no ``--port`` is given;
* ``run_server(serve, __file__)``: the command line of a server example
  (``--host``, ``--port``; Ctrl-C stops it).

Standard library only, and nothing from Sphinx: the documentation build runs
the examples through the same command line a reader uses.
"""

from collections.abc import Callable

from .participant import step

__all__ = ["run_example", "run_server", "step"]


def run_example(main: Callable[[str, int], None], script: str) -> None:
    """Entry point of a client example (imported lazily: participants never need it)."""
    from .cli import client_command_line

    client_command_line(main, script)


def run_server(serve: Callable[[str, int], None], script: str) -> None:
    """Entry point of a server example: ``serve(host, port)`` until Ctrl-C."""
    from .cli import server_command_line

    server_command_line(serve, script)
