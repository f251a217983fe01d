"""MLflow 3's logged models (``/api/2.0/mlflow/logged-models``) and ``runs/outputs``.

``mlflow.<flavor>.log_model`` first creates a logged model (an id and an artifact location),
uploads the model folder there through the artifact proxy, links it to the run as an output
and marks it ``READY``; registering it then makes a Shipyard model version of those files
(:mod:`.registry`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Query
from pydantic import Field

from shipyard.entities import LoggedModel
from shipyard.errors import InvalidArgumentError
from shipyard.server.deps import Objects, Store
from shipyard.server.mlflow.artifacts import files_of, listing
from shipyard.server.mlflow.common import (
    READ,
    WRITE,
    Body,
    Caller,
    KeyValue,
    mlflow_router,
    now_ms,
    parse_experiment_id,
)
from shipyard.server.schemas import decode_token, encode_token

__all__ = ["logged_model_json", "router"]

router = mlflow_router()

_STATUS_NAMES = {
    "PENDING": "LOGGED_MODEL_PENDING",
    "READY": "LOGGED_MODEL_READY",
    "FAILED": "LOGGED_MODEL_UPLOAD_FAILED",
}
_STATUSES = {v: k for k, v in _STATUS_NAMES.items()}


def logged_model_json(model: LoggedModel) -> dict[str, Any]:
    info: dict[str, Any] = {
        "model_id": model.model_id,
        "experiment_id": str(model.experiment_id),
        "name": model.name,
        "creation_timestamp_ms": model.created_at,
        "last_updated_timestamp_ms": model.updated_at,
        "artifact_uri": (
            f"mlflow-artifacts:/{model.experiment_id}/models/{model.model_id}/artifacts"
        ),
        "status": _STATUS_NAMES.get(model.status, "LOGGED_MODEL_STATUS_UNSPECIFIED"),
        "model_type": model.model_type,
        "tags": [{"key": k, "value": v} for k, v in sorted(model.tags.items())],
    }
    if model.run_id:
        info["source_run_id"] = model.run_id
    params = [{"key": k, "value": v} for k, v in sorted(model.params.items())]
    return {"info": info, "data": {"params": params, "metrics": []}}


class LoggedModelCreate(Body):
    experiment_id: str
    name: str = Field(default="model", min_length=1, max_length=256)
    model_type: str = ""
    source_run_id: str | None = None
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


class LoggedModelFinalize(Body):
    status: str


class LoggedModelTags(Body):
    tags: list[KeyValue] = Field(default_factory=list)


class LoggedModelParams(Body):
    params: list[KeyValue] = Field(default_factory=list)


class LoggedModelSearch(Body):
    experiment_ids: list[str] = Field(default_factory=list)
    filter: str = ""
    max_results: int = Field(default=100, ge=1, le=1000)
    page_token: str | None = None


_CLAUSE = re.compile(
    r"\s*(?:attributes?\.)?(`?[\w.]+`?)\s*(=|!=)\s*'((?:[^']|'')*)'\s*", re.IGNORECASE
)


def _matcher(filter_string: str) -> Callable[[LoggedModel], bool]:
    """MLflow's logged-model filters the client sends: ``name = 'x'``, ``source_run_id``,
    ``status``, ``model_type`` or ``tags.KEY``, compared with ``=``/``!=``, joined by AND."""
    clauses = []
    for part in re.split(r"\s+AND\s+", filter_string.strip(), flags=re.IGNORECASE):
        if not part:
            continue
        found = _CLAUSE.fullmatch(part)
        if found is None:
            raise InvalidArgumentError(
                f"unsupported logged-model filter {part!r}: use ATTRIBUTE = 'value' joined "
                "by AND (name, source_run_id, status, model_type, tags.KEY)"
            )
        key, op, value = found.group(1).strip("`"), found.group(2), found.group(3)
        clauses.append((key, op == "=", value.replace("''", "'")))

    def value_of(model: LoggedModel, key: str) -> str | None:
        if key.startswith("tags."):
            return model.tags.get(key[5:])
        if key == "status":
            return _STATUS_NAMES.get(model.status)
        fields = {"name": model.name, "source_run_id": model.run_id, "model_type": model.model_type}
        if key not in fields:
            raise InvalidArgumentError(f"logged models cannot be filtered on {key!r}")
        return fields[key]

    return lambda model: all((value_of(model, k) == v) == eq for k, eq, v in clauses)


class _Output(Body):
    model_id: str
    step: int = Field(default=0, ge=-(2**63), lt=2**63)


class LogOutputs(Body):
    run_id: str
    models: list[_Output] = Field(default_factory=list)


@router.post("/logged-models", summary="MLflow: create a logged model", **WRITE)
def create_logged_model(body: LoggedModelCreate, store: Store, caller: Caller) -> dict[str, Any]:
    experiment = store.get_experiment(parse_experiment_id(body.experiment_id))
    if body.source_run_id:
        store.get_run(body.source_run_id)
    now = now_ms()
    model = store.create_logged_model(
        LoggedModel(
            model_id=f"m-{uuid.uuid4().hex}",
            experiment_id=experiment.experiment_id,
            name=body.name,
            status="PENDING",
            created_at=now,
            updated_at=now,
            run_id=body.source_run_id or None,
            model_type=body.model_type,
            user=caller.user,
            tags={t.key: t.value for t in body.tags},
            params={p.key: p.value for p in body.params},
        )
    )
    return {"model": logged_model_json(model)}


@router.get("/logged-models/{model_id}", summary="MLflow: a logged model", **READ)
def get_logged_model(model_id: str, store: Store) -> dict[str, Any]:
    return {"model": logged_model_json(store.get_logged_model(model_id))}


@router.patch("/logged-models/{model_id}", summary="MLflow: finalize a logged model", **WRITE)
def finalize_logged_model(model_id: str, body: LoggedModelFinalize, store: Store) -> dict[str, Any]:
    status = _STATUSES.get(body.status)
    if status is None:
        raise InvalidArgumentError(
            f"status must be one of {sorted(_STATUSES)}, not {body.status!r}"
        )
    return {"model": logged_model_json(store.update_logged_model(model_id, status=status))}


@router.delete("/logged-models/{model_id}", summary="MLflow: delete a logged model", **WRITE)
def delete_logged_model(model_id: str, store: Store) -> dict[str, Any]:
    store.delete_logged_model(model_id)
    return {}


@router.patch("/logged-models/{model_id}/tags", summary="MLflow: tag a logged model", **WRITE)
def set_logged_model_tags(model_id: str, body: LoggedModelTags, store: Store) -> dict[str, Any]:
    tags = {t.key: t.value for t in body.tags}
    return {"model": logged_model_json(store.update_logged_model(model_id, set_tags=tags))}


@router.delete(
    "/logged-models/{model_id}/tags/{tag_key}",
    summary="MLflow: remove a logged model's tag",
    **WRITE,
)
def delete_logged_model_tag(model_id: str, tag_key: str, store: Store) -> dict[str, Any]:
    store.update_logged_model(model_id, delete_tags=[tag_key])
    return {}


@router.post(
    "/logged-models/{model_id}/params", summary="MLflow: log a logged model's params", **WRITE
)
def log_logged_model_params(model_id: str, body: LoggedModelParams, store: Store) -> dict[str, Any]:
    store.update_logged_model(model_id, params={p.key: p.value for p in body.params})
    return {}


@router.post("/logged-models/search", summary="MLflow: search logged models", **READ)
def search_logged_models(body: LoggedModelSearch, store: Store) -> dict[str, Any]:
    ids = [parse_experiment_id(i) for i in body.experiment_ids]
    offset = decode_token(body.page_token)
    matches = _matcher(body.filter)
    found = [m for m in store.search_logged_models(ids, max_results=100_000) if matches(m)]
    found = found[offset : offset + body.max_results + 1]
    answer: dict[str, Any] = {"models": [logged_model_json(m) for m in found[: body.max_results]]}
    if len(found) > body.max_results:
        answer["next_page_token"] = encode_token(offset + body.max_results)
    return answer


@router.get(
    "/logged-models/{model_id}/artifacts/directories",
    summary="MLflow: list a logged model's files",
    **READ,
)
def list_logged_model_artifacts(
    model_id: str,
    store: Store,
    objects: Objects,
    artifact_directory_path: Annotated[str, Query()] = "",
) -> dict[str, Any]:
    files = files_of(store, objects, "model", model_id)
    return {"files": listing(files, artifact_directory_path.strip("/"))}


@router.post("/runs/outputs", summary="MLflow: link logged models to a run", **WRITE)
def log_outputs(body: LogOutputs, store: Store) -> dict[str, Any]:
    store.get_run(body.run_id)
    for output in body.models:
        store.update_logged_model(output.model_id, run_id=body.run_id)
    return {}
