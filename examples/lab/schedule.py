"""The experiments and the fixed order of their steps, read from ``experiments.toml``.

An experiment is a server program and a client program.  A *run* of it is an
ordered list of steps, ``"program:step"``; each program stops at every
``step()`` call it makes and goes on only when the run reaches that step in the
list.  So the interleaving of the two programs is written down here, not left
to timing.  A step written as ``["program:step", "caption"]`` also takes a
snapshot of every socket of the experiment when the run reaches it, once the
network is quiet.

See ``examples/experiments.toml`` for the format, with comments.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .record import step_label

EXAMPLES_DIR = Path(__file__).resolve().parent.parent
EXPERIMENTS_FILE = EXAMPLES_DIR / "experiments.toml"
PROGRAMS = ("server", "client")


class ScheduleError(ValueError):
    """experiments.toml says something we cannot run; the message says where."""


@dataclass(frozen=True)
class Step:
    """One entry of a run: let ``program`` pass its ``occurrence``-th ``name`` step."""

    program: str
    name: str
    occurrence: int
    caption: str | None = None  # set: take a snapshot here

    @property
    def label(self) -> str:
        return step_label(self.program, self.name, self.occurrence)


@dataclass(frozen=True)
class Run:
    name: str
    title: str
    steps: tuple[Step, ...]
    final_caption: str | None
    description: str = ""


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    programs: dict[str, Path]  # program name -> script path
    runs: tuple[Run, ...]
    deadline: float = 5.0
    source: Path = field(default=EXPERIMENTS_FILE, compare=False)
    # "program:step" -> the socket call the program makes just before that step, e.g. "close()";
    # the sequence diagram marks it on the program's lifeline.
    calls: dict[str, str] = field(default_factory=dict, compare=False)

    def run(self, name: str | None) -> Run:
        if name is None:
            return self.runs[0]
        for run in self.runs:
            if run.name == name:
                return run
        known = ", ".join(r.name for r in self.runs)
        raise ScheduleError(f"experiment {self.name!r} has no run {name!r} (its runs: {known})")

    def files(self) -> list[Path]:
        """Every file whose content decides what a run of this experiment does."""
        return [self.source, *self.programs.values()]


def _parse_step(file: str, experiment: str, run: str, entry: object, counts: dict[tuple[str, str], int]) -> Step:
    where = f"{file}: experiment {experiment!r}, run {run!r}"
    caption = None
    if isinstance(entry, list):
        if len(entry) != 2 or not all(isinstance(x, str) for x in entry):
            raise ScheduleError(f"{where}: a snapshot step is [\"program:step\", \"caption\"], not {entry!r}")
        entry, caption = entry
    if not isinstance(entry, str) or entry.count(":") != 1:
        raise ScheduleError(f"{where}: a step is written \"program:step\", not {entry!r}")
    program, name = (part.strip() for part in entry.split(":"))
    if program not in PROGRAMS:
        raise ScheduleError(f"{where}: step {entry!r} names program {program!r}; programs are {PROGRAMS}")
    counts[program, name] = counts.get((program, name), 0) + 1
    return Step(program, name, counts[program, name], caption)


def _parse_run(file: str, experiment: str, table: dict) -> Run:
    name = table.get("name")
    if not isinstance(name, str):
        raise ScheduleError(f"{file}: experiment {experiment!r} has a run without a name")
    counts: dict[tuple[str, str], int] = {}
    steps = tuple(_parse_step(file, experiment, name, entry, counts) for entry in table.get("steps", []))
    if not steps:
        raise ScheduleError(f"{file}: experiment {experiment!r}, run {name!r} has no steps")
    return Run(
        name=name,
        title=table.get("title", name),
        steps=steps,
        final_caption=table.get("final"),
        description=table.get("description", "").strip(),
    )


def load_experiments(path: Path = EXPERIMENTS_FILE) -> dict[str, Experiment]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ScheduleError(f"{path}: {error}") from error
    experiments = {}
    for name, table in data.items():
        if not isinstance(table, dict):
            raise ScheduleError(f"{path.name}: {name!r} is not an experiment: write it as [{name}] with its settings")
        programs = {}
        for program in PROGRAMS:
            if program not in table:
                raise ScheduleError(f"{path.name}: experiment {name!r} does not name its {program} program")
            programs[program] = path.parent / table[program]
            if not programs[program].is_file():
                raise ScheduleError(f"{path.name}: experiment {name!r}: no file {programs[program]}")
        runs = tuple(_parse_run(path.name, name, run) for run in table.get("runs", []))
        if not runs:
            raise ScheduleError(f"{path.name}: experiment {name!r} has no runs")
        calls = table.get("calls", {})
        if not isinstance(calls, dict) or not all(isinstance(v, str) for v in calls.values()):
            raise ScheduleError(f"{path.name}: experiment {name!r}: calls maps \"program:step\" to a call, as text")
        for label in calls:
            program, _, step = label.partition(":")
            if program not in PROGRAMS or not step:
                raise ScheduleError(f"{path.name}: experiment {name!r}: calls has {label!r}; write \"program:step\"")
        experiments[name] = Experiment(
            name=name,
            title=table.get("title", name),
            programs=programs,
            runs=runs,
            deadline=float(table.get("deadline", 5.0)),
            source=path,
            calls=calls,
        )
    return experiments


def load_experiment(name: str, path: Path = EXPERIMENTS_FILE) -> Experiment:
    experiments = load_experiments(path)
    if name not in experiments:
        raise ScheduleError(f"{path.name} has no experiment {name!r} (it has: {', '.join(experiments)})")
    return experiments[name]


def experiment_for_client(script: Path, path: Path = EXPERIMENTS_FILE) -> Experiment:
    """The experiment whose client is ``script``: what ``python client-x.py`` runs."""
    for experiment in load_experiments(path).values():
        if experiment.programs["client"].resolve() == script.resolve():
            return experiment
    raise ScheduleError(f"{path.name} has no experiment whose client is {script.name}")
