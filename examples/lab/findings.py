"""Findings: claims about a run, written so that a machine can check them against the record.

A page states a finding in words and backs it with one or more checks, one
per line.  The words are for the reader; the checks are what the build holds
against the capture, so a page cannot go on claiming what the kernel no longer
does.  The check language:

``state AT ROLE STATE [recv-q N] [send-q N] [expires N|none]``
    At snapshot AT (the step label it was taken at, e.g. ``client:closed``,
    or ``end`` for the final one) the socket playing ROLE (``listener``,
    ``server`` or ``client``) is in STATE, with those queue sizes if given.
    STATE ``gone`` means no such socket exists any more.  ``expires N``: the
    kernel will drop the socket by itself within N seconds (the TIME_WAIT
    timer, rounded up); ``expires none``: no such timer runs for it.

``fact STEP NAME = VALUE``
    When the program reached STEP (``server:received#2`` is the second
    ``received`` of the server) it recorded NAME equal to VALUE.  VALUE is a
    Python literal (``b''``, ``12``) or, for a recorded exception, its errno
    name (``EBADF``) or type name (``ConnectionResetError``).

``fact STEP NAME in LO..HI``
    The number NAME recorded at STEP lies between LO and HI (inclusive).
    This is how a duration is claimed: a program measures it in milliseconds
    (a fact named ``*_ms``, which normalising leaves out, since its value is
    the machine's) and the finding states the range its words promise, e.g.
    ``fact client:closed waited_ms in 30..500`` for "blocks until the ACK".

``prints PROGRAM "LINE"``
    PROGRAM printed LINE (a whole line of its standard output).

``exits PROGRAM N``
    PROGRAM exited with status N.

``packets STEP = ROLE FLAGS [len N], ROLE FLAGS [len N], ...``
    The segments tied to STEP (those seen between the previous snapshot and
    STEP's) are exactly these, in this order: ROLE is the sender (``client``
    or ``server``), FLAGS the flags joined by ``+`` (``FIN+ACK``).
    ``packets STEP = none``: nothing crossed the wire at that step.

``packet STEP ROLE FLAGS [len N]`` / ``no-packet STEP ROLE FLAGS``
    Among STEP's segments there is (is no) segment from ROLE with exactly
    FLAGS.  STEP ``any`` means the whole run.

``gap STEP ROLE FLAGS [len N] -> ROLE FLAGS [len N] >= N ms``
    The time from the first of STEP's segments (``any``: the run's) that
    matches the first pattern to the next later one that matches the second
    is at least N milliseconds (also ``<= N ms`` and ``in LO..HI ms``), e.g.
    ``gap client:closed client FIN+ACK -> server ACK >= 30 ms``: the FIN's
    ACK waits for the delayed-ACK timer.  Times are the capture's own
    (the kernel's timestamps of the frames), to the microsecond.

A packet (or gap) check cannot be held where no packets could be captured (no
network namespace, no root): it is then reported as not checked, with the
reason, rather than as true or false.

Words may be quoted as in a shell (``fact "client:recv failed" error = EBADF``).
"""

from __future__ import annotations

import ast
import shlex
from dataclasses import dataclass

from .record import FLAG_ORDER, Packet, Record


class CheckSyntaxError(ValueError):
    """A check line that does not follow the language above."""


@dataclass(frozen=True)
class Check:
    text: str
    kind: str
    args: tuple[str, ...]
    value: object = None


@dataclass(frozen=True)
class Outcome:
    check: Check
    holds: bool
    observed: str  # what the record shows, in words
    unchecked: str = ""  # set: the record cannot tell (why); ``holds`` means nothing then


@dataclass(frozen=True)
class SegmentPattern:
    """``client FIN+ACK len 0``: who sent it, its exact flags, and its length if given."""

    sender: str
    flags: frozenset[str]
    length: int | None = None

    def matches(self, packet: Packet) -> bool:
        return (
            packet.sender == self.sender
            and frozenset(packet.flags) == self.flags
            and (self.length is None or packet.length == self.length)
        )


@dataclass(frozen=True)
class Bound:
    """``>= 30``, ``<= 5``, ``in 30..500``: the numbers a duration or count may take (inclusive)."""

    low: float | None
    high: float | None

    def admits(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in {self.low:g}..{self.high:g}"
        return f">= {self.low:g}" if self.low is not None else f"<= {self.high:g}"


def _number(text: str, word: str) -> float:
    try:
        return float(word)
    except ValueError:
        raise CheckSyntaxError(f"{text!r}: {word!r} is not a number") from None


def _parse_bound(text: str, words: list[str]) -> Bound:
    """``>= N``, ``<= N`` or ``in LO..HI`` (the words after the subject of a check)."""
    if len(words) == 2 and words[0] in (">=", "<="):
        number = _number(text, words[1])
        return Bound(number, None) if words[0] == ">=" else Bound(None, number)
    if len(words) == 2 and words[0] == "in" and words[1].count("..") == 1:
        low, high = (_number(text, word) for word in words[1].split(".."))
        if low > high:
            raise CheckSyntaxError(f"{text!r}: the range {words[1]} is empty (LO must not exceed HI)")
        return Bound(low, high)
    raise CheckSyntaxError(f"{text!r}: a bound is written '>= N', '<= N' or 'in LO..HI'")


@dataclass(frozen=True)
class Gap:
    """``client FIN+ACK -> server ACK >= 30 ms``: two segments, and the time between them."""

    first: SegmentPattern
    then: SegmentPattern
    milliseconds: Bound


def _parse_gap(text: str, words: list[str]) -> Gap:
    if "->" not in words or words[-1] != "ms" or len(words) < 4:
        raise CheckSyntaxError(f"{text!r}: expected 'gap STEP ROLE FLAGS [len N] -> ROLE FLAGS [len N] >= N ms'")
    arrow = words.index("->")
    before, after = words[:arrow], words[arrow + 1 : -1]
    if len(after) < 4:
        raise CheckSyntaxError(f"{text!r}: after '->' come a segment and a bound, e.g. 'server ACK >= 30 ms'")
    return Gap(_parse_segment(text, before), _parse_segment(text, after[:-2]), _parse_bound(text, after[-2:]))


def _parse_segment(text: str, words: list[str]) -> SegmentPattern:
    if len(words) not in (2, 4) or (len(words) == 4 and (words[2] != "len" or not words[3].isdigit())):
        raise CheckSyntaxError(f"{text!r}: a segment is written 'ROLE FLAGS [len N]', e.g. 'client FIN+ACK'")
    sender, flags = words[0], words[1].upper().split("+")
    if sender not in ("client", "server"):
        raise CheckSyntaxError(f"{text!r}: a segment's sender is client or server, not {sender!r}")
    unknown = [flag for flag in flags if flag not in FLAG_ORDER]
    if unknown:
        raise CheckSyntaxError(f"{text!r}: unknown TCP flag {unknown[0]!r} (flags: {', '.join(FLAG_ORDER)})")
    return SegmentPattern(sender, frozenset(flags), int(words[3]) if len(words) == 4 else None)


def _show_packets(packets: list[Packet]) -> str:
    if not packets:
        return "no segment"
    return ", ".join(f"{p.sender} {'+'.join(p.flags)}" + (f" len {p.length}" if p.length else "") for p in packets)


def parse_check(line: str) -> Check:
    text = line.strip()
    head, sep, tail = text.partition(" = ")
    try:
        words = tuple(shlex.split(head))
    except ValueError as error:
        raise CheckSyntaxError(f"{text!r}: {error}") from error
    if not words:
        raise CheckSyntaxError("empty check")
    kind, args = words[0], words[1:]
    if kind == "state":
        if len(args) < 3 or len(args) % 2 == 0:
            raise CheckSyntaxError(f"{text!r}: expected 'state AT ROLE STATE [recv-q N] [send-q N]' (and optionally 'expires N')")
        for name, number in zip(args[3::2], args[4::2]):
            valid = number.isdigit() or (name == "expires" and number == "none")
            if name not in ("recv-q", "send-q", "expires") or not valid:
                raise CheckSyntaxError(
                    f"{text!r}: after the state only 'recv-q N' and 'send-q N' may follow, and 'expires N' or 'expires none'"
                )
        if args[1] not in ("listener", "server", "client"):
            raise CheckSyntaxError(f"{text!r}: role must be listener, server or client, not {args[1]!r}")
        return Check(text, kind, args)
    if kind == "fact" and not sep and len(args) == 4 and args[2] == "in":
        return Check(text, "fact-range", args[:2], _parse_bound(text, list(args[2:])))
    if kind == "fact":
        if not sep or len(args) != 2:
            raise CheckSyntaxError(f"{text!r}: expected 'fact STEP NAME = VALUE' or 'fact STEP NAME in LO..HI'")
        try:
            value: object = ast.literal_eval(tail.strip())
        except (ValueError, SyntaxError):
            value = tail.strip()  # a bare word: an errno or exception name
        return Check(text, kind, args, value)
    if kind == "packets":
        if not sep or len(args) != 1:
            raise CheckSyntaxError(f"{text!r}: expected 'packets STEP = ROLE FLAGS, ROLE FLAGS, ...' or '= none'")
        items = [] if tail.strip() == "none" else [item.split() for item in tail.split(",")]
        return Check(text, kind, args, tuple(_parse_segment(text, words) for words in items))
    if kind in ("packet", "no-packet"):
        if sep or len(args) < 3:
            raise CheckSyntaxError(f"{text!r}: expected '{kind} STEP ROLE FLAGS [len N]'")
        return Check(text, kind, args[:1], _parse_segment(text, list(args[1:])))
    if kind == "gap":
        if sep or len(args) < 2:
            raise CheckSyntaxError(f"{text!r}: expected 'gap STEP ROLE FLAGS [len N] -> ROLE FLAGS [len N] >= N ms'")
        return Check(text, kind, args[:1], _parse_gap(text, list(args[1:])))
    if kind == "prints" and len(args) == 2:
        return Check(text, kind, args)
    if kind == "exits" and len(args) == 2 and args[1].lstrip("-").isdigit():
        return Check(text, kind, args)
    raise CheckSyntaxError(
        f"{text!r}: a check starts with state, fact, prints, exits, packets, packet, no-packet or gap "
        "(see the findings language in lab/findings.py)"
    )


def _describe_row(record: Record, at: str, role: str) -> tuple[str, dict[str, object] | None]:
    snapshot = record.snapshot(at)
    if snapshot is None:
        known = ", ".join(s.at for s in record.snapshots())
        raise CheckSyntaxError(f"run {record.run!r} has no snapshot at {at!r} (it has: {known})")
    row = snapshot.row(role)
    if row is None:
        return f"at {at} there is no {role} socket", None
    timer = "" if row.expires is None else f", dropped by the kernel within {row.expires} s"
    return (
        f"at {at} the {role} is {row.state} with Recv-Q {row.recv_q}, Send-Q {row.send_q}{timer}",
        {"state": row.state, "recv-q": row.recv_q, "send-q": row.send_q, "expires": row.expires},
    )


def _fact_matches(recorded: object, expected: object) -> bool:
    if isinstance(recorded, dict) and "bytes" in recorded:
        return isinstance(expected, bytes) and repr(expected) == recorded["bytes"]
    if isinstance(recorded, dict) and "exception" in recorded:
        exception = recorded["exception"]
        return expected in (exception.get("errno_name"), exception.get("type"), exception.get("errno"))
    return recorded == expected


def _show_fact(recorded: object) -> str:
    if isinstance(recorded, dict) and "bytes" in recorded:
        return str(recorded["bytes"])
    if isinstance(recorded, dict) and "exception" in recorded:
        e = recorded["exception"]
        return f"{e['type']} [Errno {e.get('errno')}] {e.get('errno_name')}"
    return repr(recorded)


def evaluate(check: Check, record: Record) -> Outcome:
    """Hold one check against a record.  A reference to something absent raises CheckSyntaxError."""
    if check.kind == "state":
        at, role, state = check.args[:3]
        observed, row = _describe_row(record, at, role)
        if state == "gone":
            return Outcome(check, row is None, observed)
        wanted = {"state": state} | {
            name: None if n == "none" else int(n) for name, n in zip(check.args[3::2], check.args[4::2])
        }
        holds = row is not None and all(row[key] == value for key, value in wanted.items())
        return Outcome(check, holds, observed)
    if check.kind in ("fact", "fact-range"):
        label, name = check.args
        event = record.event(label)
        if event is None:
            known = ", ".join(e.label for e in record.events)
            raise CheckSyntaxError(f"run {record.run!r} has no step {label!r} (it has: {known})")
        if name not in event.facts:
            return Outcome(check, False, f"step {label} recorded no {name!r} (it recorded: {', '.join(event.facts) or 'nothing'})")
        recorded = event.facts[name]
        observed = f"at {label}, {name} was {_show_fact(recorded)}"
        if check.kind == "fact":
            return Outcome(check, _fact_matches(recorded, check.value), observed)
        number = isinstance(recorded, (int, float)) and not isinstance(recorded, bool)
        return Outcome(check, number and check.value.admits(recorded), observed)  # type: ignore[union-attr]
    if check.kind in ("packets", "packet", "no-packet", "gap"):
        return _evaluate_packets(check, record)
    program = check.args[0]
    if program not in record.programs:
        raise CheckSyntaxError(f"no program {program!r} (programs: {', '.join(record.programs)})")
    result = record.programs[program]
    if check.kind == "prints":
        line = check.args[1]
        holds = line in result.stdout.splitlines()
        return Outcome(check, holds, f"{program} printed {len(result.stdout.splitlines())} lines" + ("" if holds else f", none of them {line!r}"))
    status = int(check.args[1])
    return Outcome(check, result.exit_status == status, f"{program} exited with status {result.exit_status}")


def _evaluate_packets(check: Check, record: Record) -> Outcome:
    label = check.args[0]
    if label != "any" and label != "end" and record.event(label) is None:
        known = ", ".join(e.label for e in record.events)
        raise CheckSyntaxError(f"run {record.run!r} has no step {label!r} (it has: {known}, end, any)")
    if not record.packets and record.packets_source.startswith("no packet capture"):
        return Outcome(check, False, "", unchecked=record.packets_source)
    packets = [p for p in record.packets if label == "any" or p.step == label]
    if check.kind == "gap":
        return _evaluate_gap(check, check.value, packets, label)  # type: ignore[arg-type]
    observed = f"at {label}: {_show_packets(packets)}"
    if check.kind == "packets":
        patterns: tuple[SegmentPattern, ...] = check.value  # type: ignore[assignment]
        holds = len(packets) == len(patterns) and all(pat.matches(p) for pat, p in zip(patterns, packets))
        return Outcome(check, holds, observed)
    found = any(check.value.matches(p) for p in packets)  # type: ignore[union-attr]
    return Outcome(check, found if check.kind == "packet" else not found, observed)


def _evaluate_gap(check: Check, gap: Gap, packets: list[Packet], label: str) -> Outcome:
    first = next((i for i, p in enumerate(packets) if gap.first.matches(p)), None)
    if first is None:
        return Outcome(check, False, f"at {label} no segment is {_show_pattern(gap.first)} ({_show_packets(packets)})")
    then = next((p for p in packets[first + 1 :] if gap.then.matches(p)), None)
    if then is None:
        return Outcome(check, False, f"at {label} no {_show_pattern(gap.then)} follows the {_show_pattern(gap.first)}")
    # To the microsecond: finer would compare float noise, not the kernel's timestamps.
    milliseconds = round((then.time - packets[first].time) * 1000, 3)
    observed = f"at {label}, {_show_pattern(gap.then)} came {milliseconds:.3f} ms after {_show_pattern(gap.first)}"
    return Outcome(check, gap.milliseconds.admits(milliseconds), observed)


def _show_pattern(pattern: SegmentPattern) -> str:
    flags = "+".join(flag for flag in FLAG_ORDER if flag in pattern.flags)
    return f"{pattern.sender} {flags}" + ("" if pattern.length is None else f" len {pattern.length}")
