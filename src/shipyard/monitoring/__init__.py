"""Monitoring: drift, data quality, performance and service health over tables and
prediction logs, with reports, Prometheus gauges and alerts.

Example:
    >>> from shipyard.monitoring import compare
    >>> report = compare("train.parquet", "last_week.parquet")  # doctest: +SKIP
    >>> report.drifted_columns  # doctest: +SKIP

Each name loads its module on first use, so ``compare`` does not import the alerts, their
webhooks (``http.client``, ``ssl``) or the report. Heavy libraries (numpy, scipy, pyarrow,
DuckDB, matplotlib, prometheus-client) load inside the functions that use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard._lazy import lazy_names

if TYPE_CHECKING:
    from shipyard.monitoring.alerts import (
        Monitor,
        MonitorConfig,
        evaluate,
        list_events,
        load_monitors,
        run_monitor,
    )
    from shipyard.monitoring.drift import compare
    from shipyard.monitoring.performance import estimate_performance
    from shipyard.monitoring.report import render_json, render_report
    from shipyard.monitoring.windows import (
        DeploymentMonitoring,
        monitor_deployment,
        parse_window,
        resolve_reference,
    )

__all__ = [
    "DeploymentMonitoring",
    "Monitor",
    "MonitorConfig",
    "compare",
    "estimate_performance",
    "evaluate",
    "list_events",
    "load_monitors",
    "monitor_deployment",
    "parse_window",
    "render_json",
    "render_report",
    "resolve_reference",
    "run_monitor",
]

_HOMES = {
    **dict.fromkeys(
        ("Monitor", "MonitorConfig", "evaluate", "list_events", "load_monitors", "run_monitor"),
        "alerts",
    ),
    "compare": "drift",
    "estimate_performance": "performance",
    **dict.fromkeys(("render_json", "render_report"), "report"),
    **dict.fromkeys(
        ("DeploymentMonitoring", "monitor_deployment", "parse_window", "resolve_reference"),
        "windows",
    ),
}
"""The module of ``shipyard.monitoring`` each name is defined in."""


__getattr__, __dir__ = lazy_names(__name__, _HOMES, __all__)
