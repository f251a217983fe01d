"""Data drift: did the distribution of each column move between reference and current data?

:func:`compare` reads both tables one column at a time (a thread per core), runs a type-aware
significance test and an effect-size distance on each column, corrects the p-values for the
number of columns, and flags a column only when both agree::

    drifted = adjusted_p < alpha  and  distance >= threshold

so that a million rows do not make a negligible shift "significant", and a few hundred rows
still flag a large one. Defaults per kind:

===========  =================================  ================================  =========
kind         significance test                  distance (effect size)            threshold
===========  =================================  ================================  =========
numeric      ``ks`` (Kolmogorov-Smirnov)        ``wasserstein`` / reference's sd  0.02
categorical  ``chi2`` (homogeneity, 2 x k)      ``jensen_shannon`` (base 2)       0.02
binary       ``proportion`` (two-proportion z)  ``jensen_shannon``                0.02
===========  =================================  ================================  =========

``psi`` (threshold 0.1, the conventional "moderate shift") can be chosen per column. The
reference may also be a stored :class:`~shipyard.entities.data.DatasetProfile`: then the tests
run on its decile bins and top values (``chi2``; ``wasserstein`` approximated from its
quantiles) and every result says ``from_profile=True``. To compare many tables (windows) with
one reference, :func:`prepare_reference` reads and sorts it once. See ``docs/monitoring.md``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.entities.data import ColumnProfile, DatasetProfile, Finding
from shipyard.entities.monitoring import ColumnDrift, DriftReport
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.monitoring import statistics as st
from shipyard.monitoring.quality import NULL_SHARE_TOLERANCE

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

    from shipyard.data.tables import TableColumn, TableSource

    FloatArray = npt.NDArray[np.float64]

__all__ = [
    "DEFAULT_DISTANCES",
    "DEFAULT_TESTS",
    "DEFAULT_THRESHOLDS",
    "DISTANCES",
    "KINDS",
    "MAX_CATEGORIES",
    "MULTIVARIATE_AUC_THRESHOLD",
    "MULTIVARIATE_SAMPLE_ROWS",
    "TESTS",
    "PreparedReference",
    "compare",
    "prepare_reference",
]

KINDS = ("numeric", "categorical", "binary")
TESTS = ("ks", "chi2", "proportion")
"""Significance tests; ``chi2`` on a numeric column runs on the reference's decile bins."""
DISTANCES = ("wasserstein", "psi", "jensen_shannon")
"""Distances (effect sizes); ``psi`` and ``jensen_shannon`` on numeric columns use deciles."""
DEFAULT_TESTS = {"numeric": "ks", "categorical": "chi2", "binary": "proportion"}
DEFAULT_DISTANCES = {
    "numeric": "wasserstein",
    "categorical": "jensen_shannon",
    "binary": "jensen_shannon",
}
DEFAULT_THRESHOLDS = {"wasserstein": 0.02, "jensen_shannon": 0.02, "psi": 0.1}
"""Smallest distance that counts as drift. ``wasserstein`` is in units of the reference's
standard deviation: 0.02 flags a mean shift of 0.05 sd and ignores one of 0.005 sd.
``jensen_shannon`` 0.02 flags one category's share moving from 30 % to 33 % (about a 0.05 sd
shift in information terms)."""
MAX_CATEGORIES = 100
"""Categories compared one by one: the reference's most frequent; the rest share a bin."""
MULTIVARIATE_SAMPLE_ROWS = 10_000
"""Rows sampled from each side for the domain classifier."""
MULTIVARIATE_AUC_THRESHOLD = 0.55
"""Cross-validated AUC above which a classifier tells the two sides apart: drift."""

_LEVELS = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)  # as profiling.QUANTILE_LEVELS
_DECILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # as profiling.DECILE_LEVELS
_IQR_TO_SD = 1.349  # IQR of a standard normal distribution
_OTHER, _UNSEEN = "(other)", "(unseen)"  # bins of ColumnDrift.bins beyond named categories


@dataclass(slots=True)
class _Measured:
    """What the worker found for one column, before the correction across columns."""

    column: str
    kind: str
    test: str
    distance_metric: str
    reference_count: int = 0
    current_count: int = 0
    statistic: float | None = None
    p_value: float | None = None
    distance: float | None = None
    scores: dict[str, float | None] = field(default_factory=dict)
    unseen_share: float | None = None
    forced: bool = False
    """The user named the kind: never switch it to binary."""
    chosen: bool = False
    """The user named the test: never switch it."""
    skip: str = ""
    """Why no decision could be made (empty: measured)."""
    note: str = ""
    bins: dict[str, list[Any]] | None = None
    sample: Any = None
    """Row-aligned values sampled for the multivariate check (both sides)."""
    reference_range: tuple[float, float] | None = None
    """The raw reference's smallest and largest finite value, for the quality checks."""
    reference_categories: dict[str, int] | None = None
    """The raw reference's count of each category, for the quality checks."""


class _Table:
    """A table read one column at a time: a DataFrame, an Arrow table or a Parquet file/folder.

    A CSV file is read once, whole, into an Arrow table: reading one of its columns means
    parsing every line, so column by column would parse the file once per column.
    """

    def __init__(self, source: TableSource) -> None:
        from shipyard.data.tables import (
            connect,
            describe_source,
            open_relation,
            read_errors,
            table_columns,
            table_format,
        )

        self.source = source
        self.label = describe_source(source)
        with connect() as con:
            relation = open_relation(con, source)
            self.columns: dict[str, TableColumn] = {c.name: c for c in table_columns(relation)}
            if isinstance(source, str | os.PathLike) and table_format(source) == "csv":
                with read_errors(source):
                    self.source = relation.to_arrow_table()
            self.rows = self._count(relation)

    def _count(self, relation: Any) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from shipyard.data.tables import table_format

        if isinstance(self.source, pa.Table):
            return int(self.source.num_rows)
        if not isinstance(self.source, str | os.PathLike):
            return len(self.source)
        if Path(self.source).is_file() and table_format(self.source) == "parquet":
            return int(pq.ParquetFile(self.source).metadata.num_rows)
        return int(relation.aggregate("count(*)").fetchall()[0][0])

    def load(self, name: str) -> pa.ChunkedArray:
        """Read one column (only that column is read from a file)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from shipyard.data.tables import (
            connect,
            open_relation,
            quote_identifier,
            read_errors,
            table_format,
        )

        source = self.source
        if isinstance(source, pa.Table):
            return source.column(name)
        if not isinstance(source, str | os.PathLike):
            return pa.chunked_array([pa.Array.from_pandas(source[name])])
        if Path(source).is_file() and table_format(source) == "parquet":
            # One thread: the columns are already read in parallel, one per worker.
            return pq.ParquetFile(source).read(columns=[name], use_threads=False).column(0)
        with connect(threads=1) as con, read_errors(source):
            relation = open_relation(con, source).select(quote_identifier(name))
            return relation.to_arrow_table().column(0)


@dataclass(frozen=True, slots=True)
class _Ready:
    """A reference column as the tests use it: sorted finite numbers, or category counts,
    each with the number of values left out."""

    numbers: tuple[FloatArray, int] | None = None
    categories: tuple[dict[str, int], int] | None = None


@dataclass(frozen=True, eq=False)
class PreparedReference:
    """A raw reference read, converted and sorted once, to compare many tables against it.

    Made by :func:`prepare_reference`; :func:`compare` takes it wherever it takes the table,
    with the same results.
    """

    label: str
    """How reports name the reference."""
    rows: int
    kinds: dict[str, str]
    """The prepared columns and how each was prepared: ``numeric`` (sorted numbers) or
    ``categorical`` / ``binary`` (category counts)."""
    _table: _Table = field(repr=False)
    _ready: dict[str, _Ready] = field(repr=False)

    def _column(self, name: str, kind: str) -> _Ready | None:
        """The column prepared for a test of ``kind``, or None when it must be read as is."""
        ready = self._ready.get(name)
        if ready is None:
            return None
        wanted = ready.numbers if kind == "numeric" else ready.categories
        return ready if wanted is not None else None


def prepare_reference(
    reference: TableSource,
    *,
    columns: Iterable[str] | None = None,
    column_kinds: Mapping[str, str] | None = None,
    workers: int | None = None,
) -> PreparedReference:
    """Read a reference once for many :func:`compare` calls: each numeric column converted
    and sorted, each other column's categories counted.

    A column that a comparison tests differently from how it was prepared (the current
    side's type or ``column_kinds`` say otherwise) is read again as it is, so results never
    depend on the preparation.

    Args:
        reference: a CSV or Parquet file or folder, a pandas DataFrame or a pyarrow Table.
        columns: the columns to prepare (default every column of a supported type); those of
            an unsupported type are left as they are.
        column_kinds: ``numeric``, ``categorical`` or ``binary`` for columns whose type says
            otherwise; pass the same as to :func:`compare`.
        workers: threads preparing columns in parallel (default: the number of CPUs).

    Example:
        >>> ready = prepare_reference(train, columns=["age", "plan"])  # doctest: +SKIP
        >>> reports = [compare(ready, window) for window in windows]  # doctest: +SKIP

    Raises:
        InvalidArgumentError: an unknown column kind, or a table that cannot be read.
        NotFoundError: a named column the reference does not have, or a missing path.
    """
    _check_choices(column_kinds, None)
    table = _Table(reference)
    if isinstance(columns, str):
        raise InvalidArgumentError("columns must be a list of names, not one string")
    if columns is None:
        names = [c.name for c in table.columns.values() if c.kind != "other"]
    else:
        names = list(dict.fromkeys(columns))
        for name in names:
            if name not in table.columns:
                raise NotFoundError(f"the reference data has no column {name!r}")
        # Left to compare, which reads them as they are (and says why it cannot compare them).
        names = [n for n in names if table.columns[n].kind != "other" or n in (column_kinds or {})]
    kinds = {n: _plan(n, table.columns[n], column_kinds or {}, {}, None).kind for n in names}

    def prepare(name: str) -> tuple[str, _Ready]:
        values = table.load(name)
        if kinds[name] == "numeric":
            numbers, left_out = _numbers(values)
            numbers.flags.writeable = False  # shared by the threads of every comparison
            return name, _Ready(numbers=(numbers, left_out))
        return name, _Ready(categories=_category_counts(values))

    n_workers = max(1, min(workers or os.cpu_count() or 1, len(names) or 1))
    with ThreadPoolExecutor(n_workers, thread_name_prefix="shipyard-drift") as pool:
        ready = dict(pool.map(prepare, names))
    return PreparedReference(table.label, table.rows, kinds, table, ready)


def compare(
    reference: TableSource | DatasetProfile | PreparedReference,
    current: TableSource,
    *,
    columns: Iterable[str] | None = None,
    column_kinds: Mapping[str, str] | None = None,
    tests: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    alpha: float | None = 0.05,
    correction: str = "benjamini-hochberg",
    share_threshold: float = 0.5,
    prediction_column: str | None = None,
    multivariate: bool = False,
    reference_label: str | None = None,
    current_label: str | None = None,
    workers: int | None = None,
    quality: bool = True,
    null_share_tolerance: float = NULL_SHARE_TOLERANCE,
) -> DriftReport:
    """Compare the distribution of every column of ``current`` with ``reference``, and check
    its data quality against the reference.

    Nulls (and NaN / infinities in float columns) are left out of every test; their counts
    are in each column's ``scores`` (``reference_nulls``, ``current_nulls``), and a share of
    them that grew is a quality finding.

    Args:
        reference: the data to compare against: a CSV or Parquet file or folder, a pandas
            DataFrame, a pyarrow Table, or a stored :class:`DatasetProfile` (no raw data: tests
            run on its bins and top values, ``ks`` is not available); or a table read once
            by :func:`prepare_reference`, for comparing many tables with it.
        current: the data to check, in any of the table forms above.
        columns: the columns to compare; default every column present on both sides except
            ``prediction_column`` (columns of unsupported types, e.g. lists, are left out).
        column_kinds: ``numeric``, ``categorical`` or ``binary`` for columns whose type says
            otherwise (e.g. integer codes that are categories). Booleans and columns with at
            most two distinct values are ``binary``.
        tests: per column, a significance test (``ks``, ``chi2``, ``proportion``) or a
            distance (``wasserstein``, ``psi``, ``jensen_shannon``) to use instead of the
            kind's default; the other of the two keeps its default.
        thresholds: per column, the distance at or above which it counts as drifted; default
            :data:`DEFAULT_THRESHOLDS` of its distance.
        alpha: significance level for the adjusted p-values. ``None``: decide on the distance
            alone (the report's ``alpha`` is then None, ``null`` in JSON).
        correction: ``benjamini-hochberg`` (default), ``bonferroni`` or ``none``, across the
            compared columns (not the prediction column).
        share_threshold: the dataset drifted when at least this share of columns drifted.
        prediction_column: the model's output column: compared like the others but reported
            as ``prediction``, outside the share and the correction.
        multivariate: also train a domain classifier (scikit-learn) to tell sampled reference
            rows from current ones; needs raw reference data.
        reference_label: how the report names the reference (default: path or kind of object).
        current_label: how the report names the current data.
        workers: threads comparing columns in parallel (default: the number of CPUs).
        quality: also run the checks of ``shipyard data check`` (schema, null shares, ranges,
            unseen categories; not duplicate rows) on the compared columns against the
            reference; they are the report's ``findings``. When ``columns`` is None, missing
            and extra columns are findings too.
        null_share_tolerance: how much a column's share of missing values may grow before it
            is a finding (0.01: one percentage point); see
            :func:`shipyard.data.checks.check_table`.

    Returns:
        The report; ``to_dict()`` is strict JSON.

    Raises:
        InvalidArgumentError: for an unknown column kind, test, correction or out-of-range
            number, or a table that cannot be read.
        NotFoundError: for a named column that one side does not have, or a missing path.
    """
    started = time.perf_counter()
    _check_options(alpha, correction, share_threshold, thresholds, column_kinds, tests)
    if not 0.0 <= null_share_tolerance <= 1.0:
        raise InvalidArgumentError(
            f"null_share_tolerance must lie in [0, 1], not {null_share_tolerance!r}"
        )
    profile: DatasetProfile | None = None
    ref_table: _Table | None = None
    prepared = reference if isinstance(reference, PreparedReference) else None
    if isinstance(reference, DatasetProfile):
        profile = reference
        ref_names, ref_rows = [c.name for c in profile.columns], profile.rows
    else:
        ref_table = prepared._table if prepared is not None else _Table(reference)
        ref_names = list(ref_table.columns)
    cur_table = _Table(current)
    names = _select_columns(columns, ref_names, cur_table, prediction_column)
    plans = [
        _plan(name, cur_table.columns[name], column_kinds or {}, tests or {}, profile)
        for name in [*names, *([prediction_column] if prediction_column else [])]
    ]
    samples = _sample_rows(ref_table, cur_table) if multivariate and ref_table else None

    def measure(m: _Measured) -> _Measured:
        ref_side: ColumnProfile | pa.ChunkedArray | _Ready | None = None
        current = cur_table.load(m.column)
        if ref_table is None:
            ref_side = profile.column(m.column)  # type: ignore[union-attr]
        elif prepared is not None:
            ref_side = prepared._column(m.column, m.kind)
        if samples is not None and ref_table is not None and m.column != prediction_column:
            raw = ref_table.load(m.column)
            m.sample = (raw.take(samples[0]), current.take(samples[1]))
            ref_side = ref_side if ref_side is not None else raw
        if ref_side is None:
            ref_side = ref_table.load(m.column)  # type: ignore[union-attr]
        return _measure(m, ref_side, current)

    n_workers = max(1, min(workers or os.cpu_count() or 1, len(plans) or 1))
    with ThreadPoolExecutor(n_workers, thread_name_prefix="shipyard-drift") as pool:
        measured = {m.column: m for m in pool.map(measure, plans)}

    features = [measured[n] for n in names]
    adjusted = _adjust([m.p_value for m in features], correction)
    results = tuple(
        _decide(m, adj, alpha, _threshold(m, thresholds), profile is not None)
        for m, adj in zip(features, adjusted, strict=True)
    )
    prediction = None
    if prediction_column is not None:
        m = measured[prediction_column]
        prediction = _decide(m, m.p_value, alpha, _threshold(m, thresholds), profile is not None)
    share = sum(r.drifted for r in results) / len(results) if results else 0.0
    multi = _multivariate(features, samples is not None) if multivariate else None
    findings: tuple[Finding, ...] = ()
    if quality and (ref_side := profile or ref_table) is not None:
        findings = _findings(ref_side, cur_table, measured, columns is None, null_share_tolerance)
    return DriftReport(
        reference=reference_label
        or (ref_table.label if ref_table is not None else "the stored profile"),
        current=current_label or cur_table.label,
        columns=results,
        drifted=bool(results) and share >= share_threshold,
        share_drifted=share,
        share_threshold=share_threshold,
        correction=correction,
        alpha=alpha,
        reference_rows=ref_table.rows if ref_table is not None else ref_rows,
        current_rows=cur_table.rows,
        prediction=prediction,
        multivariate=multi,
        seconds=time.perf_counter() - started,
        findings=findings,
    )


def _findings(
    reference: _Table | DatasetProfile,
    current: _Table,
    measured: Mapping[str, _Measured],
    all_columns: bool,
    tolerance: float,
) -> tuple[Finding, ...]:
    """The quality checks of the compared columns (and, for ``all_columns``, the schema),
    against the reference's profile or what the comparison measured of the raw reference."""
    from shipyard.monitoring.quality import check_compared, reference_column

    if isinstance(reference, DatasetProfile):
        by_name, rows = {c.name: c for c in reference.columns}, reference.rows
    else:
        by_name, rows = {}, reference.rows
        for name, column in reference.columns.items():
            m = measured.get(name)
            by_name[name] = reference_column(
                column,
                count=m.reference_count if m else 0,
                null_count=int(m.scores.get("reference_nulls") or 0) if m else 0,
                values_range=m.reference_range if m else None,
                categories=m.reference_categories if m else None,
                max_categories=MAX_CATEGORIES,
            )
    checked = [
        c
        for c in by_name.values()
        if c.name in measured or (all_columns and c.name not in current.columns)
    ]
    ignored = [
        n for n in current.columns if n not in measured and (n in by_name or not all_columns)
    ]
    return check_compared(
        current.source,
        DatasetProfile(rows=rows, columns=tuple(checked)),
        ignore=ignored,
        null_share_tolerance=tolerance,
    )


# --- options and planning ---------------------------------------------------------------------


def _check_options(
    alpha: float | None,
    correction: str,
    share_threshold: float,
    thresholds: Mapping[str, float] | None,
    column_kinds: Mapping[str, str] | None,
    tests: Mapping[str, str] | None,
) -> None:
    if alpha is not None and not 0 < alpha < 1:
        raise InvalidArgumentError(f"alpha must lie between 0 and 1 (or be None), not {alpha!r}")
    if correction not in st.CORRECTIONS:
        raise InvalidArgumentError(
            f"unknown correction {correction!r}: use one of {', '.join(st.CORRECTIONS)}"
        )
    if not 0 < share_threshold <= 1:
        raise InvalidArgumentError(f"share_threshold must lie in (0, 1], not {share_threshold!r}")
    for name, value in (thresholds or {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise InvalidArgumentError(f"threshold for {name!r} must be a number >= 0: {value!r}")
    _check_choices(column_kinds, tests)


def _check_choices(column_kinds: Mapping[str, str] | None, tests: Mapping[str, str] | None) -> None:
    for what, chosen, allowed in (
        ("kind", column_kinds, KINDS),
        ("test", tests, TESTS + DISTANCES),
    ):
        for name, choice in (chosen or {}).items():
            if choice not in allowed:
                raise InvalidArgumentError(
                    f"unknown {what} {choice!r} for {name!r}: use one of {', '.join(allowed)}"
                )


def _select_columns(
    columns: Iterable[str] | None,
    ref_names: list[str],
    cur_table: _Table,
    prediction_column: str | None,
) -> list[str]:
    wanted = [prediction_column] if prediction_column else []
    if columns is not None:
        if isinstance(columns, str):
            raise InvalidArgumentError("columns must be a list of names, not one string")
        names = list(dict.fromkeys(columns))
        wanted += names
    else:
        in_ref = set(ref_names)
        names = [
            c.name
            for c in cur_table.columns.values()
            if c.name in in_ref and c.name != prediction_column and c.kind != "other"
        ]
    for name in wanted:
        for side, available in (("reference", ref_names), ("current", cur_table.columns)):
            if name not in available:
                raise NotFoundError(f"the {side} data has no column {name!r}")
    return [n for n in names if n != prediction_column]


def _plan(
    name: str,
    column: TableColumn,
    kinds: Mapping[str, str],
    tests: Mapping[str, str],
    profile: DatasetProfile | None,
) -> _Measured:
    """The column's kind, significance test and distance, as far as its type tells."""
    if name in kinds:
        kind = kinds[name]
    elif column.kind in ("number", "temporal"):
        kind = "numeric"
    elif column.kind == "category":
        kind = "binary" if column.type == "bool" else "categorical"
    else:
        raise InvalidArgumentError(
            f"column {name!r} has type {column.type}, which drift cannot compare; "
            "name it in column_kinds as categorical to compare its values as text"
        )
    chosen = tests.get(name)
    test = chosen if chosen in TESTS else DEFAULT_TESTS[kind]
    if profile is not None and chosen is None and kind == "numeric":
        test = "chi2"  # KS needs the raw reference; the profile has decile bins
    metric = chosen if chosen in DISTANCES else DEFAULT_DISTANCES[kind]
    if kind != "numeric" and ("ks" in (test, chosen) or metric == "wasserstein"):
        raise InvalidArgumentError(f"{chosen} needs a numeric column; {name!r} is {kind}")
    m = _Measured(column=name, kind=kind, test=test, distance_metric=metric)
    m.forced, m.chosen = name in kinds, chosen in TESTS
    return m


def _threshold(m: _Measured, thresholds: Mapping[str, float] | None) -> float:
    chosen = (thresholds or {}).get(m.column)
    return float(chosen) if chosen is not None else DEFAULT_THRESHOLDS[m.distance_metric]


def _adjust(p_values: list[float | None], correction: str) -> list[float | None]:
    import numpy as np

    present = [p for p in p_values if p is not None]
    adjusted = iter(st.adjust_p_values(np.array(present, dtype=np.float64), correction).tolist())
    return [next(adjusted) if p is not None else None for p in p_values]


# --- measuring one column ---------------------------------------------------------------------


def _measure(
    m: _Measured, reference: ColumnProfile | pa.ChunkedArray | _Ready, current: pa.ChunkedArray
) -> _Measured:
    """Run the planned test and distance on one column (in a worker thread)."""
    if m.kind == "numeric":
        _measure_numeric(m, reference, current)
    else:
        _measure_categories(m, reference, current)
    if m.test == "proportion" and m.kind != "binary" and not m.skip:
        raise InvalidArgumentError(f"proportion needs a binary column; {m.column!r} is {m.kind}")
    return m


def _numbers(values: pa.ChunkedArray) -> tuple[FloatArray, int]:
    """Sorted finite values as float64, and how many were null or not finite."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    present = pc.drop_null(values)
    if pa.types.is_temporal(present.type):
        present = present.cast(pa.int64())
    if present.type != pa.float64():
        present = present.cast(pa.float64())
    # Views of the chunks' value buffers (no nulls are left): Arrow's own conversion to numpy
    # imports pandas, 0.2 s of a command's start, even where it needs none of it.
    parts = [
        np.frombuffer(c.buffers()[1], np.float64, count=len(c), offset=c.offset * 8)
        for c in present.chunks
    ]
    array = parts[0] if len(parts) == 1 else np.concatenate([np.empty(0), *parts])
    finite = array[np.isfinite(array)]
    finite.sort()
    return finite, len(values) - finite.size


def _text(values: pa.ChunkedArray) -> pa.ChunkedArray:
    import pyarrow as pa

    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    return values if pa.types.is_string(values.type) else values.cast(pa.string())


def _category_counts(values: pa.ChunkedArray) -> tuple[dict[str, int], int]:
    """Counts of each non-null value (as text), and how many were null."""
    import pyarrow.compute as pc

    text = _text(values)
    counted = pc.value_counts(text.drop_null())
    keys = counted.field("values").to_pylist()
    counts = counted.field("counts").to_pylist()
    return dict(zip(keys, counts, strict=True)), text.null_count


def _measure_numeric(
    m: _Measured, reference: ColumnProfile | pa.ChunkedArray | _Ready, current: pa.ChunkedArray
) -> None:
    import numpy as np

    cur, cur_nulls = _numbers(current)
    m.current_count, m.scores["current_nulls"] = cur.size, float(cur_nulls)
    if isinstance(reference, ColumnProfile):
        _numeric_from_profile(m, reference, cur)
        return
    if isinstance(reference, _Ready) and reference.numbers is not None:
        ref, ref_nulls = reference.numbers
    else:
        ref, ref_nulls = _numbers(reference)
    m.reference_count, m.scores["reference_nulls"] = ref.size, float(ref_nulls)
    if ref.size:
        m.reference_range = (float(ref[0]), float(ref[-1]))
    if _empty(m):
        return
    values = np.unique(np.concatenate([ref[[0, -1]], cur[[0, -1]]]))
    if (m.test == "proportion" or not (m.forced or m.chosen)) and _only(values, ref, cur):
        low = values[0]
        labels = [f"{low:g}", f"{values[-1]:g}" if values.size == 2 else _OTHER]
        ref_hits, cur_hits = float(np.sum(ref == low)), float(np.sum(cur == low))
        _binary(m, ref_hits, ref.size, cur_hits, cur.size, labels)
        m.note = (
            f"constant: every value is {low:g}"
            if values.size == 1
            else f"two values ({low:g} and {values[-1]:g}); share of {low:g} compared"
        )
        return
    (ks, ks_p), wasserstein = st.ks_wasserstein(ref, cur, presorted=True)
    q25, q75 = st.sorted_quantiles(ref, np.array([0.25, 0.75]))
    scale = _scale(float(ref.std()), float(q75 - q25), float(ref.mean()))
    m.scores |= {"ks": ks, "ks_p_value": ks_p, "reference_scale": scale}
    m.scores["wasserstein"] = wasserstein / scale
    edges = np.unique(st.sorted_quantiles(ref, np.array([0.0, *_DECILES, 1.0])))
    edges = edges if edges.size > 1 else np.r_[edges, edges]  # one bin [v, v]
    ref_bins = st.bin_counts(ref, edges, presorted=True)
    _binned(m, ref_bins, st.bin_counts(cur, edges, presorted=True), {"edges": edges.tolist()})
    if ref[0] == ref[-1]:
        m.note = f"the reference is constant ({ref[0]:g})"
    if m.test == "ks":
        m.statistic, m.p_value = ks, ks_p
    m.distance = m.scores[m.distance_metric]


def _only(values: FloatArray, ref: FloatArray, cur: FloatArray) -> bool:
    """Whether the samples hold no values but the (at most two) ``values``."""
    if values.size > 2:
        return False
    low, high = values[0], values[-1]
    return bool(((ref == low) | (ref == high)).all() and ((cur == low) | (cur == high)).all())


def _scale(std: float, iqr: float, mean: float) -> float:
    """The reference's spread: its sd, else IQR / 1.349, else |mean|, else 1.

    Not the (more robust) IQR first: Wasserstein is an L1 distance whose sampling noise comes
    from the tails, and the sd grows with them; divided by the IQR, unchanged log-normal
    columns of 100,000 rows reached 0.027 and raised false alarms.
    """
    for candidate in (std, iqr / _IQR_TO_SD, abs(mean)):
        if math.isfinite(candidate) and candidate > 0:
            return candidate
    return 1.0


def _binned(
    m: _Measured, ref_bins: FloatArray, cur_bins: FloatArray, labels: dict[str, list[Any]]
) -> None:
    """Scores over bins (deciles or categories); the chi-square test when it is chosen.

    ``labels`` names the bins for :attr:`ColumnDrift.bins`: ``{"edges": ...}`` or
    ``{"categories": ...}``.
    """
    m.bins = {
        **labels,
        "reference": (ref_bins / ref_bins.sum()).tolist(),
        "current": (cur_bins / cur_bins.sum()).tolist(),
    }
    chi2, chi2_p = st.chi2_homogeneity(ref_bins, cur_bins)
    m.scores |= {
        "psi": st.psi(ref_bins, cur_bins),
        "jensen_shannon": st.jensen_shannon(ref_bins, cur_bins),
        "chi2": chi2,
        "chi2_p_value": chi2_p,
    }
    if m.test == "chi2":
        m.statistic, m.p_value = chi2, chi2_p


def _empty(m: _Measured) -> bool:
    for side, count in (("reference", m.reference_count), ("current", m.current_count)):
        if count == 0:
            nulls = int(m.scores.get(f"{side}_nulls") or 0)
            m.skip = f"the {side} data holds no values in this column ({nulls} null)"
            return True
    return False


def _numeric_from_profile(m: _Measured, profile: ColumnProfile, cur: FloatArray) -> None:
    import numpy as np

    m.reference_count, m.scores["reference_nulls"] = profile.count, float(profile.null_count)
    bins, quantiles = profile.quantile_bins, profile.quantiles
    if m.test == "ks":
        m.skip = "ks needs the raw reference data, and the reference is a stored profile"
        return
    if _empty(m):
        return
    if bins is None or quantiles is None:
        m.skip = f"the profile of {m.column!r} holds no numeric bins (type {profile.type})"
        return
    low, high = profile.min, profile.max
    if (
        not m.forced
        and (profile.distinct or 0) <= 2
        and isinstance(low, float)
        and isinstance(high, float)
        and _only(np.unique([low, high]), cur, cur)
    ):
        # Two values: the mean says how many of each the reference held.
        share_low = (high - profile.mean) / (high - low) if high > low else 1.0  # type: ignore[operator]
        ref_hits = round(min(max(share_low, 0.0), 1.0) * profile.count)
        labels = [f"{low:g}", f"{high:g}" if high > low else _OTHER]
        _binary(m, ref_hits, profile.count, float(np.sum(cur == low)), cur.size, labels)
        m.note = f"two values ({low:g} and {high:g}); share of {low:g} compared"
        return
    ref_bins = np.array(bins.counts, dtype=np.float64)
    edges = {"edges": list(bins.edges)}
    _binned(m, ref_bins, st.bin_counts(cur, np.array(bins.edges), presorted=True), edges)
    if m.test != "chi2":  # the profile offers no other test for a numeric column
        m.test = "chi2"
        m.statistic, m.p_value = m.scores["chi2"], m.scores["chi2_p_value"]
    # Wasserstein over the central 98 %: the mean gap between the two quantile functions,
    # each interpolated linearly between the profile's quantile levels.
    levels = np.array(_LEVELS)
    ref_q = np.array([quantiles[str(q)] for q in _LEVELS])
    gap = np.abs(st.sorted_quantiles(cur, levels) - ref_q)
    area = float(np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(levels)))
    iqr = quantiles["0.75"] - quantiles["0.25"]
    mean = profile.mean if profile.mean is not None else 0.0
    scale = _scale(profile.std if profile.std is not None else 0.0, iqr, mean)
    m.scores["reference_scale"] = scale
    m.scores["wasserstein"] = area / (levels[-1] - levels[0]) / scale
    m.distance = m.scores[m.distance_metric]
    m.note = "the reference is a stored profile: tests ran on its bins and quantiles"


def _measure_categories(
    m: _Measured, reference: ColumnProfile | pa.ChunkedArray | _Ready, current: pa.ChunkedArray
) -> None:
    cur, cur_nulls = _category_counts(current)
    m.current_count, m.scores["current_nulls"] = sum(cur.values()), float(cur_nulls)
    other_known = True
    if isinstance(reference, ColumnProfile):
        m.reference_count, nulls = reference.count, reference.null_count
        m.scores["reference_nulls"] = float(nulls)
        if reference.top_values is None:
            if not _empty(m):
                m.skip = f"the profile of {m.column!r} holds no category counts"
            return
        ref = dict(reference.top_values)
        other = reference.other_count or 0
        other_known = other == 0  # else a value outside top_values may be one of the "other"
    else:
        if isinstance(reference, _Ready) and reference.categories is not None:
            ref, ref_nulls = reference.categories
        else:
            ref, ref_nulls = _category_counts(reference)
        m.reference_count, m.scores["reference_nulls"] = sum(ref.values()), float(ref_nulls)
        m.reference_categories = ref
        other = 0
    if _empty(m):
        return
    values = sorted(set(ref) | set(cur))
    if len(values) <= 2 and other == 0 and not (m.forced and m.kind == "categorical"):
        first = values[0]
        ref_hits, cur_hits = ref.get(first, 0), cur.get(first, 0)
        labels = [first, values[-1] if len(values) == 2 else _OTHER]
        _binary(m, ref_hits, m.reference_count, cur_hits, m.current_count, labels)
        m.note = (
            f"constant: every value is {first!r}"
            if len(values) == 1
            else f"two values; share of {first!r} compared"
        )
        return
    if m.kind == "binary":
        m.note = f"{len(values)} distinct values, compared as categories"
        m.kind = "categorical"
    kept = sorted(ref, key=lambda v: (-ref[v], v))[:MAX_CATEGORIES]
    index = {v: i for i, v in enumerate(kept)}
    ref_bins = [float(ref[v]) for v in kept] + [float(other), 0.0]
    cur_bins = [0.0] * (len(kept) + 2)
    unseen = 0
    for value, n in cur.items():
        if value in index:
            cur_bins[index[value]] += n
        elif value in ref or not other_known:
            cur_bins[-2] += n  # the reference's "other" bin
        else:
            cur_bins[-1] += n
            unseen += n
    for value in ref.keys() - index.keys():
        ref_bins[-2] += ref[value]
    import numpy as np

    names = [*kept, _OTHER, _UNSEEN]
    used = [i for i in range(len(names)) if i < len(kept) or ref_bins[i] or cur_bins[i]]
    _binned(
        m,
        np.array([ref_bins[i] for i in used]),
        np.array([cur_bins[i] for i in used]),
        {"categories": [names[i] for i in used]},
    )
    m.unseen_share = unseen / m.current_count if other_known else None
    m.scores["unseen_share"] = m.unseen_share
    if unseen:
        m.note = f"{unseen} current values ({m.unseen_share:.2%}) are categories never seen before"
    m.distance = m.scores[m.distance_metric]


def _binary(
    m: _Measured,
    ref_hits: float,
    ref_n: int,
    cur_hits: float,
    cur_n: int,
    labels: list[Any],
) -> None:
    import numpy as np

    m.kind = "binary"
    if not m.chosen:
        m.test = "proportion"
    z, p = st.proportion_test(ref_hits, ref_n, cur_hits, cur_n)
    ref_bins = np.array([ref_hits, ref_n - ref_hits])
    cur_bins = np.array([cur_hits, cur_n - cur_hits])
    m.scores |= {"proportion_z": z, "proportion_p_value": p}
    m.scores |= {"reference_share": ref_hits / ref_n, "current_share": cur_hits / cur_n}
    _binned(m, ref_bins, cur_bins, {"categories": labels})
    if m.test == "proportion":
        m.statistic, m.p_value = z, p
    if m.distance_metric == "wasserstein":
        m.distance_metric = DEFAULT_DISTANCES["binary"]
    m.distance = m.scores[m.distance_metric]


# --- deciding ---------------------------------------------------------------------------------


def _decide(
    m: _Measured, adjusted: float | None, alpha: float | None, threshold: float, profile: bool
) -> ColumnDrift:
    drifted, reason = _verdict(m, adjusted, alpha, threshold)
    if m.note:
        reason = f"{reason}; {m.note}"
    return ColumnDrift(
        column=m.column,
        kind=m.kind,
        test=m.test,
        statistic=m.statistic,
        p_value=m.p_value,
        adjusted_p_value=adjusted,
        distance_metric=m.distance_metric,
        distance=m.distance,
        threshold=threshold,
        drifted=drifted,
        reason=reason,
        reference_count=m.reference_count,
        current_count=m.current_count,
        scores=dict(m.scores),
        unseen_share=m.unseen_share,
        from_profile=profile,
        bins=m.bins,
    )


def _verdict(
    m: _Measured, adjusted: float | None, alpha: float | None, threshold: float
) -> tuple[bool, str]:
    if m.skip:
        return False, f"not compared: {m.skip}"
    distance = m.distance if m.distance is not None else math.nan
    far = distance >= threshold
    size = f"{m.distance_metric} {distance:.3g} {'>=' if far else '<'} {threshold:g}"
    if alpha is None:
        return far, f"{size} (decided on the distance alone)"
    if adjusted is None:
        return False, f"not compared: {m.test} gave no p-value"
    sure = adjusted < alpha
    sig = f"{m.test} adjusted p={adjusted:.3g} {'<' if sure else '>='} {alpha:g}"
    if sure and far:
        return True, f"drifted: {sig} and {size}"
    if sure:
        return False, f"not drifted: significant ({sig}) but too small to matter ({size})"
    if far:
        return False, f"not drifted: {size} but not significant ({sig}), too few rows to be sure"
    return False, f"not drifted: {sig} and {size}"


# --- multivariate: a domain classifier ------------------------------------------------------------


def _sample_rows(reference: _Table, current: _Table) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    picks = []
    for table in (reference, current):
        n = min(table.rows, MULTIVARIATE_SAMPLE_ROWS)
        picks.append(np.sort(rng.choice(table.rows, size=n, replace=False)))
    return picks[0], picks[1]


def _multivariate(features: list[_Measured], sampled: bool) -> dict[str, Any]:
    """Cross-validated AUC of a classifier telling sampled reference rows from current ones."""
    result: dict[str, Any] = {"threshold": MULTIVARIATE_AUC_THRESHOLD, "drifted": False}
    usable = [m for m in features if m.sample is not None and not m.skip]
    if not sampled or not usable:
        result["auc"] = None
        result["reason"] = (
            "needs raw reference rows; the reference is a stored profile"
            if not sampled
            else "no comparable columns"
        )
        return result
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.model_selection import StratifiedKFold, cross_val_score
    except ImportError as exc:
        raise InvalidArgumentError(
            "the multivariate drift check needs scikit-learn: pip install 'shipyard-mlops[sklearn]'"
        ) from exc
    import numpy as np

    matrix = np.column_stack([_encode(m) for m in usable])
    n_ref = len(usable[0].sample[0])
    labels = np.r_[np.zeros(n_ref), np.ones(matrix.shape[0] - n_ref)]
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    auc = float(np.mean(cross_val_score(model, matrix, labels, cv=folds, scoring="roc_auc")))
    result |= {
        "auc": auc,
        "drifted": auc > MULTIVARIATE_AUC_THRESHOLD,
        "model": "HistGradientBoostingClassifier",
        "folds": 3,
        "reference_rows": n_ref,
        "current_rows": int(matrix.shape[0] - n_ref),
        "columns": [m.column for m in usable],
    }
    return result


def _encode(m: _Measured) -> FloatArray:
    """One feature column for the classifier: numbers as they are, categories as codes."""
    import numpy as np
    import pyarrow as pa

    if m.kind == "numeric":
        parts = []
        for side in m.sample:
            if pa.types.is_temporal(side.type):
                side = side.cast(pa.int64())
            parts.append(side.cast(pa.float64()).to_numpy())
        encoded: FloatArray = np.concatenate(parts)
        return encoded
    both = pa.chunked_array([c for side in m.sample for c in _text(side).chunks], pa.string())
    codes = both.dictionary_encode().combine_chunks().indices.to_numpy(zero_copy_only=False)
    # Nulls become NaN, which the classifier treats as missing.
    return np.asarray(codes, dtype=np.float64)
