from __future__ import annotations

import datetime as dt
import decimal
import gzip
import importlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipyard.data.profiling import QUANTILE_LEVELS, profile_table
from shipyard.data.tables import connect, open_relation, table_columns, table_format
from shipyard.entities.data import DatasetProfile, Histogram
from shipyard.errors import InvalidArgumentError, NotFoundError

#: Float columns with missing values, NaN, infinities, repeats and extreme magnitudes.
float_columns = st.lists(
    st.one_of(
        st.none(),
        st.floats(width=64),
        st.sampled_from([0.0, -0.0, 1.0, 2.5, 1e300, -1e300, 5e-324]),
    ),
    max_size=60,
)

# shipyard.data also has a function named ``profile``: fetch the module itself.
profile_module = importlib.import_module("shipyard.data.profiling")

Source = Callable[[pa.Table], object]


def _as_parquet(tmp_path: Path) -> Source:
    def write(table: pa.Table) -> object:
        path = tmp_path / "table.parquet"
        pq.write_table(table, path)
        return path

    return write


def _as_csv(tmp_path: Path) -> Source:
    def write(table: pa.Table) -> object:
        path = tmp_path / "table.csv"
        pa_csv.write_csv(table, path)
        return str(path)

    return write


@pytest.fixture(params=["arrow", "dataframe", "parquet", "csv"])
def as_source(request: pytest.FixtureRequest, tmp_path: Path) -> Source:
    """The same table as each kind of source that profile_table reads."""
    if request.param == "arrow":
        return lambda table: table
    if request.param == "dataframe":
        return lambda table: table.to_pandas(types_mapper=pd.ArrowDtype)
    if request.param == "parquet":
        return _as_parquet(tmp_path)
    return _as_csv(tmp_path)


def _numpy_bins(values: np.ndarray, edges: tuple[float, ...]) -> list[int]:
    """Counts in [e[i], e[i+1]) bins, the last closed, computed independently of DuckDB."""
    index = np.searchsorted(np.asarray(edges[1:-1]), values, side="right")
    return [int(n) for n in np.bincount(index, minlength=len(edges) - 1)]


# --- numbers ---------------------------------------------------------------------------------


def test_integer_column_statistics_are_exact(as_source: Source) -> None:
    table = pa.table({"x": pa.array([1, 2, 3, 4, None], pa.int64())})
    profile = profile_table(as_source(table))
    assert profile.rows == 5
    (col,) = profile.columns
    assert (col.name, col.type, col.nullable) == ("x", "int64", True)
    assert (col.count, col.null_count, col.distinct) == (4, 1, 4)
    assert (col.min, col.max, col.mean) == (1.0, 4.0, 2.5)
    assert col.std == pytest.approx(1.2909944487358056, rel=1e-12)
    assert col.quantiles is not None
    assert list(col.quantiles) == [str(q) for q in QUANTILE_LEVELS]
    expected = np.quantile([1, 2, 3, 4], QUANTILE_LEVELS)
    assert list(col.quantiles.values()) == pytest.approx(expected.tolist(), rel=1e-12)
    assert col.quantiles["0.5"] == 2.5
    assert col.top_values is None and col.other_count is None
    assert col.is_numeric
    assert col.null_share == pytest.approx(0.2)


def test_column_without_missing_values_is_not_nullable() -> None:
    col = profile_table(pa.table({"x": [1.5, 2.5]})).column("x")
    assert col.type == "double"
    assert col.nullable is False
    assert col.std == pytest.approx(math.sqrt(0.5))


def test_histogram_has_equal_width_bins_from_min_to_max() -> None:
    col = profile_table(pa.table({"x": list(range(10))}), bins=5).column("x")
    assert col.histogram == Histogram((0.0, 1.8, 3.6, 5.4, 7.2, 9.0), (2, 2, 2, 2, 2))


def test_a_value_on_an_inner_edge_falls_in_the_bin_to_its_right() -> None:
    col = profile_table(pa.table({"x": [0, 1, 2, 3, 4]}), bins=4).column("x")
    assert col.histogram == Histogram((0.0, 1.0, 2.0, 3.0, 4.0), (1, 1, 1, 2))


def test_quantile_bins_use_the_deciles_as_edges() -> None:
    col = profile_table(pa.table({"x": list(range(100))})).column("x")
    assert col.quantile_bins is not None
    edges = col.quantile_bins.edges
    assert edges[0] == 0.0 and edges[-1] == 99.0
    assert edges[1:-1] == pytest.approx([9.9 * k for k in range(1, 10)])
    assert col.quantile_bins.counts == (10,) * 10


def test_quantile_bins_merge_equal_deciles_of_discrete_data() -> None:
    values = [0] * 50 + [1] * 30 + [2] * 20
    col = profile_table(pa.table({"x": values})).column("x")
    assert col.quantile_bins is not None
    edges, counts = col.quantile_bins.edges, col.quantile_bins.counts
    assert list(edges) == sorted(set(edges))
    assert sum(counts) == 100
    assert list(counts) == _numpy_bins(np.asarray(values, dtype=float), edges)


def test_constant_column_has_one_bin() -> None:
    col = profile_table(pa.table({"x": [7, 7, 7]})).column("x")
    assert col.histogram == Histogram((7.0, 7.0), (3,))
    assert col.quantile_bins == Histogram((7.0, 7.0), (3,))
    assert (col.min, col.max, col.std, col.distinct) == (7.0, 7.0, 0.0, 1)


def test_single_value_has_no_sample_std() -> None:
    col = profile_table(pa.table({"x": [3.0]})).column("x")
    assert col.std is None
    assert col.mean == 3.0


def test_nan_and_infinity_count_as_missing() -> None:
    values = pa.array([1.0, float("nan"), float("inf"), None, 3.0, float("-inf")])
    col = profile_table(pa.table({"x": values})).column("x")
    assert (col.count, col.null_count, col.nullable) == (2, 4, True)
    assert (col.min, col.max, col.mean, col.distinct) == (1.0, 3.0, 2.0, 2)
    assert col.histogram is not None and sum(col.histogram.counts) == 2
    json.dumps(DatasetProfile(1, (col,)).to_dict(), allow_nan=False)


def test_float32_and_decimal_columns_are_numbers() -> None:
    table = pa.table(
        {
            "f": pa.array([1.5, float("nan"), 2.5], pa.float32()),
            "d": pa.array(
                [decimal.Decimal("1.25"), None, decimal.Decimal("2.75")], pa.decimal128(9, 2)
            ),
        }
    )
    profile = profile_table(table)
    f, d = profile.column("f"), profile.column("d")
    assert (f.type, f.count, f.mean) == ("float", 2, 2.0)
    assert (d.type, d.count, d.min, d.max, d.mean) == ("decimal128(9, 2)", 2, 1.25, 2.75, 2.0)


def test_all_null_numeric_column() -> None:
    col = profile_table(pa.table({"x": pa.array([None, None], pa.float64())})).column("x")
    assert (col.count, col.null_count, col.distinct) == (0, 2, 0)
    unset = (col.min, col.max, col.mean, col.std, col.quantiles, col.histogram, col.quantile_bins)
    assert unset == (None,) * 7


# --- categories, booleans, times ----------------------------------------------------------------


def test_top_values_are_most_frequent_first_ties_by_value(as_source: Source) -> None:
    values = ["b", "a", "c", "a", "b", "a", "d", None, "c"]
    col = profile_table(as_source(pa.table({"s": values}))).column("s")
    assert col.type == "string"
    assert col.top_values == (("a", 3), ("b", 2), ("c", 2), ("d", 1))
    assert (col.other_count, col.count, col.null_count, col.distinct) == (0, 8, 1, 4)
    assert col.mean is None and col.histogram is None


def test_top_k_limits_the_values_and_counts_the_rest() -> None:
    values = ["b", "a", "c", "a", "b", "a", "d", "c"]
    col = profile_table(pa.table({"s": values}), top_k=2).column("s")
    assert col.top_values == (("a", 3), ("b", 2))
    assert col.other_count == 3
    assert profile_table(pa.table({"s": values}), top_k=0).column("s").top_values == ()


def test_pandas_categorical_is_a_string_column() -> None:
    df = pd.DataFrame({"c": pd.Categorical(["x", "y", "x"])})
    col = profile_table(df).column("c")
    assert col.type == "string"
    assert col.top_values == (("x", 2), ("y", 1))


def test_booleans_are_categories_spelled_true_and_false(as_source: Source) -> None:
    col = profile_table(as_source(pa.table({"b": [True, False, True, None]}))).column("b")
    assert col.type == "bool"
    assert col.top_values == (("true", 2), ("false", 1))
    assert (col.count, col.null_count, col.mean) == (3, 1, None)


def test_timestamps_have_iso_min_and_max_and_no_mean(tmp_path: Path) -> None:
    stamps = pa.array(
        [dt.datetime(2024, 1, 2, 3, 4, 5, 500000), None, dt.datetime(2023, 12, 31)],
        pa.timestamp("us"),
    )
    table = pa.table(
        {"t": stamps, "d": pa.array([dt.date(2024, 2, 29), None, dt.date(2024, 1, 1)])}
    )
    for source in (table, _as_parquet(tmp_path)(table)):
        profile = profile_table(source)
        t, d = profile.column("t"), profile.column("d")
        assert (t.type, t.min, t.max) == (
            "timestamp[us]",
            "2023-12-31T00:00:00",
            "2024-01-02T03:04:05.5",
        )
        assert (d.type, d.min, d.max) == ("date32[day]", "2024-01-01", "2024-02-29")
        for col in (t, d):
            assert (col.count, col.null_count, col.distinct) == (2, 1, 2)
            assert col.mean is None and col.std is None and col.quantiles is None
            assert col.histogram is None and col.top_values is None
        assert dt.datetime.fromisoformat(str(t.max)) == dt.datetime(2024, 1, 2, 3, 4, 5, 500000)


def test_time_zone_aware_timestamps_are_utc() -> None:
    df = pd.DataFrame({"t": pd.to_datetime(["2024-01-01T12:00:00+02:00"], utc=True)})
    col = profile_table(df).column("t")
    assert col.type == "timestamp[us, tz=UTC]"
    assert col.min is not None
    assert dt.datetime.fromisoformat(str(col.min)) == dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC)


def test_csv_dates_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("day,when\n2024-01-05,2024-01-05 10:00:00\n2024-01-01,2024-01-01 00:00:00\n")
    profile = profile_table(path)
    assert [(c.type, c.min) for c in profile.columns] == [
        ("date32[day]", "2024-01-01"),
        ("timestamp[us]", "2024-01-01T00:00:00"),
    ]


def test_other_types_get_counts_only() -> None:
    col = profile_table(pa.table({"l": pa.array([[1], None, [2, 3]])})).column("l")
    assert col.type.startswith("list<")
    assert (col.count, col.null_count, col.distinct, col.min, col.top_values) == (
        2,
        1,
        None,
        None,
        None,
    )


def test_all_null_string_column_has_no_top_values() -> None:
    col = profile_table(pa.table({"s": pa.array([None, None], pa.string())})).column("s")
    assert (col.count, col.null_count, col.top_values, col.other_count) == (0, 2, (), 0)


# --- whole tables ------------------------------------------------------------------------------


def test_zero_row_table_keeps_its_schema(tmp_path: Path) -> None:
    table = pa.table({"x": pa.array([], pa.int64()), "s": pa.array([], pa.string())})
    for source in (
        table,
        table.to_pandas(types_mapper=pd.ArrowDtype),
        _as_parquet(tmp_path)(table),
    ):
        profile = profile_table(source)
        assert profile.rows == 0
        assert [(c.name, c.type, c.count, c.null_count) for c in profile.columns] == [
            ("x", "int64", 0, 0),
            ("s", "string", 0, 0),
        ]
        assert profile.column("x").histogram is None
        assert profile.column("s").top_values == ()


def test_header_only_csv_is_a_zero_row_table(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("a,b\n")
    profile = profile_table(path)
    assert profile.rows == 0
    assert [c.name for c in profile.columns] == ["a", "b"]


def test_same_data_gives_the_same_profile_from_every_source(tmp_path: Path) -> None:
    table = pa.table(
        {
            "n": pa.array([3, 1, 4, 1, 5, 9, 2, 6], pa.int64()),
            "f": [0.5, 1.5, None, 2.25, 3.0, 3.5, 4.0, 8.0],
            "s": ["a", "b", "a", None, "c", "a", "b", "a"],
        }
    )
    arrow = profile_table(table)
    for source in (
        table.to_pandas(types_mapper=pd.ArrowDtype),
        _as_parquet(tmp_path)(table),
        _as_csv(tmp_path)(table),
    ):
        assert profile_table(source) == arrow


def test_profile_survives_a_json_round_trip(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "n": [1, 2, 3, 4, None],
            "s": ["x", "y", "x", None, "z"],
            "b": [True, False, True, True, None],
            "t": pd.to_datetime(["2024-01-01", "2024-01-02", "NaT", "2024-01-03", "2024-01-01"]),
        }
    )
    profile = profile_table(df)
    text = json.dumps(profile.to_dict(), allow_nan=False)
    assert DatasetProfile.from_dict(json.loads(text)) == profile


def test_parquet_folder_with_hive_partitions(tmp_path: Path) -> None:
    folder = tmp_path / "events"
    for year, values in (("2023", [1, 2]), ("2024", [3])):
        (folder / f"year={year}").mkdir(parents=True)
        pq.write_table(pa.table({"x": values}), folder / f"year={year}" / "part-0.parquet")
    (folder / "_SUCCESS").write_text("")
    (folder / ".hidden.parquet").write_bytes(b"not parquet")
    assert table_format(folder) == "parquet"
    profile = profile_table(folder)
    assert profile.rows == 3
    assert profile.column("x").mean == 2.0
    assert profile.column("year").count == 3


def test_parquet_folder_files_with_different_columns_are_matched_by_name(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1], "b": ["x"]}), tmp_path / "1.parquet")
    pq.write_table(pa.table({"b": ["y"], "c": [2.0]}), tmp_path / "2.parquet")
    profile = profile_table(tmp_path)
    assert profile.rows == 2
    assert {c.name: c.null_count for c in profile.columns} == {"a": 1, "b": 0, "c": 1}


def test_compressed_csv_and_tsv(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "t.csv.gz", "wt") as f:
        f.write("a,b\n1,x\n2,y\n")
    (tmp_path / "t.tsv").write_text("a\tb\n1\tx\n2\ty\n")
    for name in ("t.csv.gz", "t.tsv"):
        profile = profile_table(tmp_path / name)
        assert [(c.name, c.type) for c in profile.columns] == [("a", "int64"), ("b", "string")]
        assert profile.rows == 2


def test_approximate_statistics_above_the_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(10, 2, 5000)
    table = pa.table({"x": values, "k": rng.integers(0, 500, 5000)})
    exact = profile_table(table)
    monkeypatch.setattr(profile_module, "EXACT_QUANTILE_MAX_ROWS", 100)
    monkeypatch.setattr(profile_module, "EXACT_DISTINCT_MAX_ROWS", 100)
    approx = profile_table(table)
    x_exact, x_approx = exact.column("x"), approx.column("x")
    assert x_exact.quantiles is not None and x_approx.quantiles is not None
    for level in x_exact.quantiles:
        assert x_approx.quantiles[level] == pytest.approx(x_exact.quantiles[level], abs=0.1)
    values_in_order = list(x_approx.quantiles.values())
    assert values_in_order == sorted(values_in_order)
    assert x_approx.distinct == pytest.approx(5000, rel=0.1)
    assert approx.column("k").distinct == pytest.approx(exact.column("k").distinct, rel=0.1)
    assert x_approx.quantile_bins is not None
    assert list(x_approx.quantile_bins.counts) == _numpy_bins(values, x_approx.quantile_bins.edges)


def test_profiles_a_table_larger_than_the_memory_limit(tmp_path: Path) -> None:
    n = 300_000
    table = pa.table({"id": [f"user-{i:09d}" for i in range(n)], "x": np.arange(n, dtype=float)})
    path = tmp_path / "ids.parquet"
    pq.write_table(table, path)
    spill_folders = set(Path(tempfile.gettempdir()).glob("shipyard-duckdb-*"))
    profile = profile_table(path, memory_limit="20MB", top_k=3)
    assert set(Path(tempfile.gettempdir()).glob("shipyard-duckdb-*")) <= spill_folders
    col = profile.column("id")
    assert col.count == n and col.other_count == n - 3
    assert col.top_values == (("user-000000000", 1), ("user-000000001", 1), ("user-000000002", 1))


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(values=float_columns, bins=st.integers(min_value=1, max_value=12))
def test_bins_count_every_value_and_quantiles_lie_in_range(
    values: list[float | None], bins: int
) -> None:
    profile = profile_table(pa.table({"x": pa.array(values, pa.float64())}), bins=bins)
    col = profile.column("x")
    present = np.asarray([v for v in values if v is not None and math.isfinite(v)])
    assert col.count == len(present)
    assert col.count + col.null_count == len(values)
    if col.count == 0:
        assert col.histogram is None and col.quantiles is None
        return
    assert col.min == present.min() and col.max == present.max()
    assert col.histogram is not None and col.quantile_bins is not None and col.quantiles
    for histogram in (col.histogram, col.quantile_bins):
        assert sum(histogram.counts) == col.count
        assert len(histogram.counts) == len(histogram.edges) - 1
        assert histogram.edges[0] == col.min and histogram.edges[-1] == col.max
        assert list(histogram.edges) == sorted(histogram.edges)
        if len(histogram.counts) > 1:
            assert list(histogram.counts) == _numpy_bins(present, histogram.edges)
    assert len(col.histogram.counts) <= bins
    quantiles = list(col.quantiles.values())
    assert quantiles == sorted(quantiles)
    assert col.min <= quantiles[0] and quantiles[-1] <= col.max  # type: ignore[operator]


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "is empty"),
        ("blank.csv", b"\n\n  \n", "is empty"),
        ("ragged.csv", b"a,b\n1,2\n3,4,5\n6\n", "every row has as many fields"),
        ("late.csv", b"a,b\n" + b"1,2\n" * 25_000 + b"1,2,3\n", "Expected Number of Columns"),
        ("types.csv", b"a\n" + b"1\n" * 25_000 + b"abc\n", 'Could not convert string "abc"'),
        ("latin1.csv", "a\nd\xe9j\xe0\n".encode("latin-1"), "not utf-8"),
        ("broken.parquet", b"PAR1 this is not parquet PAR1", "cannot read"),
        ("fake.csv.gz", b"a,b\n1,2\n", "GZIP"),
        ("notes.txt", b"a,b\n1,2\n", "is not a table"),
    ],
)
def test_bad_files_are_invalid_arguments_naming_the_file(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidArgumentError) as caught:
        profile_table(path)
    message = str(caught.value)
    assert str(path) in message
    assert expected in message
    assert "\n" not in message


def test_folder_without_parquet_files_is_not_a_table(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("a\n1\n")
    with pytest.raises(InvalidArgumentError, match="is not a table"):
        profile_table(tmp_path)


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"missing\.parquet"):
        profile_table(tmp_path / "missing.parquet")


def test_other_objects_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="pass a path, a pandas DataFrame"):
        profile_table([1, 2, 3])


@pytest.mark.parametrize(("top_k", "bins"), [(-1, 20), (20, 0), (True, 20), (20, 2.5)])
def test_out_of_range_options_are_refused(top_k: object, bins: object) -> None:
    with pytest.raises(InvalidArgumentError):
        profile_table(pa.table({"x": [1]}), top_k=top_k, bins=bins)  # type: ignore[arg-type]


# --- tables.py ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.csv", "csv"),
        ("A.CSV", "csv"),
        ("a.csv.gz", "csv"),
        ("a.tsv", "csv"),
        ("a.csv.zst", "csv"),
        ("a.parquet", "parquet"),
        ("a.pq", "parquet"),
        ("a.json", ""),
        ("a.csv.bak", ""),
        ("parquet", ""),
    ],
)
def test_table_format_from_the_suffix(name: str, expected: str) -> None:
    assert table_format(name) == expected


def test_connect_spills_to_a_private_folder_removed_on_close() -> None:
    con = connect("50MB")
    spill = con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    assert Path(spill).parent == Path(tempfile.gettempdir())
    assert threads == 2
    con.execute(
        "SELECT count(*) FROM (SELECT DISTINCT range % 3000000 FROM range(6000000))"
    ).fetchall()
    assert os.path.isdir(spill)
    con.close()
    assert not os.path.exists(spill)


def test_connect_refuses_a_bad_memory_limit() -> None:
    with pytest.raises(InvalidArgumentError, match="memory_limit='plenty'"):
        connect("plenty")


def test_table_columns_name_logical_arrow_types() -> None:
    table = pa.table(
        {
            "big": pa.array(["x"], pa.large_string()),
            "dict": pa.array(["x"]).dictionary_encode(),
            "u8": pa.array([1], pa.uint8()),
        }
    )
    with connect() as con:
        columns = table_columns(open_relation(con, table))
    assert [(c.name, c.type, c.kind) for c in columns] == [
        ("big", "string", "category"),
        ("dict", "string", "category"),
        ("u8", "uint8", "number"),
    ]


def test_quoted_column_names_are_profiled() -> None:
    profile = profile_table(pd.DataFrame({'we"ird name': [1, 2], "select": ["a", "b"]}))
    assert [c.name for c in profile.columns] == ['we"ird name', "select"]
    assert profile.column('we"ird name').mean == 1.5


def test_the_public_profile_function_survives_importing_the_module() -> None:
    """`shipyard.data.profile` is a function; the module behind it must not shadow it."""
    import pandas as pd

    from shipyard import data

    frame = pd.DataFrame({"x": [1.0, 2.0]})
    assert data.profile(frame).rows == 2
    importlib.import_module("shipyard.data.profiling")
    assert data.profile(frame).rows == 2
