"""The on-disk format of the prediction and feedback logs: the contract between the model
server that writes them and the monitoring that reads them.

Both are append-only Parquet segments under the workspace, partitioned by hour (and model)::

    <workspace>/predictions/model=NAME/hour=YYYY-MM-DDTHH/part-<time>-<uuid>.parquet
    <workspace>/feedback/hour=YYYY-MM-DDTHH/part-<time>-<uuid>.parquet

(feedback is joined to predictions by ``request_id`` and ``row``, so it needs no model).

A segment is written to a hidden temporary file (name starts with ``.``) and renamed into
place, so a reader never sees half a file. Segments of one model may differ in their input
columns (another version, another signature): read them with ``union_by_name``.

A prediction segment has one row per predicted input row (or one row per failed request):

========================  =========================  =========================================
column                    Arrow type                 meaning
========================  =========================  =========================================
``request_id``            string                     also in the ``x-request-id`` header
``row``                   int32                      row within the request (0 for a failure)
``timestamp``             timestamp[us, tz=UTC]      when the request arrived
``version``               string                     model version that answered
``protocol``              string                     ``v2``, ``mlflow``, ``kserve-v1``
``status``                int16                      HTTP status (200, or the 4xx/5xx sent)
``latency_ms``            float64                    the request's server-side latency
``input.<column>``        the column's type          one per signature column (null on failure)
``prediction``            float64, int64 or string   ``predict`` output (null on failure)
``proba``                 list<float64>              class probabilities, when the model has them
========================  =========================  =========================================

The class labels in ``proba`` order are in the segment's schema metadata under
``shipyard.classes`` (a JSON list). A feedback segment has ``request_id`` (string), ``row``
(int32, null = every row of the request), ``timestamp`` and ``label`` (the ground truth as a
JSON value, string).
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "CLASSES_METADATA_KEY",
    "FEEDBACK_AREA",
    "INPUT_PREFIX",
    "PREDICTIONS_AREA",
    "feedback_glob",
    "hour_partition",
    "predictions_glob",
    "segment_folder",
    "write_segment",
]

PREDICTIONS_AREA = "predictions"
FEEDBACK_AREA = "feedback"
INPUT_PREFIX = "input."
CLASSES_METADATA_KEY = b"shipyard.classes"
HOUR_FORMAT = "%Y-%m-%dT%H"


def hour_partition(ts: datetime) -> str:
    """The ``hour=`` partition value of a timestamp (UTC)."""
    return ts.strftime(HOUR_FORMAT)


def segment_folder(root: str | Path, area: str, model: str | None, ts: datetime) -> Path:
    """The folder a segment written at ``ts`` goes into (predictions: of ``model``)."""
    base = Path(root) / area
    if model is not None:
        base = base / f"model={model}"
    return base / f"hour={hour_partition(ts)}"


def predictions_glob(root: str | Path, model: str | None = None) -> str:
    """A glob over every prediction segment (of one model, or of all)."""
    return str(Path(root) / PREDICTIONS_AREA / f"model={model or '*'}" / "*" / "part-*.parquet")


def feedback_glob(root: str | Path) -> str:
    """A glob over every feedback segment."""
    return str(Path(root) / FEEDBACK_AREA / "*" / "part-*.parquet")


def write_segment(folder: Path, table: pa.Table) -> Path:
    """Write ``table`` as a new segment in ``folder``: a hidden temporary file, then a rename,
    so readers never see half a segment."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    final = folder / f"part-{stamp}-{uuid.uuid4().hex}.parquet"
    temp = folder / f".{final.name}.tmp"
    try:
        pq.write_table(table, temp)
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)
    return final
