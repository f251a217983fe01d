"""The prediction log: every prediction, failed request and ground-truth label as Parquet.

The format is :mod:`shipyard.monitoring.logformat` (the contract with monitoring): one row per
predicted input row, with typed ``input.<column>`` columns, ``prediction``, ``proba`` (when the
request asked for probabilities) and ``status``; one row per failed request.

A request only appends its arrays to a bounded buffer, never blocking and never converting
anything: when the buffer is full the rows are dropped and counted. One background thread
turns what it collected into Arrow columns a whole buffer at a time (``numpy.concatenate``, no
per-row Python objects) every ``flush_seconds`` (or when ``flush_rows`` are waiting) and writes
one segment per model and hour, to a hidden temporary file renamed into place.
:meth:`PredictionLog.close` writes everything out (the server calls it on SIGTERM).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.monitoring.logformat import (
    CLASSES_METADATA_KEY,
    FEEDBACK_AREA,
    INPUT_PREFIX,
    PREDICTIONS_AREA,
    segment_folder,
    write_segment,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["PredictionLog"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Prediction:
    request_id: str
    timestamp: float  # seconds since the epoch, when the request arrived
    model: str
    version: str
    protocol: str
    status: int
    latency_ms: float
    inputs: Any = None  # what the model was given: a 2-D array, a DataFrame, a tensor
    columns: tuple[str, ...] | None = None  # the names of a 2-D array's columns
    types: tuple[str, ...] | None = None  # the signature's types of those columns
    prediction: Any = None
    proba: Any = None
    classes: tuple[Any, ...] | None = None
    route: tuple[str, str, str] = ("", "", "")  # deployment, route, mode
    unit: str | None = None  # the A/B assignment unit (a hash of the sticky key)

    @property
    def rows(self) -> int:
        return 1 if self.inputs is None else len(self.inputs)


@dataclass(slots=True)
class _Feedback:
    request_id: str
    timestamp: float
    row: int | None
    label: str


class PredictionLog:
    """A bounded, non-blocking writer of prediction and feedback segments.

    Args:
        root: the workspace folder; segments go under ``predictions/`` and ``feedback/``.
        max_queue: rows held at most before new ones are dropped.
        flush_seconds: how often the writer writes what it holds.
        flush_rows: write early when this many rows are waiting.
        on_drop: called with the number of rows lost, because the buffer was full or their
            write failed (the server counts them in a metric).
        on_write: called with the number of rows written.
        on_error: called once for each write that failed.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_queue: int = 100_000,
        flush_seconds: float = 1.0,
        flush_rows: int = 20_000,
        on_drop: Callable[[int], None] | None = None,
        on_write: Callable[[int], None] | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.max_queue = max_queue
        self.flush_seconds = flush_seconds
        self.flush_rows = flush_rows
        self.dropped = 0
        self._on_drop = on_drop
        self._on_write = on_write
        self._on_error = on_error
        self._lock = threading.Lock()
        self._items: list[_Prediction | _Feedback] = []
        self._rows = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(
                target=self._run, name="shipyard-prediction-log", daemon=True
            )
            self._thread.start()

    def _put(self, item: _Prediction | _Feedback, rows: int) -> bool:
        with self._lock:
            accepted = self._rows + rows <= self.max_queue
            if accepted:
                self._items.append(item)
                self._rows += rows
                if self._rows >= self.flush_rows:
                    self._wake.set()
        if not accepted:
            self._lose(rows)
        return accepted

    def _lose(self, rows: int) -> None:
        self.dropped += rows
        if self._on_drop is not None:
            self._on_drop(rows)

    def log_prediction(
        self,
        *,
        request_id: str,
        timestamp: float,
        model: str,
        version: str,
        protocol: str,
        inputs: Any,
        prediction: Any,
        latency_ms: float,
        columns: tuple[str, ...] | None = None,
        types: tuple[str, ...] | None = None,
        proba: Any = None,
        classes: tuple[Any, ...] | None = None,
        route: tuple[str, str, str] = ("", "", ""),
        unit: str | None = None,
    ) -> bool:
        """Queue one answered request; returns False when its rows were dropped.

        Args:
            timestamp: when the request arrived (``time.time()``).
            inputs: the rows the model was given (an array, a DataFrame); not copied, so do
                not change it afterwards.
            prediction: the ``predict`` output, one value per row.
            columns: the column names of a 2-D array ``inputs``.
            types: the signature's types of ``columns``: each input column is logged as its
                type, whichever way the request came (``string`` for text and ``object``).
            proba: the ``predict_proba`` output, when the request asked for it.
            classes: the class labels in ``proba`` column order.
            route: the deployment, route and mode that answered (empty: none).
            unit: the A/B test's assignment unit (a hash of the sticky key), if any.
        """
        record = _Prediction(
            request_id, timestamp, model, version, protocol, 200, latency_ms,
            inputs, columns, types, prediction, proba, classes, route, unit,
        )  # fmt: skip
        return self._put(record, record.rows)

    def log_failure(
        self,
        *,
        request_id: str,
        timestamp: float,
        model: str,
        version: str,
        protocol: str,
        status: int,
        latency_ms: float,
        route: tuple[str, str, str] = ("", "", ""),
        unit: str | None = None,
    ) -> bool:
        """Queue one failed request (a row without inputs), so error rates can be computed."""
        record = _Prediction(
            request_id, timestamp, model, version, protocol, status, latency_ms,
            route=route, unit=unit,
        )  # fmt: skip
        return self._put(record, 1)

    def log_feedback(
        self, *, request_id: str, label: Any, row: int | None = None, timestamp: float = 0.0
    ) -> bool:
        """Queue one ground-truth label for a logged request (all its rows when ``row`` is None)."""
        import time

        stamp = timestamp or time.time()
        return self._put(_Feedback(request_id, stamp, row, json.dumps(label)), 1)

    @property
    def pending(self) -> int:
        """Rows waiting to be written."""
        return self._rows

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued and stop the writer."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping = True
            self._wake.set()
            thread.join(timeout)
        if thread is None or not thread.is_alive():
            self._write(self._take())

    def _take(self) -> list[_Prediction | _Feedback]:
        with self._lock:
            items, self._items, self._rows = self._items, [], 0
            self._wake.clear()
        return items

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_seconds)
            self._write(self._take())

    def _write(self, items: list[_Prediction | _Feedback]) -> None:
        groups: dict[tuple[str, str | None, int], list[Any]] = defaultdict(list)
        for item in items:
            if isinstance(item, _Prediction):
                groups[PREDICTIONS_AREA, item.model, int(item.timestamp // 3600)].append(item)
            else:
                groups[FEEDBACK_AREA, None, int(item.timestamp // 3600)].append(item)
        for (area, model, hour), records in groups.items():
            folder = segment_folder(
                self.root, area, model, datetime.fromtimestamp(hour * 3600, UTC)
            )
            self._write_group(folder, area, records)

    def _write_group(self, folder: Path, area: str, records: list[Any]) -> None:
        """Write the records of one model and hour. Records that cannot be made a table are
        split in halves until only the bad ones are left out; a failed write (a full or
        read-only disk) loses its rows. Lost rows are counted and logged, never raised."""
        try:
            tables = (
                _prediction_tables(records)
                if area == PREDICTIONS_AREA
                else [_feedback_table(records)]
            )
        except Exception:
            if len(records) > 1:
                half = len(records) // 2
                self._write_group(folder, area, records[:half])
                self._write_group(folder, area, records[half:])
                return
            rows = records[0].rows if isinstance(records[0], _Prediction) else 1
            log.exception(
                "could not log request %s (%d rows are lost)", records[0].request_id, rows
            )
            self._failed(rows)
            return
        for table in tables:
            try:
                write_segment(folder, table)
            except Exception:  # a full disk must not kill the writer
                log.exception("could not write %d log rows to %s; they are lost", table.num_rows,
                              folder)  # fmt: skip
                self._failed(table.num_rows)
            else:
                if self._on_write is not None:
                    self._on_write(table.num_rows)

    def _failed(self, rows: int) -> None:
        self._lose(rows)
        if self._on_error is not None:
            self._on_error()


# --- Arrow columns ----------------------------------------------------------------------------


def _input_key(record: _Prediction) -> tuple[Any, ...]:
    import numpy as np

    data = record.inputs
    if record.types is not None:  # every input column is logged as its signature's type
        return ("typed", record.columns, record.types)
    if isinstance(data, np.ndarray):
        return ("array", record.columns, data.shape[1:], data.dtype.str)
    return ("frame", tuple((str(c), str(t)) for c, t in data.dtypes.items()))


def _prediction_tables(records: list[_Prediction]) -> list[pa.Table]:
    """The records of one model and hour as tables: one, unless input columns or classes
    changed in between (a new version) in ways one table cannot hold."""
    import pyarrow as pa

    blocks: dict[tuple[Any, ...], list[_Prediction]] = defaultdict(list)
    failed = []
    for record in records:
        if record.inputs is None:
            failed.append(record)
        else:
            blocks[_input_key(record), record.classes].append(record)
    tables = [(_answered_table(block), block[0].classes) for block in blocks.values()]
    if failed:
        tables.append((_failed_table(failed), None))
    classes = {c for _, c in tables if c is not None}
    if len(tables) > 1 and len(classes) <= 1:
        try:
            joined = pa.concat_tables([t for t, _ in tables], promote_options="permissive")
            tables = [(joined, next(iter(classes), None))]
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    return [
        t if c is None else t.replace_schema_metadata({CLASSES_METADATA_KEY: _json_list(c)})
        for t, c in tables
    ]


def _json_list(values: tuple[Any, ...]) -> bytes:
    return json.dumps(list(values), default=str).encode()


def _meta_columns(records: list[_Prediction], counts: Any) -> dict[str, pa.Array]:
    import numpy as np
    import pyarrow as pa

    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    stamps = np.array([int(r.timestamp * 1_000_000) for r in records], dtype=np.int64)

    def each(values: list[Any], dtype: Any = object) -> Any:
        return np.repeat(np.array(values, dtype=dtype), counts)

    return {
        "request_id": pa.array(each([r.request_id for r in records]), pa.string()),
        "row": pa.array(np.arange(total) - np.repeat(starts, counts), pa.int32()),
        "timestamp": pa.array(np.repeat(stamps, counts), pa.int64()).cast(
            pa.timestamp("us", tz="UTC")
        ),
        "version": pa.array(each([r.version for r in records]), pa.string()),
        "protocol": pa.array(each([r.protocol for r in records]), pa.string()),
        "status": pa.array(each([r.status for r in records], np.int16), pa.int16()),
        "latency_ms": pa.array(each([r.latency_ms for r in records], np.float64), pa.float64()),
    } | _route_columns(records, each)


def _route_columns(records: list[_Prediction], each: Any) -> dict[str, pa.Array]:
    """``deployment``, ``route`` and ``mode`` columns, when a deployment answered any row."""
    import pyarrow as pa

    if not any(r.route[0] for r in records):
        return {}
    columns = {
        name: pa.array(each([r.route[i] for r in records]), pa.string())
        for i, name in enumerate(("deployment", "route", "mode"))
    }
    if any(r.unit for r in records):
        columns["unit"] = pa.array(each([r.unit for r in records]), pa.string())
    return columns


def _answered_table(records: list[_Prediction]) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    counts = np.array([len(r.inputs) for r in records], dtype=np.int64)
    columns = _meta_columns(records, counts)
    columns |= _input_columns(records)
    predicted = [r for r in records if r.prediction is not None]
    if predicted:  # None: the request asked for probabilities only
        columns["prediction"] = _spread(
            _values(_join_outputs([r.prediction for r in predicted])), records
        )
    if any(r.proba is not None for r in records):
        columns["proba"] = _proba(records)
    return pa.table(columns)


def _spread(values: pa.Array, records: list[_Prediction]) -> pa.Array:
    """``values`` of the records that have a prediction, with nulls for the rows of the rest."""
    import pyarrow as pa

    if len(values) == sum(len(r.inputs) for r in records):
        return values
    parts = []
    start = 0
    for record in records:
        rows = len(record.inputs)
        if record.prediction is None:
            parts.append(pa.nulls(rows, values.type))
        else:
            parts.append(values.slice(start, rows))
            start += rows
    return pa.concat_arrays(parts)


def _failed_table(records: list[_Prediction]) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    columns = _meta_columns(records, np.ones(len(records), dtype=np.int64))
    columns["row"] = pa.array(np.zeros(len(records), dtype=np.int32), pa.int32())
    return pa.table(columns)


def _input_columns(records: list[_Prediction]) -> dict[str, pa.Array]:
    import numpy as np

    first = records[0]
    if first.types is not None and first.columns is not None:
        # Join the records first and convert each column once: one Arrow array per column
        # per flush, not one per column per request (that cost the server half its speed).
        joined: Any
        if all(isinstance(r.inputs, np.ndarray) for r in records):
            joined = np.concatenate([r.inputs for r in records])
        else:
            import pandas as pd

            joined = pd.concat(
                [
                    r.inputs
                    if isinstance(r.inputs, pd.DataFrame)
                    else pd.DataFrame(r.inputs, columns=list(first.columns))
                    for r in records
                ],
                ignore_index=True,
            )
        return {
            INPUT_PREFIX + name: _typed(_column(joined, j, name), kind)
            for j, (name, kind) in enumerate(zip(first.columns, first.types, strict=True))
        }
    if not isinstance(first.inputs, np.ndarray):
        import pandas as pd

        frame = pd.concat([r.inputs for r in records], ignore_index=True)
        return {INPUT_PREFIX + str(n): _frame_column(frame[n]) for n in frame.columns}
    data = np.concatenate([r.inputs for r in records])
    names = first.columns
    if names is not None and data.ndim == 2:
        return {INPUT_PREFIX + n: _values(data[:, j]) for j, n in enumerate(names)}
    return {INPUT_PREFIX + "input": _values(data)}


def _column(inputs: Any, index: int, name: str) -> Any:
    """Column ``index`` (named ``name``) of a checked 2-D array or DataFrame."""
    import numpy as np

    if isinstance(inputs, np.ndarray):
        return inputs[:, index]
    return inputs[name]


_TEXT_TYPES = ("string", "object", "category")


def _typed(values: Any, type_name: str) -> pa.Array:
    """``values`` as an Arrow column of a signature type: numbers and booleans as that numpy
    type, datetimes as timestamps, anything else as ``string`` (values that are not text as
    their ``str``)."""
    import numpy as np
    import pyarrow as pa

    try:
        dtype = None if type_name in _TEXT_TYPES else np.dtype(type_name)
    except TypeError:  # a pandas type such as datetime64[ns, UTC]
        return pa.array(values, from_pandas=True)
    if dtype is None or dtype.kind == "c":  # Arrow has no complex numbers
        return _text(values)
    return pa.array(np.asarray(values).astype(dtype, copy=False))


def _text(values: Any) -> pa.Array:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    values = np.asarray(values, dtype=object)
    try:
        return pa.array(values, pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        missing = pd.isna(values)
        return pa.array(
            [None if gone else str(v) for v, gone in zip(values, missing, strict=True)],
            pa.string(),
        )


def _frame_column(values: Any) -> pa.Array:
    """A column of a frame logged without a signature: text (and mixed values) as string."""
    import pyarrow as pa

    if values.dtype.kind in "OSU" or str(values.dtype) in ("str", "string", "category"):
        return _text(values.to_numpy())
    return pa.array(values, from_pandas=True)


def _join_outputs(parts: list[Any]) -> Any:
    import numpy as np

    if hasattr(parts[0], "iloc"):
        import pandas as pd

        joined = pd.concat(parts, ignore_index=True)
        if isinstance(joined, pd.DataFrame):
            if joined.shape[1] == 1:
                return joined.iloc[:, 0].to_numpy()
            return np.array([json.dumps(row, default=str) for row in joined.to_dict("records")])
        return joined.to_numpy()
    return np.concatenate([np.asarray(p) for p in parts])


def _values(data: Any) -> pa.Array:
    """A column of one value per row: numbers as int64/float64, text as string, rows as lists."""
    import numpy as np
    import pyarrow as pa

    data = np.asarray(data)
    if data.ndim > 1:
        flat = _values(np.ascontiguousarray(data).reshape(-1))
        width = int(np.prod(data.shape[1:]))
        return pa.FixedSizeListArray.from_arrays(flat, width).cast(pa.list_(flat.type))
    kind = data.dtype.kind
    if kind in "biu":
        return pa.array(data.astype(np.int64, copy=False), pa.int64())
    if kind == "f":
        return pa.array(np.ascontiguousarray(data, dtype=np.float64), pa.float64())
    if kind in "OUS":
        try:
            return pa.array(data, pa.string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.array([None if v is None else str(v) for v in data.tolist()], pa.string())
    return pa.array([str(v) for v in data.tolist()], pa.string())


def _proba(records: list[_Prediction]) -> pa.Array:
    import numpy as np
    import pyarrow as pa

    parts = []
    for record in records:
        if record.proba is None:
            parts.append(pa.nulls(len(record.inputs), pa.list_(pa.float64())))
        else:
            values = np.asarray(record.proba, dtype=np.float64)
            flat = pa.array(np.ascontiguousarray(values).reshape(-1), pa.float64())
            width = values.shape[1] if values.ndim == 2 else 1
            parts.append(
                pa.FixedSizeListArray.from_arrays(flat, width).cast(pa.list_(pa.float64()))
            )
    return pa.concat_arrays(parts)


def _feedback_table(records: list[_Feedback]) -> pa.Table:
    import pyarrow as pa

    return pa.table(
        {
            "request_id": pa.array([r.request_id for r in records], pa.string()),
            "row": pa.array([r.row for r in records], pa.int32()),
            "timestamp": pa.array([int(r.timestamp * 1_000_000) for r in records], pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "label": pa.array([r.label for r in records], pa.string()),
        }
    )
