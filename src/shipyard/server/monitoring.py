"""``/api/v1`` for monitoring alerts: where each alert rule of each model stands, and the
events the rules raised.

An evaluator (``shipyard monitor run`` pointed at the server) reads a rule's progress, runs
the new windows through it, then sends the new progress with the events it raised and the
``last_window_end`` it read: the server records both in one transaction, or refuses with a 409
when another evaluator recorded that rule first — the same compare-and-set as the local store.

Times are ISO 8601 strings with a UTC offset (microseconds kept; the store keeps
milliseconds).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from shipyard.entities import AlertEvent, AlertState, Role, Severity
from shipyard.errors import ConflictError, InvalidArgumentError
from shipyard.server.auth import role
from shipyard.server.deps import Store
from shipyard.server.errors import error_responses
from shipyard.store.backend import AlertProgress
from shipyard.store.wire import json_float

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["monitoring"], responses=error_responses())
_READ, _WRITE = role(Role.VIEWER), role(Role.MEMBER)

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
"""A model (deployment) or rule name, as ``monitors.yaml`` allows them."""
_TEXT = r"^[^\x00]*$"
"""Any text but NUL, which PostgreSQL cannot store."""
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def _in_range(value: datetime) -> datetime:
    """A time the store can keep as epoch milliseconds and turn back into a datetime."""
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not _EARLIEST <= utc <= _LATEST:
        raise ValueError("must be between 0001-01-02 and 9999-12-30 (UTC)")
    return value


_Time = Annotated[AwareDatetime, AfterValidator(_in_range)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProgressIn(_Strict):
    model: str = Field(pattern=_NAME)
    rule: str = Field(pattern=_NAME)
    consecutive: int = Field(default=0, ge=0, lt=2**31)
    firing: bool = False
    last_window_end: _Time | None = None


class ProgressOut(BaseModel):
    model: str
    rule: str
    consecutive: int
    firing: bool
    last_window_end: datetime | None = None
    updated: datetime | None = Field(default=None, description="When the store last wrote it")

    @classmethod
    def of(cls, p: AlertProgress) -> ProgressOut:
        return cls(
            model=p.model,
            rule=p.rule,
            consecutive=p.consecutive,
            firing=p.firing,
            last_window_end=p.last_window_end,
            updated=p.updated,
        )


class EventIn(_Strict):
    event_id: str = Field(pattern=r"^[\x21-\x7e]{1,64}$")
    rule: str = Field(pattern=_NAME)
    model: str = Field(pattern=_NAME)
    state: AlertState
    severity: Severity
    metric: str = Field(min_length=1, max_length=250, pattern=_TEXT)
    value: float | None = Field(description="null: not measured (or not finite)")
    threshold: float = Field(allow_inf_nan=False)
    at: _Time
    window_start: _Time | None = None
    window_end: _Time | None = None
    message: str = Field(default="", max_length=65_536, pattern=_TEXT)

    def entity(self) -> AlertEvent:
        return AlertEvent(
            event_id=self.event_id,
            rule=self.rule,
            model=self.model,
            state=self.state,
            severity=self.severity,
            metric=self.metric,
            value=self.value,
            threshold=self.threshold,
            at=self.at,
            window_start=self.window_start,
            window_end=self.window_end,
            message=self.message,
        )


class EventOut(BaseModel):
    event_id: str
    rule: str
    model: str
    state: AlertState
    severity: Severity
    metric: str
    value: float | None = None
    threshold: float | str | None = Field(description='null: NaN; "Infinity"/"-Infinity"')
    at: datetime
    window_start: datetime | None = None
    window_end: datetime | None = None
    message: str = ""
    recorded_at: datetime | None = Field(default=None, description="When the store recorded it")

    @classmethod
    def of(cls, e: AlertEvent) -> EventOut:
        return cls(
            event_id=e.event_id,
            rule=e.rule,
            model=e.model,
            state=e.state,
            severity=e.severity,
            metric=e.metric,
            value=e.value,
            threshold=json_float(e.threshold),
            at=e.at,
            window_start=e.window_start,
            window_end=e.window_end,
            message=e.message,
            recorded_at=e.recorded_at,
        )


class RecordIn(_Strict):
    progress: ProgressIn
    events: list[EventIn] = Field(default_factory=list, max_length=10_000)
    expected_window_end: _Time | None = Field(
        description="The rule's last_window_end as the evaluator read it (null: never evaluated)"
    )
    delivery: str = Field(
        default="none", max_length=16, description="The events' webhook status: none or pending"
    )


class DeliveryIn(_Strict):
    event_id: str = Field(pattern=r"^[\x21-\x7e]{1,64}$")
    status: str = Field(max_length=16, description="none, pending, delivered or failed")
    attempts: int = Field(ge=0, lt=2**31)


@router.get(
    "/alerts/progress",
    response_model=list[ProgressOut],
    summary="Where each alert rule (of a model) stands, by model and rule",
    **_READ,
)
def get_progress(
    store: Store,
    model: Annotated[str | None, Query(max_length=128, pattern=_TEXT)] = None,
) -> list[ProgressOut]:
    return [ProgressOut.of(p) for p in store.get_alert_progress(model)]


@router.post(
    "/alerts/progress",
    status_code=204,
    summary="Record a rule's new progress and its events, if nobody else did first (else 409)",
    **_WRITE,
)
def record_progress(body: RecordIn, store: Store) -> None:
    p = body.progress
    for event in body.events:
        if (event.model, event.rule) != (p.model, p.rule):
            raise InvalidArgumentError(
                f"event {event.event_id} is of rule {event.rule!r} of model {event.model!r}, "
                f"not of the progress' rule {p.rule!r} of model {p.model!r}"
            )
    progress = AlertProgress(p.model, p.rule, p.consecutive, p.firing, p.last_window_end)
    recorded = store.record_alert_progress(
        progress,
        [e.entity() for e in body.events],
        expected_window_end=body.expected_window_end,
        delivery=body.delivery,
    )
    if not recorded:
        raise ConflictError(
            f"alert rule {p.rule!r} of model {p.model!r} has moved on: another evaluator "
            "recorded these windows first"
        )


@router.get(
    "/alerts/events",
    response_model=list[EventOut],
    summary="Alert events, newest first",
    **_READ,
)
def list_events(
    store: Store,
    model: Annotated[str | None, Query(max_length=128, pattern=_TEXT)] = None,
    rule: Annotated[str | None, Query(max_length=128, pattern=_TEXT)] = None,
    state: AlertState | None = None,
    since: Annotated[
        _Time | None, Query(description="Only events recorded at or after this time")
    ] = None,
    delivery: Annotated[
        str | None, Query(max_length=16, description="none, pending, delivered or failed")
    ] = None,
    limit: Annotated[int, Query(gt=-(2**31), lt=2**31, description="At most this many")] = 100,
) -> list[EventOut]:
    found = store.list_alert_events(
        model=model, rule=rule, state=state, since=since, delivery=delivery, limit=limit
    )
    return [EventOut.of(e) for e in found]


@router.post(
    "/alerts/events/delivery",
    status_code=204,
    summary="Record an event's webhook delivery (delivered or failed after N attempts)",
    **_WRITE,
)
def set_delivery(body: DeliveryIn, store: Store) -> None:
    store.set_alert_delivery(body.event_id, body.status, body.attempts)
