"""Each end's TCP state, derived from the segments of one connection (RFC 9293, section 3.3.2).

The kernel's tables say where each end *is* at a snapshot; the segments say
*why* it got there.  This module replays the segments of a run through the
state machine of RFC 9293's Figure 5, one end at a time, and reports every
state change with the segment that caused it::

    for t in transitions(record.packets):
        print(t.end, t.before, "->", t.after, "because it", t.cause)

States are spelled as the tables spell them (``lab/sockets.py``: FIN_WAIT1,
SYN_RECV, CLOSE, ...), so what the tracker derives can be compared with the
kernel's snapshots (``disagreements(record)``); ``RFC_NAMES`` gives the RFC's
names for the diagram.  Standard library only, and pure: no sockets, no I/O.

Two liberties with the RFC, both Linux's behaviour:

* A reset, sent or received, takes the end straight to CLOSE.  The figure
  draws no reset edges at all (its note 3); Linux drops the socket on both
  sides.  Such transitions carry ``rst=True``.
* A segment that acknowledges our FIN *and* carries the peer's FIN, received
  in FIN_WAIT1, gives two transitions (FIN_WAIT1 -> FIN_WAIT2 -> TIME_WAIT),
  as Linux processes the ACK before the FIN; both are edges of the figure,
  where the direct FIN-WAIT-1 -> TIME-WAIT of its note 2 is not drawn.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .record import Packet, Record

ENDS = ("client", "server")

# Where each end starts: the client has no connection yet; the server's
# listening socket has made a passive OPEN (it is the "server" end's origin).
INITIAL_STATES = {"client": "CLOSE", "server": "LISTEN"}

# The tables' spelling (Linux, lab/sockets.py) -> the RFC's name for the state.
RFC_NAMES = {
    "CLOSE": "CLOSED",
    "LISTEN": "LISTEN",
    "SYN_SENT": "SYN-SENT",
    "SYN_RECV": "SYN-RECEIVED",
    "ESTABLISHED": "ESTABLISHED",
    "FIN_WAIT1": "FIN-WAIT-1",
    "FIN_WAIT2": "FIN-WAIT-2",
    "CLOSING": "CLOSING",
    "TIME_WAIT": "TIME-WAIT",
    "CLOSE_WAIT": "CLOSE-WAIT",
    "LAST_ACK": "LAST-ACK",
}


def display_name(state: str) -> str:
    """The state as pages write it: the tables' spelling, but CLOSED for CLOSE.

    No table ever shows CLOSE (a closed socket is not listed), so a reader
    knows the state by the RFC's word.
    """
    return "CLOSED" if state == "CLOSE" else state


@dataclass(frozen=True)
class Transition:
    """One end changed state because of one segment."""

    end: str  # "client" or "server"
    packet_index: int  # index into the packet list given to transitions()
    before: str
    after: str
    cause: str  # "sent FIN", "received ACK of FIN", "received RST", ...
    rst: bool = False  # a reset did it: an edge the RFC's figure does not draw
    when: int = -1  # the segment after which it happened: packet_index, or later (see transitions())
    step: str = ""  # for a change made by a call rather than a segment: the step it happened in

    def __post_init__(self) -> None:
        if self.when < 0:
            object.__setattr__(self, "when", self.packet_index)

    @property
    def rfc_before(self) -> str:
        return RFC_NAMES.get(self.before, self.before)

    @property
    def rfc_after(self) -> str:
        return RFC_NAMES.get(self.after, self.after)


@dataclass
class _End:
    """What the tracker remembers of one end: its state, and where its FIN is."""

    name: str
    state: str
    fin_seq: int | None = None  # the (relative) sequence number our FIN took, once sent


class _Tracker:
    def __init__(self, initial: dict[str, str]) -> None:
        self.ends = {name: _End(name, initial[name]) for name in ENDS}
        self.found: list[Transition] = []

        self.now = 0  # the index of the latest segment sent

    def move(self, end: _End, index: int, after: str, cause: str, rst: bool = False) -> None:
        if end.state != after:
            self.found.append(Transition(end.name, index, end.state, after, cause, rst, self.now))
            end.state = after

    def called_close(self, index: int, end: _End, step: str) -> None:
        """The program closed (or shut down for writing) while its FIN had to wait behind data."""
        after = {"ESTABLISHED": "FIN_WAIT1", "CLOSE_WAIT": "LAST_ACK"}.get(end.state)
        if after:
            cause = "close() with its FIN queued behind unsent data"
            # After the segment before the call; the FIN itself leaves later.
            self.found.append(Transition(end.name, index, end.state, after, cause, when=max(index - 1, 0), step=step))
            end.state = after

    def sent(self, index: int, packet: Packet, end: _End) -> None:
        flags = set(packet.flags)
        if "RST" in flags:
            # Sent from a socket, or by the kernel for a connection it no longer
            # knows (then the end is CLOSE already and nothing changes).
            self.move(end, index, "CLOSE", "sent RST", rst=True)
            return
        if "SYN" in flags:
            if end.state == "CLOSE" and "ACK" not in flags:
                self.move(end, index, "SYN_SENT", "sent SYN")
            elif end.state == "LISTEN":  # the capture missed the SYN; the SYN, ACK proves it came
                self.move(end, index, "SYN_RECV", "sent SYN, ACK")
        if "FIN" in flags:
            # A FIN takes one sequence number, after the segment's data.
            end.fin_seq = packet.seq + packet.length
            if end.state in ("ESTABLISHED", "SYN_RECV"):
                self.move(end, index, "FIN_WAIT1", "sent FIN")
            elif end.state == "CLOSE_WAIT":
                self.move(end, index, "LAST_ACK", "sent FIN")
            # Elsewhere it is a retransmission: the state already says the FIN went.

    def received(self, index: int, packet: Packet, end: _End) -> None:
        flags = set(packet.flags)
        if end.state == "CLOSE" and "SYN" not in flags:
            return  # no connection to change: the kernel answers with a reset, seen as its own segment
        if "RST" in flags:
            if end.state != "LISTEN":  # a listener ignores resets
                self.move(end, index, "CLOSE", "received RST", rst=True)
            return
        if "SYN" in flags:
            if end.state == "LISTEN":
                self.move(end, index, "SYN_RECV", "received SYN")
            elif end.state == "SYN_SENT":
                if "ACK" in flags:
                    self.move(end, index, "ESTABLISHED", "received SYN, ACK")
                    return  # that ACK acknowledged our SYN; nothing more in a handshake segment
                self.move(end, index, "SYN_RECV", "received SYN")  # simultaneous open
        if "ACK" in flags and packet.ack is not None:
            self._acknowledged(index, packet.ack, end)
        if "FIN" in flags:
            self._fin(index, end)

    def _acknowledged(self, index: int, ack: int, end: _End) -> None:
        # Relative numbers: our SYN is 0, so any ack >= 1 covers it; our FIN
        # is covered once the peer acknowledges the number after it.
        if end.state == "SYN_RECV" and ack >= 1:
            self.move(end, index, "ESTABLISHED", "received ACK of SYN")
        if end.fin_seq is None or ack < end.fin_seq + 1:
            return
        if end.state == "FIN_WAIT1":
            self.move(end, index, "FIN_WAIT2", "received ACK of FIN")
        elif end.state == "CLOSING":
            self.move(end, index, "TIME_WAIT", "received ACK of FIN")
        elif end.state == "LAST_ACK":
            self.move(end, index, "CLOSE", "received ACK of FIN")

    def _fin(self, index: int, end: _End) -> None:
        after = {
            "ESTABLISHED": "CLOSE_WAIT",
            "FIN_WAIT1": "CLOSING",  # the peer's FIN crossed ours: ours is not acknowledged yet
            "FIN_WAIT2": "TIME_WAIT",
        }.get(end.state)
        if after:
            self.move(end, index, after, "received FIN")


def transitions(
    packets: Sequence[Packet],
    initial: dict[str, str] | None = None,
    closes: dict[int, list[tuple[str, str]]] | None = None,
) -> list[Transition]:
    """Every state change of both ends, in the order of the segments.

    ``packets`` are the segments of one connection, in the order they were
    seen; ``initial`` is each end's state before the first (by default the
    client CLOSE, the server LISTEN).  A segment may change both ends (the
    sender's change is listed first), or one end twice.  Transitions are
    listed in the order they happened; ``when`` says after which segment.

    ``closes`` adds what no segment shows: ``{i: [("client", "client:closed")]}``
    means the client called ``close()`` or ``shutdown(SHUT_WR)`` (in that step) before segment ``i``
    while its FIN could not leave yet (held behind unsent data).  The RFC
    moves an end at the call ("CLOSE / snd FIN", the FIN queued until the data
    has gone), and so does Linux; see ``record_transitions()``.
    """
    tracker = _Tracker(INITIAL_STATES | (initial or {}))
    delivered_after = _in_flight(packets)
    late: dict[int, list[int]] = {}  # segment -> the segments that reach their receiver just after it is sent
    for index, later in delivered_after.items():
        late.setdefault(later, []).append(index)
    for index, packet in enumerate(packets):
        tracker.now = index
        for end, step in (closes or {}).get(index, []):
            tracker.called_close(index, tracker.ends[end], step)
        tracker.sent(index, packet, tracker.ends[packet.sender])
        for arriving in late.get(index, []):
            tracker.received(arriving, packets[arriving], tracker.ends[packets[arriving].receiver])
        if index not in delivered_after:
            tracker.received(index, packet, tracker.ends[packet.receiver])
    tracker.now = len(packets)
    for end, step in (closes or {}).get(len(packets), []):
        tracker.called_close(len(packets), tracker.ends[end], step)
    return tracker.found


def _in_flight(packets: Sequence[Packet]) -> dict[int, int]:
    """The segments still travelling when their receiver sent its next segment: ``{segment: that one}``.

    A capture sees a segment when it is sent; on loopback it arrives at once,
    and the tracker takes it as received there, unless the receiver's next
    segment proves otherwise: its ACK does not yet cover the SYN, data or FIN.
    That is a simultaneous close (or open): each FIN was sent before the
    other arrived, and each end goes to CLOSING, not CLOSE_WAIT.
    """
    late = {}
    for index, packet in enumerate(packets):
        consumed = packet.length + ("SYN" in packet.flags) + ("FIN" in packet.flags)
        if not consumed or "RST" in packet.flags:
            continue
        reply = next((j for j in range(index + 1, len(packets)) if packets[j].sender == packet.receiver), None)
        if reply is not None and packets[reply].ack is not None and packets[reply].ack < packet.seq + consumed:
            late[index] = reply
    return late


def path(end: str, found: Iterable[Transition], initial: dict[str, str] | None = None) -> list[str]:
    """The states ``end`` went through, from its first: ``["CLOSE", "SYN_SENT", ...]``."""
    states = [(INITIAL_STATES | (initial or {}))[end]]
    states += [t.after for t in found if t.end == end]
    return states


# The kernel changes state at the call (close(), shutdown()), the segments only when the
# FIN leaves.  A FIN queued behind data the peer's zero window holds back has not left:
# the table already says FIN_WAIT1 (or LAST_ACK) while the wire still says ESTABLISHED
# (or CLOSE_WAIT).  The table then tells us of the call, and the tracker takes it in.
_FIN_QUEUED = {("ESTABLISHED", "FIN_WAIT1"), ("CLOSE_WAIT", "LAST_ACK")}


def record_transitions(record: Record) -> list[Transition]:
    """``transitions()`` of the record's segments, with the closes only its tables reveal.

    Where a table lists an end in FIN_WAIT1 (or LAST_ACK) with data still in
    its Send-Q while the segments so far leave it ESTABLISHED (or
    CLOSE_WAIT), the end closed with its FIN queued: that close is placed
    after the step's segments, and the segments are read again (a later FIN
    from the peer then meets FIN_WAIT1: CLOSING, as the kernel says).
    """
    closes: dict[int, list[tuple[str, str]]] = {}
    found = transitions(record.packets)
    for _ in range(len(record.events) + 1):  # each pass adds the closes of one more step, at most
        more = {index: list(ends) for index, ends in closes.items()}
        for label, ends, after in _walk(record, found):
            snapshot = record.snapshot(label)
            for end, tracked in ends.items():
                row = snapshot.row(end) if snapshot is not None else None
                if row is not None and (tracked, row.state) in _FIN_QUEUED and row.send_q > 0:
                    more.setdefault(after, []).append((end, label))
                    break
            else:
                continue
            break  # one close at a time: it changes what the later steps look like
        if more == closes:
            break
        closes = more
        found = transitions(record.packets, closes=closes)
    return found


def _walk(record: Record, found: list[Transition]) -> list[tuple[str, dict[str, str], int]]:
    """Each step's label, each end's state after the step, and the index of the first later segment."""
    by_packet: dict[int, list[Transition]] = {}
    by_step: dict[str, list[Transition]] = {}
    for t in found:
        if t.step:
            by_step.setdefault(t.step, []).append(t)  # made by a call, in that step
        else:
            by_packet.setdefault(t.when, []).append(t)
    states = dict(INITIAL_STATES)
    labels = [event.label for event in record.events] + ["end"]
    walked = []
    index = 0
    for label in labels:
        # The segments of this step are the ones up to its last; ordering in
        # the list is the truth, the step names only cut it into pieces.
        last = max((i for i, p in enumerate(record.packets) if p.step == label), default=index - 1)
        if label == "end":  # and every segment after the last step, whatever step it names
            last = len(record.packets) - 1
        while index <= last:
            for t in by_packet.get(index, []):
                states[t.end] = t.after
            index += 1
        for t in by_step.get(label, []):
            states[t.end] = t.after
        walked.append((label, dict(states), index))
    return walked


def states_at_steps(record: Record) -> dict[str, dict[str, str]]:
    """Each end's state at each step of the run: ``{"client:closed": {"client": "FIN_WAIT2", ...}}``.

    A step's state is the one after the last segment that belongs to it
    (``Packet.step``), or the previous step's when it has none.  The keys are
    the events' labels in run order, then ``"end"`` (the segments after the
    last step).  A segment naming a step the run does not have is counted
    where it lies in the list, with the step before it.
    """
    return {label: ends for label, ends, _ in _walk(record, record_transitions(record))}


def kernel_state(record: Record, at: str, end: str) -> str | None:
    """The state the kernel listed for ``end`` at step ``at``; ``""`` if it listed no socket for it.

    None when the run has no table at that step.
    """
    snapshot = record.snapshot(at)
    if snapshot is None:
        return None
    row = snapshot.row(end)
    return row.state if row is not None else ""


# What a missing row may stand for.  A closed socket is not listed; and the
# server's end is not a socket of its own until a SYN reaches the listener,
# so while it is in LISTEN (as far as the RFC goes) the listener's row stands for it.
_UNLISTED = {"CLOSE", "LISTEN"}


def disagreements(record: Record) -> list[str]:
    """Where the tracked states differ from the kernel's tables, in words; empty when they agree.

    Only steps with a table are compared.  For a run with several
    connections, compare each on its own: ``disagreements(record.for_connection(n))``.
    """
    found = []
    for at, ends in states_at_steps(record).items():
        for end, tracked in ends.items():
            listed = kernel_state(record, at, end)
            if listed is None or listed == tracked or (listed == "" and tracked in _UNLISTED):
                continue
            shown = listed or "no socket"
            found.append(f"at {at}: the segments put the {end} in {display_name(tracked)}, the table lists {shown}")
    return found
