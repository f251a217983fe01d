"""The prediction log: every prediction (and every ground-truth label) as append-only Parquet.

Requests only put a record on a bounded queue, which never blocks: when the queue is full the
record is dropped and counted. One background thread writes what it collected every
``flush_seconds`` (or when ``max_rows`` are waiting) as new segments::

    <workspace>/predictions/model=NAME/hour=YYYY-MM-DDTHH/part-<time>-<uuid>.parquet
    <workspace>/feedback/hour=YYYY-MM-DDTHH/part-<time>-<uuid>.parquet

A segment is written to a hidden temporary file and renamed into place, so a reader (DuckDB:
``read_parquet('predictions/**/*.parquet', hive_partitioning=true)``) never sees half a file.
:meth:`PredictionLog.close` flushes everything.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["FEEDBACK_SCHEMA", "PREDICTION_SCHEMA", "PredictionLog"]

log = logging.getLogger(__name__)

PREDICTION_SCHEMA = (
    ("request_id", "string"),
    ("row", "int32"),
    ("timestamp", "timestamp[us, tz=UTC]"),
    ("model", "string"),
    ("version", "string"),
    ("protocol", "string"),
    ("inputs", "string"),  # one JSON object per row: column -> value
    ("output", "string"),  # JSON: the prediction (and probabilities when asked for)
    ("latency_ms", "float64"),
)
FEEDBACK_SCHEMA = (
    ("request_id", "string"),
    ("row", "int32"),
    ("timestamp", "timestamp[us, tz=UTC]"),
    ("label", "string"),  # JSON, so that numbers, strings and lists all fit one column
)
_STOP = object()


def _hour(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H")


class PredictionLog:
    """A bounded, non-blocking writer of prediction and feedback records.

    Args:
        root: the workspace folder; segments go under ``predictions/`` and ``feedback/``.
        max_queue: records held at most before new ones are dropped.
        flush_seconds: how often the writer writes what it holds.
        max_rows: write early when this many records are waiting.
        on_drop: called for each dropped record (the server counts them in a metric).
        on_write: called with the number of records written.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_queue: int = 100_000,
        flush_seconds: float = 1.0,
        max_rows: int = 10_000,
        on_drop: Callable[[], None] | None = None,
        on_write: Callable[[int], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.flush_seconds = flush_seconds
        self.max_rows = max_rows
        self.dropped = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._on_drop = on_drop
        self._on_write = on_write
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="shipyard-prediction-log", daemon=True
            )
            self._thread.start()

    def _put(self, item: tuple[str, dict[str, Any]]) -> bool:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop()
            return False
        return True

    def log_prediction(
        self,
        *,
        request_id: str,
        timestamp: datetime,
        model: str,
        version: str,
        protocol: str,
        inputs: Any,
        outputs: dict[str, Any],
        latency_ms: float,
    ) -> bool:
        """Queue one request's predictions; returns False when the record was dropped.

        ``inputs`` (a DataFrame or an array) and ``outputs`` (name -> per-row values) are
        turned into JSON rows by the writer thread, not by the request.
        """
        record = {
            "request_id": request_id,
            "timestamp": timestamp,
            "model": model,
            "version": version,
            "protocol": protocol,
            "inputs": inputs,
            "outputs": outputs,
            "latency_ms": latency_ms,
        }
        return self._put(("predictions", record))

    def log_feedback(self, *, request_id: str, label: Any, row: int | None = None) -> bool:
        """Queue one ground-truth label for a logged request; False if dropped."""
        return self._put(
            (
                "feedback",
                {
                    "request_id": request_id,
                    "row": row,
                    "timestamp": datetime.now(UTC),
                    "label": json.dumps(label),
                },
            )
        )

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued and stop the writer."""
        if self._thread is None:
            self._drain_and_write()
            return
        # The stop marker must get in even when the queue is full: wait for room.
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        pending: list[tuple[str, dict[str, Any]]] = []
        deadline = time.monotonic() + self.flush_seconds
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _STOP:
                pending.extend(self._drain())
                self._write(pending)
                return
            if item is not None:
                pending.append(item)
            if len(pending) >= self.max_rows or time.monotonic() >= deadline:
                self._write(pending)
                pending = []
                deadline = time.monotonic() + self.flush_seconds

    def _drain(self) -> list[tuple[str, dict[str, Any]]]:
        items: list[tuple[str, dict[str, Any]]] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items
            if item is not _STOP:
                items.append(item)

    def _drain_and_write(self) -> None:
        self._write(self._drain())

    def _write(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        if not items:
            return
        groups: dict[tuple[str, Path], list[dict[str, Any]]] = defaultdict(list)
        for area, record in items:
            hour = _hour(record["timestamp"])
            if area == "predictions":
                folder = self.root / area / f"model={record['model']}" / f"hour={hour}"
                groups[area, folder].extend(_prediction_rows(record))
            else:
                groups[area, self.root / area / f"hour={hour}"].append(record)
        for (area, folder), records in groups.items():
            schema = PREDICTION_SCHEMA if area == "predictions" else FEEDBACK_SCHEMA
            try:
                _write_segment(folder, records, schema)
            except Exception:  # a full disk must not kill the writer; the records are lost
                log.exception("could not write %d log records to %s", len(records), folder)
                continue
            if self._on_write is not None:
                self._on_write(len(records))


def _jsonable_rows(values: Any) -> list[Any]:
    import numpy as np
    import pandas as pd

    if isinstance(values, pd.DataFrame):
        return [{str(k): _plain(v) for k, v in row.items()} for row in values.to_dict("records")]
    if isinstance(values, pd.Series):
        values = values.to_numpy()
    return [_plain(v) for v in np.asarray(values)]


def _plain(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value


def _prediction_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per predicted input row: the input and every output asked for, as JSON."""
    inputs = _jsonable_rows(record["inputs"])
    outputs = {name: _jsonable_rows(values) for name, values in record["outputs"].items()}
    common = {k: record[k] for k in ("request_id", "timestamp", "model", "version", "protocol")}
    return [
        {
            **common,
            "row": i,
            "inputs": json.dumps(row, default=str),
            "output": json.dumps(
                {name: values[i] for name, values in outputs.items() if i < len(values)},
                default=str,
            ),
            "latency_ms": record["latency_ms"],
        }
        for i, row in enumerate(inputs)
    ]


def _write_segment(
    folder: Path, records: list[dict[str, Any]], schema: tuple[tuple[str, str], ...]
) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "string": pa.string(),
        "int32": pa.int32(),
        "float64": pa.float64(),
        "timestamp[us, tz=UTC]": pa.timestamp("us", tz="UTC"),
    }
    arrow_schema = pa.schema([(name, types[kind]) for name, kind in schema])
    table = pa.Table.from_pylist(
        [{name: r.get(name) for name, _ in schema} for r in records], schema=arrow_schema
    )
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    final = folder / f"part-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
    temp = folder / f".{final.name}.tmp"
    try:
        pq.write_table(table, temp)
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)
    return final
