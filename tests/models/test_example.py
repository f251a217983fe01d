"""The input example kept in a model folder: what is written, what reads back, old folders."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import ArtifactCorruptedError, InvalidArgumentError
from shipyard.models import META_FILE, load_input_example, load_model, read_meta, save_model
from shipyard.models.example import EXAMPLE_FILE, MAX_EXAMPLE_ROWS, read_input_example
from tests.models._python_models import Doubler, Zeros
from tests.models.conftest import Trained, rewrite_digests


def _every_dtype() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "f64": [0.1, np.nan, np.inf, -np.inf, 1e300],
            "f32": np.array([0.1, 0.2, np.nan, 3, 4], dtype="float32"),
            "i8": np.array([1, 2, 3, 4, -5], dtype="int8"),
            "u64": np.array([2**64 - 1, 0, 1, 2, 3], dtype="uint64"),
            "flag": [True, False, True, True, False],
            "nullable": pd.array([1, None, 3, 4, 5], dtype="Int64"),
            "text": pd.array(["a", None, "c", "d", "é"], dtype="string"),
            "city": pd.Categorical(["Oslo", None, "Oslo", "Oslo", "Oslo"], ["Lima", "Oslo"]),
            "when": pd.to_datetime(
                ["2024-01-01", None, "2024-03-01 12:00:00.000000001", "2024-01-02", "2024-01-03"],
                format="ISO8601",
            ),
            "zoned": pd.to_datetime(["2024-01-01"] * 5).tz_localize("Europe/Oslo"),
            "mixed": np.array([1, "a", None, 2.5, True], dtype=object),
            7: [1.0, 2.0, 3.0, 4.0, 5.0],
        },
        index=[10, 11, 12, 13, 14],
    )


def test_a_table_of_every_dtype_reads_back_the_same(tmp_path: Path) -> None:
    frame = _every_dtype()
    meta = save_model(Zeros(), tmp_path / "m", input_example=frame)
    assert meta.input_example == EXAMPLE_FILE
    assert EXAMPLE_FILE in {f.path for f in meta.files}  # digest checked on every load
    back = load_input_example(tmp_path / "m")
    assert isinstance(back, pd.DataFrame)
    pd.testing.assert_frame_equal(back, frame.reset_index(drop=True))  # dtypes, NaN, inf, NaT
    assert list(back["city"].cat.categories) == ["Lima", "Oslo"]  # an unused category too
    raw = json.loads((tmp_path / "m" / EXAMPLE_FILE).read_text())  # strict JSON, split orient
    assert raw["columns"][:2] == ["f64", "f32"] and raw["data"][2][0] == "Infinity"
    assert raw["data"][1][0] is None


@pytest.mark.parametrize(
    "example",
    [
        np.arange(24, dtype="float32").reshape(4, 2, 3),
        np.array([[1, 2], [3, 4]], dtype="int16"),
        np.array([[np.nan, np.inf, 0.1]]),
        np.zeros((0, 3)),
    ],
    ids=["3d-float32", "int16", "nan-inf", "no-rows"],
)
def test_an_array_reads_back_with_its_dtype_and_shape(example: Any, tmp_path: Path) -> None:
    save_model(Doubler(), tmp_path / "m", input_example=example)
    back = load_input_example(tmp_path / "m")
    assert isinstance(back, np.ndarray)
    assert (back.dtype, back.shape) == (example.dtype, example.shape)
    np.testing.assert_array_equal(back, example)


def test_the_loaded_model_gives_its_example(cancer_forest: Trained, tmp_path: Path) -> None:
    save_model(cancer_forest.model, tmp_path / "m", input_example=cancer_forest.X[:5])
    loaded = load_model(tmp_path / "m")
    example = loaded.input_example
    assert isinstance(example, np.ndarray)
    np.testing.assert_array_equal(example, cancer_forest.X[:5])
    np.testing.assert_array_equal(loaded.predict(example), cancer_forest.model.predict(example))


def test_lists_and_dicts_are_kept_as_the_signature_reads_them(tmp_path: Path) -> None:
    save_model(Zeros(), tmp_path / "rows", input_example=[{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])
    rows = load_input_example(tmp_path / "rows")
    assert isinstance(rows, pd.DataFrame)
    assert rows.to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}
    save_model(Doubler(), tmp_path / "list", input_example=[1.5, 2.5])
    np.testing.assert_array_equal(load_input_example(tmp_path / "list"), np.array([1.5, 2.5]))


def test_only_the_first_rows_are_kept(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(250.0)})
    save_model(Zeros(), tmp_path / "long", input_example=frame)
    kept = load_input_example(tmp_path / "long")
    assert isinstance(kept, pd.DataFrame)
    pd.testing.assert_frame_equal(kept, frame.head(MAX_EXAMPLE_ROWS))
    images = np.ones((30, 50, 50))  # 2,500 values a row: 40 rows fit in 100,000 values
    save_model(Doubler(), tmp_path / "wide", input_example=images)
    wide = load_input_example(tmp_path / "wide")
    assert isinstance(wide, np.ndarray) and wide.shape == (30, 50, 50)
    save_model(Doubler(), tmp_path / "wider", input_example=np.ones((60, 50, 50)))
    wider = load_input_example(tmp_path / "wider")
    assert isinstance(wider, np.ndarray) and wider.shape == (40, 50, 50)


def test_an_example_without_a_json_form_sets_the_signature_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="shipyard.models.example"):
        meta = save_model(Doubler(), tmp_path / "m", input_example=np.array([[1 + 2j]]))
    assert meta.signature is not None and meta.signature.inputs[0].type == "complex128"
    assert meta.input_example is None and not (tmp_path / "m" / EXAMPLE_FILE).exists()
    assert "not stored with the model: complex values" in caplog.text
    assert load_input_example(tmp_path / "m") is None


def test_no_example_no_file(diabetes_ridge: Trained, tmp_path: Path) -> None:
    meta = save_model(diabetes_ridge.model, tmp_path / "m")
    assert meta.input_example is None and meta.signature is None
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.skops", META_FILE]
    assert json.loads((tmp_path / "m" / META_FILE).read_text())["input_example"] is None
    assert load_model(tmp_path / "m").input_example is None


def test_a_folder_from_before_examples_were_kept_still_loads(
    cancer_logreg: Trained, tmp_path: Path
) -> None:
    folder = tmp_path / "m"
    save_model(cancer_logreg.model, folder, input_example=cancer_logreg.X.head())
    (folder / EXAMPLE_FILE).unlink()
    raw = json.loads((folder / META_FILE).read_text())
    del raw["input_example"]  # the key did not exist
    (folder / META_FILE).write_text(json.dumps(raw))
    rewrite_digests(folder)
    assert "input_example" not in json.loads((folder / META_FILE).read_text())

    loaded = load_model(folder)
    assert loaded.meta.input_example is None and loaded.input_example is None
    assert load_input_example(folder) is None
    assert loaded.signature == read_meta(folder).signature and loaded.signature is not None
    x = cancer_logreg.X
    np.testing.assert_array_equal(loaded.predict(x), cancer_logreg.model.predict(x))


def test_an_edited_example_is_refused(cancer_logreg: Trained, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    save_model(cancer_logreg.model, folder, input_example=cancer_logreg.X.head())
    raw = json.loads((folder / EXAMPLE_FILE).read_text())
    raw["data"][0][0] = 1e9
    (folder / EXAMPLE_FILE).write_text(json.dumps(raw))
    with pytest.raises(ArtifactCorruptedError, match=r"input_example\.json does not match"):
        load_input_example(folder)
    with pytest.raises(ArtifactCorruptedError, match=r"input_example\.json does not match"):
        load_model(folder)


def test_a_file_that_is_not_an_example_is_named(tmp_path: Path) -> None:
    file = tmp_path / EXAMPLE_FILE
    for text in ('{"type": "sparse"}', '{"type": "dataframe", "columns": ["a"]}', "[1, 2"):
        file.write_text(text)
        with pytest.raises(InvalidArgumentError, match=r"input_example\.json cannot be read"):
            read_input_example(file)
    file.write_text(
        json.dumps({"type": "dataframe", "columns": ["a"], "dtypes": ["int64"], "data": [[1, 2]]})
    )
    with pytest.raises(InvalidArgumentError, match="differ in length"):
        read_input_example(file)
