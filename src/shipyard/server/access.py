"""``/api/v1`` for access itself: who am I, logging in with a password (for a token), setting
a password, and API tokens — the same rules as ``shipyard token`` and ``shipyard users``
(your own tokens and password; anyone's for an admin)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from shipyard.entities import ApiToken, Role
from shipyard.registry.passwords import set_password
from shipyard.registry.tokens import issue_token, list_tokens, revoke_token
from shipyard.server.auth import Identity, identity, role
from shipyard.server.deps import Store
from shipyard.server.errors import error_responses

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["access"], responses=error_responses())
_Caller = Annotated[Identity, Depends(identity)]
_ANYONE = role(Role.VIEWER)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(_Strict):
    name: str = Field(default="login", max_length=200, description="What the token is for.")
    expires_in_days: int = Field(default=30, ge=1, le=365)


class TokenIn(_Strict):
    name: str = Field(default="", max_length=200)
    user: str | None = Field(default=None, max_length=256, description="Admins only.")
    expires_in_days: int | None = Field(default=90, ge=1, le=3650, description="None: never.")


class PasswordIn(_Strict):
    password: str | None = Field(max_length=1024, description="None removes the password.")


class TokenOut(BaseModel):
    token_id: str
    user: str
    name: str
    created_at: int
    created_by: str
    expires_at: int | None
    revoked_at: int | None
    last_used_at: int | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenOut:
        return cls(
            token_id=token.token_id,
            user=token.user,
            name=token.name,
            created_at=token.created_at,
            created_by=token.created_by,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
            last_used_at=token.last_used_at,
        )


class NewTokenOut(TokenOut):
    token: str = Field(description="The whole token: shown once, never stored.")


@router.get("/whoami", summary="Who the credentials belong to, and their role", **_ANYONE)
def whoami(caller: _Caller, request: Request) -> dict[str, Any]:
    return {
        "user": caller.user,
        "role": caller.role.value,
        "token_id": caller.token_id,
        "auth": bool(request.app.state.auth),
    }


@router.post(
    "/login",
    status_code=201,
    response_model=NewTokenOut,
    summary="A new API token for the caller (log in with HTTP Basic and a password)",
    **_ANYONE,
)
def login(body: LoginIn, caller: _Caller, store: Store) -> NewTokenOut:
    token, secret = issue_token(
        store, caller.user, name=body.name, expires_in=timedelta(days=body.expires_in_days)
    )
    return NewTokenOut(**TokenOut.of(token).model_dump(), token=secret)


@router.put(
    "/users/{user}/password",
    status_code=204,
    summary="Set or remove a password (your own; anyone's for an admin)",
    **_ANYONE,
)
def put_password(user: str, body: PasswordIn, caller: _Caller, store: Store) -> None:
    set_password(store, caller.user, user, body.password)


@router.post(
    "/tokens",
    status_code=201,
    response_model=NewTokenOut,
    summary="Make an API token (for yourself; for anyone as an admin)",
    **_ANYONE,
)
def create_token(body: TokenIn, caller: _Caller, store: Store) -> NewTokenOut:
    lifetime = None if body.expires_in_days is None else timedelta(days=body.expires_in_days)
    token, secret = issue_token(
        store, caller.user, user=body.user, name=body.name, expires_in=lifetime
    )
    return NewTokenOut(**TokenOut.of(token).model_dump(), token=secret)


@router.get(
    "/tokens",
    response_model=list[TokenOut],
    summary="Your tokens (everyone's with ?all=true, admins)",
    **_ANYONE,
)
def get_tokens(caller: _Caller, store: Store, all: bool = False) -> list[TokenOut]:
    return [TokenOut.of(t) for t in list_tokens(store, caller.user, everyone=all)]


@router.delete(
    "/tokens/{token_id}",
    response_model=TokenOut,
    summary="Revoke a token (your own; anyone's for an admin)",
    **_ANYONE,
)
def delete_token(token_id: str, caller: _Caller, store: Store) -> TokenOut:
    return TokenOut.of(revoke_token(store, caller.user, token_id))
