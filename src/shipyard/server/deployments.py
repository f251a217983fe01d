"""``/api/v1`` for deployments: routes and rollouts, their events, live route counts, leases.

A deployment is written whole over the revision the writer read (``PUT``, compare-and-set: a
409 if it moved on), with its event in the same transaction, as the SQL store does locally.
The server decides who acts — the event's actor and a new deployment's ``created_by`` are
the caller — and which versions must be approved: besides those the client names, every
version that gets live traffic it did not have, and the version an alias moves to. The store
checks them inside the write, so a governed model's rules hold whatever a client sends.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shipyard.deploy.service import validate_deployment_name
from shipyard.entities import (
    Deployment,
    DeploymentEvent,
    DeploymentState,
    Role,
    Route,
    RouteMode,
    RouteStats,
    Strategy,
    Target,
)
from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError
from shipyard.registry import validate_model_name
from shipyard.server.auth import Identity, identity, role
from shipyard.server.deps import Store
from shipyard.server.errors import error_responses
from shipyard.store import Backend
from shipyard.store.wire import json_float

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["deployments"], responses=error_responses())
_READ, _WRITE = role(Role.VIEWER), role(Role.MEMBER)
_Caller = Annotated[Identity, Depends(identity)]
_I64, _I32 = 2**63, 2**31
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
_ALIAS = r"^([A-Za-z][A-Za-z0-9_\-]{0,63})?$"
_TEXT = r"^[^\x00]*$"  # PostgreSQL text holds no NUL
_Count = Annotated[int, Field(ge=0, lt=_I64)]
_Label = Annotated[str, StringConstraints(max_length=1000)]
_RESERVED = frozenset({"reason", "revision", "state", "routes"})
"""Keys the audit entry of an event sets itself (the event's details are merged into it)."""


def _known(name: str) -> bool:
    """Whether ``name`` could be a stored deployment's (the others are simply not found)."""
    try:
        validate_deployment_name(name)
    except InvalidArgumentError:
        return False
    return True


def _finite(value: Any) -> Any:
    """JSON of ``value`` with every NaN or infinity as ``null``: strict JSON has neither."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _strict(value: Any, where: str) -> Any:
    """``value`` if it holds no NaN or infinity, else a 400 naming ``where``."""
    if _finite(value) != value:
        raise InvalidArgumentError(f"{where}: numbers must be finite (no NaN or Infinity)")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RouteIn(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=_TEXT, examples=["stable"])
    model: str = Field(pattern=_NAME)
    version: int = Field(ge=1, lt=_I32)
    weight: float = Field(ge=0, le=100, description="Percent of live traffic (shadow: mirrored)")
    mode: RouteMode = RouteMode.LIVE
    ref: str = Field(default="", max_length=300, description="What the user asked for")

    def route(self) -> Route:
        return Route(self.name, self.model, self.version, self.weight, self.mode, self.ref)


class RouteOut(BaseModel):
    name: str
    model: str
    version: int
    weight: float | None
    mode: str
    ref: str = ""

    @classmethod
    def of(cls, r: Route) -> RouteOut:
        weight = r.weight if math.isfinite(r.weight) else None
        return cls(
            name=r.name,
            model=r.model,
            version=r.version,
            weight=weight,
            mode=r.mode.value,
            ref=r.ref,
        )


class DeploymentIn(_Strict):
    model: str = Field(pattern=_NAME)
    target: Target
    strategy: Strategy
    state: DeploymentState
    alias: str = Field(default="", pattern=_ALIAS, description="The alias a promotion moves")
    routes: list[RouteIn] = Field(min_length=1, max_length=64)
    spec: dict[str, Any] = Field(default_factory=dict)
    analysis: dict[str, Any] = Field(default_factory=dict)
    revision: int = Field(ge=0, lt=_I64 - 1, description="The revision read; 0 creates it")


class EventIn(_Strict):
    action: str = Field(min_length=1, max_length=64, pattern=_TEXT, examples=["canary.start"])
    reason: str = Field(default="", max_length=10_000, pattern=_TEXT)
    details: dict[str, Any] = Field(default_factory=dict)


class VersionRefIn(_Strict):
    model: str = Field(pattern=_NAME)
    version: int = Field(ge=1, lt=_I32)


class SaveIn(_Strict):
    deployment: DeploymentIn
    event: EventIn | None = Field(default=None, description="Its actor is the caller")
    require_approved: list[VersionRefIn] = Field(default_factory=list, max_length=64)
    move_alias_to: int | None = Field(
        default=None, ge=1, lt=_I32, description="Move the deployment's alias to this version"
    )


class DeploymentOut(BaseModel):
    name: str
    model: str
    target: str
    strategy: str
    state: str
    routes: list[RouteOut]
    revision: int
    created_at: int
    created_by: str
    updated_at: int
    alias: str = ""
    spec: dict[str, Any] = Field(default_factory=dict, description="NaN as null")
    analysis: dict[str, Any] = Field(default_factory=dict, description="NaN as null")

    @classmethod
    def of(cls, d: Deployment) -> DeploymentOut:
        return cls(
            name=d.name,
            model=d.model,
            target=d.target.value,
            strategy=d.strategy.value,
            state=d.state.value,
            routes=[RouteOut.of(r) for r in d.routes],
            revision=d.revision,
            created_at=d.created_at,
            created_by=d.created_by,
            updated_at=d.updated_at,
            alias=d.alias,
            spec=_finite(d.spec),
            analysis=_finite(d.analysis),
        )


class EventOut(BaseModel):
    seq: int
    deployment: str
    at: int
    actor: str
    action: str
    reason: str
    revision: int
    details: dict[str, Any] = Field(default_factory=dict)
    routes: list[RouteOut] = Field(default_factory=list)

    @classmethod
    def of(cls, e: DeploymentEvent) -> EventOut:
        return cls(
            seq=e.seq,
            deployment=e.deployment,
            at=e.at,
            actor=e.actor,
            action=e.action,
            reason=e.reason,
            revision=e.revision,
            details=_finite(e.details),
            routes=[RouteOut.of(r) for r in e.routes],
        )


class UseOut(BaseModel):
    deployment: str
    first_at: int = Field(description="When it first routed to the version (epoch ms)")


class RouteStatsIn(_Strict):
    deployment: str = Field(pattern=_NAME)
    route: str = Field(min_length=1, max_length=64, pattern=_TEXT)
    model: str = Field(pattern=_NAME)
    version: int = Field(ge=0, lt=_I32)
    requests: _Count = 0
    errors: _Count = 0
    latency_counts: list[_Count] = Field(default_factory=list, max_length=64)
    predictions: dict[_Label, _Count] = Field(default_factory=dict, max_length=1024)
    compared: _Count = 0
    agreements: _Count = 0
    abs_difference: float | None = Field(
        default=0.0, description='null: NaN; "Infinity"/"-Infinity" accepted'
    )
    mirrored_dropped: _Count = 0

    def stats(self) -> RouteStats:
        return RouteStats(
            deployment=self.deployment,
            route=self.route,
            model=self.model,
            version=self.version,
            requests=self.requests,
            errors=self.errors,
            latency_counts=tuple(self.latency_counts),
            predictions=dict(self.predictions),
            compared=self.compared,
            agreements=self.agreements,
            abs_difference=math.nan if self.abs_difference is None else self.abs_difference,
            mirrored_dropped=self.mirrored_dropped,
        )


class RouteStatsBatchIn(_Strict):
    server: str = Field(
        min_length=1, max_length=64, pattern=_TEXT, description="The model server process"
    )
    stats: list[RouteStatsIn] = Field(max_length=1000)


class RouteStatsOut(BaseModel):
    deployment: str
    route: str
    model: str
    version: int
    requests: int
    errors: int
    latency_counts: list[int]
    predictions: dict[str, int]
    compared: int
    agreements: int
    abs_difference: float | str | None = Field(description='NaN as null; "Infinity"')
    mirrored_dropped: int
    updated: int

    @classmethod
    def of(cls, s: RouteStats) -> RouteStatsOut:
        return cls(
            deployment=s.deployment,
            route=s.route,
            model=s.model,
            version=s.version,
            requests=s.requests,
            errors=s.errors,
            latency_counts=list(s.latency_counts),
            predictions=dict(s.predictions),
            compared=s.compared,
            agreements=s.agreements,
            abs_difference=json_float(s.abs_difference),
            mirrored_dropped=s.mirrored_dropped,
            updated=s.updated,
        )


class LeaseIn(_Strict):
    name: str = Field(max_length=200, pattern=_TEXT, examples=["deployment:churn-prod"])
    holder: str = Field(max_length=200, pattern=_TEXT)
    ttl_ms: int = Field(ge=0, le=2**62)


class LeaseRelease(_Strict):
    name: str = Field(max_length=200, pattern=_TEXT)
    holder: str = Field(max_length=200, pattern=_TEXT)


class LeaseOut(BaseModel):
    held: bool = Field(description="False: another holder has it")


def _approvals(store: Backend, deployment: Deployment, body: SaveIn) -> list[tuple[str, int]]:
    """The versions the store must find approved (when governed) inside the write: those the
    client names, any that gets live traffic it did not have at the revision read, and the
    one an alias moves to.

    The stored routes are read outside the write; that is safe because the write succeeds
    only over the same revision (revisions only grow), and a revision other than the stored
    one is refused here as the conflict the write would find.
    """
    wanted = {(v.model, v.version) for v in body.require_approved}
    live: set[tuple[str, int]] = set()
    known: set[tuple[str, int]] = set()
    if deployment.revision > 0:
        try:
            stored = store.get_deployment(deployment.name)
        except NotFoundError:
            stored = None  # the write says so
        if stored is not None:
            if stored.revision != deployment.revision:
                raise ConflictError(
                    f"deployment {deployment.name!r} changed while this change was being "
                    "made (another controller or user): look again and retry"
                )
            live = {(r.model, r.version) for r in stored.live_routes}
            known = {(r.model, r.version) for r in stored.routes}
    for route in deployment.routes:
        key = (route.model, route.version)
        if route.mode is RouteMode.LIVE and key not in live:
            wanted.add(key)
        elif key not in known:  # a shadow needs no approval, but must exist
            store.get_model_version(*key)
    if body.move_alias_to is not None and deployment.alias:
        wanted.add((deployment.model, body.move_alias_to))
    return sorted(wanted)


@router.get(
    "/deployments",
    response_model=list[DeploymentOut],
    summary="Every deployment, by name",
    **_READ,
)
def list_deployments(store: Store) -> list[DeploymentOut]:
    return [DeploymentOut.of(d) for d in store.list_deployments()]


@router.get("/deployments/{name}", response_model=DeploymentOut, summary="One deployment", **_READ)
def get_deployment(name: str, store: Store) -> DeploymentOut:
    if not _known(name):
        raise NotFoundError(f"no deployment named {name!r}: see `shipyard deploy ls`")
    return DeploymentOut.of(store.get_deployment(name))


@router.put(
    "/deployments/{name}",
    response_model=DeploymentOut,
    summary="Create (revision 0) or replace a deployment read at `revision` (409 if it moved "
    "on), with its event, approval checks and alias move in one transaction",
    **_WRITE,
)
def save_deployment(
    name: Annotated[str, Path(pattern=_NAME)], body: SaveIn, store: Store, caller: _Caller
) -> DeploymentOut:
    given = body.deployment
    if given.alias == "latest":
        raise InvalidArgumentError("alias 'latest' is reserved: it is not an alias to move")
    reserved = sorted(_RESERVED.intersection(body.event.details if body.event else ()))
    if reserved:
        raise InvalidArgumentError(
            f"event details cannot set {reserved}: the audit entry records those itself"
        )
    store.get_registered_model(given.model)
    deployment = Deployment(
        name=name,
        model=given.model,
        target=given.target,
        strategy=given.strategy,
        state=given.state,
        routes=tuple(r.route() for r in given.routes),
        revision=given.revision,
        created_at=0,
        created_by=caller.user,  # a new deployment's; the store keeps an existing one's
        updated_at=0,
        alias=given.alias,
        spec=_strict(given.spec, "deployment.spec"),
        analysis=_strict(given.analysis, "deployment.analysis"),
    )
    event = None
    if body.event is not None:
        event = DeploymentEvent(
            seq=0,
            deployment=name,
            at=0,
            actor=caller.user,
            action=body.event.action,
            reason=body.event.reason,
            revision=0,
            details=_strict(body.event.details, "event.details"),
        )
    saved = store.save_deployment(
        deployment,
        event=event,
        require_approved=_approvals(store, deployment, body),
        move_alias_to=body.move_alias_to,
    )
    return DeploymentOut.of(saved)


@router.get(
    "/deployments/{name}/events",
    response_model=list[EventOut],
    summary="A deployment's newest `limit` events, oldest first",
    **_READ,
)
def list_events(
    name: str,
    store: Store,
    limit: Annotated[int, Query(ge=0, lt=_I32, description="The newest this many")] = 100,
) -> list[EventOut]:
    if not _known(name):
        raise NotFoundError(f"no deployment named {name!r}: see `shipyard deploy ls`")
    return [EventOut.of(e) for e in store.list_deployment_events(name, limit=limit)]


@router.get(
    "/deployments/{name}/stats",
    response_model=list[RouteStatsOut],
    summary="Counts per route and version, summed over every model server",
    **_READ,
)
def get_route_stats(name: str, store: Store) -> list[RouteStatsOut]:
    if not _known(name):
        return []
    return [RouteStatsOut.of(s) for s in store.get_route_stats(name)]


@router.post(
    "/route-stats",
    status_code=204,
    summary="One model server's cumulative counts per route (replacing its previous ones)",
    **_WRITE,
)
def record_route_stats(body: RouteStatsBatchIn, store: Store) -> None:
    store.record_route_stats(body.server, [s.stats() for s in body.stats])


@router.get(
    "/models/{name}/versions/{version}/deployments",
    response_model=list[UseOut],
    summary="Every deployment that ever routed to a version, oldest first",
    **_READ,
)
def deployments_of_version(
    name: str, version: Annotated[int, Path(ge=1, lt=_I32)], store: Store
) -> list[UseOut]:
    try:
        validate_model_name(name)
    except InvalidArgumentError:
        return []
    return [
        UseOut(deployment=d, first_at=t) for d, t in store.deployments_of_version(name, version)
    ]


@router.post(
    "/leases/acquire",
    response_model=LeaseOut,
    summary="Take or renew a lease for `ttl_ms` (held: false while another has it)",
    **_WRITE,
)
def acquire_lease(body: LeaseIn, store: Store) -> LeaseOut:
    return LeaseOut(held=store.acquire_lease(body.name, body.holder, body.ttl_ms))


@router.post(
    "/leases/release",
    status_code=204,
    summary="Give a lease up (nothing happens if another holds it)",
    **_WRITE,
)
def release_lease(body: LeaseRelease, store: Store) -> None:
    store.release_lease(body.name, body.holder)
