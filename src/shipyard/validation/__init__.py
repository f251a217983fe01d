"""Validation: evaluate a model on unseen data, check it against a gate policy, write a report.

Example:
    >>> from shipyard import models, validation
    >>> report = validation.evaluate(  # doctest: +SKIP
    ...     models.load("churn@3"), table, target="churned", sensitive=["gender"],
    ...     against=models.load("churn@champion"),
    ... )
    >>> policy = validation.load_policy("gate.yaml")  # doctest: +SKIP
    >>> gate = validation.apply_policy(report, policy)  # doctest: +SKIP
    >>> validation.write_report(report, "out", gate)  # doctest: +SKIP

Importing this package loads neither scikit-learn, fairlearn, matplotlib nor pandas; they are
imported when a report is computed or drawn. ``docs/validation.md`` defines every number.
"""

from shipyard.entities.validation import (
    GatePolicy,
    GateResult,
    ValidationReport,
)
from shipyard.validation.evaluate import evaluate
from shipyard.validation.html import render_html
from shipyard.validation.metrics import detect_task, higher_is_better, main_metric
from shipyard.validation.policy import apply_policy, load_policy, parse_policy
from shipyard.validation.report import report_json, write_report

__all__ = [
    "GatePolicy",
    "GateResult",
    "ValidationReport",
    "apply_policy",
    "detect_task",
    "evaluate",
    "higher_is_better",
    "load_policy",
    "main_metric",
    "parse_policy",
    "render_html",
    "report_json",
    "write_report",
]
