"""The recorded evidence: provenance, pcap files tcpdump reads, the store, make captures / make verify.

Real runs on real sockets; the examples are copied before anything is changed.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lab.coordinator import Coordinator
from lab.evidence import EvidenceError, EvidenceStore, capture_problem, source_key
from lab.isolation import run_isolated
from lab.record import SCHEMA_VERSION, TEARDOWN_SYSCTLS, Record
from lab.schedule import load_experiment

from sphinx_lab.capture import CaptureJob, run_capture_files

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CAPTURES = ROOT / "docs" / "captures"
TOOL = ROOT / "tools" / "captures.py"

CAN_CAPTURE = capture_problem()
needs_capture = pytest.mark.skipif(CAN_CAPTURE is not None, reason=f"this host cannot capture: {CAN_CAPTURE}")
TCPDUMP = shutil.which("tcpdump") or "/usr/bin/tcpdump"
needs_tcpdump = pytest.mark.skipif(not Path(TCPDUMP).exists(), reason="tcpdump is not installed (tools/system-packages.sh)")

# tcpdump's letter for each flag (print-tcp.c); "." is ACK.
TCPDUMP_FLAGS = {"FIN": "F", "SYN": "S", "RST": "R", "PSH": "P", "ACK": ".", "URG": "U", "ECE": "E", "CWR": "W"}


def job_for(examples: Path, experiment_name: str, run: str | None = None) -> CaptureJob:
    experiment = load_experiment(experiment_name, examples / "experiments.toml")
    return CaptureJob(
        experiment=experiment.name,
        run=experiment.run(run).name,
        client=experiment.programs["client"],
        experiment_files=tuple(experiment.files()),
        lab_files=tuple(sorted((examples / "lab").glob("*.py"))),
        deadline=experiment.deadline,
        lab_home=examples,
    )


def tcpdump_segments(pcap: Path) -> list[tuple[set[str], int]]:
    """(flag letters, payload length) of each segment, as Debian's ``tcpdump -r`` prints them."""
    done = subprocess.run([TCPDUMP, "-n", "-r", str(pcap)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "link-type EN10MB" in done.stderr
    found = []
    for line in done.stdout.splitlines():
        match = re.search(r"Flags \[([^\]]*)\].*length (\d+)", line)
        assert match, f"tcpdump printed a line that is no TCP segment: {line!r}"
        found.append((set(match[1]), int(match[2])))
    return found


def as_tcpdump_shows(record: Record) -> list[tuple[set[str], int]]:
    return [({TCPDUMP_FLAGS[flag] for flag in packet.flags}, packet.length) for packet in record.packets]


@pytest.fixture(scope="module")
def close_run():
    """One live run of close/close, through the build's own capture path."""
    if CAN_CAPTURE is not None:
        pytest.skip(f"this host cannot capture: {CAN_CAPTURE}")
    job = job_for(EXAMPLES, "close")
    return job, run_capture_files(job)


@pytest.fixture
def examples_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


# -- provenance ------------------------------------------------------------------------


def test_record_carries_its_provenance(close_run) -> None:
    _, result = close_run
    provenance = result.record.provenance
    assert provenance is not None
    assert provenance.kernel == f"Linux {platform.release()}"
    assert provenance.python == platform.python_version()
    date = datetime.fromisoformat(provenance.date)
    assert date.utcoffset() is not None and date.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs((datetime.now(UTC) - date).total_seconds()) < 300
    assert provenance.isolation == result.record.isolation and "network namespace of its own" in provenance.isolation
    assert provenance.states_source == result.record.states_source
    assert provenance.packets_source == result.record.packets_source == "AF_PACKET capture on the run's own loopback"
    assert set(provenance.sysctls) == set(TEARDOWN_SYSCTLS)
    assert provenance.sysctls["net.ipv4.tcp_fin_timeout"].isdigit()
    # Left out of the comparison: it is the host's and the date's.
    assert "provenance" not in result.record.normalised()
    assert Record.from_json(result.text).provenance == provenance


@needs_capture
def test_sysctls_are_read_inside_the_runs_namespace() -> None:
    """A value set in the run's own namespace, not the host's, is the one recorded."""
    host = Path("/proc/sys/net/ipv4/tcp_fin_timeout").read_text().strip()
    mine = "37" if host != "37" else "38"
    experiment = load_experiment("close", EXAMPLES / "experiments.toml")

    def in_namespace(where):
        Path("/proc/sys/net/ipv4/tcp_fin_timeout").write_text(mine)  # the namespace's own copy
        return Coordinator(experiment, experiment.run(None), where=where).execute()

    try:
        record = run_isolated(in_namespace, "namespace")
    except PermissionError:
        pytest.skip("this namespace's sysctls cannot be written here")
    assert record.provenance.sysctls["net.ipv4.tcp_fin_timeout"] == mine  # type: ignore[union-attr]
    assert Path("/proc/sys/net/ipv4/tcp_fin_timeout").read_text().strip() == host  # the host's is untouched


# -- pcap files ------------------------------------------------------------------------


@needs_tcpdump
def test_every_committed_pcap_is_read_by_tcpdump_as_its_record_shows() -> None:
    records = sorted(CAPTURES.glob("*/*.json"))
    assert len(records) >= 26
    for path in records:
        data = json.loads(path.read_text(encoding="utf-8"))
        data.pop("source_key")
        record = Record.from_data(data)
        pcap = path.with_suffix(".pcap")
        assert pcap.is_file(), f"{path} has no pcap file beside it"
        assert tcpdump_segments(pcap) == as_tcpdump_shows(record), pcap
        assert record.packets, path


@needs_capture
@needs_tcpdump
def test_pcap_option_writes_what_tcpdump_reads(tmp_path: Path) -> None:
    json_file, pcap_file = tmp_path / "run.json", tmp_path / "run.pcap"
    done = subprocess.run(
        [sys.executable, "client-close.py", "--json", str(json_file), "--pcap", str(pcap_file), "--quiet"],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 0, done.stderr
    record = Record.from_json(json_file.read_text(encoding="utf-8"))
    shown = tcpdump_segments(pcap_file)
    assert shown == as_tcpdump_shows(record)
    assert ({"S"}, 0) == shown[0] and ({"P", "."}, 12) in shown  # the SYN, and the client's 12 bytes


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to become nobody")
def test_pcap_option_says_why_when_no_packets_can_be_captured() -> None:
    """As nobody on the machine's loopback there is no CAP_NET_RAW: no file, and a reason."""
    with tempfile.TemporaryDirectory() as folder:  # not pytest's tmp_path: root's alone
        # A copy of the examples nobody may read: a fresh clone may sit in a folder only root can enter.
        examples = Path(folder) / "examples"
        shutil.copytree(EXAMPLES, examples, ignore=shutil.ignore_patterns("__pycache__"))
        for path in (Path(folder), *Path(folder).rglob("*")):
            path.chmod(0o777 if path == Path(folder) else 0o755 if path.is_dir() else 0o644)
        _nobody_writes_no_pcap(examples, Path(folder) / "run.pcap")


def _nobody_writes_no_pcap(examples: Path, pcap_file: Path) -> None:
    # The lab is standard library only: the system's Python will do where the venv's is root's alone.
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    done = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", python, "client-close.py",
         "--isolation", "loopback", "--pcap", str(pcap_file), "--quiet"],
        cwd=examples,
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert not pcap_file.exists()
    assert f"warning: --pcap {pcap_file} not written: no packet capture: packet capture needs CAP_NET_RAW" in done.stderr


# -- the store -----------------------------------------------------------------------


def test_source_key_follows_sources_not_host(examples_copy: Path) -> None:
    job = job_for(examples_copy, "close")
    key = job.source_key()
    assert key == job_for(EXAMPLES, "close").source_key()  # the same files elsewhere: the same key
    assert key == source_key(job.inputs(), "close", "close") and re.fullmatch(r"[0-9a-f]{64}", key)
    assert source_key(job.inputs(), "close", "other") != key
    (examples_copy / "client-close.py").write_text((examples_copy / "client-close.py").read_text() + "\n# edited\n")
    assert job_for(examples_copy, "close").source_key() != key


def test_store_saves_and_loads_and_names_every_bad_file(close_run, tmp_path: Path) -> None:
    job, result = close_run
    store = EvidenceStore(tmp_path / "captures")
    key = job.source_key()
    store.save(result.text, result.pcap, key)
    json_path, pcap_path = store.json_path("close", "close"), store.pcap_path("close", "close")
    assert json_path == tmp_path / "captures" / "close" / "close.json" and pcap_path.with_suffix(".json") == json_path
    assert json.loads(json_path.read_text())["source_key"] == key
    assert pcap_path.read_bytes() == result.pcap
    assert not [p for p in json_path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left
    recorded = store.load("close", "close", key)
    assert recorded.record.normalised() == result.record.normalised()
    assert (recorded.json_path, recorded.pcap_path) == (json_path, pcap_path)

    good = json_path.read_text()

    def error_for(text: str | None, expected_key: str = key) -> EvidenceError:
        if text is None:
            json_path.unlink(missing_ok=True)
        else:
            json_path.write_text(text)
        with pytest.raises(EvidenceError) as caught:
            store.load("close", "close", expected_key)
        message = str(caught.value)
        assert str(json_path) in message and "make captures ONLY=close/close" in message, message
        assert caught.value.path == json_path and caught.value.remedy == "make captures ONLY=close/close"
        return caught.value

    assert error_for(good, "0" * 64).reason == "made from other sources"
    assert error_for("{ not json").reason == "corrupt"
    assert error_for(json.dumps({"schema": SCHEMA_VERSION, "source_key": key})).reason == "corrupt"
    assert error_for(json.dumps(json.loads(good) | {"schema": SCHEMA_VERSION + 1})).reason == "newer schema"
    assert error_for(json.dumps(json.loads(good) | {"schema": SCHEMA_VERSION - 1})).reason == "older schema"
    assert error_for(None).reason == "missing"
    assert "there is no recorded evidence" in str(error_for(None))

    store.save(result.text, None, key)  # recorded without packets: no pcap is left to mislead
    assert store.load("close", "close", key).pcap_path is None and not pcap_path.exists()


# -- make captures / make verify -------------------------------------------------------


def tool(action: str, examples: Path, captures: Path, only: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), action, "--examples", str(examples), "--captures", str(captures), "--only", only],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONDONTWRITEBYTECODE": "1"},
        timeout=120,
    )


@needs_capture
def test_verify_passes_on_a_fresh_record_and_names_what_changed(examples_copy: Path, tmp_path: Path) -> None:
    captures = tmp_path / "captures"
    recorded = tool("record", examples_copy, captures, "close/close")
    assert recorded.returncode == 0, recorded.stderr
    assert re.search(r"close/close +\d+\.\d\d s +9 segments", recorded.stdout)
    assert sorted(p.name for p in (captures / "close").iterdir()) == ["close.json", "close.pcap"]

    verified = tool("verify", examples_copy, captures, "close/close")
    assert verified.returncode == 0, verified.stderr
    assert "The run matches its record." in verified.stdout

    # A record whose story differs (as a kernel that behaves differently would give): the first step named.
    path = captures / "close" / "close.json"
    data = json.loads(path.read_text())
    fin = next(p for p in data["packets"] if "FIN" in p["flags"])
    fin["flags"] = ["FIN", "PSH", "ACK"]
    path.write_text(json.dumps(data))
    differs = tool("verify", examples_copy, captures, "close/close")
    assert differs.returncode == 1
    assert f"close/close: the live run differs from {path}: the segments of step {fin['step']}[" in differs.stderr
    assert '.flags: recorded ["FIN", "PSH", "ACK"], live ["FIN", "ACK"]' in differs.stderr

    # An example changed without re-recording: stale, with the command that re-records it.
    client = examples_copy / "client-close.py"
    client.write_text(client.read_text() + "\n# changed after the record was made\n")
    stale = tool("verify", examples_copy, captures, "close/close")
    assert stale.returncode == 1
    assert f"{path}: the record was made from other sources than today's" in stale.stderr
    assert "re-record it with: make captures ONLY=close/close" in stale.stderr
    assert "Traceback" not in stale.stderr


def test_only_must_name_a_run(tmp_path: Path) -> None:
    done = tool("record", EXAMPLES, tmp_path / "captures", "no-such/run")
    assert done.returncode != 0
    assert "ONLY=no-such/run names no experiment or run; there are: close/close" in done.stderr
    assert not (tmp_path / "captures").exists()
