"""Shipyard: carry a model through its whole life, from data to monitoring.

Example:
    >>> import shipyard
    >>> with shipyard.start_run(experiment="churn") as run:  # doctest: +SKIP
    ...     run.log_params({"model": "rf"})
    ...     run.log_metric("auc", 0.91)

A bare ``import shipyard`` is fast: the stores, SQLAlchemy and pandas load on first use.
"""

from typing import TYPE_CHECKING, Any

from shipyard.entities import Experiment, Metric, Run, RunStatus
from shipyard.errors import ShipyardError
from shipyard.pipelines import pipeline, step
from shipyard.tracking import (
    ActiveRun,
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
    open_workspace,
    search_runs,
    set_tag,
    set_tags,
    start_run,
)

if TYPE_CHECKING:
    from shipyard.tuning import tune

__version__ = "0.1.0.dev0"

__all__ = [
    "ActiveRun",
    "Experiment",
    "Metric",
    "Run",
    "RunStatus",
    "ShipyardError",
    "__version__",
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
    "pipeline",
    "search_runs",
    "set_tag",
    "set_tags",
    "start_run",
    "step",
    "tune",
]

_SUBPACKAGES = frozenset(
    {
        "automation",
        "batch",
        "data",
        "deploy",
        "export",
        "models",
        "monitoring",
        "pipelines",
        "registry",
    }
    | {"tracking", "tuning", "validation"}
)


def __getattr__(name: str) -> Any:
    """``shipyard.data.ref(...)`` after a bare ``import shipyard``: subpackages load on use
    (and ``shipyard.tune`` with its package)."""
    if name == "tune":
        from shipyard.tuning import tune as found

        globals()["tune"] = found
        return found
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"shipyard.{name}")
    raise AttributeError(f"module 'shipyard' has no attribute {name!r}")
