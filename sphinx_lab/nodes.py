"""The placeholder nodes the directives leave for the ``doctree-read`` handler.

They only carry attributes (which experiment, which run, what to show, where
the directive was).  The handler replaces every one of them with standard
docutils nodes before the doctree is pickled, so no builder ever sees them
and none needs a visitor for them.
"""

from __future__ import annotations

from docutils import nodes


class lab_placeholder(nodes.General, nodes.Element):  # noqa: N801 (docutils names nodes in lower case)
    """A part of an ``experiment`` block, filled from the run's record.

    Attributes: ``kind`` (``source``, ``output``, ``note``, ``states``,
    ``capture``, ``sequence``, ``state-diagram`` or ``provenance``), ``program`` (``client``/``server``, for the first three),
    ``experiment``, ``run`` (None: the first run), ``note_path`` (for ``note``).
    """


class lab_finding(nodes.General, nodes.Element):  # noqa: N801
    """The verdict line of a ``finding``, filled by holding its checks against the record.

    Attributes: ``experiment``, ``run``, ``checks`` (a list of ``[text, line]``)
    and ``claim`` (the claim in plain text, for messages).
    """


PLACEHOLDERS = (lab_placeholder, lab_finding)
