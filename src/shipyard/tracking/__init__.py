"""Experiment tracking: runs with params, metrics, tags, artifacts and the code that ran.

Names load their module on first use: ``from shipyard.tracking import Workspace`` does not
import the run machinery (or the stores) that ``start_run`` needs.
"""

from typing import TYPE_CHECKING, Any

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
    "ActiveRun": "shipyard.tracking.run",
    "Workspace": "shipyard.tracking.workspace",
    "open_workspace": "shipyard.tracking.workspace",
}
"""Where each name lives; the rest of ``__all__`` comes from ``shipyard.tracking.fluent``."""


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'shipyard.tracking' has no attribute {name!r}")
    import importlib

    found = getattr(importlib.import_module(_HOMES.get(name, "shipyard.tracking.fluent")), name)
    globals()[name] = found
    return found


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
