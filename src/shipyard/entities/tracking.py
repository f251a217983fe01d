"""The nouns of experiment tracking: experiments, runs, metrics and run artifacts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "ArtifactRecord",
    "Experiment",
    "JournalSegment",
    "LoggedModel",
    "Metric",
    "MetricRecord",
    "Run",
    "RunOwner",
    "RunStatus",
]


class RunStatus(StrEnum):
    """Where a run is in its life. Only ``RUNNING`` is not terminal.

    ``CRASHED`` means the process that owned the run died without ending it (seen from a
    dead pid on this machine, or a heartbeat that stopped); the run's end time is its last
    sign of life. A crashed run whose process turns out to be alive after all (it was
    suspended) is ``RUNNING`` again at its next heartbeat.
    """

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    CRASHED = "CRASHED"

    @property
    def is_terminal(self) -> bool:
        return self is not RunStatus.RUNNING


@dataclass(frozen=True, slots=True)
class Experiment:
    """A named group of runs (one question you are trying to answer)."""

    experiment_id: int
    name: str
    created_at: int
    """Creation time in milliseconds since the Unix epoch."""
    description: str = ""
    deleted_at: int | None = None
    """When it was deleted (restorable; its runs are kept), or ``None``."""


@dataclass(frozen=True, slots=True)
class Metric:
    """One measured value of a run at a step. ``value`` may be NaN or ±inf."""

    key: str
    value: float
    step: int
    timestamp: int
    """Milliseconds since the Unix epoch."""
    run_id: str = ""

    def __repr__(self) -> str:
        return (
            f"Metric(key={self.key!r}, value={format_metric(self.value)}, step={self.step}, "
            f"timestamp={self.timestamp}, run_id={self.run_id!r})"
        )


@dataclass(frozen=True, slots=True)
class RunOwner:
    """The process logging to a run: where it runs and which process it is.

    ``process_start`` tells a process from a later one that reuses its pid (on Linux, the
    start time in clock ticks since boot; empty where the system does not say).
    """

    host: str
    pid: int
    process_start: str = ""

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


MetricRecord = tuple[str, float, int, int]
"""One logged metric of a known run: ``(key, value, step, timestamp)``."""


@dataclass(frozen=True, slots=True)
class JournalSegment:
    """Metrics from one segment of one process's write-ahead journal for a run.

    The store applies a segment at most once: it remembers, per journal, the highest segment
    applied, in the same transaction as the metrics. Metrics travel as plain tuples, which
    keeps ``log_metric`` cheap.
    """

    journal_id: str
    run_id: str
    segment: int
    metrics: tuple[MetricRecord, ...]


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """A file or folder logged to a run: its path in the run and its digest in the store."""

    path: str
    digest: str
    size: int
    is_dir: bool = False
    file_count: int = 1


@dataclass(frozen=True, slots=True)
class Run:
    """One execution of code that logs params, metrics, tags and artifacts.

    ``metrics`` holds each metric's latest value (highest step, then latest timestamp);
    the full history comes from ``get_metric_history``.
    """

    run_id: str
    experiment_id: int
    name: str
    status: RunStatus
    start_time: int
    end_time: int | None = None
    parent_run_id: str | None = None
    user: str = ""
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    owner: RunOwner | None = None
    """The process that logs to the run, when it was started by ``start_run``."""
    heartbeat: int | None = None
    """When the owner last said it was alive (ms since the epoch)."""
    deleted_at: int | None = None
    """When it was deleted (hidden from searches, restorable), or ``None``."""

    @property
    def duration_ms(self) -> int | None:
        """Wall time from start to end in milliseconds, or ``None`` while running."""
        return None if self.end_time is None else self.end_time - self.start_time

    @property
    def git_commit(self) -> str | None:
        """The git commit of the code that ran, when it ran inside a git checkout."""
        return self.tags.get(SYSTEM_TAG_GIT_COMMIT)


def format_metric(value: float) -> str:
    """Show a metric value the way users read it: ``nan``, ``inf``, ``-inf`` or ``repr``."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


SYSTEM_TAG_PREFIX = "shipyard."
SYSTEM_TAG_GIT_COMMIT = "shipyard.git.commit"
SYSTEM_TAG_GIT_DIRTY = "shipyard.git.dirty"
SYSTEM_TAG_GIT_DIFF_DIGEST = "shipyard.git.diff_digest"
SYSTEM_TAG_PYTHON = "shipyard.python"
SYSTEM_TAG_SOURCE = "shipyard.source"


@dataclass(frozen=True, slots=True)
class LoggedModel:
    """A model folder logged by MLflow 3's ``log_model`` before any registration: its own id,
    the experiment and (usually) the run it was logged from, and its files by digest."""

    model_id: str
    experiment_id: int
    name: str
    status: str
    """``PENDING`` while its files upload, then ``READY`` (or ``FAILED``)."""
    created_at: int
    updated_at: int
    run_id: str | None = None
    model_type: str = ""
    user: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
