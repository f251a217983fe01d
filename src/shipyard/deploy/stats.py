"""What each route of a deployment has answered: counts a model server keeps and stores.

A :class:`RouteCounter` lives in each model server process. It counts requests, failures,
latency (in fixed buckets, so counts from many servers add up exactly) and predictions (per
class label, or per rounded number) for every route, and hands cumulative
:class:`~shipyard.entities.RouteStats` to the store every second or so. The controller reads
the sum over servers.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shipyard.entities import RouteStats

__all__ = [
    "LATENCY_EDGES_MS",
    "MAX_PREDICTION_KEYS",
    "OTHER",
    "RouteCounter",
    "edge_at_or_above",
    "latency_quantile",
    "prediction_keys",
    "slower_than",
]


def _edges() -> tuple[float, ...]:
    edges = []
    edge = 0.1
    while edge < 120_000:
        edges.append(round(edge, 4))
        edge *= 1.15
    return tuple(edges)


LATENCY_EDGES_MS: tuple[float, ...] = _edges()
"""Upper edges (ms) of the latency buckets: 0.1 ms to 2 min, 15 % apart; one more bucket
holds everything slower."""
MAX_PREDICTION_KEYS = 256
"""Distinct prediction values counted per route; the rest are counted under :data:`OTHER`."""
OTHER = "__other__"
_TINY = 1e-300
"""Smaller numbers count as 0 (their 2-digit rounding scale would underflow)."""


def _key(value: Any) -> str:
    if isinstance(value, str):
        return value[:64]
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if abs(value) < _TINY:
            value = 0.0
        else:  # 2 significant digits, as _array_keys rounds them
            scale = 10.0 ** (math.floor(math.log10(abs(value))) - 1)
            value = round(value / scale) * scale
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.2g}"
    if isinstance(value, list | tuple):  # multi-output rows: the first output
        return _key(value[0]) if value else ""
    return str(value)[:64]


def _array_keys(values: Any) -> dict[str, int] | None:
    """:func:`prediction_keys` of a numeric numpy array, vectorised (None: not one)."""
    import numpy as np

    if values.ndim > 1:
        values = values.reshape(len(values), -1)[:, 0]
    kind = values.dtype.kind
    if kind in "iub":
        found, counts = np.unique(values, return_counts=True)
        return {_key(v): int(n) for v, n in zip(found.tolist(), counts.tolist(), strict=True)}
    if kind != "f" or not np.all(np.isfinite(values)):
        return None
    values = np.where(np.abs(values) < _TINY, 0.0, values)
    magnitude = np.floor(np.log10(np.where(values == 0, 1.0, np.abs(values))))
    scale = 10.0 ** (magnitude - 1)
    rounded = np.round(values / scale) * scale  # 2 significant digits, as _key formats them
    found, counts = np.unique(rounded, return_counts=True)
    keys: dict[str, int] = {}
    for value, n in zip(found.tolist(), counts.tolist(), strict=True):
        key = _key(float(value))
        keys[key] = keys.get(key, 0) + int(n)
    return keys


def prediction_keys(predictions: Any) -> dict[str, int]:
    """Counts of predictions by value: class labels as they are, numbers to 2 significant
    digits (so a regression model's outputs fall into a bounded set of keys)."""
    if hasattr(predictions, "dtype") and hasattr(predictions, "ndim") and len(predictions) > 16:
        keys = _array_keys(predictions)
        if keys is not None:
            return keys
    tolist = getattr(predictions, "tolist", None)
    values: Iterable[Any] = tolist() if callable(tolist) else predictions
    if hasattr(predictions, "columns"):  # a DataFrame from a pyfunc model: its first column
        values = predictions.iloc[:, 0].tolist()
    counts: dict[str, int] = {}
    for value in values:
        key = _key(value)
        counts[key] = counts.get(key, 0) + 1
    return counts


def edge_at_or_above(ms: float) -> float:
    """The smallest bucket edge at or above ``ms``."""
    index = bisect.bisect_left(LATENCY_EDGES_MS, ms)
    return LATENCY_EDGES_MS[min(index, len(LATENCY_EDGES_MS) - 1)]


def latency_quantile(counts: tuple[int, ...] | list[int], q: float) -> float | None:
    """The bucket edge (ms) below which a fraction ``q`` of the requests fell (None if none)."""
    total = sum(counts)
    if total == 0:
        return None
    wanted = q * total
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= wanted:
            return LATENCY_EDGES_MS[min(index, len(LATENCY_EDGES_MS) - 1)]
    return LATENCY_EDGES_MS[-1]


def slower_than(counts: tuple[int, ...] | list[int], threshold_ms: float) -> int:
    """Requests slower than ``threshold_ms``: exact when it is a bucket edge (see
    :func:`edge_at_or_above`); otherwise the bucket that holds it is counted too."""
    first = bisect.bisect_right(LATENCY_EDGES_MS, threshold_ms)
    return sum(counts[first:])


@dataclass
class _Counts:
    model: str
    requests: int = 0
    errors: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_EDGES_MS) + 1))
    predictions: dict[str, int] = field(default_factory=dict)
    compared: int = 0
    agreements: int = 0
    abs_difference: float = 0.0
    mirrored_dropped: int = 0


class RouteCounter:
    """Cumulative counts per ``(route, version)`` of one deployment, in one process."""

    def __init__(self, deployment: str) -> None:
        self.deployment = deployment
        self._counts: dict[tuple[str, int], _Counts] = {}
        self._lock = threading.Lock()
        self.changed = False

    def _get(self, route: str, model: str, version: int) -> _Counts:
        counts = self._counts.get((route, version))
        if counts is None:
            counts = self._counts[(route, version)] = _Counts(model)
        return counts

    def record(
        self,
        route: str,
        model: str,
        version: int,
        *,
        ok: bool,
        latency_ms: float,
        predictions: Any = None,
    ) -> None:
        """One request answered by ``route`` (``ok``: status 200)."""
        keys = prediction_keys(predictions) if ok and predictions is not None else None
        bucket = bisect.bisect_left(LATENCY_EDGES_MS, latency_ms)
        with self._lock:
            counts = self._get(route, model, version)
            counts.requests += 1
            if not ok:
                counts.errors += 1
            counts.latency[bucket] += 1
            if keys:
                seen = counts.predictions
                for key, n in keys.items():
                    if key not in seen and len(seen) >= MAX_PREDICTION_KEYS:
                        key = OTHER
                    seen[key] = seen.get(key, 0) + n
            self.changed = True

    def record_shadow(
        self, route: str, model: str, version: int, *, agreed: int, compared: int, diff: float
    ) -> None:
        """A shadow answer compared with the live one: rows that agreed, rows compared and
        the sum of absolute differences of numeric predictions."""
        with self._lock:
            counts = self._get(route, model, version)
            counts.compared += compared
            counts.agreements += agreed
            counts.abs_difference += diff
            self.changed = True

    def record_dropped(self, route: str, model: str, version: int) -> None:
        """A mirror to ``route`` dropped: its queue was full."""
        with self._lock:
            self._get(route, model, version).mirrored_dropped += 1
            self.changed = True

    def snapshot(self) -> list[RouteStats]:
        """Everything counted so far, as stored (cumulative)."""
        now = time.time_ns() // 1_000_000
        with self._lock:
            self.changed = False
            return [
                RouteStats(
                    deployment=self.deployment,
                    route=route,
                    model=c.model,
                    version=version,
                    requests=c.requests,
                    errors=c.errors,
                    latency_counts=tuple(c.latency),
                    predictions=dict(c.predictions),
                    compared=c.compared,
                    agreements=c.agreements,
                    abs_difference=c.abs_difference,
                    mirrored_dropped=c.mirrored_dropped,
                    updated=now,
                )
                for (route, version), c in self._counts.items()
            ]
