"""Runs as a pandas DataFrame (pandas is imported only here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
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
    """One row per run: attributes, then ``metrics.*``, ``params.*`` and ``tags.*`` columns.

    Built column by column: for a search result this is several times faster than building
    one dict per row.
    """
    metric_keys = sorted({k for run in runs for k in run.metrics})
    param_keys = sorted({k for run in runs for k in run.params})
    tag_keys = sorted({k for run in runs for k in run.tags})
    nan = float("nan")
    columns: dict[str, Any] = {
        "run_id": [r.run_id for r in runs],
        "experiment_id": [r.experiment_id for r in runs],
        "run_name": [r.name for r in runs],
        "status": [r.status.value for r in runs],
        "start_time": pd.to_datetime([r.start_time for r in runs], unit="ms", utc=True),
        "end_time": pd.to_datetime(
            [nan if r.end_time is None else r.end_time for r in runs], unit="ms", utc=True
        ),
        "duration_s": [nan if r.duration_ms is None else r.duration_ms / 1000 for r in runs],
        "user": [r.user for r in runs],
        "parent_run_id": [r.parent_run_id for r in runs],
    }
    for key in metric_keys:
        columns[f"metrics.{key}"] = np.array([r.metrics.get(key, nan) for r in runs], dtype=float)
    for key in param_keys:
        columns[f"params.{key}"] = [r.params.get(key) for r in runs]
    for key in tag_keys:
        columns[f"tags.{key}"] = [r.tags.get(key) for r in runs]
    return pd.DataFrame(columns, columns=_BASE_COLUMNS + [c for c in columns if "." in c])
