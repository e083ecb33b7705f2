"""A client that crashes at once: the build must say where, with what command, and why."""

import sys

print("the broken client starts")
print("about to fail", file=sys.stderr)
settings: dict[str, str] = {}
print(settings["port"])  # KeyError: the crash the build must report
