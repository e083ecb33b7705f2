"""The extension's settings, resolved once from the Sphinx configuration.

``lab_examples_dir`` and ``lab_cache_dir`` may be relative; they are taken
relative to the configuration directory, as ``html_static_path`` is, so a
build gives the same result from any working directory.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sphinx.application import Sphinx
    from sphinx.config import Config

MODES = ("auto", "force", "replay", "off")  # lab_execution_mode's values (modes.py has one class each)
MODE_ENV = "LAB_EXECUTION_MODE"

# name -> (default, rebuild, types, description).  Only what changes the pages
# ("env") makes Sphinx re-read them; where the cache lives or how long a run
# may take does not change what a page shows.
CONFIG_VALUES: dict[str, tuple[Any, str, tuple[type, ...], str]] = {
    "lab_examples_dir": (None, "env", (str, Path, type(None)), "folder holding experiments.toml (default: <confdir>/examples)"),
    "lab_cache_dir": (None, "", (str, Path, type(None)), "folder of cached captures (default: <outdir>/../captures)"),
    "lab_execution_mode": ("auto", "env", (str,), "auto, force, replay or off (see modes.py); $LAB_EXECUTION_MODE"),
    "lab_evidence_dir": (None, "env", (str, Path, type(None)), "the recorded evidence (default: <srcdir>/captures)"),
    "lab_execute": (True, "env", (bool,), "False: the same as lab_execution_mode = 'off' (kept for old conf.py files)"),
    "lab_deadline": (None, "", (int, float, type(None)), "seconds before a stuck run is stopped (default: the experiment's)"),
}


def _config_dir(app: Sphinx) -> Path:
    return Path(app.confdir or app.srcdir)


def examples_dir(app: Sphinx) -> Path:
    configured = app.config.lab_examples_dir
    return (_config_dir(app) / (configured if configured is not None else "examples")).resolve()


def resolve_execution_mode(app: Sphinx, config: Config) -> None:
    """Settle ``lab_execution_mode`` at config-inited, so a change of mode re-reads every page.

    Who wins, most specific first: ``-D lab_execution_mode=...`` on the command
    line, then ``$LAB_EXECUTION_MODE``, then conf.py's ``lab_execution_mode``
    (default ``auto``); the old ``lab_execute = False`` means ``off`` where
    the mode was left at its default.
    """
    from sphinx.errors import ConfigError

    environment = os.environ.get(MODE_ENV)
    if "lab_execution_mode" in config.overrides:
        value, origin = config.lab_execution_mode, "-D lab_execution_mode"
    elif environment:
        value, origin = environment, f"${MODE_ENV}"
    elif not config.lab_execute and config.lab_execution_mode == "auto":
        value, origin = "off", "lab_execute"
    else:
        value, origin = config.lab_execution_mode, "lab_execution_mode (conf.py)"
    if value not in MODES:
        raise ConfigError(f"sphinx_lab: {origin} is {value!r}; choose one of: {', '.join(MODES)}")
    config.lab_execution_mode = value


@dataclass(frozen=True)
class LabSettings:
    examples_dir: Path
    cache_dir: Path
    evidence_dir: Path
    mode: str  # one of modes.MODES, settled by resolve_execution_mode
    deadline: float | None

    @property
    def execute(self) -> bool:
        return self.mode != "off"

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
        evidence = app.config.lab_evidence_dir
        deadline = app.config.lab_deadline
        return cls(
            examples_dir=examples_dir(app),
            cache_dir=cache.resolve(),
            evidence_dir=(_config_dir(app) / evidence if evidence is not None else Path(app.srcdir) / "captures").resolve(),
            mode=app.config.lab_execution_mode,
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
