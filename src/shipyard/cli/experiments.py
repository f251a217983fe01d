"""``shipyard experiments``: list experiments."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from shipyard.cli._base import console, format_time, print_json, workspace_from

app = typer.Typer(help="List experiments.", no_args_is_help=True)


@app.command("ls")
def list_experiments(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List experiments in the workspace."""
    experiments = workspace_from(ctx).backend.list_experiments()
    if as_json:
        print_json([dataclasses.asdict(e) for e in experiments])
        return
    if not experiments:
        console.print("No experiments yet: start one with shipyard.start_run(experiment=...).")
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
