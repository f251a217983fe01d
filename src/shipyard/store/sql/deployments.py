"""Deployments, their events and lineage, live route counts and leases (mixed into
:class:`~shipyard.store.sql.SqlBackend`).

A deployment is written whole and only over the revision the writer read (compare-and-set):
two controllers, or a controller and a person, never interleave half-changes. A change that
is an event is written with its event, its lineage rows and its audit entry in the same
transaction. The rules (what may go live, when to promote) live in :mod:`shipyard.deploy`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from shipyard.entities import (
    Deployment,
    DeploymentEvent,
    DeploymentState,
    ReviewState,
    Route,
    RouteStats,
    Strategy,
    Target,
)
from shipyard.errors import AlreadyExistsError, ConflictError, NotFoundError, PermissionDeniedError
from shipyard.store.sql.engine import read, with_unique_retries, write
from shipyard.store.sql.registry import append_audit, move_alias
from shipyard.store.sql.schema import (
    deployment_events,
    deployment_lineage,
    deployments,
    leases,
    model_versions,
    registered_models,
    route_stats,
)

__all__ = ["DeploymentMethods"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _routes_json(routes: Sequence[Route]) -> str:
    return json.dumps([r.to_dict() for r in routes], sort_keys=True)


def _routes(text: str) -> tuple[Route, ...]:
    return tuple(Route.from_dict(item) for item in json.loads(text))


def _deployment(row: Any) -> Deployment:
    return Deployment(
        name=row.name,
        model=row.model,
        target=Target(row.target),
        strategy=Strategy(row.strategy),
        state=DeploymentState(row.state),
        routes=_routes(row.routes),
        revision=row.revision,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        alias=row.alias,
        spec=json.loads(row.spec),
        analysis=json.loads(row.analysis),
    )


def _event(row: Any) -> DeploymentEvent:
    return DeploymentEvent(
        seq=row.seq,
        deployment=row.deployment,
        at=row.at,
        actor=row.actor,
        action=row.action,
        reason=row.reason,
        revision=row.revision,
        details=json.loads(row.details),
        routes=_routes(row.routes),
    )


def _counts(stats: RouteStats) -> str:
    return json.dumps(
        {
            "requests": stats.requests,
            "errors": stats.errors,
            "latency": list(stats.latency_counts),
            "predictions": stats.predictions,
            "compared": stats.compared,
            "agreements": stats.agreements,
            "abs_difference": stats.abs_difference,
            "mirrored_dropped": stats.mirrored_dropped,
        },
        sort_keys=True,
    )


def _add(total: RouteStats | None, row: Any) -> RouteStats:
    counts = json.loads(row.counts)
    latency = tuple(int(n) for n in counts.get("latency", ()))
    predictions = {str(k): int(v) for k, v in counts.get("predictions", {}).items()}
    if total is not None:
        width = max(len(latency), len(total.latency_counts))
        latency = tuple(
            (latency[i] if i < len(latency) else 0)
            + (total.latency_counts[i] if i < len(total.latency_counts) else 0)
            for i in range(width)
        )
        for key, value in total.predictions.items():
            predictions[key] = predictions.get(key, 0) + value
    return RouteStats(
        deployment=row.deployment,
        route=row.route,
        model=row.model,
        version=row.version,
        requests=int(counts.get("requests", 0)) + (total.requests if total else 0),
        errors=int(counts.get("errors", 0)) + (total.errors if total else 0),
        latency_counts=latency,
        predictions=predictions,
        compared=int(counts.get("compared", 0)) + (total.compared if total else 0),
        agreements=int(counts.get("agreements", 0)) + (total.agreements if total else 0),
        abs_difference=float(counts.get("abs_difference", 0.0))
        + (total.abs_difference if total else 0.0),
        mirrored_dropped=int(counts.get("mirrored_dropped", 0))
        + (total.mirrored_dropped if total else 0),
        updated=max(row.updated, total.updated if total else 0),
    )


class DeploymentMethods:
    """Deployment operations of the SQL backend. Needs ``self._engine``."""

    _engine: sa.Engine

    def save_deployment(
        self,
        deployment: Deployment,
        *,
        event: DeploymentEvent | None = None,
        require_approved: Sequence[tuple[str, int]] = (),
        move_alias_to: int | None = None,
    ) -> Deployment:
        """Create (``revision`` 0) or replace a deployment read at ``deployment.revision``.

        Returns it as stored, with its new revision. ``event`` (its actor, action, reason and
        details; the rest is filled in) is written with it, with lineage and audit entries.
        ``move_alias_to`` moves the deployment's alias to that version of its model in the
        same transaction (a promotion), so the alias never moves for a change that lost.

        Raises:
            AlreadyExistsError: creating a name that exists.
            ConflictError: the stored revision moved on since it was read (nothing written).
            PermissionDeniedError: a version in ``require_approved`` belongs to a governed
                model and is not approved (checked inside the transaction).
        """

        def change(conn: sa.Connection) -> Deployment:
            self._check_approved(conn, require_approved)
            now = _now_ms()
            revision = deployment.revision + 1
            values = {
                "model": deployment.model,
                "target": deployment.target.value,
                "strategy": deployment.strategy.value,
                "state": deployment.state.value,
                "alias": deployment.alias,
                "routes": _routes_json(deployment.routes),
                "spec": json.dumps(deployment.spec, sort_keys=True),
                "analysis": json.dumps(deployment.analysis, sort_keys=True),
                "revision": revision,
                "updated_at": now,
            }
            if deployment.revision == 0:
                # A concurrent insert of the same name (PostgreSQL) loses on the primary key;
                # the retry then sees the row and reports it.
                exists = conn.execute(
                    sa.select(deployments.c.name).where(deployments.c.name == deployment.name)
                ).first()
                if exists is not None:
                    raise AlreadyExistsError(
                        f"a deployment named {deployment.name!r} already exists: "
                        f"`shipyard deploy status {deployment.name}`"
                    )
                conn.execute(
                    deployments.insert().values(
                        name=deployment.name,
                        created_at=now,
                        created_by=deployment.created_by,
                        **values,
                    )
                )
            else:
                updated = conn.execute(
                    deployments.update()
                    .where(
                        deployments.c.name == deployment.name,
                        deployments.c.revision == deployment.revision,
                    )
                    .values(**values)
                ).rowcount
                if updated != 1:
                    self._row(conn, deployment.name)
                    raise ConflictError(
                        f"deployment {deployment.name!r} changed while this change was being "
                        "made (another controller or user): look again and retry"
                    )
            if move_alias_to is not None and deployment.alias:
                move_alias(
                    conn,
                    deployment.model,
                    deployment.alias,
                    move_alias_to,
                    actor=event.actor if event is not None else deployment.created_by,
                )
            if event is not None:
                self._write_event(conn, deployment, event, revision, now)
            return _deployment(self._row(conn, deployment.name))

        saved: Deployment = with_unique_retries(
            lambda: self._in_write(change), what=f"saving deployment {deployment.name}"
        )
        return saved

    def _in_write(self, change: Any) -> Any:
        with write(self._engine) as conn:
            return change(conn)

    @staticmethod
    def _row(conn: sa.Connection, name: str) -> Any:
        row = conn.execute(deployments.select().where(deployments.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no deployment named {name!r}: see `shipyard deploy ls`")
        return row

    @staticmethod
    def _check_approved(conn: sa.Connection, versions: Sequence[tuple[str, int]]) -> None:
        for model, version in versions:
            row = conn.execute(
                sa.select(registered_models.c.governed, model_versions.c.review)
                .select_from(registered_models.join(model_versions))
                .where(registered_models.c.name == model, model_versions.c.version == version)
            ).first()
            if row is None:
                raise NotFoundError(f"model {model!r} has no version {version}")
            if row.governed and row.review != ReviewState.APPROVED.value:
                raise PermissionDeniedError(
                    f"{model}@{version} is not approved ({row.review}); {model} is governed, "
                    f"so only an approved version can get live traffic: "
                    f"`shipyard models request-review {model}@{version}`"
                )

    @staticmethod
    def _write_event(
        conn: sa.Connection,
        deployment: Deployment,
        event: DeploymentEvent,
        revision: int,
        now: int,
    ) -> None:
        conn.execute(
            deployment_events.insert().values(
                deployment=deployment.name,
                at=now,
                actor=event.actor,
                action=event.action,
                reason=event.reason,
                revision=revision,
                routes=_routes_json(deployment.routes),
                details=json.dumps(event.details, sort_keys=True, allow_nan=False),
            )
        )
        for route in deployment.routes:
            known = conn.execute(
                sa.select(deployment_lineage.c.first_at).where(
                    deployment_lineage.c.deployment == deployment.name,
                    deployment_lineage.c.model == route.model,
                    deployment_lineage.c.version == route.version,
                )
            ).first()
            if known is None:
                conn.execute(
                    deployment_lineage.insert().values(
                        deployment=deployment.name,
                        model=route.model,
                        version=route.version,
                        first_at=now,
                    )
                )
        append_audit(
            conn,
            event.actor,
            f"deploy.{event.action}",
            f"deployment:{deployment.name}",
            {
                "reason": event.reason,
                "revision": revision,
                "state": deployment.state.value,
                "routes": [r.to_dict() for r in deployment.routes],
                **event.details,
            },
        )

    def get_deployment(self, name: str) -> Deployment:
        with read(self._engine) as conn:
            return _deployment(self._row(conn, name))

    def list_deployments(self) -> list[Deployment]:
        with read(self._engine) as conn:
            rows = conn.execute(deployments.select().order_by(deployments.c.name)).all()
        return [_deployment(row) for row in rows]

    def list_deployment_events(self, name: str, *, limit: int = 100) -> list[DeploymentEvent]:
        """A deployment's events, oldest first (the newest ``limit``)."""
        with read(self._engine) as conn:
            self._row(conn, name)
            rows = conn.execute(
                deployment_events.select()
                .where(deployment_events.c.deployment == name)
                .order_by(deployment_events.c.seq.desc())
                .limit(limit)
            ).all()
        return [_event(row) for row in reversed(rows)]

    def deployments_of_version(self, model: str, version: int) -> list[tuple[str, int]]:
        """``(deployment, first_at)`` of every deployment that ever routed to the version."""
        with read(self._engine) as conn:
            rows = conn.execute(
                sa.select(deployment_lineage.c.deployment, deployment_lineage.c.first_at)
                .where(deployment_lineage.c.model == model, deployment_lineage.c.version == version)
                .order_by(deployment_lineage.c.first_at)
            ).all()
        return [(row.deployment, row.first_at) for row in rows]

    # live counts -----------------------------------------------------------------------------

    def record_route_stats(self, server: str, stats: Sequence[RouteStats]) -> None:
        """Store one model server's cumulative counts per route (replacing its previous ones)."""

        def change(conn: sa.Connection) -> None:
            now = _now_ms()
            for item in stats:
                key = (
                    route_stats.c.deployment == item.deployment,
                    route_stats.c.route == item.route,
                    route_stats.c.version == item.version,
                    route_stats.c.server == server,
                )
                counts = _counts(item)
                if (
                    conn.execute(
                        route_stats.update().where(*key).values(counts=counts, updated=now)
                    ).rowcount
                    == 0
                ):
                    conn.execute(
                        route_stats.insert().values(
                            deployment=item.deployment,
                            route=item.route,
                            version=item.version,
                            server=server,
                            model=item.model,
                            counts=counts,
                            updated=now,
                        )
                    )

        with_unique_retries(lambda: self._in_write(change), what="recording route counts")

    def get_route_stats(self, deployment: str) -> list[RouteStats]:
        """Counts per (route, version) of a deployment, summed over every model server."""
        with read(self._engine) as conn:
            rows = conn.execute(
                route_stats.select()
                .where(route_stats.c.deployment == deployment)
                .order_by(route_stats.c.route, route_stats.c.version)
            ).all()
        totals: dict[tuple[str, int], RouteStats] = {}
        for row in rows:
            key = (row.route, row.version)
            totals[key] = _add(totals.get(key), row)
        return list(totals.values())

    # leases ----------------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, ttl_ms: int) -> bool:
        """Take or renew the lease ``name`` for ``ttl_ms``; False while another holds it."""

        def change(conn: sa.Connection) -> bool:
            now = _now_ms()
            query = sa.select(leases.c.holder, leases.c.expires).where(leases.c.name == name)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                conn.execute(leases.insert().values(name=name, holder=holder, expires=now + ttl_ms))
                return True
            if row.holder != holder and row.expires > now:
                return False
            conn.execute(
                leases.update()
                .where(leases.c.name == name)
                .values(holder=holder, expires=now + ttl_ms)
            )
            return True

        return bool(with_unique_retries(lambda: self._in_write(change), what="taking a lease"))

    def release_lease(self, name: str, holder: str) -> None:
        with write(self._engine) as conn:
            conn.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))
