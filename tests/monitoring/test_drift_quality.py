"""Data quality beside drift: ``compare`` runs the checks of ``shipyard data check`` against
the reference, and ``shipyard monitor drift`` shows them and fails on an error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from shipyard.data.checks import check_table
from shipyard.data.profiling import profile_table
from shipyard.entities import DriftReport, Finding, Severity
from shipyard.monitoring.drift import compare, prepare_reference
from shipyard.monitoring.quality import NULL_SHARE_TOLERANCE
from shipyard.monitoring.report import render_json, render_report
from tests._cli import run_shipyard

ROWS = 4_000
PLANS = ["basic", "pro", "team"]


def _table(seed: int, rows: int = ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, rows),
            "income": rng.lognormal(3, 0.5, rows),
            "visits": rng.integers(0, 50, rows),
            "plan": rng.choice(PLANS, rows, p=[0.5, 0.3, 0.2]),
        }
    )


def _by_check(findings: tuple[Finding, ...]) -> dict[tuple[str, str | None], Finding]:
    return {(f.check, f.column): f for f in findings}


def test_three_percent_new_nulls_are_an_error_finding_not_drift() -> None:
    ref, cur = _table(0), _table(1)
    cur.loc[cur.sample(frac=0.03, random_state=2).index, "income"] = np.nan
    report = compare(ref, cur)
    assert not report.column("income").drifted  # the values left are unchanged
    found = _by_check(report.findings)
    assert list(found) == [("null_share", "income")]
    finding = found["null_share", "income"]
    assert finding.severity is Severity.ERROR
    assert finding.details["current_share"] == pytest.approx(0.03)
    assert finding.details["reference_share"] == 0.0
    assert "had no missing values in the reference but 3.0%" in finding.message


def test_nulls_within_the_tolerance_are_no_finding() -> None:
    ref, cur = _table(0), _table(1)
    cur.loc[cur.sample(frac=NULL_SHARE_TOLERANCE / 2, random_state=2).index, "age"] = np.nan
    assert compare(ref, cur).findings == ()
    loose = compare(ref, cur, null_share_tolerance=0.0)
    assert [(f.check, f.column) for f in loose.findings] == [("null_share", "age")]


def test_a_new_category_is_a_warning_with_examples() -> None:
    ref, cur = _table(0), _table(1)
    cur.loc[:199, "plan"] = "enterprise"
    finding = _by_check(compare(ref, cur).findings)["unseen_categories", "plan"]
    assert finding.severity is Severity.WARNING
    assert finding.details["count"] == 200
    assert finding.details["examples"] == [["enterprise", 200]]


def test_values_out_of_the_reference_range_are_a_warning() -> None:
    ref, cur = _table(0), _table(1)
    cur.loc[:99, "visits"] = 500  # e.g. a unit change upstream
    finding = _by_check(compare(ref, cur).findings)["out_of_range", "visits"]
    assert finding.severity is Severity.WARNING
    assert finding.details["count"] == 100
    assert finding.details["max"] == 500
    assert finding.details["reference_max"] == ref["visits"].max()


def test_chance_values_just_past_the_reference_range_are_no_finding() -> None:
    # Unchanged continuous columns put about 2 / (n + 1) of their values outside the range of
    # n reference values; data check reports them, a comparison must not cry wolf.
    ref, cur = _table(0, rows=50_000), _table(1, rows=50_000)
    checked = check_table(cur, profile_table(ref), duplicate_rows=False)
    assert {f.check for f in checked} == {"out_of_range"}
    assert compare(ref, cur).findings == ()


def test_schema_missing_extra_and_retyped_columns() -> None:
    ref, cur = _table(0), _table(1)
    cur = cur.drop(columns="income").assign(
        visits=cur["visits"].astype(str), channel=np.where(cur.index % 2, "web", "app")
    )
    report = compare(ref, cur)
    found = _by_check(report.findings)
    assert found["missing_column", "income"].severity is Severity.ERROR
    assert found["extra_column", "channel"].severity is Severity.WARNING
    retyped = found["type_changed", "visits"]
    assert retyped.severity is Severity.ERROR
    assert retyped.details == {"reference_type": "int64", "current_type": "string"}
    assert [c.column for c in report.columns] == ["age", "visits", "plan"]


def test_a_clean_comparison_has_no_findings_even_when_it_drifts() -> None:
    ref, cur = _table(0), _table(1)
    cur["age"] += 5  # drift, not a quality problem: the values stay in range
    cur["age"] = cur["age"].clip(ref["age"].min(), ref["age"].max())
    report = compare(ref, cur)
    assert report.column("age").drifted
    assert report.findings == ()
    assert report.to_dict()["findings"] == []


def test_findings_are_those_of_data_check_against_a_profile() -> None:
    ref, cur = _table(0), _table(1)
    cur.loc[:399, "age"] = np.nan
    cur.loc[:99, "plan"] = "enterprise"
    cur.loc[:99, "visits"] = -7
    cur = cur.drop(columns="income")
    expected = check_table(
        cur, profile_table(ref), null_share_tolerance=NULL_SHARE_TOLERANCE, duplicate_rows=False
    )
    assert {f.check for f in expected} >= {"missing_column", "null_share", "unseen_categories"}
    from_raw = compare(ref, cur).findings
    from_profile = compare(profile_table(ref), cur).findings
    assert list(from_raw) == [
        f for f in expected if f.check != "out_of_range" or f.column == "visits"
    ]
    assert from_profile == from_raw


def test_a_prepared_reference_gives_the_same_findings(tmp_path: Path) -> None:
    ref, cur = _table(0), _table(1)
    cur.loc[:399, "age"] = np.nan
    cur.loc[:99, "plan"] = "enterprise"
    cur.to_csv(tmp_path / "cur.csv", index=False)
    findings = compare(ref, cur).findings
    assert {f.check for f in findings} == {"null_share", "unseen_categories"}
    assert compare(prepare_reference(ref), cur).findings == findings
    assert compare(ref, tmp_path / "cur.csv").findings == findings


def test_named_columns_limit_the_checks_to_them() -> None:
    ref, cur = _table(0), _table(1)
    cur.loc[:999, "income"] = np.nan
    cur["channel"] = "web"
    report = compare(ref, cur, columns=["age", "plan"])
    assert report.findings == ()
    assert compare(ref, cur, columns=["income"]).findings[0].column == "income"


def test_quality_can_be_left_out_and_the_tolerance_is_checked() -> None:
    ref, cur = _table(0), _table(1).drop(columns="income")
    assert compare(ref, cur, quality=False).findings == ()
    with pytest.raises(Exception, match="null_share_tolerance must lie in"):
        compare(ref, cur, null_share_tolerance=2.0)


def test_findings_round_trip_through_json() -> None:
    ref, cur = _table(0), _table(1).drop(columns="income")
    report = compare(pa.Table.from_pandas(ref), cur)
    again = DriftReport.from_dict(json.loads(json.dumps(report.to_dict(), allow_nan=False)))
    assert again.findings == report.findings
    assert again.findings[0].severity is Severity.ERROR


def test_the_report_lists_findings_and_an_error_needs_attention() -> None:
    ref, cur = _table(0), _table(1).drop(columns="income")
    report = compare(ref, cur)
    data = render_json(drift=report)
    assert data["summary"]["attention"] == ["1 data-quality error(s)"]
    assert [f["check"] for f in data["drift"]["findings"]] == ["missing_column"]
    html = render_report(drift=report)
    quality = html.split('id="quality">Data quality</h2>')[1]
    assert "missing_column" in quality and "<code>income</code>" in quality
    clean = render_report(drift=compare(ref, _table(1)))
    assert "No data-quality findings against the reference." in clean


# --- the command line ---------------------------------------------------------------------


def _files(tmp_path: Path, cur: pd.DataFrame) -> tuple[str, str]:
    _table(0).to_parquet(tmp_path / "ref.parquet")
    cur.to_parquet(tmp_path / "cur.parquet")
    return str(tmp_path / "ref.parquet"), str(tmp_path / "cur.parquet")


def _env(tmp_path: Path) -> dict[str, str]:
    # A workspace that does not exist: comparing two files must not need (or make) one.
    return {**os.environ, "SHIPYARD_HOME": str(tmp_path / "no-workspace")}


def test_cli_json_carries_findings_and_an_error_exits_1(tmp_path: Path) -> None:
    cur = _table(1)
    cur.loc[cur.sample(frac=0.03, random_state=2).index, "income"] = np.nan
    ref_path, cur_path = _files(tmp_path, cur)
    args = ("monitor", "drift", "--reference", ref_path, "--current", cur_path)
    done = run_shipyard(*args, "--json", env=_env(tmp_path), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""
    result = json.loads(done.stdout)
    assert [(f["check"], f["severity"], f["column"]) for f in result["findings"]] == [
        ("null_share", "error", "income")
    ]
    assert not (tmp_path / "no-workspace").exists()

    text = run_shipyard(*args, env=_env(tmp_path), cwd=tmp_path)
    assert text.returncode == 1, text.stderr
    assert "data quality: 1 finding(s), 1 error(s)" in text.stdout
    assert "null_share" in text.stdout and "income" in text.stdout

    loose = run_shipyard(*args, "--json", "--null-tolerance", "0.05", env=_env(tmp_path))
    assert loose.returncode == 0, loose.stderr
    assert json.loads(loose.stdout)["findings"] == []


def test_cli_clean_comparison_prints_an_empty_list_and_exits_0(tmp_path: Path) -> None:
    ref_path, cur_path = _files(tmp_path, _table(1))
    args = ("monitor", "drift", "--reference", ref_path, "--current", cur_path)
    done = run_shipyard(*args, "--json", env=_env(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["findings"] == []
    text = run_shipyard(*args, env=_env(tmp_path), cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "data quality: no findings" in text.stdout
