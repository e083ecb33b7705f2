"""The ``stands`` role: where a sentence about kernel behaviour stands, when no finding checks it.

A page's promise is that a statement of kernel behaviour is either a checked
finding or says where it comes from.  This role is how prose says so::

    Linux answers with a reset {stands}`source: tcp_close() in net/ipv4/tcp.c`.
    The FINs crossed in most runs {stands}`measured: tools/race-simultaneous-close.py, 76 of 80`.

It renders as a small inline label (a standard ``inline`` node with classes
``lab-stands`` and ``lab-stands-KIND``), so the reader sees at a glance which
sentences the build checked and which it could not.  An unknown kind, or a
label without its detail, is a located ``lab.stands`` warning.
"""

from __future__ import annotations

from docutils import nodes
from sphinx.util.docutils import SphinxRole

from .logs import LabWarning, warn

# KIND -> the words the reader sees before the detail.
KINDS: dict[str, str] = {
    "source": "read in the kernel source",
    "measured": "measured outside the lab",
    "inference": "an inference from the note's own tables",
    "docs": "as documented",
}


class StandsRole(SphinxRole):
    """``{stands}`KIND: DETAIL```: only parses; the label is a standard inline node."""

    def run(self) -> tuple[list[nodes.Node], list[nodes.system_message]]:
        kind, colon, detail = self.text.partition(":")
        kind, detail = kind.strip(), detail.strip()
        if kind not in KINDS or not colon or not detail:
            warn(
                LabWarning.STANDS,
                f"{{stands}}`{self.text}`: write KIND: DETAIL, with KIND one of {', '.join(KINDS)} "
                "(e.g. {stands}`source: tcp_close() in net/ipv4/tcp.c`)",
                self.get_location(),
            )
            return [nodes.problematic(self.rawtext, self.rawtext)], []
        label = nodes.inline(self.rawtext, "", classes=["lab-stands", f"lab-stands-{kind}"])
        label += nodes.Text(f"{KINDS[kind]}: ")
        label += nodes.literal(detail, detail) if kind == "source" else nodes.Text(detail)
        return [label], []
