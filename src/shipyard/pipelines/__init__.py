"""Pipelines: plain Python steps, cached by content, run here, in processes or on Ray.

Example:
    >>> import shipyard
    >>> @shipyard.step
    ... def load(n: int) -> list[int]:
    ...     return list(range(n))
    >>> @shipyard.pipeline
    ... def numbers(n: int = 3):
    ...     return load(n)
    >>> result = numbers.run(n=5)  # doctest: +SKIP
    >>> result.output("load")  # doctest: +SKIP
    [0, 1, 2, 3, 4]

Decorating costs nothing: the runner, executors and materializers load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard._lazy import lazy_names
from shipyard.pipelines.dsl import Dag, Node, Output, Pipeline, Step, StepOptions, pipeline, step

if TYPE_CHECKING:
    from shipyard.pipelines.executors import (
        Executor,
        InProcessExecutor,
        ProcessExecutor,
        RayExecutor,
        get_executor,
    )
    from shipyard.pipelines.explain import StepExplanation, explain, to_dot, to_mermaid
    from shipyard.pipelines.loading import load_pipeline
    from shipyard.pipelines.materializers import Materializer
    from shipyard.pipelines.runner import (
        PipelineCancelledError,
        PipelineFailedError,
        PipelineResult,
        load_output,
        run_pipeline,
        step_logs,
    )

__all__ = [
    "Dag",
    "Executor",
    "InProcessExecutor",
    "Materializer",
    "Node",
    "Output",
    "Pipeline",
    "PipelineCancelledError",
    "PipelineFailedError",
    "PipelineResult",
    "ProcessExecutor",
    "RayExecutor",
    "Step",
    "StepExplanation",
    "StepOptions",
    "explain",
    "get_executor",
    "load_output",
    "load_pipeline",
    "pipeline",
    "run_pipeline",
    "step",
    "step_logs",
    "to_dot",
    "to_mermaid",
]

_LAZY = {
    "Executor": "executors",
    "InProcessExecutor": "executors",
    "ProcessExecutor": "executors",
    "RayExecutor": "executors",
    "get_executor": "executors",
    "StepExplanation": "explain",
    "explain": "explain",
    "to_dot": "explain",
    "to_mermaid": "explain",
    "load_pipeline": "loading",
    "Materializer": "materializers",
    "PipelineCancelledError": "runner",
    "PipelineFailedError": "runner",
    "PipelineResult": "runner",
    "load_output": "runner",
    "run_pipeline": "runner",
    "step_logs": "runner",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
