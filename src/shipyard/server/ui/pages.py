"""What every page needs: the templates, who is looking, CSRF tokens and the HTML error pages.

Pages use the API's rules: with authentication on, a page needs a session (a cookie holding an
API token made at ``/login``) or an ``Authorization`` header; with it off, every page acts as
the workspace's user. Each page declares the least role it needs, as the API's endpoints do.

Every form carries a CSRF token: an HMAC, keyed by the session's secret (or, without a
session, by a random ``shipyard_csrf`` cookie), of a fixed label. A cross-site page can
neither read the key nor the token, and cookies are ``SameSite=Lax`` besides (no cross-site
POST carries them).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from html import escape
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from shipyard.entities import Role
from shipyard.errors import AuthenticationError, PermissionDeniedError, ShipyardError
from shipyard.server.auth import Identity, identity

if TYPE_CHECKING:
    from collections.abc import Callable

    from jinja2 import Environment

__all__ = [
    "CSRF_COOKIE",
    "SESSION_COOKIE",
    "LoginRequiredError",
    "check_csrf",
    "csrf_token",
    "error_page",
    "fragment",
    "page_identity",
    "render",
    "viewer",
]

SESSION_COOKIE = "shipyard_session"
CSRF_COOKIE = "shipyard_csrf"
_CSRF_LABEL = b"shipyard-csrf-v1"


class LoginRequiredError(ShipyardError):
    """A page was asked for without a session while authentication is on."""


_environment: Environment | None = None


def environment() -> Environment:
    """The pages' Jinja environment (autoescaping on), made once."""
    global _environment
    if _environment is None:
        from jinja2 import Environment, FileSystemLoader, StrictUndefined

        folder = str(files("shipyard.server.ui") / "templates")
        env = Environment(
            loader=FileSystemLoader(folder),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        from shipyard.server.ui import format as fmt

        env.filters.update(fmt.FILTERS)
        env.globals.update(fmt.GLOBALS)
        _environment = env
    return _environment


def _session_identity(request: Request) -> Identity:
    from shipyard.registry.tokens import verify_token

    backend = request.app.state.workspace.backend
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        raise LoginRequiredError("log in to see this page")
    try:
        token = verify_token(backend, secret)
        user = backend.get_user(token.user)
        if user is None:
            raise AuthenticationError(f"{token.user!r} is no longer a user")
    except AuthenticationError as exc:
        raise LoginRequiredError(f"your session ended ({exc}); log in again") from None
    request.state.session = secret
    found = Identity(user.name, user.role, token.token_id)
    request.state.identity = found
    return found


def page_identity(request: Request) -> Identity:
    """Who is looking at a page (a session, a header, or the solo server's user)."""
    request.state.page = True
    known: Identity | None = getattr(request.state, "identity", None)
    if known is not None:
        return known
    if not request.app.state.auth or request.headers.get("authorization"):
        return identity(request)
    return _session_identity(request)


def viewer(needed: Role = Role.VIEWER) -> Callable[[Request], Identity]:
    """A dependency: the caller, who must hold at least ``needed``."""

    def check(request: Request, caller: Identity = Depends(page_identity)) -> Identity:  # noqa: B008
        if not caller.role.allows(needed):
            raise PermissionDeniedError(
                f"{caller.user!r} is a {caller.role.value}; this page needs the {needed.value} role"
            )
        return caller

    return check


def _csrf_key(request: Request) -> bytes:
    session: str | None = getattr(request.state, "session", None)
    if session:
        return session.encode()
    key = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not key:
        key = secrets.token_urlsafe(32)
        request.state.new_csrf = key
    return key.encode()


def csrf_token(request: Request) -> str:
    """The token a form on this page must send back as ``csrf``."""
    return hmac.new(_csrf_key(request), _CSRF_LABEL, hashlib.sha256).hexdigest()


def check_csrf(request: Request, sent: str | None) -> None:
    """Refuse a form post whose token is missing or wrong, or that came from another origin.

    Raises:
        PermissionDeniedError: the post is forged (or its page is stale: reload it).
    """
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if origin.split("://", 1)[-1] != host:
            raise PermissionDeniedError(f"a form from {origin} may not post here")
    if not getattr(request.state, "session", None) and not request.cookies.get(CSRF_COOKIE):
        raise PermissionDeniedError("the form has no CSRF cookie: reload the page and retry")
    expected = csrf_token(request)
    if not sent or not hmac.compare_digest(sent, expected):
        raise PermissionDeniedError("the form's CSRF token is wrong: reload the page and retry")


def _set_csrf_cookie(request: Request, response: Response) -> None:
    new = getattr(request.state, "new_csrf", None)
    if new:
        response.set_cookie(
            CSRF_COOKIE,
            new,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page from ``template`` with the common context (who, their role, the CSRF token)."""
    from shipyard import __version__

    caller: Identity | None = getattr(request.state, "identity", None)
    context.setdefault("title", "Shipyard")
    html = (
        environment()
        .get_template(template)
        .render(
            request=request,
            me=caller,
            auth=bool(request.app.state.auth),
            csrf=csrf_token(request),
            version=__version__,
            here=request.url.path,
            **context,
        )
    )
    response = HTMLResponse(html, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    _set_csrf_cookie(request, response)
    return response


def error_page(request: Request, status: int, message: str, *, login: bool = False) -> Response:
    """The HTML answer to a failed page: a login redirect, or a page that says what failed."""
    if login or (
        status == 401 and request.app.state.auth and not request.headers.get("authorization")
    ):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)
    titles = {403: "Not allowed", 404: "Not found", 409: "Changed meanwhile", 500: "Failed"}
    return render(
        request,
        "error.html",
        status=status,
        title=titles.get(status, "Cannot do that"),
        status_code=status,
        message=message,
    )


def wants_page(request: Request) -> bool:
    """Whether a failed request should be answered with an HTML page (not JSON)."""
    if getattr(request.state, "page", False):
        return True
    path = request.url.path
    if path.startswith(("/api/", "/health", "/metrics", "/static/")):
        return False
    return "text/html" in request.headers.get("accept", "")


def fragment(request: Request) -> bool:
    """Whether htmx asked for a part of a page (not when it restores a page from history,
    which needs the whole page)."""
    headers = request.headers
    return bool(headers.get("hx-request")) and not headers.get("hx-history-restore-request")


def link(path: str, **query: object) -> str:
    """A URL path with its query, leaving out empty values."""
    kept = {k: v for k, v in query.items() if v not in (None, "", ())}
    return quote(path) + (f"?{urlencode(kept, doseq=True)}" if kept else "")


def plain(message: str) -> Markup:
    return Markup(escape(message))  # noqa: S704 - escaped just above
