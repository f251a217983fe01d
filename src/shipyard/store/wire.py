"""Floats on the wire between a Shipyard server and its clients.

Strict JSON has no NaN or infinities. Metric-like values (a metric, a threshold, a deployment
number) travel as MLflow sends metrics: NaN as ``null``, an infinity as the string
``"Infinity"`` or ``"-Infinity"`` — :func:`json_float` and :func:`float_from_json`. Values
that must come back exactly equal inside arbitrary JSON (a pipeline's parameters, an event's
details) use the tagged form of :mod:`shipyard.store.rest_pipelines` (``{"$float": "NaN"}``).
"""

from __future__ import annotations

import math

__all__ = ["float_from_json", "json_float"]


def json_float(value: float) -> float | str | None:
    """``value`` for strict JSON: NaN is ``null``, an infinity ``"Infinity"``/``"-Infinity"``."""
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def float_from_json(value: float | str | None) -> float:
    """The inverse of :func:`json_float`."""
    return math.nan if value is None else float(value)
