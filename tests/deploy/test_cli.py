"""`shipyard deploy` as a user runs it: batch and edge deployments, and bad input that changes
nothing and says what to fix in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests._cli import run_shipyard
from tests.deploy.test_rollout_server import workspace  # noqa: F401 - a fixture
from tests.serving.conftest import register

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _ok(*args: str) -> str:
    done = run_shipyard(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _fails(code: int, needle: str, *args: str) -> None:
    done = run_shipyard(*args)
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert needle in lines[0], lines[0]


def test_every_way_a_model_is_live_and_bad_input(workspace: Path, tmp_path: Path) -> None:  # noqa: F811
    trained = register(workspace)  # cancer@1, champion
    register(workspace, c=0.5)  # cancer@2
    _ok("deploy", "create", "cancer-prod", "--model", "cancer@1")

    # batch: recorded with a schedule, run by run-due
    table = tmp_path / "rows.csv"
    trained.x.head(50).to_csv(table, index=False)
    out = tmp_path / "scores"
    created = json.loads(_ok(
        "deploy", "batch", "cancer-nightly", "--model", "cancer@1", "--input", str(table),
        "--output", str(out), "--schedule", "0 2 * * *", "--json",
    ))  # fmt: skip
    assert created["target"] == "batch" and created["spec"]["schedule"] == "0 2 * * *"
    assert json.loads(_ok("deploy", "run-due", "--json")) == []  # not due until 02:00
    ran = json.loads(_ok("deploy", "run-due", "cancer-nightly", "--json"))
    assert ran[0]["rows"] == 50
    scored = pd.read_parquet(ran[0]["output"])
    assert len(scored) == 50
    history = json.loads(_ok("deploy", "history", "cancer-nightly", "--json"))
    assert [e["action"] for e in history] == ["create", "batch.run"]

    # edge: an ONNX package exported and recorded
    package = tmp_path / "edge"
    edge = json.loads(_ok(
        "deploy", "create", "cancer-edge", "--model", "cancer@1", "--target", "edge",
        "--out", str(package), "--json",
    ))  # fmt: skip
    assert edge["target"] == "edge" and (package / "model.onnx").is_file()
    assert edge["spec"]["parity"]["max_abs_diff"] < 1e-4

    listed = {d["name"]: d["target"] for d in json.loads(_ok("deploy", "ls", "--json"))}
    assert listed == {"cancer-prod": "online", "cancer-nightly": "batch", "cancer-edge": "edge"}

    # bad input: one line, a non-zero exit code, nothing changed
    before = json.loads(_ok("deploy", "status", "cancer-prod", "--json"))
    _fails(1, "no deployment named 'nope'", "deploy", "status", "nope")
    _fails(1, "no registered model named 'ghost'", "deploy", "canary", "cancer-prod",
           "--model", "ghost@1")  # fmt: skip
    _fails(2, "add up to 110", "deploy", "ab", "cancer-prod", "--variant", "a=cancer@1:60",
           "--variant", "b=cancer@2:50")  # fmt: skip
    _fails(2, "invalid --schedule", "deploy", "batch", "x", "--model", "cancer@1", "--input",
           str(table), "--output", str(out), "--schedule", "every night")  # fmt: skip
    _fails(2, "a canary is for deployments a model server answers for", "deploy", "canary",
           "cancer-nightly", "--model", "cancer@2")  # fmt: skip
    _fails(2, "is a batch deployment: a model server serves online", "serve", "--deployment",
           "cancer-nightly")  # fmt: skip
    _ok("deploy", "canary", "cancer-prod", "--model", "cancer@2", "--interval", "1h")
    _fails(2, "already has a canary in progress", "deploy", "canary", "cancer-prod",
           "--model", "cancer@2")  # fmt: skip
    _ok("deploy", "rollback", "cancer-prod", "--reason", "not today")
    _fails(2, "was rolled back", "deploy", "promote", "cancer-prod")
    _fails(2, "invalid duration", "deploy", "canary", "cancer-prod", "--model", "cancer@2",
           "--interval", "soon")  # fmt: skip
    after = json.loads(_ok("deploy", "status", "cancer-prod", "--json"))
    assert after["routes"] == before["routes"]
    events = json.loads(_ok("deploy", "history", "cancer-prod", "--json"))
    assert [e["action"] for e in events] == ["create", "canary.start", "rollback"]
    assert events[-1]["reason"] == "not today"
    lineage = json.loads(_ok("models", "lineage", "cancer@1", "--json"))
    assert {d["name"] for d in lineage["deployments"]} == {
        "cancer-prod", "cancer-nightly", "cancer-edge",
    }  # fmt: skip
    assert "deployed by cancer-prod" in _ok("models", "lineage", "cancer@2")
    text = _ok("deploy", "status", "cancer-prod")
    assert "cancer-prod: cancer (online), single, rolled_back" in text
