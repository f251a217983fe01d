"""Alert events and alert-rule progress (mixed into :class:`~shipyard.store.sql.SqlBackend`).

A rule's new progress and the events it raised are written in one transaction, and only if
the progress is still what the evaluator read: two ``shipyard monitor run`` processes on the
same windows record each event once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from shipyard.entities import AlertEvent, AlertState, Severity
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.store.backend import AlertProgress
from shipyard.store.sql.engine import dialect_insert, read, with_retries, with_unique_retries, write
from shipyard.store.sql.schema import alert_events, alert_state

__all__ = ["DELIVERY_STATUSES", "AlertMethods"]

DELIVERY_STATUSES = ("none", "pending", "delivered", "failed")


def _ms(value: datetime | None) -> int | None:
    """Epoch milliseconds; a naive datetime is taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return round(value.timestamp() * 1000)


def _dt(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, tz=UTC)


def _db_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _event(row: Any) -> AlertEvent:
    return AlertEvent(
        event_id=row.event_id,
        rule=row.rule,
        model=row.model,
        state=AlertState(row.state),
        severity=Severity(row.severity),
        metric=row.metric,
        value=row.value,
        threshold=row.threshold,
        at=datetime.fromtimestamp(row.at / 1000, tz=UTC),
        window_start=_dt(row.window_start),
        window_end=_dt(row.window_end),
        message=row.message,
        recorded_at=_dt(row.recorded),
    )


def _progress(row: Any) -> AlertProgress:
    return AlertProgress(
        model=row.model,
        rule=row.rule,
        consecutive=row.consecutive,
        firing=bool(row.firing),
        last_window_end=_dt(row.last_window_end),
        updated=_dt(row.updated),
    )


class AlertMethods:
    """Alert operations of the SQL backend. Needs ``self._engine``."""

    _engine: sa.Engine

    def record_alert_progress(
        self,
        progress: AlertProgress,
        events: Sequence[AlertEvent],
        *,
        expected_window_end: datetime | None,
        delivery: str = "none",
    ) -> bool:
        """Store a rule's progress and its events atomically, if nobody else did first."""
        if delivery not in ("none", "pending"):
            raise InvalidArgumentError(
                f"initial delivery must be none or pending, not {delivery!r}"
            )
        key = (alert_state.c.model == progress.model) & (alert_state.c.rule == progress.rule)
        expected = _ms(expected_window_end)
        now_ms = time.time_ns() // 1_000_000
        state_row = {
            "consecutive": progress.consecutive,
            "firing": progress.firing,
            "last_window_end": _ms(progress.last_window_end),
            "updated": now_ms,
        }
        event_rows = [
            {
                "event_id": e.event_id,
                "model": e.model,
                "rule": e.rule,
                "state": e.state.value,
                "severity": e.severity.value,
                "metric": e.metric,
                "value": _db_float(e.value),
                "threshold": e.threshold,
                "at": _ms(e.at),
                "window_start": _ms(e.window_start),
                "window_end": _ms(e.window_end),
                "message": e.message,
                "delivery": delivery,
                "delivery_attempts": 0,
                "recorded": now_ms,
            }
            for e in events
        ]

        def op() -> bool:
            with write(self._engine) as conn:
                query = sa.select(alert_state.c.last_window_end).where(key)
                if conn.dialect.name == "postgresql":
                    query = query.with_for_update()
                found = conn.execute(query).first()
                if found is None:
                    if expected is not None:
                        return False
                    conn.execute(
                        alert_state.insert().values(
                            model=progress.model, rule=progress.rule, **state_row
                        )
                    )
                elif found.last_window_end != expected:
                    return False
                else:
                    conn.execute(alert_state.update().where(key).values(**state_row))
                if event_rows:
                    # Event ids derive from (model, rule, state, window): an event already
                    # stored (progress reset by hand, say) is not stored twice.
                    insert = dialect_insert(conn.dialect.name, alert_events)
                    conn.execute(
                        insert.on_conflict_do_nothing(index_elements=["event_id"]),
                        event_rows,
                    )
            return True

        # Two first evaluations of a rule both insert its state row: the loser rolls back,
        # runs again and finds the winner's progress.
        return with_unique_retries(
            op, what=f"recording alert {progress.rule!r} of model {progress.model!r}"
        )

    def get_alert_progress(self, model: str | None = None) -> list[AlertProgress]:
        """Progress of every rule (of ``model``), ordered by model and rule."""
        query = alert_state.select().order_by(alert_state.c.model, alert_state.c.rule)
        if model is not None:
            query = query.where(alert_state.c.model == model)
        with read(self._engine) as conn:
            return [_progress(row) for row in conn.execute(query)]

    def list_alert_events(
        self,
        *,
        model: str | None = None,
        rule: str | None = None,
        state: AlertState | None = None,
        since: datetime | None = None,
        delivery: str | None = None,
        limit: int = 100,
    ) -> list[AlertEvent]:
        """Alert events, newest first (by ``at``). ``since`` (inclusive) compares with when
        each event was *recorded*, so a poller that remembers its last poll misses nothing
        recorded later — even an event about an older window."""
        if limit < 1:
            raise InvalidArgumentError("limit must be >= 1")
        if delivery is not None and delivery not in DELIVERY_STATUSES:
            raise InvalidArgumentError(
                f"unknown delivery status {delivery!r}; known: {', '.join(DELIVERY_STATUSES)}"
            )
        query = alert_events.select().order_by(
            alert_events.c.at.desc(), alert_events.c.model, alert_events.c.rule
        )
        if model is not None:
            query = query.where(alert_events.c.model == model)
        if rule is not None:
            query = query.where(alert_events.c.rule == rule)
        if state is not None:
            query = query.where(alert_events.c.state == AlertState(state).value)
        if since is not None:
            query = query.where(alert_events.c.recorded >= _ms(since))
        if delivery is not None:
            query = query.where(alert_events.c.delivery == delivery)
        with read(self._engine) as conn:
            return [_event(row) for row in conn.execute(query.limit(limit))]

    def set_alert_delivery(self, event_id: str, status: str, attempts: int) -> None:
        """Record an event's webhook delivery: ``delivered`` or ``failed`` after ``attempts``."""
        if status not in DELIVERY_STATUSES:
            raise InvalidArgumentError(
                f"unknown delivery status {status!r}; known: {', '.join(DELIVERY_STATUSES)}"
            )

        def op() -> int:
            with write(self._engine) as conn:
                return conn.execute(
                    alert_events.update()
                    .where(alert_events.c.event_id == event_id)
                    .values(delivery=status, delivery_attempts=attempts)
                ).rowcount

        if with_retries(op, what=f"recording delivery of alert event {event_id}") == 0:
            raise NotFoundError(f"no alert event {event_id}")
