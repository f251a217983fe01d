"""``shipyard login URL`` / ``shipyard logout``: use a team's platform server from this
workspace, with a token kept in ``.shipyard/credentials`` (mode 0600)."""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from shipyard.cli._base import err_console, home_from
from shipyard.config import CREDENTIALS_FILE, load_settings
from shipyard.errors import AuthenticationError, InvalidArgumentError, StoreError

__all__ = ["login", "logout"]


def _answer(response: Any, url: str) -> dict[str, Any]:
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        body = {}
    if response.status_code == 401:
        raise AuthenticationError(
            f"{url} refused the login: {body.get('message', 'unauthenticated')}"
        )
    if response.status_code == 429:
        raise AuthenticationError(f"{url}: {body.get('message', 'too many failed logins')}")
    if response.is_error:
        raise StoreError(
            f"{url} answered {response.status_code}: {body.get('message', response.text[:200])}"
        )
    return body


def _write_private(path: Path, data: dict[str, str]) -> None:
    """Write ``data`` as JSON readable by its owner only; atomically (temp file + rename)."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def login(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="The server, e.g. http://ml-server:5000.")],
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Your user name (default: SHIPYARD_USER).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    token_stdin: Annotated[
        bool,
        typer.Option("--token-stdin", help="Read an API token from stdin instead of a password."),
    ] = False,
    days: Annotated[int, typer.Option("--days", min=1, max=365, help="Token lifetime.")] = 30,
) -> None:
    """Log in to a platform server: commands in this workspace then use it.

    With a password (asked for, or --password-stdin) the server issues a token for this
    machine; --token-stdin keeps a token made with `shipyard token create`. The token is kept
    in .shipyard/credentials, readable by you only, and sent only to this server.
    """
    import httpx

    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise InvalidArgumentError(f"{url!r} is not a server URL: write e.g. http://ml-server:5000")
    settings = load_settings(
        home_from(ctx), create=True, env={**os.environ, "SHIPYARD_SERVER": url}
    )
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            if token_stdin:
                token = sys.stdin.readline().strip()
            else:
                name = user or settings.user
                if password_stdin:
                    password = sys.stdin.readline().rstrip("\r\n")
                else:
                    password = typer.prompt(f"Password for {name} at {url}", hide_input=True)
                issued = _answer(
                    client.post(
                        "/api/v1/login",
                        auth=(name, password),
                        json={
                            "name": f"shipyard login on {socket.gethostname()}"[:200],
                            "expires_in_days": days,
                        },
                    ),
                    url,
                )
                token = str(issued["token"])
            who = _answer(
                client.get("/api/v1/whoami", headers={"authorization": f"Bearer {token}"}), url
            )
    except httpx.TransportError as exc:
        raise StoreError(f"cannot reach {url}: {exc}") from exc
    _write_private(
        settings.home / CREDENTIALS_FILE, {"server": url, "token": token, "user": who["user"]}
    )
    err_console.print(
        f"Logged in to {escape(url)} as {escape(who['user'])} ({who['role']}). Commands in "
        f"{escape(str(settings.home.parent))} now use that server; `shipyard logout` stops."
    )


def logout(ctx: typer.Context) -> None:
    """Forget the server login of this workspace (and revoke its token on the server)."""
    import httpx

    settings = load_settings(home_from(ctx))
    file = settings.home / CREDENTIALS_FILE
    if not file.exists():
        err_console.print("Not logged in.")
        return
    try:
        saved = json.loads(file.read_text(encoding="utf-8"))
        token = str(saved.get("token", ""))
        token_id = token.split("_")[1] if token.startswith("shp_") else ""
        if token_id:
            httpx.delete(
                f"{saved['server']}/api/v1/tokens/{token_id}",
                headers={"authorization": f"Bearer {token}"},
                timeout=10,
            )
    except (ValueError, KeyError, httpx.HTTPError):
        pass  # the file goes anyway; the token expires on its own
    file.unlink()
    err_console.print("Logged out.")
