"""lab/isolation.py: the three ways a run can take place, each exercised for real.

- as root: a network namespace of its own;
- as an ordinary user (``nobody``, through ``runuser``): an unprivileged user
  namespace with a network namespace inside it;
- on the machine's loopback: asked for (``--isolation loopback``), or because
  the system refuses both kinds of namespace.

Each way must tell the same story; only where it happened and whether its
packets could be seen may differ.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import lab.isolation
import pytest
from lab.coordinator import run_experiment
from lab.isolation import (
    Isolation,
    IsolationError,
    enter_network_namespace,
    run_isolated,
)
from lab.record import Record
from lab.schedule import load_experiment

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
AS_ROOT = os.geteuid() == 0


def story(record: Record) -> list[tuple]:
    """What the programs did and the states they saw: the same wherever the run took place."""
    outputs = {name: result.stdout.splitlines()[1:] if name == "server" else result.stdout.splitlines()
               for name, result in record.programs.items()}  # the server's first line names the client's port
    states = [(s.at, [(r.role, r.state, r.recv_q, r.send_q) for r in s.sockets]) for s in record.all_snapshots()]
    return [outputs, states]


def flags(record: Record) -> list[tuple]:
    return [(p.step, p.sender, "+".join(p.flags), p.seq, p.ack, p.length) for p in record.packets]


@pytest.fixture(scope="module")
def close_in_namespace() -> Record:
    return run_experiment(load_experiment("close"))


@pytest.mark.skipif(not AS_ROOT, reason="this way is root's")
def test_root_runs_in_a_network_namespace_on_the_notes_port(close_in_namespace):
    record = close_in_namespace
    assert record.isolation == "a network namespace of its own (created as root)"
    assert record.ports["server"] == 50008  # nothing else can hold it in there
    assert record.packets_source == "AF_PACKET capture on the run's own loopback"
    assert [p.flags for p in record.packets][:3] == [["SYN"], ["SYN", "ACK"], ["ACK"]]


def test_loopback_when_asked_tells_the_same_story(close_in_namespace):
    record = run_experiment(load_experiment("close"), isolation="loopback")
    assert record.isolation.startswith("the machine's own loopback, with a free port (asked for")
    assert record.ports["server"] != 50008 or not AS_ROOT  # a free port, not the note's
    assert story(record) == story(close_in_namespace)
    if AS_ROOT:
        # Root may capture on the machine's loopback too; the run's port picks its segments out.
        assert record.packets_source.startswith("AF_PACKET capture on the machine's loopback")
        assert flags(record) == flags(close_in_namespace)


def test_isolation_mode_from_the_environment(monkeypatch):
    monkeypatch.setenv("LAB_ISOLATION", "loopback")
    assert run_isolated(lambda where: where).kind == "loopback"
    monkeypatch.setenv("LAB_ISOLATION", "sideways")
    with pytest.raises(IsolationError, match="isolation 'sideways' is not one of auto, namespace, loopback"):
        run_isolated(lambda where: where)


def test_a_system_that_refuses_namespaces_falls_back_to_loopback(monkeypatch):
    def refuse(flags: int) -> None:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(lab.isolation, "_unshare", refuse)
    where = run_isolated(lambda where: where)  # in the forked child, as every run
    assert where.kind == "loopback"
    assert "is not allowed here: EPERM" in where.reason
    assert where.describe().startswith("the machine's own loopback, with a free port (")
    with pytest.raises(IsolationError, match="no network namespace could be made: .*EPERM"):
        run_isolated(lambda where: where, "namespace")


def test_the_childs_exceptions_come_back_with_their_traceback():
    def fails(where: Isolation) -> None:
        raise KeyError("in the child")

    with pytest.raises(KeyError) as raised:
        run_isolated(fails)
    assert any("raise KeyError" in note for note in raised.value.__notes__)


def test_the_namespace_goes_with_the_child():
    """Nothing made in the child's namespace is visible here afterwards, nor the namespace itself."""
    own = os.readlink("/proc/self/ns/net")
    theirs = run_isolated(lambda where: (where.kind, os.readlink("/proc/self/ns/net")))
    if theirs[0] == "loopback":
        pytest.skip(f"no namespace here: {theirs}")
    assert theirs[1] != own
    assert os.readlink("/proc/self/ns/net") == own  # we never left ours
    assert enter_network_namespace is not None


# -- as an ordinary user ----------------------------------------------------------------


@pytest.fixture(scope="module")
def as_nobody(nobody_python):
    """Run a copy of examples/ as the user nobody; returns ``run(script, *args) -> (process, record)``."""
    python = nobody_python
    # A copy nobody can read (a clone may sit in root's home); the records go to a folder it may write.
    # (Not pytest's tmp_path: its parent folder is root's alone.)
    place = Path(tempfile.mkdtemp(prefix="lab-as-nobody-"))
    examples = place / "examples"
    shutil.copytree(EXAMPLES, examples, ignore=shutil.ignore_patterns("__pycache__"))
    out = place / "out"
    out.mkdir()
    for folder in (place, *place.rglob("*")):
        folder.chmod(0o777 if folder == out else (0o755 if folder.is_dir() else 0o644))

    def run(script: str, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, Record]:
        target = out / f"{script}.json"
        target.unlink(missing_ok=True)
        command = ["runuser", "-u", "nobody", "--", python, str(examples / script), "--json", str(target), *args]
        process = subprocess.run(
            command, capture_output=True, text=True, timeout=60, env=(os.environ | (env or {})), cwd=place
        )
        assert process.returncode == 0, process.stderr
        return process, Record.from_json(target.read_text(encoding="utf-8"))

    yield run
    shutil.rmtree(place)


def test_an_ordinary_user_runs_in_a_user_namespace(as_nobody, close_in_namespace):
    process, record = as_nobody("client-close.py")
    assert record.isolation == "a network namespace of its own, inside an unprivileged user namespace"
    assert record.ports["server"] == 50008
    assert record.packets_source == "AF_PACKET capture on the run's own loopback"
    assert story(record) == story(close_in_namespace)
    assert flags(record) == flags(close_in_namespace)
    assert re.search(r"client → server +FIN, ACK", process.stdout)  # the terminal shows the segments too


def test_an_ordinary_user_on_plain_loopback_is_told_why_there_are_no_packets(as_nobody, close_in_namespace):
    process, record = as_nobody("client-close.py", "--isolation", "loopback")
    assert record.isolation.startswith("the machine's own loopback")
    assert record.packets == []
    assert record.packets_source == (
        "no packet capture: packet capture needs CAP_NET_RAW (run as root, or in a user namespace)"
    )
    assert story(record) == story(close_in_namespace)
    # One line at the top says why, the closing line names the source, and no segment line is printed.
    assert "\n  (No segments shown: packet capture needs CAP_NET_RAW (run as root, or in a user namespace).)\n" in (
        process.stdout
    )
    assert process.stdout.count("packets: no packet capture: packet capture needs CAP_NET_RAW") == 1
    assert "client → server" not in process.stdout
