"""API tokens and audit entries written on their own (mixed into
:class:`~shipyard.store.sql.SqlBackend`). Each token change is written with its audit entry."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from shipyard.entities import ApiToken
from shipyard.errors import NotFoundError
from shipyard.store.sql.engine import read, with_retries, write
from shipyard.store.sql.registry import append_audit
from shipyard.store.sql.schema import api_tokens

__all__ = ["TokenMethods"]


def _token(row: Any) -> ApiToken:
    return ApiToken(
        token_id=row.token_id,
        user=row.user,
        name=row.name,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


class TokenMethods:
    _engine: sa.Engine
    _audited: Callable[[str, Callable[[sa.Connection], Any]], Any]
    """A change and its audit entry in one transaction (``RegistryMethods._audited``)."""

    def create_api_token(self, token: ApiToken, secret_hash: str) -> None:
        """Store a new token (its secret's hash only) and its audit entry."""

        def change(conn: sa.Connection) -> None:
            conn.execute(
                api_tokens.insert().values(
                    token_id=token.token_id,
                    user=token.user,
                    name=token.name,
                    secret_hash=secret_hash,
                    created_at=token.created_at,
                    created_by=token.created_by,
                    expires_at=token.expires_at,
                )
            )
            details = {"name": token.name, "expires_at": token.expires_at}
            append_audit(conn, token.created_by, "token.create", f"token:{token.token_id}", details)

        self._audited("creating an API token", change)

    def get_api_token(self, token_id: str) -> tuple[ApiToken, str]:
        """A token and its secret's hash.

        Raises:
            NotFoundError: no such token.
        """
        with read(self._engine) as conn:
            row = conn.execute(api_tokens.select().where(api_tokens.c.token_id == token_id)).first()
        if row is None:
            raise NotFoundError(f"no API token {token_id}")
        return _token(row), row.secret_hash

    def list_api_tokens(self, user: str | None = None) -> list[ApiToken]:
        query = api_tokens.select().order_by(api_tokens.c.created_at, api_tokens.c.token_id)
        if user is not None:
            query = query.where(api_tokens.c.user == user)
        with read(self._engine) as conn:
            return [_token(row) for row in conn.execute(query)]

    def revoke_api_token(self, token_id: str, *, actor: str) -> None:
        """Revoke a token (it stays listed, unusable).

        Raises:
            NotFoundError: no such token.
        """

        def change(conn: sa.Connection) -> None:
            done = conn.execute(
                api_tokens.update()
                .where(api_tokens.c.token_id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=time.time_ns() // 1_000_000)
            ).rowcount
            if not done:
                exists = conn.execute(
                    sa.select(api_tokens.c.token_id).where(api_tokens.c.token_id == token_id)
                ).first()
                if exists is None:
                    raise NotFoundError(f"no API token {token_id}: see `shipyard token ls`")
                return  # already revoked: nothing to record
            append_audit(conn, actor, "token.revoke", f"token:{token_id}", {})

        self._audited(f"revoking API token {token_id}", change)

    def touch_api_token(self, token_id: str, now: int) -> None:
        """Record a token's use (at most what a reader needs: the last time)."""

        def change() -> None:
            with write(self._engine) as conn:
                conn.execute(
                    api_tokens.update()
                    .where(api_tokens.c.token_id == token_id)
                    .values(last_used_at=now)
                )

        with_retries(change, what="recording an API token's use")

    def record_audit(self, actor: str, action: str, target: str, details: dict[str, Any]) -> None:
        """Append one audit entry on its own (a denied request, say)."""
        self._audited(
            f"auditing {action}", lambda conn: append_audit(conn, actor, action, target, details)
        )
