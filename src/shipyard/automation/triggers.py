"""Trigger detection: what happened since an automation was armed, as trigger events.

Each detector is a pure read of the store (or the prediction log). An event's id is derived
from the automation, the trigger and what fired, so two automators detecting the same new
dataset version — or one detecting it again after a crash — name the same event, and the
store keeps one.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shipyard.automation.policy import (
    AlertTrigger,
    Automation,
    DatasetTrigger,
    PerformanceTrigger,
    ScheduleTrigger,
    Trigger,
)
from shipyard.entities import AlertState, AutomationEvent
from shipyard.errors import NotFoundError
from shipyard.store import Backend

__all__ = ["Detected", "detect", "event_id"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Detected:
    """Something a trigger saw: its source (what fired) and the numbers it saw."""

    trigger: Trigger
    source: str
    details: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    """Pipeline parameters this event adds (a dataset trigger's ``param``)."""

    def event(self, automation: Automation, now_ms: int) -> AutomationEvent:
        return AutomationEvent(
            event_id=event_id(automation.name, self.trigger.name, self.source),
            automation=automation.name,
            trigger=self.trigger.name,
            kind=self.trigger.kind,
            source=self.source,
            detected_at=now_ms,
            reason=f"{self.trigger.kind} trigger {self.trigger.name!r}: {self.source}",
            model=automation.model,
            details={**self.details, "params": self.params},
            updated_at=now_ms,
        )


def event_id(automation: str, trigger: str, source: str) -> str:
    """The stable id of a trigger event (24 hex digits)."""
    return hashlib.sha256(f"{automation}\0{trigger}\0{source}".encode()).hexdigest()[:24]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


def _schedule(trigger: ScheduleTrigger, armed_at: int, now_ms: int) -> list[Detected]:
    from croniter import croniter

    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    latest: datetime = croniter(trigger.cron, now).get_prev(datetime)
    at = int(latest.timestamp() * 1000)
    if at <= armed_at:
        return []
    # Only the latest due time: an automator that was down for a week retrains once.
    return [Detected(trigger, f"cron {_iso(at)}", {"due": _iso(at), "cron": trigger.cron})]


def _dataset(trigger: DatasetTrigger, backend: Backend, armed_at: int) -> list[Detected]:
    versions = [
        v for v in backend.list_dataset_versions(trigger.dataset) if v.created_at > armed_at
    ]
    if not versions:
        return []
    newest = max(versions, key=lambda v: v.version)
    ref = f"{newest.dataset}@{newest.version}"
    params = {trigger.param: ref} if trigger.param else {}
    details = {"dataset": ref, "digest": newest.digest, "created_by": newest.created_by}
    return [Detected(trigger, ref, details, params)]


def _alert(trigger: AlertTrigger, backend: Backend, armed_at: int) -> list[Detected]:
    since = datetime.fromtimestamp(armed_at / 1000, tz=UTC).replace(tzinfo=None)
    events = backend.list_alert_events(
        model=trigger.model, rule=trigger.rule, state=AlertState.FIRING, since=since, limit=100
    )
    return [
        Detected(
            trigger,
            f"alert {e.event_id}",
            {
                "alert_event": e.event_id,
                "model": e.model,
                "rule": e.rule,
                "metric": e.metric,
                "value": e.value,
                "threshold": e.threshold,
                "message": e.message,
                "at": e.at.isoformat(),
            },
        )
        for e in events
    ]


def _performance(
    trigger: PerformanceTrigger,
    armed_at: int,
    now_ms: int,
    home: str | os.PathLike[str] | None,
) -> list[Detected]:
    from shipyard.monitoring.logs import join_labels, read_labels, read_predictions
    from shipyard.monitoring.performance import (
        LoggedVersions,
        estimated_performance,
        measured_performance,
    )
    from shipyard.monitoring.windows import floor_window

    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    end = floor_window(now, trigger.window)
    start = end - trigger.window
    if end.timestamp() * 1000 <= armed_at:
        return []
    try:
        table = read_predictions(trigger.model, start=start, end=end, home=home, labels=False)
    except NotFoundError:
        return []  # no traffic logged yet
    if table.num_rows == 0:
        return []
    labels = read_labels(trigger.model, start=start, end=end, home=home)
    table = join_labels(table, labels)
    measured = measured_performance(table)
    value, how = None, "measured"
    if measured.labelled_rows >= trigger.min_labels and measured.metrics:
        value = measured.metrics.get(trigger.metric)
    elif trigger.estimated:
        estimate = estimated_performance(table, LoggedVersions(trigger.model, home))
        value, how = (estimate or {}).get(trigger.metric), "estimated"
    if value is None or value >= trigger.below:
        return []
    window = f"{start.isoformat(timespec='seconds')}/{end.isoformat(timespec='seconds')}"
    return [
        Detected(
            trigger,
            f"{trigger.model} {trigger.metric} {window}",
            {
                "model": trigger.model,
                "metric": trigger.metric,
                "value": value,
                "below": trigger.below,
                "how": how,
                "labelled_rows": measured.labelled_rows,
                "rows": table.num_rows,
                "window": window,
            },
        )
    ]


def detect(
    automation: Automation,
    backend: Backend,
    *,
    armed_at: int,
    now_ms: int,
    home: str | os.PathLike[str] | None = None,
) -> list[Detected]:
    """Everything ``automation``'s triggers saw since ``armed_at``, oldest trigger first."""
    found: list[Detected] = []
    for trigger in automation.triggers:
        if isinstance(trigger, ScheduleTrigger):
            found.extend(_schedule(trigger, armed_at, now_ms))
        elif isinstance(trigger, DatasetTrigger):
            found.extend(_dataset(trigger, backend, armed_at))
        elif isinstance(trigger, AlertTrigger):
            found.extend(_alert(trigger, backend, armed_at))
        else:
            found.extend(_performance(trigger, armed_at, now_ms, home))
    return found
