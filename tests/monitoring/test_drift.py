"""Drift between generated tables: planted shifts found, unchanged columns left alone."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from shipyard.data.profiling import profile_table
from shipyard.entities.monitoring import DriftReport
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.monitoring import statistics as ds
from shipyard.monitoring.drift import DEFAULT_THRESHOLDS, compare, prepare_reference

SHARES = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
PLANTED = {"shifted", "wider", "mix", "rate"}


def _mild(shares: np.ndarray, first: float) -> np.ndarray:
    """The first category's share set to ``first``, the others scaled to make up the rest."""
    rest = shares[1:] * (1 - first) / shares[1:].sum()
    return np.r_[first, rest]


def _table(n: int, seed: int, *, drift: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcde"))
    data = {
        "shifted": rng.normal(0.3 if drift else 0.0, 1, n),
        "wider": rng.normal(0, 1.3 if drift else 1.0, n),
        "mix": rng.choice(letters, n, p=_mild(SHARES, 0.4) if drift else SHARES),
        "rate": rng.random(n) < (0.3 if drift else 0.2),
    }
    for i in range(4):
        data[f"same{i}"] = rng.lognormal(i / 4, 1, n)
    data["same_cat"] = rng.choice(letters, n, p=SHARES)
    data["same_int"] = rng.integers(0, 50, n)
    data["same_bool"] = rng.random(n) < 0.5
    return pd.DataFrame(data)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_planted_shifts_are_found_and_nothing_else(seed: int) -> None:
    report = compare(_table(5_000, seed, drift=False), _table(5_000, seed + 100, drift=True))
    assert set(report.drifted_columns) == PLANTED
    assert report.share_drifted == pytest.approx(4 / 11)
    assert not report.drifted  # 4 of 11 < share_threshold 0.5
    kinds = {c.column: c.kind for c in report.columns}
    assert kinds["shifted"] == "numeric"
    assert kinds["mix"] == "categorical"
    assert kinds["rate"] == kinds["same_bool"] == "binary"
    assert {c.column: c.test for c in report.columns}["rate"] == "proportion"


@pytest.mark.parametrize("seed", range(5))
def test_unchanged_data_raises_no_alarm(seed: int) -> None:
    report = compare(_table(3_000, seed, drift=False), _table(3_000, seed + 50, drift=False))
    assert report.drifted_columns == ()
    for col in report.columns:
        assert col.p_value is not None and col.distance is not None, col.reason


def test_every_column_carries_a_distance_a_significance_and_its_scores() -> None:
    report = compare(_table(2_000, 0, drift=False), _table(2_000, 1, drift=True))
    shifted = report.column("shifted")
    assert shifted.test == "ks" and shifted.distance_metric == "wasserstein"
    assert {"ks", "ks_p_value", "wasserstein", "psi", "jensen_shannon", "chi2"} <= set(
        shifted.scores
    )
    assert shifted.statistic == shifted.scores["ks"]
    assert shifted.threshold == DEFAULT_THRESHOLDS["wasserstein"]
    assert shifted.reason.startswith("drifted: ks adjusted p=")
    mix = report.column("mix")
    assert mix.test == "chi2" and mix.distance_metric == "jensen_shannon"
    assert mix.unseen_share == 0.0
    assert report.columns[0].reference_count == 2_000


def test_a_tiny_shift_in_a_million_rows_is_significant_but_not_drift() -> None:
    rng = np.random.default_rng(7)
    n = 1_000_000
    ref = pa.table({"tiny": rng.normal(0, 1, n), "small": rng.normal(0, 1, n)})
    cur = pa.table({"tiny": rng.normal(0.005, 1, n), "small": rng.normal(0.05, 1, n)})
    report = compare(ref, cur)
    tiny, small = report.column("tiny"), report.column("small")
    assert not tiny.drifted
    assert "too small to matter" in tiny.reason  # KS is significant at this size, p=0.002
    assert tiny.distance is not None and tiny.distance < DEFAULT_THRESHOLDS["wasserstein"] / 2
    assert small.drifted, small.reason
    assert small.distance == pytest.approx(0.05, abs=0.01)


def test_a_large_shift_in_a_small_sample_is_flagged() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 60), "y": rng.normal(0, 1, 60)})
    cur = pd.DataFrame({"x": rng.normal(1.5, 1, 60), "y": rng.normal(0, 1, 60)})
    report = compare(ref, cur)
    assert report.drifted_columns == ("x",)
    # y's distance is sampling noise above the threshold; only significance keeps it quiet.
    y = report.column("y")
    assert y.distance is not None and y.distance >= y.threshold
    assert "not significant" in y.reason


def test_distance_alone_when_alpha_is_none() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"y": rng.normal(0, 1, 60)})
    cur = pd.DataFrame({"y": rng.normal(0, 1, 60)})
    report = compare(ref, cur, alpha=None)
    assert report.drifted_columns == ("y",)  # noise exceeds 0.02 at 60 rows
    assert "distance alone" in report.column("y").reason
    assert report.to_dict()["alpha"] is None


def test_unseen_categories_are_counted_not_a_crash() -> None:
    ref = pd.DataFrame({"c": ["a", "b"] * 500})
    cur = pd.DataFrame({"c": ["a", "b"] * 400 + ["new"] * 150 + ["newer"] * 50})
    col = compare(ref, cur).column("c")
    assert col.kind == "categorical"
    assert col.unseen_share == pytest.approx(0.2)
    assert col.drifted
    assert "never seen before" in col.reason


def test_a_few_unseen_values_in_a_large_sample_do_not_make_drift() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"c": rng.choice(list("abc"), 20_000)})
    cur = pd.DataFrame({"c": np.r_[rng.choice(list("abc"), 19_990), ["zzz"] * 10]})
    col = compare(ref, cur).column("c")
    assert col.unseen_share == pytest.approx(0.0005)
    assert not col.drifted


def test_all_null_and_constant_columns_give_reasons() -> None:
    n = 500
    ref = pd.DataFrame(
        {
            "empty": [np.nan] * n,
            "const": [3.0] * n,
            "moved": [3.0] * n,
            "label": ["x"] * n,
            "x": np.arange(n, dtype=float),
        }
    )
    cur = pd.DataFrame(
        {
            "empty": [np.nan] * n,
            "const": [3.0] * n,
            "moved": [4.0] * n,
            "label": ["x"] * n,
            "x": np.arange(n, dtype=float),
        }
    )
    report = compare(ref, cur)
    empty = report.column("empty")
    assert not empty.drifted and empty.distance is None and empty.p_value is None
    assert "holds no values" in empty.reason and "500 null" in empty.reason
    assert empty.scores["reference_nulls"] == 500
    const = report.column("const")
    assert not const.drifted and const.distance == 0.0 and "constant" in const.reason
    assert not report.column("label").drifted
    assert report.column("moved").drifted
    json.dumps(report.to_dict(), allow_nan=False)


def test_nulls_and_nan_are_left_out_and_counted() -> None:
    ref = pd.DataFrame({"x": [1.0, 2.0, np.nan, np.inf, 3.0] * 100})
    cur = pd.DataFrame({"x": pd.array([1, 2, None, 3, None] * 100, dtype="Int64")})
    col = compare(ref, cur).column("x")
    assert (col.reference_count, col.current_count) == (300, 300)
    assert col.scores["reference_nulls"] == col.scores["current_nulls"] == 200
    assert col.distance == 0.0 and not col.drifted


def test_the_reference_may_be_a_stored_profile(tmp_path: Path) -> None:
    ref, cur = _table(50_000, 0, drift=False), _table(50_000, 1, drift=True)
    profile = profile_table(ref)
    raw, stored = compare(ref, cur), compare(profile, cur)
    assert all(c.from_profile for c in stored.columns)
    assert not any(c.from_profile for c in raw.columns)
    assert set(stored.drifted_columns) == PLANTED
    for name in ("shifted", "wider", "same0", "mix", "same_cat"):
        # The profile's decile bins are the raw reference's: PSI is the same, up to rounding.
        assert stored.column(name).scores["psi"] == pytest.approx(
            raw.column(name).scores["psi"], rel=1e-6, abs=1e-9
        )
    shifted = stored.column("shifted")
    assert shifted.test == "chi2" and "ks" not in shifted.scores
    # Wasserstein from the profile's quantiles is close to the raw one for a location shift.
    assert shifted.distance == pytest.approx(raw.column("shifted").distance, rel=0.1)
    assert stored.column("rate").kind == "binary"
    assert stored.reference_rows == 50_000


def test_ks_against_a_profile_is_skipped_with_a_reason() -> None:
    ref, cur = _table(1_000, 0, drift=False), _table(1_000, 1, drift=True)
    col = compare(profile_table(ref), cur, tests={"shifted": "ks"}).column("shifted")
    assert not col.drifted and col.p_value is None
    assert "ks needs the raw reference data" in col.reason


def test_parquet_and_csv_paths_read_column_by_column(tmp_path: Path) -> None:
    ref, cur = _table(4_000, 0, drift=False), _table(4_000, 1, drift=True)
    ref.to_parquet(tmp_path / "ref.parquet", row_group_size=1_000)
    cur.to_csv(tmp_path / "cur.csv", index=False)
    from_files = compare(tmp_path / "ref.parquet", tmp_path / "cur.csv")
    in_memory = compare(ref, cur)
    assert from_files.reference == str(tmp_path / "ref.parquet")
    assert (from_files.reference_rows, from_files.current_rows) == (4_000, 4_000)
    assert from_files.drifted_columns == in_memory.drifted_columns
    for a, b in zip(from_files.columns, in_memory.columns, strict=True):
        assert a.distance == pytest.approx(b.distance), a.column


def test_to_dict_is_strict_json_and_round_trips() -> None:
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0] * 10, "e": [np.nan] * 30, "p": [0.1, 0.9, 0.5] * 10})
    cur = pd.DataFrame({"x": [1.0, 2.0, 9.0] * 10, "e": [np.nan] * 30, "p": [0.1, 0.2, 0.5] * 10})
    report = compare(ref, cur, prediction_column="p", reference_label="churn@3")
    data = report.to_dict()
    text = json.dumps(data, allow_nan=False)
    again = DriftReport.from_dict(json.loads(text))
    assert again.reference == "churn@3"
    assert again.drifted_columns == report.drifted_columns
    assert again.prediction is not None and again.prediction.column == "p"


def test_prediction_drift_is_its_own_signal() -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"x": rng.normal(size=4_000), "score": rng.random(4_000)})
    cur = pd.DataFrame({"x": rng.normal(size=4_000), "score": rng.random(4_000) ** 2})
    report = compare(ref, cur, prediction_column="score")
    assert [c.column for c in report.columns] == ["x"]
    assert report.prediction is not None and report.prediction.drifted
    assert report.share_drifted == 0.0 and not report.drifted
    assert report.prediction.adjusted_p_value == report.prediction.p_value


def test_corrections_across_columns() -> None:
    ref, cur = _table(500, 0, drift=False), _table(500, 1, drift=True)
    none = compare(ref, cur, correction="none")
    bh = compare(ref, cur)
    bonferroni = compare(ref, cur, correction="bonferroni")
    raw = np.array([c.p_value for c in none.columns])
    assert [c.adjusted_p_value for c in none.columns] == pytest.approx(raw.tolist())
    expected = ds.adjust_p_values(raw).tolist()
    assert [c.adjusted_p_value for c in bh.columns] == pytest.approx(expected)
    for b, h in zip(bonferroni.columns, bh.columns, strict=True):
        assert b.adjusted_p_value is not None and h.adjusted_p_value is not None
        assert b.adjusted_p_value >= h.adjusted_p_value
    assert bh.correction == "benjamini-hochberg"


def test_dataset_verdict_uses_the_share_threshold() -> None:
    ref, cur = _table(5_000, 0, drift=False), _table(5_000, 1, drift=True)
    assert compare(ref, cur, share_threshold=0.3).drifted
    assert not compare(ref, cur, share_threshold=0.5).drifted


def test_users_choose_test_distance_and_threshold_per_column() -> None:
    ref, cur = _table(5_000, 0, drift=False), _table(5_000, 1, drift=True)
    report = compare(
        ref,
        cur,
        columns=["shifted", "mix", "wider"],
        tests={"shifted": "psi", "mix": "psi", "wider": "chi2"},
        thresholds={"shifted": 0.001},
    )
    shifted, mix, wider = (report.column(n) for n in ("shifted", "mix", "wider"))
    assert (shifted.test, shifted.distance_metric, shifted.threshold) == ("ks", "psi", 0.001)
    assert shifted.distance == shifted.scores["psi"] and shifted.drifted
    # PSI keeps its conventional 0.1: a mild category change stays under it.
    assert (mix.distance_metric, mix.threshold) == ("psi", DEFAULT_THRESHOLDS["psi"])
    assert not mix.drifted and "too small to matter" in mix.reason
    assert wider.test == "chi2" and wider.statistic == wider.scores["chi2"]
    assert [c.column for c in report.columns] == ["shifted", "mix", "wider"]


def test_column_kinds_override_the_type() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"code": rng.integers(0, 5, 3_000)})
    cur = pd.DataFrame({"code": rng.integers(0, 5, 3_000)})
    assert compare(ref, cur).column("code").kind == "numeric"
    col = compare(ref, cur, column_kinds={"code": "categorical"}).column("code")
    assert col.kind == "categorical" and col.test == "chi2"


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"tests": {"x": "anderson"}}, InvalidArgumentError, "unknown test"),
        ({"tests": {"c": "ks"}}, InvalidArgumentError, "needs a numeric column"),
        ({"column_kinds": {"x": "ordinal"}}, InvalidArgumentError, "unknown kind"),
        ({"alpha": 1.5}, InvalidArgumentError, "alpha"),
        ({"correction": "holm"}, InvalidArgumentError, "unknown correction"),
        ({"thresholds": {"x": -1}}, InvalidArgumentError, "threshold"),
        ({"columns": ["nope"]}, NotFoundError, "no column 'nope'"),
        ({"columns": "x"}, InvalidArgumentError, "list of names"),
        ({"prediction_column": "nope"}, NotFoundError, "no column 'nope'"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], error: type, match: str) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "c"]})
    with pytest.raises(error, match=match):
        compare(frame, frame, **options)  # type: ignore[arg-type]


def test_multivariate_check_finds_a_change_the_columns_alone_cannot() -> None:
    rng = np.random.default_rng(5)
    n = 4_000
    x_ref, y_ref = rng.normal(size=n), rng.normal(size=n)
    x_cur = rng.normal(size=n)
    y_cur = 0.9 * x_cur + np.sqrt(1 - 0.81) * rng.normal(size=n)  # same marginals, correlated
    ref, cur = pd.DataFrame({"x": x_ref, "y": y_ref}), pd.DataFrame({"x": x_cur, "y": y_cur})
    report = compare(ref, cur, multivariate=True)
    assert report.drifted_columns == ()
    assert report.multivariate is not None
    assert report.multivariate["drifted"] and report.multivariate["auc"] > 0.7
    quiet = compare(ref, pd.DataFrame({"x": x_cur, "y": rng.normal(size=n)}), multivariate=True)
    assert quiet.multivariate is not None and not quiet.multivariate["drifted"]


def _same_report(prepared: DriftReport, raw: DriftReport) -> None:
    def text(report: DriftReport) -> str:
        return json.dumps(replace(report, seconds=None).to_dict(), allow_nan=False)

    assert text(prepared) == text(raw)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"tests": {"shifted": "psi", "mix": "psi", "rate": "chi2"}, "alpha": None},
        # Kinds that differ from the preparation's: those columns are read again as they are.
        {"column_kinds": {"same_int": "categorical", "same0": "categorical", "rate": "numeric"}},
        {"multivariate": True, "prediction_column": "same0"},
    ],
)
def test_a_prepared_reference_gives_the_same_report(options: dict[str, Any]) -> None:
    reference = _table(3_000, 0, drift=False)
    reference.loc[::7, "shifted"] = np.nan
    reference.loc[::11, "mix"] = None
    ready = prepare_reference(reference)
    assert ready.rows == 3_000 and ready.kinds["mix"] == "categorical"
    assert ready.kinds["shifted"] == "numeric" and ready.kinds["rate"] == "binary"
    for seed, drift in ((1, False), (2, True)):
        current = _table(1_000, seed, drift=drift)
        _same_report(compare(ready, current, **options), compare(reference, current, **options))
    narrow = prepare_reference(reference, columns=["shifted"])
    current = _table(1_000, 3, drift=True)
    _same_report(compare(narrow, current, **options), compare(reference, current, **options))


def test_a_prepared_file_reads_each_column_once(tmp_path: Path) -> None:
    path = tmp_path / "reference.parquet"
    reference = _table(2_000, 0, drift=False)
    reference.to_parquet(path)
    ready = prepare_reference(path, column_kinds={"same_int": "categorical"})
    assert ready.label == str(path) and ready.kinds["same_int"] == "categorical"
    current = _table(500, 4, drift=True)
    options: dict[str, Any] = {"column_kinds": {"same_int": "categorical"}}
    _same_report(compare(ready, current, **options), compare(path, current, **options))
    with pytest.raises(NotFoundError, match="no column 'nope'"):
        prepare_reference(path, columns=["nope"])
    with pytest.raises(InvalidArgumentError, match="unknown kind"):
        prepare_reference(path, column_kinds={"mix": "ordinal"})


def test_multivariate_needs_raw_reference_rows() -> None:
    frame = _table(500, 0, drift=False)
    report = compare(profile_table(frame), frame, multivariate=True)
    assert report.multivariate is not None and report.multivariate["auc"] is None
    assert "stored profile" in report.multivariate["reason"]


def test_importing_drift_loads_no_heavy_library() -> None:
    code = (
        "import sys, shipyard.monitoring.drift\n"
        "heavy = {'numpy', 'scipy', 'pyarrow', 'pandas', 'duckdb', 'sklearn'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_columns_carry_both_distributions_for_plots() -> None:
    ref = pd.DataFrame({"x": np.arange(1_000.0), "c": ["a", "b", "c", "d"] * 250})
    cur = pd.DataFrame({"x": np.arange(1_000.0) + 500, "c": ["a", "b", "zz", "zz"] * 250})
    report = compare(ref, cur)
    x, c = report.column("x"), report.column("c")
    assert x.bins is not None and len(x.bins["edges"]) == 11
    assert x.bins["reference"] == pytest.approx([0.1] * 10)
    assert x.bins["current"] == pytest.approx([0.0] * 5 + [0.1] * 4 + [0.6])
    assert c.bins == {
        "categories": ["a", "b", "c", "d", "(unseen)"],
        "reference": [0.25, 0.25, 0.25, 0.25, 0.0],
        "current": [0.25, 0.25, 0.0, 0.0, 0.5],
    }
