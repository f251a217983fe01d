"""``shipyard server``: the platform server (web UI under /, REST API under /api/v1) over this
workspace."""

from __future__ import annotations

import ipaddress
import os
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from shipyard.cli._base import console, err_console, home_from
from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shipyard.store import Backend

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
    auth: Annotated[bool, typer.Option("--auth", help="Require an API token on every call.")] = (
        False
    ),
    init_admin: Annotated[
        str | None,
        typer.Option(
            "--init-admin", help="Make this user an admin and print a new token for it, once."
        ),
    ] = None,
) -> None:
    """Serve the web UI (at /) and the REST API (/api/v1, OpenAPI at /api/v1/openapi.json)
    over this workspace.

    Without --auth every call acts as the workspace's user, so the server then binds only to
    a loopback address, and says so at start.
    """
    try:
        import uvicorn
    except ModuleNotFoundError:  # pragma: no cover - depends on the environment
        raise InvalidArgumentError(
            "shipyard server needs FastAPI and uvicorn: pip install 'shipyard-mlops[server]'"
        ) from None
    if not auth and not _loopback(host):
        raise InvalidArgumentError(
            f"--host {host} without --auth would let anyone on the network act on this "
            "workspace as its user: add --auth (and make a token), or bind 127.0.0.1"
        )
    if init_admin is not None and not auth:
        raise InvalidArgumentError("--init-admin makes a token to log in with: it needs --auth")
    from shipyard.config import load_settings

    settings = load_settings(home_from(ctx))
    os.environ["SHIPYARD_HOME"] = str(settings.home)
    os.environ["SHIPYARD_SERVER_AUTH"] = "1" if auth else "0"
    # Build once here, so that a broken store fails before the port is taken.
    from shipyard.server.app import app_from_environment

    app = app_from_environment()
    if init_admin is not None:
        _init_admin(app.state.workspace.backend, init_admin)
    if auth:
        err_console.print("authentication is on: every /api/v1 call needs an API token")
    else:
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


def _init_admin(backend: Backend, name: str) -> None:
    """Make ``name`` an admin (whoever runs the server has the store in hand) and show a new
    token for it once."""
    from shipyard.entities import Role
    from shipyard.registry.tokens import issue_token

    if not name.strip():
        raise InvalidArgumentError("--init-admin needs a user name")
    user = backend.get_user(name)
    if user is None or user.role is not Role.ADMIN:
        backend.set_user(name, Role.ADMIN, actor="shipyard server --init-admin")
    _, secret = issue_token(backend, name, name="init-admin")
    err_console.print(
        f"{escape(name)} is an admin. Its token (shown once, keep it secret):\n{secret}",
        highlight=False,
        soft_wrap=True,
    )
