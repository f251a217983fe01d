"""Data quality beside drift: the checks of ``shipyard data check`` on a compared table and on
one window's traffic.

The checks themselves are :func:`shipyard.data.checks.check_table`; this module only decides
what the reference covers. A training table usually holds the target and columns the model
never sees, which live traffic cannot have: the reference is cut down to the model's inputs.
A table comparison (:func:`shipyard.monitoring.drift.compare`) checks the columns it compared,
against a profile built from what it read of the raw reference (:func:`reference_column`), so
the reference is never profiled for it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

from shipyard.entities.data import ColumnProfile, DatasetProfile, Finding

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.data.tables import TableColumn, TableSource

__all__ = [
    "NULL_SHARE_TOLERANCE",
    "RANGE_TOLERANCE",
    "check_compared",
    "check_inputs",
    "input_profile",
    "reference_column",
]

NULL_SHARE_TOLERANCE = 0.01
"""How much a compared column's share of missing values may grow (one percentage point)
before it is a finding. Tighter than ``shipyard data check``'s 0.05: a monitor watches data
that is meant to look like its reference, and 3 % new nulls in a column that had none is a
broken producer."""
RANGE_TOLERANCE = 0.001
"""A compared column's values outside the reference's range are a finding when more than this
share of them lie outside, and more than ``10 / (n + 1)`` for a reference of ``n`` values: a
sample of the same continuous distribution puts about ``2 / (n + 1)`` of its values outside
by chance, and one value past the maximum of 400,000 says nothing."""


def reference_column(
    column: TableColumn,
    *,
    count: int,
    null_count: int,
    values_range: tuple[float, float] | None = None,
    categories: Mapping[str, int] | None = None,
    max_categories: int = 100,
) -> ColumnProfile:
    """A reference column as the quality checks read its profile, from counts already taken.

    Args:
        column: the column's name and type in the reference.
        count: its values that are not missing (NaN and infinities count as missing).
        null_count: its missing values.
        values_range: its smallest and largest finite value (numbers only): the range check.
        categories: how often each value occurs (as text): the unseen-categories check, which
            runs only when the column holds at most ``max_categories`` of them.
        max_categories: above this many categories new ones are not looked for.
    """
    top: tuple[tuple[str, int], ...] | None = None
    other: int | None = None
    if categories is not None:
        ranked = sorted(categories.items(), key=lambda item: (-item[1], item[0]))
        top = tuple(ranked[:max_categories])
        other = sum(n for _, n in ranked[max_categories:])
    low, high = (
        values_range if values_range is not None and column.kind == "number" else (None, None)
    )
    return ColumnProfile(
        name=column.name,
        type=column.type,
        nullable=null_count > 0,
        count=count,
        null_count=null_count,
        min=low,
        max=high,
        top_values=top,
        other_count=other,
    )


def check_compared(
    current: TableSource,
    reference: DatasetProfile,
    *,
    ignore: Collection[str] = (),
    null_share_tolerance: float = NULL_SHARE_TOLERANCE,
    memory_limit: str = "2GB",
) -> tuple[Finding, ...]:
    """Quality findings for a compared table: ``check_table`` without duplicate rows, and
    values out of the reference's range only beyond what chance explains
    (:data:`RANGE_TOLERANCE`).

    Args:
        current: the compared table (a path, DataFrame or Arrow table).
        reference: the profile of the columns that were compared, and of those missing from
            ``current`` that are to be reported.
        ignore: columns of ``current`` left out of the comparison on purpose: not reported
            as extra columns.
        null_share_tolerance: see :func:`shipyard.data.checks.check_table`.
        memory_limit: DuckDB's memory limit.
    """
    from shipyard.data.checks import check_table

    skipped = set(ignore)
    findings = check_table(
        current,
        reference,
        null_share_tolerance=null_share_tolerance,
        duplicate_rows=False,
        memory_limit=memory_limit,
    )
    counts = {c.name: c.count for c in reference.columns}

    def kept(f: Finding) -> bool:
        if f.check == "extra_column":
            return f.column not in skipped
        if f.check == "out_of_range":
            chance = 10 / (counts.get(f.column or "", 0) + 1)
            return float(f.details["share"]) > max(RANGE_TOLERANCE, chance)
        return True

    return tuple(f for f in findings if kept(f))


def input_profile(reference: DatasetProfile, inputs: Collection[str]) -> DatasetProfile:
    """The reference profile restricted to ``inputs`` (the columns the model is sent)."""
    wanted = set(inputs)
    return DatasetProfile(
        rows=reference.rows,
        columns=tuple(c for c in reference.columns if c.name in wanted),
        format_version=reference.format_version,
    )


def check_inputs(
    inputs: pa.Table,
    reference: DatasetProfile,
    *,
    expected: Collection[str] | None = None,
    null_share_tolerance: float = 0.05,
    duplicate_rows: bool = False,
    memory_limit: str = "2GB",
) -> tuple[Finding, ...]:
    """Quality findings for one window's inputs against the reference profile.

    Args:
        inputs: the window's input columns (failed requests left out), e.g. from
            :func:`shipyard.monitoring.logs.input_table`.
        reference: the profile of the reference dataset version (or of a table).
        expected: the columns the model takes; the reference's other columns (the target,
            ids) are not checked. Default: the columns of ``inputs``, so that only columns
            the reference lacks are reported, never ones the traffic lacks.
        null_share_tolerance: see :func:`shipyard.data.checks.check_table`.
        duplicate_rows: count repeated rows (off: the same input sent twice is normal traffic).
        memory_limit: DuckDB's memory limit.

    Returns:
        Schema findings (missing, extra, retyped columns), then null shares, out-of-range
        values and unseen categories; an empty window gives the ``empty`` error.
    """
    from shipyard.data.checks import check_table

    columns = expected if expected is not None else inputs.column_names
    findings = check_table(
        inputs,
        input_profile(reference, columns),
        null_share_tolerance=null_share_tolerance,
        duplicate_rows=duplicate_rows,
        memory_limit=memory_limit,
    )
    return tuple(findings)
