"""Service health per time window, from the prediction log: requests, errors, latency.

Everything is one SQL aggregate: rows are grouped into requests by ``request_id`` and
``timestamp`` (a request of many rows counts once, with its one latency), then by window. No row
reaches Python. The timestamp is part of a request's identity because clients may set
``x-request-id`` and reuse it (a retry, a fixed id): the server stamps every row of a request
with the time that request arrived, so two requests sharing an id stay two.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime

from shipyard.entities.monitoring import ServiceHealth
from shipyard.errors import InvalidArgumentError
from shipyard.monitoring.logs import log_connection, log_schema, model_segments, utc

__all__ = ["ERROR_STATUS", "health_by_window", "service_health"]

ERROR_STATUS = 400
"""Requests answered with this HTTP status or above are errors."""

_SQL = """
    WITH w AS (
        SELECT unnest($index) AS i, unnest($starts) AS ws, unnest($ends) AS we
    ),
    r AS (
        SELECT "timestamp" AS ts, max(status) AS status, max(latency_ms) AS latency_ms
        FROM read_parquet($files, union_by_name = true)
        WHERE "timestamp" >= $lo AND "timestamp" < $hi
        GROUP BY request_id, "timestamp"
    )
    SELECT w.i, count(*), count(*) FILTER (WHERE r.status >= $error),
        quantile_cont(r.latency_ms, 0.5), quantile_cont(r.latency_ms, 0.95),
        quantile_cont(r.latency_ms, 0.99)
    FROM r JOIN w ON r.ts >= w.ws AND r.ts < w.we
    GROUP BY w.i
"""


def health_by_window(
    model: str,
    windows: Sequence[tuple[datetime, datetime]],
    *,
    root: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
    memory_limit: str = "2GB",
) -> list[ServiceHealth]:
    """The service health of each ``(start, end)`` window (end excluded), in one query.

    A request is the rows of one ``request_id`` and arrival ``timestamp``: a client that
    reuses an id makes one request per arrival. It belongs to the window its arrival falls
    in. The latency percentiles are over requests, not rows.

    Raises:
        NotFoundError: the model has no prediction log.
        InvalidArgumentError: a window ends before it starts, or a segment cannot be read.
    """
    bounds = [(utc(start), utc(end)) for start, end in windows]
    for start, end in bounds:
        if end <= start:
            raise InvalidArgumentError(f"the window ending {end} does not start before it")
    if not bounds:
        return []
    lo, hi = min(s for s, _ in bounds), max(e for _, e in bounds)
    folder, files = model_segments(model, start=lo, end=hi, root=root, home=home)
    found: dict[int, tuple[int, int, float | None, float | None, float | None]] = {}
    if files:
        from shipyard.data.tables import read_errors

        params = {
            "index": list(range(len(bounds))),
            "starts": [s for s, _ in bounds],
            "ends": [e for _, e in bounds],
            "files": files,
            "lo": lo,
            "hi": hi,
            "error": ERROR_STATUS,
        }
        with log_connection(memory_limit) as con:
            log_schema(con, files, folder)
            with read_errors(folder):
                for i, requests, errors, p50, p95, p99 in con.execute(_SQL, params).fetchall():
                    found[int(i)] = (int(requests), int(errors), p50, p95, p99)
    results = []
    for i, (start, end) in enumerate(bounds):
        requests, errors, p50, p95, p99 = found.get(i, (0, 0, None, None, None))
        results.append(
            ServiceHealth(
                requests=requests,
                errors=errors,
                request_rate=requests / (end - start).total_seconds(),
                latency_p50_ms=_number(p50),
                latency_p95_ms=_number(p95),
                latency_p99_ms=_number(p99),
            )
        )
    return results


def service_health(
    model: str,
    *,
    start: datetime,
    end: datetime,
    root: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
) -> ServiceHealth:
    """The service health of one window; see :func:`health_by_window`."""
    return health_by_window(model, [(start, end)], root=root, home=home)[0]


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
