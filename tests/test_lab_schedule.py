"""lab/schedule.py: experiments.toml, the real one and broken ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from lab.schedule import (
    EXPERIMENTS_FILE,
    ScheduleError,
    Step,
    experiment_for_client,
    load_experiment,
    load_experiments,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_real_file():
    assert EXPERIMENTS_FILE == EXAMPLES / "experiments.toml"
    experiments = load_experiments()
    assert list(experiments)[:2] == ["close", "shutdown"]  # the note's two; the catalogue's follow

    close = experiments["close"]
    assert close.programs == {"server": EXAMPLES / "multi-process-server.py", "client": EXAMPLES / "client-close.py"}
    assert close.deadline == 5.0
    assert close.files() == [EXAMPLES / "experiments.toml", *close.programs.values()]
    [run] = close.runs
    assert run.name == "close" and run.final_caption == "Both programs have finished"
    assert [step.label for step in run.steps] == [
        "server:listening",
        "client:connected",
        "client:sent",
        "client:closed",
        "client:recv failed",
        "server:accepted",
        "server:received",
        "server:sent",
        "server:received#2",  # the server's second recv(): a step listed twice counts its occurrences
    ]
    assert run.steps[2] == Step("client", "sent", 1, "The client has sent Hello, world; the server has not read it yet")
    assert run.steps[-1] == Step("server", "received", 2, None)
    assert [s.label for s in run.steps if s.caption] == ["client:sent", "client:closed", "server:received", "server:sent"]

    shutdown = experiments["shutdown"]
    assert [r.name for r in shutdown.runs] == ["echo-before-shut-rd", "echo-after-shut-rd", "echo-between-shut-rd-and-recv", "server-closes-first"]
    assert shutdown.run(None).name == "echo-before-shut-rd"
    after = shutdown.run("echo-after-shut-rd")
    assert [s.label for s in after.steps][3:6] == ["client:shut_wr", "client:shut_rd", "server:accepted"]
    assert after.description.startswith("The client sends, shuts down")


def test_lookups():
    assert experiment_for_client(EXAMPLES / "client-shutdown.py").name == "shutdown"
    assert load_experiment("close").programs["client"].name == "client-close.py"
    with pytest.raises(ScheduleError, match=r"experiments.toml has no experiment 'nope' \(it has: close, shutdown[,)]"):
        load_experiment("nope")
    with pytest.raises(ScheduleError, match=r"no experiment whose client is multi-process-server.py"):
        experiment_for_client(EXAMPLES / "multi-process-server.py")
    with pytest.raises(ScheduleError, match=r"experiment 'shutdown' has no run 'nope' \(its runs: echo-before-shut-rd, echo-after-shut-rd, echo-between-shut-rd-and-recv, server-closes-first\)"):
        load_experiment("shutdown").run("nope")


def test_fixture_file_loads_with_its_own_scripts():
    experiments = load_experiments(FIXTURES / "broken" / "experiments.toml")
    assert set(experiments) == {"hang", "crash", "surprise"}
    assert experiments["hang"].deadline == 1.0
    assert experiments["hang"].programs["server"] == FIXTURES / "broken" / "server.py"
    assert experiments["hang"].source == FIXTURES / "broken" / "experiments.toml"


GOOD_EXPERIMENT = """
[demo]
server = "server.py"
client = "client.py"
[[demo.runs]]
name = "one"
steps = ["server:listening", "client:connected"]
"""


def _write(tmp_path: Path, text: str, name: str = "my-experiments.toml") -> Path:
    for script in ("server.py", "client.py"):
        (tmp_path / script).write_text("")
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_file_in_another_folder(tmp_path):
    [experiment] = load_experiments(_write(tmp_path, GOOD_EXPERIMENT)).values()
    assert experiment.programs["server"] == tmp_path / "server.py"
    assert experiment.runs[0].title == "one" and experiment.runs[0].final_caption is None


def test_malformed_toml_names_the_file(tmp_path):
    path = _write(tmp_path, "[demo\nserver = 'server.py'\n")
    with pytest.raises(ScheduleError) as error:
        load_experiments(path)
    assert str(path) in str(error.value)
    assert "line 1" in str(error.value)


def test_a_top_level_value_is_not_an_experiment(tmp_path):
    path = _write(tmp_path, "deadline = 3\n")
    with pytest.raises(ScheduleError) as error:
        load_experiments(path)
    assert str(error.value) == "my-experiments.toml: 'deadline' is not an experiment: write it as [deadline] with its settings"


@pytest.mark.parametrize(
    "steps, expected",
    [
        (
            '["server:listening", "waiter:ready"]',
            "my-experiments.toml: experiment 'demo', run 'one': step 'waiter:ready' names program 'waiter'; "
            "programs are ('server', 'client')",
        ),
        ('["server:listening", "client"]', "my-experiments.toml: experiment 'demo', run 'one': a step is written \"program:step\", not 'client'"),
        ('["a:b:c"]', "my-experiments.toml: experiment 'demo', run 'one': a step is written \"program:step\", not 'a:b:c'"),
        ('[["client:sent"]]', "my-experiments.toml: experiment 'demo', run 'one': a snapshot step is [\"program:step\", \"caption\"]"),
        ("[]", "my-experiments.toml: experiment 'demo', run 'one' has no steps"),
    ],
)
def test_bad_steps_name_file_experiment_and_run(tmp_path, steps, expected):
    path = _write(tmp_path, GOOD_EXPERIMENT.replace('["server:listening", "client:connected"]', steps))
    with pytest.raises(ScheduleError) as error:
        load_experiments(path)
    assert str(error.value).startswith(expected)


def test_missing_script_names_file_experiment_and_script(tmp_path):
    path = _write(tmp_path, GOOD_EXPERIMENT.replace('client = "client.py"', 'client = "client-gone.py"'))
    with pytest.raises(ScheduleError) as error:
        load_experiments(path)
    assert str(error.value) == f"my-experiments.toml: experiment 'demo': no file {tmp_path / 'client-gone.py'}"


@pytest.mark.parametrize(
    "edit, expected",
    [
        (('client = "client.py"\n', ""), "my-experiments.toml: experiment 'demo' does not name its client program"),
        (('name = "one"\n', ""), "my-experiments.toml: experiment 'demo' has a run without a name"),
        (("[[demo.runs]]", "[[demo.other]]"), "my-experiments.toml: experiment 'demo' has no runs"),
    ],
)
def test_incomplete_experiments(tmp_path, edit, expected):
    path = _write(tmp_path, GOOD_EXPERIMENT.replace(*edit))
    with pytest.raises(ScheduleError) as error:
        load_experiments(path)
    assert str(error.value) == expected
