"""Experiment tracking: runs with params, metrics, tags, artifacts and the code that ran."""

from shipyard.tracking.fluent import (
    active_run,
    end_run,
    flush,
    get_metric_history,
    get_run,
    list_experiments,
    log_artifact,
    log_artifacts,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_text,
    search_runs,
    set_tag,
    set_tags,
    start_run,
)
from shipyard.tracking.run import ActiveRun
from shipyard.tracking.workspace import Workspace, open_workspace

__all__ = [
    "ActiveRun",
    "Workspace",
    "active_run",
    "end_run",
    "flush",
    "get_metric_history",
    "get_run",
    "list_experiments",
    "log_artifact",
    "log_artifacts",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "open_workspace",
    "search_runs",
    "set_tag",
    "set_tags",
    "start_run",
]
