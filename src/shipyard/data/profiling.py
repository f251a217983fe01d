"""Dataset profiles: the schema and statistics of a table, computed by DuckDB in a few passes.

A profile is what later data is compared against (quality checks, drift monitoring), so each
statistic is defined exactly in ``docs/data-quality.md``. The table is never loaded into Python:

1. ``count(*)`` (free for Parquet and in-memory tables), which picks exact or approximate
   aggregates;
2. one aggregate query for every column at once: counts, min, max, mean, std, quantiles,
   distinct counts;
3. one query for the equal-width histograms and decile bins of every numeric column;
4. one ``GROUP BY`` per categorical column for its most frequent values.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import duckdb

from shipyard.data.tables import (
    TableColumn,
    TableSource,
    connect,
    open_relation,
    read_errors,
    table_columns,
)
from shipyard.entities.data import ColumnProfile, DatasetProfile, Histogram
from shipyard.errors import InvalidArgumentError

__all__ = [
    "DECILE_LEVELS",
    "EXACT_DISTINCT_MAX_ROWS",
    "EXACT_QUANTILE_MAX_ROWS",
    "QUANTILE_LEVELS",
    "profile_table",
]

QUANTILE_LEVELS = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
"""The quantiles kept in ``ColumnProfile.quantiles``, keyed by ``str(level)``."""
DECILE_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Inner edges of ``ColumnProfile.quantile_bins`` (min and max are the outer ones)."""
EXACT_DISTINCT_MAX_ROWS = 100_000
"""Up to this many rows distinct values are counted exactly, above it with HyperLogLog."""
EXACT_QUANTILE_MAX_ROWS = 1_000_000
"""Up to this many rows quantiles are exact (interpolated), above it from a t-digest."""

# SQL here is composed from quoted identifiers (quote_identifier) and numbers formatted by
# _double; nothing read from the data is ever spliced into it.
_VIEW = "shipyard_profiled"
_LEVELS = tuple(sorted(set(QUANTILE_LEVELS) | set(DECILE_LEVELS)))


def profile_table(
    source: TableSource, *, top_k: int = 20, bins: int = 20, memory_limit: str = "2GB"
) -> DatasetProfile:
    """Compute the schema and statistics of a table.

    Args:
        source: a CSV or Parquet file, a folder of Parquet files, a pandas DataFrame or a
            pyarrow Table.
        top_k: how many of the most frequent values to keep for each categorical column.
        bins: how many equal-width bins the histogram of each numeric column has.
        memory_limit: how much memory DuckDB may use before it spills to disk.

    Returns:
        The profile; see ``docs/data-quality.md`` for what each field means.

    Raises:
        NotFoundError: if the path does not exist.
        InvalidArgumentError: if the source cannot be read as a table, or ``top_k`` or
            ``bins`` is out of range.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise InvalidArgumentError(f"top_k must be an integer >= 0, not {top_k!r}")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise InvalidArgumentError(f"bins must be an integer >= 1, not {bins!r}")
    with connect(memory_limit) as con:
        relation = open_relation(con, source)
        with read_errors(source):
            columns = table_columns(relation)
            relation.create_view(_VIEW)
            rows = int(_fetch_row(con, f"SELECT count(*) FROM {_VIEW}")[0])  # noqa: S608
            profiles, deciles = _basic_statistics(con, columns, rows)
            profiles = _bins(con, columns, profiles, deciles, bins)
            profiles = [
                _top_values(con, column, profile, top_k) if column.kind == "category" else profile
                for column, profile in zip(columns, profiles, strict=True)
            ]
    return DatasetProfile(rows=rows, columns=tuple(profiles))


def _fetch_row(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] | None = None
) -> tuple[Any, ...]:
    rows = con.execute(sql, params).fetchall()
    return rows[0]


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _double(value: float) -> str:
    return f"'{value!r}'::DOUBLE"


def _basic_statistics(
    con: duckdb.DuckDBPyConnection, columns: Sequence[TableColumn], rows: int
) -> tuple[list[ColumnProfile], dict[int, list[float]]]:
    """Profile every column in one query; also return the bin edges from each one's deciles."""
    distinct = (
        "count(DISTINCT {})" if rows <= EXACT_DISTINCT_MAX_ROWS else "approx_count_distinct({})"
    )
    levels = "[" + ", ".join(repr(level) for level in _LEVELS) + "]"
    quantile = "quantile_cont" if rows <= EXACT_QUANTILE_MAX_ROWS else "approx_quantile"
    select: list[str] = []
    for column in columns:
        select.append(f"count({column.value_sql})")
        if column.kind == "number":
            value = f"CAST({column.value_sql} AS DOUBLE)"
            select += [
                f"min({value})",
                f"max({value})",
                f"avg({value})",
                f"stddev_samp({value})",
                f"{quantile}({value}, {levels})",
                distinct.format(column.value_sql),
            ]
        elif column.kind == "category":
            select.append(distinct.format(column.sql))
        elif column.kind == "temporal":
            select += [
                f"regexp_replace(CAST(min({column.sql}) AS VARCHAR), ' ', 'T')",
                f"regexp_replace(CAST(max({column.sql}) AS VARCHAR), ' ', 'T')",
                distinct.format(column.sql),
            ]
    sql = f"SELECT {', '.join(select)} FROM {_VIEW}"  # noqa: S608
    values = iter(_fetch_row(con, sql) if select else ())
    profiles = []
    deciles: dict[int, list[float]] = {}
    for i, column in enumerate(columns):
        count = int(next(values))
        profile = ColumnProfile(
            name=column.name,
            type=column.type,
            nullable=count < rows,
            count=count,
            null_count=rows - count,
        )
        if column.kind == "number":
            low, high, mean, std, found, n_distinct = (next(values) for _ in range(6))
            levels_found = _quantiles(found, _finite(low), _finite(high))
            if levels_found is not None:
                inner = [levels_found[str(level)] for level in DECILE_LEVELS]
                deciles[i] = sorted({float(low), *inner, float(high)})
                levels_found = {str(q): levels_found[str(q)] for q in QUANTILE_LEVELS}
            profile = dataclasses.replace(
                profile,
                distinct=int(n_distinct),
                min=_finite(low),
                max=_finite(high),
                mean=_finite(mean),
                std=_finite(std),
                quantiles=levels_found,
            )
        elif column.kind == "category":
            profile = dataclasses.replace(profile, distinct=int(next(values)))
        elif column.kind == "temporal":
            low, high, n_distinct = (next(values) for _ in range(3))
            profile = dataclasses.replace(profile, min=low, max=high, distinct=int(n_distinct))
        profiles.append(profile)
    return profiles, deciles


def _quantiles(
    found: list[float] | None, low: float | None, high: float | None
) -> dict[str, float] | None:
    if found is None or low is None or high is None:
        return None
    result: dict[str, float] = {}
    floor = low
    for level, value in zip(_LEVELS, found, strict=True):
        # Approximate quantiles are clamped into [min, max] and made non-decreasing.
        floor = min(max(float(value), floor), high)
        result[str(level)] = floor
    return result


def _equal_width_edges(low: float, high: float, bins: int) -> list[float]:
    span = high - low
    edges = {low, high}
    for i in range(1, bins):
        if math.isfinite(span * i):
            edges.add(low + span * i / bins)
        else:  # max - min overflows: interpolate without forming the span
            t = i / bins
            edges.add(low * (1 - t) + high * t)
    return sorted(e for e in edges if low <= e <= high)


def _bins(
    con: duckdb.DuckDBPyConnection,
    columns: Sequence[TableColumn],
    profiles: list[ColumnProfile],
    deciles_by_column: dict[int, list[float]],
    bins: int,
) -> list[ColumnProfile]:
    """Add equal-width histograms and decile bins to numeric columns, in one query.

    DuckDB's ``histogram(x, boundaries)`` counts values in right-closed bins ``(b[i-1], b[i]]``
    plus one overflow bin. Boundaries one double below each inner edge turn those into the
    left-closed bins ``[e[i], e[i+1])`` of :class:`Histogram`, so counts agree exactly with
    binning other data over the stored edges (``numpy.searchsorted(edges[1:-1], x, "right")``).
    """
    aggregates: list[str] = []
    pending: list[tuple[int, bool, list[float]]] = []  # (column, is the histogram, edges)
    result = list(profiles)
    for i, (column, profile) in enumerate(zip(columns, profiles, strict=True)):
        if column.kind != "number" or profile.count == 0:
            continue
        assert isinstance(profile.min, float) and isinstance(profile.max, float)  # noqa: S101
        value = f"CAST({column.value_sql} AS DOUBLE)"
        for is_histogram, edges in (
            (True, _equal_width_edges(profile.min, profile.max, bins)),
            (False, deciles_by_column[i]),
        ):
            if len(edges) < 3:
                whole = Histogram((edges[0], edges[-1]), (profile.count,))
                result[i] = _with_bins(result[i], is_histogram, whole)
                continue
            below = ", ".join(_double(math.nextafter(e, -math.inf)) for e in edges[1:-1])
            aggregates.append(f"histogram({value}, [{below}])")
            pending.append((i, is_histogram, edges))
    if not aggregates:
        return result
    found = _fetch_row(con, f"SELECT {', '.join(aggregates)} FROM {_VIEW}")  # noqa: S608
    for (i, is_histogram, edges), counts_by_boundary in zip(pending, found, strict=True):
        index = {math.nextafter(e, -math.inf): k for k, e in enumerate(edges[1:-1])}
        counts = [0] * (len(edges) - 1)
        for boundary, n in counts_by_boundary.items():
            counts[index.get(float(boundary), len(counts) - 1)] += int(n)
        result[i] = _with_bins(result[i], is_histogram, Histogram(tuple(edges), tuple(counts)))
    return result


def _with_bins(profile: ColumnProfile, is_histogram: bool, bins: Histogram) -> ColumnProfile:
    if is_histogram:
        return dataclasses.replace(profile, histogram=bins)
    return dataclasses.replace(profile, quantile_bins=bins)


def _top_values(
    con: duckdb.DuckDBPyConnection, column: TableColumn, profile: ColumnProfile, top_k: int
) -> ColumnProfile:
    if top_k == 0 or profile.count == 0:
        return dataclasses.replace(profile, top_values=(), other_count=profile.count)
    sql = (
        f"SELECT CAST({column.sql} AS VARCHAR) AS value, count(*) AS n FROM {_VIEW} "  # noqa: S608
        f"WHERE {column.sql} IS NOT NULL GROUP BY {column.sql} ORDER BY n DESC, value LIMIT ?"
    )
    rows = con.execute(sql, [top_k]).fetchall()
    top = tuple((str(value), int(n)) for value, n in rows)
    return dataclasses.replace(
        profile, top_values=top, other_count=profile.count - sum(n for _, n in top)
    )
