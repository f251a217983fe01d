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

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.serving.protocols import (
    INFERENCE_HEADER,
    RequestError,
    parse_csv,
    parse_kserve_v1,
    parse_mlflow,
    parse_v2,
    read_json,
    split_binary_body,
    v2_binary_output,
    v2_output,
)

if TYPE_CHECKING:
    from shipyard.serving.app import ModelServer
    from shipyard.serving.deployment import Chosen
    from shipyard.serving.models import ServedModel

__all__ = ["MODEL_QUERY", "REQUEST_ID_HEADER", "ClientDisconnected", "ServingApp", "read_body"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Parsed = tuple[Any, tuple[str, ...], str | None, frozenset[str]]
"""A request read: its input, the outputs asked for, the id it gave and the outputs to answer
as binary tensor data (OIP v2)."""
Parser = Callable[["ServedModel", bytes, dict[bytes, bytes]], Parsed]

REQUEST_ID_HEADER = "x-request-id"
MODEL_QUERY = "model"
"""``/invocations?model=NAME`` picks one of several served models."""
INLINE_BODY_BYTES = 64 * 1024
"""Larger bodies are parsed and checked in a thread, so the event loop keeps answering."""
_INFERENCE_HEADER = INFERENCE_HEADER.encode()
_NO_ROUTE = ("", "", "")
"""The route labels (deployment, route, mode) of a model served by reference."""
_NO_BINARY: frozenset[str] = frozenset()


class ClientDisconnected(Exception):
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


def _listed(values: Any) -> Any:
    """Predictions as JSON-ready lists (arrays, Series, DataFrames of a pyfunc model)."""
    to_dict = getattr(values, "to_dict", None)
    if to_dict is not None and hasattr(values, "columns"):
        return to_dict("records")
    tolist = getattr(values, "tolist", None)
    return tolist() if callable(tolist) else list(values)


def _parse_v2(served: ServedModel, body: bytes, headers: dict[bytes, bytes]) -> Parsed:
    header_length = headers.get(_INFERENCE_HEADER)
    if header_length is None:
        parsed = parse_v2(read_json(body), served.model.signature)
    else:
        header, tensors = split_binary_body(body, header_length)
        parsed = parse_v2(read_json(header), served.model.signature, tensors)
    return parsed.data, parsed.outputs, parsed.id, parsed.binary_outputs


def _parse_mlflow(served: ServedModel, body: bytes, headers: dict[bytes, bytes]) -> Parsed:
    content_type = headers.get(b"content-type", b"application/json").split(b";")[0].strip()
    content_type = content_type.lower()
    if content_type == b"text/csv":
        return parse_csv(body), ("predict",), None, _NO_BINARY
    if content_type in (b"application/json", b""):
        uniform = served.plan.dtype is not None
        data = parse_mlflow(read_json(body), served.model.signature, uniform)
        return data, ("predict",), None, _NO_BINARY
    raise RequestError(
        "content-type",
        f"content type {content_type.decode('latin-1')!r} is not supported: "
        "use application/json or text/csv",
        status=415,
    )


def _parse_kserve(served: ServedModel, body: bytes, headers: dict[bytes, bytes]) -> Parsed:
    uniform = served.plan.dtype is not None
    data = parse_kserve_v1(read_json(body), served.model.signature, uniform)
    return data, ("predict",), None, _NO_BINARY


_PARSERS: dict[str, Parser] = {"v2": _parse_v2, "mlflow": _parse_mlflow, "kserve-v1": _parse_kserve}


def _prepare(
    server: ModelServer,
    served: ServedModel,
    parse: Parser,
    body: bytes,
    headers: dict[bytes, bytes],
) -> Parsed:
    """Parse a body and check it against the model (on the event loop, or in a thread)."""
    data, outputs, given_id, binary = parse(served, body, headers)
    return server.prepare(served, data, outputs), outputs, given_id, binary


def _reply(
    protocol: str,
    served: ServedModel,
    results: dict[str, Any],
    reply_id: str,
    binary: frozenset[str],
) -> tuple[bytes, int | None]:
    """The answer's body, and the length of its JSON when binary tensor data follows it."""
    if protocol != "v2":
        return dump_json({"predictions": _listed(results["predict"])}), None
    answer: dict[str, Any] = {
        "model_name": served.name,
        "model_version": served.version,
        "id": reply_id,
    }
    if not binary:
        answer["outputs"] = [v2_output(name, values) for name, values in results.items()]
        return dump_json(answer), None
    outputs = []
    tensors = []
    for name, values in results.items():
        if name in binary:
            output, raw = v2_binary_output(name, values)
            tensors.append(raw)
        else:
            output = v2_output(name, values)
        outputs.append(output)
    answer["outputs"] = outputs
    header = dump_json(answer)
    return b"".join((header, *tensors)), len(header)


async def read_body(
    receive: Receive, headers: dict[bytes, bytes], limit: int, timeout: float
) -> bytes:
    """The whole request body, refused when it is larger than ``limit`` bytes (413) or has not
    arrived within ``timeout`` seconds (408).

    Raises:
        RequestError: 413 or 408.
        ClientDisconnected: the client went away first.
    """
    length = headers.get(b"content-length", b"")
    if length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    chunks = []
    size = 0
    # A bare timer that cancels this task, not asyncio.timeout(): on the hot path (one small
    # body per request) the context manager's bookkeeping cost a third of the throughput.
    task = asyncio.current_task()
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        if task is not None:
            task.cancel()

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except asyncio.CancelledError:
        if not expired or task is None:
            raise
        task.uncancel()
        raise RequestError(
            "body", f"the request body did not arrive within {timeout:g} s", status=408
        ) from None
    finally:
        timer.cancel()


def _too_large(limit: int) -> RequestError:
    return RequestError(
        "body", f"the request body is larger than the server takes ({limit} bytes)", status=413
    )


async def _send(
    send: Send,
    status: int,
    payload: bytes,
    request_id: str | None = None,
    json_length: int | None = None,
) -> None:
    """Answer; ``json_length``: the length of the JSON that binary tensor data follows."""
    if json_length is None:
        headers = [(b"content-type", b"application/json")]
    else:
        headers = [
            (b"content-type", b"application/octet-stream"),
            (_INFERENCE_HEADER, str(json_length).encode()),
        ]
    headers.append((b"content-length", str(len(payload)).encode()))
    if request_id is not None:
        headers.append((REQUEST_ID_HEADER.encode(), request_id.encode("latin-1")))
    if status in (408, 413):  # the rest of the body may still be on its way: do not wait for it
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def dump_json(value: Any) -> bytes:
    """``value`` as UTF-8 JSON; text that is not valid Unicode (from a model) is escaped."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False).encode()
    except UnicodeEncodeError:
        return json.dumps(value, allow_nan=False).encode()


def _error(message: str) -> bytes:
    return dump_json({"error": message})


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
        settings = server.settings
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id")
        request_id = given.decode("latin-1") if given else uuid.uuid4().hex
        served = None
        route: Chosen | None = None
        results: dict[str, Any] = {}
        status = 200
        json_length = None
        server.metrics.in_flight.inc()
        try:
            body = await read_body(
                receive, headers, settings.max_body_bytes, settings.body_timeout_seconds
            )
            if protocol == "mlflow" and scope.get("query_string"):
                query = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
                chosen = query.get(MODEL_QUERY)
                if chosen is not None and not chosen[-1]:
                    raise RequestError(MODEL_QUERY, "?model= names no model: give its name")
                name = chosen[-1] if chosen else None
            if server.routes is None:
                served = server.model(name, version)
            else:
                served, route = server.pick(name, version, headers)
            parse = _PARSERS[protocol]
            if len(body) > INLINE_BODY_BYTES:
                data, outputs, given_id, binary = await asyncio.to_thread(
                    _prepare, server, served, parse, body, headers
                )
            else:
                data, outputs, given_id, binary = _prepare(server, served, parse, body, headers)
            data, results = await server.score(served, data, outputs)
            reply_id = given_id or request_id
            payload, json_length = _reply(protocol, served, results, reply_id, binary)
        except ClientDisconnected:
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
        await _send(send, status, payload, request_id, json_length)
        model, model_version = (served.name, served.version) if served else ("", "")
        labels = _NO_ROUTE if route is None else route.labels
        server.metrics.observe(model, model_version, protocol, status, seconds, labels)
        if route is not None and server.routes is not None:
            server.routes.record(route, status, seconds, results.get("predict"))
            if status == 200:
                context = (request_id, arrived, protocol)
                server.routes.mirror(route, data, results.get("predict"), context)
        unit = None if route is None else route.unit
        if status == 200 and served is not None:
            server.log_prediction(
                request_id, arrived, served, protocol, data, results, seconds, labels, unit
            )
        else:
            server.log_failure(request_id, arrived, served, protocol, status, seconds, labels, unit)
