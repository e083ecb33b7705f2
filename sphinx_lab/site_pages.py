"""Pages made by the build from every other page: Evidence (every run) and Findings (every finding).

``lab-evidence`` and ``lab-findings`` leave a placeholder, filled at
``doctree-resolved``, after every page has been read, from what the handlers
noted (collect.py), as MyST-NB's ``nb-exec-table`` and ``sphinx.ext.todo``'s
``todolist`` are.  Whenever a page is read again, these pages are too
(``env-get-outdated``), so they never list a stale run.  At ``build-finished``
the build's last lines sum it all up.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from collections import Counter, defaultdict
from typing import TYPE_CHECKING

from docutils import nodes
from sphinx.util.docutils import SphinxDirective
from sphinx.util.osutil import relative_uri

from .collect import FindingShown, RunShown, domain
from .logs import logger
from .provenance import sysctls_text

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

ORIGIN_WORDS = {"live": "captured live", "cache": "from the cache", "recorded": "recorded"}
VERDICT_WORDS = {"holds": "holds", "fails": "fails", "unchecked": "not checked"}


class lab_site_page(nodes.General, nodes.Element):  # noqa: N801
    """Where the Evidence table or the Findings list goes; ``kind``: "evidence" or "findings"."""


class _SitePageDirective(SphinxDirective):
    kind = ""

    def run(self) -> list[nodes.Node]:
        domain(self.env).note_site_page(self.env.docname)
        node = lab_site_page(kind=self.kind)
        self.set_source_info(node)
        return [node]


class EvidenceDirective(_SitePageDirective):
    """``.. lab-evidence::``: every run on the site, its provenance, origin, time, findings and files."""

    kind = "evidence"


class FindingsDirective(_SitePageDirective):
    """``.. lab-findings::``: every finding on the site by topic, with its verdict and its run."""

    kind = "findings"


def outdated_site_pages(app: Sphinx, env: BuildEnvironment, added: set[str], changed: set[str], removed: set[str]) -> list[str]:
    return domain(env).site_pages() if (added or changed or removed) else []


def fill_site_pages(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    for node in list(doctree.findall(lab_site_page)):
        make = _evidence if node["kind"] == "evidence" else _findings
        node.replace_self(make(app, docname))


def _link(app: Sphinx, fromdoc: str, todoc: str, anchor: str, text: str) -> nodes.reference:
    uri = app.builder.get_relative_uri(fromdoc, todoc) + (f"#{anchor}" if anchor else "")
    return nodes.reference(text, text, internal=True, refuri=uri)


def _download(app: Sphinx, fromdoc: str, source: str, text: str) -> nodes.Node:
    """A link to a file another page's download reference put in _downloads."""
    entry = app.env.dlfiles.get(Path(source)) or app.env.dlfiles.get(source)  # type: ignore[call-overload]
    if entry is None or not hasattr(app.builder, "get_target_uri"):
        return nodes.Text(text)
    folder = relative_uri(app.builder.get_target_uri(fromdoc), "_downloads")
    uri = posixpath.join(folder, str(entry[1]))
    return nodes.reference(text, text, refuri=uri, classes=["download"])


def _runs(app: Sphinx) -> dict[str, list[RunShown]]:
    by_run: dict[str, list[RunShown]] = defaultdict(list)
    for shown in domain(app.env).runs():
        by_run[shown.label].append(shown)
    return dict(sorted(by_run.items()))


def _findings_of(app: Sphinx) -> dict[str, list[FindingShown]]:
    by_run: dict[str, list[FindingShown]] = defaultdict(list)
    for finding in domain(app.env).findings():
        if finding.experiment and finding.run:
            by_run[f"{finding.experiment}/{finding.run}"].append(finding)
    return by_run


def _cell(*content: nodes.Node | str) -> nodes.entry:
    paragraph = nodes.paragraph()
    for part in content:
        paragraph += nodes.Text(part) if isinstance(part, str) else part
    return nodes.entry("", paragraph)


def _table(columns: list[str], rows: list[list[nodes.entry]], classes: list[str]) -> nodes.table:
    table = nodes.table(classes=classes)
    group = nodes.tgroup(cols=len(columns))
    table += group
    group.extend(nodes.colspec(colwidth=1) for _ in columns)
    head = nodes.thead()
    head += nodes.row("", *[_cell(column) for column in columns])
    body = nodes.tbody()
    body.extend(nodes.row("", *row) for row in rows)
    group += head
    group += body
    return table


def _best(shown: list[RunShown]) -> RunShown:
    """The page that showed a run with the freshest evidence: live, then cache, then recorded."""
    order = ["live", "cache", "recorded"]
    return min(shown, key=lambda s: order.index(s.origin) if s.origin in order else len(order))


def _evidence(app: Sphinx, docname: str) -> nodes.Node:
    findings = _findings_of(app)
    rows = []
    for label, shown in _runs(app).items():
        best = _best(shown)
        pages: list[nodes.Node | str] = []
        for seen in {(s.docname, s.anchor): s for s in shown}.values():
            if pages:
                pages.append(", ")
            pages.append(_link(app, docname, seen.docname, seen.anchor, app.env.titles[seen.docname].astext()))
        facts = best.facts
        provenance = (
            f"{(str(facts.get('system', '')) + ' ' + str(facts.get('kernel', ''))).strip()}, "
            f"Python {facts.get('python', '')}, {facts.get('date', '')}; "
            f"{facts.get('isolation', '')}; states from {facts.get('states', '')}; packets: {facts.get('packets', '')}"
        )
        if facts.get("sysctls"):
            provenance += f"; sysctls: {sysctls_text(facts)}"
        verdicts = Counter(f.status for f in findings.get(label, []))
        counted = ", ".join(f"{verdicts[s]} {VERDICT_WORDS[s]}" for s in ("holds", "fails", "unchecked"))
        files: list[nodes.Node | str] = []
        for text, source in best.downloads:
            if files:
                files.append(", ")
            files.append(_download(app, docname, source, text))
        rows.append([
            _cell(nodes.literal(label, label)),
            _cell(*pages),
            _cell(ORIGIN_WORDS.get(best.origin, best.origin)),
            _cell(f"{best.seconds:.2f} s"),
            _cell(provenance),
            _cell(counted),
            _cell(*files) if files else _cell("none"),
        ])  # fmt: skip
    columns = ["Run", "Shown on", "Where from", "Capture took", "Provenance", "Findings", "Downloads"]
    return _table(columns, rows, ["lab-evidence"])


def _findings(app: Sphinx, docname: str) -> list[nodes.Node]:
    run_pages = {label: _best(shown) for label, shown in _runs(app).items()}
    by_topic: dict[str, list[FindingShown]] = defaultdict(list)
    for finding in domain(app.env).findings():
        by_topic[finding.topic].append(finding)
    made: list[nodes.Node] = []
    for topic, findings in sorted(by_topic.items()):
        made.append(nodes.rubric(topic, topic))
        items = nodes.bullet_list(classes=["lab-findings"])
        for finding in findings:
            paragraph = nodes.paragraph(classes=["finding-entry", finding.status])
            paragraph += nodes.strong(VERDICT_WORDS[finding.status], VERDICT_WORDS[finding.status].capitalize())
            paragraph += nodes.Text(": ")
            paragraph += _link(app, docname, finding.docname, finding.anchor, finding.claim)
            label = f"{finding.experiment}/{finding.run}" if finding.experiment and finding.run else None
            if label in run_pages:
                run = run_pages[label]
                paragraph += nodes.Text(" (run ")
                paragraph += _link(app, docname, run.docname, run.anchor, label)
                paragraph += nodes.Text(")")
            items += nodes.list_item("", paragraph)
        made.append(items)
    return made


# The pages this build reads (env-before-read-docs, in the main process): a run shown only on
# pages it did not read again was not had by this build at all.
_read_this_build: set[str] = set()


def note_pages_read(app: Sphinx, env: BuildEnvironment, docnames: list[str]) -> None:
    _read_this_build.clear()
    _read_this_build.update(docnames)


def summary(app: Sphinx) -> str:
    """``26 runs: 3 captured live, 23 from the cache, 0 recorded; 92 findings: 92 hold, 0 fail, 0 not checked``."""
    origins = Counter(
        _best(fresh).origin if (fresh := [s for s in shown if s.docname in _read_this_build]) else "unchanged"
        for shown in _runs(app).values()
    )
    findings = list(domain(app.env).findings())
    verdicts = Counter(f.status for f in findings)
    runs = sum(origins.values())
    text = (
        f"{runs} run{'s' if runs != 1 else ''}: {origins['live']} captured live, {origins['cache']} from the cache, "
        f"{origins['recorded']} recorded"
        + (f", {origins['unchanged']} on pages unchanged since the last build" if origins["unchanged"] else "")
        + f"; {len(findings)} findings: {verdicts['holds']} hold, {verdicts['fails']} fail, "
        f"{verdicts['unchecked']} not checked"
    )
    partly = [f for f in findings if f.unchecked_checks]
    if partly:
        checks = sum(f.unchecked_checks for f in partly)
        text += f"; {checks} check{'s' if checks != 1 else ''} not checked ({partly[0].unchecked_reason})"
    return text


def sum_up(app: Sphinx, exception: Exception | None) -> None:
    if exception is None and domain(app.env).data["runs"]:
        logger.info("lab: " + summary(app))
