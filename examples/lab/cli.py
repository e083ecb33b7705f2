"""The command line shared by the client examples.

``python examples/client-close.py``            run the experiment, print the story
``python examples/client-close.py --json F``   ... and write the record to F
``python examples/client-close.py --pcap F``   ... and its segments to F, as tcpdump -w does
``python examples/client-close.py --port P``   just be the client, against a server on port P
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from .coordinator import ExperimentError, run_experiment
from .isolation import MODES, IsolationError
from .report import format_story
from .schedule import Experiment, ScheduleError, experiment_for_client, load_experiments


def _parser(script: Path, doc: str | None, runs: list[str], experiments: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python {script.name}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Without --port, the example starts the server itself, in a network namespace of its own where "
        "the system allows it (else on a free loopback port), "
        "runs the experiment and stops the server again.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="server address (default: %(default)s)")
    parser.add_argument("--port", type=int, help="use a server you started yourself on this port")
    parser.add_argument("--run", choices=runs, help=f"which order of steps to run (default: {runs[0]})")
    if len(experiments) > 1:
        parser.add_argument(
            "--experiment",
            choices=experiments,
            help=f"which of the experiments with this client to run (default: {experiments[0]})",
        )
    parser.add_argument("--all", action="store_true", help="run every order of steps, one after another")
    parser.add_argument("--json", metavar="FILE", type=Path, help="also write the run's record as JSON to FILE")
    parser.add_argument(
        "--pcap",
        metavar="FILE",
        type=Path,
        help="also write the run's segments to FILE as a pcap file, like tcpdump -w "
        "(where packets cannot be captured, none is written and it says why)",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument("--deadline", type=float, help="seconds before a stuck run is stopped (default: 5)")
    parser.add_argument(
        "--isolation",
        choices=MODES,
        help="auto (default): run in a network namespace of its own where the system allows it; "
        "namespace: insist on one; loopback: use the machine's loopback (also $LAB_ISOLATION)",
    )
    return parser


def client_command_line(main: Callable[[str, int], None], script_file: str) -> None:
    script = Path(script_file).resolve()
    doc = sys.modules["__main__"].__doc__
    path = script.parent / "experiments.toml"
    try:
        experiment = experiment_for_client(script, path)
        # Several experiments may share a client (one client against different servers).
        experiments = [e for e in load_experiments(path).values() if e.programs["client"].resolve() == script]
    except ScheduleError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)  # the same status as a run that fails: the experiment cannot be run
    run_names = list(dict.fromkeys(run.name for e in experiments for run in e.runs))
    parser = _parser(script, doc, run_names, [e.name for e in experiments])
    args = parser.parse_args()
    # Without --experiment, --run alone picks the experiment that has that run (what the site's capture
    # passes); run names are unique among the experiments of one client.
    experiment = (
        _chosen(experiments, getattr(args, "experiment", None))
        or next((e for e in experiments if args.run in [run.name for run in e.runs]), None)
        or experiment
    )
    if args.run is not None and args.run not in [run.name for run in experiment.runs]:
        parser.error(f"experiment {experiment.name!r} has no run {args.run!r}")

    if args.port is not None:
        main(args.host, args.port)  # the note's way: a server is already there
        return

    runs = [run.name for run in experiment.runs] if args.all else [args.run]
    if args.json and len(runs) > 1:
        sys.exit("error: --json writes one run's record; give --run NAME instead of --all")
    if args.pcap and len(runs) > 1:
        sys.exit("error: --pcap writes one run's segments; give --run NAME instead of --all")
    for name in runs:
        try:
            record = run_experiment(experiment, name, args.deadline, args.isolation, pcap_file=args.pcap)
        except (ExperimentError, IsolationError) as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        if args.json:
            args.json.write_text(record.to_json(), encoding="utf-8")
        if args.pcap and not args.pcap.exists():
            # The record still holds the tables; only the segments are missing, and it says why.
            print(f"warning: --pcap {args.pcap} not written: {record.packets_source}", file=sys.stderr)
        if not args.quiet:
            print(format_story(record))
            print()


def _chosen(experiments: list[Experiment], name: str | None) -> Experiment | None:
    return next((e for e in experiments if e.name == name), None)


def server_command_line(serve: Callable[[str, int], None], script_file: str) -> None:
    """``--host`` and ``--port`` (the note's 50008 by default), then serve until Ctrl-C."""
    script = Path(script_file).resolve()
    parser = argparse.ArgumentParser(
        prog=f"python {script.name}",
        description=sys.modules["__main__"].__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=50008, help="port to listen on, 0 for any free one (default: %(default)s)")
    args = parser.parse_args()
    try:
        serve(args.host, args.port)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how you stop it
