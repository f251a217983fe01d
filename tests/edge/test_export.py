"""export_onnx on real models, and the edge runner run as its own process."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import shipyard
from shipyard import data
from shipyard.errors import AlreadyExistsError, InvalidArgumentError
from shipyard.export import ParityError, export_onnx

pytestmark = pytest.mark.integration
STORE_KINDS = ("sqlite",)  # ONNX export; the registry runs on PostgreSQL in tests/registry


def _cancer() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    frame = load_breast_cancer(as_frame=True).frame
    train, held_out = frame.iloc[:450], frame.iloc[450:]
    return train, held_out, held_out.drop(columns="target")


def _log(model: Any, name: str, train: pd.DataFrame) -> Any:
    """Train on the ``train`` dataset version inside a run, so its input is recorded."""
    data.add(train, f"{name}-train")
    with shipyard.start_run(experiment="train", log_code=False) as run:
        table = data.load(f"{name}-train@1")
        x = table.drop(columns="target")
        model.fit(x, table["target"])
        run.log_model(model, name, input_example=x.head())
    return model


def _run_edge(package: Path, rows: pd.DataFrame, tmp_path: Path, *extra: str) -> pd.DataFrame:
    source = tmp_path / "input.csv"
    rows.to_csv(source, index=False, float_format="%.17g")
    out = tmp_path / "preds.csv"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "shipyard.edge",
            str(package),
            str(source),
            "--output",
            str(out),
            *extra,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return pd.read_csv(out)


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        lambda: RandomForestClassifier(n_estimators=20, random_state=0),
    ],
    ids=["logreg", "forest"],
)
def test_sklearn_classifier_export_parity_and_edge_runner(
    home: Path, tmp_path: Path, make: Any
) -> None:
    train, held_out, x = _cancer()
    clf = _log(make(), "cancer", train)
    result = export_onnx("cancer@1", tmp_path / "pkg", sample=held_out, quantize=True)
    package = result.path
    assert sorted(p.name for p in package.iterdir()) == [
        "manifest.json",
        "model.int8.onnx",
        "model.onnx",
        "parity.json",
        "shipyard_edge.py",
    ]
    parity = json.loads((package / "parity.json").read_text())
    assert parity == result.parity and parity["rows"] == len(held_out)
    assert parity["model.onnx"]["passed"] and parity["model.onnx"]["label_mismatches"] == 0
    assert parity["model.onnx"]["max_abs_diff"] <= 1e-4
    assert parity["model.int8.onnx"]["passed"] is None  # reported, not enforced
    assert parity["model.int8.onnx"]["max_abs_diff"] >= 0
    manifest = json.loads((package / "manifest.json").read_text())
    assert manifest["source"]["ref"] == "cancer@1"
    assert manifest["features"] == list(x.columns)
    assert manifest["signature"]["inputs"][0]["name"] == "mean radius"
    assert set(manifest["files"]["model.onnx"]) == {"sha256", "blake3", "size"}

    shuffled = x[list(reversed(x.columns))].assign(extra="ignored")  # order comes from manifest
    edge = _run_edge(package, shuffled, tmp_path)
    np.testing.assert_array_equal(edge["prediction"], clf.predict(x))
    np.testing.assert_allclose(edge[["proba_0", "proba_1"]], clf.predict_proba(x), atol=1e-5)


def test_default_sample_is_the_training_table(home: Path, tmp_path: Path) -> None:
    train, _, _ = _cancer()
    _log(LogisticRegression(max_iter=5000), "cancer", train)
    result = export_onnx("cancer", tmp_path / "pkg")
    assert result.parity["rows"] == len(train)
    assert result.parity["rows_source"] == "dataset cancer-train@1"  # before the signature


def test_regression_export_and_quantized_tolerance(home: Path, tmp_path: Path) -> None:
    frame = load_diabetes(as_frame=True).frame
    reg = _log(Ridge(), "diabetes", frame.iloc[:350])
    held_out = frame.iloc[350:]
    result = export_onnx("diabetes@1", tmp_path / "pkg", sample=held_out, tolerance=1e-3)
    assert result.parity["model.onnx"]["max_abs_diff"] <= 1e-3
    assert "label_mismatches" not in result.parity["model.onnx"]
    edge = _run_edge(result.path, held_out.drop(columns="target"), tmp_path)
    np.testing.assert_allclose(
        edge["prediction"], reg.predict(held_out.drop(columns="target")), rtol=1e-5
    )


def test_too_small_a_tolerance_fails_and_writes_nothing(home: Path, tmp_path: Path) -> None:
    train, held_out, _ = _cancer()
    _log(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), "cancer", train)
    with pytest.raises(ParityError, match="Nothing was written") as caught:
        export_onnx("cancer@1", tmp_path / "edge" / "pkg", sample=held_out, tolerance=0.0)
    assert caught.value.parity["model.onnx"]["max_abs_diff"] > 0
    assert list((tmp_path / "edge").iterdir()) == []


def test_bad_requests_are_refused(home: Path, tmp_path: Path) -> None:
    train, held_out, _ = _cancer()
    _log(LogisticRegression(max_iter=5000), "cancer", train)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(AlreadyExistsError):
        export_onnx("cancer", tmp_path / "busy", sample=held_out)
    with pytest.raises(InvalidArgumentError, match="lacks"):
        export_onnx("cancer", tmp_path / "pkg", sample=held_out.drop(columns="mean radius"))
    assert not (tmp_path / "pkg").exists()


def test_torch_mlp_export(home: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    frame = load_breast_cancer(as_frame=True).frame
    x = frame.drop(columns="target")
    scaled = ((x - x.mean()) / x.std()).astype("float32")
    # np.array copies: pandas 3 hands out read-only arrays, which torch warns about.
    net = torch.nn.Sequential(
        torch.nn.Linear(30, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2), torch.nn.Softmax(dim=1)
    )
    with shipyard.start_run(experiment="train", log_code=False) as run:
        run.log_model(net, "mlp", input_example=np.array(scaled.head()))
    rows = scaled.iloc[400:]
    result = export_onnx(
        "mlp@1", tmp_path / "pkg", sample=np.array(rows), trusted_code=True, quantize=True
    )
    assert result.parity["model.onnx"]["max_abs_diff"] <= 1e-4
    assert "model.int8.onnx" in result.parity
    with torch.no_grad():
        expected = net(torch.tensor(np.array(rows))).numpy()
    edge = _run_edge(result.path, rows, tmp_path)
    np.testing.assert_allclose(edge[["prediction_0", "prediction_1"]], expected, atol=1e-5)


def test_edge_runner_imports_only_numpy_and_onnxruntime(home: Path, tmp_path: Path) -> None:
    train, held_out, x = _cancer()
    _log(LogisticRegression(max_iter=5000), "cancer", train)
    package = export_onnx("cancer", tmp_path / "pkg", sample=held_out).path
    x.to_csv(tmp_path / "in.csv", index=False)
    probe = (
        "import runpy, sys\n"
        f"sys.argv = ['shipyard.edge', {str(package)!r}, {str(tmp_path / 'in.csv')!r}, "
        f"'--output', {str(tmp_path / 'out.csv')!r}]\n"
        "try:\n    runpy.run_module('shipyard.edge', run_name='__main__')\n"
        "except SystemExit as stop:\n    assert stop.code == 0, stop.code\n"
        "heavy = {'pandas', 'sklearn', 'sqlalchemy', 'torch', 'pyarrow', 'skl2onnx', 'ray'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
        "print('onnxruntime' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.split("\n")[:2] == ["[]", "True"]
    with open(tmp_path / "out.csv", newline="") as file:
        assert len(list(csv.reader(file))) == len(x) + 1


def test_standalone_copy_and_tampered_model(home: Path, tmp_path: Path) -> None:
    train, held_out, x = _cancer()
    clf = _log(LogisticRegression(max_iter=5000), "cancer", train)
    package = export_onnx("cancer", tmp_path / "pkg", sample=held_out).path
    x.to_csv(tmp_path / "in.csv", index=False)
    alone = subprocess.run(
        [
            sys.executable,
            "-I",
            str(package / "shipyard_edge.py"),
            str(package),
            str(tmp_path / "in.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert alone.returncode == 0, alone.stderr
    predictions = [row[0] for row in csv.reader(alone.stdout.splitlines()[1:])]
    np.testing.assert_array_equal(np.asarray(predictions, dtype=int), clf.predict(x))
    with open(package / "model.onnx", "ab") as file:
        file.write(b"\0")
    broken = subprocess.run(
        [sys.executable, "-m", "shipyard.edge", str(package), str(tmp_path / "in.csv")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert broken.returncode == 2 and "sha256" in broken.stderr
