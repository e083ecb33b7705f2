"""The execution modes (lab_execution_mode): which wins, what each runs, what a host that cannot capture gets."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sphinx.errors import ConfigError

from sphinx_lab import host

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sphinx.testing.util import SphinxTestApp

ROOTS = Path(__file__).resolve().parent / "roots"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
REAL = {"lab_examples_dir": str(EXAMPLES)}


@pytest.fixture(scope="session")
def rootdir() -> Path:
    return ROOTS


@pytest.fixture(autouse=True)
def fresh_probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test probes the host afresh (the probe is cached per process), with no mode from outside."""
    monkeypatch.delenv("LAB_EXECUTION_MODE", raising=False)
    monkeypatch.delenv("LAB_ISOLATION", raising=False)
    host.probe_host.cache_clear()
    yield
    host.probe_host.cache_clear()


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def project(tmp_path: Path, name: str = "src") -> Path:
    srcdir = tmp_path / name
    shutil.copytree(ROOTS / "test-lab", srcdir)
    return srcdir


def test_a_bad_mode_names_the_good_ones(make_app: Callable[..., SphinxTestApp], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"-D lab_execution_mode is 'sometimes'; choose one of: auto, force, replay, off"):
        make_app("html", srcdir=project(tmp_path), confoverrides=REAL | {"lab_execution_mode": "sometimes"})


def test_the_environment_is_checked_too(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_EXECUTION_MODE", "replya")
    with pytest.raises(ConfigError, match=r"\$LAB_EXECUTION_MODE is 'replya'; choose one of: auto, force, replay, off"):
        make_app("html", srcdir=project(tmp_path), confoverrides=REAL)


def test_command_line_beats_environment_beats_conf_py(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srcdir = project(tmp_path)
    (srcdir / "conf.py").write_text('extensions = ["sphinx_lab"]\nlab_execution_mode = "force"\n')
    assert make_app("html", srcdir=srcdir, confoverrides=REAL).config.lab_execution_mode == "force"
    monkeypatch.setenv("LAB_EXECUTION_MODE", "replay")
    assert make_app("html", srcdir=srcdir, confoverrides=REAL).config.lab_execution_mode == "replay"
    both = REAL | {"lab_execution_mode": "off"}
    assert make_app("html", srcdir=srcdir, confoverrides=both).config.lab_execution_mode == "off"
    # The old switch still works, where no mode is given.
    monkeypatch.delenv("LAB_EXECUTION_MODE")
    (srcdir / "conf.py").write_text('extensions = ["sphinx_lab"]\nlab_execute = False\n')
    assert make_app("html", srcdir=srcdir, confoverrides=REAL).config.lab_execution_mode == "off"


def test_off_runs_nothing(make_app: Callable[..., SphinxTestApp], tmp_path: Path) -> None:
    app = make_app("html", srcdir=project(tmp_path), confoverrides=REAL | {"lab_execution_mode": "off"})
    app.build()
    assert plain(app.warning.getvalue()) == ""
    assert not (Path(app.outdir).parent / "captures").exists()
    html = (app.outdir / "index.html").read_text()
    assert "Not captured: lab_execution_mode is off." in html and "Not checked: lab_execution_mode is off." in html


def test_the_probe_sees_what_this_host_can(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the lab's own isolation: asked for the machine's loopback, there is no namespace."""
    monkeypatch.setenv("LAB_ISOLATION", "loopback")
    found = host.probe_host()
    assert not found.can_capture
    assert found.reason.startswith("no network namespace: asked for with LAB_ISOLATION=loopback")
    host.probe_host.cache_clear()
    monkeypatch.delenv("LAB_ISOLATION")
    here = host.probe_host()
    if here.can_capture:  # root, or user namespaces allowed: nothing missing
        assert here.reason == ""


def test_force_on_a_host_that_cannot_says_what_it_could_not_check(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_ISOLATION", "loopback")  # the runs then get no namespace of their own
    conf = REAL | {"lab_execution_mode": "force", "lab_cache_dir": str(tmp_path / "captures")}
    app = make_app("html", srcdir=project(tmp_path), confoverrides=conf)
    app.build()
    warnings = plain(app.warning.getvalue())
    for run, line in (("close/close", 4), ("shutdown/echo-after-shut-rd", 17)):
        assert re.search(
            rf"index\.rst:{line}: WARNING: {run}: lab_execution_mode is force, but this host cannot capture everything "
            rf"the page shows: no network namespace: asked for with LAB_ISOLATION=loopback.*\[lab\.capture\]",
            warnings,
        ), warnings
    assert warnings.count("WARNING") == 2  # once per run, not once per part
    # Still captured live, on the machine's loopback: force means live.
    assert "the machine's own loopback" in (app.outdir / "index.html").read_text()


def test_auto_on_a_host_that_cannot_takes_the_recorded_evidence(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is run; with no record there, a located lab.evidence warning, and no traceback."""
    monkeypatch.setenv("LAB_ISOLATION", "loopback")
    conf = REAL | {"lab_cache_dir": str(tmp_path / "captures"), "lab_evidence_dir": str(tmp_path / "nothing-recorded")}
    app = make_app("html", srcdir=project(tmp_path), confoverrides=conf)
    app.build()
    warnings = plain(app.warning.getvalue())
    assert re.search(r"index\.rst:4: WARNING: .*close/close.*\[lab\.evidence\]", warnings), warnings
    assert "Traceback" not in warnings
    assert not (tmp_path / "captures").exists()  # auto did not capture on a host that cannot


RECORDED = Path(__file__).resolve().parent.parent / "docs" / "captures"


def test_replay_shows_the_recorded_evidence_and_runs_nothing(make_app: Callable[..., SphinxTestApp], tmp_path: Path) -> None:
    conf = REAL | {"lab_execution_mode": "replay", "lab_evidence_dir": str(RECORDED), "lab_cache_dir": str(tmp_path / "c")}
    app = make_app("html", srcdir=project(tmp_path), confoverrides=conf)
    app.build()
    assert plain(app.warning.getvalue()) == ""
    assert not (tmp_path / "c").exists()  # nothing captured
    html = (app.outdir / "index.html").read_text()
    said = re.findall(r'<p class="lab-provenance recorded">(.*?)</p>', html)
    assert len(said) == 2 and all(
        re.fullmatch(r"Recorded on Linux \S+ on \d{4}-\d\d-\d\d; this build runs nothing \(lab_execution_mode is replay\)\.", s)
        for s in said
    ), said
    assert "Holds in the recorded capture of close/close (2 checks)." in html
    for suffix in ("json", "pcap"):  # the committed files, served
        links = re.findall(rf'href="(_downloads/[0-9a-f]+/[^"]+\.{suffix})"', html)
        assert len(links) == 2 and (app.outdir / links[0]).read_bytes() == (RECORDED / "close" / f"close.{suffix}").read_bytes()
    assert "lab: 2 runs: 0 captured live, 0 from the cache, 2 recorded" in plain(app.status.getvalue())


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda path: path.unlink(), "missing"),
        (lambda path: path.write_text("{not json"), "corrupt"),
        (lambda path: path.write_text(path.read_text().replace('"schema": ', '"schema": 9', 1)), "newer schema"),
        (lambda path: path.write_text(re.sub(r'"source_key": "[0-9a-f]+"', '"source_key": "0000"', path.read_text())), "made from other sources"),
    ],
)
def test_a_record_that_cannot_be_shown_is_warned_about_where_it_is_shown(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path, spoil: Callable[[Path], object], reason: str
) -> None:
    recorded = tmp_path / "recorded"
    shutil.copytree(RECORDED, recorded)
    spoil(recorded / "close" / "close.json")
    conf = REAL | {"lab_execution_mode": "replay", "lab_evidence_dir": str(recorded)}
    app = make_app("html", srcdir=project(tmp_path), confoverrides=conf)
    app.build()
    warnings = plain(app.warning.getvalue())
    assert re.search(
        rf"index\.rst:4: WARNING: recorded evidence for close/close: \S*recorded/close/close\.json is {reason}; "
        rf"re-record it with: make captures ONLY=close/close \[lab\.evidence\]",
        warnings,
    ), warnings
    assert warnings.count("WARNING") == 1 and "Traceback" not in warnings
    html = (app.outdir / "index.html").read_text()
    assert "Not checked: no usable recorded evidence for close/close" in html  # not a stale page
