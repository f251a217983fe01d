"""Runs as a pandas DataFrame (pandas is imported only here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from shipyard.entities import Run

__all__ = ["runs_to_frame"]

_BASE_COLUMNS = [
    "run_id",
    "experiment_id",
    "run_name",
    "status",
    "start_time",
    "end_time",
    "duration_s",
    "user",
    "parent_run_id",
]


def runs_to_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run: attributes, then ``metrics.*``, ``params.*`` and ``tags.*`` columns."""
    records: list[dict[str, Any]] = []
    metric_keys: set[str] = set()
    param_keys: set[str] = set()
    tag_keys: set[str] = set()
    for run in runs:
        record: dict[str, Any] = {
            "run_id": run.run_id,
            "experiment_id": run.experiment_id,
            "run_name": run.name,
            "status": run.status.value,
            "start_time": run.start_time,
            "end_time": run.end_time,
            "duration_s": None if run.duration_ms is None else run.duration_ms / 1000,
            "user": run.user,
            "parent_run_id": run.parent_run_id,
        }
        for key, value in run.metrics.items():
            record[f"metrics.{key}"] = value
            metric_keys.add(key)
        for key, text in run.params.items():
            record[f"params.{key}"] = text
            param_keys.add(key)
        for key, text in run.tags.items():
            record[f"tags.{key}"] = text
            tag_keys.add(key)
        records.append(record)
    columns = (
        _BASE_COLUMNS
        + [f"metrics.{k}" for k in sorted(metric_keys)]
        + [f"params.{k}" for k in sorted(param_keys)]
        + [f"tags.{k}" for k in sorted(tag_keys)]
    )
    frame = pd.DataFrame.from_records(records, columns=columns)
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    for key in metric_keys:
        frame[f"metrics.{key}"] = frame[f"metrics.{key}"].astype("float64")
    return frame
