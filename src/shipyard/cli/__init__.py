"""The ``shipyard`` command line (Typer + Rich)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.text import Text

from shipyard.cli import (
    artifacts,
    data,
    deploy,
    experiments,
    models,
    monitor,
    pipeline,
    runs,
    tune,
)
from shipyard.cli._base import ShipyardGroup, console
from shipyard.cli.batch import export, predict
from shipyard.cli.serve import serve
from shipyard.cli.validate import validate
from shipyard.config import init_workspace, load_settings, redact_url
from shipyard.registry import Registry

__all__ = ["app", "main"]

app = typer.Typer(
    name="shipyard",
    cls=ShipyardGroup,
    help="Shipyard: carry a model through its whole life.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(experiments.app, name="experiments")
app.add_typer(runs.app, name="runs")
app.add_typer(artifacts.app, name="artifacts")
app.add_typer(data.app, name="data")
app.add_typer(models.models_app, name="models")
app.add_typer(models.users_app, name="users")
app.add_typer(models.audit_app, name="audit")
app.add_typer(monitor.app, name="monitor")
app.add_typer(deploy.app, name="deploy")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(tune.app, name="tune")
app.command("validate")(validate)
app.command("serve")(serve)
app.command("predict")(predict)
app.command("export")(export)


@app.callback()
def _root(
    ctx: typer.Context,
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


@app.command("init")
def init(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(help="Folder to create .shipyard/ in (default: --home, or here)."),
    ] = None,
) -> None:
    """Create a workspace (.shipyard/) and its stores."""
    from shipyard.tracking import open_workspace

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


@app.command("version")
def version() -> None:
    """Print Shipyard's version."""
    from shipyard import __version__

    console.print(__version__)


def main() -> None:
    """Entry point of the ``shipyard`` console script."""
    try:
        app()
    finally:
        # Everything still alive is frozen out of the collector: the interpreter's final
        # sweeps at exit skip it (about 0.1 s for a command that opened the store).
        gc.freeze()
