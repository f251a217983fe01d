"""The `shipyard` command line, as a user runs it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import shipyard
from shipyard.cli import app
from tests._cli import run_shipyard

pytestmark = pytest.mark.e2e
STORE_KINDS = ("sqlite",)  # the CLI's wording; the store layer runs on PostgreSQL in tests/store

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def two_runs(home: Path, tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "report.txt").write_text("all good")
    ids = []
    for model, auc in (("rf", 0.9), ("gbm", 0.8)):
        with shipyard.start_run(experiment="churn", name=f"{model}-run", log_code=False) as run:
            run.log_params({"model": model, "seed": 1})
            run.log_metric("auc", auc)
            run.log_metric("nan_metric", float("nan"))
            run.log_artifact(tmp_path / "report.txt", "reports/report.txt")
            ids.append(run.run_id)
    return ids[0], ids[1]


def test_init_creates_a_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIPYARD_HOME", raising=False)
    monkeypatch.delenv("SHIPYARD_STORE_URL", raising=False)
    result = runner.invoke(app, ["init", str(tmp_path / "proj")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "proj" / ".shipyard" / "shipyard.db").is_file()
    assert "Initialised Shipyard workspace" in result.output
    # found from a subfolder, the way git finds its repository
    sub = tmp_path / "proj" / "src" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    listed = runner.invoke(app, ["experiments", "ls", "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == []


def test_experiments_and_runs_listing(two_runs: tuple[str, str]) -> None:
    result = runner.invoke(app, ["experiments", "ls"])
    assert result.exit_code == 0 and "churn" in result.output
    table = runner.invoke(app, ["runs", "ls"])
    assert table.exit_code == 0
    assert "rf-run" in table.output and "gbm-run" in table.output and "nan" in table.output
    data = json.loads(
        runner.invoke(
            app, ["runs", "ls", "-e", "churn", "--filter", "metrics.auc > 0.85", "--json"]
        ).output
    )
    assert [r["name"] for r in data] == ["rf-run"]
    assert data[0]["metrics"]["nan_metric"] == "nan"
    assert data[0]["params"] == {"model": "rf", "seed": "1"}
    ordered = json.loads(
        runner.invoke(app, ["runs", "ls", "-o", "metrics.auc ASC", "--json"]).output
    )
    assert [r["name"] for r in ordered] == ["gbm-run", "rf-run"]


def test_sparkline_draws_the_shape_of_a_history() -> None:
    from shipyard.cli.runs import sparkline

    assert sparkline([0.0, 1.0, 2.0, 3.0]) == "▁▃▆█"
    assert sparkline([3.0, float("nan"), 1.0]) == "█ ▁"
    assert sparkline([1.0]) == ""
    long = sparkline([float(i) for i in range(1000)], width=10)
    assert len(long) == 10 and long[0] == "▁" and long[-1] == "█"


def test_runs_show_and_compare(two_runs: tuple[str, str]) -> None:
    rf, gbm = two_runs
    shown = runner.invoke(app, ["runs", "show", rf[:8]])
    assert shown.exit_code == 0, shown.output
    assert "rf-run" in shown.output and "reports/report.txt" in shown.output
    data = json.loads(runner.invoke(app, ["runs", "show", rf, "--json"]).output)
    assert data["run_id"] == rf and data["status"] == "FINISHED"
    assert data["artifacts"][0]["path"] == "reports/report.txt"
    compared = runner.invoke(app, ["runs", "compare", rf[:8], gbm[:8], "--diff"])
    assert compared.exit_code == 0, compared.output
    assert "params.model" in compared.output and "metrics.auc" in compared.output
    assert "params.seed" not in compared.output  # equal in both, hidden by --diff


def test_artifacts_get(two_runs: tuple[str, str], tmp_path: Path) -> None:
    rf, _ = two_runs
    out = tmp_path / "downloaded"
    listed = runner.invoke(app, ["artifacts", "ls", rf])
    assert "reports/report.txt" in listed.output
    got = runner.invoke(app, ["artifacts", "get", rf, "reports", "--out", str(out)])
    assert got.exit_code == 0, got.output
    assert (out / "reports" / "report.txt").read_text() == "all good"
    escape = runner.invoke(app, ["artifacts", "get", rf, "../../etc", "--out", str(out)])
    assert escape.exit_code == 2
    missing = runner.invoke(app, ["artifacts", "get", rf, "nope.txt", "--out", str(out)])
    assert missing.exit_code == 1


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["runs", "show", "ffffffff"], "no run whose id starts with 'ffffffff'", 1),
        (["runs", "show", "xy"], "is not a run id", 2),
        (["runs", "ls", "--filter", "metrics.auc >"], "expected a number", 2),
        (["runs", "ls", "-e", "nope"], "no experiment named 'nope'", 1),
    ],
)
def test_errors_are_one_line_and_an_exit_code(
    home: Path, args: list[str], message: str, code: int
) -> None:
    """Run the real console entry point: no traceback, just `error: ...`."""
    result = run_shipyard(*args)
    assert result.returncode == code
    assert message in result.stderr
    assert result.stderr.startswith("error:")
    assert "Traceback" not in result.stderr


def test_no_workspace_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIPYARD_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["runs", "ls"])
    assert result.exit_code == 1
    assert "shipyard init" in result.output


def test_user_text_is_never_read_as_markup(home: Path) -> None:
    with shipyard.start_run(experiment="[bold]exp", name="[/data]", log_code=False) as run:
        run.log_params({"type": "list[str]", "path": "[/data]"})
    shown = runner.invoke(app, ["runs", "show", run.run_id])
    assert shown.exit_code == 0, shown.output
    assert "list[str]" in shown.output and "[/data]" in shown.output
    listed = runner.invoke(app, ["experiments", "ls"])
    assert "[bold]exp" in listed.output


def test_unreachable_store_is_one_line(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT / "src"),
        SHIPYARD_HOME=str(tmp_path / ".shipyard"),
        SHIPYARD_STORE_URL="postgresql+psycopg://postgres:topsecret@127.0.0.1:1/test",
    )
    result = run_shipyard("init", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("error: opening the store failed")
    assert "Traceback" not in result.stderr and "topsecret" not in result.stderr


def test_init_honours_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIPYARD_STORE_URL", raising=False)
    result = runner.invoke(app, ["--home", str(tmp_path / "p" / ".shipyard"), "init"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p" / ".shipyard" / "shipyard.db").is_file()


def test_version_and_short_help_as_users_type_them(tmp_path: Path) -> None:
    version = run_shipyard("--version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout == f"{shipyard.__version__}\n" and version.stderr == ""
    assert run_shipyard("version", cwd=tmp_path).stdout == version.stdout
    for args in (("-h",), ("runs", "ls", "-h"), ("data", "-h")):
        shown = run_shipyard(*args, cwd=tmp_path)
        assert shown.returncode == 0, (args, shown.stderr)
        assert "Usage: " in shown.stdout
        assert re.search(r"-h, --help\s", shown.stdout), shown.stdout
