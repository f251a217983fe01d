"""``/api/v1`` for pipelines, tuning and continuous training: pipeline runs and their steps,
the step cache, pipeline lineage, Optuna's journal of studies, and trigger events.

What a pipeline runner, a tuning worker or an automator records locally goes through here
when it works against a server (``SHIPYARD_SERVER``), each call the store's ``Backend``
method of the same name. The caller is who acts: a pipeline run's user and the actor of a
trigger event's log entries are the caller's, never what the client names. The step cache
keeps its first-writer-wins race (``stored: false`` for the loser), and an event changes only
from the revision it was read at (409 otherwise).

Free-form values — a pipeline's parameters, a step's key parts, an event's gate, approval,
rollout and details — are JSON objects in which a non-finite float is ``{"$float": "NaN"}``
(or ``"Infinity"``, ``"-Infinity"``), so that they come back exactly as they were stored.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from shipyard.entities import (
    AutomationEvent,
    AutomationLogEntry,
    AutomationState,
    LineageEdge,
    PipelineRun,
    PipelineStatus,
    Role,
    StepOutput,
    StepRun,
    StepStatus,
)
from shipyard.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from shipyard.server.auth import Identity, identity, role
from shipyard.server.deps import Store
from shipyard.server.errors import error_responses
from shipyard.store.rest_pipelines import from_wire, to_wire

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["pipelines"], responses=error_responses())
_READ, _WRITE = role(Role.VIEWER), role(Role.MEMBER)
_Caller = Annotated[Identity, Depends(identity)]

_NO_NUL = r"^[^\x00]*$"  # PostgreSQL's text holds no NUL
_LONG = 2**22
_ID = r"^[0-9a-f]{32}$"
_DIGEST = r"^[0-9a-f]{64}$"
_EVENT_ID = r"^[A-Za-z0-9_.\-]{1,64}$"
_MANY = 10_000


_Time = Annotated[int, Field(ge=0, lt=2**63, description="ms since the epoch")]
_Size = Annotated[int, Field(ge=0, lt=2**63, description="bytes")]
_Count = Annotated[int, Field(ge=0, lt=2**31)]


def _text(max_length: int, **kwargs: Any) -> Any:
    """A string field of at most ``max_length`` characters (a column's size), without NUL."""
    return Field(max_length=max_length, pattern=_NO_NUL, **kwargs)


def _path(max_length: int, description: str) -> Any:
    return Path(max_length=max_length, pattern=_NO_NUL, description=description)


def _query(max_length: int, description: str | None = None) -> Any:
    return Query(max_length=max_length, pattern=_NO_NUL, description=description)


_RunPrefix = Annotated[str, _path(32, "A pipeline run's id or a unique prefix of it")]
_RunId = Annotated[str, _path(128, "A pipeline run's id")]
_CacheKey = Annotated[str, Path(pattern=_DIGEST, description="A step's cache key (SHA-256)")]
_EventRef = Annotated[str, _path(64, "A trigger event's id (or a unique prefix, to read)")]
_Automation = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$", description="An automation")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# pipeline runs and their steps -------------------------------------------------------------


class StepOutputIn(_Strict):
    name: str = _text(200, min_length=1)
    digest: str = Field(pattern=_DIGEST, description="The stored object (a folder's manifest)")
    kind: Literal["file", "dir"]
    materializer: str = _text(200)
    type: str = _text(500)
    size: _Size = 0

    def entity(self) -> StepOutput:
        return StepOutput(
            name=self.name,
            digest=self.digest,
            kind=self.kind,
            materializer=self.materializer,
            type=self.type,
            size=self.size,
        )


class StepOutputOut(BaseModel):
    name: str
    digest: str
    kind: str
    materializer: str
    type: str
    size: int = 0


class PipelineRunIn(_Strict):
    run_id: str = Field(pattern=_ID)
    pipeline: str = _text(200, min_length=1)
    source: str = _text(1000)
    params: dict[str, Any] = Field(default_factory=dict, description="JSON; see the module")
    status: PipelineStatus = PipelineStatus.RUNNING
    executor: str = _text(32)
    start_time: _Time
    end_time: _Time | None = None
    error: str = _text(_LONG, default="")
    owner: str | None = _text(200, default=None, description="The running process")
    heartbeat: _Time | None = None

    def entity(self, user: str) -> PipelineRun:
        return PipelineRun(
            run_id=self.run_id,
            pipeline=self.pipeline,
            source=self.source,
            params=from_wire(self.params),
            status=self.status,
            executor=self.executor,
            user=user,
            start_time=self.start_time,
            end_time=self.end_time,
            error=self.error,
            owner=self.owner,
            heartbeat=self.heartbeat,
        )


class PipelineRunOut(BaseModel):
    run_id: str
    pipeline: str
    source: str
    params: dict[str, Any]
    status: PipelineStatus
    executor: str
    user: str
    start_time: int
    end_time: int | None = None
    error: str = ""
    owner: str | None = None
    heartbeat: int | None = None

    @classmethod
    def of(cls, run: PipelineRun) -> PipelineRunOut:
        return cls(
            run_id=run.run_id,
            pipeline=run.pipeline,
            source=run.source,
            params=to_wire(run.params),
            status=run.status,
            executor=run.executor,
            user=run.user,
            start_time=run.start_time,
            end_time=run.end_time,
            error=run.error,
            owner=run.owner,
            heartbeat=run.heartbeat,
        )


class StepRunIn(_Strict):
    step_run_id: str = Field(pattern=_ID)
    run_id: str = Field(pattern=_ID)
    name: str = _text(200, min_length=1)
    position: _Count
    function: str = _text(500)
    status: StepStatus
    upstream: list[Annotated[str, _text(200)]] = Field(default_factory=list, max_length=_MANY)
    cache_hit: bool = False
    cache_key: str = Field(default="", pattern=r"^([0-9a-f]{64})?$")
    key_parts: dict[str, Any] = Field(default_factory=dict, description="JSON; see the module")
    outputs: list[StepOutputIn] = Field(default_factory=list, max_length=_MANY)
    reused_from: str | None = Field(default=None, pattern=_ID)
    attempts: _Count = 0
    start_time: _Time | None = None
    end_time: _Time | None = None
    logs_digest: str | None = Field(default=None, pattern=_DIGEST)
    error: str = _text(_LONG, default="")

    def entity(self) -> StepRun:
        return StepRun(
            step_run_id=self.step_run_id,
            run_id=self.run_id,
            name=self.name,
            position=self.position,
            function=self.function,
            status=self.status,
            upstream=tuple(self.upstream),
            cache_hit=self.cache_hit,
            cache_key=self.cache_key,
            key_parts=from_wire(self.key_parts),
            outputs=tuple(o.entity() for o in self.outputs),
            reused_from=self.reused_from,
            attempts=self.attempts,
            start_time=self.start_time,
            end_time=self.end_time,
            logs_digest=self.logs_digest,
            error=self.error,
        )


class StepRunOut(BaseModel):
    step_run_id: str
    run_id: str
    name: str
    position: int
    function: str
    status: StepStatus
    upstream: list[str]
    cache_hit: bool
    cache_key: str
    key_parts: dict[str, Any]
    outputs: list[StepOutputOut]
    reused_from: str | None = None
    attempts: int = 0
    start_time: int | None = None
    end_time: int | None = None
    logs_digest: str | None = None
    error: str = ""

    @classmethod
    def of(cls, step: StepRun) -> StepRunOut:
        return cls(
            step_run_id=step.step_run_id,
            run_id=step.run_id,
            name=step.name,
            position=step.position,
            function=step.function,
            status=step.status,
            upstream=list(step.upstream),
            cache_hit=step.cache_hit,
            cache_key=step.cache_key,
            key_parts=to_wire(step.key_parts),
            outputs=[StepOutputOut(**o.to_dict()) for o in step.outputs],
            reused_from=step.reused_from,
            attempts=step.attempts,
            start_time=step.start_time,
            end_time=step.end_time,
            logs_digest=step.logs_digest,
            error=step.error,
        )


class PipelineRunCreate(_Strict):
    run: PipelineRunIn
    steps: list[StepRunIn] = Field(default_factory=list, max_length=_MANY)


class StepRunsIn(_Strict):
    steps: list[StepRunIn] = Field(max_length=_MANY)


class FinishIn(_Strict):
    status: PipelineStatus
    end_time: _Time
    error: str = _text(_LONG, default="")


class NowIn(_Strict):
    now: _Time


@router.post(
    "/pipeline-runs",
    status_code=204,
    summary="Record a new pipeline run and all its steps, in one transaction",
    **_WRITE,
)
def create_pipeline_run(body: PipelineRunCreate, store: Store, caller: _Caller) -> None:
    run = body.run.entity(user=caller.user)
    steps = [s.entity() for s in body.steps]
    if any(s.run_id != run.run_id for s in steps):
        raise InvalidArgumentError(f"steps: every step must be of run {run.run_id}")
    if len({s.name for s in steps}) < len(steps):
        raise InvalidArgumentError("steps: two steps share a name")
    if len({s.step_run_id for s in steps}) < len(steps):
        raise InvalidArgumentError("steps: two steps share a step_run_id")
    # The store's own answer to a taken id is a failed INSERT: say what it is instead.
    try:
        store.get_pipeline_run(run.run_id)
    except NotFoundError:
        pass
    else:
        raise AlreadyExistsError(f"pipeline run {run.run_id} exists")
    for step in steps:
        try:
            store.get_step_run(step.step_run_id)
        except NotFoundError:
            continue
        raise AlreadyExistsError(f"step run {step.step_run_id} exists")
    store.create_pipeline_run(run, steps)


@router.put(
    "/step-runs",
    status_code=204,
    summary="Overwrite step runs with their new state, in one transaction",
    **_WRITE,
)
def save_step_runs(body: StepRunsIn, store: Store) -> None:
    steps = [s.entity() for s in body.steps]
    for step in steps:
        stored = store.get_step_run(step.step_run_id)
        if (stored.run_id, stored.name) != (step.run_id, step.name):
            raise InvalidArgumentError(
                f"step run {step.step_run_id} is step {stored.name!r} of run {stored.run_id}: "
                "a step's run and name do not change"
            )
    store.save_step_runs(steps)


@router.post(
    "/pipeline-runs/{run_id}/finish",
    status_code=204,
    summary="Set a run's final status (its steps still pending or running: skipped/cancelled)",
    **_WRITE,
)
def finish_pipeline_run(run_id: _RunId, body: FinishIn, store: Store) -> None:
    store.finish_pipeline_run(run_id, body.status, end_time=body.end_time, error=body.error)


@router.post(
    "/pipeline-runs/{run_id}/heartbeat",
    status_code=204,
    summary="The process running the pipeline run is alive",
    **_WRITE,
)
def beat_pipeline_run(run_id: _RunId, body: NowIn, store: Store) -> None:
    store.beat_pipeline_run(run_id, body.now)


@router.get(
    "/pipeline-runs",
    response_model=list[PipelineRunOut],
    summary="Pipeline runs, newest first",
    **_READ,
)
def list_pipeline_runs(
    store: Store,
    pipeline: Annotated[str | None, _query(200, "Of one pipeline")] = None,
    limit: Annotated[int, Query(ge=0, lt=2**31)] = 50,
    before: Annotated[int | None, Query(ge=0, lt=2**63, description="Started before (ms)")] = None,
) -> list[PipelineRunOut]:
    found = store.list_pipeline_runs(pipeline, limit=limit, before=before)
    return [PipelineRunOut.of(r) for r in found]


@router.get(
    "/pipeline-runs/{run_id}",
    response_model=PipelineRunOut,
    summary="A pipeline run (an id prefix works)",
    **_READ,
)
def get_pipeline_run(run_id: _RunPrefix, store: Store) -> PipelineRunOut:
    return PipelineRunOut.of(store.get_pipeline_run(run_id))


@router.get(
    "/pipeline-runs/{run_id}/steps",
    response_model=list[StepRunOut],
    summary="A pipeline run's steps, in the order the pipeline called them",
    **_READ,
)
def list_step_runs(run_id: _RunId, store: Store) -> list[StepRunOut]:
    return [StepRunOut.of(s) for s in store.list_step_runs(run_id)]


@router.get("/step-runs/{ref}", response_model=StepRunOut, summary="A step run", **_READ)
def get_step_run(
    ref: Annotated[str, _path(128, "The step run's id")],
    store: Store,
) -> StepRunOut:
    return StepRunOut.of(store.get_step_run(ref))


# the step cache ----------------------------------------------------------------------------


class CachedStepOut(BaseModel):
    outputs: list[StepOutputOut]
    step_run_id: str = Field(description="The step run that made them")


class CachedStepIn(_Strict):
    outputs: list[StepOutputIn] = Field(max_length=_MANY)
    step_run_id: str = Field(pattern=_ID)
    now: _Time


class StoredOut(BaseModel):
    stored: bool = Field(description="False: someone stored outputs under this key first")


@router.get(
    "/step-cache/{key}",
    response_model=CachedStepOut | None,
    summary="The outputs stored under a cache key (null: none)",
    **_READ,
)
def get_cached_step(key: _CacheKey, store: Store) -> CachedStepOut | None:
    found = store.get_cached_step(key)
    if found is None:
        return None
    outputs, step_run_id = found
    return CachedStepOut(
        outputs=[StepOutputOut(**o.to_dict()) for o in outputs], step_run_id=step_run_id
    )


@router.put(
    "/step-cache/{key}",
    response_model=StoredOut,
    summary="Store outputs under a cache key unless someone already did (the first wins)",
    **_WRITE,
)
def put_cached_step(key: _CacheKey, body: CachedStepIn, store: Store) -> StoredOut:
    outputs = [o.entity() for o in body.outputs]
    return StoredOut(stored=store.put_cached_step(key, outputs, body.step_run_id, now=body.now))


@router.delete(
    "/step-cache/{key}",
    status_code=204,
    summary="Drop a cache entry (its outputs are gone from the artifact store)",
    **_WRITE,
)
def forget_cached_step(key: _CacheKey, store: Store) -> None:
    store.forget_cached_step(key)


# pipeline lineage --------------------------------------------------------------------------


class EdgeIn(_Strict):
    step_run_id: str = Field(pattern=_ID)
    run_id: str = Field(pattern=_ID)
    kind: str = Field(
        pattern=r"^[a-z_]{1,32}$", description="dataset_version, run or model_version"
    )
    ref: str = _text(300, min_length=1, description="name@3, a run id, name@2")
    direction: Literal["read", "made"]


class EdgeOut(BaseModel):
    step_run_id: str
    run_id: str
    kind: str
    ref: str
    direction: str


class EdgesIn(_Strict):
    edges: list[EdgeIn] = Field(max_length=_MANY)


@router.post(
    "/pipeline-lineage",
    status_code=204,
    summary="Record lineage edges of step runs (an edge recorded twice is kept once)",
    **_WRITE,
)
def add_pipeline_lineage(body: EdgesIn, store: Store) -> None:
    store.add_pipeline_lineage(
        [LineageEdge(e.step_run_id, e.run_id, e.kind, e.ref, e.direction) for e in body.edges]
    )


@router.get(
    "/pipeline-lineage",
    response_model=list[EdgeOut],
    summary="Lineage edges of a pipeline run, or those naming a kind and ref",
    **_READ,
)
def pipeline_lineage(
    store: Store,
    run_id: Annotated[str | None, _query(128)] = None,
    kind: Annotated[str | None, _query(32)] = None,
    ref: Annotated[str | None, _query(300)] = None,
) -> list[EdgeOut]:
    return [
        EdgeOut(
            step_run_id=e.step_run_id,
            run_id=e.run_id,
            kind=e.kind,
            ref=e.ref,
            direction=e.direction,
        )
        for e in store.pipeline_lineage(run_id=run_id, kind=kind, ref=ref)
    ]


# tuning: Optuna's journal ------------------------------------------------------------------


class LogsIn(_Strict):
    logs: list[Annotated[str, Field(max_length=2**20)]] = Field(
        max_length=_MANY, description="JSON objects, appended in this order"
    )


class AppendedOut(BaseModel):
    first: int = Field(description="The log number of the first")


@router.post(
    "/tuning-journal",
    response_model=AppendedOut,
    summary="Append logs to the journal of tuning studies, in order",
    **_WRITE,
)
def append_tuning_logs(body: LogsIn, store: Store) -> AppendedOut:
    for number, log in enumerate(body.logs):
        try:
            parsed = json.loads(log)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            # Every worker replays the journal: one bad log would break every study.
            raise InvalidArgumentError(f"logs.{number}: not a JSON object")
    return AppendedOut(first=store.append_tuning_logs(body.logs))


@router.get(
    "/tuning-journal",
    response_model=list[str],
    summary="The journal's logs from log number `start` on, in order",
    **_READ,
)
def read_tuning_logs(
    store: Store, start: Annotated[int, Query(ge=0, lt=2**63, description="A log number")] = 0
) -> list[str]:
    return store.read_tuning_logs(start)


# continuous training -----------------------------------------------------------------------


class ArmedOut(BaseModel):
    armed_at: int = Field(description="When the automation was first seen (ms)")


class AutomationEventIn(_Strict):
    event_id: str = Field(pattern=_EVENT_ID)
    automation: str = _text(200, min_length=1)
    trigger: str = _text(200)
    kind: str = _text(32, description="schedule, dataset, alert, performance or manual")
    source: str = _text(500)
    detected_at: _Time
    state: AutomationState = AutomationState.WAITING
    reason: str = _text(_LONG, default="")
    model: str = _text(200, default="")
    pipeline_run_id: str | None = Field(default=None, pattern=_ID)
    candidate: str | None = _text(300, default=None)
    deployment: str | None = _text(200, default=None)
    gate: dict[str, Any] = Field(default_factory=dict)
    approval: dict[str, Any] = Field(default_factory=dict)
    rollout: dict[str, Any] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)
    attempts: _Count = 0
    updated_at: _Time = 0
    revision: int = Field(default=0, ge=0, lt=2**31 - 1)

    def entity(self) -> AutomationEvent:
        fields = self.model_dump()
        for name in ("gate", "approval", "rollout", "details"):
            fields[name] = from_wire(fields[name])
        return AutomationEvent(**fields)


class AutomationEventOut(BaseModel):
    event_id: str
    automation: str
    trigger: str
    kind: str
    source: str
    detected_at: int
    state: AutomationState
    reason: str
    model: str
    pipeline_run_id: str | None
    candidate: str | None
    deployment: str | None
    gate: dict[str, Any]
    approval: dict[str, Any]
    rollout: dict[str, Any]
    details: dict[str, Any]
    attempts: int
    updated_at: int
    revision: int

    @classmethod
    def of(cls, event: AutomationEvent) -> AutomationEventOut:
        fields = event.to_dict()
        for name in ("gate", "approval", "rollout", "details"):
            fields[name] = to_wire(fields[name])
        return cls(**fields)


class AutomationEventUpdate(_Strict):
    event: AutomationEventIn = Field(description="The event as changed, at the revision read")
    details: dict[str, Any] = Field(default_factory=dict, description="The log entry's numbers")


class AddedOut(BaseModel):
    added: bool = Field(description="False: an event with this id exists")


class LogEntryOut(BaseModel):
    event_id: str
    at: int
    state: AutomationState
    reason: str
    actor: str
    details: dict[str, Any]

    @classmethod
    def of(cls, entry: AutomationLogEntry) -> LogEntryOut:
        return cls(
            event_id=entry.event_id,
            at=entry.at,
            state=entry.state,
            reason=entry.reason,
            actor=entry.actor,
            details=to_wire(entry.details),
        )


@router.post(
    "/automations/{name}/arm",
    response_model=ArmedOut,
    summary="When an automation was first seen (now, if it is new)",
    **_WRITE,
)
def arm_automation(name: _Automation, body: NowIn, store: Store) -> ArmedOut:
    return ArmedOut(armed_at=store.arm_automation(name, body.now))


@router.post(
    "/automation-events",
    response_model=AddedOut,
    summary="Record a trigger event unless its id exists",
    **_WRITE,
)
def add_automation_event(body: AutomationEventIn, store: Store, caller: _Caller) -> AddedOut:
    return AddedOut(added=store.add_automation_event(body.entity(), actor=caller.user))


@router.put(
    "/automation-events/{ref}",
    response_model=AutomationEventOut,
    summary="Write a trigger event over the revision it was read at (409 if it moved on)",
    **_WRITE,
)
def update_automation_event(
    ref: _EventRef, body: AutomationEventUpdate, store: Store, caller: _Caller
) -> AutomationEventOut:
    if body.event.event_id != ref:
        raise InvalidArgumentError(f"event.event_id {body.event.event_id!r} is not {ref!r}")
    saved = store.update_automation_event(
        body.event.entity(), actor=caller.user, details=from_wire(body.details)
    )
    return AutomationEventOut.of(saved)


@router.get(
    "/automation-events",
    response_model=list[AutomationEventOut],
    summary="Trigger events, newest first",
    **_READ,
)
def list_automation_events(
    store: Store,
    automation: Annotated[str | None, _query(200)] = None,
    state: Annotated[list[AutomationState] | None, Query(description="Any of these")] = None,
    candidate: Annotated[str | None, _query(300)] = None,
    source: Annotated[str | None, _query(500)] = None,
    pipeline_run_id: Annotated[str | None, _query(128)] = None,
    limit: Annotated[int, Query(ge=0, lt=2**31)] = 100,
) -> list[AutomationEventOut]:
    found = store.list_automation_events(
        automation=automation,
        states=state,
        candidate=candidate,
        source=source,
        pipeline_run_id=pipeline_run_id,
        limit=limit,
    )
    return [AutomationEventOut.of(e) for e in found]


@router.get(
    "/automation-events/{ref}",
    response_model=AutomationEventOut,
    summary="A trigger event (an id prefix works)",
    **_READ,
)
def get_automation_event(ref: _EventRef, store: Store) -> AutomationEventOut:
    return AutomationEventOut.of(store.get_automation_event(ref))


@router.get(
    "/automation-events/{ref}/log",
    response_model=list[LogEntryOut],
    summary="Every transition of a trigger event, oldest first",
    **_READ,
)
def automation_log(ref: _EventRef, store: Store) -> list[LogEntryOut]:
    return [LogEntryOut.of(e) for e in store.automation_log(ref)]
