"""The extension in real Sphinx builds of the tiny projects in tests/roots/, on real sockets.

Each test copies its project (``srcdir=``) so that its default cache, next to
its output folder, is its own; tests that need a shared cache say so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from docutils import nodes

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.testing.util import SphinxTestApp

ROOTS = Path(__file__).resolve().parent / "roots"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
REAL = {"lab_examples_dir": str(EXAMPLES)}


@pytest.fixture(scope="session")
def rootdir() -> Path:
    return ROOTS


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)  # without the terminal colours


def warnings_of(app: SphinxTestApp) -> str:
    return plain(app.warning.getvalue())


def status_of(app: SphinxTestApp) -> str:
    return plain(app.status.getvalue())


def table(app: SphinxTestApp, title: str, docname: str = "index") -> list[list[str]]:
    """The rows of the table with that title, as text cells."""
    doctree = app.env.get_doctree(docname)
    for found in doctree.findall(nodes.table):
        if found[0].astext() == title:
            return [[entry.astext() for entry in row] for row in found.findall(nodes.row)]
    raise AssertionError(f"no table {title!r}")


def lab_lines(status: str) -> list[str]:
    """The lab's progress lines (not its summing up at the end)."""
    return [line for line in status.splitlines() if line.startswith("lab:") and not SUMMARY.match(line)]


SUMMARY = re.compile(r"lab: \d+ runs?: ")


@pytest.mark.sphinx("html", testroot="lab", srcdir="lab-html", confoverrides=REAL)
def test_the_notes_story_is_in_the_page(app: SphinxTestApp) -> None:
    app.build()
    assert warnings_of(app) == ""
    html = (app.outdir / "index.html").read_text()

    # The table after the client's close(): the server's end in CLOSE_WAIT, 12 bytes + FIN unread.
    rows = table(app, "Table 2: After the client's close()")  # numbered in the run's order
    assert rows[0] == ["Proto", "Recv-Q", "Send-Q", "Local Address", "Foreign Address", "State", "Who"]
    server = next(row for row in rows if row[-1] == "server")
    assert (server[1], server[5]) == ("13", "CLOSE_WAIT")
    assert next(row for row in rows if row[-1] == "client")[5] == "FIN_WAIT2"
    assert "<span class=\"caption-text\">Table 2: After the client's close()</span>" in html

    # The server's second recv() returned b'': the FIN.
    assert "data: b''" in html
    # Tabs are sphinx-tabs' own; the note's outputs are tabs too.
    for title in ("Client (this build)", "Server (this build)", "Client (the note)", "Server (the note)"):
        assert f">{title}</button>" in html
    assert "socket.error: [Errno 9] Bad file descriptor" in html  # from note-client.txt
    assert '<span class="caption-text">client-close.py</span>' in html
    assert "socket states from netlink sock_diag (what ss reads)" in html
    assert '<div class="finding holds admonition" id="finding-' in html
    assert "Holds in this build's capture of close/close (2 checks)." in html
    # What the reader is looking at, and the run's record to download, served from _downloads.
    assert re.search(r'<p class="lab-provenance (live|cache)">Captured live (while this page was built|on this host) \(Linux ', html)
    links = re.findall(r'<a class="reference download internal" download="" href="(_downloads/[0-9a-f]+/[^"]+\.json)">', html)
    assert len(links) == 2, links  # one per run shown
    served = json.loads((app.outdir / links[0]).read_text())
    assert (served["experiment"], served["run"]) == ("close", "close")
    pcaps = re.findall(r'<a class="reference download internal" download="" href="(_downloads/[0-9a-f]+/[^"]+\.pcap)">', html)
    assert len(pcaps) == 2, pcaps
    assert (app.outdir / pcaps[0]).read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")  # libpcap
    # The whole run's tables, the final one included, for the shutdown run too.
    assert table(app, "Table 5: Both programs have finished")
    progress = lab_lines(status_of(app))
    assert len(progress) == 2 and all(re.fullmatch(r"lab: capturing \S+ \.\.\. done in [\d.]+ s", line) for line in progress)
    # The Evidence page, made by the build: every run, linked to its block, with its files.
    evidence = (app.outdir / "evidence.html").read_text()
    for run, anchor in (("close/close", "run-close-close"), ("shutdown/echo-after-shut-rd", "run-shutdown-echo-after-shut-rd")):
        assert f'<code class="docutils literal notranslate"><span class="pre">{run}</span></code>' in evidence
        assert f'href="index.html#{anchor}"' in evidence and f'id="{anchor}"' in html
    assert "captured live" in evidence and "1 holds, 0 fails, 0 not checked" in evidence
    assert evidence.count('href="_downloads/') == 4  # each run's JSON and pcap
    # The Findings page: the finding under its page and section, linked, with its verdict and run.
    assert re.search(r'<p class="rubric">close\(\)</p>', evidence)
    assert re.search(r'<strong>Holds</strong>: <a class="reference internal" href="index.html#finding-[^"]+">After the client', evidence)
    summary = [line for line in status_of(app).splitlines() if SUMMARY.match(line)]
    assert summary == ["lab: 2 runs: 2 captured live, 0 from the cache, 0 recorded; 1 findings: 1 hold, 0 fail, 0 not checked"]
    # Only standard nodes (and sphinx-tabs') are left: no placeholder reached a writer.
    doctree = app.env.get_doctree("index")
    assert not [n for n in doctree.findall(nodes.Element) if n.__class__.__module__.startswith("sphinx_lab")]


@pytest.mark.sphinx("html", testroot="lab-myst", srcdir="lab-myst", confoverrides=REAL)
def test_myst_page(app: SphinxTestApp) -> None:
    app.build()
    html = (app.outdir / "index.html").read_text()
    assert ">Server (this build)</button>" in html and ">Client</button>" in html
    warnings = warnings_of(app)
    # The failing check and the unreadable one, each at its own line of index.md.
    assert re.search(r"index\.md:7: WARNING: finding does not hold: .*\n.*ESTABLISHED.* \(line 11\) fails: .*CLOSE_WAIT", warnings)
    assert re.search(r"index\.md:12: WARNING: bad check in finding .*'bogus check'.*\[lab\.check-syntax\]", warnings)
    assert '<div class="finding fails admonition" id="finding-' in html
    # A fence MyST could not read as a directive is not silently left as text.
    assert re.search(r"index\.md:15: WARNING: this ```\{finding\} fence was read as plain text.*\[lab\.markup\]", warnings)


@pytest.mark.sphinx("html", testroot="lab-errors", srcdir="lab-errors", confoverrides=REAL)
def test_mistakes_are_warned_about_where_they_are(app: SphinxTestApp) -> None:
    app.build()  # the build goes on
    warnings = warnings_of(app)
    expected = [
        (4, r"unknown :show: value 'outputz'.*\[lab\.option\]"),
        (7, r"no experiment 'nosuch'.*\[lab\.capture\]"),
        (9, r"experiment 'close' has no run 'nosuch'.*\[lab\.capture\]"),
        (13, r":note-client: file not found: missing\.txt \[lab\.option\]"),
        (17, r"finding does not hold: \"The server's end is ESTABLISHED.*\n.*\(line 20\) fails: at client:closed the server is CLOSE_WAIT"),
        (25, r"'state client:closed server': expected .*\[lab\.check-syntax\]"),
        (26, r"has no snapshot at 'client:nowhere'.*\[lab\.check-syntax\]"),
    ]
    for line, message in expected:
        assert re.search(rf"{re.escape(str(app.srcdir / 'index.rst'))}:{line}: WARNING: .*{message}", warnings), line
    assert warnings.count("WARNING") == len(expected)  # one each, not one per placeholder
    html = (app.outdir / "index.html").read_text()
    # What could not be shown says so (8 parts of 'nosuch': outputs, states and both pictures, 2 of the unknown run), and the page was written.
    assert html.count('class="lab-error admonition error"') == 10
    assert "Not checked: 2 of its 3 checks could not be used" in html


@pytest.mark.sphinx("html", testroot="lab-errors", srcdir="lab-errors-unknown-option", confoverrides=REAL)
def test_unknown_option_names_file_and_line(app: SphinxTestApp) -> None:
    index = Path(app.srcdir) / "index.rst"
    text = index.read_text()
    index.write_text(text + "\n.. experiment:: close\n   :shwo: states\n")
    line = len(text.splitlines()) + 2
    app.build()
    assert re.search(rf"index\.rst:{line}: ERROR: Error in \"experiment\" directive:\s+unknown option: \"shwo\"", warnings_of(app))


@pytest.mark.sphinx("html", testroot="lab-broken", srcdir="lab-broken")
def test_failing_example(app: SphinxTestApp) -> None:
    app.build()
    warnings = warnings_of(app)
    assert "index.rst:4: WARNING: capture of crash/boom failed" in warnings
    assert "client-crash.py --run boom --json" in warnings and "--quiet" in warnings  # the command
    assert "exit status: 1" in warnings
    assert "the broken client starts" in warnings and "KeyError: 'port'" in warnings  # the output's tails
    assert warnings.count("WARNING") == 1 and warnings.rstrip().endswith("[lab.capture]")
    assert "failed" in lab_lines(status_of(app))[0]
    html = (app.outdir / "index.html").read_text()
    assert "lab-error" in html  # the page says so too, and was written
    captures = Path(app.outdir).parent / "captures"
    assert not captures.exists() or not list(captures.iterdir())  # a failure is never cached
    assert not _processes_running_from(Path(app.srcdir))


def _processes_running_from(folder: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(folder) in command:
                found.append(int(entry.name))
    return found


@pytest.mark.sphinx("html", testroot="lab", srcdir="lab-execute-off", confoverrides=REAL | {"lab_execute": False})
def test_lab_execute_off_runs_nothing(app: SphinxTestApp) -> None:
    app.build()
    assert warnings_of(app) == ""
    assert lab_lines(status_of(app)) == []
    assert not (Path(app.outdir).parent / "captures").exists()
    html = (app.outdir / "index.html").read_text()
    assert "Not captured: lab_execution_mode is off." in html
    assert '<span class="caption-text">client-close.py</span>' in html  # sources still shown
    assert "socket.error: [Errno 9] Bad file descriptor" in html  # and the note's outputs
    assert '<div class="finding unchecked admonition" id="finding-' in html and "Not checked: lab_execution_mode is off." in html


def test_second_build_takes_the_cache(make_app: Callable[..., SphinxTestApp], tmp_path: Path) -> None:
    conf = REAL | {"lab_cache_dir": str(tmp_path / "captures")}
    for build, outcome in ((1, "capturing"), (2, "from cache")):
        srcdir = tmp_path / f"src{build}"  # a new project and env each time: only the cache is shared
        shutil.copytree(ROOTS / "test-lab", srcdir)
        app = make_app("html", srcdir=srcdir, confoverrides=conf)
        app.build()
        lines = lab_lines(status_of(app))
        assert len(lines) == 2 and all(outcome in line for line in lines), lines
        assert warnings_of(app) == ""
        app.cleanup()  # a second app in one process: let it register its nodes afresh
    assert len(list((tmp_path / "captures").glob("*.json"))) == 2  # one record each (beside its pcap)


def test_a_capture_whose_wire_and_tables_disagree_is_not_drawn_silently(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    """The pictures replay the segments; a capture missing one (here: the ACK of the client's FIN) is flagged."""
    conf = REAL | {"lab_cache_dir": str(tmp_path / "captures")}
    for build in (1, 2):
        srcdir = tmp_path / f"src{build}"
        shutil.copytree(ROOTS / "test-lab", srcdir)
        app = make_app("html", srcdir=srcdir, confoverrides=conf)
        app.build()
        app.cleanup()
        if build == 1:
            assert warnings_of(app) == ""
            for cached in (tmp_path / "captures").glob("*.json"):
                record = json.loads(cached.read_text())
                if record["run"] == "close":
                    record["packets"] = [
                        p for p in record["packets"] if not (p["step"] == "client:closed" and p["sender"] == "server")
                    ]
                    cached.write_text(json.dumps(record))
    warnings = warnings_of(app)
    assert re.search(
        r"index\.rst:\d+: WARNING: close/close: the segments and the tables disagree: at client:closed: the segments "
        r"put the client in FIN_WAIT1, the table lists FIN_WAIT2 \[lab\.diagram\]",
        warnings,
    ), warnings
    assert warnings.count("[lab.diagram]") == 1  # once, at the first of the run's two pictures


def test_rebuilds_run_only_what_changed(make_app: Callable[..., SphinxTestApp], tmp_path: Path) -> None:
    examples = tmp_path / "examples"  # a copy: this test edits an example
    shutil.copytree(EXAMPLES, examples, ignore=shutil.ignore_patterns("__pycache__"))
    srcdir = tmp_path / "src"
    shutil.copytree(ROOTS / "test-lab-pages", srcdir)
    app = make_app("html", srcdir=srcdir, confoverrides={"lab_examples_dir": str(examples)})

    def build() -> tuple[list[str], list[str]]:
        """The lab's lines and the pages read, in this build only."""
        mark = len(status_of(app))
        app.build()
        status = status_of(app)[mark:]
        return [line.split(" ... ")[0] for line in lab_lines(status)], re.findall(r"reading sources\.\.\. \[[ \d]+%\] (\S+)", status)

    ran, _ = build()
    assert sorted(ran) == ["lab: capturing close/close", "lab: capturing shutdown/echo-before-shut-rd"]
    assert build() == ([], [])  # nothing changed: nothing re-read, nothing run
    # and the summing up says so, rather than claim the last build's live captures as this one's
    last = [line for line in status_of(app).splitlines() if SUMMARY.match(line)][-1]
    assert last.startswith("lab: 2 runs: 0 captured live, 0 from the cache, 0 recorded, 2 on pages unchanged since the last build; ")

    client = examples / "client-shutdown.py"
    client.write_text(client.read_text() + "\n# an edit\n")
    assert build() == (["lab: capturing shutdown/echo-before-shut-rd"], ["shutdown"])
    assert warnings_of(app) == ""


@pytest.mark.sphinx("text", testroot="lab", srcdir="lab-text", confoverrides=REAL)
def test_text_builder(app: SphinxTestApp) -> None:
    app.build()
    assert warnings_of(app) == ""
    text = (app.outdir / "index.txt").read_text()
    assert re.search(r"\| tcp +\| 13 +\| 0 +\| \S+ +\| \S+ +\| CLOSE_WAIT +\| server", text)
    assert "data: b''" in text


@pytest.mark.sphinx("latex", testroot="lab", srcdir="lab-latex", confoverrides=REAL)
def test_latex_builder(app: SphinxTestApp) -> None:
    app.build()
    assert warnings_of(app) == ""
    tex = next(Path(app.outdir).glob("*.tex")).read_text()
    assert r"CLOSE\_WAIT" in tex and "After the client" in tex


@pytest.mark.sphinx("html", testroot="lab-stands", srcdir="lab-stands", confoverrides=REAL)
def test_stands_labels_say_where_an_unchecked_sentence_comes_from(app: SphinxTestApp) -> None:
    app.build()
    labels = [node for node in app.env.get_doctree("index").findall(nodes.inline) if "lab-stands" in node["classes"]]
    assert [(node["classes"], node.astext()) for node in labels] == [
        (["lab-stands", "lab-stands-source"], "read in the kernel source: tcp_close() in net/ipv4/tcp.c"),
        (["lab-stands", "lab-stands-measured"], "measured outside the lab: tools/race-simultaneous-close.py, 76 of 80 runs"),
    ]
    warnings = warnings_of(app)
    index = re.escape(str(app.srcdir / "index.md"))
    for line, text in ((7, "rumour: a colleague said so"), (9, "source")):
        assert re.search(rf"{index}:{line}: WARNING: {{stands}}`{re.escape(text)}`: write KIND: DETAIL.*\[lab\.stands\]", warnings), line
    html = (app.outdir / "index.html").read_text(encoding="utf-8")
    assert '<span class="lab-stands lab-stands-source">read in the kernel source: <code' in html
