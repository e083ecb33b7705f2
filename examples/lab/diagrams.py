"""Pictures of a run, as Graphviz DOT text: the segments in time, and the TCP state diagram.

``sequence_diagram(record)`` draws the client and the server as two lifelines
with time flowing down: one arrow per segment, each program's socket calls
where it made them, and each end's state where it changes.
``state_diagram(record)`` draws RFC 9293's Figure 5 and highlights the edges
each end took in this run.  ``describe_sequence`` and ``describe_state_path``
say the same in plain text, for readers who cannot see the pictures.

Only text comes out of here (no Graphviz needed to import or test it); the
site renders it with ``sphinx.ext.graphviz``.  The pictures are made for a
phone's width and for dark mode: a transparent background, black and grey
ink, and two mid-saturated colours that keep their hue when the site inverts
the picture (``filter: invert(1) hue-rotate(180deg)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .tcp_states import (
    ENDS,
    INITIAL_STATES,
    RFC_NAMES,
    Transition,
    display_name,
    record_transitions,
)

if TYPE_CHECKING:
    from .record import Event, Packet, Record

# -- the look ----------------------------------------------------------------------

# Graphviz lays the labels out with the first font fontconfig finds: Liberation Sans,
# which the set-up installs by name (tools/system-packages.sh), so every machine
# measures the same widths.  A browser without it takes Arial, its metric twin.
FONT = "Liberation Sans,Arial,Helvetica,sans-serif"
MONO = "DejaVu Sans Mono,Menlo,Consolas,monospace"  # fonts-dejavu-core, also installed by name
INK = "#222222"
GREY = "#8a8a8a"
FAINT = "#b0b0b0"
CALL_FILL = "#ececec"
COLOURS = {"client": "#2b6cb0", "server": "#c05621"}  # blue and orange: apart in hue, for most colour vision
LABEL_WIDTH = 1.7  # inches between the lifelines for an arrow's label: wide enough for "PSH, ACK  len 1448"
END_NAMES = {"client": "client", "server": "server"}


def _quote(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _html(text: str) -> str:
    """Text for an HTML-like label."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attrs(**attributes: object) -> str:
    """``[a="1", b=<html>]``: values starting with ``<`` and ending with ``>`` are HTML labels."""
    parts = []
    for key, value in attributes.items():
        text = str(value)
        shown = text if text.startswith("<") and text.endswith(">") else _quote(text)
        parts.append(f"{key}={shown}")
    return "[" + ", ".join(parts) + "]"


def _title(record: Record, what: str) -> str:
    return f"{what}: {record.experiment}, run {record.run}"


# -- what happened, in order -------------------------------------------------------------


def call_text(event: Event) -> str:
    """What the program did before the step: its socket call, or else the step's own name."""
    return event.call or event.step


def call_positions(record: Record) -> list[tuple[int, Event]]:
    """Where each event's call goes among the segments: ``(index of the first segment after it, event)``.

    A program makes the call of a step after the run released it from its
    previous step (or from the start), so the call comes before every segment
    tied to a later step than that one.  That is where it is drawn: where it
    was *made*.  A blocking call (``accept()``, ``recv()``) returns later, but
    nothing in the record says when, and a call that sends (``close()``
    sending its FIN) is then always drawn before its segment, even when the
    segment is tied to another program's step.
    """
    order = {event.label: i for i, event in enumerate(record.events)}
    order["end"] = len(record.events)
    # Each segment's step, as a place in the run; an unknown label stays with the step before.
    buckets, current = [], 0
    for packet in record.packets:
        current = order.get(packet.step, current)
        buckets.append(current)

    def first_packet_from(step_index: int) -> int:
        return next((i for i, bucket in enumerate(buckets) if bucket >= step_index), len(buckets))

    placed = []
    previous: dict[str, int] = {}  # program -> index of its latest event so far
    for index, event in enumerate(record.events):
        released_at = previous.get(event.program, -1) + 1
        placed.append((first_packet_from(released_at), released_at, index, event))
        previous[event.program] = index
    # Calls made between the same two segments: the program released first called first.
    return [(position, event) for position, _, _, event in sorted(placed, key=lambda p: p[:3])]


def packet_label(packet: Packet) -> str:
    """``FIN, ACK`` or ``PSH, ACK  len 12``."""
    return packet.flags_text() + (f"  len {packet.length}" if packet.length else "")


def packet_numbers(packet: Packet) -> str:
    """``seq 13 ack 1``: the relative sequence numbers, as tcpdump prints them."""
    return f"seq {packet.seq}" + ("" if packet.ack is None else f"  ack {packet.ack}")


# -- the sequence diagram --------------------------------------------------------------


@dataclass
class _Row:
    """One rank of the sequence diagram: what sits on each lifeline, and between them."""

    client: str = ""  # node attributes for the client's lifeline at this row ("" = the bare line)
    server: str = ""
    middle: str = ""  # a label between the lifelines (the next arrow's)
    arrow: str = ""  # the arrow drawn across this row, client -> server (dir=back for the other way)


def _state_node(end: str, state: str) -> str:
    return _attrs(
        label=display_name(state),
        shape="box",
        style="rounded,bold",
        color=COLOURS[end],
        fontcolor=INK,
        fontsize=9,
        height=0.22,
        margin="0.06,0.02",
    )


def _call_node(text: str) -> str:
    return _attrs(
        label=text,
        shape="box",
        style="filled",
        color=CALL_FILL,
        fillcolor=CALL_FILL,
        fontname=MONO,
        fontcolor=INK,
        fontsize=9,
        height=0.2,
        margin="0.05,0.02",
    )


def _opens(event: Event) -> bool:
    """The call that puts its end in the state it starts the diagram in (the server's listen())."""
    return INITIAL_STATES.get(event.program) == "LISTEN" and call_text(event).startswith("listen(")


def _arrow_label(packet: Packet) -> str:
    colour = COLOURS[packet.sender]
    weight = ("<B>", "</B>") if "RST" in packet.flags else ("", "")
    return (
        f'<<FONT COLOR="{colour}" POINT-SIZE="9">{weight[0]}{_html(packet_label(packet))}{weight[1]}</FONT>'
        f'<BR/><FONT COLOR="{GREY}" POINT-SIZE="7">{_html(packet_numbers(packet))}</FONT>>'
    )


def _arrow(packet: Packet) -> str:
    """The arrow's attributes: always written client -> server, pointing back for the server's segments."""
    return _attrs(
        color=COLOURS[packet.sender],
        dir="forward" if packet.sender == "client" else "back",
        arrowhead="normal",
        arrowtail="normal",
        arrowsize=0.7,
        penwidth=2 if "RST" in packet.flags else 1.2,  # a reset ends the connection: it stands out
    )


def _changes(found: list[Transition]) -> dict[int, list[Transition]]:
    """The transitions that happened right after each segment was sent, by the segment's index.

    Changes made by a call rather than a segment (a close whose FIN waits
    behind data) are not here: they are drawn with their step's call.
    """
    by_packet: dict[int, list[Transition]] = {}
    for t in found:
        if not t.step:
            by_packet.setdefault(t.when, []).append(t)
    return by_packet


def _closing_call(record: Record, change: Transition) -> str:
    """The label of the event whose call made ``change`` (a close whose FIN had to wait).

    The change was seen in the table of step ``change.step``.  If that step
    is the closing end's own, its call did it; otherwise the end had been
    let go from its last step before that one, and was making the call of
    its next step when the table was read.
    """
    labels = [event.label for event in record.events]
    seen_at = labels.index(change.step) if change.step in labels else len(labels)
    own = [i for i, event in enumerate(record.events) if event.program == change.end]
    before = [i for i in own if i <= seen_at]
    if before and before[-1] == seen_at:
        return labels[seen_at]
    after = [i for i in own if i > seen_at]
    return labels[after[0]] if after else change.step


def _sequence_rows(record: Record, found: list[Transition]) -> list[_Row]:
    calls = call_positions(record)
    changes = _changes(found)
    by_call: dict[str, list[Transition]] = {}
    for t in found:
        if t.step:
            by_call.setdefault(_closing_call(record, t), []).append(t)
    drawn: set[int] = set()  # the events whose call is drawn already, by id()
    rows = [
        _Row(**{end: _attrs(label=end, fontsize=11, fontcolor=COLOURS[end], fontname=FONT + ":bold") for end in ENDS})
    ]

    def add_calls(before: int, which: Callable[[Event], bool] = lambda event: True) -> None:
        for position, event in calls:
            if position == before and event.program in ENDS and which(event) and id(event) not in drawn:
                rows.append(_Row(**{event.program: _call_node(call_text(event))}))
                drawn.add(id(event))
                landed = {t.end: t.after for t in by_call.get(event.label, [])}
                if landed:  # the call moved an end though nothing could be sent yet
                    rows.append(_Row(**{end: _state_node(end, state) for end, state in landed.items()}))

    add_calls(0, _opens)  # listen() is what puts the server in its first state: it goes above it
    rows.append(_Row(**{end: _state_node(end, INITIAL_STATES[end]) for end in ENDS}))
    for index, packet in enumerate(record.packets):
        add_calls(index)
        rows.append(_Row(middle=_attrs(label=_arrow_label(packet), width=LABEL_WIDTH, height=0.1)))
        rows.append(_Row(arrow=_arrow(packet)))
        landed = {t.end: t.after for t in changes.get(index, [])}  # an end may move twice: show where it lands
        if landed:
            rows.append(_Row(**{end: _state_node(end, state) for end, state in landed.items()}))
    add_calls(len(record.packets))
    return rows


def sequence_diagram(record: Record) -> str:
    """The run's segments between the two lifelines, with the calls and the states, as DOT."""
    found = record_transitions(record)
    rows = _sequence_rows(record, found)
    title = _title(record, "TCP segments and states")
    lines = [
        f"digraph {_quote(title)} {{",
        "  "
        + "graph "
        + _attrs(
            bgcolor="transparent",
            tooltip=title,
            nodesep=0.12,
            ranksep=0.06,
            splines="line",
            newrank="true",
            pad=0.1,
            fontname=FONT,
        ),
        "  " + "node " + _attrs(shape="none", label="", width=0, height=0, fontname=FONT, fontcolor=INK),
        "  " + "edge " + _attrs(arrowhead="none", color=FAINT),
    ]
    for r, row in enumerate(rows):
        names = [f"c{r}", f"m{r}", f"s{r}"] if row.middle else [f"c{r}", f"s{r}"]
        lines.append(f"  c{r} {row.client or _attrs(shape='point', width=0.01, color=FAINT)}")
        lines.append(f"  s{r} {row.server or _attrs(shape='point', width=0.01, color=FAINT)}")
        if row.middle:
            lines.append(f"  m{r} {row.middle}")
        lines.append("  { rank=same; " + "; ".join(names) + "; }")
        if row.arrow:
            lines.append(f"  c{r} -> s{r} {row.arrow}")
        else:
            # Keeps the client on the left; the label, if any, between them.
            lines.append("  " + " -> ".join(names) + " " + _attrs(style="invis"))
    # The lifelines, from each end's name down; the heavy weight keeps them straight.
    for column in "cs":
        lines.append("  " + " -> ".join(f"{column}{r}" for r in range(len(rows))) + " " + _attrs(weight=100))
    lines.append("}")
    return "\n".join(lines) + "\n"


def describe_sequence(record: Record) -> str:
    """The sequence diagram in words: one sentence per call and per segment."""
    changes = _changes(record_transitions(record))
    calls = call_positions(record)
    sentences = [
        f"The client starts {display_name(INITIAL_STATES['client'])}, the server {display_name(INITIAL_STATES['server'])}."
    ]

    def add_calls(before: int) -> None:
        for position, event in calls:
            if position == before:
                sentences.append(f"The {event.program} calls {call_text(event)}.")

    for index, packet in enumerate(record.packets):
        add_calls(index)
        data = f" with {packet.length} bytes" if packet.length else ""
        sentence = (
            f"The {packet.sender} sends {packet.flags_text()}{data} ({packet_numbers(packet).replace('  ', ', ')})"
        )
        moved = [
            f"the {t.end} goes from {display_name(t.before)} to {display_name(t.after)}" for t in changes.get(index, [])
        ]
        sentences.append(sentence + (": " + ", then ".join(moved) if moved else "") + ".")
    add_calls(len(record.packets))
    return " ".join(sentences)


# -- the state diagram ---------------------------------------------------------------

# RFC 9293, Figure 5, once: the states (node, label) and the edges (from, to, event, action).
# The figure draws CLOSED twice, where a connection starts and where it ends;
# so do we.  Linux's name is shown under the RFC's where the tables spell it otherwise.
STATE_NODES = {
    "closed": "CLOSED",
    "listen": "LISTEN",
    "syn_rcvd": "SYN-RECEIVED",
    "syn_sent": "SYN-SENT",
    "estab": "ESTABLISHED",
    "fin_wait_1": "FIN-WAIT-1",
    "close_wait": "CLOSE-WAIT",
    "fin_wait_2": "FIN-WAIT-2",
    "closing": "CLOSING",
    "last_ack": "LAST-ACK",
    "time_wait": "TIME-WAIT",
    "closed_end": "CLOSED",
}
_NODE_OF_RFC = {rfc: node for node, rfc in STATE_NODES.items() if node != "closed_end"}

RFC_EDGES: tuple[tuple[str, str, str, str], ...] = (
    ("closed", "listen", "passive OPEN", "create TCB"),
    ("closed", "syn_sent", "active OPEN", "create TCB, snd SYN"),
    ("listen", "closed", "CLOSE", "delete TCB"),
    ("listen", "syn_rcvd", "rcv SYN", "snd SYN,ACK"),
    ("listen", "syn_sent", "SEND", "snd SYN"),
    ("syn_sent", "closed", "CLOSE", "delete TCB"),
    ("syn_sent", "syn_rcvd", "rcv SYN", "snd SYN,ACK"),
    ("syn_rcvd", "listen", "rcv RST", ""),  # note 1: only when SYN-RECEIVED came from a passive OPEN
    ("syn_sent", "estab", "rcv SYN,ACK", "snd ACK"),
    ("syn_rcvd", "estab", "rcv ACK of SYN", "x"),
    ("syn_rcvd", "fin_wait_1", "CLOSE", "snd FIN"),
    ("estab", "fin_wait_1", "CLOSE", "snd FIN"),
    ("estab", "close_wait", "rcv FIN", "snd ACK"),
    ("fin_wait_1", "fin_wait_2", "rcv ACK of FIN", "x"),
    ("fin_wait_1", "closing", "rcv FIN", "snd ACK"),
    ("close_wait", "last_ack", "CLOSE", "snd FIN"),
    ("fin_wait_2", "time_wait", "rcv FIN", "snd ACK"),
    ("closing", "time_wait", "rcv ACK of FIN", "x"),
    ("last_ack", "closed_end", "rcv ACK of FIN", "x"),
    ("time_wait", "closed_end", "Timeout=2MSL", "delete TCB"),
)

# States side by side, left to right, as in the RFC's figure.
_SAME_RANK = (("syn_rcvd", "syn_sent"), ("fin_wait_1", "close_wait"), ("fin_wait_2", "closing", "last_ack"))


@dataclass(frozen=True)
class Taken:
    """An edge one end took: an RFC edge (``event`` empty) or one the figure lacks."""

    end: str
    source: str  # node ids of STATE_NODES
    target: str
    event: str = ""  # for an edge the figure lacks: what to write on it ("snd RST")


def _node(state: str, *, arriving: bool) -> str:
    """The node of a Linux state; CLOSE is the figure's bottom CLOSED when a connection ends there."""
    if state == "CLOSE" and arriving:
        return "closed_end"
    return _NODE_OF_RFC[RFC_NAMES.get(state, state)]


def _short(cause: str) -> str:
    """``sent RST`` -> ``snd RST``: the figure's way of saying it."""
    return cause.replace("sent ", "snd ").replace("received ", "rcv ")


def taken_edges(record: Record) -> list[Taken]:
    """The edges each end took in the run, in order (the server's passive OPEN first)."""
    rfc = {(source, target) for source, target, _, _ in RFC_EDGES}
    taken = []
    if INITIAL_STATES["server"] == "LISTEN":
        taken.append(Taken("server", "closed", "listen"))  # its listen(), before any segment
    for t in record_transitions(record):
        source = _node(t.before, arriving=False)
        target = _node(t.after, arriving=True)
        if (source, target) not in rfc and t.after == "CLOSE" and (source, "closed") in rfc and not t.rst:
            target = "closed"  # a connection abandoned before it was set up goes back to the start
        if t.rst or (source, target) not in rfc:
            taken.append(Taken(t.end, source, target, _short(t.cause)))
        else:
            taken.append(Taken(t.end, source, target))
    return taken


def _state_label(rfc_name: str) -> str:
    """The RFC's name, and under it the tables' spelling when that differs.

    Not for CLOSED: no table lists a closed socket, so CLOSE is never seen.
    """
    linux = next(name for name, rfc in RFC_NAMES.items() if rfc == rfc_name)
    if linux == rfc_name or rfc_name == "CLOSED":
        return rfc_name
    return f'<{_html(rfc_name)}<BR/><FONT POINT-SIZE="7" COLOR="{GREY}">{_html(linux)}</FONT>>'


def _edge_label(event: str, action: str, takers: list[tuple[str, int]], colour: str) -> str:
    lines = [f'<FONT COLOR="{colour}">{_html(event)}</FONT>']
    if action:
        lines.append(f'<FONT COLOR="{colour}">/ {_html(action)}</FONT>')
    for end, number in takers:
        lines.append(f'<FONT COLOR="{COLOURS[end]}"><B>{END_NAMES[end]} {number}</B></FONT>')
    return "<" + "<BR/>".join(lines) + ">"


def _edge_style(takers: list[tuple[str, int]]) -> dict[str, object]:
    if not takers:
        return {"color": FAINT, "penwidth": 1}
    ends = sorted({end for end, _ in takers}, key=ENDS.index)
    # Two colours side by side when both ends took the edge.
    return {"color": ":".join(COLOURS[end] for end in ends), "penwidth": 2.2 if len(ends) == 1 else 1.8}


def state_diagram(record: Record) -> str:
    """RFC 9293's state diagram with this run's path for each end highlighted, as DOT."""
    taken = taken_edges(record)
    numbers: dict[str, int] = {}
    takers: dict[tuple[str, str, str], list[tuple[str, int]]] = {}  # (source, target, event) -> who, when
    for edge in taken:
        numbers[edge.end] = numbers.get(edge.end, 0) + 1
        takers.setdefault((edge.source, edge.target, edge.event), []).append((edge.end, numbers[edge.end]))
    visited = {edge.source for edge in taken} | {edge.target for edge in taken}

    title = _title(record, "TCP state diagram (RFC 9293)")
    lines = [
        f"digraph {_quote(title)} {{",
        "  graph "
        + _attrs(
            bgcolor="transparent",
            tooltip=title,
            rankdir="TB",
            nodesep=0.14,
            ranksep=0.3,
            newrank="true",
            pad=0.1,
            fontname=FONT,
        ),
        "  node " + _attrs(shape="box", style="rounded", fontname=FONT, fontsize=9.5, height=0.28, margin="0.08,0.03"),
        "  edge " + _attrs(fontname=FONT, fontsize=7, arrowsize=0.6),
    ]
    for node, rfc_name in STATE_NODES.items():
        ink = INK if node in visited else GREY
        lines.append(
            f"  {node} "
            + _attrs(
                label=_state_label(rfc_name),
                color=ink,
                fontcolor=ink,
                style="rounded,bold" if node in visited else "rounded",
            )
        )
    for group in _SAME_RANK:
        # Invisible edges keep the figure's left-to-right order within the row.
        lines.append("  { rank=same; " + " -> ".join(group) + " " + _attrs(style="invis") + " }")

    for source, target, event, action in RFC_EDGES:
        who = takers.get((source, target, ""), [])
        colour = INK if who else GREY
        style = _edge_style(who)
        lines.append(_edge(source, target, label=_edge_label(event, action, who, colour), fontcolor=colour, **style))
    for (source, target, event), who in takers.items():
        if event:  # edges the figure lacks (resets): drawn only when taken, dashed
            lines.append(
                _edge(source, target, label=_edge_label(event, "", who, INK), style="dashed", **_edge_style(who))
            )
    lines += _legend(any(event for _, _, event in takers))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _edge(source: str, target: str, **attributes: object) -> str:
    """An edge; one that runs right to left within a row is written the other way round, pointing back.

    A flat edge in DOT puts its tail left of its head, which would undo the figure's order.
    """
    for group in _SAME_RANK:
        if source in group and target in group and group.index(source) > group.index(target):
            return f"  {target} -> {source} " + _attrs(dir="back", **attributes)
    return f"  {source} -> {target} " + _attrs(**attributes)


def _legend(with_reset: bool) -> list[str]:
    rows = [
        f'<TR><TD><FONT COLOR="{COLOURS[end]}"><B>━━ {END_NAMES[end]}</B></FONT></TD>'
        f'<TD ALIGN="LEFT"><FONT COLOR="{INK}">edges the {end} took, numbered in order</FONT></TD></TR>'
        for end in ENDS
    ]
    if with_reset:
        rows.append(
            f'<TR><TD><FONT COLOR="{INK}">- - -</FONT></TD>'
            f'<TD ALIGN="LEFT"><FONT COLOR="{INK}">a reset: not an edge of the RFC figure</FONT></TD></TR>'
        )
    table = '<<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="1">' + "".join(rows) + "</TABLE>>"
    return [
        "  legend " + _attrs(shape="none", label=table, fontsize=8, margin=0),
        "  { rank=sink; legend; }",
        "  closed_end -> legend " + _attrs(style="invis"),
    ]


def describe_state_path(record: Record) -> str:
    """Each end's path through the states, one sentence per end.

    ``client: CLOSED → SYN_SENT → ESTABLISHED → FIN_WAIT1 → FIN_WAIT2 → CLOSED (by a reset).``
    """
    taken = record_transitions(record)
    sentences = []
    for end in ENDS:
        mine = [t for t in taken if t.end == end]
        states = [display_name(INITIAL_STATES[end])]
        if end == "server" and INITIAL_STATES[end] == "LISTEN":
            states.insert(0, "CLOSED")  # the listener's passive OPEN, as the diagram draws it
        states += [display_name(t.after) + (" (by a reset)" if t.rst else "") for t in mine]
        sentences.append(f"{end}: " + " → ".join(states) + ".")
    return " ".join(sentences)
