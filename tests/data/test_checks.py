from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from shipyard.data.checks import check_table, has_errors, type_family
from shipyard.data.profiling import profile_table
from shipyard.entities.data import DatasetProfile, Finding, Severity
from shipyard.errors import InvalidArgumentError, NotFoundError


def _reference_table() -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(100), pa.int64()),
            "amount": pa.array([i % 50 + 0.5 for i in range(100)]),
            "plan": pa.array(["free", "pro", "team", "free"] * 25),
            "note": pa.array([None if i % 10 == 0 else "n" for i in range(100)]),
        }
    )


@pytest.fixture(scope="module")
def reference() -> DatasetProfile:
    """The reference profile, stored and read back as JSON, as versioning will do."""
    profile = profile_table(_reference_table())
    return DatasetProfile.from_dict(json.loads(json.dumps(profile.to_dict())))


def _with(table: pa.Table, name: str, values: pa.Array | list[object]) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, pa.array(values))


def _checks(findings: list[Finding]) -> list[tuple[str, str | None, Severity]]:
    return [(f.check, f.column, f.severity) for f in findings]


def test_the_reference_data_itself_has_no_findings(reference: DatasetProfile) -> None:
    assert check_table(_reference_table(), reference) == []


def test_same_data_as_csv_and_parquet_files_has_no_findings(
    reference: DatasetProfile, tmp_path: Path
) -> None:
    pq.write_table(_reference_table(), tmp_path / "t.parquet")
    pa_csv.write_csv(_reference_table(), tmp_path / "t.csv")
    assert check_table(tmp_path / "t.parquet", reference) == []
    assert check_table(str(tmp_path / "t.csv"), reference) == []


# --- schema ------------------------------------------------------------------------------------


def test_missing_column_is_an_error(reference: DatasetProfile) -> None:
    findings = check_table(_reference_table().drop_columns(["plan"]), reference)
    assert _checks(findings) == [("missing_column", "plan", Severity.ERROR)]
    assert findings[0].details == {"reference_type": "string"}
    assert "'plan'" in findings[0].message
    assert has_errors(findings)


def test_extra_column_is_a_warning(reference: DatasetProfile) -> None:
    table = _reference_table().append_column("score", pa.array([0.5] * 100))
    findings = check_table(table, reference)
    assert _checks(findings) == [("extra_column", "score", Severity.WARNING)]
    assert findings[0].details == {"type": "double"}
    assert not has_errors(findings)


def test_int_to_double_is_a_warning(reference: DatasetProfile) -> None:
    table = _with(_reference_table(), "id", [float(i) for i in range(100)])
    findings = check_table(table, reference)
    assert _checks(findings) == [("type_changed", "id", Severity.WARNING)]
    assert findings[0].details == {"reference_type": "int64", "current_type": "double"}


def test_number_to_string_is_an_error_and_skips_value_checks(reference: DatasetProfile) -> None:
    table = _with(_reference_table(), "amount", [f"{i} EUR" for i in range(100)])
    findings = check_table(table, reference)
    assert _checks(findings) == [("type_changed", "amount", Severity.ERROR)]


def test_type_families() -> None:
    assert {type_family(t) for t in ("int8", "uint64", "double", "float", "decimal128(9, 2)")} == {
        "number"
    }
    assert {type_family(t) for t in ("timestamp[us]", "timestamp[ns, tz=UTC]", "date32[day]")} == {
        "temporal"
    }
    assert type_family("string") == "string"
    assert type_family("bool") == "bool"
    assert type_family("list<item: int64>") == "list<item: int64>"


# --- null shares -------------------------------------------------------------------------------


def test_nulls_in_a_column_that_had_none_are_an_error(reference: DatasetProfile) -> None:
    table = _with(_reference_table(), "plan", [None] * 10 + ["free"] * 90)
    findings = check_table(table, reference)
    assert _checks(findings) == [("null_share", "plan", Severity.ERROR)]
    details = findings[0].details
    assert details["reference_share"] == 0.0
    assert details["current_share"] == pytest.approx(0.1)
    assert details["current_nulls"] == 10


def test_nulls_within_the_tolerance_are_not_reported(reference: DatasetProfile) -> None:
    table = _with(_reference_table(), "plan", [None] * 5 + ["free"] * 95)
    assert check_table(table, reference) == []
    findings = check_table(table, reference, null_share_tolerance=0.04)
    assert _checks(findings) == [("null_share", "plan", Severity.ERROR)]


def test_null_share_growth_is_a_warning(reference: DatasetProfile) -> None:
    notes = [None if i % 4 == 0 else "n" for i in range(100)]  # 25% missing, was 10%
    findings = check_table(_with(_reference_table(), "note", notes), reference)
    assert _checks(findings) == [("null_share", "note", Severity.WARNING)]
    assert findings[0].details["reference_share"] == pytest.approx(0.1)
    assert findings[0].details["current_share"] == pytest.approx(0.25)
    notes = [None if i % 7 == 0 else "n" for i in range(100)]  # 15%: within 0.05 + 0.1
    assert check_table(_with(_reference_table(), "note", notes), reference) == []


def test_nan_counts_as_missing(reference: DatasetProfile) -> None:
    amounts = [float("nan")] * 20 + [1.5] * 80
    findings = check_table(_with(_reference_table(), "amount", amounts), reference)
    assert _checks(findings) == [("null_share", "amount", Severity.ERROR)]


# --- values ------------------------------------------------------------------------------------


def test_values_outside_the_reference_range_are_a_warning(reference: DatasetProfile) -> None:
    amounts = [i % 50 + 0.5 for i in range(97)] + [-5.0, 120.0, 49.5]
    findings = check_table(_with(_reference_table(), "amount", amounts), reference)
    assert _checks(findings) == [("out_of_range", "amount", Severity.WARNING)]
    assert findings[0].details == {
        "count": 2,
        "share": pytest.approx(0.02),
        "min": -5.0,
        "max": 120.0,
        "reference_min": 0.5,
        "reference_max": 49.5,
    }


def test_values_on_the_reference_bounds_are_in_range(reference: DatasetProfile) -> None:
    amounts = [0.5] * 50 + [49.5] * 50
    assert check_table(_with(_reference_table(), "amount", amounts), reference) == []


def test_unseen_categories_are_a_warning_with_examples(reference: DatasetProfile) -> None:
    plans = ["free"] * 80 + ["enterprise"] * 12 + ["trial"] * 8
    findings = check_table(_with(_reference_table(), "plan", plans), reference)
    assert _checks(findings) == [("unseen_categories", "plan", Severity.WARNING)]
    assert findings[0].details == {
        "count": 20,
        "share": pytest.approx(0.2),
        "examples": [["enterprise", 12], ["trial", 8]],
    }


def test_unseen_categories_show_at_most_ten_examples(reference: DatasetProfile) -> None:
    plans = [f"p{i:02d}" for i in range(30)] + ["free"] * 70
    (finding,) = check_table(_with(_reference_table(), "plan", plans), reference)
    assert finding.details["count"] == 30
    assert finding.details["examples"] == [[f"p{i:02d}", 1] for i in range(10)]


def test_unseen_categories_need_a_complete_reference() -> None:
    reference = profile_table(pa.table({"plan": ["a", "b", "c", "a"]}), top_k=2)
    assert reference.column("plan").other_count == 1
    assert check_table(pa.table({"plan": ["z", "a", "b", "c"]}), reference) == []


def test_unseen_booleans(reference: DatasetProfile) -> None:
    reference = profile_table(pa.table({"flag": [True, True]}))
    (finding,) = check_table(pa.table({"flag": [True, False]}), reference)
    assert finding.check == "unseen_categories"
    assert finding.details["examples"] == [["false", 1]]


def test_duplicate_rows_are_a_warning() -> None:
    table = pa.table({"a": [1, 1, 1, 2, None, None], "b": ["x", "x", "x", "y", None, None]})
    reference = profile_table(table)
    findings = check_table(table, reference)
    assert _checks(findings) == [("duplicate_rows", None, Severity.WARNING)]
    assert findings[0].details == {
        "count": 3,
        "share": pytest.approx(0.5),
        "distinct_repeated": 2,
    }
    assert check_table(table, reference, duplicate_rows=False) == []


def test_rows_that_differ_in_one_column_are_not_duplicates() -> None:
    table = pa.table({"a": [1, 1], "b": ["x", "y"]})
    assert check_table(table, profile_table(table)) == []


def test_an_empty_table_is_an_error(reference: DatasetProfile, tmp_path: Path) -> None:
    empty = _reference_table().slice(0, 0)
    findings = check_table(empty, reference)
    assert _checks(findings) == [("empty", None, Severity.ERROR)]
    assert findings[0].details == {"reference_rows": 100}
    assert has_errors(findings)
    path = tmp_path / "empty.parquet"
    pq.write_table(empty, path)
    assert _checks(check_table(path, reference)) == [("empty", None, Severity.ERROR)]


def test_several_findings_come_schema_first() -> None:
    base = pd.DataFrame({"a": [1, 2, 3, 4, 5], "s": ["x", "y", "x", "y", "x"], "gone": [1] * 5})
    current = pd.DataFrame(
        {"a": [0.5, 2, 3, None, 9], "s": ["x", "z", "w", None, "z"], "new": [1] * 5}
    )
    findings = check_table(pd.concat([current, current.iloc[:2]]), profile_table(base))
    assert _checks(findings) == [
        ("missing_column", "gone", Severity.ERROR),
        ("type_changed", "a", Severity.WARNING),
        ("extra_column", "new", Severity.WARNING),
        ("null_share", "a", Severity.ERROR),
        ("out_of_range", "a", Severity.WARNING),
        ("null_share", "s", Severity.ERROR),
        ("unseen_categories", "s", Severity.WARNING),
        ("duplicate_rows", None, Severity.WARNING),
    ]
    document = json.loads(json.dumps([f.to_dict() for f in findings], allow_nan=False))
    assert document[0]["severity"] == "error"


def test_has_errors() -> None:
    warning = Finding("extra_column", Severity.WARNING, "m", "c")
    error = Finding("empty", Severity.ERROR, "m")
    assert not has_errors([])
    assert not has_errors([warning, Finding("x", Severity.INFO, "m")])
    assert has_errors([warning, error])


# --- bad input ---------------------------------------------------------------------------------


def test_missing_file_is_not_found(reference: DatasetProfile, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        check_table(tmp_path / "nope.csv", reference)


def test_bad_value_beyond_the_type_sample_names_the_file(
    reference: DatasetProfile, tmp_path: Path
) -> None:
    path = tmp_path / "late.csv"
    path.write_text("id\n" + "1\n" * 25_000 + "oops\n")
    with pytest.raises(InvalidArgumentError, match=r"late\.csv.*Could not convert"):
        check_table(path, reference)


@pytest.mark.parametrize("tolerance", [-0.1, 1.5])
def test_tolerance_must_be_a_share(reference: DatasetProfile, tolerance: float) -> None:
    with pytest.raises(InvalidArgumentError, match="null_share_tolerance"):
        check_table(_reference_table(), reference, null_share_tolerance=tolerance)
