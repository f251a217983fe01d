"""MLflow's artifact proxy (``/api/2.0/mlflow-artifacts/artifacts/...``) and artifact listing,
over Shipyard's artifact store.

The client turns an artifact location such as ``mlflow-artifacts:/3/<run>/artifacts`` into
calls under this prefix. Three kinds of location are served:

- ``<experiment>/<run_id>/artifacts/<path>``: a run's artifacts (``log_artifact(s)``); an
  upload becomes an object in the store and an artifact record of the run;
- ``<experiment>/models/<model_id>/artifacts/<path>``: the files of a logged model (MLflow 3's
  ``log_model``);
- ``registry/<model>/<version>/<path>``: a registered model version's files, read-only — the
  download location the registry hands out (``models:/name@alias``).

Uploads stream to a temporary file while they are hashed (nothing is held in memory) and are
stored by content; downloads are served from the object's file with HTTP ranges. Paths are
checked with :func:`~shipyard.artifacts.safe_relative_path`: ``..`` and absolute paths are a
400, never a file outside the store.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import Query, Request
from fastapi.responses import FileResponse

from shipyard.artifacts import ArtifactStore, safe_relative_path
from shipyard.entities import ArtifactRecord
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.registry import Registry
from shipyard.server.deps import Objects, Store
from shipyard.server.mlflow.common import READ, WRITE, Caller, NotSupportedError, mlflow_router
from shipyard.server.objects import serve_object, spooled
from shipyard.store import Backend

__all__ = ["files_of", "listing", "router", "tracking_router"]

router = mlflow_router("/api/2.0/mlflow-artifacts")
tracking_router = mlflow_router()


@dataclass(frozen=True)
class _Location:
    kind: str  # "run", "model" (a logged model) or "version" (a registered model version)
    key: str  # run id, model id, or "name@version"
    path: str  # inside it ("" for its root)


def _locate(artifact_path: str) -> _Location:
    parts = safe_relative_path(artifact_path).split("/")
    if parts[0] == "registry" and len(parts) >= 3:
        return _Location("version", f"{parts[1]}@{parts[2]}", "/".join(parts[3:]))
    if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
        return _Location("model", parts[2], "/".join(parts[4:]))
    if len(parts) >= 3 and parts[2] == "artifacts":
        return _Location("run", parts[1], "/".join(parts[3:]))
    raise NotFoundError(
        f"{artifact_path!r} is not an artifact location of this server: expected "
        "EXPERIMENT/RUN_ID/artifacts/..., EXPERIMENT/models/MODEL_ID/artifacts/... or "
        "registry/MODEL/VERSION/..."
    )


def files_of(
    store: Backend, objects: ArtifactStore, kind: str, key: str
) -> dict[str, tuple[str, int]]:
    """Every file of a run, logged model or model version: ``path -> (digest, size)``;
    folders logged as one artifact are opened through their manifest."""
    files: dict[str, tuple[str, int]] = {}
    if kind == "run":
        for record in store.list_artifacts(key):
            if record.is_dir:
                for entry in objects.read_manifest(record.digest).entries:
                    files[f"{record.path}/{entry.path}"] = (entry.digest, entry.size)
            else:
                files[record.path] = (record.digest, record.size)
    elif kind == "model":
        store.get_logged_model(key)
        files = {path: (digest, size) for path, digest, size in store.list_logged_model_files(key)}
    else:
        version = Registry(store, "").resolve(key)
        for entry in objects.read_manifest(version.digest).entries:
            files[entry.path] = (entry.digest, entry.size)
    return files


def listing(files: dict[str, tuple[str, int]], path: str) -> list[dict[str, Any]]:
    """The entries directly inside ``path``, relative to it (MLflow's listing)."""
    prefix = f"{path}/" if path else ""
    children: dict[str, dict[str, Any]] = {}
    for name, (_, size) in files.items():
        if not name.startswith(prefix):
            continue
        head, _, rest = name[len(prefix) :].partition("/")
        if rest:
            children[head] = {"path": head, "is_dir": True}
        elif head not in children:
            children[head] = {"path": head, "is_dir": False, "file_size": size}
    return [children[k] for k in sorted(children)]


def _list(store: Backend, objects: ArtifactStore, where: _Location) -> list[dict[str, Any]]:
    files = files_of(store, objects, where.kind, where.key)
    if where.path in files:  # a file lists as nothing, as in MLflow's own stores
        return []
    return listing(files, where.path)


@router.get("/artifacts", summary="MLflow: list artifacts under a path", **READ)
def list_artifacts(
    store: Store, objects: Objects, path: Annotated[str, Query()] = ""
) -> dict[str, Any]:
    if not path.strip("/"):
        return {"files": []}
    return {"files": _list(store, objects, _locate(path))}


@router.get("/artifacts/{artifact_path:path}", summary="MLflow: download an artifact", **READ)
def download_artifact(artifact_path: str, store: Store, objects: Objects) -> FileResponse:
    where = _locate(artifact_path)
    found = files_of(store, objects, where.kind, where.key).get(where.path)
    if found is None:
        raise NotFoundError(f"no artifact {where.path!r} in {artifact_path!r}")
    media = mimetypes.guess_type(where.path)[0] or "application/octet-stream"
    return serve_object(objects, found[0], media)


@router.put("/artifacts/{artifact_path:path}", summary="MLflow: upload an artifact", **WRITE)
async def upload_artifact(
    artifact_path: str, request: Request, store: Store, objects: Objects, caller: Caller
) -> dict[str, Any]:
    where = _locate(artifact_path)
    if not where.path:
        raise InvalidArgumentError(f"{artifact_path!r} names no file to upload")
    if where.kind == "version":
        raise NotSupportedError(
            "a registered model version's files are fixed: log a new model and register it"
        )
    # Refuse before reading a byte: the run or model must exist.
    if where.kind == "run":
        await anyio.to_thread.run_sync(store.get_run, where.key)
    else:
        await anyio.to_thread.run_sync(store.get_logged_model, where.key)
    async with spooled(request) as (temp, _digest, size):
        info = await anyio.to_thread.run_sync(lambda: objects.put_file(temp, link=True))

    def record() -> None:
        if where.kind == "run":
            store.log_artifacts(where.key, [ArtifactRecord(where.path, info.digest, size)])
        else:
            store.add_logged_model_file(where.key, where.path, info.digest, size)

    await anyio.to_thread.run_sync(record)
    return {}


@tracking_router.get("/artifacts/list", summary="MLflow: list a run's artifacts", **READ)
def list_run_artifacts(
    store: Store,
    objects: Objects,
    run_id: Annotated[str | None, Query()] = None,
    run_uuid: Annotated[str | None, Query()] = None,
    path: Annotated[str, Query()] = "",
) -> dict[str, Any]:
    run = store.get_run(run_id or run_uuid or "")
    inside = safe_relative_path(path) if path.strip("/") else ""
    root = f"mlflow-artifacts:/{run.experiment_id}/{run.run_id}/artifacts"
    files = _list(store, objects, _Location("run", run.run_id, inside))
    prefix = f"{inside}/" if inside else ""
    return {
        "root_uri": root,
        "files": [{**f, "path": prefix + f["path"]} for f in files],
    }
