"""lab/diagrams.py and sphinx_lab/pictures.py: the DOT text, its text alternatives, and the Sphinx nodes.

The records are real runs (tests/fixtures/records/, see test_lab_tcp_states.py).
Graphviz's ``dot`` renders every picture once, when it is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace

import pytest
from lab import diagrams
from lab.diagrams import (
    COLOURS,
    RFC_EDGES,
    call_positions,
    describe_sequence,
    describe_state_path,
    packet_label,
    sequence_diagram,
    state_diagram,
    taken_edges,
)
from test_lab_tcp_states import HANDSHAKE, RUNS, load, seg

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")

ATTRS = r"\[(?P<attrs>.*)\]$"


def edges(dot: str) -> list[tuple[str, str, str]]:
    """``(tail, head, attributes)`` of every visible edge statement between two nodes."""
    found = []
    for line in dot.splitlines():
        match = re.match(r"\s*(\w+) -> (\w+) " + ATTRS, line)
        if match and 'style="invis"' not in match["attrs"]:
            found.append((match[1], match[2], match["attrs"]))
    return found


def node_label(dot: str, name: str) -> str:
    match = re.search(rf"^\s*{name} \[label=(.*?), (width|shape)=", dot, re.MULTILINE)
    assert match, name
    return match[1]


# -- Graphviz accepts them, and they fit a phone --------------------------------------------


@needs_dot
@pytest.mark.parametrize("name", RUNS)
@pytest.mark.parametrize("draw", [sequence_diagram, state_diagram])
def test_dot_renders_them_transparent_titled_and_narrow(name, draw):
    record = load(name)
    done = subprocess.run(["dot", "-Tsvg"], input=draw(record), capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    svg = done.stdout.replace("&#45;", "-")  # Graphviz escapes hyphens in SVG text
    width = float(re.search(r'<svg width="([\d.]+)pt"', svg)[1])
    assert width <= 375, f"{width}pt is wider than a phone"  # 375pt = 500 CSS pixels
    what = "TCP segments and states" if draw is sequence_diagram else "TCP state diagram (RFC 9293)"
    assert f"<title>{what}: {record.experiment}, run {record.run}</title>" in svg  # the picture's name
    assert 'fill="white"' not in svg  # no background of its own: the page's shows through


# -- the sequence diagram --------------------------------------------------------------------


@pytest.mark.parametrize("name", RUNS)
def test_one_arrow_per_segment_from_sender_to_receiver_under_its_label(name):
    record = load(name)
    dot = sequence_diagram(record)
    arrows = [(tail, head, attrs) for tail, head, attrs in edges(dot) if "arrowhead" in attrs]
    assert len(arrows) == len(record.packets)
    for (tail, head, attrs), packet in zip(arrows, record.packets, strict=True):
        row = int(tail[1:])
        assert (tail, head) == (f"c{row}", f"s{row}")  # always left to right, so the columns stay put
        assert ('dir="forward"' if packet.sender == "client" else 'dir="back"') in attrs
        assert f'color="{COLOURS[packet.sender]}"' in attrs
        assert diagrams._html(packet_label(packet)) in node_label(dot, f"m{row - 1}")  # the label just above


def test_labels_say_flags_and_length():
    assert packet_label(seg("client", "PSH ACK", 1, 1, 12)) == "PSH, ACK  len 12"
    assert packet_label(seg("server", "FIN ACK", 13, 14)) == "FIN, ACK"


def test_states_are_written_where_they_change():
    dot = sequence_diagram(load("close"))
    boxes = re.findall(r"^\s*([cs])\d+ \[label=\"([A-Z_0-9]+)\", shape=\"box\", style=\"rounded", dot, re.MULTILINE)
    assert [state for side, state in boxes if side == "c"] == [
        "CLOSED",
        "SYN_SENT",
        "ESTABLISHED",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "CLOSED",
    ]
    assert [state for side, state in boxes if side == "s"] == [
        "LISTEN",
        "SYN_RECV",
        "ESTABLISHED",
        "CLOSE_WAIT",
        "CLOSED",
    ]


def test_calls_are_drawn_where_they_were_made():
    record = load("echo-before-shut-rd")
    placed = [(position, event.call) for position, event in call_positions(record)]
    fin = next(i for i, p in enumerate(record.packets) if "FIN" in p.flags)
    assert record.packets[fin].step == "server:accepted"  # tied to the server's step...
    assert (fin, "shutdown(SHUT_WR)") in placed  # ...but drawn before the FIN, on the client's line
    assert placed[0] == (0, "listen()")

    after = [(position, event.label) for position, event in call_positions(load("echo-after-shut-rd"))]
    echo = 7  # the server's echo
    assert [label for position, label in after if position == echo] == [
        "client:shut_rd",
        "client:received",  # its recv() returned b'' before the server even read: it was released first
        "server:received",
        "server:sent",
    ]

    dot = sequence_diagram(record)
    calls = re.findall(r'^\s*([cs])\d+ \[label="([^"]+)", shape="box", style="filled"', dot, re.MULTILINE)
    assert ("c", "shutdown(SHUT_WR)") in calls and ("s", "listen()") in calls
    assert len(calls) == len(record.events)


def test_a_step_without_a_call_is_marked_by_its_name():
    record = load("close")
    record.events[3] = replace(record.events[3], call="")
    assert 'label="closed", shape="box", style="filled"' in sequence_diagram(record)
    assert "The client calls closed." in describe_sequence(record)


def test_describe_sequence_has_a_sentence_per_segment_and_call():
    record = load("close")
    text = describe_sequence(record)
    assert text.count("The client sends") + text.count("The server sends") == len(record.packets)
    assert text.count(" calls ") == len(record.events)
    assert (
        "The client calls close(). The client sends FIN, ACK (seq 13, ack 1): the client goes from ESTABLISHED "
        "to FIN_WAIT1, then the server goes from ESTABLISHED to CLOSE_WAIT." in text
    )
    assert "The client sends RST (seq 14): the client goes from FIN_WAIT2 to CLOSED" in text


# -- the state diagram ------------------------------------------------------------------------


def highlighted(dot: str) -> dict[tuple[str, str], str]:
    """The coloured edges: ``(source, target) -> "client" / "server" / "both"``, dashed ones marked ``+``."""
    found = {}
    for tail, head, attrs in edges(dot):
        colour = re.search(r'(?<!font)color="([^"]+)"', attrs)[1]
        who = {COLOURS["client"]: "client", COLOURS["server"]: "server"}.get(colour)
        if colour == f"{COLOURS['client']}:{COLOURS['server']}":
            who = "both"
        if who:
            # An edge written backwards (dir=back) keeps the figure's order; it goes head -> tail.
            source, target = (head, tail) if 'dir="back"' in attrs else (tail, head)
            found[(source, target)] = who + ("+" if 'style="dashed"' in attrs else "")
    return found


def test_close_run_highlights_each_ends_path_and_the_resets():
    assert highlighted(state_diagram(load("close"))) == {
        ("closed", "syn_sent"): "client",
        ("syn_sent", "estab"): "client",
        ("estab", "fin_wait_1"): "client",
        ("fin_wait_1", "fin_wait_2"): "client",
        ("fin_wait_2", "closed_end"): "client+",  # the reset the client sent: not in the RFC figure
        ("closed", "listen"): "server",
        ("listen", "syn_rcvd"): "server",
        ("syn_rcvd", "estab"): "server",
        ("estab", "close_wait"): "server",
        ("close_wait", "closed_end"): "server+",
    }


def test_shutdown_run_has_no_reset_edges():
    dot = state_diagram(load("echo-before-shut-rd"))
    assert highlighted(dot)[("close_wait", "last_ack")] == "server"
    assert highlighted(dot)[("fin_wait_2", "time_wait")] == "client"
    assert highlighted(dot)[("last_ack", "closed_end")] == "server"
    assert 'style="dashed"' not in dot
    assert "a reset" not in dot  # nor in the legend


def test_every_rfc_edge_is_drawn_once_and_both_ends_show_on_a_shared_edge():
    record = load("close")
    record.packets = HANDSHAKE + [
        seg("client", "FIN ACK", 1, 1),
        seg("server", "FIN ACK", 1, 1),
        seg("client", "ACK", 2, 2),
        seg("server", "ACK", 2, 2),
    ]
    dot = state_diagram(record)
    drawn = edges(dot)
    assert len(drawn) == len(RFC_EDGES)  # no resets here, so no extra edge
    marks = highlighted(dot)
    assert marks[("estab", "fin_wait_1")] == "both"
    assert marks[("fin_wait_1", "closing")] == "both"
    assert marks[("closing", "time_wait")] == "both"
    assert "client 4" in dot and "server 5" in dot  # each end's edges, numbered in order
    assert [edge.end for edge in taken_edges(record)].count("server") == 6  # passive OPEN included


def test_rfc_labels_are_on_the_edges():
    dot = state_diagram(load("close"))
    line = next(attrs for tail, head, attrs in edges(dot) if (tail, head) == ("estab", "close_wait"))
    assert "rcv FIN" in line and "/ snd ACK" in line and "server 4" in line
    assert "snd RST" in dot and "rcv RST" in dot


def test_describe_state_path_names_each_ends_states():
    assert describe_state_path(load("close")) == (
        "client: CLOSED → SYN_SENT → ESTABLISHED → FIN_WAIT1 → FIN_WAIT2 → CLOSED (by a reset). "
        "server: CLOSED → LISTEN → SYN_RECV → ESTABLISHED → CLOSE_WAIT → CLOSED (by a reset)."
    )
    assert describe_state_path(load("echo-before-shut-rd")).endswith("CLOSE_WAIT → LAST_ACK → CLOSED.")


# -- the Sphinx nodes --------------------------------------------------------------------------


def test_figures_are_graphviz_nodes_with_alt_text_and_caption():
    from docutils import nodes
    from sphinx.ext.graphviz import graphviz

    from sphinx_lab.pictures import DIAGRAM_CLASS, sequence_figure, state_figure

    record = load("close")
    figure = sequence_figure(record, "close.md", 12)
    assert isinstance(figure, nodes.figure) and (figure.source, figure.line) == ("close.md", 12)
    picture, caption = figure.children
    assert isinstance(picture, graphviz) and isinstance(caption, nodes.caption)
    assert picture["code"] == sequence_diagram(record)
    assert picture["alt"] == describe_sequence(record)
    assert picture["classes"] == [DIAGRAM_CLASS] and picture["options"] == {}

    bare = state_figure(record, "close.md", 3, caption=None, docname="close")
    assert isinstance(bare, graphviz) and bare["options"] == {"docname": "close"}
    assert bare["alt"] == describe_state_path(record)


def test_alt_text_is_safe_in_an_html_attribute():
    from sphinx_lab.pictures import sequence_figure

    record = load("close")
    record.events[3] = replace(record.events[3], call='close() & "then" <nothing>')
    alt = sequence_figure(record, "x", 1, caption=None)["alt"]
    assert not set('"<>&') & set(alt)


@needs_dot
def test_html_and_text_builders_render_the_figures(make_app, tmp_path):
    (tmp_path / "conf.py").write_text(
        "from docutils.parsers.rst import Directive\n"
        "extensions = ['sphinx.ext.graphviz']\n"
        "graphviz_output_format = 'svg'\n"
        "class Pictures(Directive):\n"
        "    def run(self):\n"
        "        from test_lab_diagrams import load\n"
        "        from sphinx_lab.pictures import sequence_figure, state_figure\n"
        "        record = load('close')\n"
        "        return [sequence_figure(record, 'index.rst', 1), state_figure(record, 'index.rst', 1, caption=None)]\n"
        "def setup(app):\n"
        "    app.add_directive('pictures', Pictures)\n",
        encoding="utf-8",
    )
    (tmp_path / "index.rst").write_text("Pictures\n========\n\n.. pictures::\n", encoding="utf-8")
    built = {}
    for builder in ("html", "text"):
        app = make_app(builder, srcdir=tmp_path, builddir=tmp_path / "_build")
        app.build()
        assert app.warning.getvalue() == ""
        built[builder] = (app.outdir / f"index.{'html' if builder == 'html' else 'txt'}").read_text(encoding="utf-8")
        app.cleanup()  # a second app in one process: let it register its nodes afresh
    html = built["html"]
    assert html.count('type="image/svg+xml" class="graphviz lab-diagram"') == 2
    assert "TCP segments, the programs" in html  # the caption
    assert "client: CLOSED → SYN_SENT" in html  # the state diagram's alternative text
    assert "[graph: The client starts CLOSED" in built["text"]
