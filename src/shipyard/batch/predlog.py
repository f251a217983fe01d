"""The prediction log of a batch job: the same segments the model server writes, so drift and
performance reports see batch predictions too.

Every scored row is one log row: ``request_id`` is the job's id, ``row`` the row's position in
the input, ``timestamp`` the job's start, ``protocol`` ``batch``. Rows are written in input
order whichever executor scored them, in segments of up to :data:`SEGMENT_ROWS` rows.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.monitoring.logformat import (
    CLASSES_METADATA_KEY,
    INPUT_PREFIX,
    PREDICTIONS_AREA,
    segment_folder,
    write_segment,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["SEGMENT_ROWS", "BatchLog"]

SEGMENT_ROWS = 262_144


class BatchLog:
    """Collects ``(input batch, scored batch)`` pairs and writes them as log segments.

    Args:
        root: the folder holding ``predictions/`` (the workspace).
        model: the model's name (the ``model=`` partition).
        version: the version that scored the rows.
        job_id: the ``request_id`` of every row.
        started: the job's start (every row's ``timestamp``).
        classes: class labels, in the order of the scored batch's ``proba_*`` columns.
    """

    def __init__(
        self,
        root: Path,
        model: str,
        version: int,
        job_id: str,
        started: datetime,
        classes: tuple[str, ...] = (),
    ) -> None:
        self._folder = segment_folder(root, PREDICTIONS_AREA, model, started)
        self._version = str(version)
        self._job_id = job_id
        self._started = started
        self._classes = classes
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._row = 0
        self.segments: list[Path] = []

    def add(self, features: pa.RecordBatch, scored: pa.RecordBatch, latency_ms: float) -> None:
        """Log one scored batch: ``features`` are the model's inputs, in the same row order."""
        import pyarrow as pa

        rows = scored.num_rows
        columns: dict[str, pa.Array] = {
            "request_id": pa.repeat(pa.scalar(self._job_id, pa.string()), rows),
            "row": pa.array(range(self._row, self._row + rows), pa.int32()),
            "timestamp": pa.repeat(pa.scalar(self._started, pa.timestamp("us", tz="UTC")), rows),
            "version": pa.repeat(pa.scalar(self._version, pa.string()), rows),
            "protocol": pa.repeat(pa.scalar("batch", pa.string()), rows),
            "status": pa.repeat(pa.scalar(200, pa.int16()), rows),
            "latency_ms": pa.repeat(pa.scalar(latency_ms / max(rows, 1), pa.float64()), rows),
        }
        for name in features.schema.names:
            columns[INPUT_PREFIX + name] = features.column(name)
        columns["prediction"] = scored.column("prediction")
        proba = [n for n in scored.schema.names if n.startswith("proba_")]
        if proba:
            import numpy as np

            matrix = np.column_stack([scored.column(n).to_numpy() for n in proba]).astype("f8")
            offsets = pa.array(np.arange(0, matrix.size + 1, len(proba)), pa.int32())
            columns["proba"] = pa.ListArray.from_arrays(offsets, pa.array(matrix.ravel()))
        self._row += rows
        self._pending.append(pa.table(columns))
        self._pending_rows += rows
        if self._pending_rows >= SEGMENT_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write what was added since the last flush as one segment."""
        if not self._pending:
            return
        import pyarrow as pa

        table = pa.concat_tables(self._pending)
        if self._classes and "proba" in table.schema.names:
            classes = json.dumps(list(self._classes)).encode()
            table = table.replace_schema_metadata({CLASSES_METADATA_KEY: classes})
        self.segments.append(write_segment(self._folder, table))
        self._pending, self._pending_rows = [], 0
