"""Gate policies: thresholds a validation report must meet, read from YAML.

Example::

    min: {roc_auc: 0.9, accuracy: 0.85}
    max: {log_loss: 0.35}
    max_regression: {roc_auc: 0.01}
    max_fairness_gap: {demographic_parity_difference: 0.1, equalized_odds_difference: 0.15}
    max_robustness_drop: 0.05
    required: [fairness, robustness, comparison]

``min``/``max`` must be met by metrics the model's task has (a missing one fails).
``max_regression``, ``max_fairness_gap`` and ``max_robustness_drop`` apply to the checks that
ran; ``required`` makes a check's absence a failure.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from shipyard.entities.validation import GatePolicy, GateResult, ValidationReport
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.validation.metrics import (
    CLASSIFICATION_METRICS,
    FAIRNESS_METRICS,
    REGRESSION_METRICS,
    degradation,
)

__all__ = ["CHECKS", "RULES", "apply_policy", "load_policy", "parse_policy"]

METRICS = (*CLASSIFICATION_METRICS, *REGRESSION_METRICS)
CHECKS = ("comparison", "fairness", "robustness", "slices")
RULES = ("max", "max_fairness_gap", "max_regression", "max_robustness_drop", "min", "required")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidArgumentError(f"policy: {where} must be a number, not {value!r}")
    return float(value)


def _thresholds(rule: str, value: Any, known: tuple[str, ...]) -> dict[str, float]:
    if not isinstance(value, dict):
        raise InvalidArgumentError(
            f"policy: {rule} must be a mapping of metric to threshold, not {value!r}"
        )
    result = {}
    for metric, threshold in value.items():
        if metric not in known:
            raise InvalidArgumentError(
                f"policy: unknown metric {metric!r} in {rule}; known: {', '.join(known)}"
            )
        result[str(metric)] = _number(threshold, f"{rule}.{metric}")
    return result


def parse_policy(document: Any) -> GatePolicy:
    """Check a parsed policy document and build the :class:`GatePolicy`.

    Raises:
        InvalidArgumentError: an unknown rule, metric or check, or a value of the wrong type;
            the message names it.
    """
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise InvalidArgumentError("policy: the file must hold a mapping of rule to settings")
    unknown = [str(k) for k in document if k not in RULES]
    if unknown:
        raise InvalidArgumentError(
            f"policy: unknown rule {unknown[0]!r}; known rules: {', '.join(RULES)}"
        )
    required = document.get("required", [])
    if not isinstance(required, list) or not all(isinstance(c, str) for c in required):
        raise InvalidArgumentError(f"policy: required must be a list of checks, not {required!r}")
    for check in required:
        if check not in CHECKS:
            raise InvalidArgumentError(
                f"policy: unknown check {check!r} in required; known: {', '.join(CHECKS)}"
            )
    drop = document.get("max_robustness_drop")
    return GatePolicy(
        min=_thresholds("min", document.get("min", {}), METRICS),
        max=_thresholds("max", document.get("max", {}), METRICS),
        max_regression=_thresholds("max_regression", document.get("max_regression", {}), METRICS),
        max_fairness_gap=_thresholds(
            "max_fairness_gap", document.get("max_fairness_gap", {}), FAIRNESS_METRICS
        ),
        max_robustness_drop=None if drop is None else _number(drop, "max_robustness_drop"),
        required=tuple(dict.fromkeys(required)),
    )


def load_policy(path: str | os.PathLike[str]) -> GatePolicy:
    """Read and check a YAML gate policy.

    Raises:
        NotFoundError: no such file.
        InvalidArgumentError: the file is not YAML, or see :func:`parse_policy`.
    """
    import yaml

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"no policy file {file}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgumentError(f"policy: {file} is not valid YAML: {exc}") from exc
    return parse_policy(document)


def _f(value: float) -> str:
    return f"{value:.3f}"


def apply_policy(report: ValidationReport, policy: GatePolicy) -> GateResult:
    """Check ``report`` against ``policy``; every failed rule is one line with its numbers."""
    failures: list[str] = []
    for metric, bound in policy.min.items():
        value = report.metrics.get(metric)
        if value is None or math.isnan(value):
            failures.append(f"{metric} not computed for this model (min {_f(bound)})")
        elif value < bound:
            failures.append(f"{metric} {_f(value)} < min {_f(bound)}")
    for metric, bound in policy.max.items():
        value = report.metrics.get(metric)
        if value is None or math.isnan(value):
            failures.append(f"{metric} not computed for this model (max {_f(bound)})")
        elif value > bound:
            failures.append(f"{metric} {_f(value)} > max {_f(bound)}")
    comparison = report.comparison
    if comparison is not None:
        for metric, bound in policy.max_regression.items():
            ours = report.metrics.get(metric)
            theirs = comparison.champion_metrics.get(metric)
            if ours is None or theirs is None or math.isnan(ours) or math.isnan(theirs):
                failures.append(f"{metric} not computed for both models (max_regression)")
                continue
            worse = degradation(metric, ours, theirs)
            if worse > bound:
                failures.append(
                    f"{metric} {_f(ours)} is {_f(worse)} worse than {comparison.against} "
                    f"{_f(theirs)} > max_regression {_f(bound)}"
                )
    for result in report.fairness:
        for metric, bound in policy.max_fairness_gap.items():
            gap = result.gaps[metric]
            if gap is None or math.isnan(gap):
                failures.append(f"{metric} for {result.attribute} not computed ({result.note})")
            elif gap > bound:
                failures.append(
                    f"{metric} for {result.attribute} {_f(gap)} > max_fairness_gap {_f(bound)}"
                )
    if policy.max_robustness_drop is not None:
        for check in report.robustness:
            if math.isnan(check.degradation):
                failures.append(f"{check.metric} under {check.kind} {check.level:g} not computed")
            elif check.degradation > policy.max_robustness_drop:
                failures.append(
                    f"{check.metric} under {check.kind} {check.level:g} {_f(check.value)} drops "
                    f"{_f(check.degradation)} from {_f(check.baseline)} > max_robustness_drop "
                    f"{_f(policy.max_robustness_drop)}"
                )
    ran = report.checks()
    # A rule about a check implies the check: a gate must not pass because a CI job forgot
    # --against or --sensitive.
    implied = {
        "comparison": bool(policy.max_regression),
        "fairness": bool(policy.max_fairness_gap),
        "robustness": policy.max_robustness_drop is not None,
    }
    needed = [
        *policy.required,
        *(c for c, on in implied.items() if on and c not in policy.required),
    ]
    failures.extend(f"required check {check!r} did not run" for check in needed if check not in ran)
    return GateResult(passed=not failures, failures=failures)
