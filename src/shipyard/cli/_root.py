"""The root of the ``shipyard`` command: its options, ``init`` and ``version``. Every other
command is listed in :data:`shipyard.cli._lazy.COMMANDS` and imported when it runs."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli._base import console
from shipyard.cli._lazy import LazyGroup

__all__ = ["app", "init", "version"]

app = typer.Typer(
    name="shipyard",
    cls=LazyGroup,
    help="Shipyard: carry a model through its whole life.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # every subcommand inherits it
)


def _print_version(wanted: bool) -> None:
    if wanted:
        from shipyard import __version__

        print(__version__)  # noqa: T201 - the whole output, as `shipyard version` prints it
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print Shipyard's version and exit.",
        ),
    ] = False,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="SHIPYARD_HOME",
            help="Workspace folder (.shipyard) to use instead of searching upwards.",
        ),
    ] = None,
) -> None:
    ctx.obj = {"home": home}


class CiKind(StrEnum):
    github = "github"
    gitlab = "gitlab"


def init(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(help="Folder to create .shipyard/ in (default: --home, or here)."),
    ] = None,
    ci: Annotated[
        CiKind | None,
        typer.Option(
            "--ci",
            help="Also write a CI job into PATH (or here): train, gate, keep the report.",
        ),
    ] = None,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="With --ci: the pipeline, FILE.py:NAME.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="With --ci: the model the pipeline registers.")
    ] = None,
    gate_data: Annotated[
        str | None,
        typer.Option(
            "--gate-data", help="With --ci: unseen rows, DATASET@v or a CSV/Parquet file."
        ),
    ] = None,
    gate_policy: Annotated[
        str | None,
        typer.Option("--gate-policy", help="With --ci: the gate policy YAML (default: gate.yaml)."),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--target", help="With --ci: the true-value column (default: target)."),
    ] = None,
    sensitive: Annotated[
        list[str] | None,
        typer.Option("--sensitive", help="With --ci: sensitive column for fairness (repeatable)."),
    ] = None,
    install: Annotated[
        str | None,
        typer.Option(
            "--install",
            help="With --ci: what pip installs (default: shipyard-mlops[sklearn,validation]).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="With --ci: replace an existing CI file.")
    ] = False,
) -> None:
    """Create a workspace (.shipyard/) and its stores; with --ci, also a CI job."""
    from rich.markup import escape
    from rich.text import Text

    from shipyard.automation.ci import ci_settings_from_options, write_ci
    from shipyard.config import init_workspace, load_settings, redact_url
    from shipyard.registry import Registry
    from shipyard.tracking import open_workspace

    if ci is not None:  # checked before anything is created
        ci_settings = ci_settings_from_options(
            pipeline=pipeline,
            model=model,
            gate_data=gate_data,
            gate_policy=gate_policy,
            target=target,
            sensitive=sensitive,
            install=install,
        )

    home = init_workspace(path or (ctx.obj or {}).get("home") or Path("."))
    settings = load_settings(home)
    workspace = open_workspace(home)
    # Opening the store creates and migrates it; whoever initialises it first is its admin.
    admin = Registry(workspace.backend, workspace.settings.user).bootstrap_admin()
    console.print(f"Initialised Shipyard workspace in [bold]{escape(str(home))}[/]")
    console.print(Text(f"  metadata store:  {redact_url(settings.store_url)}"))
    console.print(Text(f"  artifact store:  {redact_url(settings.artifacts_url)}"))
    if admin:
        console.print(Text(f"  {workspace.settings.user} is the admin (shipyard users add ...)"))
    if ci is not None:
        root = home.parent if path is not None else Path(".")  # PATH may name .shipyard/
        written = write_ci(ci.value, ci_settings, root, force=force)
        where = "repository secrets" if ci is CiKind.github else "CI/CD variables"
        console.print(Text(f"Wrote {written}"), soft_wrap=True)
        console.print(
            Text(
                f"  to use the team's stores, set the {where} SHIPYARD_STORE_URL and "
                "SHIPYARD_ARTIFACTS_URL (see the comments in the file)"
            ),
            soft_wrap=True,
        )


def version() -> None:
    """Print Shipyard's version."""
    from shipyard import __version__

    console.print(__version__)
