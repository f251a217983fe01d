"""Signatures: inferred from the input example, enforced on every prediction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.entities.models import ColumnSpec, ModelSignature
from shipyard.errors import InvalidArgumentError
from shipyard.models import (
    InputMismatchError,
    LoadedModel,
    enforce_signature,
    infer_signature,
    load_model,
    save_model,
)
from tests.models.conftest import Trained


@pytest.fixture
def cancer_loaded(cancer_logreg: Trained, tmp_path: Path) -> LoadedModel:
    save_model(cancer_logreg.model, tmp_path / "cancer", input_example=cancer_logreg.X.head())
    return load_model(tmp_path / "cancer")


@pytest.fixture
def diabetes_loaded(diabetes_ridge: Trained, tmp_path: Path) -> LoadedModel:
    save_model(diabetes_ridge.model, tmp_path / "diabetes", input_example=diabetes_ridge.X[:5])
    return load_model(tmp_path / "diabetes")


def test_dataframe_gives_named_columns_with_dtypes() -> None:
    frame = pd.DataFrame(
        {
            "age": np.array([30, 40], dtype=np.int64),
            "income": [1.5, 2.5],
            "city": ["Oslo", "Lima"],
            "member": [True, False],
            "since": pd.to_datetime(["2020-01-01", "2021-06-01"]),
            "tier": pd.Categorical(["a", "b"]),
        }
    )
    sig = infer_signature(frame, np.array([0, 1]))
    assert [(c.name, c.type, c.shape) for c in sig.inputs] == [
        ("age", "int64", None),
        ("income", "float64", None),
        ("city", "string", None),
        ("member", "bool", None),
        ("since", str(frame["since"].dtype), None),
        ("tier", "category", None),
    ]
    assert not sig.is_tensor
    assert sig.outputs == (ColumnSpec("output", "int64", (-1,)),)


def test_ndarray_gives_a_tensor_with_a_batch_dimension() -> None:
    sig = infer_signature(np.zeros((5, 10), dtype=np.float32), np.zeros((5, 3)))
    assert sig.inputs == (ColumnSpec("input", "float32", (-1, 10)),)
    assert sig.outputs == (ColumnSpec("output", "float64", (-1, 3)),)
    assert sig.is_tensor


def test_object_column_of_strings_is_a_string_column() -> None:
    frame = pd.DataFrame({"city": pd.Series(["Oslo", None], dtype=object)})
    assert infer_signature(frame).inputs == (ColumnSpec("city", "string"),)


def test_signature_survives_json() -> None:
    sig = infer_signature(np.zeros((2, 4)), np.zeros(2))
    assert ModelSignature.from_dict(sig.to_dict()) == sig


def test_saved_signatures(cancer_loaded: LoadedModel, diabetes_loaded: LoadedModel) -> None:
    assert cancer_loaded.signature is not None
    assert cancer_loaded.signature.input_names[0] == "mean radius"
    assert len(cancer_loaded.signature.inputs) == 30
    assert diabetes_loaded.signature is not None
    assert diabetes_loaded.signature.inputs == (ColumnSpec("input", "float64", (-1, 10)),)
    assert diabetes_loaded.signature.outputs == (ColumnSpec("output", "float64", (-1,)),)


def test_columns_are_reordered_and_ints_widened(
    cancer_loaded: LoadedModel, cancer_logreg: Trained
) -> None:
    X = cancer_logreg.X.head(20)
    shuffled = X[list(reversed(X.columns))]
    np.testing.assert_array_equal(cancer_loaded.predict(shuffled), cancer_logreg.model.predict(X))
    rounded = X.round().astype(np.int64)
    np.testing.assert_array_equal(
        cancer_loaded.predict(rounded), cancer_logreg.model.predict(rounded.astype(float))
    )


def test_records_and_plain_arrays_are_accepted(
    cancer_loaded: LoadedModel, cancer_logreg: Trained
) -> None:
    X = cancer_logreg.X.head(3)
    expected = cancer_logreg.model.predict(X)
    np.testing.assert_array_equal(cancer_loaded.predict(X.to_dict("records")), expected)
    np.testing.assert_array_equal(cancer_loaded.predict(X.to_numpy()), expected)


def test_missing_column_is_named(cancer_loaded: LoadedModel, cancer_logreg: Trained) -> None:
    with pytest.raises(InputMismatchError, match="missing column 'mean radius'") as info:
        cancer_loaded.predict(cancer_logreg.X.head().drop(columns=["mean radius"]))
    assert info.value.field == "mean radius"
    assert isinstance(info.value, InvalidArgumentError)


def test_extra_column_is_named(cancer_loaded: LoadedModel, cancer_logreg: Trained) -> None:
    frame = cancer_logreg.X.head().assign(customer_id=1)
    with pytest.raises(InputMismatchError, match="unexpected column 'customer_id'") as info:
        cancer_loaded.predict(frame)
    assert info.value.field == "customer_id"


@pytest.mark.parametrize("as_object", [False, True])
def test_text_in_a_numeric_column_is_named(
    cancer_loaded: LoadedModel, cancer_logreg: Trained, as_object: bool
) -> None:
    frame = cancer_logreg.X.head().copy()
    column = frame["mean texture"].astype(object)
    column.iloc[2] = "abc"
    frame["mean texture"] = column if as_object else column.astype(str)
    with pytest.raises(InputMismatchError, match=r"'mean texture' expects float64.*'abc'") as info:
        cancer_loaded.predict(frame)
    assert info.value.field == "mean texture"


def test_float_into_an_integer_column_is_refused(tmp_path: Path) -> None:
    from sklearn.tree import DecisionTreeClassifier

    frame = pd.DataFrame({"n": np.arange(10, dtype=np.int64)})
    model = DecisionTreeClassifier(random_state=0).fit(frame, np.arange(10) % 2)
    save_model(model, tmp_path / "m", input_example=frame.head())
    loaded = load_model(tmp_path / "m")
    with pytest.raises(InputMismatchError, match=r"'n' expects int64.*float") as info:
        loaded.predict(pd.DataFrame({"n": [1.5]}))
    assert info.value.field == "n"


def test_wrong_feature_count_for_a_tensor(diabetes_loaded: LoadedModel) -> None:
    with pytest.raises(InputMismatchError, match=r"expects 10 features, got 9") as info:
        diabetes_loaded.predict(np.zeros((3, 9)))
    assert info.value.field == "input"


def test_wrong_feature_count_for_columns(cancer_loaded: LoadedModel) -> None:
    with pytest.raises(InputMismatchError, match=r"takes 30 features, got 29"):
        cancer_loaded.predict(np.zeros((2, 29)))


def test_text_in_a_tensor_is_refused(diabetes_loaded: LoadedModel) -> None:
    rows: Any = np.zeros((2, 10)).astype(object)
    rows[1, 4] = "oops"
    with pytest.raises(InputMismatchError, match=r"'input' expects float64.*'oops'"):
        diabetes_loaded.predict(rows)


def test_one_row_without_a_batch_dimension_is_accepted(
    diabetes_loaded: LoadedModel, diabetes_ridge: Trained
) -> None:
    row = diabetes_ridge.X[0]
    np.testing.assert_array_equal(
        diabetes_loaded.predict(row), diabetes_ridge.model.predict(row[np.newaxis, :])
    )


def test_the_model_rejecting_input_is_a_clear_error(
    cancer_loaded: LoadedModel, cancer_logreg: Trained
) -> None:
    frame = cancer_logreg.X.head().copy()
    frame.iloc[0, 0] = np.nan
    with pytest.raises(InvalidArgumentError, match=r"the model rejected the input.*NaN"):
        cancer_loaded.predict(frame)


def test_without_an_example_there_is_no_signature(diabetes_ridge: Trained, tmp_path: Path) -> None:
    meta = save_model(diabetes_ridge.model, tmp_path / "m")
    assert meta.signature is None
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(
        loaded.predict(diabetes_ridge.X), diabetes_ridge.model.predict(diabetes_ridge.X)
    )


def test_example_that_predict_rejects_is_refused_at_save(
    diabetes_ridge: Trained, tmp_path: Path
) -> None:
    with pytest.raises(InvalidArgumentError, match="calling predict on the input example"):
        save_model(diabetes_ridge.model, tmp_path / "m", input_example=np.zeros((2, 3)))
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("column_type", "values"),
    [
        ("int64", pd.Series([2**64 - 1], dtype=np.uint64)),
        ("int64", pd.Series([2**70], dtype=object)),
        ("int8", pd.Series([300])),
        ("uint8", pd.Series([-1])),
        ("float32", pd.Series([1e300])),
        ("float64", pd.Series([10**400], dtype=object)),
    ],
)
def test_values_out_of_a_columns_range_are_refused(column_type: str, values: Any) -> None:
    signature = ModelSignature(inputs=(ColumnSpec("n", column_type), ColumnSpec("x", "float64")))
    frame = pd.DataFrame({"n": values, "x": [1.0]})
    with pytest.raises(InputMismatchError, match="out of its range") as caught:
        enforce_signature(frame, signature)
    assert caught.value.field == "n"


def test_values_in_a_columns_range_are_cast() -> None:
    signature = ModelSignature(inputs=(ColumnSpec("n", "int8"), ColumnSpec("x", "float32")))
    frame = pd.DataFrame({"n": [-128, 127], "x": [1e30, np.inf]})
    checked = enforce_signature(frame, signature)
    assert checked["n"].dtype == np.int8 and checked["n"].tolist() == [-128, 127]
    assert checked["x"].dtype == np.float32 and np.isinf(checked["x"][1])


def test_tensor_values_out_of_the_dtypes_range_are_refused() -> None:
    import numpy as np

    from shipyard.errors import InputMismatchError
    from shipyard.models.signature import enforce_signature

    signature = ModelSignature(inputs=(ColumnSpec("x", "int64", shape=(-1, 2)),))
    fits = enforce_signature(np.array([[1, 2]], dtype=np.uint64), signature)
    assert fits.dtype == np.int64 and fits.tolist() == [[1, 2]]
    with pytest.raises(InputMismatchError, match="out of its range"):
        enforce_signature(np.array([[2**64 - 1, 2**63]], dtype=np.uint64), signature)
    small = ModelSignature(inputs=(ColumnSpec("x", "float32", shape=(-1, 1)),))
    with pytest.raises(InputMismatchError, match="out of its range"):
        enforce_signature(np.array([[1e300]]), small)
