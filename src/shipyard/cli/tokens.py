"""``shipyard token``: API tokens for the platform server (``shipyard server --auth``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli._base import console, err_console, format_time, print_json, workspace_from
from shipyard.entities import ApiToken

__all__ = ["app"]

app = typer.Typer(help="API tokens for the platform server.", no_args_is_help=True)

_JSON = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _dict(token: ApiToken) -> dict[str, Any]:
    return {
        "token_id": token.token_id,
        "user": token.user,
        "name": token.name,
        "created_at": token.created_at,
        "created_by": token.created_by,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
        "last_used_at": token.last_used_at,
    }


@app.command("create")
def create(
    ctx: typer.Context,
    user: Annotated[
        str | None, typer.Option("--user", help="For this user (admins only; default: you).")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="What the token is for.")] = "",
    expires: Annotated[
        str, typer.Option("--expires", help="Lifetime: 90d, 12h, 4w … or never.")
    ] = "90d",
    as_json: _JSON = False,
) -> None:
    """Make a token and print it once: only a hash of it is kept."""
    from shipyard.monitoring.windows import parse_window
    from shipyard.registry.tokens import issue_token

    workspace = workspace_from(ctx)
    lifetime = None if expires == "never" else parse_window(expires)
    token, secret = issue_token(
        workspace.backend, workspace.settings.user, user=user, name=name, expires_in=lifetime
    )
    if as_json:
        print_json({**_dict(token), "token": secret})
        return
    err_console.print(
        f"Token {token.token_id} for {escape(token.user)}, expires "
        f"{format_time(token.expires_at) if token.expires_at else 'never'}. "
        "Shown once — keep it secret:"
    )
    console.print(secret, highlight=False, soft_wrap=True)


@app.command("ls")
def ls(
    ctx: typer.Context,
    everyone: Annotated[bool, typer.Option("--all", help="Every user's tokens (admins).")] = False,
    as_json: _JSON = False,
) -> None:
    """Your tokens (never their secrets): when made, when last used, expiry, revocation."""
    from shipyard.registry.tokens import list_tokens

    workspace = workspace_from(ctx)
    tokens = list_tokens(workspace.backend, workspace.settings.user, everyone=everyone)
    if not tokens:
        from shipyard.cli._output import print_empty

        whose = "in this workspace" if everyone else f"of {workspace.settings.user}"
        hint = "make one with `shipyard token create NAME`"
        print_empty(f"tokens {whose}", as_json=as_json, hint=hint)
        return
    if as_json:
        print_json([_dict(t) for t in tokens])
        return
    table = Table(box=None, header_style="bold")
    for heading in ("token", "user", "name", "created", "last used", "expires", "state"):
        table.add_column(heading)
    for t in tokens:
        state = "revoked" if t.revoked_at else "active"
        table.add_row(
            t.token_id,
            escape(t.user),
            escape(t.name),
            format_time(t.created_at),
            format_time(t.last_used_at),
            format_time(t.expires_at) if t.expires_at else "never",
            state,
        )
    console.print(table)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="The token's id (from `shipyard token ls`).")],
) -> None:
    """Revoke a token: yours, or anyone's for an admin. It stops working at once."""
    from shipyard.registry.tokens import revoke_token

    workspace = workspace_from(ctx)
    token = revoke_token(workspace.backend, workspace.settings.user, token_id)
    console.print(f"Revoked token {token.token_id} of {escape(token.user)}")
