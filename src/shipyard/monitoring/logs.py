"""Read a deployment's prediction log, with the labels that arrived for it, as an Arrow table.

The segments of the hours in range are listed first (the ``hour=`` folders name them), so a
month-long log costs nothing when one hour is asked for, and an hour without segments needs no
query at all. DuckDB then reads only the columns asked for from those segments, joins the
feedback of the predicted requests and returns the rows in time order. See
:mod:`shipyard.monitoring.logformat` for the layout.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.monitoring.logformat import (
    CLASSES_METADATA_KEY,
    FEEDBACK_AREA,
    INPUT_PREFIX,
    PREDICTIONS_AREA,
    hour_partition,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = [
    "INPUTS_METADATA_KEY",
    "LATE_WRITE_SLACK",
    "LOG_COLUMNS",
    "ROUTE_COLUMNS",
    "LogSpan",
    "input_table",
    "join_labels",
    "log_connection",
    "log_root",
    "log_schema",
    "log_span",
    "logged_inputs",
    "model_segments",
    "prediction_classes",
    "read_labels",
    "read_predictions",
    "segment_files",
    "utc",
]

log = logging.getLogger(__name__)

LOG_COLUMNS = (
    "prediction",
    "proba",
    "status",
    "latency_ms",
    "version",
    "timestamp",
    "request_id",
    "row",
)
"""The log's own columns in a table from :func:`read_predictions` (inputs come first)."""
ROUTE_COLUMNS = ("deployment", "route", "mode", "unit")
"""Columns of rows a deployment answered (added after :data:`LOG_COLUMNS` when present)."""
LABEL_COLUMNS = ("label", "label_timestamp", "label_delay_seconds")
INPUTS_METADATA_KEY = b"shipyard.inputs"
"""Schema metadata of a table from :func:`read_predictions`: its input columns (JSON list)."""
LATE_WRITE_SLACK = timedelta(hours=1)
"""How far past ``end`` the ``hour=`` folders are opened. The model server files each row under
the hour its request arrived (``shipyard.serving.predlog`` groups each flush by that hour), so
the folders up to ``end`` already hold every row in range. The extra hour is a safety margin for
a segment filed by the time it was written instead, a little after its requests arrived; it
costs reading the footers of segments whose rows the time filter then skips."""
_REQUIRED = ("request_id", "row", "timestamp", "version", "status", "latency_ms")


def utc(ts: datetime) -> datetime:
    """``ts`` in UTC; a naive datetime is taken to be UTC already (as the log is)."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def log_root(
    root: str | os.PathLike[str] | None = None, *, home: str | os.PathLike[str] | None = None
) -> Path:
    """The folder holding ``predictions/`` and ``feedback/``: ``root``, or the workspace's."""
    if root is not None:
        return Path(root)
    from shipyard.config import load_settings

    return load_settings(home).home


def segment_files(
    root: str | os.PathLike[str],
    area: str,
    model: str | None = None,
    *,
    first_hour: str | None = None,
    last_hour: str | None = None,
) -> list[str]:
    """The segments of ``area`` (of ``model``) in the hour folders between two ``hour=`` values.

    Hidden files (a segment still being written) are never listed.
    """
    base = Path(root) / area
    if model is not None:
        base = base / f"model={model}"
    if not base.is_dir():
        return []
    files: list[str] = []
    for folder in sorted(base.glob("hour=*")):
        hour = folder.name.removeprefix("hour=")
        if (first_hour is not None and hour < first_hour) or (
            last_hour is not None and hour > last_hour
        ):
            continue
        files += [str(path) for path in sorted(folder.glob("part-*.parquet")) if path.is_file()]
    return files


def model_segments(
    model: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    root: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
) -> tuple[Path, list[str]]:
    """The log folder and the model's segments that may hold rows in ``[start, end)``.

    Raises:
        NotFoundError: the model has no segment at all under the folder.
    """
    folder = log_root(root, home=home)
    first = hour_partition(utc(start)) if start is not None else None
    last = hour_partition(utc(end) + LATE_WRITE_SLACK) if end is not None else None
    files = segment_files(folder, PREDICTIONS_AREA, model, first_hour=first, last_hour=last)
    if not files and not segment_files(folder, PREDICTIONS_AREA, model):
        raise _missing_log(folder, model)
    return folder, files


def _missing_log(root: Path, model: str) -> NotFoundError:
    folder = root / PREDICTIONS_AREA
    logged = sorted(p.name.removeprefix("model=") for p in folder.glob("model=*") if p.is_dir())
    found = f"models with a log: {', '.join(logged)}" if logged else "no model has a log there"
    return NotFoundError(
        f"no prediction log for model {model!r} under {folder} ({found}); serve the model "
        "with the prediction log on (shipyard serve logs by default), or pass the folder that "
        "holds predictions/ and feedback/"
    )


def log_connection(memory_limit: str = "2GB") -> duckdb.DuckDBPyConnection:
    """A private DuckDB connection that reads and returns timestamps in UTC."""
    from shipyard.data.tables import connect

    con = connect(memory_limit)
    con.execute("SET TimeZone = 'UTC'")
    return con


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def log_schema(con: duckdb.DuckDBPyConnection, files: list[str], root: Path) -> dict[str, str]:
    """Column name -> DuckDB type over every segment (footers only), checked for the contract."""
    from shipyard.data.tables import read_errors

    with read_errors(root / PREDICTIONS_AREA):
        rows = con.execute(
            "DESCRIBE SELECT * FROM read_parquet(?, union_by_name = true)", [files]
        ).fetchall()
    schema = {str(name): str(kind) for name, kind, *_ in rows}
    missing = [column for column in _REQUIRED if column not in schema]
    if missing:
        raise InvalidArgumentError(
            f"the prediction log under {root / PREDICTIONS_AREA} lacks the columns "
            f"{', '.join(missing)}: it was written by an older model server; serve the model "
            "with this Shipyard to log in the current format"
        )
    return schema


@dataclass(frozen=True, slots=True)
class LogSpan:
    """When a model's log starts and ends, and how many rows it holds."""

    first: datetime
    last: datetime
    rows: int


def log_span(
    model: str,
    *,
    root: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
    memory_limit: str = "2GB",
) -> LogSpan:
    """The first and last request time in a model's log (read from the ``timestamp`` column).

    Raises:
        NotFoundError: the model has no prediction log, or it holds no rows.
    """
    from shipyard.data.tables import read_errors

    folder, files = model_segments(model, root=root, home=home)
    with log_connection(memory_limit) as con, read_errors(folder / PREDICTIONS_AREA):
        log_schema(con, files, folder)
        first, last, rows = con.execute(
            'SELECT min("timestamp"), max("timestamp"), count(*) '
            "FROM read_parquet(?, union_by_name = true)",
            [files],
        ).fetchall()[0]
    if not rows or first is None:
        raise NotFoundError(f"the prediction log of model {model!r} under {folder} is empty")
    return LogSpan(utc(first), utc(last), int(rows))


def logged_inputs(
    model: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    root: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
) -> list[str]:
    """The input columns of any segment that may hold rows in ``[start, end)`` (footers only).

    Raises:
        NotFoundError: the model has no prediction log.
    """
    folder, files = model_segments(model, start=start, end=end, root=root, home=home)
    if not files:
        return []
    with log_connection("512MB") as con:
        schema = log_schema(con, files, folder)
    return [name[len(INPUT_PREFIX) :] for name in schema if name.startswith(INPUT_PREFIX)]


def prediction_classes(
    files: Sequence[str], con: duckdb.DuckDBPyConnection | None = None
) -> list[Any] | None:
    """The class labels in ``proba`` order, when every segment that names them agrees."""
    if not files:
        return None
    key = CLASSES_METADATA_KEY.decode()
    sql = "SELECT DISTINCT decode(value) FROM parquet_kv_metadata(?) WHERE decode(key) = ?"
    if con is None:
        with log_connection("512MB") as own:
            found = own.execute(sql, [list(files), key]).fetchall()
    else:
        found = con.execute(sql, [list(files), key]).fetchall()
    if len(found) != 1:
        if found:
            log.debug("segments disagree about the classes (%d lists); none used", len(found))
        return None
    classes = json.loads(found[0][0])
    return list(classes) if isinstance(classes, list) else None


def read_predictions(
    model: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    root: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
    columns: Sequence[str] | None = None,
    labels: bool = True,
    sample: int | None = None,
    successful: bool = False,
    memory_limit: str = "2GB",
) -> pa.Table:
    """The rows a model predicted between ``start`` (included) and ``end`` (excluded).

    Args:
        model: the served model name (the ``model=`` folder).
        start: first request time; naive datetimes are UTC. None: from the log's start.
        end: end of the range, excluded. None: to the log's end.
        root: the folder holding ``predictions/`` and ``feedback/``; default the workspace
            (``home``, or the current one).
        home: the workspace, when ``root`` is not given.
        columns: the input columns to read (None: every input column the segments have).
        labels: join the labels that arrived (``label``, ``label_timestamp``,
            ``label_delay_seconds``).
        sample: read at most this many rows, a uniform sample (reservoir, repeatable) of the
            rows in range (and, with ``successful``, answered).
        successful: only the rows of answered requests (HTTP status below 400).
        memory_limit: DuckDB's memory limit; larger reads spill to a temporary folder.

    Returns:
        One row per predicted row, in time order: the input columns first, named without
        their ``input.`` prefix (an input named like a log column keeps the prefix; the
        schema metadata ``shipyard.inputs`` lists them and :func:`input_table` takes them
        out), then ``prediction``, ``proba``, ``status``, ``latency_ms``, ``version``,
        ``timestamp``, ``request_id``, ``row`` and with ``labels`` the label columns. A label
        given for a request (``row`` null) applies to each of its rows; of the labels that
        apply to a row, its own and its request's, the latest wins (at the same time, the
        row's own). The classes of ``proba`` are in the schema metadata under
        ``shipyard.classes`` when the segments name them.

    Raises:
        NotFoundError: the model has no prediction log under the folder.
        InvalidArgumentError: a segment cannot be read or misses a column of the contract.
    """
    import pyarrow as pa

    start = utc(start) if start is not None else None
    end = utc(end) if end is not None else None
    if start is not None and end is not None and end <= start:
        raise InvalidArgumentError(f"the range ends ({end}) before it starts ({start})")
    folder, files = model_segments(model, start=start, end=end, root=root, home=home)
    if not files:
        return _empty(labels)
    from shipyard.data.tables import read_errors

    with log_connection(memory_limit) as con:
        schema = log_schema(con, files, folder)
        logged = [name[len(INPUT_PREFIX) :] for name in schema if name.startswith(INPUT_PREFIX)]
        wanted = logged if columns is None else [c for c in columns if c in logged]
        select, outputs = _select(schema, wanted)
        where, params = _range(start, end)
        if successful:
            where = f"{where} AND status < 400" if where else "status < 400"
        # Composed from quoted column names; paths, times and the sample size are parameters.
        sql = f"SELECT {', '.join(select)} FROM read_parquet($files, union_by_name = true)"  # noqa: S608
        sql += f" WHERE {where}" if where else ""
        if sample is not None:
            if sample < 1:
                raise InvalidArgumentError(f"sample must be a positive number of rows: {sample}")
            # DuckDB samples a FROM before its WHERE: sample the filtered rows instead.
            sample_sql = f"USING SAMPLE reservoir({int(sample)} ROWS) REPEATABLE (42)"
            sql = f"SELECT * FROM ({sql}) {sample_sql}"  # noqa: S608
        params["files"] = files
        feedback = _feedback_files(folder, start) if labels else []
        if feedback:
            sql = _with_labels(sql)
            params["feedback"] = feedback
        else:
            sql = f'SELECT * FROM ({sql}) ORDER BY "timestamp", request_id, "row"'  # noqa: S608
        with read_errors(folder / PREDICTIONS_AREA):
            table = con.sql(sql, params=params).to_arrow_table()
            classes = prediction_classes(files, con) if "proba" in schema else None
    if labels:
        table = _decoded_labels(table) if feedback else _no_labels(table)
    metadata = {INPUTS_METADATA_KEY: json.dumps(outputs).encode()}
    if classes is not None:
        metadata[CLASSES_METADATA_KEY] = json.dumps(classes).encode()
    return pa.Table.from_batches(table.to_batches(), table.schema.with_metadata(metadata))


def _select(schema: dict[str, str], inputs: list[str]) -> tuple[list[str], list[str]]:
    """The SELECT list of the log's columns, and the names the inputs get."""
    select = [f"{_quote(INPUT_PREFIX + name)} AS {_quote(_alias(name))}" for name in inputs]
    select.append("prediction" if "prediction" in schema else "CAST(NULL AS DOUBLE) AS prediction")
    select.append("proba" if "proba" in schema else "CAST(NULL AS DOUBLE[]) AS proba")
    select += ["status", "latency_ms", "version", '"timestamp"', "request_id", '"row"']
    select += [_quote(name) for name in ROUTE_COLUMNS if name in schema]
    return select, list(inputs)


def _alias(name: str) -> str:
    """The column an input gets: its name, unless the log has a column of that name."""
    reserved = name in LOG_COLUMNS or name in LABEL_COLUMNS or name in ROUTE_COLUMNS
    return INPUT_PREFIX + name if reserved else name


def _range(start: datetime | None, end: datetime | None) -> tuple[str, dict[str, Any]]:
    where, params = [], {}
    if start is not None:
        where.append('"timestamp" >= $start')
        params["start"] = start
    if end is not None:
        where.append('"timestamp" < $end')
        params["end"] = end
    return " AND ".join(where), params


def _feedback_files(folder: Path, start: datetime | None) -> list[str]:
    """Feedback segments that may label a request of ``start`` or later: a label is filed under
    the hour it arrived, never before its request."""
    return segment_files(folder, FEEDBACK_AREA, first_hour=hour_partition(start) if start else None)


# The latest label of each row of ``p`` (the row's own before its request's at the same time).
_LATEST_LABELS = """
    f AS (
        SELECT request_id, "row", "timestamp", label
        FROM read_parquet($feedback, union_by_name = true)
        WHERE request_id IN (SELECT request_id FROM p)
    ),
    l AS (
        SELECT p."timestamp", p.request_id, p."row", f.label, f."timestamp" AS label_timestamp
        FROM p JOIN f
            ON f.request_id = p.request_id AND (f."row" = p."row" OR f."row" IS NULL)
        QUALIFY row_number() OVER (
            PARTITION BY p."timestamp", p.request_id, p."row"
            ORDER BY f."timestamp" DESC, f."row" IS NULL
        ) = 1
    )
"""


def _with_labels(predictions: str) -> str:
    """Join the latest label of each predicted row."""
    return f"""
        WITH p AS MATERIALIZED ({predictions}),
        {_LATEST_LABELS}
        SELECT p.*, l.label, l.label_timestamp,
            epoch(l.label_timestamp) - epoch(p."timestamp") AS label_delay_seconds
        FROM p LEFT JOIN l
            ON l."timestamp" = p."timestamp" AND l.request_id = p.request_id AND l."row" = p."row"
        ORDER BY p."timestamp", p.request_id, p."row"
    """  # noqa: S608 - composed from our own SQL; values are bound parameters


def read_labels(
    model: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    root: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
    memory_limit: str = "2GB",
) -> pa.Table:
    """The latest label of each row predicted in ``[start, end)`` that has one, in time order.

    One scan of the period's feedback, for :func:`join_labels` to attach window by window
    (reading each window with its labels would scan all later feedback once per window).

    Returns:
        ``timestamp``, ``request_id``, ``row`` of the predicted row, ``label`` (JSON text)
        and ``label_timestamp``; labels pick as in :func:`read_predictions`.

    Raises:
        NotFoundError: the model has no prediction log under the folder.
        InvalidArgumentError: a segment cannot be read or misses a column of the contract.
    """

    start = utc(start) if start is not None else None
    end = utc(end) if end is not None else None
    folder, files = model_segments(model, start=start, end=end, root=root, home=home)
    feedback = _feedback_files(folder, start)
    if not files or not feedback:
        return _labels_schema().empty_table()
    from shipyard.data.tables import read_errors

    where, params = _range(start, end)
    keys = 'SELECT "timestamp", request_id, "row" FROM read_parquet($files, union_by_name = true)'
    keys += f" WHERE {where}" if where else ""
    sql = f"""
        WITH p AS MATERIALIZED ({keys}),
        {_LATEST_LABELS}
        SELECT "timestamp", request_id, "row", label, label_timestamp FROM l
        ORDER BY "timestamp", request_id, "row"
    """  # noqa: S608 - composed from our own SQL; values are bound parameters
    with log_connection(memory_limit) as con, read_errors(folder / PREDICTIONS_AREA):
        log_schema(con, files, folder)
        table = con.sql(sql, params={**params, "files": files, "feedback": feedback})
        found = table.to_arrow_table()
    return found.cast(_labels_schema())


def _labels_schema() -> pa.Schema:
    import pyarrow as pa

    stamp = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("timestamp", stamp),
            ("request_id", pa.string()),
            ("row", pa.int32()),
            ("label", pa.string()),
            ("label_timestamp", stamp),
        ]
    )


def join_labels(table: pa.Table, labels: pa.Table) -> pa.Table:
    """A table from :func:`read_predictions` (``labels=False``) with its rows' labels from
    :func:`read_labels`, as ``read_predictions`` with ``labels=True`` would return it.

    Only the labels of the table's time span are looked at, so joining window after window
    costs each window its own rows.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    if n and labels.num_rows:
        times = table.column("timestamp")
        stamps = labels.column("timestamp").cast(pa.int64()).to_numpy()
        lo, hi = pc.min_max(times.cast(pa.int64())).values()
        first = int(np.searchsorted(stamps, lo.as_py(), "left"))
        last = int(np.searchsorted(stamps, hi.as_py(), "right"))
        keys = table.select(["timestamp", "request_id", "row"])
        keys = keys.append_column("position", pa.array(np.arange(n, dtype=np.int64)))
        found = keys.join(
            labels.slice(first, last - first), ["timestamp", "request_id", "row"]
        ).sort_by("position")
        label, label_timestamp = found.column("label"), found.column("label_timestamp")
        delay = pc.divide(
            pc.subtract(label_timestamp.cast(pa.int64()), times.cast(pa.int64())).cast(
                pa.float64()
            ),
            1e6,
        )
    else:
        label = pa.nulls(n, pa.string())
        label_timestamp = pa.nulls(n, pa.timestamp("us", tz="UTC"))
        delay = pa.nulls(n, pa.float64())
    joined = table.append_column("label", label)
    joined = joined.append_column("label_timestamp", label_timestamp)
    joined = joined.append_column("label_delay_seconds", delay)
    joined = _decoded_labels(joined)
    return joined.replace_schema_metadata(table.schema.metadata)


def _decode(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _decoded_labels(table: pa.Table) -> pa.Table:
    """Labels arrive as JSON text; give them their own type (text when they mix types)."""
    import pyarrow as pa

    index = table.schema.get_field_index("label")
    values = [_decode(text) for text in table.column(index).to_pylist()]
    try:
        decoded = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        decoded = pa.array([None if v is None else json.dumps(v) for v in values], pa.string())
    if pa.types.is_null(decoded.type):
        decoded = decoded.cast(pa.string())
    return table.set_column(index, "label", decoded)


def _no_labels(table: pa.Table) -> pa.Table:
    import pyarrow as pa

    n = table.num_rows
    table = table.append_column("label", pa.nulls(n, pa.string()))
    table = table.append_column("label_timestamp", pa.nulls(n, pa.timestamp("us", tz="UTC")))
    return table.append_column("label_delay_seconds", pa.nulls(n, pa.float64()))


def _empty(labels: bool) -> pa.Table:
    import pyarrow as pa

    schema = pa.schema(
        [
            ("prediction", pa.float64()),
            ("proba", pa.list_(pa.float64())),
            ("status", pa.int16()),
            ("latency_ms", pa.float64()),
            ("version", pa.string()),
            ("timestamp", pa.timestamp("us", tz="UTC")),
            ("request_id", pa.string()),
            ("row", pa.int32()),
        ],
        metadata={INPUTS_METADATA_KEY: b"[]"},
    )
    table = schema.empty_table()
    return _no_labels(table).replace_schema_metadata(schema.metadata) if labels else table


def input_table(table: pa.Table, *, successful: bool = True) -> pa.Table:
    """The input columns of a table from :func:`read_predictions`, under their own names.

    Args:
        table: rows read by :func:`read_predictions`.
        successful: keep only the rows of answered requests (failed ones have no inputs).
    """
    import pyarrow.compute as pc

    raw = (table.schema.metadata or {}).get(INPUTS_METADATA_KEY, b"[]")
    names = [str(name) for name in json.loads(raw)]
    if successful and table.num_rows:
        table = table.filter(pc.less(table.column("status"), 400))
    return table.select([_alias(name) for name in names]).rename_columns(names)
