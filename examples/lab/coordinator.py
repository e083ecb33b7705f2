"""Run one experiment: start both programs, hold them to the run's order, record it all.

How a run goes:

0. ``run_experiment`` gives the run a network namespace of its own where
   the system allows it (isolation.py), and the coordinator opens a packet
   capture on its loopback (packets.py).
1. The coordinator opens a Unix socket and starts the server, on the note's
   port 50008 in a namespace of its own, else with ``--port 0``; the server's
   first step reports its port.  The client is started against it once the
   run's first step has had its snapshot.
2. Every ``step()`` call parks its process.  The coordinator walks the run's
   list of steps: it waits until the next listed step is reached, takes a
   snapshot of the experiment's sockets (shown if the step has a caption),
   and lets that one process go on.  A
   step reached early simply stays parked until its turn, so the order never
   depends on timing.
3. A snapshot waits until the network is quiet: no process of the experiment
   is running (each is parked, blocked in a call, or gone), no segment is
   waiting for an answer (no FIN_WAIT1, LAST_ACK, ...), no byte is
   unacknowledged, and two readings in a row agree.  Data (or a FIN) that
   waits behind the peer's zero window, with nothing in flight, counts as
   quiet: only the peer's program reading can move it.  This is waiting for a
   condition, polled, never a fixed sleep; the run's deadline bounds it.
   The segments captured since the previous snapshot are then the step's own:
   a segment passes the capture before TCP handles it, so once the network is
   quiet every segment that made it so has been seen.
4. At the end the client must have exited and the server's children too; the
   final snapshot is taken, then the server's whole process group is killed
   and the coordinator checks that nothing of the run is left but the
   kernel's own TIME_WAIT entries.

Everything that can go wrong raises ``ExperimentError``, whose message names
the experiment, the stuck program, its last step and the tail of its output.
"""

from __future__ import annotations

import json
import os
import platform
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import processes
from .isolation import Isolation, run_isolated
from .packets import CaptureUnavailable, LoopbackCapture, PacketLog
from .participant import CONTROL_ENV, PROGRAM_ENV
from .pcap import write_pcap
from .record import (
    ROLE_ORDER,
    Event,
    Packet,
    ProgramResult,
    Provenance,
    Record,
    Snapshot,
    SocketRow,
    TEARDOWN_SYSCTLS,
    client_port_name,
    step_label,
)
from .schedule import Experiment, Run, Step
from .sockets import AWAITING_PEER, TableReading, read_table, read_zero_window_sockets

LOOPBACK = "127.0.0.1"
NOTE_PORT = 50008  # the note's port: free in a namespace of our own
NOT_ISOLATED = Isolation("loopback", "not isolated by the caller")  # a Coordinator made directly
LAB_HOME = Path(__file__).resolve().parent.parent  # the folder that holds the lab package
TAIL_LINES = 8
QUIET_POLL_SECONDS = 0.0005  # how often the socket table is re-read while waiting for quiet


class ExperimentError(RuntimeError):
    """A run could not be completed; ``str()`` explains it for a human.

    ``pids`` lists every process the run started or heard from, so a caller
    (a test) can make sure none of them outlived it.
    """

    pids: list[int]
    server_port: int | None  # None: the server never reported its port


@dataclass
class Report:
    """A step a process has reached and is parked at."""

    program: str
    step: str
    occurrence: int
    pid: int
    facts: dict
    output: str
    connection: socket.socket
    epoch: int  # snapshots taken before this step was reached

    @property
    def label(self) -> str:
        return step_label(self.program, self.step, self.occurrence)


@dataclass
class Program:
    name: str
    script: Path
    command: list[str]
    process: subprocess.Popen[bytes]
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    stdout_at_last_step: int = 0
    last_step: str | None = None
    exceptions: list[dict] = field(default_factory=list)

    def tail(self) -> str:
        """The last lines of stdout and of stderr, each labelled: a traceback must not hide the last print."""
        parts = []
        for label, stream in (("stdout", self.stdout), ("stderr", self.stderr)):
            lines = stream.decode(errors="replace").splitlines()
            if lines:
                parts.append(f"[{label}]\n" + "\n".join(lines[-TAIL_LINES:]))
        return "\n".join(parts) or "(no output)"


class Coordinator:
    def __init__(
        self,
        experiment: Experiment,
        run: Run,
        deadline: float | None = None,
        python: str = sys.executable,
        where: Isolation = NOT_ISOLATED,
        pcap_file: Path | None = None,
    ):
        self.experiment = experiment
        self.pcap_file = pcap_file  # where to write the run's frames, if they can be captured
        self.where = where
        self.run = run
        self.deadline_seconds = deadline if deadline is not None else experiment.deadline
        self.python = python
        self.selector = selectors.DefaultSelector()
        self.programs: dict[str, Program] = {}
        self.parked: list[Report] = []
        self.connections: dict[socket.socket, bytearray] = {}  # control connection -> unread bytes
        self.occurrences: dict[tuple[str, str], int] = {}
        self.ports: dict[str, int] = {}
        self.reported_port: int | None = None  # what the server's first step said
        self.stale: set[tuple] = set()  # (local, remote) of sockets on the server port that predate the run
        self.events: list[Event] = []
        self.states_source = ""
        self.deadline = 0.0
        self.waiting_for = "the server to start"
        self.snapshots_taken = 0
        self.capture: LoopbackCapture | None = None
        self.packet_log: PacketLog | None = None
        self.packets_source = ""
        self.pids_seen: set[int] = set()  # started by us, or reported a step (forked children)

    # -- the run ---------------------------------------------------------------

    def execute(self) -> Record:
        processes.become_subreaper()
        with tempfile.TemporaryDirectory(prefix="lab-") as workdir:
            self.control_path = os.path.join(workdir, "control.sock")
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(self.control_path)
            self.listener.listen()
            self.listener.setblocking(False)
            self.selector.register(self.listener, selectors.EVENT_READ, "accept")
            self.deadline = time.monotonic() + self.deadline_seconds
            started = time.monotonic()
            try:
                self._open_capture()
                record = self._conduct()
            except ExperimentError as error:
                error.pids = sorted(self.pids_seen)
                error.server_port = self.ports.get("server")
                raise
            finally:
                leftover_pids = self._stop_everything()
                if self.capture is not None:
                    self.capture.close()
            for name, program in self.programs.items():
                record.programs[name].exit_status = program.process.returncode
            record.leftover = self._leftover_sockets()
            if leftover_pids:
                raise ExperimentError(self._where() + f"processes {leftover_pids} survived the cleanup")
            if self.pcap_file is not None and self.packet_log is not None:
                write_pcap(self.pcap_file, self.packet_log.segments())
            record.metadata["seconds"] = round(time.monotonic() - started, 4)
            record.metadata["pids"] = sorted(self.pids_seen)
            return record

    def _open_capture(self) -> None:
        """Capture the run's segments if this process may; say why not otherwise."""
        try:
            self.capture = LoopbackCapture()
        except CaptureUnavailable as why:
            self.packets_source = f"no packet capture: {why}"
            return
        if self.where.isolated:
            self.packets_source = "AF_PACKET capture on the run's own loopback"
        else:
            self.packets_source = "AF_PACKET capture on the machine's loopback, only the run's port kept"

    def _conduct(self) -> Record:
        self._start("server", port=NOTE_PORT if self.where.isolated else 0)
        server_port = self._wait_for_port()
        self.ports["server"] = server_port
        if self.capture is not None:
            self.packet_log = PacketLog(server_port)
            self.capture.drain()  # whatever crossed loopback before our server existed is not ours
        # Before our client exists, any connection on this port belongs to an earlier one that the
        # kernel still keeps in TIME_WAIT (the port was free to hand out again): not ours to show.
        self.stale = {
            (s.local, s.remote)
            for s in read_table().sockets
            if s.state != "LISTEN" and server_port in (s.local.port, s.remote.port)
        }
        for index, step in enumerate(self.run.steps):
            if "client" not in self.programs and (index > 0 or step.program == "client"):
                # Started once the run's first step (the server's "listening") has had its
                # snapshot: that step's packets are then surely none of the client's.
                self._start("client", port=server_port)
            self.waiting_for = step.label
            report = self._wait_until(lambda step=step: self._parked_at(step), f"{step.label} to be reached")
            # Every step gets a table in the record; the captioned ones are shown.
            snapshot = self._snapshot(step.label, step.caption or f"{step.program} reached step {step.name!r}")
            snapshot.shown = step.caption is not None
            self.events.append(
                Event(
                    report.program,
                    report.step,
                    report.occurrence,
                    report.facts,
                    report.output,
                    report.epoch,
                    snapshot,
                    call=self.experiment.calls.get(f"{step.program}:{step.name}", ""),
                )
            )
            self._release(report)
        if "client" not in self.programs:
            self._start("client", port=server_port)  # a run of server steps only: the client still runs
        self.waiting_for = "both programs to finish"
        self._wait_until(self._only_server_left, "the client and the server's children to finish")
        final = self._snapshot("end", self.run.final_caption or "The programs have finished")
        final.shown = self.run.final_caption is not None
        return self._record(final)

    # -- starting programs and talking to them ---------------------------------

    def _start(self, name: str, port: int) -> None:
        # Absolute: the program runs in its own folder, so a relative path would not be found there.
        script = self.experiment.programs[name].absolute()
        command = [self.python, str(script), "--host", LOOPBACK, "--port", str(port)]
        env = os.environ | {
            CONTROL_ENV: self.control_path,
            PROGRAM_ENV: name,
            "PYTHONUNBUFFERED": "1",  # output reaches us in the order it was printed
            "PYTHONDONTWRITEBYTECODE": "1",  # leave the examples folder untouched (livehtml watches it)
            # `from lab import step` works for a script in any folder (tests keep broken ones apart).
            "PYTHONPATH": os.pathsep.join(filter(None, [str(LAB_HOME), os.environ.get("PYTHONPATH")])),
        }
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=script.parent,
            start_new_session=True,  # its own process group: one kill stops it and its children
        )
        program = Program(name, script, command, process)
        self.pids_seen.add(process.pid)
        self.programs[name] = program
        for stream, key in ((process.stdout, "stdout"), (process.stderr, "stderr")):
            assert stream is not None
            os.set_blocking(stream.fileno(), False)
            self.selector.register(stream, selectors.EVENT_READ, (name, key))

    def _pump(self, timeout: float) -> None:
        """Handle whatever arrives within ``timeout``: connections, messages, output."""
        for key, _ in self.selector.select(timeout):
            if key.data == "accept":
                connection, _ = self.listener.accept()
                connection.setblocking(False)
                self.connections[connection] = bytearray()
                self.selector.register(connection, selectors.EVENT_READ, "control")
            elif key.data == "control":
                self._read_control(key.fileobj)  # type: ignore[arg-type]
            else:
                name, which = key.data
                if self._drain(self.programs[name], which):
                    self.selector.unregister(key.fileobj)

    def _drain(self, program: Program, which: str) -> bool:
        """Read all that is in one of a program's pipes now; True once the pipe is closed."""
        stream = getattr(program.process, which)
        try:
            while chunk := os.read(stream.fileno(), 65536):
                getattr(program, which).extend(chunk)
        except BlockingIOError:
            return False  # nothing more for now
        except (ValueError, OSError):
            pass  # closed by us already
        return True

    def _drain_output(self) -> None:
        """Read every byte already written to the programs' pipes."""
        for program in self.programs.values():
            for which in ("stdout", "stderr"):
                self._drain(program, which)

    def _read_control(self, connection: socket.socket) -> None:
        try:
            chunk = connection.recv(65536)
        except ConnectionError:
            chunk = b""
        if not chunk:  # that process has exited
            self.selector.unregister(connection)
            self.connections.pop(connection)
            connection.close()
            return
        buffer = self.connections[connection]
        buffer.extend(chunk)
        while b"\n" in buffer:
            line, _, rest = bytes(buffer).partition(b"\n")
            buffer[:] = rest
            self._handle_message(connection, json.loads(line))

    def _handle_message(self, connection: socket.socket, message: dict) -> None:
        program = self.programs[message["program"]]
        if message["kind"] == "exception":
            program.exceptions.append(message["exception"])
            return
        # The program flushed its output before reporting, so it is all in the pipe now.
        self._drain_output()
        key = (program.name, message["step"])
        self.occurrences[key] = self.occurrences.get(key, 0) + 1
        output = program.stdout[program.stdout_at_last_step :].decode(errors="replace")
        program.stdout_at_last_step = len(program.stdout)
        program.last_step = message["step"]
        self.pids_seen.add(message["pid"])
        self.parked.append(
            Report(
                program.name,
                message["step"],
                self.occurrences[key],
                message["pid"],
                message["facts"],
                output,
                connection,
                epoch=self.snapshots_taken,
            )
        )
        if program.name == "server" and "port" in message["facts"] and self.reported_port is None:
            self.reported_port = int(message["facts"]["port"])

    def _release(self, report: Report) -> None:
        self.parked.remove(report)
        report.connection.sendall(b"go\n")

    # -- waiting for conditions ------------------------------------------------

    def _wait_until(self, condition: Callable[[], object], what: str, poll: float | None = None) -> object:
        """Serve the programs until ``condition()`` gives something truthy; return it."""
        while True:
            self._check_parked_steps()
            result = condition()
            if result:
                return result
            self._check_programs_alive()
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise ExperimentError(self._timeout_message(what))
            self._pump(min(remaining, poll) if poll is not None else min(remaining, 0.05))

    def _wait_for_port(self) -> int:
        self._wait_until(lambda: self.reported_port is not None, "the server to report its port")
        assert self.reported_port is not None
        return self.reported_port

    def _parked_at(self, step: Step) -> Report | None:
        return next(
            (r for r in self.parked if (r.program, r.step, r.occurrence) == (step.program, step.name, step.occurrence)),
            None,
        )

    def _check_parked_steps(self) -> None:
        """A process parked at a step the run never lets pass would wait forever: say so now."""
        remaining = {s.label for s in self.run.steps[len(self.events) :]}
        for report in self.parked:
            if report.label not in remaining:
                raise ExperimentError(
                    self._where()
                    + f"{report.program} reached step {report.step!r}"
                    + (f" (for the {_ordinal(report.occurrence)} time)" if report.occurrence > 1 else "")
                    + f", which run {self.run.name!r} does not list next; it was waiting for {self.waiting_for}."
                    + self._tails()
                )

    def _check_programs_alive(self) -> None:
        """A program that exits while the run still needs it is an error now, not at the deadline."""
        still_needed = {s.program for s in self.run.steps[len(self.events) :]} | {"server"}
        for program in self.programs.values():
            status = program.process.poll()
            if status is not None and program.name in still_needed:
                self._drain_output()
                raise ExperimentError(
                    self._where()
                    + f"{program.name} ({program.script.name}) exited with status {status} while the run was "
                    + f"waiting for {self.waiting_for}; its last step was {program.last_step!r}."
                    + self._tails()
                )

    def _only_server_left(self) -> bool:
        client_done = self.programs["client"].process.poll() is not None
        server = self.programs["server"].process
        children = [pid for pid in processes.descendants([server.pid]) if pid != server.pid]
        return client_done and not children and not self.parked

    # -- snapshots -------------------------------------------------------------

    def _experiment_rows(self, reading: TableReading) -> list[SocketRow]:
        port = self.ports["server"]
        rows = []
        for sock in reading.sockets:
            if (sock.local, sock.remote) in self.stale:
                if sock.state == "TIME_WAIT":
                    continue
                self.stale.discard((sock.local, sock.remote))  # our client was given that very pair again
            if sock.state == "LISTEN" and sock.local.port == port:
                role, connection = "listener", 0
            elif sock.remote.port == 0:
                # Bound but connected to nothing: the listener itself, caught by the dump in
                # the moment its close() has set it to CLOSE.  Not a connection, and port 0
                # must not be named as a client's (normalising would replace every 0).
                continue
            elif sock.local.port == port:
                role, connection = "server", self._connection_number(sock.remote.port)
            elif sock.remote.port == port:
                role, connection = "client", self._connection_number(sock.local.port)
            else:
                continue
            rows.append((connection, SocketRow(role, str(sock.local), str(sock.remote), sock.state, sock.recv_q, sock.send_q, sock.expires)))
        # Connections in the order the client opened them, not by their (random) port numbers, so that
        # a client with several connections gives the same tables on every run.
        rows.sort(key=lambda pair: (ROLE_ORDER.index(pair[1].role), pair[0], pair[1].local, pair[1].remote))
        return [row for _, row in rows]

    def _connection_number(self, client_port: int) -> int:
        """1 for the client's first connection, 2 for its second...; its port is named in ``self.ports``.

        The first is "client", the next "client-2" and so on: the record normalises every port it names.
        """
        numbered = [role for role in self.ports if role == "client" or role.startswith("client-")]
        for number, role in enumerate(numbered, start=1):
            if self.ports[role] == client_port:
                return number
        self.ports["client" if not numbered else f"client-{len(numbered) + 1}"] = client_port
        return len(numbered) + 1


    def _quiet_rows(self) -> list[SocketRow] | None:
        """The experiment's sockets if the network is quiet right now, else None."""
        pids = processes.descendants([p.process.pid for p in self.programs.values()])
        if processes.busy(pids):
            return None
        reading = read_table()
        self.states_source = reading.source
        rows = self._experiment_rows(reading)
        pending = [r for r in rows if r.state in AWAITING_PEER or (r.send_q and r.role != "listener")]
        if pending:
            # Data (or a FIN) held back by the peer's zero window is not in flight: it stays
            # until the peer's program reads, which only a later step can make it do.
            stalled = {(str(local), str(remote)) for local, remote in read_zero_window_sockets()}
            pending = [r for r in pending if (r.local, r.remote) not in stalled]
        return None if pending else rows

    def _snapshot(self, at: str, caption: str) -> Snapshot:
        previous: list[list[SocketRow] | None] = [None]

        def stable() -> list[SocketRow] | None:
            if self.selector.select(0):
                return None  # a message or output not read yet: handle it first
            rows = self._quiet_rows()
            if self.selector.select(0):
                # Asked again after the processes were seen at rest: one may have been
                # forked after _quiet_rows() listed the processes, then reported its step
                # and gone to rest, all while we looked.  Its report must count before
                # this snapshot, not after it.  (A slow table read used to hide this.)
                return None
            agreed = rows if rows is not None and rows == previous[0] else None
            previous[0] = rows
            return agreed

        self.waiting_for = f"the network to be quiet for the snapshot at {at}"
        rows = self._wait_until(stable, "a quiet network", poll=QUIET_POLL_SECONDS)
        self.snapshots_taken += 1
        self._collect_packets(at)
        return Snapshot(at, caption, rows)  # type: ignore[arg-type]

    def _collect_packets(self, step: str) -> None:
        """The segments seen since the last snapshot belong to the step just reached."""
        if self.capture is None or self.packet_log is None:
            return
        self.packet_log.add(self.capture.drain(), step)
        if self.capture.drops:
            raise ExperimentError(
                self._where() + f"the packet capture lost {self.capture.drops} segments; it would be incomplete"
            )

    # -- the end ---------------------------------------------------------------

    def _stop_everything(self) -> list[int]:
        """Kill every process of the run and wait for each to end; return any that did not."""
        everyone = processes.descendants([p.process.pid for p in self.programs.values()])
        for program in self.programs.values():
            processes.kill_group(program.process)
        for program in self.programs.values():
            program.process.wait()
            self._drain_output()
            for stream in (program.process.stdout, program.process.stderr):
                assert stream is not None
                stream.close()
        for connection in list(self.connections):
            connection.close()
        self.listener.close()
        self.selector.close()
        # The server's children died with its process group; wait for their exits too.
        survivors = processes.wait_for_exit(everyone, timeout=2.0)
        processes.reap_orphans()
        return survivors

    def _leftover_sockets(self) -> list[SocketRow]:
        if "server" not in self.ports:
            return []
        reading = read_table()
        return self._experiment_rows(reading) if reading.available else []

    def _packets(self) -> list[Packet]:
        """The captured segments, each with the number of its connection as the tables named it."""
        if self.packet_log is None:
            return []
        named = {port: int(name.partition("-")[2] or 1) for name, port in self.ports.items() if name.startswith("client")}
        packets = self.packet_log.packets(named)
        for number, port in self.packet_log.connection_ports.items():
            # A connection no table showed is named too, so that normalising replaces its port.
            self.ports.setdefault(client_port_name(number), port)
        return packets

    def _record(self, final: Snapshot | None) -> Record:
        self._drain_output()
        packets = self._packets()  # before the ports are written down: it may name more of them
        results = {
            name: ProgramResult(
                script=program.script.name,
                command=[Path(program.command[0]).name, program.script.name, *program.command[2:]],
                exit_status=program.process.poll(),
                stdout=program.stdout.decode(errors="replace"),
                stderr=program.stderr.decode(errors="replace"),
                exceptions=program.exceptions,
            )
            for name, program in self.programs.items()
        }
        now = datetime.now(UTC).isoformat(timespec="seconds")
        states_source = self.states_source or read_table().source
        provenance = Provenance(
            kernel=f"{platform.system()} {platform.release()}",
            python=platform.python_version(),
            date=now,
            isolation=self.where.describe(),
            states_source=states_source,
            packets_source=self.packets_source,
            sysctls=read_sysctls(),  # here: in the run's namespace, whose values are its own
        )
        return Record(
            experiment=self.experiment.name,
            run=self.run.name,
            title=self.experiment.title,
            run_title=self.run.title,
            description=self.run.description,
            programs=results,
            events=self.events,
            final=final,
            leftover=[],
            ports=dict(self.ports),
            states_source=states_source,
            packets=packets,
            packets_source=self.packets_source,
            isolation=self.where.describe(),
            provenance=provenance,
            metadata={
                "system": platform.system(),
                "kernel": platform.release(),
                "python": platform.python_version(),
                "date": now,
                "processes_checked": processes.CAN_SEE_PROCESSES,
            },
        )

    # -- messages --------------------------------------------------------------

    def _where(self) -> str:
        return f"experiment {self.experiment.name!r}, run {self.run.name!r}: "

    def _tails(self) -> str:
        parts = []
        for program in self.programs.values():
            parts.append(f"\n--- last output of {program.name} ({program.script.name}) ---\n{program.tail()}")
        return "".join(parts)

    def _timeout_message(self, what: str) -> str:
        self._drain_output()
        stuck = self._stuck_programs()
        lines = [self._where() + f"no progress within {self.deadline_seconds:g} s while waiting for {what}."]
        for program in self.programs.values():
            status = program.process.poll()
            state = "running" if status is None else f"exited with status {status}"
            marker = "  <- stuck" if program.name in stuck else ""
            lines.append(f"  {program.name} ({program.script.name}): {state}, last step {program.last_step!r}{marker}")
        return "\n".join(lines) + self._tails()


    def _stuck_programs(self) -> set[str]:
        """Which programs the run was waiting on when time ran out."""
        program, colon, _ = self.waiting_for.partition(":")
        if colon and program in self.programs:
            return {program}  # waiting for one of its steps
        stuck = set()
        for program_ in self.programs.values():
            pids = processes.descendants([program_.process.pid])
            if program_.name == "client" and program_.process.poll() is None:
                stuck.add("client")  # it should have finished, or parked
            elif program_.name == "server" and (processes.busy(pids) or len(pids) > 1 and not self.parked):
                stuck.add("server")  # its child is still running
        return stuck


def read_sysctls(names: tuple[str, ...] = TEARDOWN_SYSCTLS) -> dict[str, str]:
    """The values of ``names`` as this process sees them (a network namespace has its own).

    Read from /proc/sys, as ``sysctl -n`` does; whitespace inside a value (tcp_rmem's three
    numbers) is one space.  One that cannot be read says why rather than going missing.
    """
    values = {}
    for name in names:
        path = Path("/proc/sys", *name.split("."))
        try:
            values[name] = " ".join(path.read_text(encoding="ascii").split())
        except FileNotFoundError:
            # tcp_max_orphans, say: host-wide, so a network namespace has no copy of its own.
            values[name] = "not in this network namespace (a host-wide setting)"
        except OSError as error:
            values[name] = f"unreadable: {error.strerror or error}"
    return values


def _ordinal(n: int) -> str:
    return {1: "first", 2: "second", 3: "third"}.get(n, f"{n}th")


def run_experiment(
    experiment: Experiment,
    run_name: str | None = None,
    deadline: float | None = None,
    isolation: str | None = None,
    pcap_file: Path | None = None,
) -> Record:
    """Run one run of ``experiment`` (its first run by default) and return the record.

    ``pcap_file``: also write the run's frames there (lab/pcap.py), if packets can be
    captured here; if not, no file is written and ``record.packets_source`` says why.

    ``isolation``: "auto" (default; also $LAB_ISOLATION) runs it in a network
    namespace of its own where the system allows, else on the loopback;
    "namespace" insists on one; "loopback" never makes one.
    """
    run = experiment.run(run_name)
    return run_isolated(lambda where: Coordinator(experiment, run, deadline, where=where, pcap_file=pcap_file).execute(), isolation)
