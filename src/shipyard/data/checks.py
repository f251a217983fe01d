"""Quality checks: compare a table against a stored profile, with DuckDB queries over the data.

pandera validates DataFrames held in memory against a hand-written schema; these checks compare
a table of any size, streamed by DuckDB, against the profile of an earlier version. Every check
is a SQL aggregate: one pass for the row count, null shares, ranges and unseen categories of
every column, one for duplicated rows, and one per categorical column that has unseen values (to
show examples).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import duckdb

from shipyard.data.tables import (
    TableColumn,
    TableSource,
    connect,
    open_relation,
    read_errors,
    table_columns,
)
from shipyard.entities.data import ColumnProfile, DatasetProfile, Finding, Severity
from shipyard.errors import InvalidArgumentError

__all__ = ["UNSEEN_EXAMPLES", "check_table", "has_errors", "type_family"]

UNSEEN_EXAMPLES = 10
"""How many unseen categories a finding shows, most frequent first."""

# SQL here is composed from quoted identifiers and numbers formatted by _double; category
# values from the reference are bound as parameters.
_VIEW = "shipyard_checked"

_NUMBER = re.compile(r"^(u?int(8|16|32|64)|halffloat|float|double|decimal(32|64|128|256)\(.*\))$")
_TEMPORAL = re.compile(r"^(timestamp\[.*\]|date(32|64)\[.*\]|time(32|64)\[.*\])$")


def type_family(arrow_type: str) -> str:
    """The family of an Arrow type: changes inside one family are warnings, across are errors.

    Returns:
        ``"number"``, ``"string"``, ``"bool"``, ``"temporal"``, ``"binary"``, or for any other
        type (lists, structs, ...) the type itself.
    """
    if _NUMBER.match(arrow_type):
        return "number"
    if _TEMPORAL.match(arrow_type):
        return "temporal"
    if arrow_type.startswith(("binary", "fixed_size_binary")):
        return "binary"
    return arrow_type


def has_errors(findings: Sequence[Finding]) -> bool:
    """Whether any finding is an error (``shipyard data check`` then fails)."""
    return any(finding.severity is Severity.ERROR for finding in findings)


def check_table(
    source: TableSource,
    reference: DatasetProfile,
    *,
    null_share_tolerance: float = 0.05,
    duplicate_rows: bool = True,
    memory_limit: str = "2GB",
) -> list[Finding]:
    """Check a table against the profile of a reference version.

    Args:
        source: a CSV or Parquet file, a folder of Parquet files, a pandas DataFrame or a
            pyarrow Table.
        reference: the profile to compare against, usually the last good version's.
        null_share_tolerance: how much a column's share of missing values may grow (0.05 is
            five percentage points) before it is reported.
        duplicate_rows: whether to count rows that repeat an earlier row exactly.
        memory_limit: how much memory DuckDB may use before it spills to disk.

    Returns:
        The findings, schema first (in the current table's column order, missing columns in
        the reference's), then ``empty``, then per-column findings, then ``duplicate_rows``.
        See ``docs/data-quality.md`` for each check.

    Raises:
        NotFoundError: if the path does not exist.
        InvalidArgumentError: if the source cannot be read or the tolerance is not in [0, 1].
    """
    if not 0.0 <= null_share_tolerance <= 1.0:
        raise InvalidArgumentError(
            f"null_share_tolerance must be between 0 and 1, not {null_share_tolerance!r}"
        )
    with connect(memory_limit) as con:
        relation = open_relation(con, source)
        with read_errors(source):
            columns = table_columns(relation)
            relation.create_view(_VIEW)
            findings = _schema_findings(columns, reference)
            rows, value_findings = _value_findings(con, columns, reference, null_share_tolerance)
            findings += value_findings
            if duplicate_rows and columns and rows:
                findings += _duplicate_findings(con, columns, rows)
    return findings


def _schema_findings(columns: Sequence[TableColumn], reference: DatasetProfile) -> list[Finding]:
    findings = []
    current = {column.name: column for column in columns}
    expected = {column.name: column for column in reference.columns}
    for ref in reference.columns:
        if ref.name not in current:
            findings.append(
                Finding(
                    check="missing_column",
                    severity=Severity.ERROR,
                    column=ref.name,
                    message=(
                        f"column {ref.name!r} ({ref.type}) is missing; restore it where the data "
                        "is produced, or profile a new reference if it was dropped on purpose"
                    ),
                    details={"reference_type": ref.type},
                )
            )
    for column in columns:
        ref_column = expected.get(column.name)
        if ref_column is None:
            findings.append(
                Finding(
                    check="extra_column",
                    severity=Severity.WARNING,
                    column=column.name,
                    message=(
                        f"column {column.name!r} ({column.type}) is not in the reference; drop "
                        "it, or profile a new reference if it was added on purpose"
                    ),
                    details={"type": column.type},
                )
            )
        elif ref_column.type != column.type:
            findings.append(_type_finding(column, ref_column))
    return findings


def _type_finding(column: TableColumn, ref: ColumnProfile) -> Finding:
    same_family = type_family(ref.type) == type_family(column.type)
    if same_family:
        message = (
            f"column {column.name!r} changed type from {ref.type} to {column.type} within the "
            f"{type_family(column.type)} family; values still compare, but check that the "
            "producer meant to change it (e.g. integers that gained missing values or decimals)"
        )
    else:
        message = (
            f"column {column.name!r} changed type from {ref.type} to {column.type}; consumers "
            f"expecting {ref.type} will fail: convert it back where the data is produced (or fix "
            "the values that made a CSV column read as another type)"
        )
    return Finding(
        check="type_changed",
        severity=Severity.WARNING if same_family else Severity.ERROR,
        column=column.name,
        message=message,
        details={"reference_type": ref.type, "current_type": column.type},
    )


def _double(value: float) -> str:
    return f"'{value!r}'::DOUBLE"


def _value_findings(
    con: duckdb.DuckDBPyConnection,
    columns: Sequence[TableColumn],
    reference: DatasetProfile,
    tolerance: float,
) -> tuple[int, list[Finding]]:
    """Count rows; check empty, null shares, ranges and unseen categories, in one query."""
    expected = {column.name: column for column in reference.columns}
    select = ["count(*)"]
    params: list[object] = []
    plans: list[tuple[TableColumn, ColumnProfile, tuple[float, float] | None, list[str] | None]]
    plans = []
    for column in columns:
        ref = expected.get(column.name)
        if ref is None:
            continue
        select.append(f"count(*) - count({column.value_sql})")
        same_family = type_family(column.type) == type_family(ref.type)
        in_range = _reference_range(ref) if same_family and column.kind == "number" else None
        if in_range is not None:
            value = f"CAST({column.value_sql} AS DOUBLE)"
            low, high = _double(in_range[0]), _double(in_range[1])
            select += [
                f"count(*) FILTER (WHERE {value} < {low} OR {value} > {high})",
                f"count({value})",
                f"min({value})",
                f"max({value})",
            ]
        known: list[str] | None = None
        if (
            same_family
            and column.kind == "category"
            and ref.top_values is not None
            and ref.other_count == 0
        ):
            known = [value for value, _ in ref.top_values]
            select += [
                f"count(*) FILTER (WHERE {_unseen(column)})",
                f"count({column.sql})",
            ]
            params.append(known)
        plans.append((column, ref, in_range, known))
    sql = f"SELECT {', '.join(select)} FROM {_VIEW}"  # noqa: S608
    values = iter(con.execute(sql, params).fetchall()[0])
    rows = int(next(values))
    if rows == 0:
        return 0, [
            Finding(
                check="empty",
                severity=Severity.ERROR,
                message=(
                    "the table has no rows; check the export or query that produced it "
                    f"(the reference had {reference.rows})"
                ),
                details={"reference_rows": reference.rows},
            )
        ]
    findings: list[Finding] = []
    for column, ref, in_range, known in plans:
        null_finding = _null_share_finding(column.name, ref, int(next(values)), rows, tolerance)
        if null_finding is not None:
            findings.append(null_finding)
        if in_range is not None:
            outside, present, low, high = (next(values) for _ in range(4))
            if outside:
                findings.append(
                    _range_finding(column.name, in_range, int(outside), int(present), low, high)
                )
        if known is not None:
            unseen, present = int(next(values)), int(next(values))
            if unseen:
                findings.append(_unseen_finding(con, column, known, unseen, present))
    return rows, findings


def _reference_range(ref: ColumnProfile) -> tuple[float, float] | None:
    if isinstance(ref.min, int | float) and isinstance(ref.max, int | float):
        return float(ref.min), float(ref.max)
    return None


def _null_share_finding(
    name: str, ref: ColumnProfile, nulls: int, rows: int, tolerance: float
) -> Finding | None:
    share = nulls / rows
    details = {
        "reference_share": ref.null_share,
        "current_share": share,
        "current_nulls": nulls,
        "rows": rows,
        "tolerance": tolerance,
    }
    if ref.null_count == 0 and share > tolerance:
        return Finding(
            check="null_share",
            severity=Severity.ERROR,
            column=name,
            message=(
                f"column {name!r} had no missing values in the reference but {share:.1%} of "
                f"rows ({nulls} of {rows}) are missing now; fix the producer or fill them"
            ),
            details=details,
        )
    if share - ref.null_share > tolerance:
        return Finding(
            check="null_share",
            severity=Severity.WARNING,
            column=name,
            message=(
                f"column {name!r} is missing in {share:.1%} of rows, up from "
                f"{ref.null_share:.1%} in the reference; find where the values are lost"
            ),
            details=details,
        )
    return None


def _range_finding(
    name: str, expected: tuple[float, float], outside: int, present: int, low: float, high: float
) -> Finding:
    share = outside / present
    return Finding(
        check="out_of_range",
        severity=Severity.WARNING,
        column=name,
        message=(
            f"{outside} values ({share:.1%}) of column {name!r} lie outside the reference "
            f"range [{expected[0]:g}, {expected[1]:g}] (now [{low:g}, {high:g}]); check units "
            "and upstream changes, or profile a new reference if the range really grew"
        ),
        details={
            "count": outside,
            "share": share,
            "min": low,
            "max": high,
            "reference_min": expected[0],
            "reference_max": expected[1],
        },
    )


def _unseen(column: TableColumn) -> str:
    # NOT IN a subquery is a hash lookup; list_contains scans the list for every row (7x
    # slower with 40 categories).
    return (
        f"{column.sql} IS NOT NULL AND "
        f"CAST({column.sql} AS VARCHAR) NOT IN (SELECT unnest(CAST(? AS VARCHAR[])))"
    )


def _unseen_finding(
    con: duckdb.DuckDBPyConnection,
    column: TableColumn,
    known: list[str],
    unseen: int,
    present: int,
) -> Finding:
    sql = (
        f"SELECT CAST({column.sql} AS VARCHAR) AS value, count(*) AS n FROM {_VIEW} "  # noqa: S608
        f"WHERE {_unseen(column)} GROUP BY {column.sql} ORDER BY n DESC, value LIMIT ?"
    )
    examples = [[str(v), int(n)] for v, n in con.execute(sql, [known, UNSEEN_EXAMPLES]).fetchall()]
    shown = ", ".join(repr(v) for v, _ in examples[:3])
    share = unseen / present
    return Finding(
        check="unseen_categories",
        severity=Severity.WARNING,
        column=column.name,
        message=(
            f"{unseen} values ({share:.1%}) of column {column.name!r} are categories the "
            f"reference never had (e.g. {shown}); map them to known categories, or profile a "
            "new reference if they are new on purpose"
        ),
        details={"count": unseen, "share": share, "examples": examples},
    )


def _duplicate_findings(
    con: duckdb.DuckDBPyConnection, columns: Sequence[TableColumn], rows: int
) -> list[Finding]:
    keys = ", ".join(column.sql for column in columns)
    sql = (
        "SELECT coalesce(sum(n - 1), 0), count(*) FROM ("  # noqa: S608
        f"SELECT count(*) AS n FROM {_VIEW} GROUP BY {keys}) WHERE n > 1"
    )
    duplicates, groups = (int(n) for n in con.execute(sql).fetchall()[0])
    if not duplicates:
        return []
    share = duplicates / rows
    return [
        Finding(
            check="duplicate_rows",
            severity=Severity.WARNING,
            message=(
                f"{duplicates} rows ({share:.1%}) repeat an earlier row exactly; remove the "
                "repeats where the data is produced (e.g. a join or an export run twice) unless "
                "identical rows are real events"
            ),
            details={"count": duplicates, "share": share, "distinct_repeated": groups},
        )
    ]
