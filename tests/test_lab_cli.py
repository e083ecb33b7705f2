"""The examples' command line, run as a reader runs it: ``python examples/client-shutdown.py ...``.

Every command gets a unique environment mark, which the lab passes on to
every process it starts; afterwards none may be alive, and no socket of the
run's server port may be left but TIME_WAIT.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lab.coordinator import ExperimentError  # noqa: F401  (the CLI's errors are these, printed)
from lab.record import Record

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PORT_IN_STORY = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


@pytest.fixture
def cli(lab_leftovers):
    """Run a command line of ours; afterwards check that it left no process and no socket."""

    def run(*args: str, cwd: Path = ROOT, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        mark = lab_leftovers.new_mark()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")} | {lab_leftovers.mark_env: mark}
        done = subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False
        )
        assert lab_leftovers.processes_marked(mark) == [], f"{args}: processes of the run outlived it"
        for port in {int(p) for p in PORT_IN_STORY.findall(done.stdout + done.stderr)}:
            assert lab_leftovers.sockets_left(port) == [], f"{args}: sockets left on port {port}"
        return done

    return run


def positions(text: str, *needles: str) -> list[int]:
    found = [text.find(needle) for needle in needles]
    missing = [needle for needle, at in zip(needles, found) if at < 0]
    assert not missing, f"missing from the output: {missing}\n--- output ---\n{text}"
    return found


def test_client_shutdown_prints_both_programs_and_the_tables(cli):
    done = cli("examples/client-shutdown.py")
    assert (done.returncode, done.stderr) == (0, "")
    out = done.stdout
    assert out.startswith(
        "shutdown(): the note's second experiment\n"
        "Run 'echo-before-shut-rd': The echo arrives before shutdown(SHUT_RD), as the note saw\n"
    )
    assert "echo-after-shut-rd" not in out  # the first run only
    [port] = {int(p) for p in PORT_IN_STORY.findall(out)}
    # The story, in the order the run fixes: what each program printed, between the tables.
    at = positions(
        out,
        "  client * reached step 'sent'",
        "  == Table 1: The client has sent Hello, world; the server has not read it yet ==",
        "  client | shut_wr",
        "  == Table 2: After the client's shutdown(SHUT_WR) ==",
        "  server | success recv\n  server | data: b'Hello, world'",
        "  == Table 3: The server has read the 12 bytes (and the FIN) ==",
        "  server | success send",
        "  == Table 4: The echo waits in the client's receive queue ==",
        "  client | shut_rd",
        "  == Table 5: After the client's shutdown(SHUT_RD) ==",
        "  client | Received b'Hello, world'",
        "  == Table 6: The client's recv() returned the echo ==",
        "  == Table 7: Both programs have finished ==",
        "Exit: server stopped by the lab (as you would with Ctrl-C), client exited with status 0.",
    )
    assert at == sorted(at)
    assert "  server | data: b''" in out
    assert re.search(r"  server \| Connected by \('127\.0\.0\.1', \d+\)", out)
    # Only the captioned tables (and the final one) are shown, each like netstat -tan.
    assert out.count("  Proto Recv-Q Send-Q Local Address           Foreign Address         State        Who") == 7
    after_shut_wr = out[at[3] : at[4]]
    assert re.search(rf"tcp +13 +0 127\.0\.0\.1:{port} +127\.0\.0\.1:\d+ +CLOSE_WAIT +server", after_shut_wr)
    assert re.search(rf"tcp +0 +0 127\.0\.0\.1:\d+ +127\.0\.0\.1:{port} +FIN_WAIT2 +client", after_shut_wr)
    echo_waits = out[at[7] : at[8]]
    assert re.search(rf"tcp +12 +0 127\.0\.0\.1:\d+ +127\.0\.0\.1:{port} +FIN_WAIT2 +client", echo_waits)
    assert re.search(r"Left in the kernel after the run: client 127\.0\.0\.1:\d+ TIME_WAIT", out)
    assert f"  server wrote on stderr:\n    listening on 127.0.0.1:{port}\n" in out


def test_all_runs_one_after_another(cli):
    done = cli("examples/client-shutdown.py", "--all")
    assert done.returncode == 0, done.stderr
    before, after = positions(done.stdout, "Run 'echo-before-shut-rd'", "Run 'echo-after-shut-rd'")
    assert before < after
    assert "  client | Received b'Hello, world'" in done.stdout[before:after]
    assert "  client | Received b''" in done.stdout[after:]


def test_json_writes_a_record(cli, tmp_path):
    path = tmp_path / "close.json"
    done = cli("examples/client-close.py", "--json", str(path), "--quiet")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    record = Record.from_json(path.read_text(encoding="utf-8"))
    assert (record.experiment, record.run) == ("close", "close")
    closed = record.snapshot("client:closed")
    assert [(r.role, r.state, r.recv_q) for r in closed.sockets] == [
        ("listener", "LISTEN", 0),
        ("server", "CLOSE_WAIT", 13),
        ("client", "FIN_WAIT2", 0),
    ]
    assert record.programs["client"].stdout == "closed\nrecv failed: [Errno 9] EBADF: Bad file descriptor (OSError)\n"
    assert record.programs["client"].command == [Path(sys.executable).name, "client-close.py", "--host", "127.0.0.1", "--port", str(record.ports["server"])]

    path = tmp_path / "after.json"
    done = cli("examples/client-shutdown.py", "--run", "echo-after-shut-rd", "--json", str(path))
    assert done.returncode == 0, done.stderr
    assert "Run 'echo-after-shut-rd'" in done.stdout
    record = Record.from_json(path.read_text(encoding="utf-8"))
    assert record.run == "echo-after-shut-rd"
    assert record.event("client:received").facts["data"] == {"bytes": "b''"}


def test_json_with_all_is_refused(cli, tmp_path):
    done = cli("examples/client-shutdown.py", "--all", "--json", str(tmp_path / "x.json"))
    assert done.returncode != 0
    assert done.stderr == "error: --json writes one run's record; give --run NAME instead of --all\n"
    assert not (tmp_path / "x.json").exists()


def test_help_explains_host_and_port(cli):
    done = cli("examples/client-close.py", "--help")
    assert (done.returncode, done.stderr) == (0, "")
    out = done.stdout
    assert out.startswith("usage: python client-close.py [-h] [--host HOST] [--port PORT]")
    assert "The client that calls ``close()``" in out  # the example's own docstring
    assert re.search(r"--host HOST +server address \(default: 127\.0\.0\.1\)", out)
    assert re.search(r"--port PORT +use a server you started yourself on this port", out)
    assert "Without --port, the example starts the server itself, in a network namespace of its own" in out
    assert re.search(r"--isolation \{auto,namespace,loopback\}", out)


def read_until(stream, pattern: re.Pattern[str], timeout: float, so_far: str = "") -> tuple[re.Match[str], str]:
    """Read a pipe until ``pattern`` matches what has arrived; bounded by ``timeout``, no sleeps."""
    os.set_blocking(stream.fileno(), False)
    end = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while not (match := pattern.search(so_far)):
            remaining = end - time.monotonic()
            assert remaining > 0, f"within {timeout} s nothing matched {pattern.pattern!r}; got:\n{so_far}"
            if selector.select(remaining):
                chunk = os.read(stream.fileno(), 65536)
                assert chunk, f"the stream ended before {pattern.pattern!r} matched; got:\n{so_far}"
                so_far += chunk.decode()
    return match, so_far


def test_port_talks_to_a_server_started_by_hand(cli, lab_leftovers):
    """The note's way: the server in one terminal, each client in another."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    server = subprocess.Popen(
        [sys.executable, "examples/multi-process-server.py", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its forked children too are stopped with it below
    )
    try:
        match, _ = read_until(server.stderr, re.compile(r"listening on 127\.0\.0\.1:(\d+)\n"), timeout=10)
        port = match[1]

        done = cli("examples/client-close.py", "--port", port)
        assert (done.returncode, done.stderr) == (0, "")
        # Just the client's own output: no lab, no tables.
        assert done.stdout == "closed\nrecv failed: [Errno 9] EBADF: Bad file descriptor (OSError)\n"

        done = cli("examples/client-shutdown.py", "--port", port)
        assert (done.returncode, done.stderr) == (0, "")
        # Without the lab the order is left to timing: the echo may come before SHUT_RD, after
        # recv(), or in between, or the server may have echoed and closed already: each is a
        # run of the shutdown experiment.
        assert done.stdout in (
            "shut_wr\nshut_rd\nReceived b'Hello, world'\n",
            "shut_wr\nshut_rd\nReceived b''\n",
            "shut_wr\nshut_rd failed: [Errno 107] ENOTCONN: Transport endpoint is not connected (OSError)\n"
            "Received b'Hello, world'\n",
            # The echo arrived between SHUT_RD and recv(): the client's kernel reset the connection.
            "shut_wr\nshut_rd\nrecv failed: [Errno 104] ECONNRESET: Connection reset by peer (ConnectionResetError)\n",
        )

        # The server's children print what they got, for both clients.
        pattern = re.compile(r"(?s)Connected by \('127\.0\.0\.1', \d+\)\nsuccess recv\ndata: b'Hello, world'\n.*"
                             r"Connected by \('127\.0\.0\.1', \d+\)\nsuccess recv\ndata: b'Hello, world'\n")
        read_until(server.stdout, pattern, timeout=10)
        assert server.poll() is None, "the server serves on after its clients"
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        server.stdout.close()
        server.stderr.close()
    assert lab_leftovers.sockets_left(int(port)) == []


@pytest.fixture
def fixture_examples(tmp_path) -> Path:
    """A folder laid out like examples/, with the lab, the real server and the cli fixture's clients."""
    shutil.copytree(EXAMPLES / "lab", tmp_path / "lab", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(EXAMPLES / "multi-process-server.py", tmp_path)
    for path in (FIXTURES / "cli").iterdir():
        shutil.copy(path, tmp_path)
    return tmp_path


def test_crashing_client_exits_2_with_the_reason(cli, fixture_examples):
    started = time.monotonic()
    done = cli("client-crash.py", cwd=fixture_examples)
    assert time.monotonic() - started < 5.0
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(
        "error: experiment 'broken', run 'crash': client (client-crash.py) exited with status 1 while the run was "
        "waiting for client:closed; its last step was 'sent'."
    )
    server_tail, client_tail = done.stderr.split("--- last output of server (multi-process-server.py) ---\n")[1].split(
        "--- last output of client (client-crash.py) ---\n"
    )
    assert re.search(r"^listening on 127\.0\.0\.1:\d+$", server_tail, re.MULTILINE)
    # The tail of the client's traceback (its last lines: the message is cut to the end of the output).
    assert 'in main\n    raise RuntimeError("fixture client gives up on purpose")\n' in client_tail
    assert client_tail.endswith("RuntimeError: fixture client gives up on purpose\n")
    assert "coordinator.py" not in done.stderr  # the lab's own traceback is not shown: only the reason


def test_stuck_client_exits_2_at_the_deadline_given(cli, fixture_examples):
    started = time.monotonic()
    done = cli("client-stuck.py", "--deadline", "0.5", cwd=fixture_examples)
    assert time.monotonic() - started < 4.0
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(
        "error: experiment 'stuck', run 'recv-forever': no progress within 0.5 s while waiting for client:answered to be reached.\n"
        "  server (multi-process-server.py): running, last step 'accepted'\n"
        "  client (client-stuck.py): running, last step 'connected'  <- stuck\n"
    )
    assert done.stderr.endswith("client-stuck: waiting for an answer that never comes\n")


def test_broken_experiments_file_is_reported(cli, fixture_examples):
    (fixture_examples / "experiments.toml").write_text("[broken\n")
    done = cli("client-crash.py", cwd=fixture_examples)
    assert done.returncode == 2  # like a failed run: the experiment cannot be run
    assert done.stdout == ""
    assert done.stderr.startswith(f"error: {fixture_examples / 'experiments.toml'}: ")
    assert "Traceback" not in done.stderr


def _clients() -> list[tuple[str, str]]:
    """Every experiment's client script, as a reader would run it, with the experiment it runs."""
    from lab.schedule import load_experiments

    found: dict[str, str] = {}
    for experiment in load_experiments().values():
        found.setdefault(experiment.programs["client"].name, experiment.name)
    return sorted(found.items())


@pytest.mark.parametrize("client, experiment", _clients(), ids=[client for client, _ in _clients()])
def test_every_example_runs_alone_from_the_terminal(cli, client, experiment):
    """``python examples/CLIENT --all``: every run of its experiment, told as on the page (an example no test runs goes bad)."""
    done = cli(f"examples/{client}", "--all")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    from lab.schedule import load_experiments

    for run in load_experiments()[experiment].runs:
        assert f"Run {run.name!r}: {run.title}" in done.stdout
    assert "== Table 1: " in done.stdout
    assert re.search(r"client → server +SYN ", done.stdout)  # the segments too
