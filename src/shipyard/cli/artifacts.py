"""``shipyard artifacts``: list and download the artifacts of a run."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from shipyard.artifacts import resolve_inside, safe_relative_path
from shipyard.cli._base import console, print_json, workspace_from
from shipyard.cli._output import print_empty
from shipyard.errors import NotFoundError

app = typer.Typer(help="List and download run artifacts.", no_args_is_help=True)


@app.command("ls")
def list_artifacts(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id or its first 4+ characters.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List the artifacts of a run."""
    backend = workspace_from(ctx).backend
    full_id = backend.resolve_run_id(run_id)
    records = backend.list_artifacts(full_id)
    if not records:
        print_empty(f"artifacts in run {full_id[:8]}", as_json=as_json)
        return
    if as_json:
        print_json([dataclasses.asdict(r) for r in records])
        return
    table = Table(box=None, header_style="bold")
    for column in ("Path", "Size", "Files", "Digest"):
        table.add_column(column)
    for r in records:
        table.add_row(
            Text(r.path + ("/" if r.is_dir else "")), f"{r.size:,}", str(r.file_count), r.digest
        )
    console.print(table)


@app.command("get")
def get_artifacts(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id or its first 4+ characters.")],
    path: Annotated[
        str | None, typer.Argument(help="Artifact path in the run (default: all of them).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into.")] = Path("."),
) -> None:
    """Download artifacts of a run into a folder, verifying every byte against its digest."""
    workspace = workspace_from(ctx)
    backend = workspace.backend
    full_id = backend.resolve_run_id(run_id)
    records = backend.list_artifacts(full_id)
    if not records:
        print_empty(f"artifacts in run {full_id[:8]}", as_json=False)
        return
    if path is not None:
        wanted = safe_relative_path(path)
        records = [
            r for r in records if r.path == wanted or r.path.startswith(wanted.rstrip("/") + "/")
        ]
        if not records:
            raise NotFoundError(f"run {run_id} has no artifact {path!r}")
    out.mkdir(parents=True, exist_ok=True)
    for record in records:
        dest = resolve_inside(out, record.path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if record.is_dir:
            workspace.artifacts.get_dir(record.digest, dest)
        else:
            workspace.artifacts.get_file(record.digest, dest)
        console.print(Text(f"{record.path} -> {dest}"))
