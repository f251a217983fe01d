"""Logging in and out of the web UI.

A login checks the password as the API does (scrypt, the same failure limit) and makes an API
token named ``web session`` that lives in an ``HttpOnly`` cookie; logging out revokes it, so a
copied cookie stops working too. The token shows in ``shipyard token ls`` like any other.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shipyard.errors import AuthenticationError
from shipyard.server.ui.pages import SESSION_COOKIE, check_csrf, page_identity, render

__all__ = ["SESSION_DAYS", "router"]

router = APIRouter(include_in_schema=False)

SESSION_DAYS = 7


def _safe_next(target: str) -> str:
    """Only a path on this server: never another site (an open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "login.html", title="Log in", next=_safe_next(next), problem="")


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    user: Annotated[str, Form(max_length=256)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    from shipyard.registry.tokens import issue_token

    check_csrf(request, csrf)
    target = _safe_next(next)
    if not request.app.state.auth:
        return RedirectResponse(target, status_code=303)
    backend = request.app.state.workspace.backend
    limiter = request.app.state.limiter
    client = request.client.host if request.client else "unknown"
    limiter.check(client)
    try:
        if not user or not password:
            raise AuthenticationError("enter your user name and password")
        request.app.state.passwords.check(backend, user, password)
    except AuthenticationError:
        limiter.failed(client)
        backend.record_audit(
            "anonymous", "auth.denied", "POST /login", {"status": 401, "client": client}
        )
        return render(
            request,
            "login.html",
            status=401,
            title="Log in",
            next=target,
            problem="Wrong user name or password.",
            user=user,
        )
    _, secret = issue_token(
        backend, user, name="web session", expires_in=timedelta(days=SESSION_DAYS)
    )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=SESSION_DAYS * 86400,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(max_length=128)] = "") -> Response:
    from shipyard.registry.tokens import revoke_token

    caller = page_identity(request)
    check_csrf(request, csrf)
    if caller.token_id and getattr(request.state, "session", None):
        revoke_token(request.app.state.workspace.backend, caller.user, caller.token_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
