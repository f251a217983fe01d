"""Where parity rows come from: the caller, the run's table, or the model's example and
signature."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import shipyard
from shipyard import data
from shipyard.entities import ModelSignature
from shipyard.entities.models import ColumnSpec
from shipyard.errors import InvalidArgumentError
from shipyard.export import ParityError, export_onnx
from shipyard.export.rows import (
    EXAMPLE_SOURCE,
    SEED,
    SYNTHETIC_ROWS,
    SYNTHETIC_SOURCE,
    parity_rows,
    synthetic_rows,
)
from shipyard.models import META_FILE, load_input_example, read_meta, save_model
from shipyard.models.example import EXAMPLE_FILE
from shipyard.models.logged import model_path
from shipyard.registry import Registry
from tests._cli import run_shipyard
from tests.models.conftest import rewrite_digests

STORE_KINDS = ("sqlite",)  # ONNX export; the registry runs on PostgreSQL in tests/registry


SYNTHETIC = f"signature (synthetic rows, seed {SEED})"
WITH_EXAMPLE = f"input example + {SYNTHETIC}"


def _cancer() -> tuple[pd.DataFrame, pd.Series]:
    frame = load_breast_cancer(as_frame=True).frame
    return frame.drop(columns="target"), frame["target"]


def _signature(*specs: tuple[str, str]) -> ModelSignature:
    return ModelSignature(inputs=tuple(ColumnSpec(name, kind) for name, kind in specs))


# --- synthetic_rows ----------------------------------------------------------------------------


def test_synthetic_rows_follow_the_signature_and_the_seed() -> None:
    signature = _signature(("x", "float64"), ("small", "float32"), ("n", "int64"), ("b", "bool"))
    rows = synthetic_rows(signature, rows=5000, seed=7)
    assert list(rows.columns) == ["x", "small", "n", "b"]
    assert [str(t) for t in rows.dtypes] == ["float64", "float32", "int64", "bool"]
    assert abs(rows["x"].mean()) < 0.1 and abs(rows["x"].std() - 1) < 0.1  # standard normal
    assert (rows["x"] == rows["x"].astype("float32")).all()  # what a float32 model sees too
    assert rows["n"].min() == 0 and rows["n"].max() == 10
    assert set(rows["b"]) == {True, False}
    pd.testing.assert_frame_equal(rows, synthetic_rows(signature, rows=5000, seed=7))
    assert not rows["x"].equals(synthetic_rows(signature, rows=5000, seed=8)["x"])


def test_synthetic_rows_take_ranges_and_categories_from_an_example() -> None:
    example = pd.DataFrame(
        {"x": [10.0, 20.0, 15.0], "n": [3, 5, 4], "city": ["Oslo", "Lima", "Oslo"]}
    )
    signature = _signature(("x", "float64"), ("n", "int64"), ("city", "string"))
    rows = synthetic_rows(signature, rows=500, seed=0, example=example)
    assert rows["x"].between(10, 20).all() and rows["x"].std() > 2  # spread, not constant
    assert set(rows["n"]) == {3, 4, 5}
    assert set(rows["city"]) == {"Oslo", "Lima"}
    single = synthetic_rows(_signature(("x", "float64")), rows=100, example=example.head(1))
    assert single["x"].between(5, 15).all() and single["x"].nunique() > 50


def test_synthetic_rows_refuse_what_they_cannot_draw() -> None:
    with pytest.raises(InvalidArgumentError, match="string values for 'city' without an input"):
        synthetic_rows(_signature(("x", "float64"), ("city", "string")))
    with pytest.raises(InvalidArgumentError, match="datetime64"):
        synthetic_rows(_signature(("when", "datetime64[ns]")))
    tensor = ModelSignature(inputs=(ColumnSpec("input", "float32", (-1, 3)),))
    rows = synthetic_rows(tensor, rows=4)
    assert list(rows.columns) == [0, 1, 2] and rows.shape == (4, 3)
    images = ModelSignature(inputs=(ColumnSpec("input", "float32", (-1, 2, 2)),))
    with pytest.raises(InvalidArgumentError, match="tensor of shape"):
        synthetic_rows(images)


# --- export_onnx and the CLI -----------------------------------------------------------------


def test_the_sources_are_named_as_documented() -> None:
    assert (SYNTHETIC_SOURCE, EXAMPLE_SOURCE) == (SYNTHETIC, WITH_EXAMPLE)


@pytest.mark.integration
def test_model_logged_with_only_an_input_example_exports(home: Path, tmp_path: Path) -> None:
    x, y = _cancer()
    example = x.sample(8, random_state=1)  # not the first rows: its own ranges
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    with shipyard.start_run(experiment="train", log_code=False) as run:
        run.log_model(clf, "bc", input_example=example)  # no dataset read: no table to use

    result = export_onnx("bc@1", tmp_path / "pkg")
    parity = result.parity
    assert parity["rows_source"] == WITH_EXAMPLE
    assert parity["rows"] == len(example) + SYNTHETIC_ROWS
    assert parity["model.onnx"]["passed"] and parity["model.onnx"]["label_mismatches"] == 0
    assert 0 < parity["model.onnx"]["max_abs_diff"] <= 1e-4
    assert json.loads((result.path / "parity.json").read_text()) == parity

    # The rows checked: the example's own, then rows drawn within its ranges.
    ws = shipyard.open_workspace()
    version = Registry(ws.backend, ws.settings.user).resolve("bc@1")
    folder = model_path(version, ws)
    stored = load_input_example(folder)
    assert isinstance(stored, pd.DataFrame)
    pd.testing.assert_frame_equal(stored, example.reset_index(drop=True))
    rows = parity_rows(None, version, read_meta(folder).signature, ws, home, example=stored)
    assert rows.source == WITH_EXAMPLE
    pd.testing.assert_frame_equal(rows.frame.head(len(example)), stored)
    drawn = rows.frame.iloc[len(example) :]
    assert len(drawn) == SYNTHETIC_ROWS
    for column in example.columns:
        low, high = example[column].min(), example[column].max()
        slack = 1e-6 * max(abs(low), abs(high), 1.0)  # float32 rounding
        assert drawn[column].between(low - slack, high + slack).all(), column
    # The same rows given as a sample give the same report.
    given = export_onnx("bc@1", tmp_path / "given", sample=rows.frame).parity
    assert given["model.onnx"] == parity["model.onnx"] and given["rows"] == parity["rows"]

    again = export_onnx("bc@1", tmp_path / "again")  # the same seed, the same rows
    assert again.parity["model.onnx"] == parity["model.onnx"]
    with pytest.raises(ParityError, match=r"on 208 rows from input example \+ signature") as caught:
        export_onnx("bc@1", tmp_path / "strict", tolerance=0.0)
    assert caught.value.parity["rows_source"] == WITH_EXAMPLE
    assert not (tmp_path / "strict").exists()


def _ridge(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    frame = load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, -1]]
    frame = frame.assign(count=np.arange(len(frame)) % 7)
    x = frame.drop(columns="target")
    save_model(Ridge().fit(x, frame["target"]), tmp_path / "ridge", input_example=x.head())
    return tmp_path / "ridge", x.head()


@pytest.mark.integration
def test_model_without_a_run_exports_on_its_example_through_the_cli(
    home: Path, tmp_path: Path
) -> None:
    folder, example = _ridge(tmp_path)
    registered = run_shipyard("models", "register", str(folder), "--name", "ridge")
    assert registered.returncode == 0, registered.stderr

    done = run_shipyard("export", "ridge@1", "--out", str(tmp_path / "pkg"), "--json")
    assert done.returncode == 0, done.stderr
    parity = json.loads(done.stdout)["parity"]
    assert parity["rows_source"] == WITH_EXAMPLE
    assert parity["rows"] == len(example) + SYNTHETIC_ROWS
    assert parity["model.onnx"]["passed"] and parity["model.onnx"]["max_abs_diff"] <= 1e-4
    assert "label_mismatches" not in parity["model.onnx"]
    plain = run_shipyard("export", "ridge@1", "--out", str(tmp_path / "pkg2"))
    assert plain.returncode == 0, plain.stderr
    assert f"on {len(example) + SYNTHETIC_ROWS} rows from {WITH_EXAMPLE}" in " ".join(
        plain.stdout.split()
    )


@pytest.mark.integration
def test_model_saved_before_examples_were_kept_exports_on_its_signature(
    home: Path, tmp_path: Path
) -> None:
    folder, _ = _ridge(tmp_path)
    (folder / EXAMPLE_FILE).unlink()  # what save_model wrote before it kept examples
    meta = json.loads((folder / META_FILE).read_text())
    del meta["input_example"]
    (folder / META_FILE).write_text(json.dumps(meta))
    rewrite_digests(folder)
    registered = run_shipyard("models", "register", str(folder), "--name", "ridge")
    assert registered.returncode == 0, registered.stderr

    result = export_onnx("ridge@1", tmp_path / "pkg")
    assert result.parity["rows_source"] == SYNTHETIC
    assert result.parity["rows"] == SYNTHETIC_ROWS
    assert result.parity["model.onnx"]["passed"]


@pytest.mark.integration
def test_model_without_signature_or_table_is_refused_with_advice(
    home: Path, tmp_path: Path
) -> None:
    x, y = _cancer()
    with shipyard.start_run(experiment="train", log_code=False) as run:
        run.log_model(LogisticRegression(max_iter=5000).fit(x, y), "plain")

    done = run_shipyard("export", "plain@1", "--out", str(tmp_path / "pkg"))
    assert done.returncode == 2
    message = " ".join(done.stderr.split())
    assert "plain@1 has no rows to check parity on: its run read no table" in message
    assert "input_example=" in message and "--sample" in message
    assert not (tmp_path / "pkg").exists()
    with pytest.raises(InvalidArgumentError, match="no signature to draw rows from"):
        export_onnx("plain@1", tmp_path / "pkg")


@pytest.mark.integration
def test_given_rows_and_the_run_table_come_first_and_are_named(home: Path, tmp_path: Path) -> None:
    x, y = _cancer()
    data.add(x.assign(target=y), "bc-train")
    with shipyard.start_run(experiment="train", log_code=False) as run:
        table = data.load("bc-train@1")
        clf = LogisticRegression(max_iter=5000).fit(table.drop(columns="target"), table["target"])
        run.log_model(clf, "bc", input_example=x.head())
    x.iloc[:50].to_csv(tmp_path / "rows.csv", index=False)

    sources = {
        None: ("dataset bc-train@1", len(x)),
        "bc-train@latest": ("dataset bc-train@1", len(x)),
        str(tmp_path / "rows.csv"): ("file rows.csv", 50),
    }
    for i, (sample, (source, rows)) in enumerate(sources.items()):
        parity = export_onnx("bc@1", tmp_path / f"pkg{i}", sample=sample).parity
        assert (parity["rows_source"], parity["rows"]) == (source, rows)
    given = export_onnx("bc@1", tmp_path / "given", sample=x.iloc[:30]).parity
    assert (given["rows_source"], given["rows"]) == ("rows given as sample", 30)


@pytest.mark.integration
def test_text_inputs_are_refused_before_rows_are_drawn(home: Path, tmp_path: Path) -> None:
    frame = pd.DataFrame({"city": ["Oslo", "Lima"] * 20, "x": np.linspace(0, 1, 40)})
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["city"]), remainder="passthrough"), Ridge()
    ).fit(frame, np.arange(40.0))
    with shipyard.start_run(experiment="train", log_code=False) as run:
        run.log_model(model, "towns", input_example=frame.head())
    with pytest.raises(InvalidArgumentError, match="numeric inputs only; 'city' is"):
        export_onnx("towns@1", tmp_path / "pkg")
