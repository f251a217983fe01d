"""Service health per window, aggregated in SQL over the prediction log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.monitoring.health import health_by_window, service_health
from tests.monitoring._logs import write_failures, write_predictions

T0 = datetime(2024, 5, 1, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)
TYPES = {"x": pa.float64()}


def _write(root: Path) -> list[float]:
    """First hour: 4 answered requests (one of three rows), two failures; second hour: none;
    third hour: one request."""
    latencies = [10.0, 20.0, 30.0, 400.0]
    write_predictions(
        root, "m", pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}),
        timestamps=[T0 + timedelta(minutes=m) for m in (1, 1, 1, 5, 9, 30)],
        predictions=[0] * 6, request_ids=["a", "a", "a", "b", "c", "d"], rows=[0, 1, 2, 0, 0, 0],
        latency_ms=[10.0, 10.0, 10.0, 20.0, 30.0, 400.0],
    )  # fmt: skip
    write_failures(root, "m", timestamps=[T0 + timedelta(minutes=40)], input_types=TYPES)
    write_failures(
        root, "m", timestamps=[T0 + timedelta(minutes=41)], input_types=TYPES, status=422,
        latency_ms=2.0,
    )  # fmt: skip
    write_predictions(
        root, "m", pd.DataFrame({"x": [1.0]}), timestamps=[T0 + 2 * HOUR], predictions=[1]
    )
    return [*latencies, 1.0, 2.0]


def test_requests_errors_rate_and_latency_per_window(tmp_path: Path) -> None:
    latencies = _write(tmp_path)
    windows = [(T0, T0 + HOUR), (T0 + HOUR, T0 + 2 * HOUR), (T0 + 2 * HOUR, T0 + 3 * HOUR)]
    first, empty, last = health_by_window("m", windows, root=tmp_path)
    assert (first.requests, first.errors) == (6, 2)
    assert first.error_rate == pytest.approx(2 / 6)
    assert first.request_rate == pytest.approx(6 / 3600)
    # Percentiles over requests (request "a" counts once), interpolated like numpy's default.
    for value, q in (
        (first.latency_p50_ms, 50),
        (first.latency_p95_ms, 95),
        (first.latency_p99_ms, 99),
    ):
        assert value == pytest.approx(float(np.percentile(latencies, q)))
    assert (empty.requests, empty.errors, empty.request_rate) == (0, 0, 0.0)
    assert empty.latency_p50_ms is None and empty.error_rate == 0.0
    assert last.requests == 1 and last.latency_p99_ms == pytest.approx(5.0)


def test_one_window_and_a_short_last_window(tmp_path: Path) -> None:
    _write(tmp_path)
    health = service_health("m", start=T0, end=T0 + timedelta(minutes=30), root=tmp_path)
    assert (health.requests, health.errors) == (3, 0)
    assert health.request_rate == pytest.approx(3 / 1800)
    assert health.to_dict()["error_rate"] == 0.0


def test_requests_that_reuse_an_id_count_once_per_arrival(tmp_path: Path) -> None:
    """A client-set x-request-id: failed at 10:10, retried at 10:20 and again an hour later."""
    write_failures(
        tmp_path, "m", timestamps=[T0 + timedelta(minutes=10)], input_types=TYPES,
        request_ids=["retry-1"],
    )  # fmt: skip
    for minutes, latency in ((20, 7.0), (70, 9.0)):
        write_predictions(
            tmp_path, "m", pd.DataFrame({"x": [1.0, 2.0]}),
            timestamps=T0 + timedelta(minutes=minutes), predictions=[1, 1],
            request_ids=["retry-1", "retry-1"], rows=[0, 1], latency_ms=latency,
        )  # fmt: skip
    first, second = health_by_window(
        "m", [(T0, T0 + HOUR), (T0 + HOUR, T0 + 2 * HOUR)], root=tmp_path
    )
    assert (first.requests, first.errors) == (2, 1)
    assert first.latency_p50_ms == pytest.approx((1.0 + 7.0) / 2)
    assert (second.requests, second.errors, second.latency_p50_ms) == (1, 0, 9.0)


def test_bad_windows_and_missing_logs_are_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no prediction log"):
        service_health("m", start=T0, end=T0 + HOUR, root=tmp_path)
    _write(tmp_path)
    with pytest.raises(InvalidArgumentError, match="does not start before"):
        service_health("m", start=T0, end=T0, root=tmp_path)
    assert health_by_window("m", [], root=tmp_path) == []
