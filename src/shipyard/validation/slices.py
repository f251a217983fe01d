"""Cut a table into slices by one column and compute the metrics of each slice.

A column with few distinct values (text, categories, booleans, integers with at most
:data:`MAX_VALUES` values) gives one slice per value. Any other numeric column is cut into
:data:`QUANTILE_BINS` quantile bins, labelled by their intervals. Missing values are a slice of
their own, ``(missing)``. Past :data:`MAX_SLICES` values, the rarest are pooled as ``(other)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shipyard.entities.validation import SliceMetrics, SliceReport
from shipyard.validation.metrics import compute_metrics

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["MAX_SLICES", "MAX_VALUES", "QUANTILE_BINS", "slice_labels", "slice_report"]

QUANTILE_BINS = 4
MAX_VALUES = 10
MAX_SLICES = 30
MISSING = "(missing)"
OTHER = "(other)"


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def slice_labels(column: pd.Series) -> tuple[list[str], bool]:
    """A slice label per row, and whether the labels are quantile bins."""
    import pandas as pd

    dtype = column.dtype
    numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if numeric and column.nunique() > MAX_VALUES:
        import numpy as np

        values = column.to_numpy(dtype=float, na_value=np.nan)
        edges = np.unique(np.nanquantile(values, np.linspace(0, 1, QUANTILE_BINS + 1)))
        names = [
            f"[{_fmt(lo)}, {_fmt(hi)}{']' if i == len(edges) - 2 else ')'}"
            for i, (lo, hi) in enumerate(itertools.pairwise(edges))
        ]
        index = np.searchsorted(edges[1:-1], values, side="right")
        return [
            MISSING if np.isnan(v) else names[i] for v, i in zip(values, index, strict=True)
        ], True
    labels = [MISSING if pd.isna(v) else str(v) for v in column.astype(object)]
    counts = pd.Series(labels).value_counts()
    if len(counts) > MAX_SLICES:
        keep = set(counts.index[: MAX_SLICES - 1])
        labels = [label if label in keep else OTHER for label in labels]
    return labels, False


def _order(labels: list[str], binned: bool) -> list[str]:
    unique = list(dict.fromkeys(labels))
    if binned:
        return sorted(
            unique,
            key=lambda s: (s == MISSING, float(s[1:].split(",")[0]) if s != MISSING else 0.0),
        )
    return sorted(unique, key=lambda s: (s in (MISSING, OTHER), s))


def slice_report(
    column: pd.Series,
    task: str,
    y: np.ndarray[Any, Any],
    pred: np.ndarray[Any, Any],
    proba: np.ndarray[Any, Any] | None,
    classes: np.ndarray[Any, Any] | None,
) -> SliceReport:
    """The metrics of each slice of ``column`` (aligned by position with ``y`` and ``pred``)."""

    labels, binned = slice_labels(column)
    results = group_metrics(labels, _order(labels, binned), task, y, pred, proba, classes)
    return SliceReport(column=str(column.name), binned=binned, slices=tuple(results))


def group_metrics(
    labels: list[str],
    order: list[str],
    task: str,
    y: np.ndarray[Any, Any],
    pred: np.ndarray[Any, Any],
    proba: np.ndarray[Any, Any] | None,
    classes: np.ndarray[Any, Any] | None,
    extra: Callable[[np.ndarray[Any, Any]], dict[str, float]] | None = None,
) -> list[SliceMetrics]:
    """The metrics of the rows of each group in ``order`` (``labels`` aligned with ``y``);
    ``extra(mask)`` adds metrics of its own (the fairness rates)."""
    import numpy as np

    label_array = np.asarray(labels, dtype=object)
    results = []
    for label in order:
        mask = label_array == label
        metrics = compute_metrics(
            task, y[mask], pred[mask], proba[mask] if proba is not None else None, classes
        )
        if extra is not None:
            metrics |= extra(mask)
        results.append(SliceMetrics(value=label, rows=int(mask.sum()), metrics=metrics))
    return results
