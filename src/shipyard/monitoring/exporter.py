"""Prometheus gauges of monitored deployments, from their latest window, and a ``/metrics``
server for them.

The gauges live on their own :class:`prometheus_client.CollectorRegistry`, never the global
one, and are rebuilt from the latest :class:`~shipyard.entities.WindowResult` of each model at
every scrape, so a column that left the data leaves the metrics too.

Example::

    metrics = MonitoringMetrics()

    def update() -> None:                      # called at start, then every `interval`
        for model, window in latest_windows().items():
            metrics.observe(model, window)
        metrics.set_alerts(config.rules, backend.get_alert_progress())

    server = serve_exporter("0.0.0.0", 9108, update, metrics)
    server.wait()                              # until Ctrl-C or server.close()
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

from shipyard.entities import AlertRule, Severity, WindowResult
from shipyard.errors import InvalidArgumentError
from shipyard.store.backend import AlertProgress

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = ["METRICS", "ExporterServer", "MonitoringMetrics", "serve_exporter"]

log = logging.getLogger(__name__)

METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "shipyard_window_rows": (("model",), "Predicted rows in the latest window."),
    "shipyard_drift_share": (("model",), "Share of features flagged as drifted."),
    "shipyard_dataset_drift_detected": (("model",), "1 if the dataset as a whole drifted."),
    "shipyard_drift_distance": (
        ("model", "column"),
        "Drift distance (PSI, normalised Wasserstein or Jensen-Shannon) of each feature.",
    ),
    "shipyard_drift_detected": (("model", "column"), "1 if the feature is flagged as drifted."),
    "shipyard_prediction_drift_distance": (("model",), "Drift distance of the predictions."),
    "shipyard_quality_findings": (
        ("model", "severity"),
        "Data quality findings (error, warning) in the latest window.",
    ),
    "shipyard_model_performance": (
        ("model", "metric"),
        "Measured performance on the rows whose labels arrived.",
    ),
    "shipyard_model_estimated_performance": (
        ("model", "metric"),
        "Estimated performance (confidence-based), before labels arrive.",
    ),
    "shipyard_labelled_rows": (("model",), "Rows of the latest window with a label."),
    "shipyard_health_requests": (("model",), "Requests answered in the latest window."),
    "shipyard_health_request_rate": (("model",), "Requests per second in the latest window."),
    "shipyard_health_error_rate": (("model",), "Share of requests answered with 4xx/5xx."),
    "shipyard_health_latency_seconds": (
        ("model", "quantile"),
        "Server-side latency quantiles (0.5, 0.95, 0.99) in the latest window.",
    ),
    "shipyard_alerts_firing": (("model", "rule", "severity"), "1 while the alert rule fires."),
    "shipyard_monitor_window_end_timestamp_seconds": (
        ("model",),
        "End of the latest evaluated window (Unix time).",
    ),
    "shipyard_monitor_last_evaluation_timestamp_seconds": (
        ("model",),
        "When the latest window was handed to the exporter (Unix time).",
    ),
}
"""Every metric the exporter serves: name -> (labels, help). All are gauges."""


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        raise InvalidArgumentError(
            "the Prometheus exporter needs prometheus-client: "
            "pip install 'shipyard-mlops[monitoring]'"
        ) from exc
    return prometheus_client


class MonitoringMetrics:
    """The gauges of monitored models, on a dedicated registry (:attr:`registry`).

    Thread-safe: :meth:`observe` and :meth:`set_alerts` may run while a scrape collects.
    """

    def __init__(self) -> None:
        self.registry: CollectorRegistry = _prometheus().CollectorRegistry()
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[WindowResult, float]] = {}
        self._alerts: list[tuple[str, str, Severity, bool]] = []
        self.registry.register(self)

    def observe(self, model: str, window: WindowResult, *, at: float | None = None) -> None:
        """Make ``window`` the latest of ``model`` (replacing every series of the previous).

        Args:
            model: the deployment.
            window: its newest evaluated window.
            at: when it was evaluated (Unix time); now by default.
        """
        with self._lock:
            self._windows[model] = (window, time.time() if at is None else at)

    def forget(self, model: str) -> None:
        """Drop every series of ``model`` (a deployment no longer monitored)."""
        with self._lock:
            self._windows.pop(model, None)
            self._alerts = [a for a in self._alerts if a[0] != model]

    def set_alerts(self, rules: Iterable[AlertRule], progress: Iterable[AlertProgress]) -> None:
        """Set ``shipyard_alerts_firing`` for every rule: 1 firing, 0 not (or never evaluated).

        Rules without a ``model`` are skipped (a monitor's rules always have one).
        """
        firing = {(p.model, p.rule) for p in progress if p.firing}
        alerts = [
            (r.model, r.name, r.severity, (r.model, r.name) in firing)
            for r in rules
            if r.model is not None
        ]
        with self._lock:
            self._alerts = alerts

    def describe(self) -> list[Metric]:
        """The metric families without samples (how the registry learns the names)."""
        gauge = _prometheus().metrics_core.GaugeMetricFamily
        return [gauge(name, doc, labels=labels) for name, (labels, doc) in METRICS.items()]

    def collect(self) -> Iterator[Metric]:
        """Build every gauge from the latest windows (called at each scrape)."""
        with self._lock:
            windows = dict(self._windows)
            alerts = list(self._alerts)
        gauge = _prometheus().metrics_core.GaugeMetricFamily
        families = {
            name: gauge(name, doc, labels=labels) for name, (labels, doc) in METRICS.items()
        }

        def add(name: str, labels: list[str], value: float | None) -> None:
            if value is not None and math.isfinite(value):
                families[name].add_metric(labels, float(value))

        for model, (window, at) in sorted(windows.items()):
            _add_window(add, model, window)
            end = window.end if window.end.tzinfo else window.end.replace(tzinfo=UTC)
            add("shipyard_monitor_window_end_timestamp_seconds", [model], end.timestamp())
            add("shipyard_monitor_last_evaluation_timestamp_seconds", [model], at)
        for model, rule, severity, firing in alerts:
            add("shipyard_alerts_firing", [model, rule, str(severity)], float(firing))
        yield from families.values()


def _add_window(
    add: Callable[[str, list[str], float | None], None], model: str, w: WindowResult
) -> None:
    add("shipyard_window_rows", [model], float(w.rows))
    if w.drift is not None:
        add("shipyard_drift_share", [model], w.drift.share_drifted)
        add("shipyard_dataset_drift_detected", [model], float(w.drift.drifted))
        for col in w.drift.columns:
            add("shipyard_drift_distance", [model, col.column], col.distance)
            add("shipyard_drift_detected", [model, col.column], float(col.drifted))
        if w.drift.prediction is not None:
            add("shipyard_prediction_drift_distance", [model], w.drift.prediction.distance)
    for severity in (Severity.ERROR, Severity.WARNING):
        count = sum(f.severity is severity for f in w.quality)
        add("shipyard_quality_findings", [model, severity.value], float(count))
    for metric, value in sorted((w.performance or {}).items()):
        add("shipyard_model_performance", [model, metric], value)
    for metric, value in sorted((w.estimated_performance or {}).items()):
        add("shipyard_model_estimated_performance", [model, metric], value)
    add("shipyard_labelled_rows", [model], float(w.labelled_rows))
    if w.health is not None:
        h = w.health
        add("shipyard_health_requests", [model], float(h.requests))
        add("shipyard_health_request_rate", [model], h.request_rate)
        add("shipyard_health_error_rate", [model], h.error_rate)
        for quantile, ms in (
            ("0.5", h.latency_p50_ms),
            ("0.95", h.latency_p95_ms),
            ("0.99", h.latency_p99_ms),
        ):
            add(
                "shipyard_health_latency_seconds",
                [model, quantile],
                None if ms is None else ms / 1000,
            )


@dataclass
class ExporterServer:
    """A running exporter: ``/metrics`` on :attr:`url`, refreshed every ``interval`` seconds."""

    host: str
    port: int
    _server: Any
    _threads: tuple[threading.Thread, ...]
    _stop: threading.Event

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and refreshing (again: nothing)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join()

    def wait(self) -> None:
        """Block until :meth:`close` (from another thread) or Ctrl-C, then close."""
        try:
            while not self._stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.close()


def _refresh(update: Callable[[], object], what: str) -> None:
    try:
        update()
    except Exception:  # a failed refresh keeps serving the last good values
        log.exception("refreshing the monitoring metrics failed (%s)", what)


def serve_exporter(
    host: str,
    port: int,
    update: Callable[[], object],
    metrics: MonitoringMetrics,
    *,
    interval: float = 60.0,
) -> ExporterServer:
    """Serve ``metrics`` at ``http://host:port/metrics`` in background threads.

    ``update`` (which should call :meth:`MonitoringMetrics.observe` and
    :meth:`~MonitoringMetrics.set_alerts`) runs once before this returns, then every
    ``interval`` seconds, never during a scrape, so a slow drift computation does not time
    out Prometheus. An ``update`` that raises is logged; the last values stay served.

    Args:
        host: address to listen on (``127.0.0.1``, ``0.0.0.0``).
        port: TCP port; 0 picks a free one (see :attr:`ExporterServer.port`).
        update: refreshes ``metrics``.
        metrics: what to serve.
        interval: seconds between refreshes.
    """
    if interval <= 0:
        raise InvalidArgumentError(f"interval must be > 0 seconds, not {interval:g}")
    _refresh(update, "first refresh")
    server, serving = _prometheus().start_wsgi_server(port, addr=host, registry=metrics.registry)
    stop = threading.Event()

    def refresh_forever() -> None:
        while not stop.wait(interval):
            _refresh(update, "periodic refresh")

    refresher = threading.Thread(target=refresh_forever, name="shipyard-exporter", daemon=True)
    refresher.start()
    return ExporterServer(host, int(server.server_port), server, (serving, refresher), stop)
