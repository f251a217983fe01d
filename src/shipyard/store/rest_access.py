"""Tokens and passwords through a Shipyard server (mixed into
:class:`~shipyard.store.rest.RestBackend`). Unlike the SQL store, the client never sees a
hash: the server makes tokens and hashes passwords (``/api/v1/tokens``,
``/api/v1/users/NAME/password``), acting as the caller with the same rules."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from shipyard.entities import ApiToken

__all__ = ["AccessClient"]


def _token(data: Mapping[str, Any]) -> ApiToken:
    return ApiToken(
        token_id=data["token_id"],
        user=data["user"],
        name=data.get("name", ""),
        created_at=int(data["created_at"]),
        created_by=data["created_by"],
        expires_at=data.get("expires_at"),
        revoked_at=data.get("revoked_at"),
        last_used_at=data.get("last_used_at"),
    )


class AccessClient:
    """``shipyard token`` and ``shipyard users passwd`` against a server."""

    def _api(self, method: str, path: str, **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError  # RestBackend's

    def issue_token_remotely(
        self, *, user: str | None, name: str, expires_in: timedelta | None
    ) -> tuple[ApiToken, str]:
        days = None if expires_in is None else max(1, round(expires_in.total_seconds() / 86400))
        body = {"name": name, "user": user, "expires_in_days": days}
        made = self._api("POST", "/tokens", json=body)
        return _token(made), str(made["token"])

    def list_tokens_remotely(self, *, everyone: bool) -> list[ApiToken]:
        found = self._api("GET", "/tokens", params={"all": "true" if everyone else "false"})
        return [_token(t) for t in found]

    def revoke_token_remotely(self, token_id: str) -> ApiToken:
        return _token(self._api("DELETE", f"/tokens/{token_id}"))

    def set_password_remotely(self, user: str, password: str | None) -> None:
        self._api("PUT", f"/users/{user}/password", json={"password": password})
