"""``shipyard demo``: the whole life of a model, on synthetic data, in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli._base import console, print_json

__all__ = ["demo"]


def demo(
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace", help="A new or empty folder for the demo (default: a temporary one)."
        ),
    ] = None,
    keep_serving: Annotated[
        bool, typer.Option("--keep-serving", help="Leave the model server running at the end.")
    ] = False,
    port: Annotated[
        int | None, typer.Option("--port", help="The model server's port (default: a free one).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Also print where things are and the timings as JSON.")
    ] = False,
) -> None:
    """Data, training with tuning, validation and fairness, four-eyes approval, a model server,
    traffic, drift, an alert, automatic retraining, a canary, promotion — in about two minutes.

    Runs on the embedded default (SQLite and a local folder) with no network, and leaves the
    workspace to explore with the other commands.
    """
    from shipyard.demo.story import run_demo

    result = run_demo(workspace, keep_serving=keep_serving, port=port, console=console)
    if as_json:
        print_json(result.to_dict())
