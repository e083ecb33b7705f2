"""Shared test set-up: Sphinx's own test fixtures, and the lab importable as `lab`."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "examples"), str(ROOT)]

pytest_plugins = ["sphinx.testing.fixtures"]
