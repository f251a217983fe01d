"""Prometheus metrics of one model server, in their own registry (one per app, so tests and
several apps in a process do not collide).

With several worker processes each writes its values to files in a shared folder
(prometheus_client's multiprocess mode) and ``GET /metrics`` on any worker adds them up:
counters and histograms are summed over every worker that ever ran, gauges over the live ones.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["ServerMetrics"]

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _use_shared_folder(folder: str) -> None:
    """Make this process's metrics live in ``folder`` (before any metric is created)."""
    from prometheus_client import values

    os.environ[MULTIPROCESS_ENV] = folder
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


class ServerMetrics:
    """The counters, gauges and histograms ``GET /metrics`` exposes.

    Args:
        shared_folder: where every worker process of one server keeps its values (None: this
            process only).
    """

    def __init__(self, shared_folder: str | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        if shared_folder is not None:
            _use_shared_folder(shared_folder)
        self.shared_folder = shared_folder
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "shipyard_requests",
            "Prediction requests answered.",
            ["model", "version", "protocol", "status", "deployment", "route", "mode"],
            registry=r,
        )
        self.latency = Histogram(
            "shipyard_request_duration_seconds",
            "Time to answer a prediction request.",
            ["model", "protocol", "deployment", "route", "mode"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "shipyard_requests_in_flight",
            "Prediction requests being answered.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.batch_size = Histogram(
            "shipyard_batch_size",
            "Rows scored together in one model call.",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "shipyard_batch_queue_depth",
            "Requests waiting to be batched.",
            ["model"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.load_seconds = Gauge(
            "shipyard_model_load_seconds",
            "Time taken to load the served model version.",
            ["model", "version"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.log_dropped = Counter(
            "shipyard_prediction_log_dropped",
            "Prediction log rows lost: the writer's buffer was full, or a write failed.",
            registry=r,
        )
        self.log_write_errors = Counter(
            "shipyard_prediction_log_write_errors",
            "Prediction log writes that failed (full or read-only disk, unloggable records).",
            registry=r,
        )
        self.log_written = Counter(
            "shipyard_prediction_log_written", "Prediction log rows written.", registry=r
        )
        self._children: dict[tuple[str, ...], tuple[Any, Any]] = {}

    def render(self) -> tuple[bytes, str]:
        """The exposition text (of every worker, when they share a folder) and its type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.shared_folder is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.shared_folder)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def observe(
        self,
        model: str,
        version: str,
        protocol: str,
        status: int,
        seconds: float,
        route: tuple[str, str, str] = ("", "", ""),
    ) -> None:
        """Count one answered request; ``route`` is its ``(deployment, route, mode)`` (empty
        for a model served by reference)."""
        key = (model, version, protocol, str(status), *route)
        children = self._children.get(key)
        if children is None:  # labels() takes a lock and builds a key: once per combination
            children = self._children[key] = (
                self.requests.labels(*key),
                self.latency.labels(model, protocol, *route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def observe_batch(self, model: str, rows: int) -> None:
        self.batch_size.labels(model).observe(rows)

    def set_queue_depth(self, model: str, waiting: int) -> None:
        self.queue_depth.labels(model).set(waiting)
