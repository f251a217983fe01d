"""Plain, typed dataclasses for Shipyard's nouns. No I/O, no imports of other floors."""

from shipyard.entities.data import (
    ColumnProfile,
    Dataset,
    DatasetProfile,
    DatasetVersion,
    Finding,
    Histogram,
    Severity,
)
from shipyard.entities.tracking import (
    SYSTEM_TAG_GIT_COMMIT,
    SYSTEM_TAG_GIT_DIFF_DIGEST,
    SYSTEM_TAG_GIT_DIRTY,
    SYSTEM_TAG_PREFIX,
    SYSTEM_TAG_PYTHON,
    SYSTEM_TAG_SOURCE,
    ArtifactRecord,
    Experiment,
    Metric,
    Run,
    RunStatus,
    format_metric,
)

__all__ = [
    "SYSTEM_TAG_GIT_COMMIT",
    "SYSTEM_TAG_GIT_DIFF_DIGEST",
    "SYSTEM_TAG_GIT_DIRTY",
    "SYSTEM_TAG_PREFIX",
    "SYSTEM_TAG_PYTHON",
    "SYSTEM_TAG_SOURCE",
    "ArtifactRecord",
    "ColumnProfile",
    "Dataset",
    "DatasetProfile",
    "DatasetVersion",
    "Experiment",
    "Finding",
    "Histogram",
    "Metric",
    "Run",
    "RunStatus",
    "Severity",
    "format_metric",
]
