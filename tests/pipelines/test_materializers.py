"""Outputs become files by type, and come back equal; nothing is pickled unless asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from shipyard.errors import InvalidArgumentError
from shipyard.pipelines.materializers import choose, get_materializer, materializer_versions
from tests.pipelines._files import run, write


class Opaque:
    def __init__(self, value: int) -> None:
        self.value = value


def _roundtrip(value: Any, tmp_path: Path, *, allow_pickle: bool = False) -> tuple[str, Any]:
    materializer = choose(value, step="s", output="o", allow_pickle=allow_pickle)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "out"
    materializer.save(value, path)
    from shipyard.pipelines.materializers import type_name

    label = f"{materializer.name}/{materializer.version}"
    return materializer.name, get_materializer(label).load(path, type_name(value))


@pytest.mark.parametrize(
    "value",
    [None, True, 3, 2.5, "text", [1, "a", None], {"a": {"b": [1.5]}}, (1, 2)],
)
def test_json_values_round_trip(value: Any, tmp_path: Path) -> None:
    name, back = _roundtrip(value, tmp_path)
    assert name == "json"
    assert back == value


def test_arrays_frames_series_and_tables_round_trip(tmp_path: Path) -> None:
    array = np.arange(12, dtype="float32").reshape(3, 4)
    name, back = _roundtrip(array, tmp_path / "a")
    assert name == "numpy"
    np.testing.assert_array_equal(back, array)
    assert back.dtype == np.float32

    frame = pd.DataFrame({"x": [1, 2], "c": pd.Categorical(["a", "b"])}, index=[5, 6])
    name, back = _roundtrip(frame, tmp_path / "f")
    assert name == "pandas"
    pd.testing.assert_frame_equal(back, frame)

    series = pd.Series([1.0, 2.0], name="score")
    name, back = _roundtrip(series, tmp_path / "s")
    pd.testing.assert_series_equal(back, series)

    table = pa.table({"x": [1, 2, 3]})
    name, back = _roundtrip(table, tmp_path / "t")
    assert name == "arrow"
    assert back.equals(table)


def test_models_go_through_their_flavor(tmp_path: Path) -> None:
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    model = LogisticRegression().fit(X, y)
    name, back = _roundtrip(model, tmp_path)
    assert name == "model"
    assert (tmp_path / "out" / "shipyard-step-model.json").is_file()
    assert not list((tmp_path / "out").glob("*.pkl"))
    np.testing.assert_array_equal(back.predict(X), model.predict(X))


def test_other_objects_need_the_pickle_opt_in(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"step 's' output 'o'.*allow_pickle=True"):
        choose(Opaque(1), step="s", output="o", allow_pickle=False)
    name, back = _roundtrip(Opaque(4), tmp_path, allow_pickle=True)
    assert name == "pickle"
    assert back.value == 4
    arrays_of_objects = np.array([Opaque(1)], dtype=object)
    with pytest.raises(InvalidArgumentError):
        choose(arrays_of_objects, step="s", output="o", allow_pickle=False)


def test_materializer_versions_are_part_of_the_key() -> None:
    assert "pandas/1" in materializer_versions()
    with pytest.raises(InvalidArgumentError, match="no materializer 'pandas/99'"):
        get_materializer("pandas/99")


@pytest.mark.integration
def test_frames_and_models_pass_between_steps(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        import numpy as np
        import pandas as pd
        import shipyard
        from sklearn.tree import DecisionTreeClassifier

        @shipyard.step
        def make(rows: int) -> pd.DataFrame:
            rng = np.random.default_rng(0)
            x = rng.normal(size=rows)
            return pd.DataFrame({"x": x, "y": (x > 0).astype(int)})

        @shipyard.step
        def train(frame: pd.DataFrame) -> DecisionTreeClassifier:
            return DecisionTreeClassifier(max_depth=2).fit(frame[["x"]], frame["y"])

        @shipyard.step
        def score(model, frame: pd.DataFrame) -> float:
            return float((model.predict(frame[["x"]]) == frame["y"]).mean())

        @shipyard.pipeline
        def fit(rows: int = 200):
            frame = make(rows)
            return score(train(frame), frame)
        """,
    )
    result = run(path, "fit")
    assert result.output("score") == 1.0
    kinds = {s.name: s.outputs[0].materializer for s in result.steps}
    assert kinds == {"make": "pandas/1", "train": "model/1", "score": "json/1"}
    assert result.step("train").outputs[0].kind == "dir"
    assert len(result.output("make")) == 200
