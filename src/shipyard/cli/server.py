"""``shipyard server``: the platform server (REST API under /api/v1) over this workspace."""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated

import typer
from rich.markup import escape

from shipyard.cli._base import console, err_console, home_from
from shipyard.errors import InvalidArgumentError

__all__ = ["server"]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 5000,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve the REST API (/api/v1, OpenAPI at /api/v1/openapi.json) over this workspace.

    Without authentication (not built yet) it only binds to a loopback address, and says so.
    """
    try:
        import uvicorn
    except ModuleNotFoundError:  # pragma: no cover - depends on the environment
        raise InvalidArgumentError(
            "shipyard server needs FastAPI and uvicorn: pip install 'shipyard-mlops[server]'"
        ) from None
    if not _loopback(host):
        raise InvalidArgumentError(
            f"--host {host} would let anyone on the network act on this workspace, and "
            "authentication is not built yet: bind 127.0.0.1 (the default)"
        )
    from shipyard.config import load_settings

    settings = load_settings(home_from(ctx))
    os.environ["SHIPYARD_HOME"] = str(settings.home)
    # Build once here, so that a broken store fails before the port is taken.
    from shipyard.server.app import app_from_environment

    app = app_from_environment()
    err_console.print(
        f"[bold yellow]authentication is off[/]: anyone who can reach {escape(host)}:{port} "
        f"acts as {escape(settings.user)} (this machine only)"
    )
    console.print(
        f"Shipyard server on http://{escape(host)}:{port} (API /api/v1, "
        f"OpenAPI /api/v1/openapi.json) over {escape(str(settings.home))}"
    )
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    else:
        uvicorn.run(
            "shipyard.server.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
        )
