"""``shipyard runs``: list, show and compare runs."""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
import subprocess
import time
from collections.abc import Iterator, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from shipyard.cli._base import (
    console,
    err_console,
    format_duration,
    format_time,
    print_json,
    workspace_from,
)
from shipyard.cli._output import print_empty, print_warning
from shipyard.entities import Run, RunStatus, format_metric
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.store.filters import (
    And,
    Comparison,
    Expression,
    Field,
    Not,
    Or,
    parse_filter,
    parse_order_by,
)
from shipyard.tracking.fluent import RUN_ID_ENV
from shipyard.tracking.recovery import check_resumable, end_stored_run

if TYPE_CHECKING:
    from shipyard.store import Backend

app = typer.Typer(help="List, inspect, compare, end and resume runs.", no_args_is_help=True)

_STATUS_STYLE = {
    "RUNNING": "cyan",
    "FINISHED": "green",
    "FAILED": "red",
    "KILLED": "yellow",
    "CRASHED": "magenta",
}


class EndStatus(StrEnum):
    killed = "killed"
    failed = "failed"
    finished = "finished"


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 40) -> str:
    """A one-line chart of a metric's history (NaN and infinities left as gaps)."""
    if len(values) < 2:
        return ""
    if len(values) > width:  # keep the shape: take evenly spaced samples, always the last
        values = [values[round(i * (len(values) - 1) / (width - 1))] for i in range(width)]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    return "".join(
        _BARS[round((v - low) / span * (len(_BARS) - 1))] if math.isfinite(v) else " "
        for v in values
    )


def _short(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else format_metric(value)


def run_as_dict(run: Run) -> dict[str, Any]:
    data = dataclasses.asdict(run)
    data["status"] = run.status.value
    data["duration_ms"] = run.duration_ms
    return data


def _status(run: Run) -> str:
    style = _STATUS_STYLE.get(run.status.value, "")
    return f"[{style}]{run.status.value}[/]"


@app.command("ls")
def list_runs(
    ctx: typer.Context,
    experiment: Annotated[
        list[str] | None, typer.Option("--experiment", "-e", help="Experiment name (repeatable).")
    ] = None,
    filter_: Annotated[
        str,
        typer.Option("--filter", "-f", help="e.g. \"metrics.auc > 0.9 and params.model = 'rf'\""),
    ] = "",
    order_by: Annotated[
        list[str] | None, typer.Option("--order-by", "-o", help="e.g. 'metrics.auc DESC'")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List runs, newest first, optionally filtered and ordered.

    A metric, param or tag that --filter or --order-by names and no run has gets a warning.
    """
    backend = workspace_from(ctx).backend
    names = experiment or []
    ids = []
    for name in names:
        found = backend.get_experiment_by_name(name)
        if found is None:
            raise NotFoundError(f"no experiment named {name!r}")
        ids.append(found.experiment_id)
    runs = backend.search_runs(ids, filter_, order_by or [], max_results=limit)
    where = f"in {' or '.join(names)}" if names else "in this workspace"
    warn_about_missing_keys(backend, ids, where, filter_, order_by or [], runs)
    if not runs:
        print_empty(
            f"runs {where}" + (f" match {filter_!r}" if filter_.strip() else ""), as_json=as_json
        )
        return
    if as_json:
        print_json([run_as_dict(r) for r in runs])
        return
    metric_keys = sorted({k for r in runs for k in r.metrics})[:5]
    table = Table(box=None, header_style="bold")
    for column in ("Run ID", "Name", "Status", "Started (UTC)", "Duration"):
        table.add_column(column)
    for key in metric_keys:
        table.add_column(key, justify="right")
    for run in runs:
        table.add_row(
            run.run_id[:8],
            Text(("  " if run.parent_run_id else "") + run.name),
            _status(run),
            format_time(run.start_time),
            format_duration(run.duration_ms),
            *(_short(run.metrics[k]) if k in run.metrics else "-" for k in metric_keys),
        )
    console.print(table)


def _fields(node: Expression | None) -> Iterator[Field]:
    if isinstance(node, Comparison):
        yield node.field
    elif isinstance(node, And | Or):
        yield from _fields(node.left)
        yield from _fields(node.right)
    elif isinstance(node, Not):
        yield from _fields(node.operand)


def _logged(run: Run, field: Field) -> bool:
    if field.entity == "metrics":
        return field.key in run.metrics
    return field.key in (run.params if field.entity == "params" else run.tags)


def _exists_filter(field: Field) -> str:
    """A filter that matches the runs that logged ``field`` (the key quoted whatever it holds)."""
    quoted = f"`{field.key}`" if "`" not in field.key else '"' + field.key.replace('"', '""') + '"'
    return f"{field.entity}.{quoted} IS NOT NULL"


def warn_about_missing_keys(
    backend: Backend,
    experiment_ids: Sequence[int],
    where: str,
    filter_: str,
    order_by: Sequence[str],
    found: Sequence[Run],
) -> None:
    """Warn about each metric, param or tag named in ``filter_`` or ``order_by`` that no run
    ``where`` has logged: a typo there would otherwise sort or filter silently.

    A key some listed run has needs no query; any other costs one indexed EXISTS search
    (a filter ``KEY IS NOT NULL``, one run at most). Nothing is said when there is no run.
    """
    orders = [parse_order_by(clause) for clause in order_by]
    named = [(o.field, "--order-by") for o in orders] + [
        (field, "--filter") for field in _fields(parse_filter(filter_))
    ]
    named = [(f, option) for f, option in named if f.entity != "attributes"]
    if not named or (not found and not backend.search_runs(experiment_ids, "", max_results=1)):
        return
    missing: dict[Field, str] = {}
    for field, option in named:
        if field in missing or any(_logged(run, field) for run in found):
            continue
        if not backend.search_runs(experiment_ids, _exists_filter(field), max_results=1):
            missing[field] = option
    if not missing:
        return
    every_order_missing = all(o.field in missing for o in orders)
    for field, option in missing.items():
        label = f"{field.entity}.{field.key}"
        if option == "--order-by":
            effect = (
                "the order is by start time, newest first"
                if every_order_missing
                else "it does not change the order"
            )
        else:
            effect = "check its spelling"
        print_warning(f"no run {where} has {label} (named in {option}); {effect}")


@app.command("show")
def show_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id or its first 4+ characters.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show one run: attributes, params, metrics, tags and artifacts."""
    backend = workspace_from(ctx).backend
    run = backend.get_run(backend.resolve_run_id(run_id))
    artifacts = backend.list_artifacts(run.run_id)
    if as_json:
        data = run_as_dict(run)
        data["artifacts"] = [dataclasses.asdict(a) for a in artifacts]
        print_json(data)
        return
    experiment = backend.get_experiment(run.experiment_id)
    console.print(f"[bold]{escape(run.name)}[/]  {run.run_id}")
    console.print(
        f"experiment [bold]{escape(experiment.name)}[/] · {_status(run)} · started "
        f"{format_time(run.start_time)} · {format_duration(run.duration_ms)} · "
        f"user {escape(run.user)}"
    )
    if run.parent_run_id:
        console.print(f"parent run {run.parent_run_id}")
    if run.owner is not None and run.status in (RunStatus.RUNNING, RunStatus.CRASHED):
        beat = f" · last heartbeat {format_time(run.heartbeat)}" if run.heartbeat else ""
        console.print(f"owner {escape(str(run.owner))}{beat}")
    if run.status is RunStatus.CRASHED:
        console.print(
            "[magenta]its process died without ending it[/]; the end time is its last sign "
            f"of life. `shipyard runs resume {run.run_id[:8]}` continues it, "
            f"`shipyard runs end {run.run_id[:8]}` closes it."
        )
    for title, values in (("Params", run.params), ("Tags", run.tags)):
        if values:
            table = Table(title=title, title_justify="left", box=None, show_header=False)
            table.add_column(style="bold")
            table.add_column()
            for key, value in values.items():
                table.add_row(Text(key), Text(value))
            console.print(table)
    if run.metrics:
        table = Table(title="Metrics", title_justify="left", box=None, header_style="bold")
        for column in ("Key", "Latest", "Steps", "History"):
            table.add_column(column)
        for key, latest in run.metrics.items():
            history = [m.value for m in backend.get_metric_history(run.run_id, key)]
            table.add_row(Text(key), format_metric(latest), str(len(history)), sparkline(history))
        console.print(table)
    if artifacts:
        table = Table(title="Artifacts", title_justify="left", box=None, header_style="bold")
        for column in ("Path", "Size", "Digest"):
            table.add_column(column)
        for art in artifacts:
            kind = f"{art.file_count} files" if art.is_dir else f"{art.size:,} B"
            table.add_row(Text(art.path + ("/" if art.is_dir else "")), kind, art.digest[:12])
        console.print(table)


@app.command("compare")
def compare_runs(
    ctx: typer.Context,
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids (or prefixes).")],
    only_diff: Annotated[
        bool, typer.Option("--diff", help="Show only params and metrics that differ.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Compare params and metrics of runs side by side; differing rows are highlighted."""
    backend = workspace_from(ctx).backend
    runs = [backend.get_run(backend.resolve_run_id(r)) for r in run_ids]
    if as_json:
        print_json([run_as_dict(r) for r in runs])
        return
    table = Table(box=None, header_style="bold")
    table.add_column("")
    for run in runs:
        table.add_column(Text(f"{run.name}\n{run.run_id[:8]}"), justify="right")
    sections: list[tuple[str, list[dict[str, str]]]] = [
        ("params", [r.params for r in runs]),
        ("metrics", [{k: format_metric(v) for k, v in r.metrics.items()} for r in runs]),
    ]
    for section, per_run in sections:
        keys = sorted({k for values in per_run for k in values})
        for key in keys:
            cells = [values.get(key, "-") for values in per_run]
            differs = len(set(cells)) > 1
            if only_diff and not differs:
                continue
            style = "bold yellow" if differs else ""
            table.add_row(Text(f"{section}.{key}"), *map(Text, cells), style=style)
    console.print(table)


@app.command("end")
def end_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id or its first 4+ characters.")],
    status: Annotated[
        EndStatus, typer.Option("--status", "-s", help="The final status to record.")
    ] = EndStatus.killed,
    force: Annotated[
        bool, typer.Option("--force", help="End it even though its process is still alive.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """End a run whose process is gone (or stuck), by hand.

    Its end time is its last sign of life (last heartbeat or logged metric), not now.
    """
    workspace = workspace_from(ctx)
    backend = workspace.backend
    run = end_stored_run(
        backend,
        backend.resolve_run_id(run_id),
        status.value.upper(),
        heartbeat_timeout=workspace.settings.heartbeat_timeout,
        force=force,
    )
    if as_json:
        print_json(run_as_dict(run))
        return
    console.print(
        f"Ended run [bold]{escape(run.name)}[/] ({run.run_id[:8]}) as {_status(run)}, at "
        f"{format_time(run.end_time)} (after {format_duration(run.duration_ms)})."
    )


@app.command("resume")
def resume_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id or its first 4+ characters.")],
    command: Annotated[
        list[str] | None,
        typer.Argument(help="After `--`: the training command to run, resuming the run."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Continue a crashed (or ended) run.

    With a command (`shipyard runs resume RUN -- python train.py`), run it with
    SHIPYARD_RUN_ID set: its first `shipyard.start_run()` continues the run, and metrics
    logged without a step go on after the last stored step. Without one, print the
    `export SHIPYARD_RUN_ID=...` line for your shell.
    """
    workspace = workspace_from(ctx)
    backend = workspace.backend
    run = check_resumable(
        backend,
        backend.resolve_run_id(run_id),
        heartbeat_timeout=workspace.settings.heartbeat_timeout,
    )
    if as_json and command:
        raise InvalidArgumentError("--json prints the run to resume; it takes no command")
    steps = backend.latest_steps(run.run_id)
    if as_json:
        print_json({"run_id": run.run_id, "status": run.status.value, "latest_steps": steps})
        return
    after = ", ".join(f"{k} after step {v}" for k, v in sorted(steps.items())[:5])
    summary = f"run {run.name} ({run.run_id[:8]}, {run.status.value})" + (
        f": {after}" if after else ""
    )
    if not command:
        typer.echo(f"export {RUN_ID_ENV}={run.run_id}")
        err_console.print(
            f"Resuming {escape(summary)}. Run your training with this variable set (or use "
            f"`shipyard runs resume {run.run_id[:8]} -- COMMAND`)."
        )
        return
    err_console.print(f"Resuming {escape(summary)}: {escape(shlex.join(command))}")
    started = time.monotonic()
    try:
        done = subprocess.run(command, env={**os.environ, RUN_ID_ENV: run.run_id}, check=False)  # noqa: S603 - the user's own command
    except FileNotFoundError as exc:
        raise NotFoundError(f"cannot run {command[0]!r}: no such command") from exc
    err_console.print(
        f"{escape(shlex.join(command))} exited with {done.returncode} after "
        f"{time.monotonic() - started:.1f} s"
    )
    # Killed by a signal: exit as a shell would (128 + signal), not with a wrapped number.
    raise typer.Exit(code=done.returncode if done.returncode >= 0 else 128 - done.returncode)


@app.command("recover")
def recover_runs(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Replay the metric journals of processes that died and mark their runs CRASHED.

    This also happens whenever a command opens the store; run it to see what it did.
    Exit code 1 when a journal could not be replayed (it stays on disk).
    """
    workspace = workspace_from(ctx)
    done = workspace.recover()
    if as_json:
        print_json(
            {
                "journals": done.journals,
                "metrics": done.metrics,
                "crashed": [{"run_id": r, "end_time": e} for r, e in done.crashed],
                "problems": done.problems,
            }
        )
        if done.problems:
            raise typer.Exit(code=1)
        return
    if not (done.journals or done.crashed or done.problems):
        console.print("Nothing to recover: no journal of a dead process, no crashed run.")
        return
    if done.journals:
        console.print(
            f"Replayed {done.metrics:,} metrics from {done.journals} journal(s) of dead processes."
        )
    for run_id, end in done.crashed:
        console.print(f"Run {run_id[:8]} crashed; marked CRASHED, ended {format_time(end)}.")
    for problem in done.problems:
        err_console.print(f"[bold red]error:[/] {escape(problem)}")
    if done.problems:
        raise typer.Exit(code=1)


@app.command("delete")
def delete_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id or its first 4+ characters.")],
) -> None:
    """Delete a run: hidden from listings and searches, kept with everything it logged
    (`shipyard runs restore` brings it back)."""
    backend = workspace_from(ctx).backend
    full = backend.resolve_run_id(run_id)
    backend.set_run_deleted(full, True)
    console.print(f"Deleted run {full[:8]} (restore it with `shipyard runs restore {full[:8]}`).")


@app.command("restore")
def restore_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id or its first 4+ characters.")],
) -> None:
    """Restore a deleted run."""
    backend = workspace_from(ctx).backend
    full = backend.resolve_run_id(run_id)
    backend.set_run_deleted(full, False)
    console.print(f"Restored run {full[:8]}.")
