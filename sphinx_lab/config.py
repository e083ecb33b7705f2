"""The extension's settings, resolved once from the Sphinx configuration.

``lab_examples_dir`` and ``lab_cache_dir`` may be relative; they are taken
relative to the configuration directory, as ``html_static_path`` is, so a
build gives the same result from any working directory.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sphinx.application import Sphinx

# name -> (default, rebuild, types, description).  Only what changes the pages
# ("env") makes Sphinx re-read them; where the cache lives or how long a run
# may take does not change what a page shows.
CONFIG_VALUES: dict[str, tuple[Any, str, tuple[type, ...], str]] = {
    "lab_examples_dir": (None, "env", (str, Path, type(None)), "folder holding experiments.toml (default: <confdir>/examples)"),
    "lab_cache_dir": (None, "", (str, Path, type(None)), "folder of cached captures (default: <outdir>/../captures)"),
    "lab_execute": (True, "env", (bool,), "run the examples; when off, show sources only"),
    "lab_deadline": (None, "", (int, float, type(None)), "seconds before a stuck run is stopped (default: the experiment's)"),
}


def _config_dir(app: Sphinx) -> Path:
    return Path(app.confdir or app.srcdir)


def examples_dir(app: Sphinx) -> Path:
    configured = app.config.lab_examples_dir
    return (_config_dir(app) / (configured if configured is not None else "examples")).resolve()


@dataclass(frozen=True)
class LabSettings:
    examples_dir: Path
    cache_dir: Path
    execute: bool
    deadline: float | None

    @property
    def experiments_file(self) -> Path:
        return self.examples_dir / "experiments.toml"

    @property
    def lab_dir(self) -> Path:
        """The capture code a run uses: the examples' own lab/, else the one this process imported."""
        own = self.examples_dir / "lab"
        if own.is_dir():
            return own
        import lab

        return Path(lab.__file__).resolve().parent

    def lab_files(self) -> tuple[Path, ...]:
        return tuple(sorted(self.lab_dir.glob("*.py")))

    @classmethod
    def from_app(cls, app: Sphinx) -> LabSettings:
        configured = app.config.lab_cache_dir
        # Next to the output folder (e.g. _build/captures): outside the sources,
        # and shared by the html, latex and text builders.
        cache = _config_dir(app) / configured if configured is not None else Path(app.outdir).parent / "captures"
        deadline = app.config.lab_deadline
        return cls(
            examples_dir=examples_dir(app),
            cache_dir=cache.resolve(),
            execute=bool(app.config.lab_execute),
            deadline=float(deadline) if deadline is not None else None,
        )


@contextmanager
def no_bytecode() -> Iterator[None]:
    """Import without writing __pycache__ next to the sources (sphinx-autobuild would see it)."""
    previous = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.dont_write_bytecode = previous


def make_lab_importable(folder: Path) -> None:
    """Put the examples folder on sys.path, so that its lab package imports as ``lab``."""
    if (folder / "lab").is_dir() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
