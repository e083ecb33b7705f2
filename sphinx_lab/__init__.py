"""sphinx_lab: show the examples' runs in the documentation, captured by the build itself.

Directives (reST shown; in MyST write ```` ```{experiment} close ```` with the
same options)::

    .. experiment:: NAME
       :run: RUN                 (default: the experiment's first run)
       :show: source outputs states sequence state-diagram   (any of them, space-separated; default all)
       :note-client: PATH        (the original note's client output, relative to the page)
       :note-server: PATH        (the same for the server)

    .. finding:: CLAIM, with ``inline`` markup
       :experiment: NAME         (required)
       :run: RUN                 (default: the experiment's first run)

       state client:closed server CLOSE_WAIT recv-q 13
       fact server:received#2 data = b''
       packets client:closed = client FIN+ACK, server ACK

    .. lab-evidence::             (a page made by the build: every run, its provenance, origin, files)
    .. lab-findings::             (every finding on the site by topic, with its verdict and run)

``finding`` also takes ``:topic: WORDS``, its group on the Findings page
(default: the page and section it stands in).

``experiment`` shows the client and server programs in tabs, what each
printed in this build's run (and in the note, if given) in tabs, one
table per socket-state snapshot, like ``netstat -tan``, each with the TCP
segments that crossed the wire meanwhile, like ``tcpdump`` (``states``); a
sequence diagram of the run (``sequence``) and RFC 9293's state diagram with
the transitions each end took (``state-diagram``), drawn by Graphviz
(``sphinx.ext.graphviz``, set up here; needs the ``dot`` program).  ``finding`` holds
its check lines (the language of ``lab/findings.py``; blank lines and ``#``
comments are skipped) against the run and says whether the claim holds.

Configuration values:

``lab_examples_dir``  folder with experiments.toml and the lab (default ``<confdir>/examples``)
``lab_cache_dir``     captured records (default ``captures`` next to the output folder)
``lab_execution_mode`` how runs are had, as MyST-NB's ``nb_execution_mode`` (modes.py):
                      ``auto`` (default: live where this host can capture a namespace and its
                      packets, else the recorded evidence), ``force`` (always live; warns where
                      the host cannot capture it all), ``replay`` (recorded evidence only, runs
                      nothing) or ``off`` (sources only, checks nothing).  ``-D
                      lab_execution_mode=...`` wins over ``$LAB_EXECUTION_MODE``, which wins
                      over conf.py
``lab_evidence_dir``  the recorded evidence, EXPERIMENT/RUN.json and .pcap (default ``<srcdir>/captures``;
                      ``make captures`` writes it)
``lab_execute``       False: the same as ``lab_execution_mode = "off"`` (kept for old conf.py files)
``lab_deadline``      seconds before a stuck run is stopped (default: the experiment's own)

Warnings all have type ``lab``, a location, and one of these subtypes (so
``suppress_warnings = ["lab.finding"]`` silences one kind):

``lab.option``        a bad option value, a missing note file, a finding without experiment or checks
``lab.capture``       unknown experiment or run, a run that failed (command, status, output tails), or,
                      in ``force`` mode, a host that cannot capture everything a page shows
``lab.finding``       a finding that does not hold in this build's capture (with what was observed)
``lab.check-syntax``  a check line that is malformed or names a step or snapshot the run lacks;
                      reported even when the execution mode is ``off``, where only the syntax is checked
``lab.markup``        a MyST ```` ```{finding} ```` fence read as plain text, because its first
                      line holds backticks (CommonMark forbids them there): use ``:::{finding}``
``lab.evidence``      a recorded run that is missing, corrupt, of a newer or older schema, or made
                      from other sources than today's: names the file and the command that
                      re-records it (``make captures``)
``lab.diagram``       a run's captured segments and its tables disagree (replayed through
                      RFC 9293's state machine), so its pictures would not be true
``lab.stands``        a ``{stands}`KIND: DETAIL``` label with an unknown KIND or no DETAIL

Role: ``{stands}`KIND: DETAIL``` marks where a sentence about kernel behaviour
stands when no finding checks it: KIND ``source`` (read in the kernel
source), ``measured`` (measured outside the lab), ``inference`` (from the
note's tables) or ``docs`` (a man page, an RFC); see ``stands.py``.

Nothing is written to the source, configuration or examples folders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.util.typing import ExtensionMetadata

__version__ = "0.1.0"


def setup(app: Sphinx) -> ExtensionMetadata:
    # Sphinx is imported here, not at the top, so that the Sphinx-free modules
    # (capture.py) can be imported and tested without it.
    from .config import CONFIG_VALUES, examples_dir, make_lab_importable, no_bytecode, resolve_execution_mode

    app.setup_extension("sphinx_tabs.tabs")
    app.setup_extension("sphinx.ext.graphviz")  # the sequence and state diagrams
    for name, (default, rebuild, types, description) in CONFIG_VALUES.items():
        app.add_config_value(name, default, rebuild, types, description)  # type: ignore[arg-type]

    # The handlers import the lab; conf.py's values are readable already.
    folder = examples_dir(app)
    make_lab_importable(folder)
    try:
        with no_bytecode():
            from . import collect, directives, handlers, nodes, site_pages, stands
    except ModuleNotFoundError as error:
        if error.name != "lab":
            raise
        from sphinx.errors import ExtensionError

        raise ExtensionError(f"sphinx_lab: cannot import the lab: no {folder / 'lab'} (set lab_examples_dir)") from error

    app.add_node(nodes.lab_placeholder)
    app.add_node(nodes.lab_finding)
    app.add_directive("experiment", directives.ExperimentDirective)
    app.add_directive("finding", directives.FindingDirective)
    app.add_directive("lab-placeholder", directives.PlaceholderDirective)
    # The pages made from all the others: every run (Evidence), every finding (Findings).
    app.add_domain(collect.LabDomain)
    app.add_node(site_pages.lab_site_page)
    app.add_directive("lab-evidence", site_pages.EvidenceDirective)
    app.add_directive("lab-findings", site_pages.FindingsDirective)
    app.connect("env-get-outdated", site_pages.outdated_site_pages)
    app.connect("doctree-resolved", site_pages.fill_site_pages)
    app.connect("env-before-read-docs", site_pages.note_pages_read)
    app.connect("build-finished", site_pages.sum_up)
    app.add_role("stands", stands.StandsRole())
    # Before the environment collectors (priority 500), so they see the filled page.
    app.connect("config-inited", resolve_execution_mode)
    app.connect("builder-inited", handlers.prepare_mode)
    app.connect("doctree-read", handlers.fill_placeholders, priority=400)
    return {
        "version": __version__,
        "env_version": 2,  # bump when the data this extension stores on the env changes
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
