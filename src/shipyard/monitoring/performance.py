"""Model performance per window: measured where labels arrived, estimated where they did not.

Measured metrics are the validation metrics (:mod:`shipyard.validation.metrics`) on the rows
whose ground truth came back through the feedback log. Without labels, a classifier whose
probabilities are calibrated still says how often it expects to be right: confidence-based
performance estimation (CBPE, as NannyML describes it) turns each row's probabilities into an
expected confusion matrix and computes the metrics from it. It is an estimate, valid while
``P(y | x)`` stays what the model learned (no concept drift).

The model's probabilities must already be calibrated: they are used exactly as the model gave
them, with no calibration step (NannyML first calibrates them on labelled reference data;
Shipyard does not). Over-confident scores, as boosted trees and SVMs often give, make the
estimate too optimistic; calibrate such a model before serving it (e.g. scikit-learn's
``CalibratedClassifierCV``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.errors import ShipyardError
from shipyard.monitoring.logs import input_table

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from shipyard.models import LoadedModel

__all__ = [
    "ESTIMATED_METRICS",
    "LoggedVersions",
    "MeasuredPerformance",
    "estimate_performance",
    "estimated_performance",
    "label_delays",
    "measured_performance",
]

log = logging.getLogger(__name__)

ESTIMATED_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
_NAN = float("nan")


@dataclass(frozen=True, slots=True)
class MeasuredPerformance:
    """Metrics on the rows of a window whose labels arrived."""

    metrics: dict[str, float | None] | None
    """None when no label arrived."""
    labelled_rows: int
    label_delay_seconds: dict[str, float | None] | None
    """``p50``, ``p95`` and ``max`` seconds between prediction and label."""
    task: str | None = None
    """``binary``, ``multiclass`` or ``regression``."""


def label_delays(seconds: Sequence[float]) -> dict[str, float | None] | None:
    """The 50th and 95th percentile and the maximum of label delays, in seconds."""
    import numpy as np

    if not len(seconds):
        return None
    values = np.asarray(seconds, dtype=float)
    return {
        "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)),
        "max": float(values.max()),
    }


def _classes(table: pa.Table) -> list[Any] | None:
    import json

    from shipyard.monitoring.logformat import CLASSES_METADATA_KEY

    raw = (table.schema.metadata or {}).get(CLASSES_METADATA_KEY)
    return list(json.loads(raw)) if raw is not None else None


def _aligned(*columns: Sequence[Any]) -> list[np.ndarray[Any, Any]]:
    """The columns as float arrays when all are numbers, text arrays otherwise (regression)."""
    import numpy as np

    common, numeric = _common(*columns)
    if numeric:
        return [np.asarray(c, dtype=float) for c in common]
    return [np.asarray(c, dtype=object) for c in common]


def _classes_aligned(*columns: Sequence[Any]) -> list[np.ndarray[Any, Any]]:
    """The columns as arrays of class labels of one type (see :func:`_common`)."""
    import numpy as np

    common, numeric = _common(*columns)
    return [np.asarray(c) if numeric else np.asarray(c, dtype=object) for c in common]


def _plain(value: Any) -> Any:
    """A numpy scalar as its Python value; a bool or a whole float as the int it stands for."""
    import numpy as np

    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _common(*columns: Sequence[Any]) -> tuple[list[list[Any]], bool]:
    """The columns' values in one type, so that equal labels compare equal, and whether it
    is numbers.

    Labels arrive as JSON (``1``, ``true``) while the log keeps the model's type (``1.0``, a
    bool as int64): when every value is a number or a bool they become numbers (bools 0/1,
    whole floats ints); only when numbers and text truly mix does everything become text.
    Nulls stay null.
    """
    plain = [[_plain(v) for v in c] for c in columns]
    numeric = all(isinstance(v, int | float) for c in plain for v in c if v is not None)
    if numeric:
        return plain, True
    return [[None if v is None else str(v) for v in c] for c in plain], False


def _probabilities(values: Sequence[Any], n_classes: int) -> np.ndarray[Any, Any] | None:
    """An (n, k) array of the logged probabilities, or None when some row has none."""
    import numpy as np

    if not values or any(v is None or len(v) != n_classes for v in values):
        return None
    return np.asarray(values, dtype=float)


def measured_performance(table: pa.Table) -> MeasuredPerformance:
    """The validation metrics on the labelled rows of a table from ``read_predictions``.

    Classification (the log has probabilities or names classes, or the labels are class-like
    and the predictions are not fractional; see
    :func:`shipyard.validation.metrics.detect_task`): accuracy, precision, recall, F1
    (positive class for two classes, macro average for more), and ROC AUC and log loss where
    every labelled row has probabilities. Regression: MAE, RMSE, R².
    """
    import pandas as pd
    import pyarrow.compute as pc

    from shipyard.validation.metrics import compute_metrics, detect_task

    answered = pc.and_(pc.less(table.column("status"), 400), pc.is_valid(table.column("label")))
    labelled = table.filter(pc.and_(answered, pc.is_valid(table.column("prediction"))))
    n = labelled.num_rows
    delays = label_delays(labelled.column("label_delay_seconds").drop_null().to_pylist())
    if n == 0:
        return MeasuredPerformance(None, 0, None)
    labels = labelled.column("label").to_pylist()
    predicted = labelled.column("prediction").to_pylist()
    classes = _classes(labelled)
    probabilities = labelled.column("proba").to_pylist()
    has_proba = classes is not None and any(p is not None for p in probabilities)
    task = detect_task(pd.Series(labels), has_proba=has_proba or classes is not None)
    if classes is None and any(isinstance(v, float) and not v.is_integer() for v in predicted):
        task = "regression"  # a few integer labels look like classes; the answers do not
    elif task == "regression" and any(isinstance(v, str) for v in predicted):
        task = "binary"  # text answers are classes (float labels look like a regression)
    if task == "regression":
        y, pred = _aligned(labels, predicted)
        return MeasuredPerformance(_finite(compute_metrics(task, y, pred)), n, delays, task)
    if classes is None:
        (named_labels, named_predictions), _ = _common(labels, predicted)
        known = sorted({*named_labels, *named_predictions})
    else:
        known = classes
    y, pred, order = _classes_aligned(labels, predicted, known)
    proba = _probabilities(probabilities, len(order)) if classes is not None else None
    if proba is not None and not set(y.tolist()) <= set(order.tolist()):
        log.debug("labels outside the model's classes: no ROC AUC or log loss")
        proba = None
    if classes is None:
        task = "binary" if len(order) <= 2 else "multiclass"
    metrics = compute_metrics(task, y, pred, proba, order)
    return MeasuredPerformance(_finite(metrics), n, delays, task)


def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    import math

    return {k: v if math.isfinite(v) else None for k, v in metrics.items()}


def _binary_auc(score: np.ndarray[Any, Any]) -> float:
    """Expected ROC AUC when each row is positive with probability ``score``.

    The ROC curve of every threshold between distinct scores, with expected counts: a row
    above the threshold adds ``p`` true and ``1 - p`` false positives, a row below adds
    ``p`` false and ``1 - p`` true negatives.
    """
    import numpy as np

    ordered = score[np.argsort(-score, kind="stable")]
    tp = np.cumsum(ordered)
    fp = np.cumsum(1.0 - ordered)
    if tp[-1] <= 0 or fp[-1] <= 0:
        return _NAN
    last_of_each = np.r_[np.diff(ordered) != 0, True]
    tpr = np.r_[0.0, tp[last_of_each] / tp[-1]]
    fpr = np.r_[0.0, fp[last_of_each] / fp[-1]]
    return float(np.trapezoid(tpr, fpr))


def estimate_performance(
    proba: Any, classes: Sequence[Any], predicted: Sequence[Any] | None = None
) -> dict[str, float | None]:
    """Confidence-based performance estimation (CBPE) from calibrated class probabilities.

    ``proba`` must be calibrated: it is taken as the true chance of each class, with no
    calibration step, so over-confident scores overstate every metric.

    Each row is right with the probability its model gave the predicted class, so the
    expected confusion matrix of class ``k`` sums, over the rows predicted ``k``, ``p_k``
    into true and ``1 - p_k`` into false positives, and over the other rows ``p_k`` into false
    and ``1 - p_k`` into true negatives. Expected ROC AUC uses those expected counts at
    every threshold.

    Args:
        proba: an (n, k) array of class probabilities in the order of ``classes``.
        classes: the class labels.
        predicted: the labels the model answered; default the most probable class.

    Returns:
        Expected ``accuracy``, ``precision``, ``recall``, ``f1`` and ``roc_auc`` (for two
        classes those of ``classes[1]``, for more their macro average, one-vs-rest for ROC
        AUC), as the measured metrics define them; None where undefined or with no rows.
    """
    import numpy as np

    p = np.asarray(proba, dtype=float)
    k = len(classes)
    if p.ndim != 2 or p.shape[1] != k or k < 2 or p.shape[0] == 0:
        return dict.fromkeys(ESTIMATED_METRICS)
    rows = np.arange(p.shape[0])
    chosen = p.argmax(axis=1)
    if predicted is not None:
        (named, given), _ = _common(classes, predicted)
        index = {c: i for i, c in enumerate(named)}
        logged = np.array([index.get(v, -1) if v is not None else -1 for v in given])
        chosen = np.where(logged >= 0, logged, chosen)
    accuracy = float(p[rows, chosen].mean())
    scores = []
    targets = [1] if k == 2 else range(k)
    for c in targets:
        is_predicted = chosen == c
        tp = float(p[is_predicted, c].sum())
        fp = float((1.0 - p[is_predicted, c]).sum())
        fn = float(p[~is_predicted, c].sum())
        precision = tp / (tp + fp) if tp + fp > 0 else 0.0
        recall = tp / (tp + fn) if tp + fn > 0 else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0
        scores.append((precision, recall, f1, _binary_auc(p[:, c])))
    precision, recall, f1, auc = (float(np.mean(s)) for s in zip(*scores, strict=True))
    result: dict[str, float | None] = {
        "accuracy": accuracy,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": auc,
    }
    return {name: v if v is not None and np.isfinite(v) else None for name, v in result.items()}


@dataclass
class LoggedVersions:
    """The versions of a served model named in its log, each loaded at most once.

    Attributes:
        model: the served (registered) model name.
        home: the workspace whose registry holds it.
    """

    model: str
    home: str | os.PathLike[str] | None = None
    _loaded: dict[str, LoadedModel | None] = field(default_factory=dict, repr=False)

    def get(self, version: str) -> LoadedModel | None:
        """The loaded version, or None (logged once at debug level) when it cannot be."""
        if version not in self._loaded:
            from shipyard.models import load

            try:
                self._loaded[version] = load(f"{self.model}@{version}", home=self.home)
            except ShipyardError as exc:
                log.debug("cannot load %s@%s for estimates: %s", self.model, version, exc)
                self._loaded[version] = None
        return self._loaded[version]


def estimated_performance(
    table: pa.Table, versions: LoggedVersions | None = None
) -> dict[str, float | None] | None:
    """The CBPE estimate for the answered rows of a table from ``read_predictions``.

    Probabilities come from the log's ``proba`` column; where a row has none, from the logged
    model version's ``predict_proba`` on the logged inputs (``versions`` loads them). They are
    used as they are, not calibrated: the estimate holds only for a model whose probabilities
    are calibrated.

    Returns:
        The estimate (see :func:`estimate_performance`) with ``rows``, the number of rows it
        rests on; None, with the reason logged at debug level, when the model is not a
        classifier with probabilities or no row could be scored.
    """
    import pyarrow.compute as pc

    answered = table.filter(pc.less(table.column("status"), 400))
    if answered.num_rows == 0:
        return None
    classes = _classes(answered)
    logged = answered.column("proba").to_pylist()
    proba = _probabilities(logged, len(classes)) if classes is not None else None
    if proba is None or classes is None:
        if versions is None:
            log.debug("no probabilities in the log and no model to compute them: no estimate")
            return None
        found = _model_probabilities(answered, versions)
        if found is None:
            return None
        proba, classes = found
    estimate = estimate_performance(proba, classes, answered.column("prediction").to_pylist())
    return {**estimate, "rows": float(len(proba))}


def _model_probabilities(
    table: pa.Table, versions: LoggedVersions
) -> tuple[np.ndarray[Any, Any], list[Any]] | None:
    """``predict_proba`` of each logged version on its rows (all versions must agree on the
    classes)."""
    import numpy as np

    logged = np.asarray(table.column("version").to_pylist(), dtype=object)
    proba: np.ndarray[Any, Any] | None = None
    classes: list[Any] | None = None
    for version in sorted(set(logged.tolist()), key=str):
        loaded = versions.get(str(version))
        if loaded is None:
            return None
        if not loaded.has_predict_proba:
            log.debug(
                "%s@%s (%s) has no predict_proba: no performance estimate",
                versions.model,
                version,
                loaded.meta.model_type,
            )
            return None
        known = getattr(loaded.model, "classes_", None)
        if known is None:
            log.debug("%s@%s names no classes_: no performance estimate", versions.model, version)
            return None
        if classes is not None and [str(c) for c in known] != [str(c) for c in classes]:
            log.debug("versions of %s disagree on the classes: no estimate", versions.model)
            return None
        classes = [c.item() if hasattr(c, "item") else c for c in known]
        rows = np.flatnonzero(logged == version)
        inputs = input_table(table.take(rows)).to_pandas()
        try:
            part = np.asarray(loaded.predict_proba(inputs), dtype=float)
        except ShipyardError as exc:
            log.debug("%s@%s rejected the logged inputs: %s", versions.model, version, exc)
            return None
        if proba is None:
            proba = np.empty((len(logged), part.shape[1]))
        proba[rows] = part
    if proba is None or classes is None:
        return None
    return proba, classes
