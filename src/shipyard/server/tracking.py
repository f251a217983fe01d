"""``/api/v1`` for experiments, runs, params, tags, metrics and artifacts listings.

Handlers check input with the tracking package's own validators (the rules ``ActiveRun``
applies) and call the store's ``Backend``: nothing here decides what is allowed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from shipyard.entities import JournalSegment, Metric, Role, RunOwner, RunStatus
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.server.auth import Identity, identity, role
from shipyard.server.deps import Store
from shipyard.server.errors import error_responses
from shipyard.server.schemas import (
    MAX_HISTORY_PAGE,
    MAX_PAGE,
    PAGE_TOKEN_PATTERN,
    ArtifactOut,
    CrashedIn,
    ExperimentIn,
    ExperimentOut,
    ExperimentRename,
    HeartbeatIn,
    JournalIn,
    MetricOut,
    MetricsIn,
    OwnerIn,
    Page,
    ParamsIn,
    RunCreate,
    RunEnd,
    RunIdsIn,
    RunOut,
    SearchRuns,
    TagsIn,
    decode_token,
    encode_token,
)
from shipyard.tracking.validation import (
    int64,
    metric_value,
    param_value,
    tag_value,
    validate_key,
    validate_name,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["tracking"], responses=error_responses())

_Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items per page.")]
_Token = Annotated[
    str | None,
    Query(description="next_page_token of the previous page.", pattern=PAGE_TOKEN_PATTERN),
]


_Caller = Annotated[Identity, Depends(identity)]
_READ = role(Role.VIEWER)
_WRITE = role(Role.MEMBER)


def _page(items: Sequence[object], offset: int, limit: int, more: bool) -> dict[str, object]:
    return {"items": items, "next_page_token": encode_token(offset + limit) if more else None}


def _now() -> int:
    return time.time_ns() // 1_000_000


# experiments ---------------------------------------------------------------------------------


@router.get("/experiments", response_model=Page[ExperimentOut], summary="List experiments", **_READ)
def list_experiments(
    store: Store,
    limit: _Limit = 100,
    page_token: _Token = None,
    name: Annotated[str | None, Query(max_length=256, description="Only this one")] = None,
) -> object:
    offset = decode_token(page_token)
    if name is not None:
        one = store.get_experiment_by_name(name)
        found = [] if one is None else [one]
    else:
        found = store.list_experiments()
    chosen = [ExperimentOut.of(e) for e in found[offset : offset + limit]]
    return _page(chosen, offset, limit, offset + limit < len(found))


@router.post(
    "/experiments",
    response_model=ExperimentOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create an experiment",
    **_WRITE,
)
def create_experiment(body: ExperimentIn, store: Store) -> ExperimentOut:
    name = validate_name("experiment", body.name)
    return ExperimentOut.of(store.create_experiment(name, body.description))


@router.get(
    "/experiments/{experiment_id}",
    response_model=ExperimentOut,
    summary="Get an experiment",
    **_READ,
)
def get_experiment(
    experiment_id: Annotated[int, Path(ge=0, lt=2**31)], store: Store
) -> ExperimentOut:
    return ExperimentOut.of(store.get_experiment(experiment_id))


# runs ----------------------------------------------------------------------------------------


@router.post(
    "/runs",
    response_model=RunOut,
    status_code=status.HTTP_201_CREATED,
    summary="Start a run",
    **_WRITE,
)
def create_run(body: RunCreate, store: Store, caller: _Caller) -> RunOut:
    from shipyard.tracking.fluent import _run_name

    if (body.experiment_id is None) == (body.experiment_name is None):
        raise InvalidArgumentError("give experiment_id or experiment_name (one of them)")
    if body.experiment_name is not None:
        name = validate_name("experiment", body.experiment_name)
        experiment_id = store.get_or_create_experiment(name).experiment_id
    else:
        experiment_id = store.get_experiment(int(body.experiment_id or 0)).experiment_id
    if body.parent_run_id is not None:
        store.get_run(body.parent_run_id)  # a clear 404 for an unknown parent
    tags = {validate_key("tag", k): tag_value(k, v) for k, v in body.tags.items()}
    run = store.create_run(
        experiment_id,
        name=validate_name("run", body.name) if body.name else _run_name(),
        user=caller.user,
        start_time=body.start_time if body.start_time is not None else _now(),
        parent_run_id=body.parent_run_id,
        tags=tags,
        owner=None if body.owner is None else RunOwner(**body.owner.model_dump()),
    )
    return RunOut.of(run)


@router.get("/runs/{run_id}", response_model=RunOut, summary="Get a run", **_READ)
def get_run(run_id: str, store: Store) -> RunOut:
    return RunOut.of(store.get_run(store.resolve_run_id(run_id)))


@router.post("/runs/{run_id}/end", response_model=RunOut, summary="End a run", **_WRITE)
def end_run(run_id: str, body: RunEnd, store: Store) -> RunOut:
    try:
        final = RunStatus(body.status.upper())
    except ValueError:
        raise InvalidArgumentError(
            f"unknown status {body.status!r}: use FINISHED, FAILED or KILLED"
        ) from None
    if final not in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED):
        raise InvalidArgumentError(f"a run ends FINISHED, FAILED or KILLED, not {final.value}")
    end = body.end_time if body.end_time is not None else _now()
    store.end_run(run_id, final, end, only_active=body.only_active)
    return RunOut.of(store.get_run(run_id))


@router.post("/runs/{run_id}/params", status_code=204, summary="Log parameters", **_WRITE)
def log_params(run_id: str, body: ParamsIn, store: Store) -> None:
    store.log_params(
        run_id, {validate_key("param", k): param_value(k, v) for k, v in body.params.items()}
    )


@router.post("/runs/{run_id}/tags", status_code=204, summary="Set tags", **_WRITE)
def set_tags(run_id: str, body: TagsIn, store: Store) -> None:
    store.set_tags(run_id, {validate_key("tag", k): tag_value(k, v) for k, v in body.tags.items()})


@router.post("/runs/{run_id}/metrics", status_code=204, summary="Log metrics", **_WRITE)
def log_metrics(run_id: str, body: MetricsIn, store: Store) -> None:
    if store.resolve_run_id(run_id) != run_id:  # 404 before anything is written
        raise NotFoundError(f"no run {run_id}")
    now = _now()
    batch = [
        Metric(
            key=validate_key("metric", m.key),
            value=math.nan if m.value is None else metric_value(m.key, m.value),
            step=int64(f"step of metric {m.key!r}", m.step),
            timestamp=now if m.timestamp is None else m.timestamp,
            run_id=run_id,
        )
        for m in body.metrics
    ]
    store.log_metrics(batch)


@router.get(
    "/runs/{run_id}/metrics/{key:path}",
    response_model=Page[MetricOut],
    summary="A metric's history, oldest step first",
    **_READ,
)
def metric_history(
    run_id: str,
    key: str,
    store: Store,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY_PAGE, description="Points per page.")] = 1000,
    page_token: _Token = None,
) -> object:
    offset = decode_token(page_token)
    history = store.get_metric_history(
        run_id, validate_key("metric", key), offset=offset, limit=limit + 1
    )
    chosen = [MetricOut.of(m) for m in history[:limit]]
    return _page(chosen, offset, limit, len(history) > limit)


@router.get(
    "/runs/{run_id}/artifacts",
    response_model=list[ArtifactOut],
    summary="A run's artifacts",
    **_READ,
)
def list_artifacts(run_id: str, store: Store) -> list[ArtifactOut]:
    store.get_run(run_id)
    return [ArtifactOut.of(a) for a in store.list_artifacts(run_id)]


@router.post("/runs/search", response_model=Page[RunOut], summary="Search runs", **_READ)
def search_runs(body: SearchRuns, store: Store) -> object:
    ids = list(body.experiment_ids)
    for name in body.experiment_names:
        found = store.get_experiment_by_name(name)
        if found is None:
            raise NotFoundError(f"no experiment named {name!r}")
        ids.append(found.experiment_id)
    if not ids:
        ids = [e.experiment_id for e in store.list_experiments()]
    offset = body.offset if body.offset is not None else decode_token(body.page_token)
    # One more than a page tells whether another page follows.
    runs = store.search_runs(
        ids,
        body.filter,
        body.order_by,
        max_results=body.max_results + 1,
        offset=offset,
        lifecycle=body.lifecycle,
    )
    more = len(runs) > body.max_results
    items = [RunOut.of(r) for r in runs[: body.max_results]]
    return _page(items, offset, body.max_results, more)


@router.post(
    "/runs/latest-metrics",
    response_model=dict[str, list[MetricOut]],
    summary="Each run's latest value of every metric, with step and time",
    **_READ,
)
def latest_metrics(body: RunIdsIn, store: Store) -> dict[str, list[MetricOut]]:
    found = store.latest_metrics(body.run_ids)
    return {run_id: [MetricOut.of(m) for m in metrics] for run_id, metrics in found.items()}


@router.delete("/runs/{run_id}", status_code=204, summary="Delete a run (restorable)", **_WRITE)
def delete_run(run_id: str, store: Store) -> None:
    store.set_run_deleted(run_id, True)


@router.post("/runs/{run_id}/restore", status_code=204, summary="Restore a run", **_WRITE)
def restore_run(run_id: str, store: Store) -> None:
    store.set_run_deleted(run_id, False)


@router.delete(
    "/runs/{run_id}/tags/{key:path}", status_code=204, summary="Remove a run's tag", **_WRITE
)
def delete_tag(run_id: str, key: str, store: Store) -> None:
    store.delete_tag(run_id, key)


@router.delete(
    "/experiments/{experiment_id}",
    status_code=204,
    summary="Delete an experiment and its runs (restorable)",
    **_WRITE,
)
def delete_experiment(experiment_id: Annotated[int, Path(ge=0, lt=2**31)], store: Store) -> None:
    store.set_experiment_deleted(experiment_id, True)


@router.post(
    "/experiments/{experiment_id}/restore",
    status_code=204,
    summary="Restore an experiment and its runs",
    **_WRITE,
)
def restore_experiment(experiment_id: Annotated[int, Path(ge=0, lt=2**31)], store: Store) -> None:
    store.set_experiment_deleted(experiment_id, False)


@router.patch(
    "/experiments/{experiment_id}",
    response_model=ExperimentOut,
    summary="Rename an experiment",
    **_WRITE,
)
def rename_experiment(
    experiment_id: Annotated[int, Path(ge=0, lt=2**31)], body: ExperimentRename, store: Store
) -> ExperimentOut:
    store.rename_experiment(experiment_id, validate_name("experiment", body.name))
    return ExperimentOut.of(store.get_experiment(experiment_id))


# what a client process needs to log safely: its metric journal, its liveness -------------------


@router.post(
    "/runs/{run_id}/reopen", response_model=RunOut, summary="Reopen an ended run", **_WRITE
)
def reopen_run(run_id: str, body: OwnerIn | None, store: Store) -> RunOut:
    owner = None if body is None else RunOwner(**body.model_dump())
    return RunOut.of(store.reopen_run(run_id, owner=owner, now=_now()))


@router.post(
    "/journal",
    summary="Apply metric journal segments, each at most once; returns how many were new",
    **_WRITE,
)
def log_journal(body: JournalIn, store: Store) -> dict[str, int]:
    segments = [
        JournalSegment(
            journal_id=s.journal_id,
            run_id=s.run_id,
            segment=s.segment,
            metrics=tuple(
                (validate_key("metric", k), math.nan if v is None else v, step, ts)
                for k, v, step, ts in s.metrics
            ),
        )
        for s in body.segments
    ]
    return {"new": store.log_journal(segments)}


@router.get(
    "/journal/{journal_id}",
    summary="The highest segment of a journal already applied (-1: none)",
    **_READ,
)
def applied_segment(journal_id: str, store: Store) -> dict[str, int]:
    return {"segment": store.applied_segment(journal_id)}


@router.post("/heartbeat", summary="A logging process is alive", **_WRITE)
def heartbeat(body: HeartbeatIn, store: Store) -> dict[str, int]:
    owner = RunOwner(**body.owner.model_dump())
    return {"runs": store.heartbeat(body.run_ids, owner, body.now)}


@router.get("/watched-runs", summary="RUNNING runs that have an owner", **_READ)
def watched_runs(store: Store) -> list[dict[str, object]]:
    return [
        {"run_id": run_id, "owner": _owner(owner), "heartbeat": beat}
        for run_id, owner, beat in store.watched_runs()
    ]


def _owner(owner: RunOwner) -> dict[str, object]:
    return {"host": owner.host, "pid": owner.pid, "process_start": owner.process_start}


@router.post(
    "/runs/{run_id}/crashed",
    summary="Mark a run CRASHED if its heartbeat is still the one judged dead",
    **_WRITE,
)
def mark_crashed(run_id: str, body: CrashedIn, store: Store) -> dict[str, int | None]:
    return {"end_time": store.mark_run_crashed(run_id, heartbeat=body.heartbeat, now=body.now)}


@router.get("/runs/{run_id}/latest-steps", summary="The highest step of each metric", **_READ)
def latest_steps(run_id: str, store: Store) -> dict[str, int]:
    return store.latest_steps(run_id)
