"""The ``doctree-read`` handler: load the experiment, get the record, fill the placeholders.

This runs once per page read, after the page is parsed and before its
doctree is pickled, so the pickled doctree (and every builder) sees only
standard nodes.  A page that Sphinx does not re-read runs nothing.  Each
page notes every file its experiments depend on, so editing an example
re-reads exactly the pages that use it.

Per page, each experiment is loaded and each run captured at most once, and
a failure is reported once, at the first place that needs it; across pages
the disk cache does the sharing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from docutils import nodes
from lab.findings import Check, CheckSyntaxError, evaluate, parse_check
from lab.record import Record
from lab.schedule import Experiment, Run, ScheduleError, load_experiment
from lab.tcp_states import disagreements

from . import collect, pictures, provenance, render
from .capture import CaptureJob
from .config import LabSettings
from .logs import LabWarning, logger, warn
from .modes import Evidence, ExecutionMode, ModeSettings, Unavailable, make_mode
from .nodes import PLACEHOLDERS, lab_finding

if TYPE_CHECKING:
    from sphinx.application import Sphinx

EXECUTE_OFF = "lab_execution_mode is off"


@dataclass
class Failure:
    """Something a placeholder needed could not be had; warned about once per page."""

    summary: str
    detail: str
    warned: bool = False
    subtype: LabWarning = LabWarning.CAPTURE


def page_mode(settings: LabSettings) -> ExecutionMode:
    return make_mode(settings.mode, ModeSettings(settings.cache_dir, settings.evidence_dir))


def prepare_mode(app: Sphinx) -> None:
    """Let the mode learn what it must once (the host probe), before readers are forked."""
    page_mode(LabSettings.from_app(app)).prepare()


def fill_placeholders(app: Sphinx, doctree: nodes.document) -> None:
    _warn_unread_fences(doctree)
    found = list(doctree.findall(lambda n: isinstance(n, PLACEHOLDERS)))
    if found:
        settings = LabSettings.from_app(app)
        page = Page(app, settings, page_mode(settings), doctree)
        for node in found:
            page.fill(node)
        _number(app, doctree)


def _warn_unread_fences(doctree: nodes.document) -> None:
    """Catch a MyST directive that silently became a paragraph.

    CommonMark forbids backticks on the opening line of a backtick fence, so
    ```` ```{finding} After ``close()`` ... ```` is not a directive at all: its
    checks would never run and nothing would say so.
    """
    for paragraph in doctree.findall(nodes.paragraph):
        text = paragraph.astext()
        for name in ("experiment", "finding"):
            if text.startswith(f"```{{{name}}}"):
                message = (
                    f"this ```{{{name}}} fence was read as plain text, not as a directive: the first line of a "
                    f"backtick fence cannot hold backticks; write it as :::{{{name}}} ... ::: "
                    f"(myst_enable_extensions = ['colon_fence'])"
                )
                warn(LabWarning.MARKUP, message, paragraph)


def _number(app: Sphinx, doctree: nodes.document) -> None:
    """Give the new captioned blocks and titled tables ids, as Sphinx's AutoNumbering would have.

    That transform ran before doctree-read; without ids the html writer
    cannot link to a table or code caption (and says so).
    """
    domain = app.env.domains.standard_domain
    for node in doctree.findall(nodes.Element):
        if domain.is_enumerable_node(node) and domain.get_numfig_title(node) is not None and not node["ids"]:
            doctree.note_implicit_target(node)


@dataclass
class Page:
    app: Sphinx
    settings: LabSettings
    mode: ExecutionMode
    doctree: nodes.document
    experiments: dict[str, Experiment | Failure] = field(default_factory=dict)
    unknown_runs: dict[tuple[str, str], Failure] = field(default_factory=dict)
    records: dict[tuple[str, str], Evidence | Failure] = field(default_factory=dict)
    checked_pictures: set[tuple[str, str]] = field(default_factory=set)  # runs whose wire and tables were compared

    def fill(self, node: nodes.Element) -> None:
        loaded = self._load(node)
        if isinstance(node, lab_finding):
            self._fill_finding(node, loaded)
        elif isinstance(loaded, Failure):
            node.replace_self(self._failed_part(node, loaded))
        else:
            node.replace_self(self._part(node, *loaded))

    # -- the experiment and its record ------------------------------------------

    def _load(self, node: nodes.Element) -> tuple[Experiment, Run] | Failure:
        name = node["experiment"]
        if name is None:  # a finding without :experiment:, already warned about
            return Failure("no experiment given", "", warned=True)
        if name not in self.experiments:
            self.experiments[name] = self._read_experiment(name)
        experiment = self.experiments[name]
        if isinstance(experiment, Failure):
            return experiment
        try:
            return experiment, experiment.run(node["run"])
        except ScheduleError as error:
            return self.unknown_runs.setdefault((name, node["run"]), Failure(f"no such run: {error}", ""))

    def _read_experiment(self, name: str) -> Experiment | Failure:
        # Noted before reading, so fixing a broken experiments.toml re-reads the page.
        for path in (self.settings.experiments_file, *self.settings.lab_files()):
            self._depend_on(path)
        try:
            experiment = load_experiment(name, self.settings.experiments_file)
        except (ScheduleError, OSError) as error:
            return Failure(f"cannot load experiment {name!r}: {error}", "")
        for path in experiment.files():
            self._depend_on(path)
        return experiment

    def _depend_on(self, path: Path) -> None:
        if path.exists():
            self.app.env.note_dependency(os.fspath(path))

    def _record(self, experiment: Experiment, run: Run, node: nodes.Element) -> Evidence | Failure:
        key = (experiment.name, run.name)
        if key not in self.records:
            self.records[key] = self._capture(experiment, run)
            shortfall = self.mode.shortfall()
            if shortfall is not None:  # force mode on a host that cannot capture it all
                warn(LabWarning.CAPTURE, f"{experiment.name}/{run.name}: {shortfall}", node)
        return self.records[key]

    def _capture(self, experiment: Experiment, run: Run) -> Evidence | Failure:
        lab_dir = self.settings.lab_dir
        job = CaptureJob(
            experiment=experiment.name,
            run=run.name,
            client=experiment.programs["client"],
            experiment_files=tuple(experiment.files()),
            lab_files=self.settings.lab_files(),
            deadline=experiment.deadline,
            deadline_override=self.settings.deadline,
            lab_home=lab_dir.parent,
        )

        def announce() -> None:
            logger.info("lab: capturing %s ... ", job.label, nonl=True)

        try:
            evidence = self.mode.evidence(job, starting=announce)
        except Unavailable as error:
            if error.subtype is LabWarning.CAPTURE:
                logger.info("failed")
            return Failure(error.summary, error.detail, subtype=error.subtype)
        if evidence.origin == "cache":
            logger.info("lab: %s from cache", job.label)
        elif evidence.origin == "recorded":
            logger.info("lab: %s recorded (%s)", job.label, evidence.why_recorded)
        else:
            logger.info("done in %.2f s", evidence.seconds)
        return evidence

    def _warn_once(self, node: nodes.Element, failure: Failure) -> None:
        if not failure.warned:
            failure.warned = True
            message = failure.detail if failure.detail else failure.summary
            warn(failure.subtype, message, node)

    def _failed_part(self, node: nodes.Element, failure: Failure) -> nodes.Node | list[nodes.Node]:
        # The block's other parts already say it failed; its provenance line has nothing to add.
        return [] if node["kind"] == "provenance" and failure.warned else self._failed(node, failure)

    def _failed(self, node: nodes.Element, failure: Failure) -> nodes.Node:
        first = not failure.warned
        self._warn_once(node, failure)
        # The first place shows the details; later ones on the page point to it.
        return _located(render.failure(failure.summary, failure.detail if first else None), node)

    # -- the parts of an experiment block ----------------------------------------

    def _part(self, node: nodes.Element, experiment: Experiment, run: Run) -> nodes.Node | list[nodes.Node]:
        kind, program = node["kind"], node["program"]
        if kind == "source":
            return _located(render.source(experiment.programs[program]), node)
        if kind == "note":
            return _located(render.note_output(Path(node["note_path"]).read_text(encoding="utf-8")), node)
        if not self.mode.runs:
            # Said once, where the outputs would be, and not again under the tables.
            return [] if kind in ("capture", "provenance") else _located(render.not_captured(EXECUTE_OFF), node)
        evidence = self._record(experiment, run, node)
        if isinstance(evidence, Failure):
            return self._failed_part(node, evidence)
        record = evidence.record
        if kind == "output":
            made = render.output(program, record.programs[program])
        elif kind == "states":
            made = render.states(record)
        elif kind in ("sequence", "state-diagram"):
            made = self._picture(kind, record, node)
        elif kind == "provenance":
            made = [provenance.origin_line(evidence), provenance.downloads(evidence, self.app.env)]
            self._note_run(node, evidence)
        else:
            made = [render.capture_note(record)]
        return [_located(part, node) for part in made]

    def _note_run(self, node: nodes.Element, evidence: Evidence) -> None:
        """For the Evidence page: this run, as this page shows it (its block gets an id to link to)."""
        env, record = self.app.env, evidence.record
        files = [("record (JSON)", evidence.json_path), ("packets (pcap)", evidence.pcap_path)]
        collect.domain(env).note_run(collect.RunShown(
            docname=env.docname,
            anchor=collect.anchor(self.doctree, node.parent, f"run-{record.experiment}-{record.run}"),
            experiment=record.experiment,
            run=record.run,
            origin=evidence.origin,
            seconds=evidence.seconds,
            facts=provenance.facts(record),
            sentence=provenance.origin_sentence(evidence),
            downloads=tuple(
                (label, env.relfn2path(provenance.download_target(path, env), env.docname)[0])
                for label, path in files if path is not None
            ),
        ))  # fmt: skip

    def _picture(self, kind: str, record: Record, node: nodes.Element) -> list[nodes.Node]:
        """A diagram drawn from the run's segments, one per connection; without segments, why none."""
        if not record.packets:
            return [render.not_captured(f"no {kind.replace('-', ' ')}: {record.packets_source or 'no segments'}")]
        make = pictures.sequence_figure if kind == "sequence" else pictures.state_figure
        connections = record.connections()
        for number in connections if (record.experiment, record.run) not in self.checked_pictures else ():
            # The pictures replay the segments through RFC 9293's state machine; where that
            # contradicts the kernel's own tables, a picture would show what did not happen.
            # Said once per run and page, at its first picture.
            contradictions = disagreements(record.for_connection(number))
            if contradictions:
                where = f"{record.experiment}/{record.run}" + (f", connection {number}" if len(connections) > 1 else "")
                warn(LabWarning.DIAGRAM, f"{where}: the segments and the tables disagree: {contradictions[0]}", node)
        self.checked_pictures.add((record.experiment, record.run))
        if len(connections) == 1:
            return [make(record, node.source, node.line)]
        caption = pictures.SEQUENCE_CAPTION if kind == "sequence" else pictures.STATE_CAPTION
        return [
            make(record.for_connection(n), node.source, node.line, caption=f"Connection {n} of {len(connections)}. {caption}")
            for n in connections
        ]

    # -- findings -------------------------------------------------------------------

    def _fill_finding(self, node: lab_finding, loaded: tuple[Experiment, Run] | Failure) -> None:
        checks = self._parse_checks(node)
        if not isinstance(loaded, Failure):
            node["run"] = loaded[1].name  # the run it is held to, named, for the Findings page
        if isinstance(loaded, Failure):
            self._warn_once(node, loaded)
            return self._verdict(node, "unchecked", f"Not checked: {loaded.summary}.")
        if not self.mode.runs:
            return self._verdict(node, "unchecked", f"Not checked: {EXECUTE_OFF}.")
        evidence = self._record(*loaded, node)
        if isinstance(evidence, Failure):
            self._warn_once(node, evidence)
            return self._verdict(node, "unchecked", f"Not checked: {evidence.summary}.")
        record = evidence.record
        failing, unusable = [], len(node["checks"]) - len(checks)
        cannot_tell: list[str] = []  # packet checks on a capture without packets
        for check, line in checks:
            try:
                outcome = evaluate(check, record)
            except CheckSyntaxError as error:
                self._check_warning(node, line, str(error))
                unusable += 1
                continue
            if outcome.unchecked:
                cannot_tell.append(outcome.unchecked)
            elif not outcome.holds:
                failing.append(f"{check.text!r} (line {line}) fails: {outcome.observed}")
        whose = "this build's" if evidence.live else "the recorded"
        where = f"{whose} capture of {record.experiment}/{record.run}"
        if failing:
            warn(LabWarning.FINDING, f"finding does not hold: {node['claim']!r}\n  " + "\n  ".join(failing), node)
            return self._verdict(node, "fails", f"Does not hold in {where}: " + "; ".join(failing) + ".")
        if not node["checks"]:
            return self._verdict(node, "unchecked", "Not checked: it has no checks.")
        if unusable:
            total = len(node["checks"])
            return self._verdict(node, "unchecked", f"Not checked: {unusable} of its {_checks(total)} could not be used.")
        if cannot_tell:
            # Not a disagreement with the kernel, so not a warning: this machine could not look.
            logger.info(f"finding not fully checked: {cannot_tell[0]}", location=node)
            node["unchecked"] = (len(cannot_tell), cannot_tell[0])
            held = len(checks) - len(cannot_tell)
            if not held:
                return self._verdict(node, "unchecked", f"Not checked: {cannot_tell[0]}.")
            return self._verdict(
                node, "holds", f"Holds in {where} ({_checks(held)}; {len(cannot_tell)} not checked: {cannot_tell[0]})."
            )
        return self._verdict(node, "holds", f"Holds in {where} ({_checks(len(checks))}).")

    def _parse_checks(self, node: lab_finding) -> list[tuple[Check, int]]:
        parsed = []
        for text, line in node["checks"]:
            try:
                parsed.append((parse_check(text), line))
            except CheckSyntaxError as error:
                self._check_warning(node, line, str(error))
        return parsed

    def _check_warning(self, node: lab_finding, line: int, message: str) -> None:
        # The check's own line, not the directive's: that is where the fix goes.
        warn(LabWarning.CHECK_SYNTAX, f"bad check in finding {node['claim']!r}: {message}", f"{node.source}:{line}")

    def _verdict(self, node: lab_finding, status: str, text: str) -> None:
        if isinstance(node.parent, nodes.admonition):
            node.parent["classes"].append(status)
            self._note_finding(node, node.parent, status, text)
        node.replace_self(_located(render.verdict(text, status), node))


    def _note_finding(self, node: lab_finding, box: nodes.admonition, status: str, text: str) -> None:
        """For the Findings page: the finding, its verdict, where it stands (it gets an id to link to)."""
        where, _ = collect.topic_of(self.doctree, box)
        unchecked, reason = node.get("unchecked") or (0, "")
        collect.domain(self.app.env).note_finding(collect.FindingShown(
            docname=self.app.env.docname,
            anchor=collect.anchor(self.doctree, box, f"finding-{node['claim'][:48]}"),
            claim=node["claim"],
            status=status,
            verdict=text,
            experiment=node["experiment"],
            run=node["run"],
            topic=node.get("topic") or where,
            unchecked_checks=unchecked if status != "unchecked" else 0,
            unchecked_reason=reason,
        ))  # fmt: skip


def _checks(count: int) -> str:
    return "1 check" if count == 1 else f"{count} checks"


def _located(made: nodes.Node, placeholder: nodes.Element) -> nodes.Node:
    """Give a made node the placeholder's source and line, for any later message about it."""
    made.source, made.line = placeholder.source, placeholder.line
    return made

