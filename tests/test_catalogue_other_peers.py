"""Other peers: our programs against servers and clients we did not write.

The lab runs (socketserver and asyncio servers, an asyncio client) must give
the same capture every time, like every experiment.  The rest runs real
processes without the lab: our half-closing client against ``socat``, and the
note's server against ``nc -N`` (OpenBSD netcat), as a reader would in two
terminals.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lab.record import Record
from lab.schedule import load_experiment
from lab_helpers import (
    LISTENER,
    assert_repeats_the_same,
    fact,
    table,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HELLO = {"bytes": "b'Hello, world'"}


def check_socketserver(record: Record) -> None:
    assert table(record.snapshot("client:sent")) == [LISTENER, ("server", "ESTABLISHED", 0, 0), ("client", "ESTABLISHED", 0, 0)]
    assert table(record.snapshot("server:echoed")) == [LISTENER, ("server", "CLOSE_WAIT", 0, 0), ("client", "FIN_WAIT2", 0, 0)]
    # socketserver's shutdown_request(): shutdown(SHUT_WR), close(); the client, which sent the first FIN, waits.
    assert table(record.snapshot("client:received")) == [LISTENER, ("client", "TIME_WAIT", 0, 0)]
    assert fact(record, "server:echoed", "line") == HELLO
    assert fact(record, "client:received", "data") == HELLO
    assert record.programs["client"].stdout == "shut_wr\nReceived b'Hello, world'\n"
    assert record.programs["server"].stdout == "echoed b'Hello, world'\nend of file\n"


def check_asyncio_server(record: Record) -> None:
    assert table(record.snapshot("server:received")) == [LISTENER, ("server", "CLOSE_WAIT", 0, 0), ("client", "FIN_WAIT2", 0, 0)]
    assert table(record.snapshot("client:received")) == [LISTENER, ("client", "TIME_WAIT", 0, 0)]
    assert fact(record, "server:received", "data") == HELLO
    assert fact(record, "client:received", "data") == HELLO


def check_asyncio_client(record: Record) -> None:
    # write_eof() leaves exactly the states shutdown(SHUT_WR) leaves.
    assert table(record.snapshot("client:shut_wr")) == [LISTENER, ("server", "CLOSE_WAIT", 13, 0), ("client", "FIN_WAIT2", 0, 0)]
    assert table(record.snapshot("client:received")) == [LISTENER, ("client", "TIME_WAIT", 0, 0)]
    assert fact(record, "server:received#2", "data") == {"bytes": "b''"}
    assert fact(record, "client:received", "data") == HELLO
    assert record.programs["client"].stdout == "shut_wr\nReceived b'Hello, world'\n"


STORIES = {
    ("other-peers-socketserver", "line-ends-at-eof"): check_socketserver,
    ("other-peers-asyncio", "read-to-eof"): check_asyncio_server,
    ("other-peers-asyncio-client", "write-eof"): check_asyncio_client,
}


@pytest.mark.parametrize("experiment, run", list(STORIES), ids=[e for e, _ in STORIES])
def test_repeated_runs_capture_the_same(lab_run, experiment, run):
    assert_repeats_the_same(lab_run, load_experiment(experiment), run, STORIES[experiment, run])


@pytest.mark.parametrize("choice", [["--experiment", "other-peers-asyncio"], ["--run", "read-to-eof"]], ids=["experiment", "run"])
def test_a_shared_client_runs_the_experiment_it_is_given(tmp_path, choice):
    """The site's capture passes --run alone: that picks the experiment that has the run."""
    out = tmp_path / "record.json"
    command = [sys.executable, "half-close-client.py", *choice, "--json", str(out), "--quiet"]
    subprocess.run(command, cwd=EXAMPLES, check=True, timeout=30)
    record = Record.from_json(out.read_text())
    assert (record.experiment, record.run) == ("other-peers-asyncio", "read-to-eof")


# -- real processes, no lab -------------------------------------------------------


def _port_from(process: subprocess.Popen[str], pattern: str, timeout: float = 5.0) -> int:
    """Read the program's stderr until ``pattern`` (with a port group) appears; bounded."""
    assert process.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while (match := re.search(pattern, seen)) is None:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no port announced within {timeout} s; stderr so far: {seen!r}"
        ready, _, _ = select.select([process.stderr], [], [], remaining)
        if ready:
            line = process.stderr.readline()
            assert line, f"the program ended before announcing its port; stderr: {seen!r}"
            seen += line
    return int(match.group(1))


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed; install the Debian package: apt-get install {package}")
    return path


def test_half_close_client_against_socat():
    """socat echoes through cat; the client's FIN ends cat's input, cat's end ends socat's reply."""
    socat = _tool("socat", "socat")
    server = subprocess.Popen(
        [socat, "-d", "-d", "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr", "EXEC:cat"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = _port_from(server, r"listening on AF=2 127\.0\.0\.1:(\d+)")
        client = subprocess.run(
            [sys.executable, "half-close-client.py", "--port", str(port)],
            cwd=EXAMPLES, capture_output=True, text=True, timeout=10,
        )
        assert client.stdout == "shut_wr\nReceived b'Hello, world'\n", client.stderr
        assert client.returncode == 0
        assert server.wait(timeout=5) == 0  # without fork, socat serves one connection and exits
    finally:
        server.kill()
        server.wait()
        assert server.stderr is not None
        server.stderr.close()


def _start_note_server() -> tuple[subprocess.Popen[str], int]:
    server = subprocess.Popen(
        [sys.executable, "multi-process-server.py", "--port", "0"],
        cwd=EXAMPLES,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # its own process group: one kill ends it and its children
    )
    return server, _port_from(server, r"listening on 127\.0\.0\.1:(\d+)")


def _stop(server: subprocess.Popen[str]) -> str:
    os.killpg(server.pid, signal.SIGKILL)
    output, _ = server.communicate(timeout=5)
    return output


def test_note_server_against_nc_half_closing():
    """nc -N shuts down for writing at the end of its input, and still prints the echo."""
    nc = _tool("nc", "netcat-openbsd")
    server, port = _start_note_server()
    try:
        client = subprocess.run([nc, "-N", "127.0.0.1", str(port)], input="Hello, world", capture_output=True, text=True, timeout=10)
        assert (client.stdout, client.returncode) == ("Hello, world", 0), client.stderr
    finally:
        output = _stop(server)
    # The server's second recv() returned b'': nc's FIN.
    assert output.splitlines()[1:] == ["success recv", "data: b'Hello, world'", "success send", "success recv", "data: b''"]


def _read_until(stream, wanted: str, timeout: float = 5.0) -> str:
    """Read a pipe (text mode) until ``wanted`` has appeared in it; bounded."""
    seen = ""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{wanted!r} did not come within {timeout} s; so far: {seen!r}"
        ready, _, _ = select.select([stream], [], [], remaining)
        if ready:
            chunk = os.read(stream.fileno(), 4096).decode()
            assert chunk, f"the pipe closed before {wanted!r}; so far: {seen!r}"
            seen += chunk
    return seen


def test_note_server_against_nc_without_half_close():
    """Without -N, nc never sends its FIN: it prints the echo, then both wait, until nc is killed."""
    nc = _tool("nc", "netcat-openbsd")
    server, port = _start_note_server()
    client = subprocess.Popen([nc, "127.0.0.1", str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert client.stdin is not None and client.stdout is not None and server.stdout is not None
        client.stdin.write(b"Hello, world")
        client.stdin.close()  # the end of nc's input: without -N, nothing goes to the server
        assert _read_until(client.stdout, "Hello, world") == "Hello, world"  # the echo came
        before = _read_until(server.stdout, "success send\n")
        # Both now wait for the other; a short look is enough to see that nobody moves.
        with pytest.raises(subprocess.TimeoutExpired):
            client.wait(timeout=0.3)
        ready, _, _ = select.select([server.stdout], [], [], 0)
        assert not ready, "the server's second recv() returned although nc sent no FIN"
        assert before.splitlines()[1:] == ["success recv", "data: b'Hello, world'", "success send"]
        # When nc dies, its kernel closes the socket: the FIN the server was waiting for.
        client.kill()
        assert _read_until(server.stdout, "data: b''\n").splitlines() == ["success recv", "data: b''"]
    finally:
        client.kill()
        client.wait()
        assert client.stdout is not None
        client.stdout.close()
        _stop(server)
