"""`shipyard models | users | audit` as users run them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from shipyard.cli import app
from shipyard.store.sql import SqlBackend

pytestmark = pytest.mark.e2e

runner = CliRunner()


def as_user(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("SHIPYARD_USER", name)
    from shipyard.tracking import workspace

    for ws in list(workspace._open.values()):
        ws.close()
    workspace._open.clear()


@pytest.fixture
def model_dir(home: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "shipyard-model.json").write_text('{"flavor": "sklearn"}')
    (folder / "model.skops").write_bytes(b"weights")
    result = runner.invoke(app, ["init", str(home.parent)])  # alice becomes admin
    assert result.exit_code == 0, result.output
    return folder


def test_register_alias_review_and_audit(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    registered = runner.invoke(app, ["models", "register", str(model_dir), "--name", "churn"])
    assert registered.exit_code == 0 and "churn@1 (sklearn" in registered.output
    assert runner.invoke(app, ["users", "add", "bob", "--role", "approver"]).exit_code == 0
    assert runner.invoke(app, ["models", "govern", "churn"]).exit_code == 0
    denied = runner.invoke(app, ["models", "alias", "churn@1", "champion"])
    assert denied.exit_code == 3 and "not approved" in denied.output
    assert runner.invoke(app, ["models", "request-review", "churn@1"]).exit_code == 0
    own = runner.invoke(app, ["models", "approve", "churn@1"])  # alice wrote it
    assert own.exit_code == 3 and "four-eyes" in own.output

    as_user(monkeypatch, "bob")
    approved = runner.invoke(app, ["models", "approve", "churn@1", "-m", "ok"])
    assert approved.exit_code == 0, approved.output
    moved = runner.invoke(app, ["models", "alias", "churn@1", "champion"])
    assert moved.exit_code == 0 and "churn@champion -> churn@1" in moved.output
    shown = json.loads(runner.invoke(app, ["models", "show", "churn@champion", "--json"]).output)
    assert shown["review"] == "approved" and shown["aliases"] == ["champion"]
    assert "churn" in runner.invoke(app, ["models", "ls"]).output
    assert "churn@1" in runner.invoke(app, ["models", "versions", "churn"]).output

    audit = json.loads(runner.invoke(app, ["audit", "ls", "--json", "-t", "churn"]).output)
    assert [e["action"] for e in audit][:2] == ["alias.set", "review.approved"]
    older = runner.invoke(
        app, ["audit", "ls", "--json", "-t", "churn", "--before", str(audit[0]["seq"])]
    )
    assert json.loads(older.output) == audit[1:]
    none = runner.invoke(app, ["audit", "ls", "--before", "1"])
    assert "no audit entries in this workspace older than entry 1" in none.output
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0
    backend = SqlBackend(store_url)
    with backend.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_log SET actor = 'mallory' WHERE action = 'alias.set'"))
    backend.close()
    tampered = runner.invoke(app, ["audit", "verify"])
    assert tampered.exit_code == 1 and "was edited" in tampered.output


def test_lineage_and_errors(model_dir: Path) -> None:
    import shipyard
    from shipyard import data

    data.add(shipyard_frame(), "train")
    with shipyard.start_run(experiment="e", log_code=False) as run:
        data.load("train")
    result = runner.invoke(
        app, ["models", "register", str(model_dir), "--name", "m", "--run", run.run_id[:8]]
    )
    assert result.exit_code == 0, result.output
    lineage = json.loads(runner.invoke(app, ["models", "lineage", "m@1", "--json"]).output)
    assert lineage["run_id"] == run.run_id and lineage["datasets"] == ["train@1"]
    tagged = runner.invoke(app, ["models", "tag", "m@1", "stage", "staging"])
    assert tagged.exit_code == 0, tagged.output
    shown = json.loads(runner.invoke(app, ["models", "show", "m@1", "--json"]).output)
    assert shown["tags"] == {"stage": "staging"}
    missing = runner.invoke(app, ["models", "show", "m@champion"])
    assert missing.exit_code == 1 and "no alias 'champion'" in missing.output
    deleted = runner.invoke(app, ["models", "alias", "m@1", "nope", "--delete"])
    assert deleted.exit_code == 1
    listed = json.loads(runner.invoke(app, ["users", "ls", "--json"]).output)
    assert listed[0]["role"] == "admin"


def shipyard_frame() -> object:
    import pandas as pd

    return pd.DataFrame({"x": [1, 2, 3]})


def test_scan_flags_a_malicious_pickle(tmp_path: Path) -> None:
    import os
    import pickle

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo owned",))

    folder = tmp_path / "suspicious"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps(Evil()))  # built, never loaded
    result = runner.invoke(app, ["models", "scan", str(folder), "--json"])
    assert result.exit_code == 1
    findings = json.loads(result.output)
    assert findings[0]["severity"] == "error"
    assert any(i["name"] == "system" for i in findings[0]["imports"])
    clean = tmp_path / "clean"
    clean.mkdir()
    assert runner.invoke(app, ["models", "scan", str(clean)]).exit_code == 0


def test_scan_of_a_missing_path_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "scan", str(tmp_path / "typo")])
    assert result.exit_code == 1 and "no such file or folder" in result.output
