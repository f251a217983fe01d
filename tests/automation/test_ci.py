"""The CI files ``shipyard init --ci github|gitlab`` writes.

GitHub Actions and GitLab CI cannot be run here. So the tests parse the generated YAML with
``yaml.safe_load`` and check its structure (triggers, steps in order, commands, secrets,
artifacts), syntax-check every shell block with ``sh -n`` (POSIX sh: dash here), and run the
gate block under ``sh`` with a stand-in ``shipyard`` that records the arguments it receives.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.automation.ci import (
    CI_FILES,
    CiSettings,
    ci_settings_from_options,
    render_github,
    render_gitlab,
    write_ci,
)
from shipyard.errors import InvalidArgumentError
from tests._cli import run_shipyard

SETTINGS = CiSettings(
    pipeline="pipelines/train.py:training",
    model="churn",
    gate_data="churn-holdout@3",
    gate_policy="gate.yaml",
    target="churned",
    sensitive=("gender", "age group"),
)

INSTALL = "python -m pip install 'shipyard-mlops[sklearn,validation]'"
VALIDATE = [
    "shipyard",
    "validate",
    "churn@latest",
    "--data",
    "churn-holdout@3",
    "--target",
    "churned",
    "--policy",
    "gate.yaml",
    "--sensitive",
    "gender",
    "--sensitive",
    "age group",
    "--out",
    "validation",
]

# Values a shell or YAML would misread if they were pasted in unquoted.
AWKWARD = CiSettings(
    pipeline="my pipelines #1/train it.py:training",
    model="churn-v2.1",
    gate_data="data/hold out: #1 $HOME `id` 'q' \"dq\" \\ é.csv",
    gate_policy="policies/gate #2.yaml",
    target="is churned?",
    sensitive=("a;b", "$(echo x)", "- dash", "*"),
    install="-e .[sklearn,validation] 'numpy<3'",
)


def _github(settings: CiSettings = SETTINGS) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(render_github(settings))
    return doc


def _gitlab(settings: CiSettings = SETTINGS) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(render_gitlab(settings))
    return doc


def _check_sh(script: str) -> None:
    result = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{result.stderr}\n{script}"


def _run_gate(script: str, tmp_path: Path, *, champion: bool) -> list[str]:
    """Run the gate block under sh with a fake ``shipyard``; the argv ``validate`` got."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "shipyard"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = models ]; then [ -n "$HAS_CHAMPION" ]; exit; fi\n'
        'for arg in "$@"; do printf "%s\\0" "$arg"; done > "$ARGS_FILE"\n'
    )
    fake.chmod(0o755)
    args_file = tmp_path / "args"
    env = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        ARGS_FILE=str(args_file),
        HAS_CHAMPION="1" if champion else "",
    )
    result = subprocess.run(
        ["sh", "-e", "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return ["shipyard", *args_file.read_text().split("\0")[:-1]]


def test_github_workflow_runs_pipeline_then_gate_on_push(tmp_path: Path) -> None:
    doc = _github()
    assert set(doc["on"]) == {"push", "workflow_dispatch"}
    (job,) = doc["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    assert job["env"] == {
        "SHIPYARD_STORE_URL": "${{ secrets.SHIPYARD_STORE_URL }}",
        "SHIPYARD_ARTIFACTS_URL": "${{ secrets.SHIPYARD_ARTIFACTS_URL }}",
    }
    checkout, python, install, init, pipeline, gate, upload = job["steps"]
    assert checkout["uses"] == "actions/checkout@v4"
    assert python["uses"].startswith("actions/setup-python@")
    assert python["with"] == {"python-version": "3.11"}
    assert install["run"] == INSTALL
    assert init["run"] == "shipyard init"
    assert pipeline["run"] == "shipyard pipeline run pipelines/train.py:training"
    assert "if" not in gate
    assert _run_gate(gate["run"], tmp_path, champion=False) == VALIDATE
    assert upload["uses"] == "actions/upload-artifact@v4"
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "validation/"
    for step in job["steps"]:
        if "run" in step:
            _check_sh(step["run"])


def test_each_file_says_what_the_secrets_are() -> None:
    for text in (render_github(SETTINGS), render_gitlab(SETTINGS)):
        comments = "\n".join(line for line in text.splitlines() if line.startswith("#"))
        assert "SHIPYARD_STORE_URL      the team's metadata store" in comments
        assert "SHIPYARD_ARTIFACTS_URL  the team's artifact store" in comments
    assert "Secrets and variables > Actions" in render_github(SETTINGS)
    assert "Settings > CI/CD > Variables" in render_gitlab(SETTINGS)


def test_gitlab_job_runs_pipeline_then_gate_on_push_and_by_hand(tmp_path: Path) -> None:
    doc = _gitlab()
    job = doc["shipyard"]
    assert job["image"] == "python:3.11"
    (rule,) = job["rules"]
    assert rule == {"if": '$CI_PIPELINE_SOURCE == "push" || $CI_PIPELINE_SOURCE == "web"'}
    install, init, pipeline, gate = job["script"]
    assert install == INSTALL
    assert init == "shipyard init"
    assert pipeline == "shipyard pipeline run pipelines/train.py:training"
    assert _run_gate(gate, tmp_path, champion=False) == VALIDATE
    assert job["artifacts"] == {"when": "always", "paths": ["validation/"]}
    for line in job["script"]:
        _check_sh(line)
    _check_sh("\n".join(job["script"]))  # GitLab runs the lines in one shell


def test_the_gate_compares_with_the_champion_only_when_there_is_one(tmp_path: Path) -> None:
    gate = _github()["jobs"]["train-and-gate"]["steps"][5]["run"]
    assert "shipyard models show churn@champion >/dev/null 2>&1" in gate
    with_champion = _run_gate(gate, tmp_path, champion=True)
    assert with_champion == [*VALIDATE, "--against", "churn@champion"]
    assert _run_gate(gate, tmp_path, champion=False) == VALIDATE


@pytest.mark.parametrize("render", [render_github, render_gitlab])
def test_awkward_values_reach_the_commands_unchanged(render: Any, tmp_path: Path) -> None:
    doc = yaml.safe_load(render(AWKWARD))
    if render is render_github:
        commands = [s["run"] for s in doc["jobs"]["train-and-gate"]["steps"] if "run" in s]
    else:
        commands = doc["shipyard"]["script"]
    install, init, pipeline, gate = commands
    assert init == "shipyard init"
    assert shlex.split(install) == [
        *"python -m pip install -e".split(),
        ".[sklearn,validation]",
        "numpy<3",
    ]
    assert shlex.split(pipeline) == ["shipyard", "pipeline", "run", AWKWARD.pipeline]
    for script in commands:
        _check_sh(script)
    argv = _run_gate(gate, tmp_path, champion=True)
    assert argv[2] == "churn-v2.1@latest"
    assert argv[argv.index("--data") + 1] == AWKWARD.gate_data
    assert argv[argv.index("--target") + 1] == AWKWARD.target
    assert argv[argv.index("--policy") + 1] == AWKWARD.gate_policy
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--sensitive"] == list(
        AWKWARD.sensitive
    )
    assert argv[-2:] == ["--against", "churn-v2.1@champion"]


def test_the_rendering_is_stable_and_keeps_its_comments() -> None:
    assert render_github(SETTINGS) == render_github(SETTINGS)
    assert render_github(SETTINGS).startswith("# Shipyard continuous training")
    assert render_gitlab(SETTINGS).startswith("# Shipyard continuous training")


def test_write_ci_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    written = write_ci("github", SETTINGS, tmp_path)
    assert written == tmp_path / ".github" / "workflows" / "shipyard.yml"
    assert written.read_text() == render_github(SETTINGS)
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    written.write_text("# mine\n")
    with pytest.raises(InvalidArgumentError, match="pass --force"):
        write_ci("github", SETTINGS, tmp_path)
    assert written.read_text() == "# mine\n"
    assert write_ci("github", SETTINGS, tmp_path, force=True) == written
    assert written.read_text() == render_github(SETTINGS)
    assert sorted(p.name for p in written.parent.iterdir()) == ["shipyard.yml"]  # no temp file
    assert write_ci("gitlab", SETTINGS, tmp_path) == tmp_path / CI_FILES["gitlab"]


def test_write_ci_names_the_choices_for_an_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="github or gitlab"):
        write_ci("jenkins", SETTINGS, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_options_are_named() -> None:
    with pytest.raises(InvalidArgumentError, match=r"--ci needs --pipeline FILE\.py:NAME") as e:
        ci_settings_from_options(model="churn", gate_data="holdout@1")
    assert "--model" not in str(e.value) and "--gate-data" not in str(e.value)
    with pytest.raises(InvalidArgumentError, match=r"--model NAME.*--gate-data REF"):
        ci_settings_from_options(pipeline="train.py:training")


def test_explicit_options_win_over_defaults() -> None:
    defaults = {
        "pipeline": "train.py:training",
        "model": "churn",
        "gate_data": "holdout@1",
        "target": "churned",
        "sensitive": ["gender"],
    }
    settings = ci_settings_from_options(
        model="fraud", target=None, sensitive=[], policy_defaults=defaults
    )
    assert settings == CiSettings(
        pipeline="train.py:training",
        model="fraud",
        gate_data="holdout@1",
        gate_policy="gate.yaml",
        target="churned",
        sensitive=("gender",),
    )
    with pytest.raises(InvalidArgumentError, match=r"unknown CI setting.*gate_dat"):
        ci_settings_from_options(policy_defaults={**defaults, "gate_dat": "x"})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pipeline": "train.py"}, "give FILE.py:NAME"),
        ({"pipeline": "pkg.module:training"}, "give FILE.py:NAME"),
        ({"pipeline": "/home/me/train.py:training"}, "relative to the project root"),
        ({"pipeline": "../train.py:training"}, "relative to the project root"),
        ({"model": "churn@3"}, "invalid model name"),
        ({"gate_data": "/data/holdout.csv"}, "relative to the project root"),
        ({"gate_policy": "~/gate.yaml"}, "relative to the project root"),
        ({"target": " "}, "target is empty"),
        ({"sensitive": ("a\nb",)}, "line break"),
        ({"gate_data": "${{ secrets.X }}"}, "GitHub Actions would evaluate it"),
        ({"python": "3"}, "a version like 3.11"),
        ({"install": "'unclosed"}, "install"),
        ({"sensitive": ["gender"]}, "tuple of column names"),
    ],
)
def test_settings_say_what_to_fix(changes: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {
        "pipeline": "train.py:training",
        "model": "churn",
        "gate_data": "holdout@1",
        "gate_policy": "gate.yaml",
        **changes,
    }
    with pytest.raises(InvalidArgumentError, match=message):
        CiSettings(**values)


def _clean_env() -> dict[str, str]:
    drop = {"SHIPYARD_HOME", "SHIPYARD_STORE_URL", "SHIPYARD_ARTIFACTS_URL"}
    return {k: v for k, v in os.environ.items() if k not in drop}


CI_OPTIONS = ["--pipeline", "train.py:training", "--model", "churn", "--gate-data", "h@1"]


@pytest.mark.e2e
def test_cli_writes_the_workflow_into_the_project(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    args = ["init", str(project), "--ci", "github", *CI_OPTIONS, "--sensitive", "gender"]
    result = run_shipyard(*args, "--install", "-e .", env=_clean_env())
    assert result.returncode == 0, result.stderr
    workflow = project / ".github" / "workflows" / "shipyard.yml"
    assert (project / ".shipyard" / "shipyard.db").is_file()
    assert f"Wrote {workflow}" in result.stdout
    assert "repository secrets SHIPYARD_STORE_URL and SHIPYARD_ARTIFACTS_URL" in result.stdout
    steps = yaml.safe_load(workflow.read_text())["jobs"]["train-and-gate"]["steps"]
    assert steps[2]["run"] == "python -m pip install -e ."
    assert "--sensitive gender" in steps[5]["run"]

    again = run_shipyard(*args, env=_clean_env())
    assert again.returncode == 2
    assert again.stderr.startswith("error:") and "pass --force" in again.stderr
    forced = run_shipyard(*args, "--force", env=_clean_env())
    assert forced.returncode == 0, forced.stderr
    assert yaml.safe_load(workflow.read_text())["jobs"]["train-and-gate"]["steps"][2]["run"] == (
        INSTALL
    )


@pytest.mark.e2e
def test_cli_writes_the_gitlab_file_into_the_working_folder(home: Path) -> None:
    result = run_shipyard("init", "--ci", "gitlab", *CI_OPTIONS, cwd=home.parent)
    assert result.returncode == 0, result.stderr
    assert "CI/CD variables SHIPYARD_STORE_URL" in result.stdout
    job = yaml.safe_load((home.parent / ".gitlab-ci.yml").read_text())["shipyard"]
    assert job["script"][2] == "shipyard pipeline run train.py:training"


@pytest.mark.e2e
def test_cli_without_pipeline_fails_before_creating_anything(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    result = run_shipyard(
        "init",
        str(project),
        "--ci",
        "github",
        "--model",
        "churn",
        "--gate-data",
        "h@1",
        env=_clean_env(),
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: --ci needs --pipeline FILE.py:NAME")
    assert not project.exists()
