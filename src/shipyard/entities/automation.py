"""Continuous training: trigger events and what became of each."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["AutomationEvent", "AutomationLogEntry", "AutomationState"]


class AutomationState(StrEnum):
    """Where a trigger event is on its way from trigger to production.

    ``waiting`` → ``training`` → ``gating`` → ``awaiting_approval`` → ``rolling_out`` →
    ``promoted``; any stage may end in ``rejected`` (the candidate was not good enough: gate,
    review or canary), ``failed`` (something broke: the pipeline, a missing model) or
    ``skipped`` (never started: superseded by a newer event, or the automation's cap).
    """

    WAITING = "waiting"
    TRAINING = "training"
    GATING = "gating"
    AWAITING_APPROVAL = "awaiting_approval"
    ROLLING_OUT = "rolling_out"
    PROMOTED = "promoted"
    REJECTED = "rejected"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def finished(self) -> bool:
        return self in (
            AutomationState.PROMOTED,
            AutomationState.REJECTED,
            AutomationState.FAILED,
            AutomationState.SKIPPED,
        )

    @property
    def started(self) -> bool:
        """Past waiting and not finished: the automation is busy with this event."""
        return not self.finished and self is not AutomationState.WAITING


@dataclass(frozen=True, slots=True)
class AutomationEvent:
    """One trigger event of an automation and the candidate it produced.

    ``event_id`` is derived from the automation, the trigger and what fired (a dataset
    version, an alert event, a cron time, a monitoring window), so detecting the same thing
    twice — by two automators at once, or after a crash — names the same event.
    """

    event_id: str
    automation: str
    trigger: str
    """The trigger's name in the policy."""
    kind: str
    """``schedule``, ``dataset``, ``alert``, ``performance`` or ``manual``."""
    source: str
    """What fired: ``customers@4``, an alert event id, a cron time, a window end."""
    detected_at: int
    state: AutomationState = AutomationState.WAITING
    reason: str = ""
    """Why the event is in its state (the last transition's words)."""
    model: str = ""
    pipeline_run_id: str | None = None
    candidate: str | None = None
    """The model version the pipeline registered (``churn@4``)."""
    deployment: str | None = None
    gate: dict[str, Any] = field(default_factory=dict)
    approval: dict[str, Any] = field(default_factory=dict)
    rollout: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    """What the trigger saw (the alert's metric and value, the window, …)."""
    attempts: int = 0
    """Pipeline runs started for this event (more than one only after a crash)."""
    updated_at: int = 0
    revision: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data


@dataclass(frozen=True, slots=True)
class AutomationLogEntry:
    """One transition of an event: when, to which state, why, with its numbers."""

    event_id: str
    at: int
    state: AutomationState
    reason: str
    actor: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data
