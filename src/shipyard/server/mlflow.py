"""The MLflow tracking REST API (``/api/2.0/mlflow/...``) over Shipyard's own entities, so that
a team's ``mlflow`` training code logs to Shipyard unchanged (``MLFLOW_TRACKING_URI``).

An MLflow experiment is a Shipyard experiment (its id as a string), an MLflow run a Shipyard
run (the same 32-hex ids); params, metrics and tags map one to one, and filters of
``search_runs`` use Shipyard's parser (its language is MLflow's). Errors have MLflow's shape
(``error_code``, ``message``) so that the client reacts as it does to its own server — e.g.
``set_experiment`` creates an experiment it got ``RESOURCE_DOES_NOT_EXIST`` for.

This first part covers experiments, runs, params, metrics, tags, batches and search; the
artifact proxy, the model registry and logged models are still to come (docs/mlflow.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from shipyard.entities import Experiment, Metric, Role, Run, RunStatus
from shipyard.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError, ShipyardError
from shipyard.server.auth import Identity, identity, role
from shipyard.server.deps import Store
from shipyard.server.errors import status_of
from shipyard.store import Backend
from shipyard.tracking.validation import (
    metric_value,
    param_value,
    tag_value,
    validate_key,
    validate_name,
)

__all__ = ["router"]

_CODES = {
    404: "RESOURCE_DOES_NOT_EXIST",
    409: "RESOURCE_ALREADY_EXISTS",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    429: "REQUEST_LIMIT_EXCEEDED",
    503: "TEMPORARILY_UNAVAILABLE",
}
_STATUSES = {"RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"}
_MAX_BATCH = {"metrics": 1000, "params": 100, "tags": 100}


def _error(status: int, message: str) -> JSONResponse:
    code = _CODES.get(status, "INVALID_PARAMETER_VALUE")
    return JSONResponse({"error_code": code, "message": message}, status_code=status)


class MlflowRoute(APIRoute):
    """A route answering errors in MLflow's shape instead of Shipyard's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except ShipyardError as exc:
                status, _ = status_of(exc)
                if getattr(exc, "retry_after", None) is not None:
                    status = 429
                return _error(status, str(exc))
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()))
                return _error(400, f"{where}: {first.get('msg', 'invalid request')}")

        return answer


router = APIRouter(prefix="/api/2.0/mlflow", tags=["mlflow"], route_class=MlflowRoute)
_READ, _WRITE = role(Role.VIEWER), role(Role.MEMBER)


_Caller = Annotated[Identity, Depends(identity)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # MLflow clients send fields we do not model


class _KeyValue(_Body):
    key: str
    value: str = ""


class ExperimentCreate(_Body):
    name: str = Field(min_length=1, max_length=256)
    artifact_location: str | None = None
    tags: list[_KeyValue] = Field(default_factory=list)


class ExperimentSearch(_Body):
    max_results: int = Field(default=1000, ge=1, le=50_000)
    page_token: str | None = None
    filter: str | None = None


class RunCreate(_Body):
    experiment_id: str = "0"
    user_id: str | None = None
    run_name: str | None = None
    start_time: int | None = None
    tags: list[_KeyValue] = Field(default_factory=list)


class RunUpdate(_Body):
    run_id: str | None = None
    run_uuid: str | None = None
    status: str | None = None
    end_time: int | None = None
    run_name: str | None = None


class LogMetric(_Body):
    run_id: str | None = None
    run_uuid: str | None = None
    key: str
    value: float | str
    timestamp: int | None = None
    step: int = 0


class LogParam(_Body):
    run_id: str | None = None
    run_uuid: str | None = None
    key: str
    value: str


class SetTag(_Body):
    run_id: str | None = None
    run_uuid: str | None = None
    key: str
    value: str


class _Metric(_Body):
    key: str
    value: float | str
    timestamp: int | None = None
    step: int = 0


class LogBatch(_Body):
    run_id: str
    metrics: list[_Metric] = Field(default_factory=list)
    params: list[_KeyValue] = Field(default_factory=list)
    tags: list[_KeyValue] = Field(default_factory=list)


class RunSearch(_Body):
    experiment_ids: list[str] = Field(default_factory=list)
    filter: str = ""
    max_results: int = Field(default=1000, ge=1, le=50_000)
    order_by: list[str] = Field(default_factory=list)
    page_token: str | None = None


def _now() -> int:
    return time.time_ns() // 1_000_000


def _experiment(e: Experiment) -> dict[str, Any]:
    return {
        "experiment_id": str(e.experiment_id),
        "name": e.name,
        "artifact_location": f"mlflow-artifacts:/{e.experiment_id}",
        "lifecycle_stage": "active",
        "creation_time": e.created_at,
        "last_update_time": e.created_at,
        "tags": [],
    }


def _number(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _run(run: Run, store: Backend, *, history: bool = False) -> dict[str, Any]:
    info = {
        "run_id": run.run_id,
        "run_uuid": run.run_id,
        "run_name": run.name,
        "experiment_id": str(run.experiment_id),
        "user_id": run.user,
        "status": run.status.value if run.status.value in _STATUSES else "FAILED",
        "start_time": run.start_time,
        "artifact_uri": f"mlflow-artifacts:/{run.experiment_id}/{run.run_id}/artifacts",
        "lifecycle_stage": "active",
    }
    if run.end_time is not None:
        info["end_time"] = run.end_time
    metrics = []
    if run.metrics:
        latest = {m.key: m for m in _latest(store, run)}
        metrics = [
            {
                "key": key,
                "value": _number(value),
                "timestamp": latest[key].timestamp if key in latest else run.start_time,
                "step": latest[key].step if key in latest else 0,
            }
            for key, value in run.metrics.items()
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


def _latest(store: Backend, run: Run) -> list[Metric]:
    steps = store.latest_steps(run.run_id)
    found = []
    for key in run.metrics:
        history = store.get_metric_history(run.run_id, key)
        at = [m for m in history if m.step == steps.get(key, 0)]
        if at:
            found.append(at[-1])
    return found


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


@router.get("/experiments/get-by-name", summary="MLflow: an experiment by name", **_READ)
def get_experiment_by_name(
    store: Store, experiment_name: Annotated[str, Query()]
) -> dict[str, Any]:
    found = store.get_experiment_by_name(experiment_name)
    if found is None:
        raise NotFoundError(f"Could not find experiment with name '{experiment_name}'")
    return {"experiment": _experiment(found)}


@router.get("/experiments/get", summary="MLflow: an experiment by id", **_READ)
def get_experiment(store: Store, experiment_id: Annotated[str, Query()]) -> dict[str, Any]:
    return {"experiment": _experiment(store.get_experiment(_int(experiment_id)))}


@router.post("/experiments/create", summary="MLflow: create an experiment", **_WRITE)
def create_experiment(body: ExperimentCreate, store: Store) -> dict[str, Any]:
    name = validate_name("experiment", body.name)
    if store.get_experiment_by_name(name) is not None:
        raise AlreadyExistsError(f"Experiment '{name}' already exists.")
    return {"experiment_id": str(store.create_experiment(name).experiment_id)}


@router.post("/experiments/search", summary="MLflow: search experiments", **_READ)
def search_experiments(body: ExperimentSearch, store: Store) -> dict[str, Any]:
    found = store.list_experiments()
    return {"experiments": [_experiment(e) for e in found[: body.max_results]]}


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise NotFoundError(f"No experiment with id {text!r}") from None


# runs --------------------------------------------------------------------------------------


@router.post("/runs/create", summary="MLflow: start a run", **_WRITE)
def create_run(body: RunCreate, store: Store, caller: _Caller) -> dict[str, Any]:
    from shipyard.tracking.fluent import _run_name

    experiment = store.get_experiment(_int(body.experiment_id or "0"))
    tags = {t.key: t.value for t in body.tags}
    name = body.run_name or tags.pop("mlflow.runName", "") or _run_name()
    tags.pop("mlflow.user", None)  # the server knows who logs
    parent = tags.get("mlflow.parentRunId")
    clean = {validate_key("tag", k): tag_value(k, v) for k, v in tags.items()}
    run = store.create_run(
        experiment.experiment_id,
        name=validate_name("run", name),
        user=caller.user,
        start_time=body.start_time or _now(),
        parent_run_id=parent or None,
        tags=clean,
    )
    return {"run": _run(run, store)}


@router.get("/runs/get", summary="MLflow: a run", **_READ)
def get_run(
    store: Store,
    run_id: Annotated[str | None, Query()] = None,
    run_uuid: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    return {"run": _run(store.get_run(_run_id(run_id, run_uuid)), store)}


@router.post("/runs/update", summary="MLflow: end or rename a run", **_WRITE)
def update_run(body: RunUpdate, store: Store) -> dict[str, Any]:
    run_id = _run_id(body.run_id, body.run_uuid)
    if body.run_name:
        store.set_tags(run_id, {"mlflow.runName": tag_value("mlflow.runName", body.run_name)})
    if body.status and body.status != "RUNNING":
        if body.status not in _STATUSES:
            raise InvalidArgumentError(f"unknown run status {body.status!r}")
        status = RunStatus(body.status if body.status != "SCHEDULED" else "RUNNING")
        store.end_run(run_id, status, body.end_time or _now())
    run = store.get_run(run_id)
    return {"run_info": _run(run, store)["info"]}


@router.post("/runs/log-metric", summary="MLflow: log a metric", **_WRITE)
def log_metric(body: LogMetric, store: Store) -> dict[str, Any]:
    run_id = _run_id(body.run_id, body.run_uuid)
    _require_run(store, run_id)
    metric = Metric(
        validate_key("metric", body.key),
        _float(body.key, body.value),
        body.step,
        body.timestamp or _now(),
        run_id,
    )
    store.log_metrics([metric])
    return {}


@router.post("/runs/log-parameter", summary="MLflow: log a parameter", **_WRITE)
def log_param(body: LogParam, store: Store) -> dict[str, Any]:
    run_id = _run_id(body.run_id, body.run_uuid)
    store.log_params(run_id, {validate_key("param", body.key): param_value(body.key, body.value)})
    return {}


@router.post("/runs/set-tag", summary="MLflow: set a tag", **_WRITE)
def set_tag(body: SetTag, store: Store) -> dict[str, Any]:
    run_id = _run_id(body.run_id, body.run_uuid)
    store.set_tags(run_id, {validate_key("tag", body.key): tag_value(body.key, body.value)})
    return {}


@router.post("/runs/log-batch", summary="MLflow: log metrics, params and tags at once", **_WRITE)
def log_batch(body: LogBatch, store: Store) -> dict[str, Any]:
    for kind, limit in _MAX_BATCH.items():
        if len(getattr(body, kind)) > limit:
            raise InvalidArgumentError(
                f"A batch logging request can contain at most {limit} {kind}"
            )
    _require_run(store, body.run_id)
    now = _now()
    if body.params:
        store.log_params(
            body.run_id,
            {validate_key("param", p.key): param_value(p.key, p.value) for p in body.params},
        )
    if body.tags:
        store.set_tags(
            body.run_id, {validate_key("tag", t.key): tag_value(t.key, t.value) for t in body.tags}
        )
    if body.metrics:
        store.log_metrics(
            [
                Metric(
                    validate_key("metric", m.key),
                    _float(m.key, m.value),
                    m.step,
                    m.timestamp or now,
                    body.run_id,
                )
                for m in body.metrics
            ]
        )
    return {}


@router.get("/metrics/get-history", summary="MLflow: a metric's history", **_READ)
def metric_history(
    store: Store,
    metric_key: Annotated[str, Query()],
    run_id: Annotated[str | None, Query()] = None,
    run_uuid: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    history = store.get_metric_history(_run_id(run_id, run_uuid), metric_key)
    return {
        "metrics": [
            {"key": m.key, "value": _number(m.value), "timestamp": m.timestamp, "step": m.step}
            for m in history
        ]
    }


@router.post("/runs/search", summary="MLflow: search runs", **_READ)
def search_runs(body: RunSearch, store: Store) -> dict[str, Any]:
    from shipyard.server.schemas import decode_token, encode_token

    ids = [_int(i) for i in body.experiment_ids] or [
        e.experiment_id for e in store.list_experiments()
    ]
    offset = decode_token(body.page_token)
    runs = store.search_runs(
        ids, body.filter, body.order_by, max_results=body.max_results + 1, offset=offset
    )
    answer: dict[str, Any] = {"runs": [_run(r, store) for r in runs[: body.max_results]]}
    if len(runs) > body.max_results:
        answer["next_page_token"] = encode_token(offset + body.max_results)
    return answer
