"""The terminal version of a run: what each program printed, step by step, with the tables."""

from __future__ import annotations

from .record import PACKET_COLUMNS, TABLE_COLUMNS, Packet, Record, Snapshot, SocketRow

# netstat -tan's widths and alignment, column by column; the last column runs free.
_LAYOUT = ((5, "<"), (6, ">"), (6, ">"), (23, "<"), (23, "<"), (12, "<"))


def _line(cells: tuple[str, ...]) -> str:
    fixed = " ".join(f"{cell:{align}{width}}" for cell, (width, align) in zip(cells, _LAYOUT))
    return f"{fixed} {cells[-1]}"


HEADER = _line(TABLE_COLUMNS)


def format_row(row: SocketRow) -> str:
    return _line(row.cells())


def format_table(rows: list[SocketRow]) -> str:
    """The rows laid out like ``netstat -tan``, with the part each socket plays."""
    lines = [HEADER, *(format_row(row) for row in rows)]
    if not rows:
        lines.append("(no socket of this experiment exists)")
    return "\n".join(lines)


def _snapshot_block(snapshot: Snapshot, number: int) -> list[str]:
    # Numbered per run, as on the pages, so the terminal and the page tell the same story.
    title = f"  == Table {number}: {snapshot.caption} =="
    return ["", title, *("  " + line for line in format_table(snapshot.sockets).splitlines()), ""]


# tcpdump-like: time, who to whom, then the flags and numbers.
_PACKET_LAYOUT = ((9, ">"), (20, "<"), (14, "<"), (6, ">"), (6, ">"), (6, ">"), (7, ">"))


def format_packet(packet: Packet, numbered: bool = False) -> str:
    cells = packet.cells(numbered)
    return " ".join(f"{cell:{align}{width}}" for cell, (width, align) in zip(cells, _PACKET_LAYOUT)).rstrip()


PACKET_HEADER = " ".join(f"{cell:{align}{width}}" for cell, (width, align) in zip(PACKET_COLUMNS, _PACKET_LAYOUT))


def _packet_lines(packets: list[Packet], numbered: bool) -> list[str]:
    return [f"  {'wire':<6} | {format_packet(packet, numbered)}" for packet in packets]


def _printed(program: str, text: str) -> list[str]:
    return [f"  {program:<6} | {line}" for line in text.splitlines()]


def format_story(record: Record) -> str:
    """The whole run in the order it happened, as a reader would follow it."""
    lines = [f"{record.title}", f"Run {record.run!r}: {record.run_title}"]
    if record.description:
        lines += [f"  {line}" for line in record.description.splitlines()]
    if record.packets:
        lines.append(f"  {'':<6}   {PACKET_HEADER}")
    else:
        lines.append(f"  (No segments shown: {record.packets_source.removeprefix('no packet capture: ')}.)")
    lines.append("")
    # Steps are shown in the order they were reached, between the snapshots that
    # came before and after them; that order is fixed by the run, not by timing.
    shown = 0
    for epoch, snapshot in enumerate(record.all_snapshots()):
        for event in (e for e in record.events if e.epoch == epoch):
            lines += _printed(event.program, event.output)
            lines.append(f"  {event.program:<6} * reached step {event.step!r}")
        lines += _packet_lines(record.packets_at(snapshot.at), numbered=len(record.connections()) > 1)
        if snapshot is record.final:
            for program in record.programs:
                lines += _printed(program, record.tail_output(program))
        if snapshot.shown:
            shown += 1
            lines += _snapshot_block(snapshot, shown)
    for name, result in record.programs.items():
        if result.stderr.strip():
            lines.append(f"  {name} wrote on stderr:")
            lines += [f"    {line}" for line in result.stderr.splitlines()]
    statuses = ", ".join(f"{name} {_status(result.exit_status, name)}" for name, result in record.programs.items())
    lines.append(f"Exit: {statuses}.")
    if record.leftover:
        left = "; ".join(f"{row.role} {row.local} {row.state}" for row in record.leftover)
        gone = "it went with the run's network namespace" if record.isolation.startswith("a network namespace") else (
            "the kernel drops it by itself"
        )
        lines.append(f"Left in the kernel after the run: {left} (no program holds it; {gone}).")
    lines.append(
        f"Captured on {record.metadata['system']} {record.metadata['kernel']}, Python {record.metadata['python']}, "
        f"in {record.isolation}; socket states from {record.states_source}; packets: {record.packets_source}."
    )
    return "\n".join(lines)


def _status(status: int | None, program: str) -> str:
    if status is None:
        return "still running"
    if status < 0 and program == "server":
        return "stopped by the lab (as you would with Ctrl-C)"
    return f"exited with status {status}"
