"""The lab: runs the examples as experiments and records what the kernel did.

Examples import two names from here:

* ``step("name", **facts)``: mark a moment the lab may stop at (a no-op when
  the example is run by hand against a server of your own);
* ``run_example(main, __file__)``: the command line of a client example, which
  runs the whole experiment when no ``--port`` is given.

Standard library only, and nothing from Sphinx: the documentation build runs
the examples through the same command line a reader uses.
"""

from collections.abc import Callable

from .participant import step

__all__ = ["run_example", "step"]


def run_example(main: Callable[[str, int], None], script: str) -> None:
    """Entry point of a client example (imported lazily: participants never need it)."""
    from .cli import client_command_line

    client_command_line(main, script)
