"""``shipyard experiments``: list, rename, delete and restore experiments."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from shipyard.cli._base import console, format_time, print_json, workspace_from
from shipyard.cli._output import print_empty

app = typer.Typer(help="List, rename, delete and restore experiments.", no_args_is_help=True)


@app.command("ls")
def list_experiments(
    ctx: typer.Context,
    deleted: Annotated[bool, typer.Option("--deleted", help="Include deleted ones.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List experiments in the workspace (deleted ones with --deleted)."""
    experiments = [
        e for e in workspace_from(ctx).backend.list_experiments() if deleted or e.deleted_at is None
    ]
    if not experiments:
        print_empty(
            "experiments in this workspace",
            as_json=as_json,
            hint="start one with shipyard.start_run(experiment=...)",
        )
        return
    if as_json:
        print_json([dataclasses.asdict(e) for e in experiments])
        return
    table = Table(box=None, header_style="bold")
    for column in ("ID", "Name", "Created (UTC)", "Description"):
        table.add_column(column)
    for exp in experiments:
        table.add_row(
            str(exp.experiment_id),
            Text(exp.name),
            format_time(exp.created_at),
            Text(exp.description),
        )
    console.print(table)


def _experiment_id(ctx: typer.Context, name: str) -> int:
    from shipyard.errors import NotFoundError

    found = workspace_from(ctx).backend.get_experiment_by_name(name)
    if found is None:
        raise NotFoundError(f"no experiment named {name!r}: see `shipyard experiments ls`")
    return found.experiment_id


@app.command("rename")
def rename(ctx: typer.Context, name: str, new_name: str) -> None:
    """Rename an experiment (its runs follow)."""
    from shipyard.tracking.validation import validate_name

    backend = workspace_from(ctx).backend
    backend.rename_experiment(_experiment_id(ctx, name), validate_name("experiment", new_name))
    console.print(Text(f"Renamed {name} to {new_name}."))


@app.command("delete")
def delete(ctx: typer.Context, name: str) -> None:
    """Delete an experiment and its runs: hidden, kept, restorable."""
    workspace_from(ctx).backend.set_experiment_deleted(_experiment_id(ctx, name), True)
    console.print(Text(f"Deleted {name} and its runs (`shipyard experiments restore {name}`)."))


@app.command("restore")
def restore(ctx: typer.Context, name: str) -> None:
    """Restore a deleted experiment and its runs."""
    workspace_from(ctx).backend.set_experiment_deleted(_experiment_id(ctx, name), False)
    console.print(Text(f"Restored {name} and its runs."))
