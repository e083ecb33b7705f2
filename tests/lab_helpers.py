"""What the tests of runs share: how to read a record briefly, and how to compare runs.

The ``lab_run`` fixture itself is in conftest.py; these are plain functions and
constants, imported by name (``from lab_helpers import table, fact``).
"""

from __future__ import annotations

import difflib
import json

import pytest
from lab.record import Record, Snapshot

REPEATS = 20  # runs in a row that must give the same normalised capture

LISTENER = ("listener", "LISTEN", 0, 0)


def table(snapshot: Snapshot | None) -> list[tuple]:
    """role, state, Recv-Q, Send-Q of every socket in a snapshot."""
    assert snapshot is not None
    return [(row.role, row.state, row.recv_q, row.send_q) for row in snapshot.sockets]


def fact(record: Record, label: str, name: str):
    event = record.event(label)
    assert event is not None, f"no step {label}"
    return event.facts[name]


def normalised_json(record: Record) -> str:
    return json.dumps(record.normalised(), sort_keys=True, indent=1)


def assert_all_equal(texts: list[str], what: str) -> None:
    for number, text in enumerate(texts[1:], start=2):
        if text != texts[0]:
            diff = "\n".join(difflib.unified_diff(texts[0].splitlines(), text.splitlines(), "run 1", f"run {number}", lineterm=""))
            pytest.fail(f"{what}: run {number} differs from run 1 (normalised records):\n{diff[:6000]}")


def assert_repeats_the_same(lab_run, experiment, run: str, check) -> None:
    """REPEATS runs in a row: the first tells the expected story (``check``), and all give one normalised capture."""
    records = [lab_run(experiment, run) for _ in range(REPEATS)]
    check(records[0])
    assert_all_equal([normalised_json(r) for r in records], f"{REPEATS} runs of {experiment.name}/{run}")
