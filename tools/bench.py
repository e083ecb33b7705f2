"""Measure what the lab costs, on this machine, in one run (``make bench``).

Prints:

* each experiment run's capture time (the CLI a reader uses, ``--quiet``);
* a clean build that runs every experiment (empty cache);
* a clean build served from the cache;
* a no-change rebuild;
* the same pages built with execution turned off (``lab_execution_mode=off``), clean
  and as a no-change rebuild: Sphinx's own cost, the baseline for the ratios.

Goals (from the project's issues): a capture well under a second, and every
run of the catalogue captured in under 10 s in all; a
clean build from the cache within 15 % of the build with execution off; a
no-change rebuild within 10 % of Sphinx's own.  Each timing is the median of
``--repeat`` runs.  This is a benchmark, not a test: it asserts nothing and
only reports, so a loaded machine cannot make the test suite flaky.

Since the pages draw every run (Graphviz, at write time), a clean build from
the cache does work the execution-off build cannot do: one ``dot`` per
picture.  The 15 % goal was set before the pictures; the ratio now measures
the pictures and the packet tables more than the cache.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from lab.schedule import load_experiments

NOTE_EXPERIMENTS = ("close", "shutdown")  # the rest of experiments.toml is the catalogue


def timed(action: Callable[[], None], repeat: int, before: Callable[[], None] = lambda: None) -> float:
    """Median wall-clock seconds of ``action``, with ``before`` run (untimed) each time."""
    samples = []
    for _ in range(repeat):
        before()
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def sphinx_build(out: Path, cache: Path, execute: bool) -> None:
    command = [
        sys.executable, "-m", "sphinx", "-q", "-b", "html", "-c", str(ROOT), str(ROOT / "docs"), str(out / "html"),
        "-d", str(out / "doctrees"), "-D", f"lab_cache_dir={cache}", "-D", f"lab_execution_mode={'auto' if execute else 'off'}",
    ]  # fmt: skip
    subprocess.run(command, check=True, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement, median reported (default 5)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    try:
        print(f"Python {sys.version.split()[0]}, {args.repeat} runs per measurement (median)\n")
        print("Capture time per run (python examples/CLIENT --run RUN --quiet):")
        totals = {"note": [0.0, 0], "catalogue": [0.0, 0]}
        for experiment in load_experiments().values():
            for run in experiment.runs:
                client = experiment.programs["client"]
                command = [sys.executable, str(client), "--run", run.name, "--quiet"]
                seconds = timed(lambda command=command: subprocess.run(command, check=True), args.repeat)
                label = f"{experiment.name}/{run.name}"
                print(f"  {label:<42} {seconds:6.3f} s", flush=True)
                part = totals["note" if experiment.name in NOTE_EXPERIMENTS else "catalogue"]
                part[0], part[1] = part[0] + seconds, part[1] + 1
        for part, goal in (("note", ""), ("catalogue", "   (goal: under 10 s)")):
            seconds, runs = totals[part]
            print(f"  {f'the {part}: its {runs} runs, one after another':<42} {seconds:6.3f} s{goal}")
        print()

        out, cache = work / "out", work / "cache"

        def wipe_output() -> None:
            shutil.rmtree(out, ignore_errors=True)

        def wipe_all() -> None:
            wipe_output()
            shutil.rmtree(cache, ignore_errors=True)

        clean_exec = timed(lambda: sphinx_build(out, cache, True), args.repeat, before=wipe_all)
        # The cache is full now: the next clean builds are served from it.
        clean_cached = timed(lambda: sphinx_build(out, cache, True), args.repeat, before=wipe_output)
        nochange = timed(lambda: sphinx_build(out, cache, True), args.repeat)
        clean_off = timed(lambda: sphinx_build(out, cache, False), args.repeat, before=wipe_output)
        nochange_off = timed(lambda: sphinx_build(out, cache, False), args.repeat)

        print("\nBuilds of the whole site (sphinx-build -b html):")
        rows = [
            ("clean build, executing every experiment", clean_exec, None),
            ("clean build from the cache", clean_cached, ("execution off, clean", clean_off, 1.15)),
            ("no-change rebuild", nochange, ("execution off, no change", nochange_off, 1.10)),
            ("execution off, clean", clean_off, None),
            ("execution off, no change", nochange_off, None),
        ]
        for label, seconds, compare in rows:
            line = f"  {label:<42} {seconds:6.3f} s"
            if compare:
                base_label, base, goal = compare
                ratio = seconds / base
                verdict = "meets" if ratio <= goal else "MISSES"
                line += f"   {ratio:4.2f} x {base_label} ({verdict} the goal of {goal:.2f} x)"
            print(line)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
