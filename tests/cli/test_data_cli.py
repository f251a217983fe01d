"""`shipyard data ...` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli import app
from tests._cli import run_shipyard

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def project(home: Path) -> Path:
    folder = home.parent
    (folder / "churn.csv").write_text("id,plan,spend\n1,basic,10.5\n2,pro,99.0\n3,basic,12.0\n")
    return folder


def test_add_show_versions_and_dedup(project: Path) -> None:
    first = runner.invoke(app, ["data", "add", "churn.csv", "--name", "churn"])
    assert first.exit_code == 0, first.output
    assert "Added churn@1" in first.output and "churn.csv.ship" in first.output
    again = runner.invoke(app, ["data", "add", "churn.csv", "--name", "churn"])
    assert "churn@1 unchanged" in again.output and "no new bytes" in again.output
    shown = json.loads(runner.invoke(app, ["data", "show", "churn@1", "--json"]).output)
    assert shown["format"] == "csv" and shown["profile"]["rows"] == 3
    table = runner.invoke(app, ["data", "show", "churn"])
    assert "plan" in table.output and "basic (2)" in table.output
    listed = json.loads(runner.invoke(app, ["data", "ls", "--json"]).output)
    assert listed[0]["name"] == "churn" and listed[0]["versions"] == 1
    versions = runner.invoke(app, ["data", "versions", "churn"])
    assert "churn@1" in versions.output


def test_status_checkout_and_exit_codes(project: Path) -> None:
    runner.invoke(app, ["data", "add", "churn.csv", "--name", "churn"])
    clean = runner.invoke(app, ["data", "status", "--json"])
    assert clean.exit_code == 0
    assert json.loads(clean.output)[0]["state"] == "unchanged"
    (project / "churn.csv").write_text("id\n1\n")
    dirty = runner.invoke(app, ["data", "status"])
    assert dirty.exit_code == 1 and "modified" in dirty.output
    refused = runner.invoke(app, ["data", "checkout"])
    assert refused.exit_code == 2 and "never added" in refused.output
    assert (project / "churn.csv").read_text() == "id\n1\n"
    restored = runner.invoke(app, ["data", "checkout", "--force"])
    assert restored.exit_code == 0 and "restored" in restored.output
    assert (project / "churn.csv").read_text().startswith("id,plan,spend")


def test_check_gates_on_errors(project: Path) -> None:
    runner.invoke(app, ["data", "add", "churn.csv", "--name", "churn"])
    (project / "new.csv").write_text("id,spend\n1,500.0\n1,500.0\n")
    result = runner.invoke(app, ["data", "check", "new.csv", "--against", "churn@1", "--json"])
    assert result.exit_code == 1
    checks = {f["check"] for f in json.loads(result.output)}
    assert {"missing_column", "out_of_range", "duplicate_rows"} <= checks
    (project / "same.csv").write_text("id,plan,spend\n4,pro,50.0\n")
    ok = runner.invoke(app, ["data", "check", "same.csv", "--against", "churn@1"])
    assert ok.exit_code == 0, ok.output


def test_diff_lineage_get_push_pull(project: Path, tmp_path: Path) -> None:
    runner.invoke(app, ["data", "add", "churn.csv", "--name", "churn"])
    (project / "churn.csv").write_text("id,plan,spend,region\n1,basic,10.5,eu\n")
    runner.invoke(app, ["data", "add", "churn.csv", "--name", "churn"])
    diff = json.loads(runner.invoke(app, ["data", "diff", "churn@1", "churn@2", "--json"]).output)
    assert diff["columns"]["added"] == ["region"]
    assert diff["rows"] == {"old": 3, "new": 1}
    lineage = json.loads(runner.invoke(app, ["data", "lineage", "churn@1", "--json"]).output)
    assert lineage == {"version": "churn@1", "produced_by": [], "used_by": [], "derived": []}
    out = tmp_path / "out"
    got = runner.invoke(app, ["data", "get", "churn@1", "--out", str(out)])
    assert got.exit_code == 0, got.output
    assert (out / "churn.csv").read_text().startswith("id,plan,spend\n1,basic")
    remote = tmp_path / "remote"
    pushed = runner.invoke(app, ["data", "push", "--remote", str(remote)])
    assert pushed.exit_code == 0 and "Pushed 2 object(s)" in pushed.output
    pulled = runner.invoke(app, ["data", "pull", "--remote", str(remote), "churn@1"])
    assert "Pulled 0 object(s)" in pulled.output and "1 already there" in pulled.output


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["data", "add", "missing.csv", "--name", "x"], "no such file or folder", 1),
        (["data", "add", "churn.csv", "--name", "no good"], "invalid dataset name", 2),
        (["data", "show", "nope@1"], "no dataset named 'nope'", 1),
        (["data", "status", "churn.csv"], "is not tracked", 2),
    ],
)
def test_errors_are_one_line(project: Path, args: list[str], message: str, code: int) -> None:
    result = run_shipyard(*args, cwd=project)
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith("error:") and message in result.stderr
    assert "Traceback" not in result.stderr
