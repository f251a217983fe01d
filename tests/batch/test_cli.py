"""``shipyard predict`` and ``shipyard export`` on a stand-in root app (registration is in cli/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import shipyard
from shipyard.cli._base import ShipyardGroup
from shipyard.cli.batch import export, predict

pytestmark = pytest.mark.integration


def _app() -> typer.Typer:
    app = typer.Typer(cls=ShipyardGroup, pretty_exceptions_enable=False)

    @app.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = {"home": None}

    app.command("predict")(predict)
    app.command("export")(export)
    return app


def test_predict_and_export_commands(home: Path, tmp_path: Path) -> None:
    frame = load_breast_cancer(as_frame=True).frame
    x = frame.drop(columns="target")
    clf = LogisticRegression(max_iter=5000).fit(x, frame["target"])
    with shipyard.start_run(experiment="train", log_code=False) as run:
        run.log_model(clf, "cancer", input_example=x.head())
    frame.to_csv(tmp_path / "in.csv", index=False)
    runner = CliRunner()
    args = [
        "predict",
        "cancer@1",
        "--input",
        str(tmp_path / "in.csv"),
        "-o",
        str(tmp_path / "p.parquet"),
    ]
    done = runner.invoke(_app(), [*args, "--batch-size", "100", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["rows"] == len(frame) and report["batches"] == 6
    assert report["columns"] == ["target", "prediction", "model_version"]
    plain = runner.invoke(_app(), args)
    assert plain.exit_code == 0 and "cancer-predictions@2" in " ".join(plain.output.split())

    bad = runner.invoke(_app(), [*args[:3], str(tmp_path / "missing.csv"), *args[4:]])
    assert bad.exit_code == 1 and "does not exist" in bad.output

    out = tmp_path / "pkg"
    done = runner.invoke(
        _app(),
        [
            "export",
            "cancer@1",
            "--out",
            str(out),
            "--sample",
            str(tmp_path / "in.csv"),
            "--quantize",
        ],
    )
    assert done.exit_code == 0, done.output
    assert "model.int8.onnx" in done.output and (out / "model.onnx").is_file()
    wrong = runner.invoke(
        _app(), ["export", "cancer@1", "--out", str(tmp_path / "x"), "--format", "tflite"]
    )
    assert wrong.exit_code == 2 and "only onnx" in wrong.output
