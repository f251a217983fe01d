"""The deployment rules: what may go live, how a canary starts, advances, ends and is undone.

They live here, above the store, so that the CLI, the Python API, the controller inside a
model server and (later) the platform server enforce the same rules. Each change reaches the
store as one compare-and-set write with its event and audit entry.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from shipyard.deploy.ab import AbReport, AbSpec, VariantCounts, ab_report
from shipyard.deploy.analysis import (
    CanarySpec,
    Decision,
    Snapshot,
    canary_weights,
    restart_step,
    start_analysis,
)
from shipyard.entities import (
    Deployment,
    DeploymentEvent,
    DeploymentState,
    ModelVersion,
    Route,
    RouteMode,
    RouteStats,
    Strategy,
    Target,
)
from shipyard.errors import ConflictError, InvalidArgumentError, PermissionDeniedError
from shipyard.registry import Registry, parse_model_ref
from shipyard.store import Backend

__all__ = [
    "CONTROLLER",
    "DeploymentStatus",
    "Deployments",
    "next_cron",
    "validate_deployment_name",
]

CONTROLLER = "shipyard-controller"
"""The actor the rollout controller records its decisions under."""
STABLE, BASELINE, CANARY, SHADOW = "stable", "baseline", "canary", "shadow"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


_T = TypeVar("_T")
_P = ParamSpec("_P")


def _retried(method: Callable[_P, _T]) -> Callable[_P, _T]:
    """Run a person's change again (it re-reads the deployment) when the controller saved
    its numbers between the read and the write; give up after a few tries."""

    @functools.wraps(method)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        for _ in range(4):
            try:
                return method(*args, **kwargs)
            except ConflictError:
                time.sleep(0.05)
        return method(*args, **kwargs)

    return run


def validate_deployment_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):
        raise InvalidArgumentError(
            f"invalid deployment name {name!r}: use 1-128 letters, digits, '_', '.' or '-'"
        )
    return name


@dataclass(frozen=True)
class DeploymentStatus:
    """A deployment with the live numbers of each route."""

    deployment: Deployment
    stats: list[RouteStats]

    def stats_of(self, route: Route) -> RouteStats | None:
        return next(
            (s for s in self.stats if s.route == route.name and s.version == route.version), None
        )


def _event(action: str, reason: str, actor: str, details: dict[str, Any] | None = None) -> Any:
    return DeploymentEvent(
        seq=0,
        deployment="",
        at=0,
        actor=actor,
        action=action,
        reason=reason,
        revision=0,
        details=details or {},
    )


class Deployments:
    """Deployments as one user (or the controller) sees and changes them.

    Args:
        backend: the metadata store.
        user: who is acting.
    """

    def __init__(self, backend: Backend, user: str, *, home: str | Path | None = None) -> None:
        self.backend = backend
        self.user = user
        self.home = home
        self.registry = Registry(backend, user)

    # reading -------------------------------------------------------------------------------

    def get(self, name: str) -> Deployment:
        return self.backend.get_deployment(validate_deployment_name(name))

    def all(self) -> list[Deployment]:
        return self.backend.list_deployments()

    def history(self, name: str, limit: int = 100) -> list[DeploymentEvent]:
        return self.backend.list_deployment_events(validate_deployment_name(name), limit=limit)

    def status(self, name: str) -> DeploymentStatus:
        deployment = self.get(name)
        return DeploymentStatus(deployment, self.backend.get_route_stats(deployment.name))

    # changing ------------------------------------------------------------------------------

    def _live_version(self, ref: str) -> ModelVersion:
        """The version ``ref`` names; the approval of a governed model is checked again in
        the write."""
        version = self.registry.resolve(ref)
        model = self.backend.get_registered_model(version.model)
        if model.governed and version.review.value != "approved":
            raise_unapproved(version)
        return version

    def create(self, name: str, model_ref: str, *, reason: str = "") -> Deployment:
        """A deployment with one live route to the version ``model_ref`` names. When the
        reference is an alias (``churn@champion``), a promotion later moves that alias."""
        validate_deployment_name(name)
        _, selector = parse_model_ref(model_ref)
        version = self._live_version(model_ref)
        alias = "" if selector == "latest" or selector.isdigit() else selector
        deployment = replace(
            self._new(name, version, model_ref, Target.ONLINE, Strategy.SINGLE), alias=alias
        )
        return self.backend.save_deployment(
            deployment,
            event=_event("create", reason or f"created with {version.ref}", self.user),
            require_approved=[(version.model, version.version)],
        )

    @_retried
    def canary(
        self, name: str, model_ref: str, spec: CanarySpec | None = None, *, reason: str = ""
    ) -> Deployment:
        """Start a canary of ``model_ref`` against the deployment's stable route.

        Raises:
            InvalidArgumentError: a rollout is already in progress, the challenger is another
                model or already the stable version.
            PermissionDeniedError: a governed model's challenger is not approved.
        """
        spec = spec or CanarySpec()
        deployment = self.get(name)
        self._can_start(deployment, "a canary")
        stable = _stable_route(deployment)
        version = self._live_version(model_ref)
        if version.model != deployment.model:
            raise InvalidArgumentError(
                f"deployment {name!r} serves {deployment.model}; a canary must be a version of "
                f"it, not of {version.model}"
            )
        if version.version == stable.version:
            raise InvalidArgumentError(
                f"{version.ref} is already the stable version of {name!r}: nothing to compare"
            )
        weight = spec.steps[0]
        canary = Route(CANARY, version.model, version.version, weight, RouteMode.LIVE, model_ref)
        routes = (*_canary_routes(stable, canary, weight), *deployment.shadow_routes)
        baseline_now, canary_now = self._snapshots(deployment.name, routes[1], canary)
        reference, _ = self._snapshots(deployment.name, stable, canary)
        analysis = start_analysis(spec, baseline_now, canary_now, _now_ms(), reference)
        changed = replace(
            deployment,
            strategy=Strategy.CANARY,
            state=DeploymentState.PROGRESSING,
            routes=routes,
            spec={"canary": spec.to_dict(), "challenger": model_ref},
            analysis=analysis,
        )
        return self.backend.save_deployment(
            changed,
            event=_event(
                "canary.start",
                reason or f"canary {version.ref} at {weight:g}% against {stable.model_ref}",
                self.user,
                {"challenger": version.ref, "stable": stable.model_ref, "spec": spec.to_dict()},
            ),
            require_approved=[(version.model, version.version)],
        )

    @staticmethod
    def _online(deployment: Deployment, doing: str) -> None:
        if deployment.target is not Target.ONLINE:
            raise InvalidArgumentError(
                f"deployment {deployment.name!r} is a {deployment.target.value} deployment: "
                f"{doing} is for deployments a model server answers for"
            )

    @classmethod
    def _can_start(cls, deployment: Deployment, doing: str) -> None:
        """An online deployment with no rollout in progress, or a clear error."""
        cls._online(deployment, doing)
        if deployment.state.in_progress:
            name = deployment.name
            raise InvalidArgumentError(
                f"deployment {name!r} already has a {deployment.strategy.value} in progress "
                f"({deployment.state.value}): let it finish, or `shipyard deploy rollback {name}`"
            )

    def _snapshots(self, name: str, compared: Route, canary: Route) -> tuple[Snapshot, Snapshot]:
        by_key = {(s.route, s.version): s for s in self.backend.get_route_stats(name)}
        return (
            Snapshot.of(by_key.get((compared.name, compared.version))),
            Snapshot.of(by_key.get((canary.name, canary.version))),
        )

    def apply(
        self, deployment: Deployment, decision: Decision, *, actor: str = CONTROLLER
    ) -> Deployment:
        """Store what the controller decided at one look (``wait`` stores the numbers only)."""
        if decision.action == "wait":
            return self.backend.save_deployment(replace(deployment, analysis=decision.analysis))
        if decision.action == "rollback":
            return self._end_canary(
                deployment,
                decision.reason,
                actor,
                {"rule": decision.rule, "numbers": decision.numbers},
                analysis=decision.analysis,
            )
        if decision.action == "promote":
            return self._promote(
                deployment, decision.reason, actor, decision.numbers, decision.analysis
            )
        if decision.action == "hold":
            return self.backend.save_deployment(
                replace(deployment, state=DeploymentState.HELD, analysis=decision.analysis),
                event=_event("canary.hold", decision.reason, actor, decision.numbers),
            )
        if decision.action == "advance":
            weight = float(decision.analysis["weight"])
            canary = deployment.route(CANARY)
            if canary is None:
                raise InvalidArgumentError(f"deployment {deployment.name!r} has no canary route")
            routes = (
                *_canary_routes(_stable_route(deployment), canary, weight),
                *deployment.shadow_routes,
            )
            return self.backend.save_deployment(
                replace(deployment, routes=routes, analysis=decision.analysis),
                event=_event("canary.advance", decision.reason, actor, decision.numbers),
                require_approved=[(r.model, r.version) for r in routes if r.name == CANARY],
            )
        raise ValueError(f"unknown decision {decision.action!r}")

    @_retried
    def promote(self, name: str, *, reason: str = "") -> Deployment:
        """End the rollout in progress now with the challenger promoted (a person decides)."""
        deployment = self.get(name)
        if deployment.state is DeploymentState.ROLLED_BACK:
            raise InvalidArgumentError(
                f"deployment {name!r} was rolled back: there is no challenger to promote; "
                f"start a new canary (`shipyard deploy canary {name} --model ...`)"
            )
        if deployment.strategy is Strategy.AB:
            raise InvalidArgumentError(
                f"deployment {name!r} runs an A/B test: `shipyard deploy conclude {name}` "
                "promotes its winner, `shipyard deploy rollback` ends it"
            )
        if not deployment.state.in_progress or deployment.route(CANARY) is None:
            raise InvalidArgumentError(
                f"deployment {name!r} has no rollout in progress ({deployment.state.value}): "
                "nothing to promote"
            )
        return self._promote(
            deployment, reason or "promoted by hand", self.user, {}, deployment.analysis
        )

    def _promote(
        self,
        deployment: Deployment,
        reason: str,
        actor: str,
        numbers: dict[str, Any],
        analysis: dict[str, Any],
    ) -> Deployment:
        canary = deployment.route(CANARY)
        stable = _stable_route(deployment)
        if canary is None:
            raise InvalidArgumentError(f"deployment {deployment.name!r} has no canary route")
        routes = (
            Route(STABLE, canary.model, canary.version, 100.0, RouteMode.LIVE, canary.ref),
            *deployment.shadow_routes,
        )
        return self.backend.save_deployment(
            replace(
                deployment,
                strategy=Strategy.SINGLE,
                state=DeploymentState.PROMOTED,
                routes=routes,
                analysis=analysis | {"previous": stable.to_dict(), "outcome": "promoted"},
            ),
            event=_event(
                "promote",
                reason,
                actor,
                {"promoted": canary.model_ref, "replaced": stable.model_ref, "numbers": numbers}
                | ({"alias": f"{deployment.model}@{deployment.alias}"} if deployment.alias else {}),
            ),
            require_approved=[(canary.model, canary.version)],
            move_alias_to=canary.version,  # in the same transaction: never for a lost race
        )

    @_retried
    def rollback(self, name: str, *, reason: str = "") -> Deployment:
        """Undo: a rollout in progress ends with its challenger removed; a promoted deployment
        returns to the version it replaced (and its alias with it)."""
        deployment = self.get(name)
        if deployment.state.in_progress:
            return self._end_canary(deployment, reason or "rolled back by hand", self.user, {})
        previous = deployment.analysis.get("previous")
        if deployment.state is DeploymentState.PROMOTED and previous:
            back = Route.from_dict(previous)
            current = _stable_route(deployment)
            return self.backend.save_deployment(
                replace(
                    deployment,
                    state=DeploymentState.ROLLED_BACK,
                    routes=(replace(back, name=STABLE, weight=100.0), *deployment.shadow_routes),
                    analysis=deployment.analysis | {"previous": None, "outcome": "rolled_back"},
                ),
                event=_event(
                    "rollback",
                    reason or f"rolled back by hand from {current.model_ref} to {back.model_ref}",
                    self.user,
                    {"removed": current.model_ref, "restored": back.model_ref},
                ),
                require_approved=[(back.model, back.version)],
                move_alias_to=back.version,
            )
        raise InvalidArgumentError(
            f"deployment {name!r} has nothing to roll back ({deployment.state.value})"
        )

    def _end_canary(
        self,
        deployment: Deployment,
        reason: str,
        actor: str,
        details: dict[str, Any],
        analysis: dict[str, Any] | None = None,
    ) -> Deployment:
        if deployment.strategy is Strategy.AB:
            # An A/B test ends with the routes it replaced.
            before = tuple(Route.from_dict(r) for r in deployment.spec.get("before", ()))
            kept = before or (replace(deployment.live_routes[0], name=STABLE, weight=100.0),)
            removed = [r.model_ref for r in deployment.live_routes if r not in kept]
            return self.backend.save_deployment(
                replace(
                    deployment,
                    strategy=Strategy.SINGLE,
                    state=DeploymentState.ROLLED_BACK,
                    routes=(*kept, *deployment.shadow_routes),
                    analysis=deployment.analysis | {"outcome": "rolled_back"},
                ),
                event=_event("rollback", reason, actor, details | {"removed": removed}),
            )
        stable = _stable_route(deployment)
        canary = deployment.route(CANARY)
        return self.backend.save_deployment(
            replace(
                deployment,
                strategy=Strategy.SINGLE,
                state=DeploymentState.ROLLED_BACK,
                routes=(replace(stable, weight=100.0), *deployment.shadow_routes),
                analysis=(analysis if analysis is not None else deployment.analysis)
                | {"outcome": "rolled_back"},
            ),
            event=_event(
                "rollback",
                reason,
                actor,
                details | ({"removed": canary.model_ref} if canary else {}),
            ),
        )

    @_retried
    def shadow(
        self, name: str, model_ref: str, percent: float = 100.0, *, reason: str = ""
    ) -> Deployment:
        """Mirror ``percent`` of the live requests to ``model_ref`` (its answers are compared
        and logged, never returned). Any version may be a shadow, approved or not."""
        if not 0 < percent <= 100:
            raise InvalidArgumentError(f"--percent must lie in (0, 100], not {percent:g}")
        deployment = self.get(name)
        self._online(deployment, "shadow traffic")
        version = self.registry.resolve(model_ref)
        live = {(r.model, r.version) for r in deployment.live_routes}
        if (version.model, version.version) in live:
            raise InvalidArgumentError(
                f"{version.ref} already answers live traffic in {name!r}: a shadow must be "
                "another version"
            )
        route = Route(SHADOW, version.model, version.version, percent, RouteMode.SHADOW, model_ref)
        routes = (*(r for r in deployment.routes if r.name != SHADOW), route)
        return self.backend.save_deployment(
            replace(deployment, routes=routes),
            event=_event(
                "shadow.start",
                reason or f"mirroring {percent:g}% of requests to {version.ref}",
                self.user,
                {"shadow": version.ref, "percent": percent},
            ),
        )

    @_retried
    def stop_shadow(self, name: str, *, reason: str = "") -> Deployment:
        """Stop mirroring to the shadow route."""
        deployment = self.get(name)
        shadow = deployment.route(SHADOW)
        if shadow is None:
            raise InvalidArgumentError(f"deployment {name!r} has no shadow route")
        return self.backend.save_deployment(
            replace(deployment, routes=tuple(r for r in deployment.routes if r.name != SHADOW)),
            event=_event(
                "shadow.stop",
                reason or f"stopped mirroring to {shadow.model_ref}",
                self.user,
                {"shadow": shadow.model_ref},
            ),
        )

    # batch and edge ------------------------------------------------------------------------

    def batch(
        self,
        name: str,
        model_ref: str,
        *,
        input: str,
        output: str,
        schedule: str | None = None,
        reason: str = "",
    ) -> Deployment:
        """Record scheduled batch scoring of ``input`` into the folder ``output`` (one Parquet
        file per run), on a cron ``schedule`` (None: only when run by hand).

        Raises:
            InvalidArgumentError: a schedule that is not a 5-field cron expression.
        """
        validate_deployment_name(name)
        version = self._live_version(model_ref)
        next_run = next_cron(schedule, _now_ms()) if schedule else None
        deployment = self._new(name, version, model_ref, Target.BATCH, Strategy.BATCH)
        deployment = replace(
            deployment,
            spec={"input": input, "output": output, "schedule": schedule},
            analysis={"next_run": next_run, "runs": 0},
        )
        return self.backend.save_deployment(
            deployment,
            event=_event(
                "create",
                reason
                or f"batch scoring of {input} with {version.ref}"
                + (f" on {schedule!r}" if schedule else ""),
                self.user,
                {"input": input, "output": output, "schedule": schedule},
            ),
            require_approved=[(version.model, version.version)],
        )

    def due_batches(self, now_ms: int | None = None) -> list[Deployment]:
        """Batch deployments whose scheduled run is due."""
        now = now_ms if now_ms is not None else _now_ms()
        return [
            d
            for d in self.backend.list_deployments()
            if d.target is Target.BATCH
            and d.analysis.get("next_run") is not None
            and int(d.analysis["next_run"]) <= now
        ]

    def record_batch_run(
        self, name: str, outcome: dict[str, Any], *, ok: bool = True, actor: str | None = None
    ) -> Deployment:
        """Record one run of a batch deployment and when the next is due."""
        deployment = self.get(name)
        if deployment.target is not Target.BATCH:
            raise InvalidArgumentError(f"deployment {name!r} is not a batch deployment")
        schedule = deployment.spec.get("schedule")
        now = _now_ms()
        analysis = deployment.analysis | {
            "next_run": next_cron(schedule, now) if schedule else None,
            "last_run": now,
            "last_outcome": outcome,
            "runs": int(deployment.analysis.get("runs", 0)) + 1,
        }
        action = "batch.run" if ok else "batch.failed"
        reason = (
            f"scored {outcome.get('rows')} rows into {outcome.get('output')}"
            if ok
            else f"batch run failed: {outcome.get('error')}"
        )
        return self.backend.save_deployment(
            replace(deployment, analysis=analysis),
            event=_event(action, reason, actor or self.user, outcome),
        )

    def edge(
        self, name: str, model_ref: str, *, package: str, parity: dict[str, Any], reason: str = ""
    ) -> Deployment:
        """Record an exported edge package (an ONNX folder) of ``model_ref`` as a deployment."""
        validate_deployment_name(name)
        version = self._live_version(model_ref)
        deployment = replace(
            self._new(name, version, model_ref, Target.EDGE, Strategy.EDGE),
            spec={"package": package, "parity": parity},
        )
        return self.backend.save_deployment(
            deployment,
            event=_event(
                "create",
                reason or f"edge package of {version.ref} at {package}",
                self.user,
                {"package": package, "parity": parity},
            ),
            require_approved=[(version.model, version.version)],
        )

    def _new(
        self,
        name: str,
        version: ModelVersion,
        model_ref: str,
        target: Target,
        strategy: Strategy,
    ) -> Deployment:
        return Deployment(
            name=name,
            model=version.model,
            target=target,
            strategy=strategy,
            state=DeploymentState.STABLE,
            routes=(
                Route(STABLE, version.model, version.version, 100.0, RouteMode.LIVE, model_ref),
            ),
            revision=0,
            created_at=0,
            created_by=self.user,
            updated_at=0,
        )

    # A/B tests -----------------------------------------------------------------------------

    @_retried
    def ab(
        self,
        name: str,
        variants: Sequence[tuple[str, str, float]],
        spec: AbSpec | None = None,
        *,
        reason: str = "",
    ) -> Deployment:
        """Start an A/B test: live routes named by variant, weights adding up to 100.

        Raises:
            InvalidArgumentError: fewer than two variants, weights that do not add up to 100,
                a variant named twice, a rollout in progress.
        """
        spec = spec or AbSpec()
        deployment = self.get(name)
        self._can_start(deployment, "an A/B test")
        if len(variants) < 2:
            raise InvalidArgumentError("an A/B test needs at least two --variant")
        names = [v[0] for v in variants]
        if len(set(names)) != len(names) or SHADOW in names:
            raise InvalidArgumentError(f"variant names must differ (and not be 'shadow'): {names}")
        total = sum(v[2] for v in variants)
        if abs(total - 100) > 1e-9:
            raise InvalidArgumentError(
                f"variant weights add up to {total:g}, not 100: e.g. a=churn@3:50 b=churn@4:50"
            )
        routes = []
        for variant, ref, weight in variants:
            version = self._live_version(ref)
            if version.model != deployment.model:
                raise InvalidArgumentError(
                    f"deployment {name!r} serves {deployment.model}; variant {variant} is "
                    f"{version.model}"
                )
            routes.append(
                Route(variant, version.model, version.version, weight, RouteMode.LIVE, ref)
            )
        baseline = {
            f"{s.route}@{s.version}": s.requests for s in self.backend.get_route_stats(name)
        }
        changed = replace(
            deployment,
            strategy=Strategy.AB,
            state=DeploymentState.PROGRESSING,
            routes=(*routes, *deployment.shadow_routes),
            spec={"ab": spec.to_dict(), "before": [r.to_dict() for r in deployment.live_routes]},
            analysis={"started": _now_ms(), "baseline_requests": baseline},
        )
        return self.backend.save_deployment(
            changed,
            event=_event(
                "ab.start",
                reason
                or "A/B test " + ", ".join(f"{r.name}={r.model_ref} {r.weight:g}%" for r in routes),
                self.user,
                {"variants": [r.to_dict() for r in routes], "spec": spec.to_dict()},
            ),
            require_approved=[(r.model, r.version) for r in routes],
        )

    def ab_report(self, name: str) -> AbReport:
        """The A/B test's report from the route counts and the labelled prediction log."""
        deployment = self.get(name)
        if deployment.strategy is not Strategy.AB or "ab" not in deployment.spec:
            raise InvalidArgumentError(f"deployment {name!r} is not running an A/B test")
        spec = AbSpec.from_dict(deployment.spec["ab"])
        baseline = deployment.analysis.get("baseline_requests", {})
        live = {(r.name, r.version) for r in deployment.live_routes}
        requests = {
            s.route: s.requests - int(baseline.get(f"{s.route}@{s.version}", 0))
            for s in self.backend.get_route_stats(name)
            if (s.route, s.version) in live
        }
        outcomes = _route_outcomes(
            deployment, int(deployment.analysis.get("started", 0)), self.home
        )
        counts = []
        for route in deployment.live_routes:
            o = outcomes.get(route.name, _Outcomes())
            counts.append(
                VariantCounts(
                    route.name,
                    route.weight,
                    requests.get(route.name, 0),
                    o.labelled,
                    o.correct,
                    units=len(o.units) if spec.sticky_key else None,
                    unit_values=tuple(right / n for n, right in o.per_unit.values())
                    if spec.sticky_key
                    else None,
                )
            )
        return ab_report(counts, spec)

    def labelled_outcomes(
        self, deployment: Deployment, since_ms: int
    ) -> dict[str, tuple[int, int]]:
        """Per route: labelled rows since ``since_ms`` and how many predictions were right."""
        return _labelled_outcomes(deployment, since_ms, self.home)

    @_retried
    def conclude(self, name: str, *, reason: str = "") -> tuple[Deployment, AbReport]:
        """End an A/B test by promoting its winner.

        Raises:
            InvalidArgumentError: no winner (not ready, sample-ratio mismatch, or no
                significant difference): the report says which; nothing is changed.
        """
        deployment = self.get(name)
        report = self.ab_report(name)
        if report.winner is None:
            raise InvalidArgumentError(f"deployment {name!r}: {report.verdict}")
        winner = deployment.route(report.winner)
        if winner is None:  # pragma: no cover - the report names a live route
            raise InvalidArgumentError(f"no route {report.winner!r}")
        routes = (
            Route(STABLE, winner.model, winner.version, 100.0, RouteMode.LIVE, winner.ref),
            *deployment.shadow_routes,
        )
        saved = self.backend.save_deployment(
            replace(
                deployment,
                strategy=Strategy.SINGLE,
                state=DeploymentState.CONCLUDED,
                routes=routes,
                analysis=deployment.analysis | {"report": report.to_dict(), "outcome": "concluded"},
            ),
            event=_event(
                "ab.conclude",
                reason or report.verdict,
                self.user,
                {"winner": winner.model_ref, "report": report.to_dict()},
            ),
            require_approved=[(winner.model, winner.version)],
            move_alias_to=winner.version,
        )
        return saved, report

    @_retried
    def pause(self, name: str, *, reason: str = "") -> Deployment:
        """Freeze the rollout in progress: the controller neither advances nor rolls back."""
        deployment = self.get(name)
        if deployment.state not in (DeploymentState.PROGRESSING, DeploymentState.HELD):
            raise InvalidArgumentError(
                f"deployment {name!r} has no rollout to pause ({deployment.state.value})"
            )
        return self.backend.save_deployment(
            replace(deployment, state=DeploymentState.PAUSED),
            event=_event("pause", reason or "paused by hand", self.user),
        )

    @_retried
    def resume(self, name: str, *, reason: str = "") -> Deployment:
        """Go on with a paused or held rollout; its current step starts over."""
        deployment = self.get(name)
        if deployment.state not in (DeploymentState.PAUSED, DeploymentState.HELD):
            raise InvalidArgumentError(
                f"deployment {name!r} is not paused or held ({deployment.state.value})"
            )
        canary, baseline = deployment.route(CANARY), deployment.route(BASELINE)
        analysis = deployment.analysis
        if canary is not None and baseline is not None and analysis.get("step_start"):
            snapshots = self._snapshots(deployment.name, baseline, canary)
            analysis = restart_step(analysis, *snapshots, _now_ms())
        return self.backend.save_deployment(
            replace(deployment, state=DeploymentState.PROGRESSING, analysis=analysis),
            event=_event("resume", reason or "resumed by hand", self.user),
        )


@dataclass
class _Outcomes:
    """One route's answers in the prediction log: labelled rows, right ones, and per A/B unit."""

    labelled: int = 0
    correct: int = 0
    units: set[str] = field(default_factory=set)
    per_unit: dict[str, list[int]] = field(default_factory=dict)


def _route_outcomes(
    deployment: Deployment, since_ms: int, home: str | Path | None
) -> dict[str, _Outcomes]:
    """Per route of ``deployment``: its answered rows since ``since_ms`` with their labels."""
    from datetime import UTC, datetime

    from shipyard.errors import NotFoundError, WorkspaceNotFoundError
    from shipyard.monitoring.logs import read_predictions

    start = datetime.fromtimestamp(since_ms / 1000, tz=UTC)
    try:
        table = read_predictions(deployment.model, start=start, home=home, successful=True)
    except (NotFoundError, WorkspaceNotFoundError):  # no prediction log (yet): no outcomes
        return {}
    if "route" not in table.column_names or "label" not in table.column_names:
        return {}
    wanted = ["deployment", "route", "prediction", "label"]
    wanted += ["unit"] if "unit" in table.column_names else []
    found: dict[str, _Outcomes] = {}
    for row in table.select(wanted).to_pylist():
        if row["deployment"] != deployment.name:
            continue
        entry = found.setdefault(row["route"], _Outcomes())
        unit = row.get("unit")
        if unit:
            entry.units.add(unit)
        if row["label"] is None:
            continue
        right = int(_same(row["prediction"], row["label"]))
        entry.labelled += 1
        entry.correct += right
        if unit:
            counts = entry.per_unit.setdefault(unit, [0, 0])
            counts[0] += 1
            counts[1] += right
    return found


def _labelled_outcomes(
    deployment: Deployment, since_ms: int, home: str | Path | None
) -> dict[str, tuple[int, int]]:
    return {
        route: (o.labelled, o.correct)
        for route, o in _route_outcomes(deployment, since_ms, home).items()
    }


def _same(prediction: Any, label: Any) -> bool:
    try:
        return float(prediction) == float(label)
    except (TypeError, ValueError):
        return str(prediction) == str(label)


def _canary_routes(stable: Route, canary: Route, weight: float) -> tuple[Route, Route, Route]:
    """Stable, baseline (the stable version at the canary's weight) and canary routes."""
    stable_weight, baseline_weight, canary_weight = canary_weights(weight)
    return (
        replace(stable, weight=stable_weight),
        replace(stable, name=BASELINE, weight=baseline_weight),
        replace(canary, weight=canary_weight),
    )


def _stable_route(deployment: Deployment) -> Route:
    route = deployment.route(STABLE)
    if route is None:
        raise InvalidArgumentError(f"deployment {deployment.name!r} has no stable route")
    return route


def raise_unapproved(version: ModelVersion) -> None:
    raise PermissionDeniedError(
        f"{version.ref} is not approved ({version.review.value}); {version.model} is governed, "
        f"so only an approved version can get live traffic: "
        f"`shipyard models request-review {version.ref}` and have an approver approve it"
    )


def next_cron(schedule: str, after_ms: int) -> int:
    """The first time (epoch ms, UTC) after ``after_ms`` that the cron ``schedule`` names.

    Raises:
        InvalidArgumentError: not a 5-field cron expression.
    """
    from datetime import UTC, datetime

    from croniter import croniter

    if len(schedule.split()) != 5 or not croniter.is_valid(schedule):
        raise InvalidArgumentError(
            f"invalid --schedule {schedule!r}: use a 5-field cron expression (UTC), e.g. "
            '"0 2 * * *" for 02:00 every day'
        )
    start = datetime.fromtimestamp(after_ms / 1000, tz=UTC)
    following: datetime = croniter(schedule, start).get_next(datetime)
    return int(following.timestamp() * 1000)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
