"""A run's pictures as ``sphinx.ext.graphviz`` nodes: the sequence diagram and the state diagram.

The nodes are the ones the ``graphviz`` directive makes (with ``:alt:``,
``:class:`` and ``:caption:``), so the html, latex, text and man builders
render them with Sphinx's own visitors and need nothing of ours; the DOT text
comes from ``lab/diagrams.py``.  The extension must be set up for them:
``app.setup_extension("sphinx.ext.graphviz")`` (and the ``dot`` program
installed; without it Sphinx warns and shows the DOT text).
"""

from __future__ import annotations

from docutils import nodes
from lab.diagrams import (
    describe_sequence,
    describe_state_path,
    sequence_diagram,
    state_diagram,
)
from lab.record import Record
from sphinx.ext.graphviz import graphviz

# The class the site's stylesheet gives its dark-mode filter to (invert, then turn the hues back).
DIAGRAM_CLASS = "lab-diagram"

SEQUENCE_CAPTION = "The run's TCP segments, the programs' calls, and each end's state as it changes."
STATE_CAPTION = "The TCP state diagram of RFC 9293, with the edges each end took in this run."


def sequence_figure(
    record: Record, source: str, line: int, caption: str | None = SEQUENCE_CAPTION, docname: str | None = None
) -> nodes.Node:
    """The sequence diagram of ``record``: a captioned figure, or the bare picture if ``caption`` is None."""
    return _figure(sequence_diagram(record), describe_sequence(record), source, line, caption, docname)


def state_figure(
    record: Record, source: str, line: int, caption: str | None = STATE_CAPTION, docname: str | None = None
) -> nodes.Node:
    """RFC 9293's state diagram with ``record``'s paths highlighted: a figure, or the bare picture."""
    return _figure(state_diagram(record), describe_state_path(record), source, line, caption, docname)


def _figure(dot: str, alt: str, source: str, line: int, caption: str | None, docname: str | None) -> nodes.Node:
    # What Graphviz.run() puts on its node.  The options take part in the
    # image's file name, so the docname is there only when the caller has one
    # (the picture is the same on every page; dot runs in that page's folder).
    picture = graphviz()
    picture["code"] = dot
    picture["options"] = {"docname": docname} if docname else {}
    picture["alt"] = _attribute_safe(alt)
    picture["classes"] = [DIAGRAM_CLASS]
    picture.source, picture.line = source, line
    if caption is None:
        return picture
    # As sphinx.ext.graphviz.figure_wrapper() wraps it for ``:caption:``, without parsing markup.
    figure = nodes.figure("", picture)
    figure += nodes.caption(caption, caption)
    for made in (figure, figure.children[-1]):
        made.source, made.line = source, line
    return figure


def _attribute_safe(text: str) -> str:
    """The alternative text, safe where Sphinx writes it unescaped into an HTML attribute.

    ``render_dot_html()`` puts ``node['alt']`` as it is into ``alt="..."``
    (and into a ``<p>``), so the characters HTML would read are replaced by
    look-alikes; the text builder shows the same words.
    """
    return text.replace("&", "and").replace('"', "'").replace("<", "‹").replace(">", "›")
