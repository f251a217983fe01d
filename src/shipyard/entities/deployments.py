"""The nouns of deployments: where a model is live, how its traffic is split, what changed it.

A :class:`Deployment` is a named object in the metadata store. Its :attr:`~Deployment.routes`
say which model versions answer (``live``, by traffic weight) or only listen (``shadow``); its
:attr:`~Deployment.strategy` and :attr:`~Deployment.state` say what the rollout controller is
doing; every change is a :class:`DeploymentEvent` with who, when, why and the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "Deployment",
    "DeploymentEvent",
    "DeploymentState",
    "Route",
    "RouteMode",
    "RouteStats",
    "Strategy",
    "Target",
]


class RouteMode(StrEnum):
    """``live`` routes answer callers (by weight); ``shadow`` routes get copies, never answer."""

    LIVE = "live"
    SHADOW = "shadow"


class Strategy(StrEnum):
    """How the deployment's traffic is being changed."""

    SINGLE = "single"
    """One live route; nothing in progress."""
    CANARY = "canary"
    AB = "ab"
    SHADOW = "shadow"
    BATCH = "batch"
    EDGE = "edge"


class Target(StrEnum):
    """Where the model is live: a model server, scheduled batch scoring, or an ONNX package."""

    ONLINE = "online"
    BATCH = "batch"
    EDGE = "edge"


class DeploymentState(StrEnum):
    """Where a deployment stands."""

    STABLE = "stable"
    """Serving its routes; no rollout in progress."""
    PROGRESSING = "progressing"
    """A canary (or A/B test) the controller is analysing and moving along."""
    PAUSED = "paused"
    """Frozen by a person: the controller neither advances nor rolls back."""
    HELD = "held"
    """Frozen by the controller: not enough traffic before a step's deadline."""
    PROMOTED = "promoted"
    """The last rollout ended with the challenger promoted."""
    ROLLED_BACK = "rolled_back"
    """The last rollout ended with the challenger removed."""
    CONCLUDED = "concluded"
    """An A/B test ended (a winner promoted, or none)."""

    @property
    def in_progress(self) -> bool:
        return self in (DeploymentState.PROGRESSING, DeploymentState.PAUSED, DeploymentState.HELD)


@dataclass(frozen=True, slots=True)
class Route:
    """One model version behind a deployment.

    Attributes:
        name: the route's name in the deployment (``stable``, ``canary``, ``a``, ``shadow``).
        model: the registered model.
        version: its version number.
        weight: percent of live traffic (0-100); live weights add up to 100. For a shadow
            route, the percent of requests mirrored to it.
        mode: live or shadow.
        ref: what the user asked for (``churn@challenger``), for the record.
    """

    name: str
    model: str
    version: int
    weight: float
    mode: RouteMode = RouteMode.LIVE
    ref: str = ""

    @property
    def model_ref(self) -> str:
        return f"{self.model}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "version": self.version,
            "weight": self.weight,
            "mode": self.mode.value,
            "ref": self.ref,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Route:
        return cls(
            name=str(data["name"]),
            model=str(data["model"]),
            version=int(data["version"]),
            weight=float(data["weight"]),
            mode=RouteMode(data.get("mode", "live")),
            ref=str(data.get("ref", "")),
        )


@dataclass(frozen=True, slots=True)
class Deployment:
    """A named deployment of one registered model.

    Attributes:
        revision: raised by every change; a model server re-reads its routes when it moves.
        spec: the strategy's settings (canary steps, interval, rules; A/B variants; batch
            input and schedule), as given.
        analysis: what the controller has measured and decided so far (JSON-able).
    """

    name: str
    model: str
    target: Target
    strategy: Strategy
    state: DeploymentState
    routes: tuple[Route, ...]
    revision: int
    created_at: int
    created_by: str
    updated_at: int
    alias: str = ""
    """The alias the stable route follows (``champion``); a promotion moves it."""
    spec: dict[str, Any] = field(default_factory=dict)
    analysis: dict[str, Any] = field(default_factory=dict)

    def route(self, name: str) -> Route | None:
        return next((r for r in self.routes if r.name == name), None)

    @property
    def live_routes(self) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if r.mode is RouteMode.LIVE)

    @property
    def shadow_routes(self) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if r.mode is RouteMode.SHADOW)


@dataclass(frozen=True, slots=True)
class DeploymentEvent:
    """One change of a deployment: who, when, why, and the numbers that decided it."""

    seq: int
    deployment: str
    at: int
    actor: str
    action: str
    """``create``, ``canary.start``, ``canary.advance``, ``promote``, ``rollback``, ``pause``..."""
    reason: str
    revision: int
    """The deployment's revision after the change."""
    details: dict[str, Any] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    """The routes after the change."""


@dataclass(frozen=True, slots=True)
class RouteStats:
    """What one route of a deployment has answered so far (cumulative counts).

    Model servers write their own counts; readers get the sum over every server.

    Attributes:
        latency_counts: requests per latency bucket (upper edges in
            ``shipyard.deploy.stats.LATENCY_EDGES_MS``; the last bucket is open).
        predictions: answered rows per prediction value (class label, or a rounded number).
        mirrored_dropped: shadow copies dropped because the mirror queue was full.
        agreements: shadow rows whose prediction equalled the live one (of ``compared``).
    """

    deployment: str
    route: str
    model: str
    version: int
    requests: int = 0
    errors: int = 0
    latency_counts: tuple[int, ...] = ()
    predictions: dict[str, int] = field(default_factory=dict)
    compared: int = 0
    agreements: int = 0
    abs_difference: float = 0.0
    mirrored_dropped: int = 0
    updated: int = 0
