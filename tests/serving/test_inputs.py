"""Checking request input: the array fast path agrees with enforce_signature, or stands aside."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.entities.models import ColumnSpec, ModelSignature
from shipyard.errors import InputMismatchError
from shipyard.models import enforce_signature
from shipyard.serving.inputs import InputPlan

FLOATS = ModelSignature(inputs=(ColumnSpec("a", "float64"), ColumnSpec("b", "float64")))
MIXED = ModelSignature(inputs=(ColumnSpec("age", "int64"), ColumnSpec("income", "float64")))


def test_a_numeric_array_of_the_right_width_stays_an_array() -> None:
    plan = InputPlan.of(FLOATS)
    checked = plan.check(np.array([[1, 2], [3, 4]]))  # ints go into float columns
    assert isinstance(checked, np.ndarray) and checked.dtype == np.float64
    frame = plan.model_input(checked)
    pd.testing.assert_frame_equal(frame, enforce_signature(np.array([[1, 2], [3, 4]]), FLOATS))


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (np.array([[1.0, 2.0, 3.0]]), "features"),
        (np.array([["x", "1.0"]]), "a"),
        (np.array([[True, False]]), "a"),
    ],
)
def test_what_the_fast_path_refuses_still_fails_naming_the_field(data: object, field: str) -> None:
    with pytest.raises(InputMismatchError) as caught:
        InputPlan.of(FLOATS).check(data)
    assert caught.value.field == field


def test_columns_of_different_types_go_through_enforce_signature() -> None:
    plan = InputPlan.of(MIXED)
    assert plan.dtype is None
    frame = plan.check(pd.DataFrame({"income": [1.5], "age": [30]}))
    assert list(frame.columns) == ["age", "income"] and frame["age"].dtype == np.int64
    with pytest.raises(InputMismatchError) as caught:
        plan.check(pd.DataFrame({"age": [30.5], "income": [1.5]}))
    assert caught.value.field == "age"


def test_no_signature_passes_input_through() -> None:
    data = np.zeros((2, 3))
    assert InputPlan.of(None).check(data) is data


@pytest.mark.parametrize(
    ("column_type", "data", "field"),
    [
        ("int64", np.array([[5, 2**64 - 1]], dtype=np.uint64), "b"),  # would wrap to -1
        ("int8", np.array([[300, 1]]), "a"),  # would wrap to 44
        ("float32", np.array([[1.0, 1e300]]), "b"),  # would become inf
        ("float16", np.array([[100_000, 1]]), "a"),
    ],
)
def test_values_out_of_the_columns_range_are_refused(
    column_type: str, data: object, field: str
) -> None:
    signature = ModelSignature(inputs=(ColumnSpec("a", column_type), ColumnSpec("b", column_type)))
    with pytest.raises(InputMismatchError, match="out of its range") as caught:
        InputPlan.of(signature).check(data)
    assert caught.value.field == field


def test_values_in_range_are_cast_and_big_ints_into_floats_are_kept() -> None:
    small = ModelSignature(inputs=(ColumnSpec("a", "int8"), ColumnSpec("b", "int8")))
    checked = InputPlan.of(small).check(np.array([[-128, 127]]))
    assert checked.dtype == np.int8 and checked.tolist() == [[-128, 127]]
    floats = InputPlan.of(FLOATS).check(np.array([[2**53 + 1, np.iinfo(np.int64).max]]))
    assert floats.dtype == np.float64  # rounded, as documented
    inf = InputPlan.of(ModelSignature(inputs=(ColumnSpec("a", "float32"),)))
    assert np.isinf(inf.check(np.array([[np.inf]]))).all()  # given as inf, kept as inf
