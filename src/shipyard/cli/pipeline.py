"""``shipyard pipeline``: run a pipeline, list its runs, show a run's graph, explain the cache."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli._base import (
    console,
    err_console,
    format_duration,
    format_time,
    home_from,
    print_json,
    workspace_from,
)
from shipyard.entities import PipelineRun, StepRun, StepStatus
from shipyard.errors import InvalidArgumentError

__all__ = ["app"]

app = typer.Typer(
    help="Pipelines: run them (cached by content), list runs, show a run's graph, explain it.",
    no_args_is_help=True,
)

_JSON = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
_RUN = Annotated[str, typer.Argument(help="A pipeline run id (or a unique prefix of one).")]

_MARK = {
    StepStatus.CACHED: "[blue]cached[/]",
    StepStatus.FINISHED: "[green]ran[/]",
    StepStatus.FAILED: "[red]failed[/]",
    StepStatus.CANCELLED: "[yellow]cancelled[/]",
    StepStatus.SKIPPED: "[dim]skipped[/]",
    StepStatus.RUNNING: "[cyan]running[/]",
    StepStatus.PENDING: "[dim]pending[/]",
}


def _params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidArgumentError(f"--param takes KEY=VALUE, not {item!r}")
        params[key.strip()] = value
    return params


def _run_dict(run: PipelineRun) -> dict[str, Any]:
    from shipyard.pipelines.runner import shown_status

    return {
        "run_id": run.run_id,
        "pipeline": run.pipeline,
        "source": run.source,
        "params": run.params,
        "status": shown_status(run),
        "executor": run.executor,
        "user": run.user,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "error": run.error,
    }


def _step_dict(step: StepRun) -> dict[str, Any]:
    return {
        "step_run_id": step.step_run_id,
        "name": step.name,
        "function": step.function,
        "status": step.status.value,
        "cache_hit": step.cache_hit,
        "cache_key": step.cache_key,
        "upstream": list(step.upstream),
        "outputs": [o.to_dict() for o in step.outputs],
        "reused_from": step.reused_from,
        "attempts": step.attempts,
        "start_time": step.start_time,
        "end_time": step.end_time,
        "error": step.error,
    }


def _said(step: StepRun) -> None:
    if step.status in (StepStatus.PENDING,):
        return
    if step.status is StepStatus.RUNNING:
        again = f" (attempt {step.attempts})" if step.attempts > 1 else ""
        err_console.print(f"  [cyan]…[/] {escape(step.name)} running{again}")
        return
    took = format_duration(step.duration_ms) if step.duration_ms is not None else ""
    err_console.print(f"  {_MARK[step.status]} {escape(step.name)} {took}")


@app.command("run")
def run(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(help="The pipeline: file.py:name, or package.module:name.")
    ],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A pipeline parameter, KEY=VALUE (repeatable)."),
    ] = None,
    executor: Annotated[
        str,
        typer.Option("--executor", "-e", help="Where steps run: inprocess, processes or ray."),
    ] = "inprocess",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address", help="An existing Ray cluster (host:port) for --executor ray."
        ),
    ] = None,
    max_workers: Annotated[
        int | None,
        typer.Option("--max-workers", help="Steps at once with --executor processes."),
    ] = None,
    as_json: _JSON = False,
) -> None:
    """Run a pipeline: steps whose code, parameters and inputs are unchanged are reused."""
    from shipyard.pipelines import (
        PipelineCancelledError,
        PipelineFailedError,
        load_pipeline,
        run_pipeline,
    )

    params = _params(param or [])
    pipe, source = load_pipeline(target)
    announced = False

    def progress(step: StepRun) -> None:
        # Said once the run is recorded: bad input before that gives its error line alone.
        nonlocal announced
        if not announced:
            announced = True
            err_console.print(f"Running pipeline [bold]{escape(pipe.name)}[/] ({executor})")
        _said(step)

    try:
        result = run_pipeline(
            pipe,
            params,
            executor=executor,
            home=home_from(ctx),
            source=source,
            ray_address=ray_address,
            max_workers=max_workers,
            echo=not as_json,
            progress=None if as_json else progress,
        )
    except (PipelineFailedError, PipelineCancelledError) as exc:
        if as_json:  # scripts get the record of a run that failed too, then the exit code
            backend = workspace_from(ctx).backend
            record = backend.get_pipeline_run(exc.run_id)
            steps = backend.list_step_runs(exc.run_id)
            print_json(_run_dict(record) | {"steps": [_step_dict(s) for s in steps]})
        raise
    if as_json:
        print_json(_run_dict(result.run) | {"steps": [_step_dict(s) for s in result.steps]})
        return
    took = format_duration((result.run.end_time or 0) - result.run.start_time)
    console.print(
        f"Run [bold]{result.run_id[:8]}[/] finished in {took}: "
        f"{len(result.executed)} ran, {len(result.cached)} reused from the cache"
    )


@app.command("runs")
def runs(
    ctx: typer.Context,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Only this pipeline's runs.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Newest runs shown.")] = 20,
    as_json: _JSON = False,
) -> None:
    """Pipeline runs, newest first."""
    from shipyard.pipelines.runner import shown_status

    found = workspace_from(ctx).backend.list_pipeline_runs(pipeline, limit=limit)
    if not found:
        from shipyard.cli._output import print_empty

        where = f"of {pipeline}" if pipeline else "in this workspace"
        hint = "start one with `shipyard pipeline run FILE.py:PIPELINE`"
        print_empty(f"pipeline runs {where}", as_json=as_json, hint=hint)
        return
    if as_json:
        print_json([_run_dict(r) for r in found])
        return
    table = Table("run", "pipeline", "status", "executor", "started", "took", "params")
    for r in found:
        took = format_duration(r.end_time - r.start_time) if r.end_time else "running"
        params = ", ".join(f"{k}={v}" for k, v in r.params.items())
        table.add_row(
            r.run_id[:8], r.pipeline, shown_status(r), r.executor,
            format_time(r.start_time), took, params,
        )  # fmt: skip
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: _RUN,
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", help="table, mermaid (for docs) or dot (Graphviz)."),
    ] = "table",
    logs: Annotated[
        str | None, typer.Option("--logs", help="Print this step's logs and error instead.")
    ] = None,
    as_json: _JSON = False,
) -> None:
    """A run's graph: each step with its status, cache hit, upstream steps and outputs."""
    from shipyard.pipelines import step_logs, to_dot, to_mermaid

    ws = workspace_from(ctx)
    run = ws.backend.get_pipeline_run(run_id)
    steps = ws.backend.list_step_runs(run.run_id)
    if logs is not None:
        chosen = next((s for s in steps if s.name == logs), None)
        if chosen is None:
            names = ", ".join(s.name for s in steps)
            raise InvalidArgumentError(f"run {run.run_id[:8]} has no step {logs!r}; steps: {names}")
        text = step_logs(ws.artifacts, chosen)
        if as_json:
            print_json({"step": chosen.name, "logs": text, "error": chosen.error})
            return
        console.print(text, end="", markup=False, highlight=False)
        if chosen.error:
            err_console.print(chosen.error, markup=False, highlight=False)
        return
    if as_json:
        print_json(_run_dict(run) | {"steps": [_step_dict(s) for s in steps]})
        return
    if fmt == "mermaid":
        console.print(to_mermaid(steps), end="", markup=False, highlight=False)
        return
    if fmt == "dot":
        console.print(to_dot(steps, run.pipeline), end="", markup=False, highlight=False)
        return
    if fmt != "table":
        raise InvalidArgumentError(f"--format is table, mermaid or dot, not {fmt!r}")
    _print_graph(run, steps)


def _print_graph(run: PipelineRun, steps: list[StepRun]) -> None:
    from shipyard.pipelines.runner import shown_status

    params = ", ".join(f"{k}={v}" for k, v in run.params.items()) or "no parameters"
    console.print(
        f"[bold]{escape(run.pipeline)}[/] run {run.run_id[:8]} · {shown_status(run)} · "
        f"{run.executor} · {escape(params)}"
    )
    table = Table("step", "status", "after", "took", "outputs", box=None, pad_edge=False)
    depth: dict[str, int] = {}
    for step in steps:
        depth[step.name] = 1 + max((depth.get(up, 0) for up in step.upstream), default=-1)
        indent = "  " * depth[step.name]
        outputs = ", ".join(
            o.name if o.name != "output" else o.type for o in step.outputs
        )  # one output: its type says more than its name
        table.add_row(
            f"{indent}{'└ ' if step.upstream else ''}{escape(step.name)}",
            _MARK[step.status] + (f" x{step.attempts}" if step.attempts > 1 else ""),
            escape(", ".join(step.upstream)) or "-",
            format_duration(step.duration_ms) if step.duration_ms is not None else "-",
            escape(outputs) or "-",
        )
    console.print(table)
    if run.error:
        console.print(f"[red]{escape(run.error.splitlines()[0])}[/]")


@app.command("explain")
def explain(ctx: typer.Context, run_id: _RUN, as_json: _JSON = False) -> None:
    """Why each step ran or was reused: which part of its cache key changed."""
    from shipyard.pipelines import explain as explain_run

    ws = workspace_from(ctx)
    run = ws.backend.get_pipeline_run(run_id)
    found = explain_run(ws.backend, run.run_id)
    if as_json:
        print_json({"run_id": run.run_id, "steps": [e.to_dict() for e in found]})
        return
    for item in found:
        against = f" (compared with run {item.compared_with[:8]})" if item.compared_with else ""
        console.print(f"{_MARK[item.status]} [bold]{escape(item.step)}[/]{against}")
        for reason in item.reasons:
            console.print(f"    {escape(reason)}")
