"""Every run of every experiment tells one story twice: on the wire, and in the kernel's tables.

RFC 9293's state machine, fed the captured segments of each connection
(lab/tcp_states.py), must reach at every step the states the kernel's table
lists for that connection.  A capture whose packets and tables disagree has
lost a segment, tied one to the wrong step, or read a table too early.
"""

from __future__ import annotations

import pytest
from lab.coordinator import run_experiment
from lab.record import client_port_name
from lab.schedule import load_experiments
from lab.tcp_states import disagreements

RUNS = [(experiment, run.name) for experiment in load_experiments().values() for run in experiment.runs]


@pytest.mark.parametrize("experiment, run", RUNS, ids=[f"{e.name}/{r}" for e, r in RUNS])
def test_the_wire_and_the_tables_agree(experiment, run):
    record = run_experiment(experiment, run)
    if not record.packets_source.startswith("AF_PACKET"):
        pytest.skip(record.packets_source)
    connections = record.connections()
    assert connections == list(range(1, len(connections) + 1))  # numbered in order, none skipped
    for number in connections:
        assert client_port_name(number) in record.ports  # so normalising replaces its port
        view = record.for_connection(number)
        assert view.packets and all(p.connection == number for p in view.packets)
        assert [p.flags for p in view.packets][0] == ["SYN"], "each connection's segments start with its SYN"
        assert disagreements(view) == [], f"connection {number}"
