"""The MLflow tracking REST API (``/api/2.0/mlflow/...``): experiments, runs, params, metrics,
tags, batches and search, over Shipyard's own entities.

An MLflow experiment is a Shipyard experiment (its id as a string), an MLflow run a Shipyard
run (the same 32-hex ids); params, metrics and tags map one to one, and filters of
``search_runs`` use Shipyard's parser (its language is MLflow's). Errors have MLflow's shape
(``error_code``, ``message``) so that the client reacts as it does to its own server — e.g.
``set_experiment`` creates an experiment it got ``RESOURCE_DOES_NOT_EXIST`` for.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Query, Response
from pydantic import Field

from shipyard.entities import Experiment, Metric, Run, RunStatus
from shipyard.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from shipyard.server.deps import Store
from shipyard.server.mlflow.common import (
    READ,
    WRITE,
    Body,
    Caller,
    KeyValue,
    mlflow_router,
    now_ms,
    number,
    parse_experiment_id,
)
from shipyard.store import Backend
from shipyard.tracking.validation import (
    metric_value,
    param_value,
    tag_value,
    validate_key,
    validate_name,
)

__all__ = ["router"]

router = mlflow_router()
_STATUSES = {"RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"}
_MAX_BATCH = {"metrics": 1000, "params": 100, "tags": 100}


class ExperimentCreate(Body):
    name: str = Field(min_length=1, max_length=256)
    artifact_location: str | None = None
    tags: list[KeyValue] = Field(default_factory=list)


class ExperimentSearch(Body):
    max_results: int = Field(default=1000, ge=1, le=50_000)
    page_token: str | None = None
    filter: str | None = None
    view_type: str | int | None = None


class ExperimentRef(Body):
    experiment_id: str


class ExperimentUpdate(Body):
    experiment_id: str
    new_name: str = Field(min_length=1, max_length=256)


class RunRef(Body):
    run_id: str


class DeleteTag(Body):
    run_id: str
    key: str


class _DatasetInput(Body):
    tags: list[KeyValue] = Field(default_factory=list)
    dataset: dict[str, Any] = Field(default_factory=dict)


class LogInputs(Body):
    run_id: str
    datasets: list[_DatasetInput] = Field(default_factory=list)


class RunCreate(Body):
    experiment_id: str = "0"
    user_id: str | None = None
    run_name: str | None = None
    start_time: int | None = Field(default=None, ge=0, lt=2**63)
    tags: list[KeyValue] = Field(default_factory=list)


class RunUpdate(Body):
    run_id: str | None = None
    run_uuid: str | None = None
    status: str | None = None
    end_time: int | None = Field(default=None, ge=0, lt=2**63)
    run_name: str | None = None


class LogMetric(Body):
    run_id: str | None = None
    run_uuid: str | None = None
    key: str
    value: float | str
    timestamp: int | None = Field(default=None, ge=0, lt=2**63)
    step: int = Field(default=0, ge=-(2**63), lt=2**63)


class LogParam(Body):
    run_id: str | None = None
    run_uuid: str | None = None
    key: str
    value: str


class SetTag(Body):
    run_id: str | None = None
    run_uuid: str | None = None
    key: str
    value: str


class _Metric(Body):
    key: str
    value: float | str
    timestamp: int | None = Field(default=None, ge=0, lt=2**63)
    step: int = Field(default=0, ge=-(2**63), lt=2**63)
    model_id: str | None = None


class LogBatch(Body):
    run_id: str
    metrics: list[_Metric] = Field(default_factory=list)
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


class RunSearch(Body):
    experiment_ids: list[str] = Field(default_factory=list)
    filter: str = ""
    max_results: int = Field(default=1000, ge=1, le=50_000)
    order_by: list[str] = Field(default_factory=list)
    page_token: str | None = None
    run_view_type: str | int | None = None


def _experiment(e: Experiment) -> dict[str, Any]:
    return {
        "experiment_id": str(e.experiment_id),
        "name": e.name,
        "artifact_location": f"mlflow-artifacts:/{e.experiment_id}",
        "lifecycle_stage": _stage(e.deleted_at),
        "creation_time": e.created_at,
        "last_update_time": e.created_at,
        "tags": [],
    }


def _stage(deleted_at: int | None) -> str:
    return "active" if deleted_at is None else "deleted"


_VIEWS = {"ACTIVE_ONLY": "active", "DELETED_ONLY": "deleted", "ALL": "all"}
_VIEW_NUMBERS = {"1": "ACTIVE_ONLY", "2": "DELETED_ONLY", "3": "ALL"}


def _view(value: str | int | None) -> str:
    """MLflow's ``ViewType`` (by name or number) as a Shipyard lifecycle."""
    name = _VIEW_NUMBERS.get(str(value), str(value)) if value is not None else "ACTIVE_ONLY"
    if name not in _VIEWS:
        raise InvalidArgumentError(f"view type must be one of {sorted(_VIEWS)}, not {value!r}")
    return _VIEWS[name]


def _runs(runs: Sequence[Run], store: Backend) -> list[dict[str, Any]]:
    """Runs in MLflow's shape: their latest metrics (step, timestamp) in one query."""
    latest = store.latest_metrics([r.run_id for r in runs]) if runs else {}
    return [_run(run, latest.get(run.run_id, [])) for run in runs]


def _run(run: Run, latest: Sequence[Metric]) -> dict[str, Any]:
    info = {
        "run_id": run.run_id,
        "run_uuid": run.run_id,
        "run_name": run.name,
        "experiment_id": str(run.experiment_id),
        "user_id": run.user,
        "status": run.status.value if run.status.value in _STATUSES else "FAILED",
        "start_time": run.start_time,
        "artifact_uri": f"mlflow-artifacts:/{run.experiment_id}/{run.run_id}/artifacts",
        "lifecycle_stage": _stage(run.deleted_at),
    }
    if run.end_time is not None:
        info["end_time"] = run.end_time
    metrics = [
        {"key": m.key, "value": number(m.value), "timestamp": m.timestamp, "step": m.step}
        for m in latest
    ]
    tags = {**run.tags, "mlflow.runName": run.name, "mlflow.user": run.user}
    return {
        "info": info,
        "data": {
            "metrics": metrics,
            "params": [{"key": k, "value": v} for k, v in run.params.items()],
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        },
        "inputs": {},
    }


def _run_id(*ids: str | None) -> str:
    for given in ids:
        if given:
            return given
    raise InvalidArgumentError("run_id is required")


def _require_run(store: Backend, run_id: str) -> None:
    """A 404 for an unknown run before anything is written (one indexed lookup)."""
    if store.resolve_run_id(run_id) != run_id:
        raise NotFoundError(f"Run '{run_id}' not found")


def _float(key: str, value: float | str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InvalidArgumentError(f"metric {key!r}: {value!r} is not a number") from None
    return metric_value(key, value)


# experiments -------------------------------------------------------------------------------


@router.get("/experiments/get-by-name", summary="MLflow: an experiment by name", **READ)
def get_experiment_by_name(
    store: Store, experiment_name: Annotated[str, Query()]
) -> dict[str, Any]:
    found = store.get_experiment_by_name(experiment_name)
    if found is None:
        raise NotFoundError(f"Could not find experiment with name '{experiment_name}'")
    return {"experiment": _experiment(found)}


@router.get("/experiments/get", summary="MLflow: an experiment by id", **READ)
def get_experiment(store: Store, experiment_id: Annotated[str, Query()]) -> dict[str, Any]:
    return {"experiment": _experiment(store.get_experiment(parse_experiment_id(experiment_id)))}


@router.post("/experiments/create", summary="MLflow: create an experiment", **WRITE)
def create_experiment(body: ExperimentCreate, store: Store) -> dict[str, Any]:
    name = validate_name("experiment", body.name)
    if store.get_experiment_by_name(name) is not None:
        raise AlreadyExistsError(f"Experiment '{name}' already exists.")
    return {"experiment_id": str(store.create_experiment(name).experiment_id)}


@router.post("/experiments/search", summary="MLflow: search experiments", **READ)
def search_experiments(body: ExperimentSearch, store: Store) -> dict[str, Any]:
    from shipyard.server.schemas import decode_token, encode_token

    view = _view(body.view_type)
    found = [
        e
        for e in store.list_experiments()
        if view == "all" or (e.deleted_at is None) == (view == "active")
    ]
    if body.filter:
        found = [e for e in found if _name_matches(body.filter, e.name)]
    offset = decode_token(body.page_token)
    answer: dict[str, Any] = {
        "experiments": [_experiment(e) for e in found[offset : offset + body.max_results]]
    }
    if len(found) > offset + body.max_results:
        answer["next_page_token"] = encode_token(offset + body.max_results)
    return answer


def _name_matches(filter_string: str, name: str) -> bool:
    """MLflow's experiment filters on the name: ``name = 'x'``, ``name LIKE 'x%'``."""
    import fnmatch
    import re

    match = re.fullmatch(
        r"\s*(?:attribute\.)?name\s*(=|!=|LIKE|ILIKE)\s*'([^']*)'\s*", filter_string, re.I
    )
    if match is None:
        raise InvalidArgumentError(
            f"unsupported experiment filter {filter_string!r}: use name = '...' or name LIKE '...'"
        )
    op, value = match.group(1).upper(), match.group(2)
    if op in ("=", "!="):
        return (name == value) == (op == "=")
    pattern = value.replace("%", "*").replace("_", "?")
    if op == "ILIKE":
        return fnmatch.fnmatchcase(name.lower(), pattern.lower())
    return fnmatch.fnmatchcase(name, pattern)


@router.post("/experiments/delete", summary="MLflow: delete an experiment (restorable)", **WRITE)
def delete_experiment(body: ExperimentRef, store: Store) -> dict[str, Any]:
    store.set_experiment_deleted(parse_experiment_id(body.experiment_id), True)
    return {}


@router.post("/experiments/restore", summary="MLflow: restore a deleted experiment", **WRITE)
def restore_experiment(body: ExperimentRef, store: Store) -> dict[str, Any]:
    store.set_experiment_deleted(parse_experiment_id(body.experiment_id), False)
    return {}


@router.post("/experiments/update", summary="MLflow: rename an experiment", **WRITE)
def update_experiment(body: ExperimentUpdate, store: Store) -> dict[str, Any]:
    name = validate_name("experiment", body.new_name)
    store.rename_experiment(parse_experiment_id(body.experiment_id), name)
    return {}


# runs --------------------------------------------------------------------------------------


@router.post("/runs/create", summary="MLflow: start a run", **WRITE)
def create_run(body: RunCreate, store: Store, caller: Caller) -> dict[str, Any]:
    from shipyard.tracking.fluent import _run_name

    experiment = store.get_experiment(parse_experiment_id(body.experiment_id or "0"))
    tags = {t.key: t.value for t in body.tags}
    name = body.run_name or tags.pop("mlflow.runName", "") or _run_name()
    tags.pop("mlflow.user", None)  # the server knows who logs
    parent = tags.get("mlflow.parentRunId")
    clean = {validate_key("tag", k): tag_value(k, v) for k, v in tags.items()}
    run = store.create_run(
        experiment.experiment_id,
        name=validate_name("run", name),
        user=caller.user,
        start_time=body.start_time or now_ms(),
        parent_run_id=parent or None,
        tags=clean,
    )
    return {"run": _run(run, [])}  # a new run has no metrics yet


@router.get("/runs/get", summary="MLflow: a run", **READ)
def get_run(
    store: Store,
    run_id: Annotated[str | None, Query()] = None,
    run_uuid: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    return {"run": _runs([store.get_run(_run_id(run_id, run_uuid))], store)[0]}


@router.post("/runs/update", summary="MLflow: end or rename a run", **WRITE)
def update_run(body: RunUpdate, store: Store) -> dict[str, Any]:
    run_id = _run_id(body.run_id, body.run_uuid)
    if body.run_name:
        store.set_tags(run_id, {"mlflow.runName": tag_value("mlflow.runName", body.run_name)})
    if body.status and body.status != "RUNNING":
        if body.status not in _STATUSES:
            raise InvalidArgumentError(f"unknown run status {body.status!r}")
        status = RunStatus(body.status if body.status != "SCHEDULED" else "RUNNING")
        store.end_run(run_id, status, body.end_time or now_ms())
    run = store.get_run(run_id)
    return {"run_info": _run(run, [])["info"]}


@router.post("/runs/delete", summary="MLflow: delete a run (restorable)", **WRITE)
def delete_run(body: RunRef, store: Store) -> dict[str, Any]:
    store.set_run_deleted(body.run_id, True)
    return {}


@router.post("/runs/restore", summary="MLflow: restore a deleted run", **WRITE)
def restore_run(body: RunRef, store: Store) -> dict[str, Any]:
    store.set_run_deleted(body.run_id, False)
    return {}


@router.post("/runs/delete-tag", summary="MLflow: delete a run's tag", **WRITE)
def delete_tag(body: DeleteTag, store: Store) -> dict[str, Any]:
    _require_run(store, body.run_id)
    store.delete_tag(body.run_id, body.key)
    return {}


@router.post("/runs/log-inputs", summary="MLflow: record a run's dataset inputs", **WRITE)
def log_inputs(body: LogInputs, store: Store) -> dict[str, Any]:
    """Each MLflow dataset input becomes the run tag ``mlflow.dataset.NAME`` holding the
    dataset's digest, source and context as JSON (Shipyard's own inputs are dataset versions
    of its store, which an MLflow dataset is not)."""
    import json

    _require_run(store, body.run_id)
    tags = {}
    for item in body.datasets:
        dataset = item.dataset
        name = str(dataset.get("name") or "dataset")
        value = {
            "digest": dataset.get("digest", ""),
            "source_type": dataset.get("source_type", ""),
            "source": dataset.get("source", ""),
            **{t.key: t.value for t in item.tags},
        }
        key = validate_key("tag", f"mlflow.dataset.{name}")
        tags[key] = tag_value(key, json.dumps(value, sort_keys=True))
    store.set_tags(body.run_id, tags)
    return {}


@router.post("/runs/log-metric", summary="MLflow: log a metric", **WRITE)
def log_metric(body: LogMetric, store: Store) -> dict[str, Any]:
    run_id = _run_id(body.run_id, body.run_uuid)
    _require_run(store, run_id)
    metric = Metric(
        validate_key("metric", body.key),
        _float(body.key, body.value),
        body.step,
        body.timestamp or now_ms(),
        run_id,
    )
    store.log_metrics([metric])
    return {}


@router.post("/runs/log-parameter", summary="MLflow: log a parameter", **WRITE)
def log_param(body: LogParam, store: Store) -> dict[str, Any]:
    run_id = _run_id(body.run_id, body.run_uuid)
    store.log_params(run_id, {validate_key("param", body.key): param_value(body.key, body.value)})
    return {}


@router.post("/runs/set-tag", summary="MLflow: set a tag", **WRITE)
def set_tag(body: SetTag, store: Store) -> dict[str, Any]:
    run_id = _run_id(body.run_id, body.run_uuid)
    store.set_tags(run_id, {validate_key("tag", body.key): tag_value(body.key, body.value)})
    return {}


@router.post("/runs/log-batch", summary="MLflow: log metrics, params and tags at once", **WRITE)
def log_batch(body: LogBatch, store: Store) -> dict[str, Any]:
    for kind, limit in _MAX_BATCH.items():
        if len(getattr(body, kind)) > limit:
            raise InvalidArgumentError(
                f"A batch logging request can contain at most {limit} {kind}"
            )
    _require_run(store, body.run_id)
    now = now_ms()
    if body.params:
        store.log_params(
            body.run_id,
            {validate_key("param", p.key): param_value(p.key, p.value) for p in body.params},
        )
    if body.tags:
        store.set_tags(
            body.run_id, {validate_key("tag", t.key): tag_value(t.key, t.value) for t in body.tags}
        )
    metrics = [
        Metric(
            validate_key("metric", m.key),
            _float(m.key, m.value),
            m.step,
            m.timestamp or now,
            body.run_id,
        )
        for m in body.metrics
    ]
    linked = {m.key for m in body.metrics if m.model_id}
    if linked:
        metrics = _without_relogged(store, body.run_id, metrics, linked)
    store.log_metrics(metrics)
    return {}


def _without_relogged(
    store: Backend, run_id: str, metrics: list[Metric], keys: set[str]
) -> list[Metric]:
    """MLflow's ``log_model`` logs the run's metrics of a step again, tagged with the model's
    id, to link them to the model; those already in the history are not new measurements."""
    seen = {
        (m.key, m.step, m.timestamp, m.value)
        for key in keys
        for m in store.get_metric_history(run_id, key)
    }
    return [m for m in metrics if (m.key, m.step, m.timestamp, m.value) not in seen]


@router.get("/metrics/get-history", summary="MLflow: a metric's history", **READ)
def metric_history(
    store: Store,
    metric_key: Annotated[str, Query()],
    run_id: Annotated[str | None, Query()] = None,
    run_uuid: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    history = store.get_metric_history(_run_id(run_id, run_uuid), metric_key)
    return {
        "metrics": [
            {"key": m.key, "value": number(m.value), "timestamp": m.timestamp, "step": m.step}
            for m in history
        ]
    }


@router.post("/runs/search", summary="MLflow: search runs", **READ)
def search_runs(body: RunSearch, store: Store) -> Response:
    """A page of runs, written with ``json.dumps``: FastAPI's generic encoder walking a
    thousand runs' dicts cost more than the query (125 ms against 35 ms)."""
    from shipyard.server.schemas import decode_token, encode_token

    ids = [parse_experiment_id(i) for i in body.experiment_ids] or [
        e.experiment_id for e in store.list_experiments()
    ]
    offset = decode_token(body.page_token)
    runs = store.search_runs(
        ids,
        body.filter,
        body.order_by,
        max_results=body.max_results + 1,
        offset=offset,
        lifecycle=_view(body.run_view_type),
    )
    answer: dict[str, Any] = {"runs": _runs(runs[: body.max_results], store)}
    if len(runs) > body.max_results:
        answer["next_page_token"] = encode_token(offset + body.max_results)
    return Response(json.dumps(answer), media_type="application/json")
