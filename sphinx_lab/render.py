"""A run's record as standard docutils nodes.

Only docutils' own nodes (literal blocks, tables, paragraphs, admonitions)
come out of here, in the shapes Sphinx's own directives make, so that the
html, latex and text builders all render them with no visitor of ours.
These nodes are made after Sphinx's transforms have run, so each literal
block says its language itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from docutils import nodes
from lab.record import PACKET_COLUMNS, TABLE_COLUMNS, Packet, ProgramResult, Record

if TYPE_CHECKING:
    from pathlib import Path

COLUMNS = TABLE_COLUMNS
COLUMN_WIDTHS = (5, 6, 6, 21, 21, 12, 8)  # relative widths, for the latex builder
PACKET_WIDTHS = (9, 16, 12, 5, 5, 6, 7)


def literal(text: str, language: str = "text") -> nodes.literal_block:
    block = nodes.literal_block(text, text, language=language)
    block["highlight_args"] = {}
    return block


def with_caption(caption: str, block: nodes.literal_block) -> nodes.container:
    """A captioned literal block, shaped as Sphinx's ``code-block:: :caption:`` makes it."""
    wrapper = nodes.container("", literal_block=True, classes=["literal-block-wrapper"])
    wrapper += nodes.caption(caption, caption)
    wrapper += block
    return wrapper


def source(path: Path) -> nodes.container:
    """A program, whole, as the reader will run it."""
    return with_caption(path.name, literal(path.read_text(encoding="utf-8"), "python"))


def note_output(text: str) -> nodes.literal_block:
    return literal(text.rstrip("\n") or "(nothing)")


def output(program: str, result: ProgramResult) -> list[nodes.Node]:
    """What a program printed in this build's run, then its stderr and exceptions, if any."""
    printed: list[nodes.Node] = [literal(result.stdout.rstrip("\n") or "(printed nothing)")]
    if result.stderr.strip():
        printed.append(with_caption(f"{result.script} wrote on stderr", literal(result.stderr.rstrip("\n"))))
    for exception in result.exceptions:
        errno = f" [Errno {exception['errno']}] {exception.get('errno_name')}" if "errno" in exception else ""
        text = f"Uncaught exception: {exception.get('type')}{errno}: {exception.get('message')}"
        printed.append(nodes.paragraph("", text, classes=["lab-exception"]))
    printed.append(nodes.paragraph("", f"The {program} {_status(program, result.exit_status)}.", classes=["lab-exit"]))
    return printed


def _status(program: str, status: int | None) -> str:
    if status is None:
        return "was still running"
    if status < 0 and program == "server":
        return "was stopped by the lab, as you would stop it with Ctrl-C"
    return f"exited with status {status}"


def states(record: Record) -> list[nodes.Node]:
    """The run step by step: each shown table, with the segments that crossed the wire beside it.

    Tables are numbered per run ("Table 2: ..."), so a page's text can point
    at a table and the number stays right wherever the page sits in the site.
    A step with segments but no table of its own (the handshake, say) gets
    its segments alone.
    """
    made: list[nodes.Node] = []
    number = 0
    numbered = len(record.connections()) > 1  # then each segment says which connection it is on
    for snapshot in record.all_snapshots():
        packets = record.packets_at(snapshot.at)
        step = nodes.container(classes=["lab-step"])
        if snapshot.shown:
            number += 1
            step += _table(f"Table {number}: {snapshot.caption}", COLUMNS, COLUMN_WIDTHS,
                           [row.cells() for row in snapshot.sockets], "(no socket of this experiment exists)",
                           "lab-states")
            if packets:
                step += _packet_table(f"On the wire, up to Table {number}", packets, numbered)
        elif packets:
            step += _packet_table(f"On the wire, up to {_step_words(record, snapshot.at)}", packets, numbered)
        if len(step):
            made.append(step)
    return made


def _step_words(record: Record, label: str) -> str:
    """``the client's connect()``: the call (or step) a snapshot followed, in words; or the end of the run."""
    event = record.event(label)
    if event is None:
        return "the end of the run"
    return f"the {event.program}'s {event.call or event.step}"


def _packet_table(title: str, packets: list[Packet], numbered: bool) -> nodes.table:
    return _table(title, PACKET_COLUMNS, PACKET_WIDTHS, [p.cells(numbered) for p in packets], "", "lab-packets")


def _table(
    title: str, columns: Sequence[str], widths: Sequence[int], rows: list[tuple[str, ...]], empty: str, kind: str
) -> nodes.table:
    table = nodes.table(classes=[kind])
    table += nodes.title(title, title)
    group = nodes.tgroup(cols=len(columns))
    table += group
    group.extend(nodes.colspec(colwidth=width) for width in widths)
    head = nodes.thead()
    head += _row(columns)
    body = nodes.tbody()
    body.extend(_row(cells) for cells in rows)
    if not rows:
        placeholder = _row([empty])
        placeholder[0]["morecols"] = len(columns) - 1
        body += placeholder
    group += head
    group += body
    return table


def _row(cells: Sequence[str]) -> nodes.row:
    row = nodes.row()
    for text in cells:
        row += nodes.entry("", nodes.paragraph(text, text))
    return row


def capture_note(record: Record) -> nodes.paragraph:
    """Where the states came from and on what; what the run left in the kernel."""
    meta = record.metadata
    text = (
        f"Captured on {meta.get('system')} {meta.get('kernel')}, Python {meta.get('python')}, "
        f"at {meta.get('date')}, in {record.isolation}; socket states from {record.states_source}; "
        f"packets: {record.packets_source}. "
    )
    if record.leftover:
        left = "; ".join(f"the {row.role}'s {row.local} in {row.state}" for row in record.leftover)
        gone = "it went with the run's network namespace" if record.isolation.startswith("a network namespace") else (
            "the kernel drops it by itself"
        )
        text += f"Left in the kernel after the run: {left} (no program holds it; {gone})."
    else:
        text += "Nothing of the run was left in the kernel afterwards."
    return nodes.paragraph("", text, classes=["lab-capture-note"])


def not_captured(reason: str) -> nodes.paragraph:
    return nodes.paragraph("", f"Not captured: {reason}.", classes=["lab-not-captured"])


def failure(summary: str, detail: str | None = None) -> nodes.error:
    """Stands in for what could not be built; the build goes on (and ``-W`` makes it fail)."""
    box = nodes.error("", nodes.paragraph("", summary), classes=["lab-error"])
    if detail:
        box += literal(detail)
    return box


def verdict(text: str, status: str) -> nodes.paragraph:
    return nodes.paragraph("", text, classes=["finding-verdict", status])
