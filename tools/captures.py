#!/usr/bin/env python3
"""Record every run into docs/captures, or check the recorded runs against live ones.

    python tools/captures.py record [--only EXP[/RUN]]   (make captures [ONLY=...])
    python tools/captures.py verify [--only EXP[/RUN]]   (make verify [ONLY=...])

Each run is captured exactly as the site's build captures it (sphinx_lab's
CaptureJob and run_capture_files: the client's own command line with --json
and --pcap), so a recorded run is what a live build would have shown.  Both
refuse, saying why, on a host that cannot capture everything a page checks
(no network namespace of its own, or no packet capture): a record must never
hold less than a page checks, and a comparison there would only show the host.
Nothing here imports Sphinx.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "examples"), str(ROOT)]  # the lab, and sphinx_lab's Sphinx-free capture module

from lab.evidence import DEFAULT_DIRECTORY, EvidenceError, EvidenceStore, capture_problem, first_difference  # noqa: E402
from lab.schedule import ScheduleError, load_experiments  # noqa: E402
from sphinx_lab.capture import CaptureError, CaptureJob, run_capture_files  # noqa: E402


def jobs(examples: Path, only: str | None) -> list[CaptureJob]:
    """A job per run of every experiment (or those ``only`` names), as sphinx_lab/handlers.py makes them."""
    experiments = load_experiments(examples / "experiments.toml")
    lab_files = tuple(sorted((examples / "lab").glob("*.py")))
    found = [
        CaptureJob(
            experiment=experiment.name,
            run=run.name,
            client=experiment.programs["client"],
            experiment_files=tuple(experiment.files()),
            lab_files=lab_files,
            deadline=experiment.deadline,
            lab_home=examples,
        )
        for experiment in experiments.values()
        for run in experiment.runs
    ]
    if only:
        chosen = [job for job in found if only in (job.experiment, job.label)]
        if not chosen:
            names = ", ".join(job.label for job in found)
            raise SystemExit(f"error: ONLY={only} names no experiment or run; there are: {names}")
        return chosen
    return found


def refuse_if_host_cannot_capture(what: str) -> None:
    problem = capture_problem()
    if problem:
        raise SystemExit(
            f"error: cannot {what} on this host: {problem}.\n"
            "       A record must hold everything a page checks (a namespace of its own and its packets): "
            "run as root, or where unprivileged user namespaces are allowed."
        )


def record(examples: Path, store: EvidenceStore, only: str | None) -> int:
    chosen = jobs(examples, only)
    refuse_if_host_cannot_capture("record the evidence")
    print(f"Recording {len(chosen)} runs into {store.directory} ...")
    started = time.monotonic()
    for job in chosen:
        print(f"  {job.label:40} ", end="", flush=True)
        began = time.monotonic()
        try:
            result = run_capture_files(job)
        except CaptureError as error:
            print("FAILED")
            print(str(error), file=sys.stderr)
            return 1
        if result.pcap is None or not result.record.provenance or result.record.isolation.startswith("the machine's"):
            print("REFUSED")
            print(f"error: {job.label} ran without everything a page checks: {result.record.isolation}; "
                  f"{result.record.packets_source}", file=sys.stderr)
            return 1
        store.save(result.text, result.pcap, job.source_key())
        print(f"{time.monotonic() - began:6.2f} s  {len(result.record.packets):3} segments")
    if only is None:
        _remove_runs_gone(store, {(job.experiment, job.run) for job in chosen})
    print(f"Recorded {len(chosen)} runs in {time.monotonic() - started:.1f} s; commit {store.directory} with the sources.")
    return 0


def _remove_runs_gone(store: EvidenceStore, kept: set[tuple[str, str]]) -> None:
    """Runs no longer in experiments.toml leave no record behind (it would never be checked again)."""
    if not store.directory.is_dir():
        return
    for path in sorted(store.directory.glob("*/*")):
        if path.suffix in (".json", ".pcap") and (path.parent.name, path.stem) not in kept:
            print(f"  removing {path} (no such run any more)")
            path.unlink()
    for folder in store.directory.iterdir():
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def verify(examples: Path, store: EvidenceStore, only: str | None) -> int:
    chosen = jobs(examples, only)
    refuse_if_host_cannot_capture("verify the evidence (it compares live runs with the record)")
    print(f"Verifying {len(chosen)} recorded runs in {store.directory} against live runs ...")
    failures: list[str] = []
    for job in chosen:
        print(f"  {job.label:40} ", end="", flush=True)
        began = time.monotonic()
        try:
            recorded = store.load(job.experiment, job.run, job.source_key())
        except EvidenceError as error:
            print(error.reason.upper())
            failures.append(f"{job.label}: {error}")
            continue
        try:
            live = run_capture_files(job)
        except CaptureError as error:
            print("FAILED")
            failures.append(str(error))
            continue
        difference = first_difference(recorded.record, live.record)
        if difference:
            print("DIFFERS")
            failures.append(
                f"{job.label}: the live run differs from {recorded.json_path}: {difference}\n"
                f"  (a kernel that behaves differently, or a change not re-recorded: "
                f"make captures ONLY={job.label})"
            )
        else:
            print(f"same  {time.monotonic() - began:6.2f} s")
    if failures:
        print(f"\n{len(failures)} of {len(chosen)} runs do not match their record:", file=sys.stderr)
        for failure in failures:
            print(f"- {failure}", file=sys.stderr)
        return 1
    print(f"All {len(chosen)} runs match their record.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("record", "verify"))
    parser.add_argument("--only", metavar="EXP[/RUN]", help="one experiment, or one of its runs")
    parser.add_argument("--examples", type=Path, default=ROOT / "examples", help="the examples folder (default: %(default)s)")
    parser.add_argument("--captures", type=Path, default=ROOT / DEFAULT_DIRECTORY, help="the evidence folder (default: %(default)s)")
    args = parser.parse_args(argv)
    store = EvidenceStore(args.captures)
    try:
        action = record if args.action == "record" else verify
        return action(args.examples.resolve(), store, args.only or None)
    except ScheduleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
