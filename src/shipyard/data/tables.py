"""Reading tables (CSV, Parquet, DataFrames, Arrow tables) as DuckDB relations.

Profiles and quality checks never load a table into Python: they send aggregate queries to
DuckDB, which streams the data and spills to a temporary folder when it runs out of memory.
This module opens a source as a relation, names its columns' types the way Arrow spells them,
and turns DuckDB's read errors into one-line :class:`~shipyard.errors.InvalidArgumentError`\\ s.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

import duckdb

from shipyard.data.formats import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    table_format,
)
from shipyard.errors import InvalidArgumentError, NotFoundError

if TYPE_CHECKING:
    import pandas
    import pyarrow

__all__ = [
    "CSV_SAMPLE_ROWS",
    "ColumnKind",
    "TableColumn",
    "TableSource",
    "connect",
    "describe_source",
    "open_relation",
    "quote_identifier",
    "read_errors",
    "table_columns",
    "table_format",
]

TableSource: TypeAlias = "str | os.PathLike[str] | pandas.DataFrame | pyarrow.Table"

ColumnKind: TypeAlias = Literal["number", "category", "temporal", "other"]

CSV_SAMPLE_ROWS = 20_000
"""Rows DuckDB reads to guess a CSV file's column types (a bad value later is an error)."""


_NUMBER_TYPES = frozenset(
    {
        "tinyint",
        "smallint",
        "integer",
        "bigint",
        "hugeint",
        "utinyint",
        "usmallint",
        "uinteger",
        "ubigint",
        "uhugeint",
        "float",
        "double",
        "decimal",
    }
)
_FLOAT_TYPES = frozenset({"float", "double"})
_CATEGORY_TYPES = frozenset({"varchar", "enum", "boolean", "uuid"})
_TEMPORAL_TYPES = frozenset(
    {
        "date",
        "time",
        "time with time zone",
        "timestamp",
        "timestamp_s",
        "timestamp_ms",
        "timestamp_ns",
        "timestamp with time zone",
    }
)
# Arrow has several physical spellings of one logical type; a profile names the logical one so
# that the same data read from a DataFrame, an Arrow table or a file gets the same type.
_ARROW_ALIASES = {
    "large_string": "string",
    "string_view": "string",
    "large_utf8": "string",
    "utf8": "string",
    "large_binary": "binary",
    "binary_view": "binary",
}
_DICTIONARY = re.compile(r"^dictionary<values=(?P<values>.+), indices=[a-z0-9]+, ordered=[01]>$")
_TIME_ZONE = re.compile(r"^timestamp\[(?P<unit>[a-z]+), tz=[^\]]+\]$")
_ERROR_PREFIX = re.compile(r"^[A-Za-z ]*Error: ")
_AUTO_NAMED = re.compile(r"^column\d+$")
# Errors in the SQL that Shipyard writes, not in the data: they must surface as they are.
_OUR_MISTAKES = (
    duckdb.BinderException,
    duckdb.CatalogException,
    duckdb.ParserException,
    duckdb.InternalException,
    duckdb.InterruptException,
)


@dataclass(frozen=True, slots=True)
class TableColumn:
    """One column of a relation, with the SQL needed to aggregate it.

    Attributes:
        name: the column's name.
        type: its Arrow type, e.g. ``int64``, ``double``, ``string``, ``timestamp[us]``.
        kind: ``number``, ``category`` (strings, enums, booleans), ``temporal`` or ``other``.
        sql: the column's quoted identifier.
        value_sql: an expression that is NULL where the value is missing: NULL, and for
            floating-point columns also NaN and ±infinity (see ``docs/data-quality.md``).
    """

    name: str
    type: str
    kind: ColumnKind
    sql: str
    value_sql: str


def connect(memory_limit: str = "2GB", *, threads: int = 2) -> duckdb.DuckDBPyConnection:
    """Open a private in-memory DuckDB connection for reading tables.

    Queries that outgrow ``memory_limit`` spill to a fresh folder under the system's temporary
    folder, which DuckDB creates when it first spills and removes when the connection closes.

    Args:
        memory_limit: DuckDB's memory limit, e.g. ``"2GB"`` or ``"512MB"``.
        threads: worker threads.

    Raises:
        InvalidArgumentError: if ``memory_limit`` or ``threads`` is not accepted.
    """
    spill = Path(tempfile.gettempdir()) / f"shipyard-duckdb-{uuid.uuid4().hex}"
    config: dict[str, str | bool | int | float | list[str]] = {
        "threads": threads,
        "memory_limit": memory_limit,
        "temp_directory": str(spill),
        # Profiles only aggregate, so row order never matters and DuckDB may use less memory.
        "preserve_insertion_order": False,
    }
    try:
        return duckdb.connect(":memory:", config=config)
    except duckdb.Error as exc:
        raise InvalidArgumentError(
            f"cannot open DuckDB with memory_limit={memory_limit!r}, threads={threads!r}: "
            f"{_summary(exc)}"
        ) from exc


def open_relation(con: duckdb.DuckDBPyConnection, source: TableSource) -> duckdb.DuckDBPyRelation:
    """Open a table as a DuckDB relation without reading its rows.

    CSV files are read with DuckDB's dialect and type detection over the first
    :data:`CSV_SAMPLE_ROWS` rows; a later value that does not fit its column's type is an error
    when the relation is queried (see :func:`read_errors`). Parquet is read from a file or from
    every ``.parquet``/``.pq`` file of a folder (hidden files and ``_``-prefixed ones skipped,
    columns matched by name, Hive ``key=value`` folders read as columns). DataFrames and Arrow
    tables are registered with DuckDB and read in place.

    Args:
        con: a connection, e.g. from :func:`connect`.
        source: a path, a pandas DataFrame or a pyarrow Table.

    Raises:
        NotFoundError: if the path does not exist.
        InvalidArgumentError: if the path is not a table, is empty or cannot be read.
    """
    if not isinstance(source, (str, os.PathLike)):
        return _open_in_memory(con, source)
    path = Path(source)
    if not path.exists():
        raise NotFoundError(f"no such file or folder: {path}")
    fmt = table_format(path)
    if not fmt:
        raise InvalidArgumentError(
            f"{path} is not a table: expected a .csv, .tsv or .parquet file (optionally .gz or "
            ".zst compressed for CSV) or a folder of .parquet files"
        )
    if path.is_file() and _is_blank(path):
        raise InvalidArgumentError(f"{path} is empty: a table needs at least a header line")
    with read_errors(source):
        if fmt == "parquet":
            return _open_parquet(con, path)
        return _open_csv(con, path)


@contextmanager
def read_errors(source: TableSource) -> Iterator[None]:
    """Turn DuckDB's errors about reading ``source`` into one-line ``InvalidArgumentError``\\ s.

    Wrap every query over a relation from :func:`open_relation`: CSV values that do not match
    their detected type, and damaged files, only show up when rows are read.

    Raises:
        InvalidArgumentError: naming the source and what is wrong with it.
    """
    try:
        yield
    except _OUR_MISTAKES:
        raise
    except duckdb.Error as exc:
        message = _summary(exc)
        if "automatically detect the CSV parsing dialect" in message:
            message = (
                "DuckDB could not detect its CSV layout; check that every row has as many "
                "fields as the header and that quotes are balanced"
            )
        elif "CSV Error" in message and "convert" in message:
            message += f" (column types are guessed from the first {CSV_SAMPLE_ROWS:,} rows)"
        elif isinstance(exc, duckdb.OutOfMemoryException):
            message += "; give DuckDB a larger memory_limit or free space in the temporary folder"
        raise InvalidArgumentError(f"cannot read {describe_source(source)}: {message}") from exc


def describe_source(source: TableSource) -> str:
    """Name a source in a message: its path, ``the DataFrame`` or ``the Arrow table``."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return "the DataFrame" if _is_dataframe(source) else "the Arrow table"


def quote_identifier(name: str) -> str:
    """Quote a column name for DuckDB SQL."""
    return '"' + name.replace('"', '""') + '"'


def table_columns(relation: duckdb.DuckDBPyRelation) -> tuple[TableColumn, ...]:
    """Describe the columns of a relation: Arrow type, kind and SQL to aggregate them."""
    schema = relation.limit(0).to_arrow_table().schema
    columns = []
    for name, duck_type, field in zip(relation.columns, relation.types, schema, strict=True):
        type_id = str(duck_type.id).lower()
        quoted = quote_identifier(name)
        kind: ColumnKind
        if type_id in _NUMBER_TYPES:
            kind = "number"
        elif type_id in _CATEGORY_TYPES:
            kind = "category"
        elif type_id in _TEMPORAL_TYPES:
            kind = "temporal"
        else:
            kind = "other"
        value = (
            f"CASE WHEN isfinite({quoted}) THEN {quoted} END" if type_id in _FLOAT_TYPES else quoted
        )
        columns.append(TableColumn(name, _arrow_type_name(field.type), kind, quoted, value))
    return tuple(columns)


def _arrow_type_name(arrow_type: object) -> str:
    text = str(arrow_type)
    match = _DICTIONARY.match(text)
    if match:
        text = match["values"]
    text = _ARROW_ALIASES.get(text, text)
    match = _TIME_ZONE.match(text)
    if match:
        # DuckDB stores instants; the zone in its Arrow type is only the session's display zone.
        text = f"timestamp[{match['unit']}, tz=UTC]"
    return text


def _is_dataframe(obj: object) -> bool:
    return any(
        c.__module__.startswith("pandas") and c.__name__ == "DataFrame" for c in type(obj).__mro__
    )


def _open_in_memory(con: duckdb.DuckDBPyConnection, source: TableSource) -> duckdb.DuckDBPyRelation:
    import pandas as pd
    import pyarrow as pa

    with read_errors(source):
        if isinstance(source, pd.DataFrame):
            return con.from_df(source)
        if isinstance(source, pa.Table):
            return con.from_arrow(source)
    raise InvalidArgumentError(
        f"cannot read a {type(source).__name__} as a table: pass a path, a pandas DataFrame or "
        "a pyarrow Table"
    )


def _parquet_files(folder: Path) -> list[Path]:
    files = []
    for path in folder.rglob("*"):
        parts = path.relative_to(folder).parts
        if any(part.startswith((".", "_")) for part in parts):
            continue
        if path.name.lower().endswith(PARQUET_SUFFIXES) and path.is_file():
            files.append(path)
    return sorted(files)


def _open_parquet(con: duckdb.DuckDBPyConnection, path: Path) -> duckdb.DuckDBPyRelation:
    if path.is_file():
        return con.read_parquet(str(path))
    files = _parquet_files(path)
    folders = [f.relative_to(path).parts[:-1] for f in files]
    hive = all(parts and all("=" in part for part in parts) for parts in folders)
    return con.read_parquet([str(f) for f in files], hive_partitioning=hive, union_by_name=True)


def _open_csv(con: duckdb.DuckDBPyConnection, path: Path) -> duckdb.DuckDBPyRelation:
    # skiprows=0: DuckDB's sniffer may otherwise skip leading rows to find a wider dialect,
    # silently dropping data from a file with one malformed line.
    relation = con.read_csv(str(path), sample_size=CSV_SAMPLE_ROWS, skiprows=0)
    delimiter = "\t" if ".tsv" in path.name.lower() else ","
    if len(relation.columns) == 1 and delimiter in relation.columns[0]:
        # The sniffer gave up splitting rows (their field counts differ): read again with the
        # delimiter named, so that DuckDB says what is wrong instead of returning one column.
        relation = con.read_csv(
            str(path), sample_size=CSV_SAMPLE_ROWS, skiprows=0, delimiter=delimiter
        )
    if (
        all(_AUTO_NAMED.match(name) for name in relation.columns)
        and not relation.limit(1).fetchall()
    ):
        raise InvalidArgumentError(f"{path} holds no header and no rows")
    return relation


def _is_blank(path: Path) -> bool:
    """Whether a file holds nothing but whitespace (read only when it is small)."""
    size = path.stat().st_size
    if size > 4096:
        return False
    return not path.read_bytes().strip() if path.suffix.lower() in CSV_SUFFIXES else size == 0


def _summary(exc: BaseException) -> str:
    """The first paragraph of a DuckDB error on one line, without the row's content."""
    lines: list[str] = []
    for line in str(exc).strip().splitlines():
        if not line.strip() or line.rstrip().endswith(":") or len(lines) == 3:
            break
        if line.startswith("Original Line:"):
            continue
        lines.append(line.strip())
    text = "; ".join(lines) if lines else type(exc).__name__
    return _ERROR_PREFIX.sub("", text, count=1)
