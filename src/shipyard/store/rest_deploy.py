"""Deployments through a Shipyard server: the part of :class:`~shipyard.store.rest.RestBackend`
that reads and writes deployments, their events, live route counts and leases
(``/api/v1/deployments``, ``/api/v1/route-stats``, ``/api/v1/leases``).

A change is one ``PUT`` of the whole deployment over the revision read; the server writes it
with its event in one transaction, as the caller, and checks the approvals a governed model
needs whatever this client asks for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from shipyard.entities import (
    Deployment,
    DeploymentEvent,
    DeploymentState,
    Route,
    RouteMode,
    RouteStats,
    Strategy,
    Target,
)
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.store.wire import json_float

__all__ = ["DeploymentClient"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
"""What a deployment's (and a model's) name may be: anything else names nothing stored."""
_STATS_PAGE = 1000


def _no_deployment(name: str) -> NotFoundError:
    return NotFoundError(f"no deployment named {name!r}: see `shipyard deploy ls`")


def _strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinity as ``None``: strict JSON has neither."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict_json(v) for v in value]
    return value


def _route(data: Mapping[str, Any]) -> Route:
    weight = data.get("weight")
    return Route(
        name=data["name"],
        model=data["model"],
        version=int(data["version"]),
        weight=math.nan if weight is None else float(weight),
        mode=RouteMode(data.get("mode", "live")),
        ref=data.get("ref", ""),
    )


def _deployment(data: Mapping[str, Any]) -> Deployment:
    return Deployment(
        name=data["name"],
        model=data["model"],
        target=Target(data["target"]),
        strategy=Strategy(data["strategy"]),
        state=DeploymentState(data["state"]),
        routes=tuple(_route(r) for r in data["routes"]),
        revision=int(data["revision"]),
        created_at=int(data["created_at"]),
        created_by=data["created_by"],
        updated_at=int(data["updated_at"]),
        alias=data.get("alias", ""),
        spec=dict(data.get("spec", {})),
        analysis=dict(data.get("analysis", {})),
    )


def _event(data: Mapping[str, Any]) -> DeploymentEvent:
    return DeploymentEvent(
        seq=int(data["seq"]),
        deployment=data["deployment"],
        at=int(data["at"]),
        actor=data["actor"],
        action=data["action"],
        reason=data.get("reason", ""),
        revision=int(data["revision"]),
        details=dict(data.get("details", {})),
        routes=tuple(_route(r) for r in data.get("routes", ())),
    )


def _stats(data: Mapping[str, Any]) -> RouteStats:
    difference = data.get("abs_difference")
    return RouteStats(
        deployment=data["deployment"],
        route=data["route"],
        model=data["model"],
        version=int(data["version"]),
        requests=int(data["requests"]),
        errors=int(data["errors"]),
        latency_counts=tuple(int(n) for n in data.get("latency_counts", ())),
        predictions={str(k): int(v) for k, v in data.get("predictions", {}).items()},
        compared=int(data["compared"]),
        agreements=int(data["agreements"]),
        abs_difference=math.nan if difference is None else float(difference),
        mirrored_dropped=int(data["mirrored_dropped"]),
        updated=int(data["updated"]),
    )


def _stats_body(s: RouteStats) -> dict[str, Any]:
    return {
        "deployment": s.deployment,
        "route": s.route,
        "model": s.model,
        "version": s.version,
        "requests": s.requests,
        "errors": s.errors,
        "latency_counts": list(s.latency_counts),
        "predictions": dict(s.predictions),
        "compared": s.compared,
        "agreements": s.agreements,
        "abs_difference": json_float(s.abs_difference),
        "mirrored_dropped": s.mirrored_dropped,
    }


class DeploymentClient:
    """Deployment methods of the ``Backend`` protocol over HTTP (mixed into ``RestBackend``)."""

    def _api(self, method: str, path: str, **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError  # RestBackend's

    def save_deployment(
        self,
        deployment: Deployment,
        *,
        event: DeploymentEvent | None = None,
        require_approved: Sequence[tuple[str, int]] = (),
        move_alias_to: int | None = None,
    ) -> Deployment:
        # The server decides who acts (the event's actor, a new deployment's created_by) and
        # when (created_at, updated_at, the event's time).
        body = {
            "deployment": {
                "model": deployment.model,
                "target": deployment.target.value,
                "strategy": deployment.strategy.value,
                "state": deployment.state.value,
                "alias": deployment.alias,
                "routes": [r.to_dict() for r in deployment.routes],
                "spec": _strict_json(deployment.spec),
                "analysis": _strict_json(deployment.analysis),
                "revision": deployment.revision,
            },
            "event": None
            if event is None
            else {
                "action": event.action,
                "reason": event.reason,
                "details": _strict_json(event.details),
            },
            "require_approved": [{"model": m, "version": v} for m, v in require_approved],
            "move_alias_to": move_alias_to,
        }
        if not _NAME.fullmatch(deployment.name):  # nor could it be part of the URL
            raise InvalidArgumentError(
                f"invalid deployment name {deployment.name!r}: use 1-128 letters, digits, "
                "'_', '.' or '-'"
            )
        return _deployment(self._api("PUT", f"/deployments/{deployment.name}", json=body))

    def get_deployment(self, name: str) -> Deployment:
        if not _NAME.fullmatch(name):
            raise _no_deployment(name)
        return _deployment(self._api("GET", f"/deployments/{name}"))

    def list_deployments(self) -> list[Deployment]:
        return [_deployment(d) for d in self._api("GET", "/deployments")]

    def list_deployment_events(self, name: str, *, limit: int = 100) -> list[DeploymentEvent]:
        if not _NAME.fullmatch(name):
            raise _no_deployment(name)
        found = self._api("GET", f"/deployments/{name}/events", params={"limit": limit})
        return [_event(e) for e in found]

    def deployments_of_version(self, model: str, version: int) -> list[tuple[str, int]]:
        if not _NAME.fullmatch(model) or not 0 < version < 2**31:
            return []  # no deployment routes to what cannot be registered
        found = self._api("GET", f"/models/{model}/versions/{version}/deployments")
        return [(u["deployment"], int(u["first_at"])) for u in found]

    def record_route_stats(self, server: str, stats: Sequence[RouteStats]) -> None:
        items = [_stats_body(s) for s in stats]
        for start in range(0, len(items), _STATS_PAGE):
            chunk = items[start : start + _STATS_PAGE]
            self._api("POST", "/route-stats", json={"server": server, "stats": chunk})

    def get_route_stats(self, deployment: str) -> list[RouteStats]:
        if not _NAME.fullmatch(deployment):
            return []
        return [_stats(s) for s in self._api("GET", f"/deployments/{deployment}/stats")]

    def acquire_lease(self, name: str, holder: str, ttl_ms: int) -> bool:
        body = {"name": name, "holder": holder, "ttl_ms": ttl_ms}
        return bool(self._api("POST", "/leases/acquire", json=body)["held"])

    def release_lease(self, name: str, holder: str) -> None:
        self._api("POST", "/leases/release", json={"name": name, "holder": holder})
