"""Pages for pipelines and tuning: pipeline runs, a run's graph of steps (its DAG) with each
step's status, cache hit and error, a step's logs; tuning studies, a study's optimisation
history, parameter importances and trials.

A run's graph is drawn from what each step recorded: ``StepRun.upstream`` (the steps whose
outputs it took) and ``key_parts["sources"]`` (which output went into which argument). A
study is read as ``shipyard tune show`` reads it (:func:`~shipyard.tuning.results.read_study`,
:meth:`~shipyard.tuning.Study.param_importances` and :meth:`~shipyard.tuning.Study.history`).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from shipyard.entities import PipelineRun, StepRun, StepStatus
from shipyard.errors import NotFoundError
from shipyard.server.auth import Identity
from shipyard.server.ui import charts
from shipyard.server.ui.pages import page_identity, render

if TYPE_CHECKING:
    from shipyard.tracking import Workspace
    from shipyard.tuning import Study

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_Caller = Annotated[Identity, Depends(page_identity)]

PER_PAGE = 50
TRIALS_PER_PAGE = 50
LOG_BYTES = 64 * 1024
MAX_PARAM_COLUMNS = 8
MAX_REPORTED_LINES = 12
_RUN_ID = re.compile(r"^[0-9a-f]{1,32}$")

_NODE_STATUS = {
    StepStatus.FINISHED: "succeeded",
    StepStatus.CACHED: "cached",
    StepStatus.FAILED: "failed",
    StepStatus.SKIPPED: "skipped",
    StepStatus.RUNNING: "running",
    StepStatus.PENDING: "pending",
    StepStatus.CANCELLED: "cancelled",
}
"""A step's status as the class of its node in the graph (``app.css`` styles them)."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# pipeline runs ------------------------------------------------------------------------------


def _pipeline_run(backend: Any, run_id: str) -> PipelineRun:
    """A pipeline run by id or unique prefix; anything else is a page that does not exist."""
    if not _RUN_ID.match(run_id):
        raise NotFoundError(f"no pipeline run {run_id!r}")
    run: PipelineRun = backend.get_pipeline_run(run_id)
    return run


def _counts(steps: list[StepRun]) -> dict[str, int]:
    return {
        "total": len(steps),
        "done": sum(s.status is StepStatus.FINISHED for s in steps),
        "cached": sum(s.status is StepStatus.CACHED for s in steps),
        "failed": sum(s.status is StepStatus.FAILED for s in steps),
    }


def _duration(run: PipelineRun) -> int | None:
    if run.end_time is None:
        return None
    return run.end_time - run.start_time


@router.get("/pipelines", response_class=HTMLResponse)
def pipeline_runs(
    request: Request,
    caller: _Caller,
    pipeline: Annotated[str, Query(max_length=200)] = "",
    before: Annotated[int | None, Query(ge=0, lt=2**63)] = None,
) -> HTMLResponse:
    from shipyard.pipelines.runner import shown_status

    backend = request.app.state.workspace.backend
    found = backend.list_pipeline_runs(pipeline or None, limit=PER_PAGE + 1, before=before)
    more = len(found) > PER_PAGE
    found = found[:PER_PAGE]
    rows = [
        {
            "run": run,
            "status": shown_status(run),
            "duration": _duration(run),
            "steps": _counts(backend.list_step_runs(run.run_id)),
        }
        for run in found
    ]
    return render(
        request,
        "pipelines.html",
        title="Pipeline runs",
        rows=rows,
        pipeline=pipeline,
        before=before,
        next_before=found[-1].start_time if more and found else None,
    )


def _dag(run: PipelineRun, steps: list[StepRun]) -> Any:
    """The run's steps as a graph: an edge from each step to every step that took one of its
    outputs, labelled with the output and the argument it went into."""
    nodes = []
    for step in steps:
        detail = step.status.value.lower()
        if step.duration_ms is not None and step.status is not StepStatus.CACHED:
            detail += f" \u00b7 {step.duration_ms / 1000:.1f} s"
        # no link in a node: the chart is one image to assistive technology (its links
        # would be nested in it); the steps table below links each step
        nodes.append(charts.Node(step.name, step.name, "step", detail=detail))
    names = {s.name for s in steps}
    edges = []
    for step in steps:
        sources: dict[str, str] = step.key_parts.get("sources", {}) or {}
        labelled: dict[str, list[str]] = {}
        for arg, source in sources.items():
            upstream, _, output = str(source).partition(".")
            labelled.setdefault(upstream, []).append(f"{output} \u2192 {arg}")
        for upstream in step.upstream:
            if upstream in names:
                label = ", ".join(labelled.get(upstream, []))
                edges.append(charts.Edge(upstream, step.name, label))
    return charts.graph(
        nodes,
        edges,
        title=f"Steps of {run.pipeline} (left to right: data flows along the arrows)",
        status={s.name: _NODE_STATUS.get(s.status, "") for s in steps},
    )


def _lineage_href(kind: str, ref: str) -> str | None:
    if kind == "run":
        return f"/runs/{ref}"
    name, _, version = ref.rpartition("@")
    if not name or not version.isdigit():
        return None
    if kind == "dataset_version":
        return f"/datasets/{name}/{version}"
    if kind == "model_version":
        return f"/models/{name}/{version}"
    return None


@router.get("/pipelines/{run_id}", response_class=HTMLResponse)
def pipeline_run(request: Request, caller: _Caller, run_id: str) -> HTMLResponse:
    from shipyard.pipelines.explain import explain
    from shipyard.pipelines.runner import shown_status

    backend = request.app.state.workspace.backend
    run = _pipeline_run(backend, run_id)
    steps = backend.list_step_runs(run.run_id)
    why = {e.step: e.reasons for e in explain(backend, run.run_id)}
    by_id = {s.step_run_id: s.name for s in steps}
    lineage = [
        {
            "step": by_id.get(edge.step_run_id, edge.step_run_id[:8]),
            "direction": edge.direction,
            "kind": edge.kind.replace("_", " "),
            "ref": edge.ref,
            "href": _lineage_href(edge.kind, edge.ref),
        }
        for edge in backend.pipeline_lineage(run_id=run.run_id)
    ]
    return render(
        request,
        "pipeline.html",
        title=f"Pipeline run {run.pipeline}",
        run=run,
        shown=shown_status(run),
        duration=_duration(run),
        steps=steps,
        counts=_counts(steps),
        dag=_dag(run, steps) if steps else None,
        why=why,
        lineage=lineage,
    )


@router.get("/pipelines/{run_id}/steps/{name}", response_class=HTMLResponse)
def step_page(request: Request, caller: _Caller, run_id: str, name: str) -> HTMLResponse:
    """A step of a run: its record, its outputs and what it printed (the first 64 KiB)."""
    workspace = request.app.state.workspace
    run = _pipeline_run(workspace.backend, run_id)
    found = [s for s in workspace.backend.list_step_runs(run.run_id) if s.name == name]
    if not found:
        raise NotFoundError(f"pipeline run {run.run_id[:8]} has no step {name!r}")
    step = found[0]
    logs, cut = _logs(workspace, step)
    return render(
        request,
        "pipeline_step.html",
        title=f"Step {step.name}",
        run=run,
        step=step,
        logs=logs,
        cut=cut,
    )


def _logs(workspace: Workspace, step: StepRun) -> tuple[str, bool]:
    """The start of what a step printed, and whether there is more."""
    if step.logs_digest is None:
        return "", False
    objects = workspace.artifacts
    local = objects.local_path(step.logs_digest)
    if local is not None:
        with open(local, "rb") as handle:
            data = handle.read(LOG_BYTES + 1)
    else:
        data = objects.read_bytes(step.logs_digest)[: LOG_BYTES + 1]
    return data[:LOG_BYTES].decode("utf-8", "replace"), len(data) > LOG_BYTES


# tuning studies -----------------------------------------------------------------------------


def _storage(workspace: Workspace) -> Any:
    from shipyard.errors import InvalidArgumentError
    from shipyard.tuning.study import OPTUNA_HINT

    try:
        from shipyard.tuning.journal import open_storage
    except ImportError:  # a page that says how to install it, not a traceback
        raise InvalidArgumentError(OPTUNA_HINT) from None

    return open_storage(workspace.backend)


@router.get("/studies", response_class=HTMLResponse)
def studies(
    request: Request,
    caller: _Caller,
    page: Annotated[int, Query(ge=1, le=10**7)] = 1,
) -> HTMLResponse:
    from shipyard.tuning.results import summarize

    found = summarize(_storage(request.app.state.workspace))
    start = (page - 1) * PER_PAGE
    return render(
        request,
        "studies.html",
        title="Tuning studies",
        studies=found[start : start + PER_PAGE],
        page=page,
        more=len(found) > start + PER_PAGE,
    )


def _study(workspace: Workspace, name: str) -> Study:
    from shipyard.errors import InvalidArgumentError
    from shipyard.tracking.validation import validate_name
    from shipyard.tuning.results import read_study

    try:
        validate_name("study", name)
    except InvalidArgumentError:
        raise NotFoundError(f"no study named {name!r}") from None
    return read_study(workspace, _storage(workspace), name)


def _history_chart(study: Study, rows: list[dict[str, Any]]) -> Any:
    trials = [float(r["trial"]) for r in rows]
    return charts.line_chart(
        [
            charts.Series("trial value", trials, [r["value"] for r in rows]),
            charts.Series("best so far", trials, [r["best"] for r in rows]),
        ],
        title=f"Optimisation history ({study.direction} {study.metric})",
        x_label="trial number",
        y_label=study.metric,
        markers=True,
    )


def _importance_chart(importances: dict[str, float]) -> Any:
    return charts.bar_chart(
        list(importances),
        {"importance": list(importances.values())},
        title="Parameter importances",
        x_label="parameter",
        y_label="importance (share; they sum to 1)",
    )


def _reported_chart(study: Study) -> Any:
    reported = [t for t in study.trials if t.intermediate][-MAX_REPORTED_LINES:]
    if not reported:
        return None
    series = []
    for trial in reported:
        steps = sorted(trial.intermediate)
        series.append(
            charts.Series(
                f"trial {trial.number} ({trial.state.lower()})",
                [float(s) for s in steps],
                [trial.intermediate[s] for s in steps],
            )
        )
    return charts.line_chart(
        series,
        title=f"Values reported while training (the last {len(series)} trials that reported)",
        x_label="step",
        y_label=study.metric,
    )


@router.get("/studies/{name}", response_class=HTMLResponse)
def study_page(
    request: Request,
    caller: _Caller,
    name: str,
    page: Annotated[int, Query(ge=1, le=10**7)] = 1,
) -> HTMLResponse:

    study = _study(request.app.state.workspace, name)
    rows = study.history()
    best_so_far = {r["trial"]: r["best"] for r in rows}
    importances = study.param_importances()
    trials = sorted(study.trials, key=lambda t: t.number)
    start = (page - 1) * TRIALS_PER_PAGE
    shown = trials[start : start + TRIALS_PER_PAGE]
    if page > 1 and not shown:
        raise NotFoundError(f"study {name!r} has {len(trials)} trials: no page {page}")
    names = list(dict.fromkeys(k for t in trials for k in t.params))
    return render(
        request,
        "study.html",
        title=f"Study {study.name}",
        study=study,
        counts=study.counts(),
        best=study.best_trial,
        history=_history_chart(study, rows) if rows else None,
        importances=importances,
        importance_chart=_importance_chart(importances) if importances else None,
        reported=_reported_chart(study),
        trials=shown,
        total=len(trials),
        best_so_far=best_so_far,
        params=names[:MAX_PARAM_COLUMNS],
        hidden_params=len(names) - min(len(names), MAX_PARAM_COLUMNS),
        page=page,
        per=TRIALS_PER_PAGE,
        more=len(trials) > start + TRIALS_PER_PAGE,
    )
