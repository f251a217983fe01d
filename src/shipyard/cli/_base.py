"""What every command shares: the root group that turns Shipyard errors into one line and an
exit code, the workspace option, and output helpers (Rich tables or ``--json``)."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from shipyard.errors import ShipyardError
from shipyard.tracking import Workspace, open_workspace

__all__ = [
    "ShipyardGroup",
    "console",
    "err_console",
    "format_duration",
    "format_time",
    "home_from",
    "print_json",
    "workspace_from",
]

console = Console(highlight=False, soft_wrap=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class ShipyardGroup(TyperGroup):
    """Root command group: a :class:`ShipyardError` becomes ``error: ...`` and its exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except ShipyardError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(code=exc.exit_code) from exc
        except OSError as exc:  # a folder that cannot be written, a full disk, ...
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(code=1) from exc


def home_from(ctx: typer.Context) -> Any:
    """The ``--home`` given to the root command (None: ``SHIPYARD_HOME`` or the nearest
    ``.shipyard`` decides)."""
    return (ctx.find_root().obj or {}).get("home")


def workspace_from(ctx: typer.Context) -> Workspace:
    """The workspace chosen by ``--home`` / ``SHIPYARD_HOME`` / the nearest ``.shipyard``."""
    return open_workspace(home_from(ctx))


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def print_json(data: Any) -> None:
    """Strict JSON on stdout; NaN and infinities become the strings "nan", "inf", "-inf"."""
    sys.stdout.write(json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")


def format_time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_duration(ms: int | None) -> str:
    if ms is None:
        return "running"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
