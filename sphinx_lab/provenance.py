"""What the reader is looking at: where a run's evidence came from, and its files to download.

Standard nodes only: a paragraph with a class (``lab-provenance`` and the
origin: ``live``, ``cache`` or ``recorded``; styled in docs/_static/lab.css)
and Sphinx's own download references, so the record and the pcap land in
``_downloads`` as a ``:download:`` role's file would (the asset collector,
which runs after our doctree-read handler, copies them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docutils import nodes
from sphinx import addnodes

if TYPE_CHECKING:
    from lab.record import Record
    from sphinx.environment import BuildEnvironment

    from .modes import Evidence


def facts(record: Record) -> dict[str, Any]:
    """Kernel, Python, date, isolation and sources of a record: its provenance where it has one."""
    meta = record.metadata
    found: dict[str, Any] = {
        "system": meta.get("system") or "Linux",
        "kernel": meta.get("kernel") or "",
        "python": meta.get("python") or "",
        "date": meta.get("date") or "",
        "isolation": record.isolation,
        "states": record.states_source,
        "packets": record.packets_source,
    }
    provenance = getattr(record, "provenance", None)  # records of the evidence store's schema carry it
    if provenance is not None:
        from dataclasses import asdict

        given = asdict(provenance) if hasattr(provenance, "__dataclass_fields__") else dict(provenance)
        renamed = {"states_source": "states", "packets_source": "packets"}
        found |= {renamed.get(key, key): value for key, value in given.items() if value not in (None, "", {})}
        if str(found["kernel"]).startswith(f"{found['system']} "):
            found["system"] = ""  # Provenance.kernel says "Linux 6.1.0-18-amd64" itself
    return found


def _day(date: str) -> str:
    return date.split("T", 1)[0] if date else "an unknown date"


def _system(found: dict[str, Any]) -> str:
    return f"{found['system']} {found['kernel']}".strip()


def sysctls_text(found: dict[str, Any]) -> str:
    """``tcp_fin_timeout=60, tcp_tw_reuse=2, ...``: the teardown sysctls where the run took place."""
    sysctls = found.get("sysctls") or {}
    return ", ".join(f"{name.rsplit('.', 1)[-1].rsplit('/', 1)[-1]}={value}" for name, value in sorted(sysctls.items()))


def origin_sentence(evidence: Evidence) -> str:
    found = facts(evidence.record)
    system, day = _system(found), _day(str(found["date"]))
    if evidence.origin == "live":
        return f"Captured live while this page was built ({system}, {day})."
    if evidence.origin == "cache":
        return f"Captured live on this host ({system}, {day}), by an earlier build: taken from the build's capture cache."
    return f"Recorded on {system} on {day}; {evidence.why_recorded}."


def origin_line(evidence: Evidence) -> nodes.paragraph:
    text = origin_sentence(evidence)
    return nodes.paragraph("", text, classes=["lab-provenance", evidence.origin])


def download_target(path: Path, env: BuildEnvironment) -> str:
    """The file as a ``:download:`` role from the current page would name it (relative to the page)."""
    page_dir = (Path(env.srcdir) / env.doc2path(env.docname, base=False)).parent
    return Path(os.path.relpath(path, page_dir)).as_posix()


def download(label: str, path: Path, env: BuildEnvironment) -> addnodes.download_reference:
    reference = addnodes.download_reference(
        "", "", refdomain="", reftype="download", refexplicit=True, refwarn=False,
        reftarget=download_target(path, env), refdoc=env.docname,
    )  # fmt: skip
    reference += nodes.literal(label, label, classes=["xref", "download"])
    return reference


def downloads(evidence: Evidence, env: BuildEnvironment) -> nodes.paragraph:
    """``Download this run: its record (JSON), its packets (pcap).``"""
    run = f"{evidence.record.experiment}/{evidence.record.run}"
    paragraph = nodes.paragraph("", f"Download {run}: ", classes=["lab-downloads"])
    paragraph += download("its record (JSON)", evidence.json_path, env)
    if evidence.pcap_path is not None:
        paragraph += nodes.Text(", ")
        paragraph += download("its packets (pcap, for Wireshark or tcpdump -r)", evidence.pcap_path, env)
    else:
        paragraph += nodes.Text(" (no packets file for this run)")
    paragraph += nodes.Text(".")
    return paragraph
