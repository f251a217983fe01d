"""Deleting, restoring and renaming (MLflow's lifecycle, which its clients rely on): a mark,
never an erasure — on SQLite, PostgreSQL and through a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import shipyard
from shipyard.errors import AlreadyExistsError, NotFoundError
from shipyard.tracking import open_workspace
from tests._cli import run_shipyard


def test_deleted_runs_are_hidden_kept_and_restored(home: Path) -> None:
    with shipyard.start_run(experiment="e", log_code=False) as kept:
        kept.log_metric("m", 1.0, step=3)
        kept.set_tag("t", "x")
    with shipyard.start_run(experiment="e", log_code=False) as gone:
        gone.log_metric("m", 2.0)
    backend = open_workspace().backend
    assert run_shipyard("runs", "delete", gone.run_id[:8]).returncode == 0
    assert [r.run_id for r in shipyard.search_runs("e", output="runs")] == [kept.run_id]
    exp = backend.get_experiment_by_name("e")
    assert exp is not None
    deleted = backend.search_runs([exp.experiment_id], lifecycle="deleted")
    assert [r.run_id for r in deleted] == [gone.run_id] and deleted[0].deleted_at is not None
    assert len(backend.search_runs([exp.experiment_id], lifecycle="all")) == 2
    assert run_shipyard("runs", "restore", gone.run_id[:8]).returncode == 0
    assert len(shipyard.search_runs("e", output="runs")) == 2
    assert shipyard.get_run(gone.run_id).metrics == {"m": 2.0}  # nothing was erased
    latest = backend.latest_metrics([kept.run_id, gone.run_id])
    assert [(m.key, m.value, m.step) for m in latest[kept.run_id]] == [("m", 1.0, 3)]
    backend.delete_tag(kept.run_id, "t")
    assert "t" not in shipyard.get_run(kept.run_id).tags
    with pytest.raises(NotFoundError):
        backend.delete_tag(kept.run_id, "t")
    with pytest.raises(NotFoundError):
        backend.set_run_deleted("f" * 32, True)


def test_experiments_are_renamed_deleted_with_their_runs_and_restored(home: Path) -> None:
    with shipyard.start_run(experiment="first", log_code=False) as run:
        run.log_metric("m", 1.0)
    with shipyard.start_run(experiment="taken", log_code=False):
        pass
    assert run_shipyard("experiments", "rename", "first", "second").returncode == 0
    refused = run_shipyard("experiments", "rename", "second", "taken")
    assert refused.returncode != 0 and "already exists" in refused.stderr
    backend = open_workspace().backend
    second = backend.get_experiment_by_name("second")
    assert second is not None
    with pytest.raises(AlreadyExistsError):
        backend.rename_experiment(second.experiment_id, "taken")
    assert run_shipyard("experiments", "delete", "second").returncode == 0
    listed = json.loads(run_shipyard("experiments", "ls", "--json").stdout)
    assert [e["name"] for e in listed] == ["taken"]
    every = json.loads(run_shipyard("experiments", "ls", "--deleted", "--json").stdout)
    assert {e["name"] for e in every} == {"second", "taken"}
    assert shipyard.get_run(run.run_id).deleted_at is not None  # its runs went with it
    assert run_shipyard("experiments", "restore", "second").returncode == 0
    assert shipyard.get_run(run.run_id).deleted_at is None
    missing = run_shipyard("experiments", "delete", "nope")
    assert missing.returncode != 0 and "no experiment named 'nope'" in missing.stderr
