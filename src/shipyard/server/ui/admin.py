"""Pages for administration: the audit log (and a check of its hash chain), users and their
roles, and API tokens (everyone's own; every user's for an admin).

Changes go through the services the API and the CLI use — :meth:`Registry.set_user` for a
role, :func:`~shipyard.registry.tokens.revoke_token` for a token — so the same rules hold
and the store writes each change with its audit entry. A token's secret is never stored, so
no page can show it; a web session is a token named ``web session``.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shipyard.entities import ApiToken, AuditEntry, Role
from shipyard.registry import Registry
from shipyard.server.auth import Identity
from shipyard.server.ui.pages import SESSION_COOKIE, check_csrf, link, page_identity, render, viewer

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_Caller = Annotated[Identity, Depends(page_identity)]
_Admin = Annotated[Identity, Depends(viewer(Role.ADMIN))]

AUDIT_PER_PAGE = 50
TOKENS_PER_PAGE = 50
WEB_SESSION = "web session"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# the audit log ------------------------------------------------------------------------------


def _audit_page(
    backend: Any, target: str | None, before: int | None, per: int
) -> tuple[list[AuditEntry], int | None]:
    """The ``per`` newest entries (of ``target``) older than entry ``before`` (one more, to
    tell whether there is a next page), and the newest entry's number (None: the log is
    empty)."""
    newest = backend.list_audit(limit=1)
    head = newest[0].seq if newest else None
    if head is None:
        return [], None
    return backend.list_audit(limit=per + 1, target=target, before=before), head


@router.get("/audit", response_class=HTMLResponse)
def audit(
    request: Request,
    caller: _Admin,
    target: Annotated[str, Query(max_length=300)] = "",
    before: Annotated[int | None, Query(ge=1, lt=2**62)] = None,
    verify: bool = False,
) -> HTMLResponse:
    backend = request.app.state.workspace.backend
    entries, head = _audit_page(backend, target or None, before, AUDIT_PER_PAGE)
    more = len(entries) > AUDIT_PER_PAGE
    entries = entries[:AUDIT_PER_PAGE]
    problems = Registry(backend, caller.user).audit_problems() if verify else None
    return render(
        request,
        "audit.html",
        title="Audit log",
        entries=entries,
        head=head,
        target=target,
        before=before,
        next_before=entries[-1].seq if more else None,
        verified=verify,
        problems=problems,
    )


# users and roles ----------------------------------------------------------------------------


@router.get("/users", response_class=HTMLResponse)
def users(
    request: Request,
    caller: _Admin,
    changed: Annotated[str, Query(max_length=256)] = "",
) -> HTMLResponse:
    backend = request.app.state.workspace.backend
    found = Registry(backend, caller.user).users()
    changed_user = backend.get_user(changed) if changed else None
    return render(
        request,
        "users.html",
        title="Users",
        users=found,
        roles=[r.value for r in Role],
        admins=sum(u.role is Role.ADMIN for u in found),
        changed=changed_user,
    )


@router.post("/users")
def set_role(
    request: Request,
    caller: _Admin,
    user: Annotated[str, Form(max_length=256)] = "",
    role: Annotated[str, Form(max_length=32)] = "",
    csrf: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Give ``user`` a role (a new user too), as ``shipyard users add`` and
    ``PUT /api/v1/users/{user}`` do."""
    check_csrf(request, csrf)
    backend = request.app.state.workspace.backend
    registry = Registry(backend, caller.user)
    name = user.strip()
    registry.set_user(name, role)  # refuses to demote the last admin
    if name == caller.user and role != Role.ADMIN.value:
        return RedirectResponse("/", status_code=303)  # no longer an admin: /users is closed
    return RedirectResponse(link("/users", changed=name), status_code=303)


# API tokens ---------------------------------------------------------------------------------


def _state(token: ApiToken, now: int) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and now >= token.expires_at:
        return "expired"
    return "active"


@router.get("/tokens", response_class=HTMLResponse)
def tokens(
    request: Request,
    caller: _Caller,
    user: Annotated[str, Query(max_length=256)] = "",
    ended: bool = False,
    page: Annotated[int, Query(ge=1, le=10**7)] = 1,
    revoked: Annotated[str, Query(max_length=32)] = "",
) -> HTMLResponse:
    from shipyard.registry.tokens import list_tokens

    backend = request.app.state.workspace.backend
    admin = caller.role is Role.ADMIN
    now = _now_ms()
    found = list_tokens(backend, caller.user, everyone=admin)
    if admin and user:
        found = [t for t in found if t.user == user]
    rows = [(t, _state(t, now)) for t in found]
    if not ended:
        rows = [(t, state) for t, state in rows if state == "active"]
    rows.sort(key=lambda row: (row[0].created_at, row[0].token_id), reverse=True)
    start = (page - 1) * TOKENS_PER_PAGE
    return render(
        request,
        "tokens.html",
        title="API tokens",
        rows=rows[start : start + TOKENS_PER_PAGE],
        total=len(rows),
        admin=admin,
        user=user,
        ended=ended,
        page=page,
        more=len(rows) > start + TOKENS_PER_PAGE,
        revoked=revoked,
        session=WEB_SESSION,
    )


@router.post("/tokens/{token_id}/revoke")
def revoke(
    request: Request,
    caller: _Caller,
    token_id: Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")],
    csrf: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Revoke a token: one's own, or anyone's for an admin (``revoke_token``'s rule)."""
    from shipyard.registry.tokens import revoke_token

    check_csrf(request, csrf)
    revoke_token(request.app.state.workspace.backend, caller.user, token_id)
    if token_id == caller.token_id and getattr(request.state, "session", None):
        response = RedirectResponse("/login", status_code=303)  # this very session ended
        response.delete_cookie(SESSION_COOKIE)
        return response
    return RedirectResponse(link("/tokens", revoked=token_id), status_code=303)
