"""Write prediction and feedback segments exactly as ``shipyard.monitoring.logformat`` says the
model server does: typed Arrow columns, hour folders, hidden temporary file renamed into place.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shipyard.monitoring.logformat import (
    CLASSES_METADATA_KEY,
    FEEDBACK_AREA,
    INPUT_PREFIX,
    PREDICTIONS_AREA,
    segment_folder,
)

TIMESTAMP = pa.timestamp("us", tz="UTC")


def _write(table: pa.Table, folder: Path, written_at: datetime) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name = f"part-{written_at.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex}.parquet"
    temporary = folder / f".{name}.tmp"
    pq.write_table(table, temporary)
    os.replace(temporary, folder / name)
    return folder / name


def _column(value: Any, n: int) -> list[Any]:
    if isinstance(value, str | int | float) or value is None:
        return [value] * n
    values = list(value)
    assert len(values) == n, f"{len(values)} values for {n} rows"
    return values


def write_predictions(
    root: Path,
    model: str,
    inputs: pd.DataFrame,
    *,
    timestamps: datetime | Sequence[datetime],
    predictions: Sequence[Any],
    proba: Any = None,
    classes: Sequence[Any] | None = None,
    request_ids: Sequence[str] | None = None,
    rows: Sequence[int] | None = None,
    version: str = "1",
    latency_ms: float | Sequence[float] = 5.0,
    prediction_type: pa.DataType | None = None,
    input_types: dict[str, pa.DataType] | None = None,
    written_at: datetime | None = None,
) -> Path:
    """One segment of successful predictions, one row per input row.

    Without ``request_ids`` every row is its own request (``row`` 0), their ids in row order.
    ``proba`` is an (n, k)
    array in the order of ``classes``, which go into the schema metadata. The segment lands in
    the hour folder of ``written_at`` (default: the latest timestamp).
    """
    n = len(inputs)
    stamps = _column(timestamps, n) if isinstance(timestamps, Sequence) else [timestamps] * n
    segment = uuid.uuid4().hex[:12]
    ids = list(request_ids) if request_ids is not None else [f"{segment}-{i:06d}" for i in range(n)]
    columns: dict[str, pa.Array] = {
        "request_id": pa.array(ids, pa.string()),
        "row": pa.array(list(rows) if rows is not None else [0] * n, pa.int32()),
        "timestamp": pa.array(stamps, TIMESTAMP),
        "version": pa.array([version] * n, pa.string()),
        "protocol": pa.array(["v2"] * n, pa.string()),
        "status": pa.array([200] * n, pa.int16()),
        "latency_ms": pa.array(_column(latency_ms, n), pa.float64()),
    }
    for name in inputs.columns:
        wanted = (input_types or {}).get(name)
        columns[INPUT_PREFIX + name] = pa.Array.from_pandas(inputs[name], type=wanted)
    values = list(predictions)
    if prediction_type is None:
        prediction_type = pa.string() if isinstance(values[0], str) else pa.int64()
        if any(isinstance(v, float) for v in values):
            prediction_type = pa.float64()
    columns["prediction"] = pa.array(values, prediction_type)
    if proba is not None:
        columns["proba"] = pa.array([list(map(float, p)) for p in proba], pa.list_(pa.float64()))
    table = pa.table(columns)
    if classes is not None:
        table = table.replace_schema_metadata({CLASSES_METADATA_KEY: json.dumps(list(classes))})
    folder = segment_folder(root, PREDICTIONS_AREA, model, written_at or max(stamps))
    return _write(table, folder, written_at or max(stamps))


def write_failures(
    root: Path,
    model: str,
    *,
    timestamps: Sequence[datetime],
    input_types: dict[str, pa.DataType],
    status: int = 500,
    latency_ms: float = 1.0,
    version: str = "1",
    request_ids: Sequence[str] | None = None,
) -> Path:
    """One segment of failed requests: one row each, null inputs and prediction."""
    n = len(timestamps)
    ids = list(request_ids) if request_ids is not None else [uuid.uuid4().hex for _ in range(n)]
    columns: dict[str, pa.Array] = {
        "request_id": pa.array(ids, pa.string()),
        "row": pa.array([0] * n, pa.int32()),
        "timestamp": pa.array(list(timestamps), TIMESTAMP),
        "version": pa.array([version] * n, pa.string()),
        "protocol": pa.array(["v2"] * n, pa.string()),
        "status": pa.array([status] * n, pa.int16()),
        "latency_ms": pa.array([latency_ms] * n, pa.float64()),
    }
    for name, arrow_type in input_types.items():
        columns[INPUT_PREFIX + name] = pa.nulls(n, arrow_type)
    columns["prediction"] = pa.nulls(n, pa.int64())
    folder = segment_folder(root, PREDICTIONS_AREA, model, max(timestamps))
    return _write(pa.table(columns), folder, max(timestamps))


def write_feedback(
    root: Path,
    labels: Sequence[tuple[str, int | None, Any, datetime]],
    *,
    written_at: datetime | None = None,
) -> Path:
    """One feedback segment of ``(request_id, row or None, label, timestamp)``."""
    table = pa.table(
        {
            "request_id": pa.array([r for r, _, _, _ in labels], pa.string()),
            "row": pa.array([row for _, row, _, _ in labels], pa.int32()),
            "timestamp": pa.array([ts for _, _, _, ts in labels], TIMESTAMP),
            "label": pa.array([json.dumps(label) for _, _, label, _ in labels], pa.string()),
        }
    )
    at = written_at or max(ts for _, _, _, ts in labels)
    return _write(table, segment_folder(root, FEEDBACK_AREA, None, at), at)


def write_half_written(root: Path, model: str, at: datetime) -> Path:
    """A hidden temporary file as a writer leaves it mid-write: not Parquet at all."""
    folder = segment_folder(root, PREDICTIONS_AREA, model, at)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".part-{uuid.uuid4().hex}.parquet.tmp"
    path.write_bytes(b"PAR1 half a file")
    return path


def spread(start: datetime, n: int, over: timedelta) -> list[datetime]:
    """``n`` timestamps evenly spread over ``[start, start + over)``."""
    step = over / n
    return [start + i * step for i in range(n)]
