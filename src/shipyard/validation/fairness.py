"""Fairness per sensitive attribute: per-group metrics and the gaps between groups.

The gaps come from fairlearn. *Demographic parity difference* is the largest difference between
groups in the share of rows predicted positive; *equalized odds difference* is the larger of the
largest differences in true-positive rate and in false-positive rate. Both are 0 for a model
that treats the groups alike. With more than two classes each class in turn is the positive one
(one-vs-rest) and the largest gap is reported. Regression gets per-group metrics only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.entities.validation import FairnessResult
from shipyard.validation.slices import group_metrics, slice_labels

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["fairness_result"]

_NAN = float("nan")


def _rates(actual: np.ndarray[Any, Any], predicted: np.ndarray[Any, Any]) -> dict[str, float]:
    positives = int(actual.sum())
    negatives = len(actual) - positives
    return {
        "selection_rate": float(predicted.mean()) if len(actual) else _NAN,
        "true_positive_rate": float(predicted[actual].sum() / positives) if positives else _NAN,
        "false_positive_rate": (float(predicted[~actual].sum() / negatives) if negatives else _NAN),
    }


def _gaps(
    actual: np.ndarray[Any, Any], predicted: np.ndarray[Any, Any], groups: np.ndarray[Any, Any]
) -> tuple[float, float]:
    from fairlearn.metrics import (
        demographic_parity_difference,
        equalized_odds_difference,
    )

    a, p = actual.astype(int), predicted.astype(int)
    return (
        float(demographic_parity_difference(a, p, sensitive_features=groups)),
        float(equalized_odds_difference(a, p, sensitive_features=groups)),
    )


def fairness_result(
    column: pd.Series,
    task: str,
    y: np.ndarray[Any, Any],
    pred: np.ndarray[Any, Any],
    proba: np.ndarray[Any, Any] | None,
    classes: np.ndarray[Any, Any] | None,
) -> FairnessResult:
    """Per-group metrics of ``column``'s groups and (classification) the fairness gaps.

    Numeric columns with many values are grouped into quantile bins, as slices are.
    """
    import numpy as np

    labels, _ = slice_labels(column)
    groups = np.asarray(labels, dtype=object)
    names = sorted(set(labels))
    binary = task == "binary" and classes is not None
    positive = classes[1] if binary and classes is not None else None
    results = group_metrics(
        labels,
        names,
        task,
        y,
        pred,
        proba,
        classes,
        extra=None
        if positive is None
        else lambda mask: _rates(y[mask] == positive, pred[mask] == positive),
    )
    attribute = str(column.name)
    if task == "regression" or classes is None:
        return FairnessResult(
            attribute,
            tuple(results),
            None,
            None,
            note="demographic parity and equalized odds are defined for classification; "
            "per-group metrics only",
        )
    if len(names) < 2:
        return FairnessResult(
            attribute, tuple(results), 0.0, 0.0, note=f"one group only ({names[0]!r})"
        )
    if binary:
        dp, eo = _gaps(y == classes[1], pred == classes[1], groups)
        return FairnessResult(attribute, tuple(results), dp, eo)
    per_class = [_gaps(y == c, pred == c, groups) for c in classes]
    return FairnessResult(
        attribute,
        tuple(results),
        max(g[0] for g in per_class),
        max(g[1] for g in per_class),
        note="multiclass: the largest one-vs-rest gap over classes",
    )
