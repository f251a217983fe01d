"""Route counts: prediction keys (vectorised and per row agree), latency buckets."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from shipyard.deploy.stats import (
    LATENCY_EDGES_MS,
    RouteCounter,
    edge_at_or_above,
    latency_quantile,
    prediction_keys,
    slower_than,
)

FLOATS = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.integers(17, 200), elements=FLOATS))
def test_vectorised_keys_equal_the_per_row_keys(values: np.ndarray) -> None:
    per_row: dict[str, int] = {}
    for key in (next(iter(prediction_keys([v]))) for v in values.tolist()):
        per_row[key] = per_row.get(key, 0) + 1
    assert prediction_keys(values) == per_row


def test_class_labels_and_two_significant_digits() -> None:
    assert prediction_keys(np.array([0, 1, 1] * 10)) == {"0": 10, "1": 20}
    assert prediction_keys([0.1234, 0.1249, 99.7, "yes"]) == {"0.12": 2, "100": 1, "yes": 1}


def test_slow_requests_are_counted_exactly_at_a_bucket_edge() -> None:
    counter = RouteCounter("d")
    for ms in (1.0, 2.0, 3.0, 10.0, 50.0):
        counter.record("stable", "m", 1, ok=True, latency_ms=ms)
    [stats] = counter.snapshot()
    limit = edge_at_or_above(3.0)
    assert limit in LATENCY_EDGES_MS and limit >= 3.0
    assert slower_than(stats.latency_counts, limit) == 2  # 10 and 50 ms
    assert latency_quantile(stats.latency_counts, 0.5) == edge_at_or_above(3.0)
