"""``shipyard gc``: remove stored objects that nothing refers to, and repack the rest."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.text import Text

from shipyard.cli._base import err_console, format_size, home_from, print_json

__all__ = ["gc"]


def gc(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed; remove nothing.")
    ] = False,
    keep_last: Annotated[
        int | None,
        typer.Option(
            "--keep-last",
            metavar="N",
            help="Keep the bytes of only the newest N versions of each dataset (and of any "
            "version newer than --older-than). Older versions stay listed; their bytes go "
            "unless a pointer file, run or model still refers to them.",
        ),
    ] = None,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Grace period, e.g. 12h or 7d: nothing written or reused more recently is "
            "removed, so an add running meanwhile loses nothing.",
        ),
    ] = "1h",
    remote: Annotated[
        str | None,
        typer.Option(
            "--remote",
            "-r",
            metavar="URL",
            help="Collect in this remote (folder or fsspec URL) instead, with this "
            "workspace's references.",
        ),
    ] = None,
    repack: Annotated[
        bool,
        typer.Option(
            "--repack/--no-repack",
            help="Rewrite packs and small loose objects into one pack of what is kept.",
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Remove stored objects that no dataset version, model version, run artifact, pipeline
    cache entry or pointer file refers to, and repack what is kept."""
    from shipyard.data.gc import collect_garbage

    def progress(step: str) -> None:
        if not as_json:
            err_console.print(Text(f"{step}...", style="dim"))

    report = collect_garbage(
        keep_last=keep_last,
        older_than=older_than,
        dry_run=dry_run,
        repack=repack,
        remote=remote,
        home=home_from(ctx),
        progress=progress,
    )
    if as_json:
        print_json(dataclasses.asdict(report))
        return
    verb = "Would remove" if report.dry_run else "Removed"
    freed = format_size(report.freed_bytes)
    lines = [
        f"{verb} {report.removed:,} of {report.objects:,} objects, {freed}.",
        f"packs: {report.packs_before} -> {report.packs_after}"
        + (f", {report.loose_packed:,} loose objects packed" if report.loose_packed else ""),
    ]
    if report.temporaries:
        lines.append(f"{report.temporaries} leftover temporary file(s) of crashed writes")
    for line in lines:
        typer.echo(line)
