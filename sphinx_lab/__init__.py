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
``lab_execute``       run the examples (default True); False shows sources only, checks nothing
``lab_deadline``      seconds before a stuck run is stopped (default: the experiment's own)

Warnings all have type ``lab``, a location, and one of these subtypes (so
``suppress_warnings = ["lab.finding"]`` silences one kind):

``lab.option``        a bad option value, a missing note file, a finding without experiment or checks
``lab.capture``       unknown experiment or run, or a run that failed (command, status, output tails)
``lab.finding``       a finding that does not hold in this build's capture (with what was observed)
``lab.check-syntax``  a check line that is malformed or names a step or snapshot the run lacks;
                      reported even when ``lab_execute`` is off, where only the syntax is checked
``lab.markup``        a MyST ```` ```{finding} ```` fence read as plain text, because its first
                      line holds backticks (CommonMark forbids them there): use ``:::{finding}``
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
    from .config import CONFIG_VALUES, examples_dir, make_lab_importable, no_bytecode

    app.setup_extension("sphinx_tabs.tabs")
    app.setup_extension("sphinx.ext.graphviz")  # the sequence and state diagrams
    for name, (default, rebuild, types, description) in CONFIG_VALUES.items():
        app.add_config_value(name, default, rebuild, types, description)  # type: ignore[arg-type]

    # The handlers import the lab; conf.py's values are readable already.
    folder = examples_dir(app)
    make_lab_importable(folder)
    try:
        with no_bytecode():
            from . import directives, handlers, nodes, stands
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
    app.add_role("stands", stands.StandsRole())
    # Before the environment collectors (priority 500), so they see the filled page.
    app.connect("doctree-read", handlers.fill_placeholders, priority=400)
    return {
        "version": __version__,
        "env_version": 1,  # bump when the data this extension stores on the env changes
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
