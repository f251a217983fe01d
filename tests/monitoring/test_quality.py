"""Quality of live inputs: the data checks, on a window's traffic, against the reference."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from shipyard import data
from shipyard.entities.data import DatasetProfile, Severity
from shipyard.monitoring.logs import input_table, read_predictions
from shipyard.monitoring.quality import check_inputs, input_profile
from tests.monitoring._logs import write_failures, write_predictions

T0 = datetime(2024, 5, 1, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def reference() -> DatasetProfile:
    """A training table: two inputs and the target the traffic never carries."""
    frame = pd.DataFrame(
        {
            "amount": [float(i % 50) for i in range(200)],
            "plan": ["free", "pro", "team", "free"] * 50,
            "churned": [0, 1] * 100,
        }
    )
    return data.profile(frame)


def _found(findings: tuple[object, ...]) -> list[tuple[str, str | None, Severity]]:
    return [(f.check, f.column, f.severity) for f in findings]  # type: ignore[attr-defined]


def test_clean_traffic_has_no_findings_and_the_target_is_not_expected(
    reference: DatasetProfile,
) -> None:
    live = pa.table({"amount": [1.0, 20.0, 49.0] * 20, "plan": ["pro", "team", "free"] * 20})
    assert check_inputs(live, reference) == ()


def test_nulls_ranges_and_new_categories_are_found(
    tmp_path: Path, reference: DatasetProfile
) -> None:
    n = 60
    frame = pd.DataFrame(
        {
            "amount": [None if i % 5 == 0 else (500.0 if i % 7 == 0 else 10.0) for i in range(n)],
            "plan": ["enterprise" if i % 3 == 0 else "free" for i in range(n)],
        }
    )
    write_predictions(
        tmp_path, "churn", frame, timestamps=[T0] * n, predictions=[0] * n,
        input_types={"amount": pa.float64()},
    )  # fmt: skip
    # Failed requests log null inputs; they are not missing values of the traffic.
    types = {"amount": pa.float64(), "plan": pa.string()}
    write_failures(tmp_path, "churn", timestamps=[T0] * 40, input_types=types)
    table = read_predictions("churn", root=tmp_path)
    findings = check_inputs(input_table(table), reference)
    assert _found(findings) == [
        ("null_share", "amount", Severity.ERROR),
        ("out_of_range", "amount", Severity.WARNING),
        ("unseen_categories", "plan", Severity.WARNING),
    ]
    assert findings[0].details["current_nulls"] == 12
    assert findings[2].details["examples"] == [["enterprise", 20]]


def test_schema_findings_for_expected_and_extra_columns(reference: DatasetProfile) -> None:
    live = pa.table({"amount": [1, 2, 3], "region": ["eu", "us", "eu"]})
    findings = check_inputs(live, reference, expected=["amount", "plan", "region"])
    assert _found(findings) == [
        ("missing_column", "plan", Severity.ERROR),
        ("type_changed", "amount", Severity.WARNING),
        ("extra_column", "region", Severity.WARNING),
    ]


def test_an_empty_window_is_the_empty_error(reference: DatasetProfile) -> None:
    live = pa.table({"amount": pa.array([], pa.float64()), "plan": pa.array([], pa.string())})
    assert _found(check_inputs(live, reference)) == [("empty", None, Severity.ERROR)]


def test_input_profile_keeps_only_the_inputs(reference: DatasetProfile) -> None:
    cut = input_profile(reference, ["plan", "nope"])
    assert [c.name for c in cut.columns] == ["plan"] and cut.rows == reference.rows


def test_duplicates_only_when_asked(reference: DatasetProfile) -> None:
    live = pa.table({"amount": [1.0] * 40, "plan": ["pro"] * 40})
    assert check_inputs(live, reference) == ()
    assert _found(check_inputs(live, reference, duplicate_rows=True)) == [
        ("duplicate_rows", None, Severity.WARNING)
    ]
