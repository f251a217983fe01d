"""The nouns of monitoring: drift per column and per dataset, what one time window of a
deployment looked like, alert rules and the events they raise.

Every ``to_dict`` gives strict JSON: a value that could not be computed (``NaN``) is ``None``.
The flat metric names of :meth:`WindowResult.metrics` (``drift.share``,
``performance.accuracy``, ``health.error_rate`` …) are the one vocabulary shared by alert
rules, Prometheus gauges and reports.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from shipyard.entities.data import Finding, Severity
from shipyard.entities.data import strict_json as _clean

__all__ = [
    "AlertEvent",
    "AlertRule",
    "AlertState",
    "ColumnDrift",
    "DriftReport",
    "ServiceHealth",
    "WindowResult",
]


@dataclass(frozen=True, slots=True)
class ColumnDrift:
    """Whether one column's distribution moved between reference and current data.

    ``distance`` is the effect size (how far it moved, e.g. PSI or a normalised Wasserstein
    distance) and ``p_value`` the significance (how sure we are that it moved at all); the
    default rule flags drift only when both say so.
    """

    column: str
    kind: str
    """``numeric``, ``categorical`` or ``binary``."""
    test: str
    """The test behind ``statistic`` and ``p_value``: ``ks``, ``chi2``, ``proportion``."""
    statistic: float | None
    p_value: float | None
    adjusted_p_value: float | None
    """``p_value`` after the multiple-testing correction across the report's columns."""
    distance_metric: str
    """``wasserstein``, ``psi`` or ``jensen_shannon``."""
    distance: float | None
    threshold: float
    """Drift needs ``distance >= threshold`` (and significance, under the default rule)."""
    drifted: bool
    reason: str
    """One sentence: why the column is (not) flagged."""
    reference_count: int
    current_count: int
    scores: dict[str, float | None] = field(default_factory=dict)
    """Every statistic computed for the column (``ks``, ``wasserstein``, ``psi``,
    ``jensen_shannon``, ``chi2`` …), for reports and for users who choose another test."""
    unseen_share: float | None = None
    """Categorical columns: the share of current values never seen in the reference."""
    from_profile: bool = False
    """True when the reference side came from a stored profile (bins), not raw data."""
    bins: dict[str, list[Any]] | None = None
    """The two distributions side by side, for plots: numeric columns
    ``{"edges": [...], "reference": [shares], "current": [shares]}`` (the PSI bins);
    categorical ``{"categories": [...], "reference": [shares], "current": [shares]}``."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = _clean(asdict(self))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnDrift:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Drift of every compared column, the dataset-level verdict and prediction drift."""

    reference: str
    """What was compared against: ``churn@3``, a path, ``model@champion`` …"""
    current: str
    columns: tuple[ColumnDrift, ...]
    drifted: bool
    """Dataset-level verdict: ``share_drifted >= share_threshold``."""
    share_drifted: float
    share_threshold: float
    correction: str
    """Multiple-testing correction across columns, e.g. ``benjamini-hochberg``."""
    alpha: float | None
    """Significance level of the adjusted p-values; None when drift was decided on distance
    alone."""
    reference_rows: int
    current_rows: int
    prediction: ColumnDrift | None = None
    """Drift of the model's output distribution, reported apart from the features."""
    multivariate: dict[str, Any] | None = None
    """Domain-classifier check when asked for: ``{"auc": ..., "drifted": ...}``."""
    window_start: datetime | None = None
    window_end: datetime | None = None
    seconds: float | None = None
    """Wall time the comparison took."""
    findings: tuple[Finding, ...] = ()
    """Data quality of the current table against the reference (null shares, ranges, unseen
    categories, schema), as ``shipyard data check`` reports it."""

    def column(self, name: str) -> ColumnDrift:
        for col in self.columns:
            if col.column == name:
                return col
        raise KeyError(name)

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        return tuple(c.column for c in self.columns if c.drifted)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = _clean(asdict(self))
        data["drifted_columns"] = list(self.drifted_columns)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftReport:
        raw = {k: v for k, v in data.items() if k != "drifted_columns"}
        raw["columns"] = tuple(ColumnDrift.from_dict(c) for c in raw["columns"])
        if raw.get("prediction") is not None:
            raw["prediction"] = ColumnDrift.from_dict(raw["prediction"])
        raw["findings"] = tuple(
            Finding(**{**f, "severity": Severity(f["severity"])}) for f in raw.get("findings", ())
        )
        for key in ("window_start", "window_end"):
            if isinstance(raw.get(key), str):
                raw[key] = datetime.fromisoformat(raw[key])
        return cls(**raw)


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    """Requests a deployment answered in a window, from its prediction log."""

    requests: int
    errors: int
    """Requests answered with a 4xx or 5xx status."""
    request_rate: float
    """Requests per second over the window."""
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = _clean(asdict(self))
        data["error_rate"] = self.error_rate
        return data


@dataclass(frozen=True, slots=True)
class WindowResult:
    """What one time window of a deployment's traffic looked like."""

    start: datetime
    end: datetime
    rows: int
    """Predicted rows in the window."""
    drift: DriftReport | None = None
    quality: tuple[Finding, ...] = ()
    performance: dict[str, float | None] | None = None
    """Metrics on the rows whose labels arrived (``accuracy``, ``f1``, ``rmse`` …)."""
    labelled_rows: int = 0
    label_delay_seconds: dict[str, float | None] | None = None
    """Delay between prediction and label: ``{"p50": ..., "p95": ..., "max": ...}``."""
    estimated_performance: dict[str, float | None] | None = None
    """Confidence-based estimate (CBPE) for classifiers; an estimate, not a measurement."""
    health: ServiceHealth | None = None
    notes: tuple[str, ...] = ()
    """Why something was not computed, e.g. "drift not tested: 12 rows, fewer than 30"."""

    def metrics(self) -> dict[str, float]:
        """The window as flat metric names -> values, for alert rules and gauges.

        ``rows``, ``drift.share``, ``drift.drifted`` (0/1), ``drift.column.<c>.distance``,
        ``drift.prediction.distance``, ``quality.errors``, ``quality.warnings``,
        ``performance.<m>``, ``estimated.<m>``, ``labels.rows``, ``labels.delay_p50_s``,
        ``health.requests``, ``health.request_rate``, ``health.error_rate``,
        ``health.latency_p50_ms`` / ``_p95_ms`` / ``_p99_ms``. Values that could not be
        computed are left out — quality without answered rows, error rate and latency
        without requests — so that a silent window neither fires nor resolves an alert.
        """
        out: dict[str, float | None] = {"rows": float(self.rows)}
        if self.drift is not None:
            out["drift.share"] = self.drift.share_drifted
            out["drift.drifted"] = float(self.drift.drifted)
            for col in self.drift.columns:
                out[f"drift.column.{col.column}.distance"] = col.distance
                out[f"drift.column.{col.column}.drifted"] = float(col.drifted)
            if self.drift.prediction is not None:
                out["drift.prediction.distance"] = self.drift.prediction.distance
                out["drift.prediction.drifted"] = float(self.drift.prediction.drifted)
        if self.rows:  # a window without answered rows was not checked: no quality verdict
            out["quality.errors"] = float(sum(f.severity is Severity.ERROR for f in self.quality))
            out["quality.warnings"] = float(
                sum(f.severity is Severity.WARNING for f in self.quality)
            )
        for name, value in (self.performance or {}).items():
            out[f"performance.{name}"] = value
        for name, value in (self.estimated_performance or {}).items():
            out[f"estimated.{name}"] = value
        out["labels.rows"] = float(self.labelled_rows)
        if self.label_delay_seconds:
            out["labels.delay_p50_s"] = self.label_delay_seconds.get("p50")
        if self.health is not None:
            out["health.requests"] = float(self.health.requests)
            out["health.request_rate"] = self.health.request_rate
            if self.health.requests:  # no traffic is not "no errors": leave the rate out
                out["health.error_rate"] = self.health.error_rate
                out["health.latency_p50_ms"] = self.health.latency_p50_ms
                out["health.latency_p95_ms"] = self.health.latency_p95_ms
                out["health.latency_p99_ms"] = self.health.latency_p99_ms
        return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(float(v))}

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows": self.rows,
            "drift": self.drift.to_dict() if self.drift is not None else None,
            "quality": [f.to_dict() for f in self.quality],
            "performance": _clean(self.performance),
            "labelled_rows": self.labelled_rows,
            "label_delay_seconds": _clean(self.label_delay_seconds),
            "estimated_performance": _clean(self.estimated_performance),
            "health": self.health.to_dict() if self.health is not None else None,
            "notes": list(self.notes),
            "metrics": self.metrics(),
        }


class AlertState(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One rule of ``monitors.yaml``: fire when ``metric op threshold`` holds for
    ``for_windows`` consecutive windows; resolve when it stops holding."""

    name: str
    metric: str
    """A flat metric name of :meth:`WindowResult.metrics`, e.g. ``drift.share``."""
    threshold: float
    op: str = ">"
    """``>``, ``>=``, ``<``, ``<=``."""
    for_windows: int = 1
    severity: Severity = Severity.WARNING
    model: str | None = None
    """The deployment (served model name) the rule watches; None = every monitored one."""
    description: str = ""
    delay_seconds: float = 0.0
    """Evaluate a window only once it ended this long ago, e.g. two days for a
    ``performance.*`` rule whose labels arrive late; younger windows wait."""

    def holds(self, value: float) -> bool:
        match self.op:
            case ">":
                return value > self.threshold
            case ">=":
                return value >= self.threshold
            case "<":
                return value < self.threshold
            case "<=":
                return value <= self.threshold
        raise ValueError(f"unknown comparison {self.op!r}")


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert that started firing or resolved, as stored and as sent to webhooks."""

    event_id: str
    rule: str
    model: str
    state: AlertState
    severity: Severity
    metric: str
    value: float | None
    threshold: float
    at: datetime
    """When the event happened (the end of the window that decided it)."""
    window_start: datetime | None = None
    window_end: datetime | None = None
    message: str = ""
    recorded_at: datetime | None = field(default=None, compare=False)
    """When the store recorded it (what a poller's ``since`` compares with); None before it
    is stored. Not part of equality: the same event, stored or not, is equal."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = _clean(asdict(self))
        return data
