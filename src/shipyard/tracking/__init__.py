"""Experiment tracking: runs with params, metrics, tags, artifacts and the code that ran.

Names load their module on first use: ``from shipyard.tracking import Workspace`` does not
import the run machinery (or the stores) that ``start_run`` needs.
"""

from typing import TYPE_CHECKING

from shipyard._lazy import lazy_names

if TYPE_CHECKING:
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

_HOMES = {
    **dict.fromkeys((n for n in __all__ if n not in ("ActiveRun", "Workspace")), "fluent"),
    "ActiveRun": "run",
    "Workspace": "workspace",
    "open_workspace": "workspace",
}
"""Where each name lives (a module of this package)."""

__getattr__, __dir__ = lazy_names(__name__, _HOMES, __all__)
