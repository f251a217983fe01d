"""The nouns of model validation: a report of metrics, slices, fairness, robustness and a
comparison with the champion, a gate policy and the gate's verdict.

Every ``to_dict`` gives strict JSON: a value that could not be computed (``NaN``) is ``None``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CalibrationCurve",
    "ChampionComparison",
    "ConfusionMatrix",
    "FairnessResult",
    "GatePolicy",
    "GateResult",
    "Residuals",
    "RobustnessCheck",
    "SliceMetrics",
    "SliceReport",
    "ValidationReport",
]


def _num(value: float | None) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return float(value)


def _nums(metrics: dict[str, float]) -> dict[str, float | None]:
    return {name: _num(value) for name, value in metrics.items()}


@dataclass(frozen=True, slots=True)
class ConfusionMatrix:
    """Counts of true label (row) against predicted label (column), in ``labels`` order."""

    labels: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "counts": [list(row) for row in self.counts]}


@dataclass(frozen=True, slots=True)
class CalibrationCurve:
    """Mean predicted probability and observed frequency of the positive class per bin.

    Only bins that hold rows appear; ``bins`` is how many equal-width bins were asked for.
    """

    positive: str
    bins: int
    mean_predicted: tuple[float, ...]
    observed: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "positive": self.positive,
            "bins": self.bins,
            "mean_predicted": list(self.mean_predicted),
            "observed": list(self.observed),
        }


@dataclass(frozen=True, slots=True)
class Residuals:
    """Predictions and residuals (``actual - predicted``) of a regression, for a plot.

    At most a fixed number of rows (a seeded sample) are kept; ``rows`` is how many there were.
    """

    predicted: tuple[float, ...]
    residual: tuple[float, ...]
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "predicted": list(self.predicted),
            "residual": list(self.residual),
            "rows": self.rows,
        }


@dataclass(frozen=True, slots=True)
class SliceMetrics:
    """The metrics of the rows where a column has one value (or falls in one bin)."""

    value: str
    rows: int
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "rows": self.rows, "metrics": _nums(self.metrics)}


@dataclass(frozen=True, slots=True)
class SliceReport:
    """Metrics per value of one column; a numeric column is cut into quantile bins."""

    column: str
    binned: bool
    """True when the values are quantile bins of a numeric column (labels are intervals)."""
    slices: tuple[SliceMetrics, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "binned": self.binned,
            "slices": [s.to_dict() for s in self.slices],
        }


@dataclass(frozen=True, slots=True)
class FairnessResult:
    """Per-group metrics of one sensitive attribute and the gaps between the groups.

    The gaps are ``None`` for a regression model (they are defined for classification only);
    ``note`` says why.
    """

    attribute: str
    groups: tuple[SliceMetrics, ...]
    demographic_parity_difference: float | None
    equalized_odds_difference: float | None
    note: str = ""

    @property
    def gaps(self) -> dict[str, float | None]:
        return {
            "demographic_parity_difference": self.demographic_parity_difference,
            "equalized_odds_difference": self.equalized_odds_difference,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute,
            "groups": [g.to_dict() for g in self.groups],
            "demographic_parity_difference": _num(self.demographic_parity_difference),
            "equalized_odds_difference": _num(self.equalized_odds_difference),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class RobustnessCheck:
    """The main metric on perturbed input.

    ``kind`` is ``noise`` (Gaussian noise of ``level`` times each numeric column's standard
    deviation) or ``missing`` (a ``level`` share of numeric cells set to NaN, then filled with the
    column's median). ``degradation`` is how much worse than ``baseline`` the metric got,
    positive meaning worse whatever the metric's direction.
    """

    kind: str
    level: float
    metric: str
    value: float
    baseline: float
    degradation: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "level": self.level,
            "metric": self.metric,
            "value": _num(self.value),
            "baseline": _num(self.baseline),
            "degradation": _num(self.degradation),
        }


@dataclass(frozen=True, slots=True)
class ChampionComparison:
    """The candidate against another model (the champion) on the same rows.

    ``difference`` is candidate minus champion on the main metric; ``ci_low``/``ci_high`` its
    paired-bootstrap confidence interval. ``verdict`` is ``better`` or ``worse`` only when the
    interval excludes 0, else ``no difference``.
    """

    against: str
    metric: str
    higher_is_better: bool
    candidate: float
    champion: float
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    resamples: int
    verdict: str
    champion_metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "against": self.against,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "candidate": _num(self.candidate),
            "champion": _num(self.champion),
            "difference": _num(self.difference),
            "ci_low": _num(self.ci_low),
            "ci_high": _num(self.ci_high),
            "confidence": self.confidence,
            "resamples": self.resamples,
            "verdict": self.verdict,
            "champion_metrics": _nums(self.champion_metrics),
        }


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """Everything :func:`shipyard.validation.evaluate` found about one model on one table."""

    model: str
    data: str
    task: str
    """``binary``, ``multiclass`` or ``regression``."""
    target: str
    rows: int
    main_metric: str
    metrics: dict[str, float]
    seed: int
    classes: tuple[str, ...] = ()
    confusion: ConfusionMatrix | None = None
    calibration: CalibrationCurve | None = None
    residuals: Residuals | None = None
    slices: tuple[SliceReport, ...] = ()
    fairness: tuple[FairnessResult, ...] = ()
    robustness: tuple[RobustnessCheck, ...] = ()
    comparison: ChampionComparison | None = None
    notes: tuple[str, ...] = ()

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"

    def checks(self) -> set[str]:
        """Which optional checks ran: ``slices``, ``fairness``, ``robustness``, ``comparison``."""
        ran = {
            "slices": bool(self.slices),
            "fairness": bool(self.fairness),
            "robustness": bool(self.robustness),
            "comparison": self.comparison is not None,
        }
        return {name for name, done in ran.items() if done}

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "data": self.data,
            "task": self.task,
            "target": self.target,
            "rows": self.rows,
            "seed": self.seed,
            "main_metric": self.main_metric,
            "metrics": _nums(self.metrics),
            "classes": list(self.classes),
            "confusion_matrix": self.confusion.to_dict() if self.confusion else None,
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "residuals": self.residuals.to_dict() if self.residuals else None,
            "slices": [s.to_dict() for s in self.slices],
            "fairness": [f.to_dict() for f in self.fairness],
            "robustness": [r.to_dict() for r in self.robustness],
            "comparison": self.comparison.to_dict() if self.comparison else None,
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """Thresholds a report must meet (see ``docs/validation.md`` for the YAML form)."""

    min: dict[str, float] = field(default_factory=dict)
    max: dict[str, float] = field(default_factory=dict)
    max_regression: dict[str, float] = field(default_factory=dict)
    """Metric -> how much worse than the champion the candidate may be."""
    max_fairness_gap: dict[str, float] = field(default_factory=dict)
    max_robustness_drop: float | None = None
    required: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "min": dict(self.min),
            "max": dict(self.max),
            "max_regression": dict(self.max_regression),
            "max_fairness_gap": dict(self.max_fairness_gap),
            "max_robustness_drop": self.max_robustness_drop,
            "required": list(self.required),
        }


@dataclass(frozen=True, slots=True)
class GateResult:
    """Whether a report passed a policy; each failure names the rule and the numbers."""

    passed: bool
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failures": list(self.failures)}
