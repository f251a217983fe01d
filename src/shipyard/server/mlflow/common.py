"""What every MLflow router shares: MLflow's error shape, request bodies that ignore fields
Shipyard does not model, the roles, and value conversions."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict

from shipyard.entities import Role
from shipyard.errors import InvalidArgumentError, NotFoundError, ShipyardError
from shipyard.server.auth import Identity, identity, role
from shipyard.server.errors import status_of

__all__ = [
    "READ",
    "WRITE",
    "Body",
    "Caller",
    "KeyValue",
    "MlflowRoute",
    "NotSupportedError",
    "mlflow_router",
    "now_ms",
    "number",
    "parse_experiment_id",
]

_CODES = {
    404: "RESOURCE_DOES_NOT_EXIST",
    409: "RESOURCE_ALREADY_EXISTS",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    405: "INVALID_STATE",
    413: "INVALID_PARAMETER_VALUE",
    429: "REQUEST_LIMIT_EXCEEDED",
    503: "TEMPORARILY_UNAVAILABLE",
}


def _error(status: int, message: str) -> JSONResponse:
    code = _CODES.get(status, "INVALID_PARAMETER_VALUE")
    return JSONResponse({"error_code": code, "message": message}, status_code=status)


class MlflowRoute(APIRoute):
    """A route answering errors in MLflow's shape instead of Shipyard's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except ShipyardError as exc:
                status, _ = status_of(exc)
                status = getattr(exc, "status", status)
                if getattr(exc, "retry_after", None) is not None:
                    status = 429
                return _error(status, str(exc))
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()))
                return _error(400, f"{where}: {first.get('msg', 'invalid request')}")

        return answer


class NotSupportedError(InvalidArgumentError):
    """What Shipyard deliberately does not do for anyone (a 405, not a 403: no role helps)."""

    status = 405


class MlflowError(BaseModel):
    """MLflow's error body."""

    error_code: str
    message: str


_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": code, "model": MlflowError} for status, code in _CODES.items()
}
_RESPONSES[400] = {"description": "INVALID_PARAMETER_VALUE", "model": MlflowError}


def mlflow_router(prefix: str = "/api/2.0/mlflow") -> APIRouter:
    """A router whose errors have MLflow's shape (and are declared so in the document)."""
    return APIRouter(prefix=prefix, tags=["mlflow"], route_class=MlflowRoute, responses=_RESPONSES)


READ, WRITE = role(Role.VIEWER), role(Role.MEMBER)
Caller = Annotated[Identity, Depends(identity)]


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # MLflow clients send fields we do not model


class KeyValue(Body):
    key: str
    value: str = ""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def number(value: float) -> float | str:
    """A float as MLflow's JSON writes it (``NaN`` and infinities as strings)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def parse_experiment_id(text: str) -> int:
    """MLflow's string experiment id as Shipyard's integer (an unknown one is a 404)."""
    try:
        number = int(text)
    except ValueError:
        number = -1
    if not 0 <= number < 2**31:
        raise NotFoundError(f"No experiment with id {text!r}")
    return number
