"""Shipyard: carry a model through its whole life, from data to monitoring.

Example:
    >>> import shipyard
    >>> with shipyard.start_run(experiment="churn") as run:  # doctest: +SKIP
    ...     run.log_params({"model": "rf"})
    ...     run.log_metric("auc", 0.91)

A bare ``import shipyard`` is fast: every name below loads its module on first use, so that
``shipyard --version`` and ``shipyard data status`` pay only for what they run.
"""

from typing import TYPE_CHECKING, Any

from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    from shipyard.entities import Experiment, Metric, Run, RunStatus
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

_HOMES = {
    **dict.fromkeys(("Experiment", "Metric", "Run", "RunStatus"), "shipyard.entities"),
    **dict.fromkeys(("pipeline", "step"), "shipyard.pipelines"),
    "tune": "shipyard.tuning",
}
"""Where each public name lives; the rest of ``__all__`` comes from ``shipyard.tracking``."""

_SUBPACKAGES = frozenset(
    {"artifacts", "automation", "batch", "config", "data", "deploy", "entities", "errors"}
    | {"export", "models", "monitoring", "pipelines", "registry", "store", "tracking"}
    | {"tuning", "validation"}
)


def __getattr__(name: str) -> Any:
    """Public names and subpackages (``shipyard.data.ref(...)``) load on first use."""
    import importlib

    if name in __all__:
        found = getattr(importlib.import_module(_HOMES.get(name, "shipyard.tracking")), name)
        globals()[name] = found
        return found
    if name in _SUBPACKAGES:
        return importlib.import_module(f"shipyard.{name}")
    raise AttributeError(f"module 'shipyard' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBPACKAGES})
