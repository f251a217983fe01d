"""What a handler needs from the app: the workspace's metadata store and artifact store."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from shipyard.artifacts import ArtifactStore
from shipyard.store import Backend

__all__ = ["Objects", "Store"]


async def _store(request: Request) -> Backend:
    store: Backend = request.app.state.workspace.backend
    return store


async def _objects(request: Request) -> ArtifactStore:
    objects: ArtifactStore = request.app.state.workspace.artifacts
    return objects


Store = Annotated[Backend, Depends(_store)]
Objects = Annotated[ArtifactStore, Depends(_objects)]
