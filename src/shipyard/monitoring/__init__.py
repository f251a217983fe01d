"""Monitoring: drift, data quality, performance and service health over tables and
prediction logs, with reports, Prometheus gauges and alerts.

Example:
    >>> from shipyard.monitoring import compare
    >>> report = compare("train.parquet", "last_week.parquet")  # doctest: +SKIP
    >>> report.drifted_columns  # doctest: +SKIP

Heavy libraries (numpy, scipy, pyarrow, DuckDB, matplotlib, prometheus-client) load inside the
functions that use them.
"""

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
