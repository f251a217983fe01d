"""``shipyard data``: version, inspect, move and check datasets."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from shipyard.cli._base import (
    console,
    format_size,
    format_time,
    home_from,
    print_json,
    progress_bar,
)

if TYPE_CHECKING:  # `data status` imports neither the entities nor the progress bars
    from shipyard.entities import DatasetVersion, Finding

__all__ = ["app"]

app = typer.Typer(help="Version, inspect, move and check datasets.", no_args_is_help=True)

_JSON = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
_SHOWN_FILES = 20


_size = format_size


def _version_dict(version: DatasetVersion, *, profile: bool = False) -> dict[str, Any]:
    data = dataclasses.asdict(version)
    data["ref"] = version.ref
    if not profile:
        data.pop("profile")
    elif version.profile is not None:
        data["profile"] = version.profile.to_dict()
    return data


@app.command("add")
def add(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="File or folder to snapshot.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Dataset name.")],
    link: Annotated[
        bool,
        typer.Option(
            "--link",
            help="Hard-link files into the store instead of copying them: one hash and no "
            "copy, the faster choice for large files where the filesystem has no reflinks "
            "(ext4). The files become read-only, so that a write cannot change the stored "
            "version.",
        ),
    ] = False,
    no_profile: Annotated[
        bool, typer.Option("--no-profile", help="Skip the table profile.")
    ] = False,
    as_json: _JSON = False,
) -> None:
    """Snapshot a file or folder as a new version of a dataset, and write PATH.ship."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn

    from shipyard.data import add as add_version

    with progress_bar(TextColumn(f"Adding {path}"), BarColumn(), MofNCompleteColumn()) as bar:
        task = bar.add_task("files", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = add_version(
            path, name, link=link, profile=not no_profile, home=home_from(ctx), progress=progress
        )
    version = result.version
    if as_json:
        print_json(
            {
                **_version_dict(version),
                "created": result.created,
                "stored_bytes": result.stored_bytes,
            }
        )
        return
    if not result.created:
        console.print(
            Text(
                f"{version.ref} unchanged: identical content is already version "
                f"{version.version}; no new bytes stored"
            )
        )
    else:
        note = "" if result.stored_bytes else " (content already in the store: no new bytes)"
        console.print(
            Text(
                f"Added {version.ref}: {_size(version.size)}, {version.file_count} file(s), "
                f"digest {version.digest[:12]}{note}"
            )
        )
    if result.pointer is not None:
        console.print(Text(f"Wrote {result.pointer.name}; commit it to git with your code."))


@app.command("ls")
def list_datasets(ctx: typer.Context, as_json: _JSON = False) -> None:
    """List datasets with their latest version."""
    from shipyard.data.versions import workspace

    backend = workspace(home_from(ctx)).backend
    rows = []
    for dataset in backend.list_datasets():
        versions = backend.list_dataset_versions(dataset.name)
        rows.append((dataset, versions[-1] if versions else None, len(versions)))
    if not rows:
        from shipyard.cli._output import print_empty

        print_empty(
            "datasets in this workspace",
            as_json=as_json,
            hint="add one with `shipyard data add PATH --name NAME`",
        )
        return
    if as_json:
        print_json(
            [
                {"name": d.name, "versions": n, "latest": None if v is None else _version_dict(v)}
                for d, v, n in rows
            ]
        )
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("Dataset", "Versions", "Latest", "Size", "Files", "Format", "Added (UTC)"):
        table.add_column(column)
    for dataset, latest, count in rows:
        if latest is None:
            continue
        table.add_row(
            Text(dataset.name),
            str(count),
            latest.ref,
            _size(latest.size),
            str(latest.file_count),
            latest.format or latest.kind,
            format_time(latest.created_at),
        )
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@VERSION (number, latest or digest prefix).")],
    as_json: _JSON = False,
) -> None:
    """Show a version: files, size, schema and profile."""
    from rich.table import Table

    from shipyard.data import resolve

    version = resolve(ref, home=home_from(ctx))
    if as_json:
        print_json(_version_dict(version, profile=True))
        return
    console.print(Text(f"{version.ref}  {version.digest}", style="bold"))
    console.print(
        Text(
            f"{version.kind} · {_size(version.size)} · {version.file_count} file(s) · "
            f"format {version.format or '-'} · added {format_time(version.created_at)} by "
            f"{version.created_by}" + (f" · run {version.run_id[:8]}" if version.run_id else "")
        )
    )
    console.print(Text(f"source: {version.source}"))
    if version.kind == "dir" and not as_json:
        from shipyard.data.versions import workspace

        entries = workspace(home_from(ctx)).artifacts.read_manifest(version.digest).entries
        files = Table(title="Files", title_justify="left", box=None, show_header=False)
        files.add_column()
        files.add_column(justify="right")
        for entry in entries[:_SHOWN_FILES]:
            files.add_row(Text(entry.path), _size(entry.size))
        if len(entries) > _SHOWN_FILES:
            files.add_row(Text(f"… and {len(entries) - _SHOWN_FILES:,} more"), "")
        console.print(files)
    profile = version.profile
    if profile is None:
        return
    console.print(Text(f"{profile.rows:,} rows, {len(profile.columns)} columns"))
    table = Table(box=None, header_style="bold")
    for column in ("Column", "Type", "Nulls", "Distinct", "Min", "Mean", "Max", "Top values"):
        table.add_column(column)
    for col in profile.columns:
        top = ", ".join(f"{v} ({n})" for v, n in (col.top_values or ())[:3])
        table.add_row(
            Text(col.name),
            col.type,
            f"{col.null_share:.1%}",
            "-" if col.distinct is None else f"{col.distinct:,}",
            _short(col.min),
            _short(col.mean),
            _short(col.max),
            Text(top),
        )
    console.print(table)


def _short(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@app.command("versions")
def versions(ctx: typer.Context, name: str, as_json: _JSON = False) -> None:
    """List every version of a dataset."""
    from shipyard.data.refs import validate_dataset_name
    from shipyard.data.versions import workspace

    found = workspace(home_from(ctx)).backend.list_dataset_versions(validate_dataset_name(name))
    if not found:
        from shipyard.cli._output import print_empty

        print_empty(f"versions of dataset {name}", as_json=as_json)
        return
    if as_json:
        print_json([_version_dict(v) for v in found])
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("Version", "Digest", "Size", "Files", "Added (UTC)", "By", "Run"):
        table.add_column(column)
    for v in found:
        table.add_row(
            v.ref,
            v.digest[:12],
            _size(v.size),
            str(v.file_count),
            format_time(v.created_at),
            Text(v.created_by),
            (v.run_id or "-")[:8],
        )
    console.print(table)


@app.command("get")
def get(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@VERSION to materialise.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into.")] = Path("."),
    link: Annotated[
        bool, typer.Option("--link", help="Read-only hard links to the store instead of copies.")
    ] = False,
) -> None:
    """Materialise a version into a folder (reflinks where possible, copies otherwise)."""
    from shipyard.data import get as get_version

    written = get_version(ref, out, link=link, home=home_from(ctx))
    console.print(Text(f"{ref} -> {written}"))


@app.command("status")
def status(
    ctx: typer.Context,
    paths: Annotated[list[Path] | None, typer.Argument(help="Tracked paths or folders.")] = None,
    as_json: _JSON = False,
) -> None:
    """Which tracked paths changed since they were added (unchanged files are not re-hashed).

    Exit code 1 when something is modified or missing.
    """
    from shipyard.data import PathState
    from shipyard.data import status as data_status

    results = data_status(list(paths) if paths else None, home=home_from(ctx))
    if as_json:
        print_json([r.to_dict() for r in results])
    elif not results:
        from shipyard.cli._fast import NOTHING_TRACKED

        console.print(NOTHING_TRACKED)
    else:
        styles = {
            PathState.UNCHANGED: "green",
            PathState.MODIFIED: "yellow",
            PathState.MISSING: "red",
        }
        for r in results:
            line = Text(f"{r.state.value:>9}  ", style=styles[r.state])
            line.append(f"{r.path}  ({r.pointer.ref})")
            console.print(line)
    if any(r.state is not PathState.UNCHANGED for r in results):
        raise typer.Exit(code=1)


@app.command("checkout")
def checkout(
    ctx: typer.Context,
    paths: Annotated[list[Path] | None, typer.Argument(help="Tracked paths or folders.")] = None,
    link: Annotated[
        bool, typer.Option("--link", help="Read-only hard links to the store instead of copies.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Discard changes that were never added.")
    ] = False,
) -> None:
    """Put back the versions that the .ship pointer files name.

    Refuses (changing nothing) when a tracked path holds changes that were never added,
    unless --force.
    """
    from shipyard.data import checkout as data_checkout

    restored = data_checkout(
        list(paths) if paths else None, link=link, force=force, home=home_from(ctx)
    )
    for r in restored:
        console.print(Text(f"restored {r.path} ({r.pointer.ref})"))
    if not restored:
        console.print("Everything already matches its pointer.")


def _transfer(ctx: typer.Context, push: bool, remote: str, refs: list[str] | None) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn

    from shipyard.data import pull as data_pull
    from shipyard.data import push as data_push

    verb = "Pushing" if push else "Pulling"
    with progress_bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()) as bar:
        task = bar.add_task(f"{verb} objects", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        run = data_push if push else data_pull
        result = run(remote, refs or None, home=home_from(ctx), progress=progress)
    console.print(
        f"{'Pushed' if push else 'Pulled'} {result.copied} object(s), {_size(result.bytes)}; "
        f"{result.skipped} already there"
    )


@app.command("push")
def push(
    ctx: typer.Context,
    remote: Annotated[str, typer.Option("--remote", "-r", help="Folder or fsspec URL.")],
    refs: Annotated[list[str] | None, typer.Argument(help="NAME@VERSION (default: all).")] = None,
) -> None:
    """Copy the objects a remote is missing to it (any folder or fsspec URL)."""
    _transfer(ctx, True, remote, refs)


@app.command("pull")
def pull(
    ctx: typer.Context,
    remote: Annotated[str, typer.Option("--remote", "-r", help="Folder or fsspec URL.")],
    refs: Annotated[list[str] | None, typer.Argument(help="NAME@VERSION (default: all).")] = None,
) -> None:
    """Copy the objects this workspace is missing from a remote."""
    _transfer(ctx, False, remote, refs)


@app.command("diff")
def diff(ctx: typer.Context, old: str, new: str, as_json: _JSON = False) -> None:
    """What changed between two versions: files, rows, columns, statistics."""
    from shipyard.data import diff as data_diff

    result = data_diff(old, new, home=home_from(ctx))
    if as_json:
        print_json(result.to_dict())
        return
    if result.same_content:
        console.print(Text(f"{result.old.ref} and {result.new.ref} hold identical content."))
        return
    for label, items, style in (
        ("added", result.files_added, "green"),
        ("removed", result.files_removed, "red"),
        ("changed", result.files_changed, "yellow"),
    ):
        for item in items:
            console.print(Text(f"{label:>8}  {item}", style=style))
    if result.rows is not None:
        console.print(Text(f"rows: {result.rows[0]:,} -> {result.rows[1]:,}"))
        for col in result.columns_added:
            console.print(Text(f"column added: {col}", style="green"))
        for col in result.columns_removed:
            console.print(Text(f"column removed: {col}", style="red"))
        for col, (a, b) in result.type_changes.items():
            console.print(Text(f"type of {col}: {a} -> {b}", style="yellow"))
        from rich.table import Table

        table = Table(box=None, header_style="bold")
        for column in ("Column", "Statistic", "Old", "New"):
            table.add_column(column)
        for col, stats in result.stat_changes.items():
            for stat, (a, b) in stats.items():
                table.add_row(Text(col), stat, _short(a), _short(b))
        if result.stat_changes:
            console.print(table)


@app.command("lineage")
def lineage(ctx: typer.Context, ref: str, as_json: _JSON = False) -> None:
    """Runs that produced or read a version, and the versions derived from it."""
    from shipyard.data import lineage as data_lineage

    found = data_lineage(ref, home=home_from(ctx))
    if as_json:
        print_json(
            {
                "version": found.version.ref,
                "produced_by": found.produced_by,
                "used_by": found.used_by,
                "derived": [{"run_id": r, "version": v.ref} for r, v in found.derived],
            }
        )
        return
    console.print(Text(found.version.ref, style="bold"))
    for run_id in found.produced_by:
        console.print(Text(f"  produced by run {run_id}"))
    for run_id in found.used_by:
        console.print(Text(f"  read by run {run_id}"))
    for run_id, version in found.derived:
        console.print(Text(f"  -> {version.ref} (written by run {run_id[:8]})"))
    if not (found.produced_by or found.used_by):
        console.print("  no run has used it yet")


@app.command("check")
def check(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="CSV or Parquet file (or folder) to check.")],
    against: Annotated[str, typer.Option("--against", "-a", help="Reference NAME@VERSION.")],
    as_json: _JSON = False,
) -> None:
    """Check a table against a version's profile; exit 1 on an error-level finding."""
    from shipyard.data import check as data_check
    from shipyard.entities import Severity

    findings = data_check(path, against, home=home_from(ctx))
    if as_json:
        print_json([f.to_dict() for f in findings])
    else:
        _print_findings(findings, path, against)
    if any(f.severity is Severity.ERROR for f in findings):
        raise typer.Exit(code=1)


def _print_findings(findings: list[Finding], path: Path, against: str) -> None:
    from shipyard.entities import Severity

    if not findings:
        console.print(Text(f"{path}: no findings against {against}", style="green"))
        return
    styles = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "dim"}
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("Severity", "Check", "Column", "Message"):
        table.add_column(column)
    for f in findings:
        table.add_row(
            Text(f.severity.value, style=styles[f.severity]),
            f.check,
            Text(f.column or "-"),
            Text(f.message),
        )
    console.print(table)
