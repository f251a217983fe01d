"""``/api/v1/gc``: garbage collection of the server's artifact store, for admins.

``shipyard gc`` through a team server (``SHIPYARD_SERVER``) asks the server to collect in its
own store: the roots are what its metadata store refers to, the digests the caller's pointer
files name (sent as ``keep``), and the pointer files in the server's own project folder. The
grace period protects uploads in progress, as it does locally. ``GET /api/v1/gc/roots`` gives
the roots alone, for ``shipyard gc --remote URL`` run by a client against a remote it can
reach. A collection that removed something is written to the audit log.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from shipyard.artifacts.gc import GcReport
from shipyard.entities import Role
from shipyard.server.auth import Identity, identity, role
from shipyard.server.deps import Objects, Store
from shipyard.server.errors import error_responses

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["artifacts"], responses=error_responses())
_ADMIN = role(Role.ADMIN)
_Caller = Annotated[Identity, Depends(identity)]
_Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class GcIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep: list[_Digest] = Field(
        default_factory=list,
        max_length=1_000_000,
        description="Digests to keep as well (those the caller's pointer files name)",
    )
    keep_last: int | None = Field(
        default=None,
        ge=1,
        description="Keep the bytes of only the newest N versions of each dataset",
    )
    older_than_s: float = Field(
        default=3600.0, ge=0, le=10 * 365 * 86400, description="Grace period in seconds"
    )
    dry_run: bool = False
    repack: bool = True


class RootsOut(BaseModel):
    digests: list[str]


@router.post(
    "/gc",
    response_model=GcReport,
    summary="Remove objects nothing refers to from the server's store, and repack",
    **_ADMIN,
)
def collect(
    body: GcIn, request: Request, store: Store, objects: Objects, caller: _Caller
) -> GcReport:
    from shipyard.data.gc import collect_in, pointer_digests

    workspace = request.app.state.workspace
    keep = set(body.keep) | pointer_digests([workspace.settings.home.parent.resolve()])
    report = collect_in(
        store,
        objects,
        keep=keep,
        keep_last=body.keep_last,
        older_than=body.older_than_s,
        dry_run=body.dry_run,
        repack=body.repack,
    )
    if not report.dry_run and (report.removed or report.temporaries or report.loose_packed):
        asked = {"keep_last": body.keep_last, "older_than_s": body.older_than_s}
        store.record_audit(caller.user, "gc", "artifacts", dataclasses.asdict(report) | asked)
    return report


@router.get(
    "/gc/roots",
    response_model=RootsOut,
    summary="Every digest the metadata refers to (the roots of a garbage collection)",
    **_ADMIN,
)
def roots(
    store: Store,
    keep_last: Annotated[int | None, Query(ge=1)] = None,
    since_ms: Annotated[int | None, Query(ge=0)] = None,
) -> Any:
    found = store.referenced_digests(keep_last=keep_last, since_ms=since_ms)
    return {"digests": sorted(found)}
