"""The tracking API users call: runs, params, metrics, tags, artifacts, search."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

import shipyard
from shipyard.entities import RunStatus
from shipyard.errors import (
    FilterSyntaxError,
    InvalidArgumentError,
    NotFoundError,
    ParamConflictError,
    UnsafePathError,
)

pytestmark = pytest.mark.integration


def test_run_as_context_manager(home: Path) -> None:
    with shipyard.start_run(experiment="churn", name="first") as run:
        assert shipyard.active_run() is run
        run.log_params({"model": "rf", "trees": 100})
        run.log_metric("auc", 0.91, step=3)
        run.set_tag("team", "ml")
    assert shipyard.active_run() is None
    stored = shipyard.get_run(run.run_id)
    assert stored.name == "first"
    assert stored.status is RunStatus.FINISHED
    assert stored.params == {"model": "rf", "trees": "100"}
    assert stored.metrics == {"auc": 0.91}
    assert stored.tags["team"] == "ml"
    assert stored.user == "alice"
    assert stored.end_time is not None and stored.duration_ms is not None
    assert stored.duration_ms >= 0


def test_exception_marks_failed_and_ctrl_c_killed(home: Path) -> None:
    with pytest.raises(RuntimeError), shipyard.start_run(experiment="e") as failed:
        raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt), shipyard.start_run(experiment="e") as killed:
        raise KeyboardInterrupt
    assert shipyard.get_run(failed.run_id).status is RunStatus.FAILED
    assert shipyard.get_run(killed.run_id).status is RunStatus.KILLED


def test_module_level_functions_act_on_the_active_run(home: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="no active run"):
        shipyard.log_metric("auc", 1.0)
    shipyard.start_run(experiment="e")
    shipyard.log_param("lr", 0.1)
    shipyard.log_params({"depth": 3})
    shipyard.set_tag("a", "b")
    shipyard.set_tags({"c": "d"})
    shipyard.log_metric("loss", 0.5)
    shipyard.log_metrics({"loss": 0.4, "acc": 0.8})
    run = shipyard.active_run()
    assert run is not None
    shipyard.end_run()
    stored = shipyard.get_run(run.run_id)
    assert stored.params == {"depth": "3", "lr": "0.1"}
    assert stored.metrics == {"acc": 0.8, "loss": 0.4}
    # without an explicit step, each key counts its own steps from 0
    assert [m.step for m in shipyard.get_metric_history(run.run_id, "loss")] == [0, 1]
    assert {"a": "b", "c": "d"}.items() <= stored.tags.items()


def test_nested_runs(home: Path) -> None:
    with shipyard.start_run(experiment="sweep") as parent:
        with pytest.raises(InvalidArgumentError, match="nested=True"):
            shipyard.start_run()
        with shipyard.start_run(nested=True, name="trial") as child:
            assert shipyard.active_run() is child
        assert shipyard.active_run() is parent
        with pytest.raises(InvalidArgumentError, match="parent's experiment"):
            shipyard.start_run(experiment="other", nested=True)
    stored = shipyard.get_run(child.run_id)
    assert stored.parent_run_id == parent.run_id
    assert stored.experiment_id == parent.experiment_id


def test_child_runs_follow_their_parent_into_an_explicit_workspace(
    home: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere" / ".shipyard"
    with shipyard.start_run(experiment="sweep", home=elsewhere) as parent:
        with shipyard.start_run(nested=True) as child:
            pass
    stored = shipyard.get_run(child.run_id, home=elsewhere)
    assert stored.parent_run_id == parent.run_id


def test_resume_a_run(home: Path) -> None:
    with shipyard.start_run(experiment="e") as run:
        run.log_param("a", 1)
    with shipyard.start_run(run_id=run.run_id[:8]) as again:
        again.log_metric("later", 2.0)
        with pytest.raises(ParamConflictError):
            again.log_param("a", 2)
    stored = shipyard.get_run(run.run_id)
    assert stored.metrics == {"later": 2.0}
    assert stored.status is RunStatus.FINISHED


def test_ten_thousand_metrics_are_buffered_then_all_written(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_METRIC_FLUSH_INTERVAL", "3600")
    with shipyard.start_run(experiment="e") as run:
        for i in range(9_999):
            run.log_metric("loss", 1.0 / (i + 1), step=i)
        assert len(run.workspace.metric_buffer) == 9_999  # buffered, not yet written
        assert run.workspace.backend.get_metric_history(run.run_id, "loss") == []
        run.log_metric("loss", 1e-4, step=9_999)
    history = shipyard.get_metric_history(run.run_id, "loss")
    assert len(history) == 10_000
    assert history[-1].value == pytest.approx(1e-4)


def test_flush_acknowledges_buffered_metrics(home: Path) -> None:
    run = shipyard.start_run(experiment="e")
    run.log_metric("x", 1.0)
    backend = run.workspace.backend
    assert backend.get_metric_history(run.run_id, "x") == []
    shipyard.flush()
    assert [m.value for m in backend.get_metric_history(run.run_id, "x")] == [1.0]
    run.end()


def test_full_buffer_flushes_in_the_callers_thread(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_METRIC_BUFFER_SIZE", "100")
    monkeypatch.setenv("SHIPYARD_METRIC_FLUSH_INTERVAL", "3600")
    with shipyard.start_run(experiment="e") as run:
        for i in range(250):
            run.log_metric("x", i)
        written = run.workspace.backend.get_metric_history(run.run_id, "x")
        assert len(written) == 200
        assert len(run.workspace.metric_buffer) == 50


def test_background_flush_on_a_timer(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("SHIPYARD_METRIC_FLUSH_INTERVAL", "0.05")
    with shipyard.start_run(experiment="e") as run:
        run.log_metric("x", 1.0)
        deadline = time.monotonic() + 10
        while not run.workspace.backend.get_metric_history(run.run_id, "x"):
            assert time.monotonic() < deadline, "the background flusher never wrote"
            time.sleep(0.02)


def test_nan_and_inf_metrics(home: Path) -> None:
    with shipyard.start_run(experiment="e") as run:
        run.log_metrics({"nan": math.nan, "inf": math.inf, "ninf": -math.inf})
    stored = shipyard.get_run(run.run_id).metrics
    assert math.isnan(stored["nan"]) and stored["inf"] == math.inf and stored["ninf"] == -math.inf


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.log_metric("auc", "high"), "must be a number"),
        (lambda r: r.log_metric("auc", None), "must be a number"),
        (lambda r: r.log_metric("bad/../key", 1.0), "invalid metric name"),
        (lambda r: r.log_metric("x", 1.0, step=1.5), "must be an integer"),
        (lambda r: r.log_param("", 1), "invalid param name"),
        (lambda r: r.log_param("p", "x" * 7000), "the limit is 6000"),
        (lambda r: r.set_tag("a;drop", 1), "invalid tag name"),
    ],
)
def test_bad_input_is_a_clear_error(home: Path, call: object, message: str) -> None:
    with shipyard.start_run(experiment="e") as run:
        with pytest.raises(InvalidArgumentError, match=message):
            call(run)  # type: ignore[operator]


def test_artifacts_files_folders_and_text(home: Path, tmp_path: Path) -> None:
    (tmp_path / "plot.png").write_bytes(b"\x89PNG fake")
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"w" * 1000)
    (folder / "sub" / "config.json").write_text("{}")
    with shipyard.start_run(experiment="e") as run:
        file_rec = run.log_artifact(tmp_path / "plot.png")
        dir_rec = run.log_artifact(folder, "models/best")
        text_rec = run.log_text("hello", "notes/readme.txt")
        with pytest.raises(UnsafePathError):
            run.log_artifact(tmp_path / "plot.png", "../escape.png")
        with pytest.raises(UnsafePathError):
            run.log_text("x", "/etc/passwd")
        with pytest.raises(NotFoundError):
            run.log_artifact(tmp_path / "missing.txt")
    assert file_rec.path == "plot.png" and not file_rec.is_dir
    assert dir_rec.is_dir and dir_rec.file_count == 2 and dir_rec.size == 1002
    records = {r.path: r for r in run.workspace.backend.list_artifacts(run.run_id)}
    assert {"plot.png", "models/best", "notes/readme.txt"} <= set(records)
    store = run.workspace.artifacts
    assert store.read_bytes(text_rec.digest) == b"hello"
    out = store.get_dir(dir_rec.digest, tmp_path / "restored")
    assert (out / "sub" / "config.json").read_text() == "{}"


def test_code_version_and_environment(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    repo = home.parent
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", str(repo)], check=True)
    (repo / "train.py").write_text("print('v1')\n")
    subprocess.run([*git, "-C", str(repo), "add", "train.py"], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "v1"], check=True)
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (repo / "train.py").write_text("print('v2, not committed')\n")
    monkeypatch.setattr("sys.argv", [str(repo / "train.py")])

    with shipyard.start_run(experiment="e") as run:
        pass
    stored = shipyard.get_run(run.run_id)
    assert stored.git_commit == commit
    assert stored.tags["shipyard.git.dirty"] == "true"
    assert stored.tags["shipyard.python"].startswith("CPython 3.")
    records = {r.path: r for r in run.workspace.backend.list_artifacts(run.run_id)}
    diff = run.workspace.artifacts.read_bytes(records["_shipyard/code.diff"].digest)
    assert b"+print('v2, not committed')" in diff
    assert stored.tags["shipyard.git.diff_digest"] == records["_shipyard/code.diff"].digest
    requirements = run.workspace.artifacts.read_bytes(records["_shipyard/requirements.txt"].digest)
    assert b"SQLAlchemy==" in requirements or b"sqlalchemy==" in requirements.lower()


def test_search_runs_returns_a_dataframe_or_runs(home: Path) -> None:
    for model, auc in (("rf", 0.95), ("rf", 0.80), ("gbm", 0.92)):
        with shipyard.start_run(experiment="churn", log_code=False) as run:
            run.log_params({"model": model})
            run.log_metric("auc", auc)
    with shipyard.start_run(experiment="other", log_code=False) as run:
        run.log_params({"model": "rf"})
        run.log_metric("auc", 0.99)

    frame = shipyard.search_runs("churn", filter="metrics.auc > 0.9", order_by=["metrics.auc DESC"])
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["metrics.auc"]) == [0.95, 0.92]
    assert list(frame["params.model"]) == ["rf", "gbm"]
    assert str(frame["start_time"].dtype).startswith("datetime64")
    runs = shipyard.search_runs(filter="params.model = 'rf'", output="runs")
    assert len(runs) == 3
    assert shipyard.search_runs("churn", filter="metrics.auc > 2").empty
    with pytest.raises(FilterSyntaxError) as caught:
        shipyard.search_runs("churn", filter="metrics.auc > 0.9 and parms.model = 'rf'")
    assert caught.value.position == len("metrics.auc > 0.9 and ")
    with pytest.raises(NotFoundError, match="no experiment named 'nope'"):
        shipyard.search_runs("nope")
    assert [e.name for e in shipyard.list_experiments()] == ["churn", "other"]


def test_log_figure_saves_through_the_figure(home: Path) -> None:
    class Figure:  # anything with matplotlib's savefig(path) works
        def savefig(self, path: Path) -> None:
            Path(path).write_bytes(b"\x89PNG figure bytes")

    with shipyard.start_run(experiment="e", log_code=False) as run:
        record = run.log_figure(Figure(), "plots/roc.png")
    assert record.path == "plots/roc.png"
    assert run.workspace.artifacts.read_bytes(record.digest) == b"\x89PNG figure bytes"
