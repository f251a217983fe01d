"""The nouns of pipelines: a run of a pipeline, its step runs, their outputs and lineage.

A :class:`StepRun` records the cache key it was looked up under and the parts the key was
made of (:attr:`StepRun.key_parts`: the code digest of each function, the parameters, the
digests of the inputs and of what the step declared it reads), so ``shipyard pipeline
explain`` can say which part changed between two runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "LineageEdge",
    "PipelineRun",
    "PipelineStatus",
    "StepOutput",
    "StepRun",
    "StepStatus",
]


class PipelineStatus(StrEnum):
    """Where a pipeline run is."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class StepStatus(StrEnum):
    """Where a step run is. ``CACHED``: its outputs were reused, it did not run."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    CACHED = "CACHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"
    """An upstream step failed or the run was cancelled before this one started."""

    @property
    def done(self) -> bool:
        """Whether the step's outputs exist (it ran, or they were reused)."""
        return self in (StepStatus.FINISHED, StepStatus.CACHED)


@dataclass(frozen=True)
class StepOutput:
    """One output of a step, stored in the artifact store.

    Attributes:
        name: the output's name (``output`` for a step with one output).
        digest: digest of the stored object (a manifest's digest for a folder).
        kind: ``file`` or ``dir``.
        materializer: the materializer that wrote it, with its version (``parquet/1``).
        type: the Python type it was made from (``pandas.DataFrame``).
        size: bytes stored.
    """

    name: str
    digest: str
    kind: str
    materializer: str
    type: str
    size: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": self.digest,
            "kind": self.kind,
            "materializer": self.materializer,
            "type": self.type,
            "size": self.size,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepOutput:
        return cls(
            name=data["name"],
            digest=data["digest"],
            kind=data["kind"],
            materializer=data["materializer"],
            type=data["type"],
            size=int(data.get("size", 0)),
        )


@dataclass(frozen=True)
class PipelineRun:
    """One run of a pipeline."""

    run_id: str
    pipeline: str
    source: str
    """Where the pipeline came from: ``file.py:name`` or ``module:name``."""
    params: dict[str, Any]
    status: PipelineStatus
    executor: str
    user: str
    start_time: int
    end_time: int | None = None
    error: str = ""
    owner: str | None = None
    heartbeat: int | None = None


@dataclass(frozen=True)
class StepRun:
    """One step of a pipeline run."""

    step_run_id: str
    run_id: str
    name: str
    position: int
    function: str
    status: StepStatus
    upstream: tuple[str, ...] = ()
    cache_hit: bool = False
    cache_key: str = ""
    key_parts: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[StepOutput, ...] = ()
    reused_from: str | None = None
    attempts: int = 0
    start_time: int | None = None
    end_time: int | None = None
    logs_digest: str | None = None
    error: str = ""

    @property
    def duration_ms(self) -> int | None:
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time


@dataclass(frozen=True)
class LineageEdge:
    """A step run read a dataset version, or made a tracking run or a model version.

    Attributes:
        kind: ``dataset_version`` (ref ``name@3``), ``run`` (a run id) or ``model_version``
            (``name@2``).
        direction: ``read`` or ``made``.
    """

    step_run_id: str
    run_id: str
    kind: str
    ref: str
    direction: str
