"""``shipyard validate`` end to end: registry models, a dataset version, files and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from sklearn.datasets import load_breast_cancer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

import shipyard
from shipyard import data
from shipyard.cli._base import ShipyardGroup
from shipyard.cli.validate import validate

pytestmark = pytest.mark.e2e
STORE_KINDS = ("sqlite",)  # the CLI's wording; gates on PostgreSQL: tests/validation


def _app() -> typer.Typer:
    app = typer.Typer(cls=ShipyardGroup)

    @app.callback()
    def root() -> None:
        """Throwaway root, as the real CLI's."""

    app.command("validate")(validate)
    return app


@pytest.fixture
def cancer(home: Path, tmp_path: Path) -> Path:
    """``cancer-clf@1`` (logistic regression), ``@2`` (a dummy), ``cancer-test@1`` and a CSV."""
    frame = load_breast_cancer(as_frame=True).frame
    train, test = train_test_split(frame, test_size=0.35, random_state=0)
    test = test.assign(group=(test["target"] == 1).map({True: "a", False: "b"}))
    csv = tmp_path / "test.csv"
    test.to_csv(csv, index=False)
    data.add(test, "cancer-test")
    x, y = train.drop(columns="target"), train["target"]
    with shipyard.start_run(experiment="cancer", log_code=False) as run:
        good = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
        run.log_model(good, "cancer-clf", input_example=x.head())
        run.log_model(DummyClassifier().fit(x, y), "cancer-clf", input_example=x.head())
    return csv


def test_validate_writes_reports_and_passes_the_gate(cancer: Path, tmp_path: Path) -> None:
    policy = tmp_path / "gate.yaml"
    policy.write_text("min: {roc_auc: 0.9}\nrequired: [comparison, fairness]\n")
    out = tmp_path / "report"
    result = CliRunner().invoke(
        _app(),
        [
            "validate",
            "cancer-clf@1",
            "--data",
            "cancer-test@1",
            "--against",
            "cancer-clf@2",
            "--policy",
            str(policy),
            "--slice",
            "mean radius",
            "--sensitive",
            "group",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "passed" in result.output and "better" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "cancer-clf@1" and report["data"] == "cancer-test@1"
    assert report["comparison"]["against"] == "cancer-clf@2"
    assert report["gate"] == {"passed": True, "failures": []}
    assert ">Comparison</h2>" in (out / "report.html").read_text()


def test_validate_fails_the_gate_with_exit_1(cancer: Path, tmp_path: Path) -> None:
    policy = tmp_path / "gate.yaml"
    policy.write_text("min: {roc_auc: 0.9}\nmax_regression: {roc_auc: 0.01}\n")
    out = tmp_path / "report"
    result = CliRunner().invoke(
        _app(),
        [
            "validate",
            "cancer-clf@2",
            "--data",
            str(cancer),
            "--against",
            "cancer-clf@1",
            "--policy",
            str(policy),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["gate"]["passed"] is False
    assert "roc_auc 0.500 < min 0.900" in result.stderr
    assert "max_regression 0.010" in result.stderr
    assert (out / "report.html").is_file()


def test_bad_policy_stops_before_evaluating(cancer: Path, tmp_path: Path) -> None:
    policy = tmp_path / "gate.yaml"
    policy.write_text("min: {auc: 0.9}\n")
    out = tmp_path / "report"
    result = CliRunner().invoke(
        _app(),
        [
            "validate",
            "cancer-clf@1",
            "--data",
            "cancer-test@1",
            "--policy",
            str(policy),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 2
    assert "unknown metric 'auc'" in result.stderr
    assert not out.exists()


def test_unknown_model_data_and_target(cancer: Path, tmp_path: Path) -> None:
    runner, app = CliRunner(), _app()
    result = runner.invoke(app, ["validate", "nope@1", "--data", str(cancer)])
    assert result.exit_code == 1 and "error:" in result.stderr
    result = runner.invoke(app, ["validate", "cancer-clf@1", "--data", str(tmp_path / "x.csv")])
    assert result.exit_code == 1 and "no data file" in result.stderr
    result = runner.invoke(
        app, ["validate", "cancer-clf@1", "--data", str(cancer), "--target", "label"]
    )
    assert result.exit_code == 2 and "no target column 'label'" in result.stderr


def test_validating_on_the_training_data_is_refused(home: Path) -> None:
    frame = load_breast_cancer(as_frame=True).frame
    data.add(frame, "all")
    with shipyard.start_run(experiment="leak", log_code=False) as run:
        table = data.load("all@1")
        x, y = table.drop(columns="target"), table["target"]
        run.log_model(LogisticRegression(max_iter=5000).fit(x, y), "leaky", input_example=x.head())
    result = CliRunner().invoke(_app(), ["validate", "leaky@1", "--data", "all@1"])
    assert result.exit_code == 2
    assert "has not seen" in result.output
