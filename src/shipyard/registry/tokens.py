"""API tokens: who may make, see and revoke them, and how a presented token is checked.

A token reads ``shp_<id>_<secret>``. The store keeps the id and the SHA-256 of the secret —
a 256-bit random secret needs no slow hash (that is for passwords people choose) — so a
stolen database holds no usable token. The whole token is shown once, when it is made.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from shipyard.entities import ApiToken, Role
from shipyard.errors import AuthenticationError, InvalidArgumentError, NotFoundError
from shipyard.registry.service import Registry
from shipyard.store import Backend

if TYPE_CHECKING:
    from shipyard.store.rest import RestBackend

__all__ = ["PREFIX", "issue_token", "list_tokens", "revoke_token", "role_of", "verify_token"]

PREFIX = "shp_"
_TOKEN = re.compile(r"^shp_([0-9a-f]{12})_([A-Za-z0-9_\-]{43})$")
_TOUCH_EVERY_MS = 60_000


def _now() -> int:
    return time.time_ns() // 1_000_000


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(
    backend: Backend,
    acting: str,
    *,
    user: str | None = None,
    name: str = "",
    expires_in: timedelta | None = timedelta(days=90),
) -> tuple[ApiToken, str]:
    """A new token for ``user`` (default: the acting user); returns it and the whole secret
    token, which is never stored nor shown again.

    Raises:
        PermissionDeniedError: a token for someone else, by anyone but an admin.
        NotFoundError: ``user`` has no role (``shipyard users add``).
    """
    remote = _remote(backend)
    if remote is not None:  # the server makes it, as the token's user, by the same rules
        return remote.issue_token_remotely(user=user, name=name, expires_in=expires_in)
    owner = user or acting
    if owner != acting:
        Registry(backend, acting)._require(doing=f"make tokens for {owner!r}")
    if backend.get_user(owner) is None:
        raise NotFoundError(
            f"{owner!r} is not a user: `shipyard users add {owner} --role member` first"
        )
    if expires_in is not None and expires_in <= timedelta(0):
        raise InvalidArgumentError("a token's lifetime must be positive (or none)")
    if len(name) > 200:
        raise InvalidArgumentError("a token's name is at most 200 characters")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    now = _now()
    token = ApiToken(
        token_id=token_id,
        user=owner,
        name=name,
        created_at=now,
        created_by=acting,
        expires_at=None if expires_in is None else now + int(expires_in.total_seconds() * 1000),
    )
    backend.create_api_token(token, _hash(secret))
    return token, f"{PREFIX}{token_id}_{secret}"


def verify_token(backend: Backend, presented: str, *, now: int | None = None) -> ApiToken:
    """The token ``presented`` stands for, if it is valid now.

    Raises:
        AuthenticationError: malformed, unknown, wrong secret, revoked or expired (one message
            for all: which one is not told to the caller).
    """
    refused = AuthenticationError("invalid, revoked or expired API token")
    match = _TOKEN.match(presented.strip())
    if match is None:
        raise refused
    token_id, secret = match.groups()
    try:
        token, stored = backend.get_api_token(token_id)
    except NotFoundError:
        raise refused from None
    at = now if now is not None else _now()
    if not hmac.compare_digest(stored, _hash(secret)) or not token.usable(at):
        raise refused
    if token.last_used_at is None or at - token.last_used_at > _TOUCH_EVERY_MS:
        backend.touch_api_token(token.token_id, at)
    return token


def list_tokens(backend: Backend, acting: str, *, everyone: bool = False) -> list[ApiToken]:
    """The acting user's tokens; every user's for an admin with ``everyone``."""
    remote = _remote(backend)
    if remote is not None:
        return remote.list_tokens_remotely(everyone=everyone)
    if everyone:
        Registry(backend, acting)._require(doing="list everyone's tokens")
        return backend.list_api_tokens()
    return backend.list_api_tokens(acting)


def revoke_token(backend: Backend, acting: str, token_id: str) -> ApiToken:
    """Revoke a token: one's own, or anyone's for an admin.

    Raises:
        NotFoundError: no such token.
        PermissionDeniedError: someone else's token, revoked by a non-admin.
    """
    remote = _remote(backend)
    if remote is not None:
        return remote.revoke_token_remotely(token_id)
    token, _ = backend.get_api_token(token_id)
    if token.user != acting:
        Registry(backend, acting)._require(doing=f"revoke {token.user!r}'s tokens")
    backend.revoke_api_token(token_id, actor=acting)
    return backend.get_api_token(token_id)[0]


def _remote(backend: Backend) -> RestBackend | None:
    """The server behind ``backend``, when the workspace uses one (``SHIPYARD_SERVER``)."""
    from shipyard.store.rest import RestBackend

    return backend if isinstance(backend, RestBackend) else None


def role_of(backend: Backend, user: str) -> Role:
    """A user's role, as the registry sees it."""
    return Registry(backend, user).role_of(user)
