"""Prometheus metrics of one model server, in their own registry (one per app, so tests and
several apps in a process do not collide)."""

from __future__ import annotations

__all__ = ["ServerMetrics"]

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    """The counters, gauges and histograms ``GET /metrics`` exposes."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "shipyard_requests",
            "Prediction requests answered.",
            ["model", "version", "protocol", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "shipyard_request_duration_seconds",
            "Time to answer a prediction request.",
            ["model", "protocol"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "shipyard_requests_in_flight", "Prediction requests being answered.", registry=r
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
        )
        self.load_seconds = Gauge(
            "shipyard_model_load_seconds",
            "Time taken to load the served model version.",
            ["model", "version"],
            registry=r,
        )
        self.log_dropped = Counter(
            "shipyard_prediction_log_dropped",
            "Prediction log records dropped because the writer's buffer was full.",
            registry=r,
        )
        self.log_written = Counter(
            "shipyard_prediction_log_written", "Prediction log records written.", registry=r
        )

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def observe(self, model: str, version: str, protocol: str, status: int, seconds: float) -> None:
        self.requests.labels(model, version, protocol, str(status)).inc()
        self.latency.labels(model, protocol).observe(seconds)
