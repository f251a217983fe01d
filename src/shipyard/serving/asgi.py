"""The prediction routes as a plain ASGI app, in front of the Starlette app for the rest.

A prediction request costs little else than reading its JSON and scoring it, so the three
prediction routes skip the framework: no routing table, middleware stack or Request object.
Everything else (metadata, health, ``/metrics``, ``/feedback``, the lifespan) goes to Starlette.

=========================================  ===========  ====================================
path (POST)                                protocol     model
=========================================  ===========  ====================================
``/v2/models/{name}[/versions/{v}]/infer``  ``v2``       ``name`` (at version ``v``)
``/invocations[?model=NAME]``               ``mlflow``   ``NAME``, else the first one served
``/v1/models/{name}:predict``               ``kserve-v1`` ``name``
=========================================  ===========  ====================================
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.serving.protocols import (
    RequestError,
    parse_csv,
    parse_kserve_v1,
    parse_mlflow,
    parse_v2,
    v2_output,
)

if TYPE_CHECKING:
    from shipyard.serving.app import ModelServer
    from shipyard.serving.models import ServedModel

__all__ = ["MODEL_QUERY", "REQUEST_ID_HEADER", "ServingApp"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Handler = Callable[
    ["ModelServer", "ServedModel", bytes, dict[bytes, bytes], str],
    Awaitable[tuple[Any, dict[str, Any], Any]],
]

REQUEST_ID_HEADER = "x-request-id"
MODEL_QUERY = "model"
"""``/invocations?model=NAME`` picks one of several served models."""


class _Disconnected(Exception):
    """The client went away before its request body arrived."""


def _route(path: str) -> tuple[str, str | None, str | None] | None:
    """``(protocol, model name, version)`` for a prediction path, else None."""
    if path == "/invocations":
        return "mlflow", None, None
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        name, versions, version = path[11:-6].partition("/versions/")
        if name and "/" not in name and "/" not in version and bool(versions) == bool(version):
            return "v2", name, version or None
        return None
    if path.startswith("/v1/models/") and path.endswith(":predict"):
        name = path[11:-8]
        return ("kserve-v1", name, None) if name and "/" not in name else None
    return None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError("body", f"the request body is not valid JSON: {exc}") from exc


def _listed(values: Any) -> Any:
    """Predictions as JSON-ready lists (arrays, Series, DataFrames of a pyfunc model)."""
    to_dict = getattr(values, "to_dict", None)
    if to_dict is not None and hasattr(values, "columns"):
        return to_dict("records")
    tolist = getattr(values, "tolist", None)
    return tolist() if callable(tolist) else list(values)


async def _v2(
    server: ModelServer, served: ServedModel, body: bytes, headers: dict[bytes, bytes], rid: str
) -> tuple[Any, dict[str, Any], Any]:
    parsed = parse_v2(_json(body), served.model.signature)
    data, results = await server.predict(served, parsed.data, parsed.outputs)
    reply = {
        "model_name": served.name,
        "model_version": served.version,
        "id": parsed.id or rid,
        "outputs": [v2_output(name, values) for name, values in results.items()],
    }
    return data, results, reply


async def _mlflow(
    server: ModelServer, served: ServedModel, body: bytes, headers: dict[bytes, bytes], rid: str
) -> tuple[Any, dict[str, Any], Any]:
    content_type = headers.get(b"content-type", b"application/json").split(b";")[0].strip()
    if content_type == b"text/csv":
        data = parse_csv(body)
    elif content_type in (b"application/json", b""):
        data = parse_mlflow(_json(body), served.model.signature, served.plan.dtype is not None)
    else:
        raise RequestError(
            "content-type",
            f"content type {content_type.decode('latin-1')!r} is not supported: "
            "use application/json or text/csv",
            status=415,
        )
    data, results = await server.predict(served, data)
    return data, results, {"predictions": _listed(results["predict"])}


async def _kserve(
    server: ModelServer, served: ServedModel, body: bytes, headers: dict[bytes, bytes], rid: str
) -> tuple[Any, dict[str, Any], Any]:
    data = parse_kserve_v1(_json(body), served.model.signature, served.plan.dtype is not None)
    data, results = await server.predict(served, data)
    return data, results, {"predictions": _listed(results["predict"])}


_HANDLERS: dict[str, Handler] = {"v2": _v2, "mlflow": _mlflow, "kserve-v1": _kserve}


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send(send: Send, status: int, payload: bytes, request_id: str | None = None) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if request_id is not None:
        headers.append((REQUEST_ID_HEADER.encode(), request_id.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _error(message: str) -> bytes:
    return json.dumps({"error": message}, ensure_ascii=False).encode()


class ServingApp:
    """The server's ASGI app: prediction routes here, every other path to ``fallback``.

    Attributes:
        server: the :class:`~shipyard.serving.app.ModelServer` behind the routes.
        state: the fallback app's state (``state.server`` is :attr:`server`).
    """

    def __init__(self, server: ModelServer, fallback: Any) -> None:
        self.server = server
        self.fallback = fallback
        self.state = fallback.state
        self.state.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _route(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            await self.fallback(scope, receive, send)
        elif scope["method"] != "POST":
            await _send(send, 405, _error(f"use POST for {scope['path']}"))
        else:
            await self._answer(scope, receive, send, *route)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        protocol: str,
        name: str | None,
        version: str | None,
    ) -> None:
        """Run one prediction request: ids, timing, metrics, errors and the log."""
        started = time.perf_counter()
        arrived = time.time()
        server = self.server
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id")
        request_id = given.decode("latin-1") if given else uuid.uuid4().hex
        served = None
        status = 200
        server.metrics.in_flight.inc()
        try:
            body = await _read_body(receive)
            if protocol == "mlflow" and scope.get("query_string"):
                chosen = parse_qs(scope["query_string"].decode("latin-1")).get(MODEL_QUERY)
                name = chosen[-1] if chosen else None
            served = server.model(name, version)
            data, results, reply = await _HANDLERS[protocol](
                server, served, body, headers, request_id
            )
            payload = json.dumps(reply, ensure_ascii=False, allow_nan=False).encode()
        except _Disconnected:
            return
        except RequestError as exc:
            status = exc.status
            payload = _error(str(exc))
        except (InvalidArgumentError, NotFoundError) as exc:  # InputMismatchError among them
            status = 404 if isinstance(exc, NotFoundError) else 400
            payload = _error(str(exc))
        except Exception as exc:
            log.exception("prediction failed")
            status = 500
            payload = _error(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            server.metrics.in_flight.dec()
        seconds = time.perf_counter() - started
        await _send(send, status, payload, request_id)
        model, model_version = (served.name, served.version) if served else ("", "")
        server.metrics.observe(model, model_version, protocol, status, seconds)
        if status == 200:
            server.log_prediction(request_id, arrived, served, protocol, data, results, seconds)  # type: ignore[arg-type]
        else:
            server.log_failure(request_id, arrived, served, protocol, status, seconds)
