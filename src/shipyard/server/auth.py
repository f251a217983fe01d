"""Who is calling, and may they: the one place the server checks roles.

With authentication on, every call carries ``Authorization: Bearer <token>`` — or HTTP Basic
with the user's name and a token or their password, which is what the ``mlflow`` client sends
(``MLFLOW_TRACKING_TOKEN``, or ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``). A password is
checked with scrypt (:mod:`shipyard.registry.passwords`, ~0.1 s); a success is remembered for
a minute per server process, under a keyed hash of the user, the password and its stored hash,
so that a client sending Basic on every call does not pay the KDF each time and a changed
password takes effect at once.
Each endpoint declares the least role it needs with :func:`role` (viewer < member < approver <
admin); the app refuses to start with an ``/api/v1`` endpoint that declares none. A refused
call is a 401 (no valid credentials) or 403 (the role is too low) with an audit entry; a
client that presents wrong credentials 10 times within a minute gets 429 until the minute
has passed (per server process). Tokens never appear in a log or an error message.

With authentication off (a solo server on 127.0.0.1), every call acts as the workspace's user
with that user's role.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import Depends, Request
from fastapi.routing import APIRoute

from shipyard.entities import Role
from shipyard.errors import AuthenticationError, PermissionDeniedError, ShipyardError
from shipyard.registry.passwords import check_password
from shipyard.registry.tokens import PREFIX, role_of, verify_token

__all__ = [
    "ROLE_KEY",
    "FailureLimiter",
    "Identity",
    "PasswordCache",
    "check_declared",
    "identity",
    "role",
]

ROLE_KEY = "x-shipyard-role"
"""The OpenAPI extension naming the role an operation needs."""


class TooManyFailuresError(ShipyardError):
    """Too many failed authentications from one client: wait and try again."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many failed logins from this client: try again in {retry_after} s")


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    role: Role
    token_id: str | None = None


class FailureLimiter:
    """At most ``limit`` failed authentications per client within ``window_s`` seconds."""

    def __init__(self, limit: int = 10, window_s: float = 60.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._failures: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            recent = self._failures.get(client)
            if recent is None:
                return
            while recent and now - recent[0] > self.window_s:
                recent.popleft()
            if len(recent) >= self.limit:
                raise TooManyFailuresError(int(self.window_s - (now - recent[0])) + 1)

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, collections.deque()).append(time.monotonic())


def _credentials(request: Request) -> tuple[str | None, str]:
    """``(claimed user or None, token)`` from the Authorization header."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return None, value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            user, sep, secret = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthenticationError(
                "the Basic credentials are not base64 of user:token or user:password"
            ) from None
        if sep and secret:
            return user, secret
    raise AuthenticationError(
        "authentication required: send `Authorization: Bearer <token>` (make one with "
        "`shipyard token create`, or `shipyard login URL` with a password)"
    )


class PasswordCache:
    """Recent successful password checks: ``keyed hash -> expiry`` (monotonic seconds)."""

    def __init__(self, ttl_s: float = 60.0, size: int = 1024) -> None:
        self.ttl_s, self.size = ttl_s, size
        self._key = secrets.token_bytes(32)  # per process: the cache means nothing elsewhere
        self._seen: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def _digest(self, user: str, password: str, stored: str) -> bytes:
        text = "\0".join((user, password, stored)).encode()
        return hmac.new(self._key, text, hashlib.sha256).digest()

    def check(self, backend: Any, user: str, password: str) -> None:
        """Raises:
        AuthenticationError: wrong user name or password."""
        stored = backend.get_user_password_hash(user) or ""
        digest = self._digest(user, password, stored)
        now = time.monotonic()
        with self._lock:
            if self._seen.get(digest, 0.0) > now:
                return
        check_password(backend, user, password)
        with self._lock:
            if len(self._seen) >= self.size:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
                if len(self._seen) >= self.size:
                    self._seen.clear()
            self._seen[digest] = now + self.ttl_s


def _deny(request: Request, actor: str, status: int, reason: str) -> None:
    backend = request.app.state.workspace.backend
    client = request.client.host if request.client else "unknown"
    target = f"{request.method} {request.url.path}"
    details = {"status": status, "reason": reason, "client": client}
    backend.record_audit(actor, "auth.denied", target, details)


def identity(request: Request) -> Identity:
    """The caller (cached on the request)."""
    known: Identity | None = getattr(request.state, "identity", None)
    if known is not None:
        return known
    backend = request.app.state.workspace.backend
    if not request.app.state.auth:
        # One user for every call: its role is read at most once a second, not per call.
        cached: tuple[float, Identity] | None = getattr(request.app.state, "solo", None)
        now = time.monotonic()
        if cached is not None and now - cached[0] < 1.0:
            found = cached[1]
        else:
            user = request.app.state.workspace.settings.user
            found = Identity(user, role_of(backend, user))
            request.app.state.solo = (now, found)
    else:
        limiter: FailureLimiter = request.app.state.limiter
        client = request.client.host if request.client else "unknown"
        limiter.check(client)
        try:
            claimed, presented = _credentials(request)
            token_id = None
            if claimed is not None and not presented.startswith(PREFIX):
                passwords: PasswordCache = request.app.state.passwords
                passwords.check(backend, claimed, presented)
                name = claimed
            else:
                token = verify_token(backend, presented)
                if claimed is not None and claimed != token.user:
                    raise AuthenticationError("the Basic user name is not the token's user")
                name, token_id = token.user, token.token_id
            user = backend.get_user(name)
            if user is None:
                raise AuthenticationError(f"{name!r} is no longer a user")
        except AuthenticationError as exc:
            if request.headers.get("authorization"):  # a wrong guess, not a missing header
                limiter.failed(client)
            _deny(request, "anonymous", 401, str(exc))
            raise
        found = Identity(user.name, user.role, token_id)
    request.state.identity = found
    return found


def role(needed: Role) -> dict[str, Any]:
    """Keyword arguments for a route decorator: the check, and the role in the OpenAPI
    document (``x-shipyard-role``)."""

    # Async, so that an allowed call costs no trip through the thread pool; only a refusal
    # writes (its audit entry), in a worker thread.
    async def check(request: Request, caller: Identity = Depends(identity)) -> Identity:  # noqa: B008
        if not caller.role.allows(needed):
            message = (
                f"{caller.user!r} is a {caller.role.value}; this needs the {needed.value} role "
                f"(an admin can grant it: `shipyard users add {caller.user} --role "
                f"{needed.value}`)"
            )
            await anyio.to_thread.run_sync(_deny, request, caller.user, 403, message)
            raise PermissionDeniedError(message)
        return caller

    return {"dependencies": [Depends(check)], "openapi_extra": {ROLE_KEY: needed.value}}


def check_declared(routes: list[Any]) -> None:
    """Refuse an app with an ``/api/v1`` endpoint that declares no role."""
    for route in routes:
        if isinstance(route, APIRoute) and route.path.startswith("/api/"):
            if ROLE_KEY not in (route.openapi_extra or {}):
                raise RuntimeError(f"{sorted(route.methods or ())} {route.path} declares no role")
