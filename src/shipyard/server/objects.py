"""``/api/v1/objects``: bytes in and out of the artifact store, streamed, by digest.

An upload is written chunk by chunk to a temporary file beside the workspace while it is
hashed, so a 2 GB artifact never sits in the server's memory; only bytes whose BLAKE3 digest
is the one named in the path are stored (a mismatch is a 400 and nothing is kept). A failed
upload is simply sent again (uploads are idempotent: the same bytes have the same name).
Downloads are served from the file with HTTP ranges, so an interrupted download resumes where
it stopped; the client checks the digest of what it got.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import anyio
from blake3 import blake3
from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from shipyard.artifacts import ArtifactStore, is_digest, safe_relative_path
from shipyard.entities import ArtifactRecord, Role
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.server.auth import role
from shipyard.server.deps import Objects, Store
from shipyard.server.errors import error_responses
from shipyard.server.schemas import ArtifactOut, ArtifactsIn

__all__ = ["MAX_OBJECT_BYTES", "router", "serve_object", "spooled"]

router = APIRouter(prefix="/api/v1", tags=["artifacts"], responses=error_responses())

MAX_OBJECT_BYTES = 64 * 2**30
"""The largest object one upload may carry (64 GiB)."""

_Digest = Annotated[str, PathParam(pattern=r"^[0-9a-f]{64}$", description="BLAKE3, 64 hex")]


class _TooLargeError(InvalidArgumentError):
    status = 413


@router.put(
    "/objects/{digest}",
    status_code=201,
    summary="Upload an object (the request body, streamed); stored only if its digest matches",
    **role(Role.MEMBER),
)
async def upload(digest: _Digest, request: Request, objects: Objects) -> dict[str, object]:
    if objects.exists(digest):
        async for _ in request.stream():  # drain: the client may already be sending
            pass
        return {"digest": digest, "stored": False}
    async with spooled(request) as (temp, got, size):
        if got != digest:
            raise InvalidArgumentError(
                f"the bytes sent hash to {got}, not {digest}: nothing was stored (send again)"
            )
        info = await anyio.to_thread.run_sync(lambda: objects.put_file(temp, link=True))
        return {"digest": info.digest, "size": size, "stored": info.stored}


@asynccontextmanager
async def spooled(request: Request) -> AsyncIterator[tuple[Path, str, int]]:
    """The request body written to a temporary file beside the workspace while it is hashed:
    ``(file, BLAKE3 digest, size)``; the file is removed on exit. Memory stays flat whatever
    the size, up to :data:`MAX_OBJECT_BYTES`."""
    spool = Path(request.app.state.workspace.settings.home) / "tmp"
    spool.mkdir(exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="upload-", dir=spool)
    temp = Path(name)
    try:
        hasher = blake3()
        size = 0
        with os.fdopen(handle, "wb") as file:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_OBJECT_BYTES:
                    raise _TooLargeError(f"an object is at most {MAX_OBJECT_BYTES // 2**30} GiB")
                hasher.update(chunk)
                await anyio.to_thread.run_sync(file.write, chunk)
        yield temp, hasher.hexdigest(), size
    finally:
        temp.unlink(missing_ok=True)


def _file(objects: ArtifactStore, digest: str) -> tuple[Path, BackgroundTask | None]:
    if not objects.exists(digest):
        raise NotFoundError(f"no object {digest} in the artifact store")
    local = objects.local_path(digest)
    if local is not None:
        return local, None
    folder = Path(tempfile.mkdtemp(prefix="download-"))
    fetched = objects.get_file(digest, folder / digest)
    return fetched, BackgroundTask(lambda: _remove(folder))


def _remove(folder: Path) -> None:
    for child in folder.iterdir():
        child.unlink(missing_ok=True)
    folder.rmdir()


@router.get(
    "/objects/{digest}",
    summary="Download an object (HTTP ranges: a broken download resumes)",
    response_class=FileResponse,
    **role(Role.VIEWER),
)
def download(digest: _Digest, objects: Objects) -> FileResponse:
    return serve_object(objects, digest)


def serve_object(
    objects: ArtifactStore, digest: str, media_type: str = "application/octet-stream"
) -> FileResponse:
    """An object's bytes from its file, with HTTP ranges and its digest in a header."""
    path, cleanup = _file(objects, digest)
    return FileResponse(
        path, media_type=media_type, headers={"x-shipyard-digest": digest}, background=cleanup
    )


@router.head("/objects/{digest}", summary="Whether the store holds an object", **role(Role.VIEWER))
def exists(digest: _Digest, objects: Objects) -> Response:
    if not objects.exists(digest):
        raise NotFoundError(f"no object {digest} in the artifact store")
    return Response(headers={"content-length": str(objects.info(digest))})


@router.post(
    "/runs/{run_id}/artifacts",
    response_model=list[ArtifactOut],
    status_code=201,
    summary="Record stored objects as a run's artifacts",
    **role(Role.MEMBER),
)
def log_artifacts(run_id: str, body: ArtifactsIn, store: Store, objects: Objects) -> object:
    store.get_run(run_id)
    records = []
    for item in body.artifacts:
        if not is_digest(item.digest) or not objects.exists(item.digest):
            raise NotFoundError(f"no object {item.digest} in the artifact store: upload it first")
        path = safe_relative_path(item.path)
        records.append(ArtifactRecord(path, item.digest, item.size, item.is_dir, item.file_count))
    store.log_artifacts(run_id, records)
    return [ArtifactOut.of(r) for r in records]
