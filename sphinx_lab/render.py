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
from lab.record import TABLE_COLUMNS, ProgramResult, Record, Snapshot

if TYPE_CHECKING:
    from pathlib import Path

COLUMNS = TABLE_COLUMNS
COLUMN_WIDTHS = (5, 6, 6, 21, 21, 12, 8)  # relative widths, for the latex builder


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
    """One table per snapshot, in the order the run took them (the final one last).

    Numbered per run ("Table 2: ..."), so a page's text can point at a table
    and the number stays right wherever the page sits in the site.
    """
    return [_table(snapshot, number) for number, snapshot in enumerate(record.snapshots(), start=1)]


def _table(snapshot: Snapshot, number: int) -> nodes.table:
    table = nodes.table(classes=["lab-states"])
    title = f"Table {number}: {snapshot.caption}"
    table += nodes.title(title, title)
    group = nodes.tgroup(cols=len(COLUMNS))
    table += group
    group.extend(nodes.colspec(colwidth=width) for width in COLUMN_WIDTHS)
    head = nodes.thead()
    head += _row(COLUMNS)
    body = nodes.tbody()
    body.extend(_row(row.cells()) for row in snapshot.sockets)
    if not snapshot.sockets:
        empty = _row(["(no socket of this experiment exists)"])
        empty[0]["morecols"] = len(COLUMNS) - 1
        body += empty
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
        f"at {meta.get('date')}; socket states from {record.states_source}. "
    )
    if record.leftover:
        left = "; ".join(f"the {row.role}'s {row.local} in {row.state}" for row in record.leftover)
        text += f"Left in the kernel after the run: {left} (no program holds it; the kernel drops it by itself)."
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
