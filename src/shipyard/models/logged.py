"""Models that live in the workspace: logged from runs into the registry, loaded by name.

``run.log_model(model, "churn", input_example=X)`` saves the model, stores the folder as the
run's artifact ``models/churn`` and registers it as the next version of ``churn``;
``shipyard.models.load("churn@champion")`` resolves a name through the registry, checks the
folder against its digest and loads it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from shipyard.artifacts import canonical_bytes, hash_bytes, hash_file, list_files
from shipyard.entities import ModelVersion
from shipyard.models.package import LoadedModel, load_model, save_model
from shipyard.registry import Registry, validate_model_name
from shipyard.tracking import ActiveRun, Workspace, open_workspace

__all__ = ["load", "log_model", "model_path"]


def log_model(
    run: ActiveRun,
    model: Any,
    name: str,
    *,
    input_example: Any = None,
    flavor: str | None = None,
    requirements: list[str] | None = None,
    artifacts: str | os.PathLike[str] | None = None,
) -> ModelVersion:
    """Save ``model`` with ``run`` and register it as the next version of ``name``."""
    validate_model_name(name)  # before anything is written anywhere
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / name
        meta = save_model(
            model,
            folder,
            input_example=input_example,
            flavor=flavor,
            requirements=requirements,
            artifacts=artifacts,
        )
        record = run.log_artifact(folder, f"models/{name}")
    workspace = run.workspace
    registry = Registry(workspace.backend, workspace.settings.user)
    return registry.register(
        name,
        digest=record.digest,
        flavor=meta.flavor,
        run_id=run.run_id,
        source=f"runs:/{run.run_id}/models/{name}",
    )


def model_path(version: ModelVersion, workspace: Workspace) -> Path:
    """A local folder holding exactly the version's files, verified on every call.

    The folder is a cache under the workspace: whatever changed in it since it was written
    (an edited, added or removed file) fails the digest and it is fetched again.
    """
    folder = workspace.settings.home / "cache" / "models" / version.digest
    if folder.is_dir():
        if _folder_digest(folder) == version.digest:
            return folder
        shutil.rmtree(folder, ignore_errors=True)
    staging = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.tmp")
    workspace.artifacts.get_dir(version.digest, staging)
    try:
        os.replace(staging, folder)
    except OSError:  # another process materialised it first
        shutil.rmtree(staging, ignore_errors=True)
        if not folder.is_dir():
            raise
    return folder


def _folder_digest(folder: Path) -> str:
    """The digest ``ArtifactStore.put_dir`` would give ``folder`` (every file read)."""
    triples = [(rel, hash_file(path), st.st_size) for rel, path, st in list_files(folder)]
    return hash_bytes(canonical_bytes(triples))


def load(
    ref: str,
    *,
    home: str | os.PathLike[str] | None = None,
    trusted_pickle: bool = False,
    trusted_code: bool = False,
) -> LoadedModel:
    """Load ``name@alias``, ``name@3``, ``name@latest`` or ``name`` from the registry.

    Returns an object with ``predict(data)`` whatever the flavor. The folder is checked
    against its digest when it is materialised and every file again by ``load_model``.
    """
    workspace = open_workspace(home)
    version = Registry(workspace.backend, workspace.settings.user).resolve(ref)
    return load_model(
        model_path(version, workspace), trusted_pickle=trusted_pickle, trusted_code=trusted_code
    )
