"""Runs are recorded whole: failures keep their traceback and logs, re-runs resume from the
cache, steps that log runs and register models are linked in the lineage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import shipyard
from shipyard.entities import PipelineRun, PipelineStatus, StepStatus
from shipyard.errors import NotFoundError
from shipyard.pipelines import PipelineFailedError, step_logs
from shipyard.pipelines.runner import shown_status
from tests.pipelines._files import edit, run, write

pytestmark = pytest.mark.integration

FLAKY = """
import shipyard

@shipyard.step
def first() -> int:
    print("first says hello")
    return 1

@shipyard.step
def second(x: int) -> int:
    print("second is about to fail")
    raise ValueError("bad input row 7")

@shipyard.step
def third(x: int) -> int:
    return x + 1

@shipyard.pipeline
def flaky():
    return third(second(first()))
"""


def test_a_failed_step_fails_the_run_with_its_traceback_and_logs(
    tmp_path: Path, home: Path
) -> None:
    path = write(tmp_path, FLAKY)
    with pytest.raises(PipelineFailedError, match=r"step 'second'.*ValueError: bad input row 7"):
        run(path, "flaky")
    ws = shipyard.open_workspace()
    (failed,) = ws.backend.list_pipeline_runs("flaky")
    assert failed.status is PipelineStatus.FAILED
    assert "step 'second' failed" in failed.error
    steps = {s.name: s for s in ws.backend.list_step_runs(failed.run_id)}
    assert steps["first"].status is StepStatus.FINISHED
    assert steps["second"].status is StepStatus.FAILED
    assert steps["third"].status is StepStatus.SKIPPED
    assert 'raise ValueError("bad input row 7")' in steps["second"].error
    assert step_logs(ws.artifacts, steps["second"]) == "second is about to fail\n"
    assert step_logs(ws.artifacts, steps["first"]) == "first says hello\n"

    # Fixed: the re-run resumes from the cache.
    edit(path, '    raise ValueError("bad input row 7")', "    return x * 10")
    result = run(path, "flaky")
    assert result.cached == ["first"]
    assert result.executed == ["second", "third"]
    assert result.output("third") == 11


def test_a_step_over_its_timeout_is_stopped_in_process(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        import time
        import shipyard

        @shipyard.step(timeout=0.5)
        def slow() -> int:
            time.sleep(30)
            return 1

        @shipyard.pipeline
        def sleepy():
            return slow()
        """,
    )
    with pytest.raises(PipelineFailedError, match=r"StepTimeoutError: timed out after 0.5 s"):
        run(path, "sleepy")
    (record,) = shipyard.open_workspace().backend.list_pipeline_runs("sleepy")
    assert record.status is PipelineStatus.FAILED


def test_runs_and_models_made_by_a_step_are_in_its_lineage(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        import numpy as np
        import pandas as pd
        import shipyard
        from shipyard.models import log_model
        from sklearn.linear_model import LogisticRegression

        @shipyard.step
        def data(rows: int) -> pd.DataFrame:
            x = np.linspace(-1, 1, rows)
            return pd.DataFrame({"x": x, "y": (x > 0).astype(int)})

        @shipyard.step
        def train(frame: pd.DataFrame) -> str:
            with shipyard.start_run(experiment="churn", log_code=False) as run:
                model = LogisticRegression().fit(frame[["x"]], frame["y"])
                run.log_metric("rows", len(frame))
                version = log_model(run, model, "churn-model")
            return f"{version.model}@{version.version}"

        @shipyard.pipeline
        def training(rows: int = 50):
            return train(data(rows))
        """,
    )
    result = run(path, "training")
    assert result.output("train") == "churn-model@1"
    ws = shipyard.open_workspace()
    edges = ws.backend.pipeline_lineage(run_id=result.run_id)
    made = {(e.kind, e.direction) for e in edges}
    assert made == {("run", "made"), ("model_version", "made")}
    (run_edge,) = [e for e in edges if e.kind == "run"]
    tracked = shipyard.get_run(run_edge.ref)
    assert tracked.tags["shipyard.pipeline.step_run"] == result.step("train").step_run_id
    assert tracked.tags["shipyard.pipeline.run"] == result.run_id
    assert [e.ref for e in edges if e.kind == "model_version"] == ["churn-model@1"]
    assert all(e.step_run_id == result.step("train").step_run_id for e in edges)
    assert ws.backend.pipeline_lineage(kind="model_version", ref="churn-model@1")[0].run_id == (
        result.run_id
    )
    from typer.testing import CliRunner

    from shipyard.cli import app

    shown = CliRunner().invoke(app, ["models", "lineage", "churn-model@1", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["pipeline_runs"] == [
        {"pipeline": "training", "run_id": result.run_id, "step": "train"}
    ]


def test_outputs_are_loaded_by_name(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        import shipyard

        @shipyard.step(outputs=("low", "high"))
        def split(n: int):
            return list(range(n // 2)), list(range(n // 2, n))

        @shipyard.pipeline
        def halves(n: int = 4):
            return split(n)
        """,
    )
    result = run(path, "halves")
    assert result.output("split", "low") == [0, 1]
    assert result.output("split", "high") == [2, 3]
    with pytest.raises(NotFoundError, match="has no output 'output'"):
        result.output("split")
    with pytest.raises(NotFoundError, match="no step 'join'"):
        result.output("join")


def test_a_running_run_whose_process_died_shows_as_crashed(home: Path) -> None:
    from shipyard.tracking.liveness import this_process

    me = this_process()
    alive = PipelineRun(
        run_id="a" * 32, pipeline="p", source="p.py:p", params={},
        status=PipelineStatus.RUNNING, executor="inprocess", user="alice", start_time=1,
        owner=json.dumps([me.host, me.pid, me.process_start]), heartbeat=1,
    )  # fmt: skip
    assert shown_status(alive) == "RUNNING"
    gone = PipelineRun(
        **{**alive.__dict__, "owner": json.dumps([me.host, 2**22 + os.getpid(), "1"])}
    )
    assert shown_status(gone) == "CRASHED"


def test_a_tuning_study_is_a_step(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        import shipyard
        from shipyard.tuning import Float

        def objective(trial):
            return (trial.params["x"] - 2.0) ** 2

        @shipyard.step
        def search(trials: int) -> dict:
            study = shipyard.tune(
                objective, {"x": Float(-5.0, 5.0)}, n_trials=trials, study="quad", seed=1
            )
            return {"x": study.best_params["x"], "value": study.best_value}

        @shipyard.step
        def report(best: dict) -> str:
            return f"x={best['x']:.2f}"

        @shipyard.pipeline
        def tuned(trials: int = 8):
            return report(search(trials))
        """,
    )
    result = run(path, "tuned")
    best = result.output("search")
    assert best["value"] == pytest.approx((best["x"] - 2.0) ** 2)
    edges = shipyard.open_workspace().backend.pipeline_lineage(run_id=result.run_id)
    made = [e.ref for e in edges if e.kind == "run"]
    assert len(made) == 9  # the study's run and its 8 trials
    study_runs = [shipyard.get_run(r) for r in made]
    parents = {r.parent_run_id for r in study_runs}
    assert len(parents) == 2  # None for the study's run, its id for every trial
    assert all(e.step_run_id == result.step("search").step_run_id for e in edges)
    assert run(path, "tuned").cached == ["search", "report"]  # no new trials on a re-run
