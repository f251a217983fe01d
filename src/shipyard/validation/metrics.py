"""Metric names, their direction, task detection and the metrics themselves.

The report's numbers come from scikit-learn. :func:`resampled_scores` computes the main metric
on many bootstrap resamples at once with numpy (same definitions, checked against scikit-learn
in the tests) because a thousand calls through scikit-learn's input validation are slow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "CLASSIFICATION_METRICS",
    "FAIRNESS_METRICS",
    "LOWER_IS_BETTER",
    "REGRESSION_METRICS",
    "classification_metrics",
    "compute_metrics",
    "degradation",
    "detect_task",
    "higher_is_better",
    "main_metric",
    "regression_metrics",
    "resampled_scores",
]

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("mae", "rmse", "r2")
FAIRNESS_METRICS = ("demographic_parity_difference", "equalized_odds_difference")
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse"})
MAX_CLASSES = 20
"""An integer or text target with at most this many distinct values is a class label."""

_NAN = float("nan")


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def degradation(metric: str, value: float, baseline: float) -> float:
    """How much worse ``value`` is than ``baseline``; positive means worse, either direction."""
    return baseline - value if higher_is_better(metric) else value - baseline


def detect_task(target: pd.Series, *, has_proba: bool, n_classes: int | None = None) -> str:
    """``binary``, ``multiclass`` or ``regression``.

    Classification when the model has ``predict_proba`` or the target holds labels: booleans,
    categories, text, or integers with at most :data:`MAX_CLASSES` distinct values.
    """
    import pandas as pd

    dtype = target.dtype
    labels = (
        pd.api.types.is_bool_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or (pd.api.types.is_integer_dtype(dtype) and target.nunique() <= MAX_CLASSES)
    )
    if not (has_proba or labels):
        return "regression"
    count = n_classes if n_classes is not None else int(target.nunique())
    return "binary" if count <= 2 else "multiclass"


def main_metric(task: str, *, has_proba: bool) -> str:
    """The metric comparisons, robustness checks and slices bars are about."""
    if task == "regression":
        return "r2"
    return "roc_auc" if has_proba else "accuracy"


def compute_metrics(
    task: str,
    y: np.ndarray[Any, Any],
    pred: np.ndarray[Any, Any],
    proba: np.ndarray[Any, Any] | None = None,
    classes: np.ndarray[Any, Any] | None = None,
) -> dict[str, float]:
    """The metrics of ``task``; see :func:`classification_metrics`, :func:`regression_metrics`."""
    if task == "regression":
        return regression_metrics(y, pred)
    if classes is None:
        raise InvalidArgumentError("classification metrics need the classes")
    return classification_metrics(y, pred, proba, classes)


def classification_metrics(
    y: np.ndarray[Any, Any],
    pred: np.ndarray[Any, Any],
    proba: np.ndarray[Any, Any] | None,
    classes: np.ndarray[Any, Any],
) -> dict[str, float]:
    """Accuracy, precision, recall, F1, and with probabilities ROC AUC and log loss.

    Two classes: precision, recall and F1 of the positive class ``classes[1]``. More: their
    unweighted mean over classes (macro) and one-vs-rest ROC AUC. A metric that is undefined on
    these rows (ROC AUC when one class is absent) is NaN.
    """
    import numpy as np
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    if len(y) == 0:
        return dict.fromkeys(CLASSIFICATION_METRICS if proba is not None else _HARD, _NAN)
    binary = len(classes) == 2
    kwargs: dict[str, Any] = (
        {"pos_label": classes[1], "average": "binary"}
        if binary
        else {"labels": classes, "average": "macro"}
    )
    metrics = {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0, **kwargs)),
        "recall": float(recall_score(y, pred, zero_division=0, **kwargs)),
        "f1": float(f1_score(y, pred, zero_division=0, **kwargs)),
    }
    if proba is None:
        return metrics
    present = set(np.unique(y).tolist())
    if binary:
        positive = y == classes[1]
        auc = float(roc_auc_score(positive, proba[:, 1])) if len(present) == 2 else _NAN
    elif present >= set(classes.tolist()):
        auc = float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes))
    else:
        auc = _NAN
    metrics["roc_auc"] = auc
    metrics["log_loss"] = float(log_loss(y, proba, labels=classes))
    return metrics


_HARD = ("accuracy", "precision", "recall", "f1")


def regression_metrics(y: np.ndarray[Any, Any], pred: np.ndarray[Any, Any]) -> dict[str, float]:
    """Mean absolute error, root mean squared error and R² (NaN on fewer than two rows)."""
    import numpy as np
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    if len(y) == 0:
        return dict.fromkeys(REGRESSION_METRICS, _NAN)
    return {
        "mae": float(mean_absolute_error(y, pred)),
        "rmse": float(np.sqrt(mean_squared_error(y, pred))),
        "r2": float(r2_score(y, pred)) if len(y) >= 2 and np.ptp(y) > 0 else _NAN,
    }


def _binary_auc(scores: np.ndarray[Any, Any], positive: np.ndarray[Any, Any]) -> Any:
    """ROC AUC of each row of ``scores`` (Mann-Whitney U from average ranks, ties shared)."""
    import numpy as np
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=1)
    n_pos = positive.sum(axis=1)
    n_neg = positive.shape[1] - n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (ranks * positive).sum(axis=1) - n_pos * (n_pos + 1) / 2
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def resampled_scores(
    metric: str,
    y: np.ndarray[Any, Any],
    pred: np.ndarray[Any, Any],
    proba: np.ndarray[Any, Any] | None,
    classes: np.ndarray[Any, Any] | None,
    indices: np.ndarray[Any, Any],
) -> np.ndarray[Any, Any]:
    """``metric`` on each row of ``indices`` (a resample of row positions), as a 1-D array."""
    import numpy as np

    fast: dict[str, Callable[[], Any]] = {}
    if metric == "accuracy":
        correct = (np.asarray(y) == np.asarray(pred)).astype(float)
        fast[metric] = lambda: correct[indices].mean(axis=1)
    elif metric in ("mae", "rmse", "r2"):
        error = np.asarray(y, dtype=float) - np.asarray(pred, dtype=float)
        if metric == "mae":
            fast[metric] = lambda: np.abs(error)[indices].mean(axis=1)
        elif metric == "rmse":
            fast[metric] = lambda: np.sqrt((error**2)[indices].mean(axis=1))
        else:

            def r2() -> Any:
                actual = np.asarray(y, dtype=float)[indices]
                total = ((actual - actual.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
                residual = (error**2)[indices].sum(axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    return np.where(total > 0, 1 - residual / total, np.nan)

            fast[metric] = r2
    elif metric == "log_loss" and proba is not None and classes is not None:
        column = np.searchsorted(classes, y)
        p_true = proba[np.arange(len(y)), column]
        eps = np.finfo(proba.dtype).eps
        loss = -np.log(np.clip(p_true, eps, 1 - eps))
        fast[metric] = lambda: loss[indices].mean(axis=1)
    elif metric == "roc_auc" and proba is not None and classes is not None:
        if len(classes) == 2:
            positive = np.asarray(y) == classes[1]
            fast[metric] = lambda: _binary_auc(proba[:, 1][indices], positive[indices])
        else:

            def ovr() -> Any:
                per_class = [
                    _binary_auc(proba[:, k][indices], (np.asarray(y) == c)[indices])
                    for k, c in enumerate(classes)
                ]
                return np.mean(per_class, axis=0)

            fast[metric] = ovr
    if metric in fast:
        return np.asarray(fast[metric](), dtype=float)
    raise InvalidArgumentError(f"no bootstrap for metric {metric!r}")
