"""lab/record.py: what normalising leaves out of the segments, on hand-made segments and a real run."""

from __future__ import annotations

import pytest
from lab.record import Packet, without_probes
from lab.schedule import load_experiment


def segment(sender: str, seq: int, ack: int, length: int = 0, window: int = 0, flags: tuple[str, ...] = ("ACK",)) -> Packet:
    return Packet(time=0.0, sender=sender, flags=list(flags), seq=seq, ack=ack, length=length, window=window, step="s")


def test_a_probe_of_a_shut_window_and_its_answer_are_left_out():
    data = segment("client", 1, 1, length=100, window=65536, flags=("PSH", "ACK"))
    shut = segment("server", 1, 101, window=0)  # the server's window is shut after those 100 bytes
    probe = segment("client", 100, 1, window=65536)  # one byte behind what the server acknowledged
    answer = segment("server", 1, 101, window=0)  # the same ACK again: still shut
    update = segment("server", 1, 101, window=4096)  # the server read: its window opens
    assert without_probes([data, shut, probe, update]) == [data, shut, update]  # an answer that opens is kept
    more = segment("client", 101, 1, length=50, window=65536, flags=("PSH", "ACK"))
    assert without_probes([data, shut, probe, answer, probe, answer, update, more]) == [data, shut, update, more]


def test_segments_that_only_look_like_probes_are_kept():
    data = segment("client", 1, 1, length=100, window=65536, flags=("PSH", "ACK"))
    acked = segment("server", 1, 101, window=0)
    ack_at_the_edge = segment("client", 101, 1, window=65536)  # seq = what was acknowledged: an ordinary ACK
    fin_behind = segment("client", 100, 1, window=65536, flags=("FIN", "ACK"))  # a FIN is never a probe
    assert without_probes([data, acked, ack_at_the_edge, fin_behind]) == [data, acked, ack_at_the_edge, fin_behind]
    # A bare ACK after a probe that acknowledges something else is no answer to it.
    probe = segment("client", 100, 1, window=65536)
    new_ack = segment("server", 1, 101 + 0, window=0)
    later = segment("server", 1, 90, window=0)
    assert without_probes([data, acked, probe, later]) == [data, acked, later]
    assert without_probes([data, acked, probe, new_ack]) == [data, acked]


@pytest.mark.parametrize("run", ["server-not-reading"])
def test_the_lingering_close_probes_are_all_that_normalising_leaves_out(lab_run, run):
    """While a 1 s close() lingers on a shut window, its kernel probes it; the count follows the timer."""
    record = lab_run(load_experiment("linger"), run)
    kept = without_probes(record.packets)
    left_out = [p for p in record.packets if p not in kept]
    assert left_out, "the lingering close() sent no zero-window probe"
    probes = [p for p in left_out if p.sender == "client"]
    answers = [p for p in left_out if p.sender == "server"]
    assert probes and all(p.flags == ["ACK"] and p.length == 0 for p in left_out)
    assert len(answers) <= len(probes) and all(p.window == 0 for p in answers)
    # The ACK that opens the window is kept, whether or not it answers a probe.
    assert any(p.sender == "server" and p.window > 0 and p.step.startswith("server:received") for p in kept)
    assert len(record.normalised()["packets"]) == len(kept)
