"""Monitoring alerts through a Shipyard server: the part of
:class:`~shipyard.store.rest.RestBackend` that records and reads alert rules' progress and the
events they raised (``/api/v1/alerts``).

Times travel as ISO 8601 with a UTC offset (a naive datetime is UTC, as in the local store)
and come back as timezone-aware UTC datetimes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from shipyard.entities import AlertEvent, AlertState, Severity
from shipyard.errors import ConflictError, InvalidArgumentError
from shipyard.store.backend import AlertProgress

__all__ = ["MonitoringClient"]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).isoformat()


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC)


def _float(value: float | str | None) -> float:
    """``null`` is NaN, ``"Infinity"``/``"-Infinity"`` infinities."""
    return math.nan if value is None else float(value)


def _progress(data: Mapping[str, Any]) -> AlertProgress:
    return AlertProgress(
        model=data["model"],
        rule=data["rule"],
        consecutive=int(data["consecutive"]),
        firing=bool(data["firing"]),
        last_window_end=_time(data.get("last_window_end")),
        updated=_time(data.get("updated")),
    )


def _event(data: Mapping[str, Any]) -> AlertEvent:
    at = _time(data["at"])
    assert at is not None  # noqa: S101 - the server's schema requires it
    value = data.get("value")
    return AlertEvent(
        event_id=data["event_id"],
        rule=data["rule"],
        model=data["model"],
        state=AlertState(data["state"]),
        severity=Severity(data["severity"]),
        metric=data["metric"],
        value=None if value is None else float(value),
        threshold=_float(data["threshold"]),
        at=at,
        window_start=_time(data.get("window_start")),
        window_end=_time(data.get("window_end")),
        message=data.get("message", ""),
        recorded_at=_time(data.get("recorded_at")),
    )


def _event_body(e: AlertEvent) -> dict[str, Any]:
    # The store keeps no measurement that is not finite (NaN and infinities are "none").
    value = e.value if e.value is not None and math.isfinite(e.value) else None
    if not math.isfinite(e.threshold):  # JSON has no NaN or infinities; the server refuses them
        raise InvalidArgumentError(
            f"alert event {e.event_id}: threshold must be a finite number, not {e.threshold}"
        )
    return {
        "event_id": e.event_id,
        "rule": e.rule,
        "model": e.model,
        "state": AlertState(e.state).value,
        "severity": Severity(e.severity).value,
        "metric": e.metric,
        "value": value,
        "threshold": e.threshold,
        "at": _iso(e.at),
        "window_start": _iso(e.window_start),
        "window_end": _iso(e.window_end),
        "message": e.message,
    }


class MonitoringClient:
    """Alert methods of the ``Backend`` protocol over HTTP (mixed into ``RestBackend``)."""

    def _api(self, method: str, path: str, **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError  # RestBackend's

    def record_alert_progress(
        self,
        progress: AlertProgress,
        events: Sequence[AlertEvent],
        *,
        expected_window_end: datetime | None,
        delivery: str = "none",
    ) -> bool:
        # The server decides when it was recorded (``updated``, each event's ``recorded_at``).
        body = {
            "progress": {
                "model": progress.model,
                "rule": progress.rule,
                "consecutive": progress.consecutive,
                "firing": progress.firing,
                "last_window_end": _iso(progress.last_window_end),
            },
            "events": [_event_body(e) for e in events],
            "expected_window_end": _iso(expected_window_end),
            "delivery": delivery,
        }
        try:
            self._api("POST", "/alerts/progress", json=body)
        except ConflictError:  # another evaluator recorded these windows first
            return False
        return True

    def get_alert_progress(self, model: str | None = None) -> list[AlertProgress]:
        params = {} if model is None else {"model": model}
        return [_progress(p) for p in self._api("GET", "/alerts/progress", params=params)]

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
        query = {
            "model": model,
            "rule": rule,
            "state": None if state is None else AlertState(state).value,
            "since": _iso(since),
            "delivery": delivery,
            "limit": limit,
        }
        params = {k: v for k, v in query.items() if v is not None}
        return [_event(e) for e in self._api("GET", "/alerts/events", params=params)]

    def set_alert_delivery(self, event_id: str, status: str, attempts: int) -> None:
        body = {"event_id": event_id, "status": status, "attempts": attempts}
        self._api("POST", "/alerts/events/delivery", json=body)
