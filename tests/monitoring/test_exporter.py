"""The Prometheus exporter, scraped over a real socket, and the Grafana dashboard on it."""

from __future__ import annotations

import json
import logging
import re
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from shipyard.entities import (
    AlertRule,
    ColumnDrift,
    DriftReport,
    Finding,
    ServiceHealth,
    Severity,
    WindowResult,
)
from shipyard.monitoring.exporter import METRICS, MonitoringMetrics, serve_exporter
from shipyard.store.backend import AlertProgress
from tests._cli import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "shipyard-monitoring.json"
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _column(name: str, distance: float | None, drifted: bool) -> ColumnDrift:
    return ColumnDrift(
        name, "numeric", "ks", 0.2, 0.01, 0.02, "wasserstein", distance, 0.1, drifted, "", 50, 50
    )


def full_window(*, columns: tuple[ColumnDrift, ...] | None = None) -> WindowResult:
    if columns is None:
        columns = (_column("age", 0.42, True), _column("income", 0.03, False))
    drift = DriftReport(
        reference="churn-train@3",
        current="window",
        columns=columns,
        drifted=True,
        share_drifted=0.5,
        share_threshold=0.5,
        correction="benjamini-hochberg",
        alpha=0.05,
        reference_rows=100,
        current_rows=50,
        prediction=_column("prediction", 0.07, False),
    )
    return WindowResult(
        start=T0 - timedelta(hours=1),
        end=T0,
        rows=50,
        drift=drift,
        quality=(Finding("null_share", Severity.WARNING, "age nulls grew", "age"),),
        performance={"accuracy": 0.91, "f1": None},
        labelled_rows=40,
        estimated_performance={"accuracy": 0.88},
        health=ServiceHealth(
            requests=60,
            errors=3,
            request_rate=60 / 3600,
            latency_p50_ms=12.0,
            latency_p95_ms=40.0,
            latency_p99_ms=None,
        ),
    )


RULES = [
    AlertRule("drift-share", "drift.share", 0.3, severity=Severity.ERROR, model="churn"),
    AlertRule("p99", "health.latency_p99_ms", 500, model="churn"),
    AlertRule("everywhere", "rows", 0, model=None),
]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - 127.0.0.1
        assert response.status == 200
        return str(response.read().decode())


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def metrics() -> MonitoringMetrics:
    return MonitoringMetrics()


def test_gauges_from_the_latest_window(metrics: MonitoringMetrics) -> None:
    from prometheus_client import generate_latest

    metrics.observe("churn", full_window(), at=1_700_000_000.0)
    metrics.set_alerts(RULES, [AlertProgress("churn", "drift-share", 2, firing=True)])
    samples = _samples(generate_latest(metrics.registry).decode())

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("shipyard_drift_share", model="churn") == 0.5
    assert value("shipyard_dataset_drift_detected", model="churn") == 1
    assert value("shipyard_drift_distance", model="churn", column="age") == 0.42
    assert value("shipyard_drift_distance", model="churn", column="income") == 0.03
    assert value("shipyard_drift_detected", model="churn", column="age") == 1
    assert value("shipyard_drift_detected", model="churn", column="income") == 0
    assert value("shipyard_prediction_drift_distance", model="churn") == 0.07
    assert value("shipyard_quality_findings", model="churn", severity="warning") == 1
    assert value("shipyard_quality_findings", model="churn", severity="error") == 0
    assert value("shipyard_model_performance", model="churn", metric="accuracy") == 0.91
    assert value("shipyard_model_estimated_performance", model="churn", metric="accuracy") == 0.88
    assert value("shipyard_labelled_rows", model="churn") == 40
    assert value("shipyard_window_rows", model="churn") == 50
    assert value("shipyard_health_requests", model="churn") == 60
    assert value("shipyard_health_error_rate", model="churn") == 0.05
    assert value("shipyard_health_latency_seconds", model="churn", quantile="0.95") == 0.04
    assert value("shipyard_alerts_firing", model="churn", rule="drift-share", severity="error") == 1
    assert value("shipyard_alerts_firing", model="churn", rule="p99", severity="warning") == 0
    assert value("shipyard_monitor_window_end_timestamp_seconds", model="churn") == T0.timestamp()
    assert value("shipyard_monitor_last_evaluation_timestamp_seconds", model="churn") == 1.7e9
    # what could not be computed is absent, not NaN
    assert ("shipyard_model_performance", (("metric", "f1"), ("model", "churn"))) not in samples
    assert not any(
        k[0] == "shipyard_health_latency_seconds" and ("quantile", "0.99") in k[1] for k in samples
    )
    # rules without a model are not exported
    assert not any(("rule", "everywhere") in labels for _, labels in samples)


def test_a_newer_window_replaces_every_series_of_its_model(metrics: MonitoringMetrics) -> None:
    from prometheus_client import generate_latest

    metrics.observe("churn", full_window())
    metrics.observe("fraud", full_window())
    metrics.observe("churn", full_window(columns=(_column("tenure", 0.2, True),)))
    samples = _samples(generate_latest(metrics.registry).decode())
    churn_columns = {
        dict(labels)["column"]
        for name, labels in samples
        if name == "shipyard_drift_distance" and ("model", "churn") in labels
    }
    assert churn_columns == {"tenure"}
    metrics.forget("fraud")
    samples = _samples(generate_latest(metrics.registry).decode())
    assert not any(("model", "fraud") in labels for _, labels in samples)


def test_the_gauges_stay_off_the_global_registry(metrics: MonitoringMetrics) -> None:
    metrics.observe("churn", full_window())
    assert REGISTRY.get_sample_value("shipyard_drift_share", {"model": "churn"}) is None
    assert metrics.registry.get_sample_value("shipyard_drift_share", {"model": "churn"}) == 0.5
    # two exporters in one process do not clash
    other = MonitoringMetrics()
    assert other.registry.get_sample_value("shipyard_drift_share", {"model": "churn"}) is None


@pytest.fixture
def served(metrics: MonitoringMetrics, no_proxy: None) -> Iterator[tuple[Any, list[int]]]:
    calls: list[int] = []

    def update() -> None:
        calls.append(1)
        metrics.observe("churn", full_window())
        metrics.set_alerts(RULES, [AlertProgress("churn", "p99", 1, firing=True)])

    server = serve_exporter("127.0.0.1", 0, update, metrics, interval=3600)
    try:
        yield server, calls
    finally:
        server.close()


@pytest.mark.integration
def test_metrics_are_served_over_http(served: tuple[Any, list[int]]) -> None:
    server, calls = served
    assert calls == [1]  # refreshed before serving
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}/metrics"
    families = {f.name: f for f in text_string_to_metric_families(_scrape(server.url))}
    assert set(families) == set(METRICS)
    assert all(f.type == "gauge" for f in families.values())
    samples = _samples(_scrape(server.url))
    key = ("shipyard_alerts_firing", (("model", "churn"), ("rule", "p99"), ("severity", "warning")))
    assert samples[key] == 1
    assert samples[("shipyard_drift_share", (("model", "churn"),))] == 0.5
    server.close()
    server.close()  # twice is harmless


@pytest.mark.integration
def test_a_failing_update_is_logged_and_serving_goes_on(
    metrics: MonitoringMetrics, no_proxy: None, caplog: pytest.LogCaptureFixture
) -> None:
    def update() -> None:
        raise RuntimeError("the prediction log is unreadable")

    with caplog.at_level(logging.ERROR, logger="shipyard.monitoring.exporter"):
        server = serve_exporter("127.0.0.1", 0, update, metrics, interval=3600)
    try:
        assert "refreshing the monitoring metrics failed" in caplog.text
        families = {f.name for f in text_string_to_metric_families(_scrape(server.url))}
        assert families == set(METRICS)
    finally:
        server.close()


def test_a_non_positive_interval_is_refused(metrics: MonitoringMetrics) -> None:
    from shipyard.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="interval"):
        serve_exporter("127.0.0.1", 0, lambda: None, metrics, interval=0)


# the Grafana dashboard -------------------------------------------------------------------------


def _exported_names() -> set[str]:
    metrics = MonitoringMetrics()
    metrics.observe("churn", full_window())
    metrics.set_alerts(RULES, [])
    return {family.name for family in metrics.registry.collect()}


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def test_the_dashboard_is_a_grafana_dashboard_with_a_model_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] == "shipyard-monitoring"
    [source] = dashboard["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_PROMETHEUS",
        "datasource",
        "prometheus",
    )
    [variable] = dashboard["templating"]["list"]
    assert variable["name"] == "model"
    assert variable["query"]["query"] == "label_values(shipyard_drift_share, model)"
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"].lower() for p in _panels(dashboard))
    for topic in (
        "drifted features",
        "drift distance",
        "estimated",
        "error rate",
        "latency",
        "alerts",
    ):
        assert topic in titles


def test_every_dashboard_query_uses_only_metrics_the_exporter_exports() -> None:
    exported = _exported_names()
    assert exported == set(METRICS)
    dashboard = json.loads(DASHBOARD.read_text())
    used: set[str] = set()
    queries = 0
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            queries += 1
            names = set(re.findall(r"\bshipyard_[a-z0-9_]+", expr))
            assert names, f"{panel['title']}: {expr}"
            assert names <= exported, f"{panel['title']}: {names - exported} not exported"
            assert '{model=~"$model"}' in expr, f"{panel['title']} ignores the model variable"
            used |= names
    assert queries >= 10
    for needed in (
        "shipyard_drift_share",
        "shipyard_drift_distance",
        "shipyard_model_performance",
        "shipyard_model_estimated_performance",
        "shipyard_health_error_rate",
        "shipyard_health_latency_seconds",
        "shipyard_alerts_firing",
    ):
        assert needed in used
    variable = dashboard["templating"]["list"][0]["query"]["query"]
    assert set(re.findall(r"\bshipyard_[a-z0-9_]+", variable)) <= exported
