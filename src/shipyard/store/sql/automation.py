"""Continuous-training records (mixed into :class:`~shipyard.store.sql.SqlBackend`).

An event's row is keyed by what fired, and is added with ``ON CONFLICT DO NOTHING``: two
automators that detect the same dataset version add one row. Changes are compare-and-set on
the event's ``revision`` and write their log entry in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from shipyard.entities import AutomationEvent, AutomationLogEntry, AutomationState
from shipyard.errors import ConflictError, NotFoundError
from shipyard.store.sql.engine import dialect_insert, read, with_retries, write
from shipyard.store.sql.schema import automation_events, automation_log, automations

__all__ = ["AutomationMethods"]

_JSON_FIELDS = ("gate", "approval", "rollout", "details")


def _event(row: Any) -> AutomationEvent:
    return AutomationEvent(
        event_id=row.event_id,
        automation=row.automation,
        trigger=row.trigger,
        kind=row.kind,
        source=row.source,
        detected_at=row.detected_at,
        state=AutomationState(row.state),
        reason=row.reason,
        model=row.model,
        pipeline_run_id=row.pipeline_run_id,
        candidate=row.candidate,
        deployment=row.deployment,
        gate=json.loads(row.gate),
        approval=json.loads(row.approval),
        rollout=json.loads(row.rollout),
        details=json.loads(row.details),
        attempts=row.attempts,
        updated_at=row.updated_at,
        revision=row.revision,
    )


def _values(event: AutomationEvent) -> dict[str, Any]:
    values = {
        "event_id": event.event_id,
        "automation": event.automation,
        "trigger": event.trigger,
        "kind": event.kind,
        "source": event.source,
        "detected_at": event.detected_at,
        "state": event.state.value,
        "reason": event.reason,
        "model": event.model,
        "pipeline_run_id": event.pipeline_run_id,
        "candidate": event.candidate,
        "deployment": event.deployment,
        "attempts": event.attempts,
        "updated_at": event.updated_at,
        "revision": event.revision,
    }
    for name in _JSON_FIELDS:
        values[name] = json.dumps(getattr(event, name), sort_keys=True, default=str)
    return values


def _log_row(event: AutomationEvent, actor: str, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "at": event.updated_at,
        "state": event.state.value,
        "reason": event.reason,
        "actor": actor,
        "details": json.dumps(details, sort_keys=True, default=str),
    }


class AutomationMethods:
    _engine: sa.Engine

    def arm_automation(self, name: str, now: int) -> int:
        """The time ``name`` was first seen (its triggers fire for what happens after it);
        records ``now`` when it is new."""

        def change() -> int:
            with write(self._engine) as conn:
                insert = dialect_insert(conn.dialect.name, automations)
                conn.execute(
                    insert.values(name=name, armed_at=now).on_conflict_do_nothing(
                        index_elements=["name"]
                    )
                )
                return int(
                    conn.execute(
                        sa.select(automations.c.armed_at).where(automations.c.name == name)
                    ).scalar_one()
                )

        return with_retries(change, what=f"arming automation {name}")

    def add_automation_event(self, event: AutomationEvent, *, actor: str) -> bool:
        """Record ``event`` unless an event with its id exists; True when this call added it."""

        def change() -> bool:
            with write(self._engine) as conn:
                insert = dialect_insert(conn.dialect.name, automation_events)
                # RETURNING tells an inserted row from a skipped one on both dialects
                # (PostgreSQL's rowcount is -1 for an INSERT that returns the key).
                added = (
                    conn.execute(
                        insert.values(**_values(event))
                        .on_conflict_do_nothing(index_elements=["event_id"])
                        .returning(automation_events.c.event_id)
                    ).first()
                    is not None
                )
                if added:
                    conn.execute(automation_log.insert().values(**_log_row(event, actor, {})))
                return added

        return with_retries(change, what=f"recording trigger event {event.event_id}")

    def update_automation_event(
        self, event: AutomationEvent, *, actor: str, details: dict[str, Any] | None = None
    ) -> AutomationEvent:
        """Write ``event`` over the revision it was read at, with a log entry.

        Raises:
            ConflictError: the event changed since (another automator moved it on).
        """
        saved = AutomationEvent(**{**_event_fields(event), "revision": event.revision + 1})

        def change() -> None:
            with write(self._engine) as conn:
                changed = conn.execute(
                    automation_events.update()
                    .where(
                        automation_events.c.event_id == event.event_id,
                        automation_events.c.revision == event.revision,
                    )
                    .values(**_values(saved))
                ).rowcount
                if not changed:
                    raise ConflictError(
                        f"trigger event {event.event_id} changed while this automator worked "
                        "on it; the next pass reads it afresh"
                    )
                conn.execute(
                    automation_log.insert().values(**_log_row(saved, actor, details or {}))
                )

        with_retries(change, what=f"updating trigger event {event.event_id}")
        return saved

    def get_automation_event(self, event_id: str) -> AutomationEvent:
        with read(self._engine) as conn:
            row = conn.execute(
                automation_events.select().where(automation_events.c.event_id == event_id)
            ).first()
            if row is None:
                matches = conn.execute(
                    automation_events.select()
                    .where(
                        automation_events.c.event_id.like(f"{_escape_like(event_id)}%", escape="\\")
                    )
                    .limit(2)
                ).all()
                if len(matches) != 1:
                    raise NotFoundError(
                        f"no trigger event {event_id!r}: see `shipyard automate events`"
                    )
                row = matches[0]
            return _event(row)

    def list_automation_events(
        self,
        *,
        automation: str | None = None,
        states: Sequence[AutomationState] | None = None,
        candidate: str | None = None,
        source: str | None = None,
        pipeline_run_id: str | None = None,
        limit: int = 100,
    ) -> list[AutomationEvent]:
        """Trigger events, newest first."""
        query = automation_events.select()
        if automation is not None:
            query = query.where(automation_events.c.automation == automation)
        if states is not None:
            query = query.where(automation_events.c.state.in_([s.value for s in states]))
        if candidate is not None:
            query = query.where(automation_events.c.candidate == candidate)
        if source is not None:
            query = query.where(automation_events.c.source == source)
        if pipeline_run_id is not None:
            query = query.where(automation_events.c.pipeline_run_id == pipeline_run_id)
        query = query.order_by(
            automation_events.c.detected_at.desc(), automation_events.c.event_id.desc()
        ).limit(limit)
        with read(self._engine) as conn:
            return [_event(row) for row in conn.execute(query)]

    def automation_log(self, event_id: str) -> list[AutomationLogEntry]:
        """Every transition of an event, oldest first."""
        with read(self._engine) as conn:
            rows = conn.execute(
                automation_log.select()
                .where(automation_log.c.event_id == event_id)
                .order_by(automation_log.c.id)
            )
            return [
                AutomationLogEntry(
                    event_id=row.event_id,
                    at=row.at,
                    state=AutomationState(row.state),
                    reason=row.reason,
                    actor=row.actor,
                    details=json.loads(row.details),
                )
                for row in rows
            ]


def _event_fields(event: AutomationEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in AutomationEvent.__dataclass_fields__}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
