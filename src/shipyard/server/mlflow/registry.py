"""MLflow's model registry (``/api/2.0/mlflow/registered-models/...``, ``model-versions/...``)
over Shipyard's registry, acting as the caller — so governance and the four-eyes rule hold
for the ``mlflow`` client exactly as for Shipyard's own (a governed model's ``champion`` alias
is refused for an unapproved version, with MLflow's ``PERMISSION_DENIED``).

A model version created through MLflow is a Shipyard model version: its files (a logged
model's, or a run's artifacts under a path) become one stored folder, its flavor is read from
the ``MLmodel`` file (``sklearn`` when MLflow saved a scikit-learn model, else ``mlflow``), and
its download location is ``mlflow-artifacts:/registry/NAME/VERSION``. Versions are never
deleted (they are the audit trail), and MLflow's deprecated stages are answered with a pointer
to aliases.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import yaml
from fastapi import Depends, Query, Request
from pydantic import Field

from shipyard.artifacts import ArtifactStore, Manifest, ManifestEntry, safe_relative_path
from shipyard.entities import ModelVersion, RegisteredModel
from shipyard.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
)
from shipyard.registry import Registry
from shipyard.registry.service import validate_model_name
from shipyard.server.auth import Identity, identity
from shipyard.server.deps import Objects
from shipyard.server.mlflow.artifacts import files_of
from shipyard.server.mlflow.common import (
    READ,
    WRITE,
    Body,
    KeyValue,
    NotSupportedError,
    mlflow_router,
)
from shipyard.store import Backend

__all__ = ["router"]

router = mlflow_router()


def _registry(request: Request, caller: Annotated[Identity, Depends(identity)]) -> Registry:
    backend: Backend = request.app.state.workspace.backend
    return Registry(backend, caller.user)


_Registry = Annotated[Registry, Depends(_registry)]


def _version_json(version: ModelVersion) -> dict[str, Any]:
    found = re.fullmatch(r"models:/(m-[0-9a-f]+)", version.source)
    answer: dict[str, Any] = {
        "name": version.model,
        "version": str(version.version),
        "creation_timestamp": version.created_at,
        "last_updated_timestamp": version.created_at,
        "user_id": version.created_by,
        "current_stage": "None",
        "description": version.description,
        "source": version.source,
        "status": "READY",
        "tags": [{"key": k, "value": v} for k, v in sorted(version.tags.items())],
        "aliases": list(version.aliases),
    }
    if version.run_id:
        answer["run_id"] = version.run_id
    if found:
        answer["model_id"] = found.group(1)
    return answer


def _model_json(reg: Registry, model: RegisteredModel) -> dict[str, Any]:
    versions = reg.versions(model.name)
    return {
        "name": model.name,
        "creation_timestamp": model.created_at,
        "last_updated_timestamp": max([model.created_at, *(v.created_at for v in versions)]),
        "user_id": model.created_by,
        "description": model.description,
        "latest_versions": [_version_json(versions[-1])] if versions else [],
        "tags": [{"key": k, "value": v} for k, v in sorted(model.tags.items())],
        "aliases": [{"alias": a, "version": str(n)} for a, n in sorted(model.aliases.items())],
    }


class ModelCreate(Body):
    name: str
    description: str = Field(default="", max_length=10_000)
    tags: list[KeyValue] = Field(default_factory=list)


class VersionCreate(Body):
    name: str
    source: str = ""
    run_id: str | None = None
    model_id: str | None = None
    description: str = Field(default="", max_length=10_000)
    tags: list[KeyValue] = Field(default_factory=list)


class AliasSet(Body):
    name: str
    alias: str
    version: str


class VersionTag(Body):
    name: str
    version: str
    key: str
    value: str = ""


class LatestVersions(Body):
    name: str
    stages: list[str] = Field(default_factory=list)


class StageTransition(Body):
    name: str
    version: str
    stage: str = ""


# registered models ---------------------------------------------------------------------------


@router.post("/registered-models/create", summary="MLflow: register a model name", **WRITE)
def create_registered_model(body: ModelCreate, reg: _Registry) -> dict[str, Any]:
    name = validate_model_name(body.name)
    try:
        reg.backend.get_registered_model(name)
    except NotFoundError:
        pass
    else:
        raise AlreadyExistsError(f"Registered Model (name={name}) already exists.")
    model = reg.backend.create_registered_model(name, actor=reg.user, description=body.description)
    return {"registered_model": _model_json(reg, model)}


@router.get("/registered-models/get", summary="MLflow: a registered model", **READ)
def get_registered_model(name: Annotated[str, Query()], reg: _Registry) -> dict[str, Any]:
    return {"registered_model": _model_json(reg, reg.model(name))}


@router.get("/registered-models/search", summary="MLflow: search registered models", **READ)
def search_registered_models(
    reg: _Registry,
    filter: Annotated[str, Query()] = "",
    max_results: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    models = [m for m in reg.models() if _name_filter(filter, m.name)]
    return {"registered_models": [_model_json(reg, m) for m in models[:max_results]]}


@router.post(
    "/registered-models/get-latest-versions", summary="MLflow: a model's latest version", **READ
)
def get_latest_versions(body: LatestVersions, reg: _Registry) -> dict[str, Any]:
    versions = reg.versions(body.name)
    if body.stages and "None" not in body.stages:
        return {"model_versions": []}  # Shipyard has no stages: every version is "None"
    return {"model_versions": [_version_json(versions[-1])] if versions else []}


@router.delete("/registered-models/delete", summary="MLflow: refused (audit trail)", **WRITE)
def delete_registered_model(reg: _Registry) -> dict[str, Any]:
    raise NotSupportedError(
        "Shipyard keeps every registered model and version (they are the audit trail); "
        "move or delete its aliases instead"
    )


# aliases -------------------------------------------------------------------------------------


@router.post("/registered-models/alias", summary="MLflow: point an alias at a version", **WRITE)
def set_alias(body: AliasSet, reg: _Registry) -> dict[str, Any]:
    reg.set_alias(f"{validate_model_name(body.name)}@{_number(body.version)}", body.alias)
    return {}


@router.delete("/registered-models/alias", summary="MLflow: remove an alias", **WRITE)
def delete_alias(
    name: Annotated[str, Query()], alias: Annotated[str, Query()], reg: _Registry
) -> dict[str, Any]:
    reg.delete_alias(name, alias)
    return {}


@router.get("/registered-models/alias", summary="MLflow: the version an alias names", **READ)
def get_version_by_alias(
    name: Annotated[str, Query()], alias: Annotated[str, Query()], reg: _Registry
) -> dict[str, Any]:
    return {"model_version": _version_json(reg.resolve(f"{validate_model_name(name)}@{alias}"))}


# model versions ------------------------------------------------------------------------------


@router.post("/model-versions/create", summary="MLflow: register a model version", **WRITE)
def create_model_version(body: VersionCreate, reg: _Registry, objects: Objects) -> dict[str, Any]:
    name = validate_model_name(body.name)
    files, run_id = _source_files(reg.backend, objects, body)
    if not files:
        raise InvalidArgumentError(f"the source {body.source!r} holds no files to register")
    manifest = Manifest(tuple(ManifestEntry(p, d, s) for p, (d, s) in files.items()))
    digest = objects.put_bytes(manifest.to_bytes()).digest
    source = f"models:/{body.model_id}" if body.model_id else body.source
    version = reg.register(
        name,
        digest=digest,
        flavor=_flavor(objects, files),
        run_id=run_id,
        source=source,
        description=body.description,
    )
    for tag in body.tags:
        reg.tag(version.ref, tag.key, tag.value)
    return {"model_version": _version_json(reg.resolve(version.ref))}


def _source_files(
    store: Backend, objects: ArtifactStore, body: VersionCreate
) -> tuple[dict[str, tuple[str, int]], str | None]:
    """The files a new version is made of, and the run they came from."""
    model_id = body.model_id
    if model_id is None:
        found = re.fullmatch(r"models:/(m-[0-9a-f]+)", body.source)
        model_id = found.group(1) if found else None
    if model_id:
        logged = store.get_logged_model(model_id)
        return files_of(store, objects, "model", model_id), body.run_id or logged.run_id
    found = re.fullmatch(
        r"(?:runs:/|mlflow-artifacts:/\d+/)([0-9a-f]{32})(?:/artifacts)?/(.+)", body.source
    )
    if found is None:
        raise InvalidArgumentError(
            f"source {body.source!r} is not on this server: register a logged model "
            "(models:/m-...) or a run's artifacts (runs:/RUN_ID/PATH)"
        )
    run_id, path = found.group(1), safe_relative_path(found.group(2))
    inside = {
        name[len(path) + 1 :]: value
        for name, value in files_of(store, objects, "run", run_id).items()
        if name.startswith(f"{path}/")
    }
    return inside, run_id


def _flavor(objects: ArtifactStore, files: dict[str, tuple[str, int]]) -> str:
    """``sklearn`` for a scikit-learn model saved by MLflow, else ``mlflow``."""
    if "MLmodel" not in files:
        return "mlflow"
    try:
        meta = yaml.safe_load(objects.read_bytes(files["MLmodel"][0]))
    except yaml.YAMLError:
        return "mlflow"
    flavors = meta.get("flavors", {}) if isinstance(meta, dict) else {}
    return "sklearn" if "sklearn" in flavors else "mlflow"


@router.get("/model-versions/get", summary="MLflow: a model version", **READ)
def get_model_version(
    name: Annotated[str, Query()], version: Annotated[str, Query()], reg: _Registry
) -> dict[str, Any]:
    return {"model_version": _version_json(reg.resolve(f"{name}@{_number(version)}"))}


@router.get(
    "/model-versions/get-download-uri", summary="MLflow: where a version's files are", **READ
)
def get_download_uri(
    name: Annotated[str, Query()], version: Annotated[str, Query()], reg: _Registry
) -> dict[str, Any]:
    found = reg.resolve(f"{name}@{_number(version)}")
    return {"artifact_uri": f"mlflow-artifacts:/registry/{found.model}/{found.version}"}


@router.get("/model-versions/search", summary="MLflow: search model versions", **READ)
def search_model_versions(
    reg: _Registry,
    filter: Annotated[str, Query()] = "",
    max_results: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
) -> dict[str, Any]:
    versions = [
        v
        for m in reg.models()
        if _name_filter(filter, m.name)
        for v in reversed(reg.versions(m.name))
    ]
    return {"model_versions": [_version_json(v) for v in versions[:max_results]]}


class ModelTag(Body):
    name: str
    key: str
    value: str = ""


@router.post("/registered-models/set-tag", summary="MLflow: tag a registered model", **WRITE)
def set_model_tag(body: ModelTag, reg: _Registry) -> dict[str, Any]:
    reg.tag(validate_model_name(body.name), body.key, body.value)
    return {}


@router.post("/model-versions/set-tag", summary="MLflow: tag a model version", **WRITE)
def set_version_tag(body: VersionTag, reg: _Registry) -> dict[str, Any]:
    reg.tag(f"{body.name}@{_number(body.version)}", body.key, body.value)
    return {}


@router.post(
    "/model-versions/transition-stage", summary="MLflow: refused (stages → aliases)", **WRITE
)
def transition_stage(body: StageTransition, reg: _Registry) -> dict[str, Any]:
    raise InvalidArgumentError(
        "Shipyard has no stages (MLflow deprecated them): point an alias at the version "
        "instead, e.g. MlflowClient().set_registered_model_alias(name, 'champion', version)"
    )


@router.delete("/model-versions/delete", summary="MLflow: refused (audit trail)", **WRITE)
def delete_model_version(reg: _Registry) -> dict[str, Any]:
    raise NotSupportedError(
        "Shipyard keeps every model version (they are the audit trail); move its aliases instead"
    )


def _number(version: str) -> int:
    if not version.isdigit() or len(version) > 9:
        raise InvalidArgumentError(f"a model version is a number, not {version!r}")
    return int(version)


def _name_filter(filter_string: str, name: str) -> bool:
    """The registry filters the client sends: none, ``name='x'`` or ``name LIKE 'x%'``."""
    if not filter_string.strip():
        return True
    from shipyard.server.mlflow.tracking import _name_matches

    return _name_matches(filter_string, name)
