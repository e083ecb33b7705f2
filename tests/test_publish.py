"""The two hosts readers read from, proved here since neither is reachable: their YAML parses, and
every command they run exists in the project (make targets, paths, the configuration file)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from sphinx_lab.config import MODES

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))


def system_packages() -> set[str]:
    text = (ROOT / "tools" / "system-packages.sh").read_text()
    return set(re.search(r"^PACKAGES=\(([^)]*)\)", text, flags=re.MULTILINE).group(1).split())


def check_command(line: str) -> None:
    """Every make target, script, folder and file a command names is the project's."""
    for command in re.split(r"&&|;", line):
        words = shlex.split(command)
        while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):  # VAR=value before the program
            words.pop(0)
        if not words or words[0] in ("sudo",) and len(words) == 1:
            continue
        if words[0] == "sudo":
            words = words[1:]
            while words and (words[0] == "env" or re.fullmatch(r"[A-Z_]+=.*", words[0])):
                words.pop(0)
        if words[0] == "make":
            targets = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
            assert targets, line
            for target in targets:
                assert target in make_targets(), f"{line!r}: no make target {target!r}"
        elif words[0] in ("python", "python3") and words[1:3] == ["-m", "sphinx"]:
            options = words[3:]
            confdir = options[options.index("-c") + 1]
            assert (ROOT / confdir / "conf.py").is_file(), line
            for i, word in enumerate(options):
                if word == "-D" and options[i + 1].startswith("lab_execution_mode="):
                    assert options[i + 1].split("=", 1)[1] in MODES, line
            sources = [w for w in options if not w.startswith("-") and "$" not in w and w not in (confdir, "html")]
            sources = [w for w in sources if "=" not in w]
            assert sources and all((ROOT / w).is_dir() for w in sources), f"{line!r}: {sources}"
        elif "/" in words[0]:
            assert (ROOT / words[0]).is_file(), f"{line!r}: no {words[0]} in the project"
        elif words[0] == "sysctl":
            assert words[1:] == ["-w", "kernel.apparmor_restrict_unprivileged_userns=0"], line
        else:
            pytest.fail(f"{line!r}: a command this test does not know how to check")


def test_read_the_docs_builds_the_recorded_evidence_with_warnings_as_errors() -> None:
    config = load(ROOT / ".readthedocs.yaml")
    assert config["version"] == 2
    assert config["sphinx"]["fail_on_warning"] is True
    assert (ROOT / config["sphinx"]["configuration"]).is_file()
    assert config["build"]["tools"]["python"] == "3.11"
    assert set(config["build"]["apt_packages"]) == {"graphviz", "fonts-liberation2", "fonts-dejavu-core"}
    assert set(config["build"]["apt_packages"]) <= system_packages()  # the set-up names them too
    for requirement in config["python"]["install"]:
        assert (ROOT / requirement["requirements"]).is_file()
    commands = config["build"]["jobs"]["build"]["html"]
    assert len(commands) == 1 and "-D lab_execution_mode=replay" in commands[0] and " -W " in commands[0]
    assert "$READTHEDOCS_OUTPUT/html" in commands[0]
    for line in commands:
        check_command(line)


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_github_pages_builds_live_verifies_and_deploys_with_githubs_actions() -> None:
    workflow = load(WORKFLOWS / "pages.yml")
    assert all(job["runs-on"] == "ubuntu-24.04" for job in workflow["jobs"].values())
    runs = [step["run"] for step in steps(workflow) if "run" in step]
    uses = [step["uses"].split("@")[0] for step in steps(workflow) if "uses" in step]
    for action in ("actions/configure-pages", "actions/upload-pages-artifact", "actions/deploy-pages"):
        assert action in uses, action
    # The restriction is lifted before anything is built.
    lift = next(i for i, run in enumerate(runs) if "kernel.apparmor_restrict_unprivileged_userns=0" in run)
    build = next(i for i, run in enumerate(runs) if run.startswith("make html"))
    verify = next(i for i, run in enumerate(runs) if run == "make verify")
    assert lift < build < verify
    artifact = next(step for step in steps(workflow) if step.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert artifact["with"]["path"] == "_build/html"  # where make html writes
    for line in runs:
        check_command(line)


def test_ci_runs_the_projects_own_entry_point() -> None:
    workflow = load(WORKFLOWS / "ci.yml")
    runs = [step["run"] for step in steps(workflow) if "run" in step]
    assert ".ci/run" in runs
    for line in runs:
        check_command(line)


def test_the_check_finds_a_command_the_project_lacks() -> None:
    with pytest.raises(AssertionError, match="no make target 'publish'"):
        check_command("make publish")
    with pytest.raises(AssertionError, match="no tools/nothing.sh"):
        check_command("tools/nothing.sh")
