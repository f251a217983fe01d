"""One error shape for every endpoint: ``{"code", "message", "field"}`` with a 4xx status.

Shipyard's own errors map by kind (not found 404, bad argument 400, permission 403, conflict
409, store unavailable 503); a request FastAPI cannot validate is a 422 naming the field; an
unexpected failure is a 500 whose message says nothing of the internals (it is logged).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from shipyard.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConflictError,
    FilterSyntaxError,
    InvalidArgumentError,
    NotFoundError,
    ParamConflictError,
    PermissionDeniedError,
    ShipyardError,
    StoreError,
)

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

__all__ = ["error_body", "error_responses", "install_error_handlers", "status_of"]

log = logging.getLogger(__name__)

_STATUS: tuple[tuple[type[ShipyardError], int, str], ...] = (
    (AuthenticationError, 401, "unauthenticated"),
    (NotFoundError, 404, "not_found"),
    (AlreadyExistsError, 409, "already_exists"),
    (ConflictError, 409, "conflict"),
    (PermissionDeniedError, 403, "permission_denied"),
    (ParamConflictError, 400, "param_conflict"),
    (FilterSyntaxError, 400, "filter_syntax"),
    (InvalidArgumentError, 400, "invalid_argument"),
    (StoreError, 503, "store_unavailable"),
)


def error_responses() -> dict[int | str, dict[str, Any]]:
    """The error statuses every endpoint may answer, for the OpenAPI document."""
    from shipyard.server.schemas import ErrorBody

    return {
        code: {"description": text, "model": ErrorBody}
        for code, text in (
            (400, "A bad argument: `field` names it"),
            (401, "No valid credentials (authentication on)"),
            (403, "The caller's role is too low"),
            (404, "No such object"),
            (409, "It exists, or it changed meanwhile"),
            (422, "The request does not match its schema"),
        )
    }


def status_of(exc: ShipyardError) -> tuple[int, str]:
    for kind, status, code in _STATUS:
        if isinstance(exc, kind):
            return status, code
    return 400, "error"


def error_body(code: str, message: str, field: str | None = None, **details: Any) -> dict[str, Any]:
    """The one error shape; ``details`` add what a client needs to rebuild the error (a
    filter's ``text`` and ``position``)."""
    return {"code": code, "message": message, "field": field, **details}


def install_error_handlers(app: FastAPI) -> None:
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from shipyard.server.ui.pages import LoginRequiredError, error_page, wants_page

    async def shipyard_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ShipyardError)  # noqa: S101 - registered for this type only
        status, code = status_of(exc)
        if wants_page(request):
            login = isinstance(exc, LoginRequiredError)
            return await run_in_threadpool(error_page, request, status, str(exc), login=login)
        headers = {}
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="shipyard"'
        status = getattr(exc, "status", status)  # a kind with a status of its own (413)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            status, code = 429, "too_many_failures"
            headers["Retry-After"] = str(retry_after)
        field = getattr(exc, "field", None)
        details = {}
        if isinstance(exc, FilterSyntaxError):
            details = {"text": exc.text, "position": exc.position}
        return JSONResponse(
            error_body(code, str(exc), field, **details), status_code=status, headers=headers
        )

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        if wants_page(request):
            return await run_in_threadpool(error_page, request, 400, message)
        return JSONResponse(error_body("invalid_request", message, where or None), status_code=422)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        if wants_page(request):
            return error_page(request, 500, "the server failed to answer; its log says why")
        return JSONResponse(
            error_body("internal", "the server failed to answer; the server log says why"),
            status_code=500,
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        if wants_page(request):
            message = "no page here" if exc.status_code == 404 else str(exc.detail)
            return await run_in_threadpool(error_page, request, exc.status_code, message)
        return await http_exception_handler(request, exc)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ShipyardError, shipyard_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Exception, unexpected)
