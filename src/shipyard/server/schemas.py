"""Request and response bodies of ``/api/v1`` (pydantic): the OpenAPI document is made of them.

Times are epoch milliseconds, as everywhere in Shipyard. Listings are pages: ``items`` and a
``next_page_token`` to pass back (absent on the last page).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shipyard.entities import (
    ArtifactRecord,
    AuditEntry,
    Experiment,
    Metric,
    ModelVersion,
    RegisteredModel,
    Run,
)
from shipyard.errors import InvalidArgumentError
from shipyard.store.wire import json_float

__all__ = [
    "AliasIn",
    "ArtifactIn",
    "ArtifactOut",
    "ArtifactsIn",
    "AuditOut",
    "CrashedIn",
    "ErrorBody",
    "ExperimentIn",
    "ExperimentOut",
    "GovernedIn",
    "HeartbeatIn",
    "JournalIn",
    "MetricIn",
    "MetricOut",
    "MetricsIn",
    "ModelOut",
    "OwnerIn",
    "Page",
    "ParamsIn",
    "ReviewIn",
    "RunCreate",
    "RunEnd",
    "RunOut",
    "SearchRuns",
    "SegmentIn",
    "TagsIn",
    "UserIn",
    "UserOut",
    "VersionIn",
    "VersionOut",
    "decode_token",
    "encode_token",
]

T = TypeVar("T")
MAX_PAGE = 1000
MAX_HISTORY_PAGE = 50_000
"""A metric history is read in pages this large at most (points are small)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every error: what went wrong, in words, and the field at fault (if one is)."""

    code: str = Field(examples=["not_found"])
    message: str
    field: str | None = None


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_page_token: str | None = None


_I64, _I32 = 2**63, 2**31
"""Integers the stores hold: times, sizes and steps are 64-bit; ids and counts 32-bit."""

PAGE_TOKEN_PATTERN = r"^o[0-9]{1,15}$"  # noqa: S105 - a page token, not a secret
"""What a page token looks like (declared in the OpenAPI document, so clients and fuzzers
know which strings are tokens at all)."""


def encode_token(offset: int) -> str:
    return f"o{offset}"


def decode_token(token: str | None) -> int:
    """The offset a page token stands for (0 for none)."""
    if not token:
        return 0
    if re.fullmatch(PAGE_TOKEN_PATTERN, token) is None:
        raise InvalidArgumentError("page_token is not a token this server gave")
    return int(token[1:])


class ExperimentIn(_Strict):
    name: str = Field(min_length=1, max_length=256)
    description: str = Field(default="", max_length=10_000)


class ExperimentOut(BaseModel):
    experiment_id: int
    name: str
    created_at: int
    description: str = ""
    deleted_at: int | None = None

    @classmethod
    def of(cls, e: Experiment) -> ExperimentOut:
        return cls(
            experiment_id=e.experiment_id,
            name=e.name,
            created_at=e.created_at,
            description=e.description,
            deleted_at=e.deleted_at,
        )


class OwnerIn(_Strict):
    host: str = Field(min_length=1, max_length=256)
    pid: int = Field(ge=0, lt=_I64)
    process_start: str = Field(default="", max_length=64)


class RunCreate(_Strict):
    owner: OwnerIn | None = Field(default=None, description="The logging process, if watched")
    experiment_id: int | None = Field(default=None, ge=0, lt=_I32)
    experiment_name: str | None = Field(default=None, min_length=1, max_length=256)
    name: str | None = Field(default=None, max_length=256)
    parent_run_id: str | None = Field(default=None, max_length=32)
    start_time: int | None = Field(default=None, ge=0, lt=_I64)
    tags: dict[str, str] = Field(default_factory=dict)


class RunEnd(_Strict):
    status: str = Field(examples=["FINISHED"])
    end_time: int | None = Field(default=None, ge=0, lt=_I64)
    only_active: bool = Field(default=True, description="Refuse a run already ended")


class OwnerOut(BaseModel):
    host: str
    pid: int
    process_start: str = ""


class RunOut(BaseModel):
    run_id: str
    experiment_id: int
    name: str
    status: str
    start_time: int
    end_time: int | None = None
    parent_run_id: str | None = None
    user: str = ""
    params: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float | str | None] = Field(
        default_factory=dict, description='null: NaN; "Infinity"/"-Infinity"'
    )
    tags: dict[str, str] = Field(default_factory=dict)
    owner: OwnerOut | None = Field(default=None, description="The process that logs to it")
    heartbeat: int | None = None
    deleted_at: int | None = None

    @classmethod
    def of(cls, run: Run) -> RunOut:
        metrics = {k: json_float(v) for k, v in run.metrics.items()}
        owner = run.owner
        return cls(
            run_id=run.run_id,
            experiment_id=run.experiment_id,
            name=run.name,
            status=run.status.value,
            start_time=run.start_time,
            end_time=run.end_time,
            parent_run_id=run.parent_run_id,
            user=run.user,
            params=dict(run.params),
            metrics=metrics,
            tags=dict(run.tags),
            owner=None
            if owner is None
            else OwnerOut(host=owner.host, pid=owner.pid, process_start=owner.process_start),
            heartbeat=run.heartbeat,
            deleted_at=run.deleted_at,
        )


class ParamsIn(_Strict):
    params: dict[str, Any] = Field(min_length=1, max_length=100)


class TagsIn(_Strict):
    tags: dict[str, Any] = Field(min_length=1, max_length=100)


class MetricIn(_Strict):
    key: str = Field(min_length=1, max_length=250)
    value: float | None = Field(description='null: NaN; "Infinity"/"-Infinity" accepted')
    step: int = Field(default=0, ge=-_I64, lt=_I64)
    timestamp: int | None = Field(default=None, ge=0, lt=_I64)


class MetricsIn(_Strict):
    metrics: list[MetricIn] = Field(min_length=1, max_length=1000)


class MetricOut(BaseModel):
    key: str
    value: float | str | None
    step: int
    timestamp: int

    @classmethod
    def of(cls, m: Metric) -> MetricOut:
        return cls(
            key=m.key,
            value=json_float(m.value),
            step=m.step,
            timestamp=m.timestamp,
        )


class SearchRuns(_Strict):
    experiment_ids: list[Annotated[int, Field(ge=0, lt=_I32)]] = Field(default_factory=list)
    experiment_names: list[str] = Field(default_factory=list)
    filter: str = Field(default="", max_length=10_000, examples=["metrics.auc > 0.9"])
    order_by: list[str] = Field(default_factory=list, max_length=10)
    max_results: int = Field(default=100, ge=1, le=MAX_PAGE)
    page_token: str | None = Field(default=None, pattern=PAGE_TOKEN_PATTERN)
    offset: int | None = Field(default=None, ge=0, lt=_I64, description="Instead of a page token")
    lifecycle: Literal["active", "deleted", "all"] = "active"


class ExperimentRename(_Strict):
    name: str = Field(min_length=1, max_length=256)


class RunIdsIn(_Strict):
    run_ids: list[Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]] = Field(max_length=10_000)


class ArtifactOut(BaseModel):
    path: str
    digest: str
    size: int
    is_dir: bool = False
    file_count: int = 1

    @classmethod
    def of(cls, a: ArtifactRecord) -> ArtifactOut:
        return cls(
            path=a.path, digest=a.digest, size=a.size, is_dir=a.is_dir, file_count=a.file_count
        )


class ModelIn(_Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)


class ModelOut(BaseModel):
    name: str
    created_at: int
    created_by: str
    description: str = ""
    governed: bool = False
    aliases: dict[str, int] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def of(cls, m: RegisteredModel) -> ModelOut:
        return cls(
            name=m.name,
            created_at=m.created_at,
            created_by=m.created_by,
            description=m.description,
            governed=m.governed,
            aliases=dict(m.aliases),
            tags=dict(m.tags),
        )


class VersionOut(BaseModel):
    model: str
    version: int
    ref: str
    digest: str
    flavor: str
    created_at: int
    created_by: str
    run_id: str | None = None
    source: str = ""
    description: str = ""
    review: str = "none"
    tags: dict[str, str] = Field(default_factory=dict)
    aliases: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, v: ModelVersion) -> VersionOut:
        return cls(
            model=v.model,
            version=v.version,
            ref=v.ref,
            digest=v.digest,
            flavor=v.flavor,
            created_at=v.created_at,
            created_by=v.created_by,
            run_id=v.run_id,
            source=v.source,
            description=v.description,
            review=v.review.value,
            tags=dict(v.tags),
            aliases=list(v.aliases),
        )


class VersionIn(_Strict):
    digest: str = Field(pattern=r"^[0-9a-f]{64}$", description="The model folder's manifest")
    flavor: str = Field(min_length=1, max_length=64)
    run_id: str | None = Field(default=None, max_length=32)
    source: str = Field(default="", max_length=1000)
    description: str = Field(default="", max_length=10_000)


class ReviewIn(_Strict):
    comment: str = Field(default="", max_length=10_000)


class AliasIn(_Strict):
    version: str = Field(description="A number, `latest` or another alias", max_length=64)


class GovernedIn(_Strict):
    governed: bool


class UserIn(_Strict):
    role: str = Field(examples=["member"])


class UserOut(BaseModel):
    name: str
    role: str
    created_at: int


class AuditOut(BaseModel):
    seq: int
    at: int
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    prev_hash: str = ""
    hash: str

    @classmethod
    def of(cls, e: AuditEntry) -> AuditOut:
        return cls(
            seq=e.seq,
            at=e.at,
            actor=e.actor,
            action=e.action,
            target=e.target,
            details=dict(e.details),
            prev_hash=e.prev_hash,
            hash=e.hash,
        )


class TagIn(_Strict):
    value: str = Field(max_length=5000)


class VersionOfRunOut(BaseModel):
    model: str
    version: int
    run_id: str


class ArtifactIn(_Strict):
    path: str = Field(
        min_length=1, max_length=1000, description="Where in the run, e.g. plots/roc.png"
    )
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0, lt=_I64)
    is_dir: bool = False
    file_count: int = Field(default=1, ge=0, lt=_I32)


class ArtifactsIn(_Strict):
    artifacts: list[ArtifactIn] = Field(min_length=1, max_length=1000)


class SegmentIn(_Strict):
    journal_id: str = Field(min_length=1, max_length=64)
    run_id: str = Field(min_length=1, max_length=32)
    segment: int = Field(ge=0, lt=_I64)
    metrics: list[tuple[str, float | None, int, int]] = Field(max_length=100_000)


class JournalIn(_Strict):
    segments: list[SegmentIn] = Field(min_length=1, max_length=1000)


class HeartbeatIn(_Strict):
    run_ids: list[str] = Field(max_length=10_000)
    owner: OwnerIn
    now: int = Field(ge=0, lt=_I64)


class CrashedIn(_Strict):
    heartbeat: int | None = Field(default=None, ge=0, lt=_I64)
    now: int = Field(ge=0, lt=_I64)
