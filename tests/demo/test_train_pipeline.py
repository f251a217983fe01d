"""The demo's training pipeline, copied out of the package and run by path as the demo and
its automation run it: it registers a model with lineage to its data, records its study, and
the gate policy passes a good model and stops a degraded one."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pandas as pd
import pytest

import shipyard
from shipyard import models, validation
from shipyard.demo.synthetic import GATE_POLICY_YAML, SENSITIVE, TARGET, make_customers
from shipyard.entities import ModelVersion
from shipyard.pipelines.loading import load_pipeline
from shipyard.pipelines.runner import PipelineResult, run_pipeline
from shipyard.registry import Registry
from shipyard.tuning import load_study

pytestmark = pytest.mark.integration
# the pipeline and its gate; the store layer runs on PostgreSQL in tests/store
STORE_KINDS = ("sqlite",)


def _pipeline_file(home: Path) -> Path:
    """``train.py`` where the demo puts it, outside the package, so it must import alone."""
    spec = importlib.util.find_spec("shipyard.demo.train")
    assert spec is not None and spec.origin is not None
    target = home.parent / "pipelines" / "train.py"
    target.parent.mkdir()
    shutil.copyfile(spec.origin, target)
    return target


def _run(path: Path, home: Path, trials: int = 3) -> PipelineResult:
    pipe, source = load_pipeline(f"{path}:train")
    return run_pipeline(pipe, {"trials": trials}, home=home, source=source, echo=False)


def _version(ref: str) -> ModelVersion:
    workspace = shipyard.open_workspace()
    return Registry(workspace.backend, workspace.settings.user).resolve(ref)


def _gate(
    candidate: str, holdout: pd.DataFrame, champion: str, policy_file: Path
) -> validation.GateResult:
    report = validation.evaluate(
        models.load(candidate),
        holdout,
        target=TARGET,
        sensitive=[SENSITIVE],
        against=models.load(champion),
        model_name=candidate,
        against_name=champion,
    )
    return validation.apply_policy(report, validation.load_policy(policy_file))


def test_a_version_is_registered_with_its_data_study_and_gate(home: Path) -> None:
    path = _pipeline_file(home)
    policy = home.parent / "gate.yaml"
    policy.write_text(GATE_POLICY_YAML)
    shipyard.data.add(make_customers(6_000, seed=0), "customers")

    result = _run(path, home)

    assert result.output("fit") == "churn@1"
    version = _version("churn@latest")
    assert version.ref == "churn@1" and version.run_id is not None
    backend = shipyard.open_workspace().backend
    read = backend.run_dataset_versions([version.run_id], "input")
    assert [dv.ref for _, dv in read] == ["customers@1"]
    edges = {(e.kind, e.ref, e.direction) for e in backend.pipeline_lineage(run_id=result.run_id)}
    assert ("dataset_version", "customers@1", "read") in edges
    assert ("model_version", "churn@1", "made") in edges
    assert shipyard.get_run(version.run_id).metrics["roc_auc"] > 0.75

    study = load_study(result.output("search", "study"))
    assert [t.state for t in study.trials] == ["COMPLETE"] * 3
    assert study.best_params == result.output("search", "params")

    # The first version has no champion yet: compared with itself, only the bounds count.
    holdout = make_customers(4_000, seed=100)
    gate = _gate("churn@1", holdout, "churn@1", policy)
    assert gate.passed, gate.failures

    again = _run(path, home)
    assert again.cached == ["split", "search", "fit"]
    assert again.output("fit") == "churn@1"


def test_the_gate_passes_a_retrained_model_and_stops_the_stale_one(home: Path) -> None:
    path = _pipeline_file(home)
    policy = home.parent / "gate.yaml"
    policy.write_text(GATE_POLICY_YAML)
    shipyard.data.add(make_customers(6_000, seed=0), "customers")
    assert _run(path, home).output("fit") == "churn@1"
    shipyard.data.add(make_customers(6_000, seed=1, drift=1.0), "customers")

    retrained = _run(path, home)

    assert retrained.executed == ["split", "search", "fit"]
    assert retrained.output("fit") == "churn@2"
    version = _version("churn@2")
    assert version.run_id is not None
    read = shipyard.open_workspace().backend.run_dataset_versions([version.run_id], "input")
    assert [dv.ref for _, dv in read] == ["customers@2"]
    drifted = make_customers(4_000, seed=101, drift=1.0)
    passed = _gate("churn@2", drifted, "churn@1", policy)
    assert passed.passed, passed.failures
    stopped = _gate("churn@1", drifted, "churn@2", policy)
    assert not stopped.passed
    assert any(f.startswith("roc_auc") and "< min 0.750" in f for f in stopped.failures)
    assert any("worse than churn@2" in f for f in stopped.failures)
