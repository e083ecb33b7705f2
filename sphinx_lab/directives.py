"""The ``experiment`` and ``finding`` directives: parse, validate, leave placeholders.

Nothing here runs anything or reads the record: a directive runs while the
page is parsed, and the capture belongs to the ``doctree-read`` handler
(handlers.py), as in sphinxcontrib-programoutput.  The tabs are real
sphinx-tabs tabs: the directive writes a little reST with ``.. tabs::`` and
parses it, each tab holding a ``lab-placeholder`` the handler fills later.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from docutils import nodes
from docutils.parsers.rst import Parser, directives
from docutils.parsers.rst.states import RSTState
from docutils.statemachine import StringList
from docutils.utils import new_document
from sphinx.util.docutils import SphinxDirective

from .logs import LabWarning, warn
from .nodes import lab_finding, lab_placeholder

if TYPE_CHECKING:
    from collections.abc import Callable

SHOW_CHOICES = ("source", "outputs", "states", "sequence", "state-diagram")
PROGRAMS = ("client", "server")


class PlaceholderDirective(SphinxDirective):
    """``.. lab-placeholder:: KIND [PROGRAM]``: internal, written by ``experiment`` only."""

    required_arguments = 1
    optional_arguments = 1

    def run(self) -> list[nodes.Node]:
        node = lab_placeholder(kind=self.arguments[0], program=self.arguments[1] if len(self.arguments) > 1 else None)
        self.set_source_info(node)
        return [node]


class ExperimentDirective(SphinxDirective):
    """Show a run of an experiment: the programs, what they printed, the socket states.

    ``.. experiment:: NAME`` with ``:run:``, ``:show:``, ``:note-client:``,
    ``:note-server:``; see the package docstring.
    """

    required_arguments = 1
    has_content = False
    option_spec: ClassVar[dict[str, Callable[[str], object]]] = {
        "run": directives.unchanged_required,
        "show": directives.unchanged_required,
        "note-client": directives.path,
        "note-server": directives.path,
    }

    def run(self) -> list[nodes.Node]:
        show = self._show()
        notes = {program: self._note_file(program) for program in PROGRAMS}
        block = nodes.container(classes=["lab-experiment"])
        self.set_source_info(block)
        self._parse_rst(self._generated_rst(show, notes), block)
        source, line = self.get_source_info()
        for node in block.findall(lab_placeholder):
            # Located at the directive, not in the generated text: a failure
            # then names the line the author wrote.
            node.source, node.line = source, line
            node["experiment"] = self.arguments[0]
            node["run"] = self.options.get("run")
            if node["kind"] == "note":
                node["note_path"] = notes[node["program"]]
        return [block]

    def _show(self) -> list[str]:
        words = self.options.get("show", " ".join(SHOW_CHOICES)).split()
        unknown = [word for word in words if word not in SHOW_CHOICES]
        if unknown:
            warn(
                LabWarning.OPTION,
                f"experiment {self.arguments[0]!r}: unknown :show: value {' '.join(unknown)!r} "
                f"(choose among: {' '.join(SHOW_CHOICES)})",
                self.get_location(),
            )
        return [choice for choice in SHOW_CHOICES if choice in words]  # the page's order is fixed

    def _note_file(self, program: str) -> str | None:
        """The absolute path of a :note-PROGRAM: file, relative to the page like literalinclude."""
        given = self.options.get(f"note-{program}")
        if given is None:
            return None
        _, absolute = self.env.relfn2path(given)
        if not Path(absolute).is_file():
            message = f"experiment {self.arguments[0]!r}: :note-{program}: file not found: {given}"
            warn(LabWarning.OPTION, message, self.get_location())
            return None
        self.env.note_dependency(absolute)  # editing the note's text re-reads the page
        return str(absolute)

    def _generated_rst(self, show: list[str], notes: dict[str, str | None]) -> list[str]:
        lines: list[str] = []
        if "source" in show:
            lines += _tabs([(program.capitalize(), "source", program) for program in PROGRAMS])
        if "outputs" in show:
            tabs = [(f"{program.capitalize()} (this build)", "output", program) for program in PROGRAMS]
            tabs += [(f"{program.capitalize()} (the note)", "note", program) for program in PROGRAMS if notes[program]]
            lines += _tabs(tabs)
        if "states" in show:
            lines += [".. lab-placeholder:: states", ""]
        if "outputs" in show or "states" in show:
            lines += [".. lab-placeholder:: capture", ""]  # where the states came from, what was left
        for picture in ("sequence", "state-diagram"):
            if picture in show:
                lines += [f".. lab-placeholder:: {picture}", ""]
        if set(show) - {"source"}:  # what the reader is looking at, and its files
            lines += [".. lab-placeholder:: provenance", ""]
        return lines

    def _parse_rst(self, lines: list[str], parent: nodes.Element) -> None:
        """Parse generated reST into ``parent``, from a reST page or a MyST one."""
        source, _ = self.get_source_info()
        if isinstance(self.state, RSTState):
            self.state.nested_parse(StringList(lines, source=f"{source} (generated)"), 0, parent)
            return
        # MyST's nested_parse reads Markdown; parse the reST in a side document
        # sharing the settings (and so the Sphinx env), as MyST's eval-rst does.
        document = new_document(source, self.state.document.settings)
        document.reporter = self.state.document.reporter
        Parser().parse("\n".join(lines), document)
        parent.extend(document.children)


def _tabs(tabs: list[tuple[str, str, str]]) -> list[str]:
    lines = [".. tabs::", ""]
    for title, kind, program in tabs:
        lines += [f"   .. tab:: {title}", "", f"      .. lab-placeholder:: {kind} {program}", ""]
    return lines


class FindingDirective(SphinxDirective):
    """A claim about a run, backed by checks the build holds against the capture.

    ``.. finding:: CLAIM`` with ``:experiment:`` (required) and ``:run:``; the
    content is one check per line in the language of ``lab/findings.py``.
    """

    required_arguments = 1
    final_argument_whitespace = True
    has_content = True
    option_spec: ClassVar[dict[str, Callable[[str], object]]] = {
        "experiment": directives.unchanged_required,
        "run": directives.unchanged_required,
        "topic": directives.unchanged_required,  # its group on the Findings page (default: its page and section)
    }

    def run(self) -> list[nodes.Node]:
        claim_nodes, messages = self.parse_inline(self.arguments[0], lineno=self.lineno)
        claim = nodes.paragraph("", "", *claim_nodes, classes=["finding-claim"])
        admonition = nodes.admonition("", nodes.title("", "Finding"), claim, classes=["finding"])
        self.set_source_info(admonition)
        verdict = lab_finding(
            experiment=self.options.get("experiment"),
            run=self.options.get("run"),
            checks=self._checks(),
            claim=claim.astext(),
            topic=self.options.get("topic"),
        )
        self.set_source_info(verdict)
        if verdict["experiment"] is None:
            warn(LabWarning.OPTION, f"finding {claim.astext()!r} needs :experiment: NAME", self.get_location())
        elif not verdict["checks"]:
            warn(LabWarning.OPTION, f"finding {claim.astext()!r} has no check lines to hold it to", self.get_location())
        admonition += verdict
        return [admonition, *messages]

    def _checks(self) -> list[list[object]]:
        """Each check line with the line number it has in the page, for pointed messages."""
        checks: list[list[object]] = []
        for index, text in enumerate(self.content):
            if not text.strip() or text.lstrip().startswith("#"):
                continue  # blank lines and comments are for the author
            checks.append([text.strip(), self._content_line(index)])
        return checks

    def _content_line(self, index: int) -> int:
        if isinstance(self.state, RSTState):
            return self.content.info(index)[1] + 1  # docutils keeps absolute, 0-based offsets
        # MyST numbers the content from 0 and gives its offset from the directive's line.
        return self.lineno + self.content_offset + index + 1
