"""The real site: the note is verbatim, the whole site builds with -W, and the build
leaves the watched folders untouched (so `make livehtml` cannot loop)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# sha256 of the original research note (shared/seeds/000_a16c373ba6fe981a.txt).
NOTE_SHA256 = "054c3f7c493bc67e034e8b1c6f100837e2ebcc0a5f6042fbf8c4b8916686ad12"


def tree_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


def build(out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Build the whole site as `make html` does, into ``out``, with a capture cache of its own."""
    return subprocess.run(
        [
            sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-c", str(ROOT), *options,
            str(ROOT / "docs"), str(out / "html"), "-d", str(out / "doctrees"),
            "-D", f"lab_cache_dir={out / 'captures'}",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Build the whole site once, serially, into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    watched = {name: tree_state(ROOT / name) for name in ("docs", "examples")}
    done = build(out)
    after = {name: tree_state(ROOT / name) for name in ("docs", "examples")}
    return {"done": done, "html": out / "html", "watched": (watched, after)}


# What differs between two captures of the same experiments: when, and which port the
# client's kernel picked.  Everything else on a page must be the same.
VARIABLE = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"), "<date>"),
    (re.compile(r"\b\d+\.\d{6}\b"), "<time>"),
    (re.compile(r"(127\.0\.0\.1:|127\.0\.0\.1(?:'|&#39;), )(?!50008\b)\d+"), r"\1<port>"),
    # Who built it: root makes the namespace itself, an ordinary user inside a user namespace.
    (re.compile(r"a network namespace of its own(?: \(created as root\)|, inside an unprivileged user namespace)"), "<ns>"),
    (re.compile(r"Python 3\.\d+\.\d+"), "Python <version>"),
    # A run's files are served under a name made from where its build kept them (its own cache),
    # and the Evidence page says how long each capture took.
    (re.compile(r'href="(?:\.\./)*_downloads/[0-9a-f]+/[^"]+"'), 'href="<download>"'),
    (re.compile(r"<p>\d+\.\d\d s</p>"), "<p><seconds></p>"),
]


# A packet table's last cell is the window, whose size follows the kernel's buffer
# autotuning, and, for an ACK that races the peer program's read, even whether it is
# shut: timing, in both builds.
WINDOW_CELL = re.compile(r"<td><p>(\d+)</p></td>(\s*</tr>)")


def normalised_pages(html: Path) -> dict[str, str]:
    pages = {}
    for path in sorted(html.rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        for pattern, placeholder in VARIABLE:
            text = pattern.sub(placeholder, text)
        text = WINDOW_CELL.sub(r"<td><p><window></p></td>\2", text)
        pages[str(path.relative_to(html))] = text
    return pages


def page(site: dict[str, object], name: str) -> str:
    return (site["html"] / f"{name}.html").read_text(encoding="utf-8")  # type: ignore[operator]


def test_the_note_is_kept_verbatim() -> None:
    assert hashlib.sha256((ROOT / "docs" / "original-note.txt").read_bytes()).hexdigest() == NOTE_SHA256


def test_the_site_builds_with_warnings_as_errors(site: dict[str, object]) -> None:
    done = site["done"]
    assert done.returncode == 0, done.stdout + done.stderr  # type: ignore[attr-defined]
    assert "WARNING" not in done.stderr  # type: ignore[attr-defined]


def test_the_note_page_renders_the_original_text(site: dict[str, object]) -> None:
    html = page(site, "note")
    for line in ("close 和 shutdown 的区别是什么？分别适用于那些场景？", "FIN_WAIT2", "我的理解是它们都是同一个 tcp 连接"):
        assert line in html


def test_the_close_page_shows_the_live_story(site: dict[str, object]) -> None:
    html = page(site, "close")
    assert "CLOSE_WAIT" in html and "FIN_WAIT2" in html
    assert "data: b''" in html  # the server's second recv(), as printed on this machine
    assert "EBADF" in html
    assert 'class="finding holds admonition"' in html
    assert "finding fails" not in html


def test_the_shutdown_page_shows_both_orders(site: dict[str, object]) -> None:
    html = page(site, "shutdown")
    assert "Received b'Hello, world'" in html
    assert "Received b''" in html
    assert "TIME_WAIT" in html
    assert "finding fails" not in html


def test_the_build_writes_nothing_into_watched_folders(site: dict[str, object]) -> None:
    before, after = site["watched"]  # type: ignore[misc]
    assert before == after


def test_a_parallel_build_gives_the_same_pages(site: dict[str, object], tmp_path: Path) -> None:
    """sphinx-build -j 2 runs experiments side by side, each in its own network namespace."""
    done = build(tmp_path, "-j", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    serial, parallel = normalised_pages(site["html"]), normalised_pages(tmp_path / "html")  # type: ignore[arg-type]
    assert serial.keys() == parallel.keys()
    for name in serial:
        assert serial[name] == parallel[name], f"{name} differs between the serial and the -j 2 build"
    images = {path.name for path in (tmp_path / "html" / "_images").glob("*")}
    assert images == {path.name for path in (site["html"] / "_images").glob("*")}  # type: ignore[operator]


def copy_for_nobody(names: tuple[str, ...]) -> Path:
    """The project's NAMES copied where nobody may read them, with an ``out`` folder it may write."""
    place = Path(tempfile.mkdtemp(prefix="lab-site-for-nobody-"))
    for name in names:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, place / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, place / name)
    (place / "out").mkdir()
    for path in (place, *place.rglob("*")):
        if not path.is_symlink():
            path.chmod(0o777 if path == place / "out" else (0o755 if path.is_dir() else 0o644))
    return place


def sphinx_as_nobody(place: Path, runner: list[str], python: str, packages: str) -> subprocess.CompletedProcess[str]:
    """Build the copied site into place/out/html, as nobody (``runner`` makes us nobody), in auto mode."""
    out = place / "out"
    return subprocess.run(
        [
            *runner, "env", f"PYTHONPATH={packages}", "PYTHONDONTWRITEBYTECODE=1",
            python, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-c", str(place),
            str(place / "docs"), str(out / "html"), "-d", str(out / "doctrees"),
            "-D", f"lab_cache_dir={out / 'captures'}",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        cwd=place,
        env={k: v for k, v in os.environ.items() if not k.startswith("LAB_")},  # auto: the default
    )



def test_an_ordinary_user_builds_the_same_pages(site: dict[str, object], nobody_python: str, nobody_packages: str) -> None:
    """As the user nobody, from a copy of the sources it may read: the same pages, packets and pictures included."""
    place = copy_for_nobody(("conf.py", "docs", "examples", "sphinx_lab"))
    try:
        done = sphinx_as_nobody(place, ["runuser", "-u", "nobody", "--"], nobody_python, nobody_packages)
        assert done.returncode == 0, done.stdout + done.stderr
        html = place / "out" / "html"
        assert "inside an unprivileged user namespace" in (html / "close.html").read_text(encoding="utf-8")
        as_root, as_nobody = normalised_pages(site["html"]), normalised_pages(html)  # type: ignore[arg-type]
        assert as_root.keys() == as_nobody.keys()
        for name in as_root:
            assert as_root[name] == as_nobody[name], f"{name} differs between root's build and nobody's"
    finally:
        shutil.rmtree(place)


# What says where a run's evidence came from, and so differs between a live build and a
# recorded one by design: the provenance line, the capture note, the downloads' names,
# the verdicts' "this build's" / "the recorded", the Evidence page's origin and times.
PROVENANCE = [
    (re.compile(r'<p class="lab-(provenance|capture-note)[^"]*">.*?</p>', re.DOTALL), r"<\1>"),
    (re.compile(r'href="(?:\.\./)*_downloads/[0-9a-f]+/[^"]+"'), 'href="<download>"'),
    (re.compile(r"(this build's|the recorded) capture of"), "<whose> capture of"),
    (re.compile(r"<p>(captured live|from the cache|recorded)</p>"), "<p><origin></p>"),
    (re.compile(r"<p>\d+\.\d\d s</p>"), "<p><seconds></p>"),
    (re.compile(r"<p>Linux [^<]*</p>"), "<p><provenance></p>"),
]


def masked_pages(html: Path) -> dict[str, str]:
    pages = normalised_pages(html)
    for name, text in pages.items():
        for pattern, placeholder in PROVENANCE:
            text = pattern.sub(placeholder, text)
        pages[name] = text
    return pages


def test_a_host_that_refuses_namespaces_builds_the_same_pages_from_the_recorded_evidence(
    site: dict[str, object], nobody_python: str, nobody_packages: str
) -> None:
    """As Read the Docs or a locked-down runner would: nobody, user namespaces really refused (tools/hostsim.py), auto mode."""
    place = copy_for_nobody(("conf.py", "docs", "examples", "sphinx_lab", "tools"))
    try:
        done = sphinx_as_nobody(place, [sys.executable, str(ROOT / "tools" / "hostsim.py"), "--"], nobody_python, nobody_packages)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "lab: capturing" not in done.stdout  # it ran nothing
        html = place / "out" / "html"
        # Every run says it is recorded, and why.
        for path in html.rglob("*.html"):
            text = path.read_text(encoding="utf-8")
            lines = re.findall(r'<p class="lab-provenance ([a-z]+)">(.*?)</p>', text)
            assert all(origin == "recorded" for origin, _ in lines), path
            assert all("this host could not capture: no network namespace" in said for _, said in lines), path
        runs = len(list((ROOT / "docs" / "captures").glob("*/*.json")))  # every run of every experiment
        assert f"lab: {runs} runs: 0 captured live, 0 from the cache, {runs} recorded" in done.stdout, done.stdout[-2000:]
        live, recorded = masked_pages(site["html"]), masked_pages(html)  # type: ignore[arg-type]
        assert live.keys() == recorded.keys()
        for name in live:
            assert live[name] == recorded[name], f"{name} differs between the live build and the recorded one"
    finally:
        shutil.rmtree(place)
