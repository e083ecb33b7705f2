"""What every page showed, kept across pages for the Evidence and Findings pages and the build's summary.

A Sphinx domain holds it, as ``sphinx.ext.todo`` does: ``clear_doc`` forgets a
page that is read again and ``merge_domaindata`` brings in what the parallel
readers of ``sphinx-build -j`` collected, so ``parallel_read_safe`` is honest.
The entries are plain dataclasses (pickled with the environment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from docutils import nodes
from sphinx.domains import Domain

if TYPE_CHECKING:
    from collections.abc import Iterable, Set

    from sphinx.environment import BuildEnvironment


@dataclass(frozen=True)
class RunShown:
    """A run as one page showed it."""

    docname: str
    anchor: str  # the id of the experiment block on that page
    experiment: str
    run: str
    origin: str  # "live", "cache" or "recorded"
    seconds: float
    facts: dict[str, Any]  # provenance: kernel, python, date, isolation, sources...
    sentence: str  # what the page said about where it came from
    downloads: tuple[tuple[str, str], ...]  # (label, file relative to the source folder)

    @property
    def label(self) -> str:
        return f"{self.experiment}/{self.run}"


@dataclass(frozen=True)
class FindingShown:
    docname: str
    anchor: str  # the finding's own id
    claim: str
    status: str  # "holds", "fails" or "unchecked"
    verdict: str
    experiment: str | None
    run: str | None
    topic: str  # the :topic: option, or "Page title: section title"
    unchecked_checks: int = 0  # checks this host could not look at (a finding may hold on the others)
    unchecked_reason: str = ""


class LabDomain(Domain):
    """Not a domain of objects to cross-reference: a store of what the pages showed."""

    name = "lab"
    label = "Lab"
    data_version = 1
    initial_data: ClassVar[dict[str, Any]] = {"runs": {}, "findings": {}, "site_pages": {}}

    def clear_doc(self, docname: str) -> None:
        for table in self.data.values():
            if isinstance(table, dict):
                table.pop(docname, None)

    def merge_domaindata(self, docnames: Set[str], otherdata: dict[str, Any]) -> None:
        for key in ("runs", "findings", "site_pages"):
            for docname in docnames:
                if docname in otherdata.get(key, {}):
                    self.data[key][docname] = otherdata[key][docname]

    def resolve_any_xref(self, *args: object) -> list:  # noqa: D102 - nothing to resolve
        return []

    # -- what the handlers note, and what the site pages read ---------------------------

    def note_run(self, shown: RunShown) -> None:
        self.data["runs"].setdefault(shown.docname, []).append(shown)

    def note_finding(self, shown: FindingShown) -> None:
        self.data["findings"].setdefault(shown.docname, []).append(shown)

    def note_site_page(self, docname: str) -> None:
        self.data["site_pages"][docname] = True

    def runs(self) -> Iterable[RunShown]:
        for docname in sorted(self.data["runs"]):
            yield from self.data["runs"][docname]

    def findings(self) -> Iterable[FindingShown]:
        for docname in sorted(self.data["findings"]):
            yield from self.data["findings"][docname]

    def site_pages(self) -> list[str]:
        return sorted(self.data["site_pages"])


def domain(env: BuildEnvironment) -> LabDomain:
    return env.get_domain("lab")  # type: ignore[return-value]


def anchor(doctree: nodes.document, node: nodes.Element, wanted: str) -> str:
    """Give ``node`` an id made from ``wanted`` (unique on the page), or return the one it has."""
    if node["ids"]:
        return node["ids"][0]
    base = nodes.make_id(wanted) or "lab"
    made, number = base, 1
    while made in doctree.ids:
        number += 1
        made = f"{base}-{number}"
    node["ids"].append(made)
    doctree.ids[made] = node
    return made


def topic_of(doctree: nodes.document, node: nodes.Element) -> tuple[str, str]:
    """``("Page title: Section title", section id)``: where a node stands on its page."""
    section = node.parent
    while section is not None and not isinstance(section, nodes.section):
        section = section.parent
    page = next(iter(doctree.findall(nodes.section)), None)
    page_title = page[0].astext() if page is not None else ""
    if section is None or section is page:
        return page_title, (page["ids"][0] if page is not None and page["ids"] else "")
    return f"{page_title}: {section[0].astext()}", (section["ids"][0] if section["ids"] else "")
