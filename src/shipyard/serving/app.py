"""The model server: one small Starlette app speaking OIP v2, MLflow scoring and KServe v1.

:class:`ModelServer` does the work (models, batching, metrics, the prediction log) and knows
nothing of HTTP; :func:`create_app` puts routes in front of it. Run it with
``shipyard serve name@champion`` or any ASGI server::

    uvicorn --factory shipyard.serving.app:create_app_from_env
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.serving.batching import Batcher
from shipyard.serving.metrics import ServerMetrics
from shipyard.serving.models import ModelHolder, ServedModel, registry_loader
from shipyard.serving.predlog import PredictionLog
from shipyard.serving.protocols import (
    RequestError,
    parse_csv,
    parse_kserve_v1,
    parse_mlflow,
    parse_v2,
    v2_output,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["SETTINGS_ENV", "ModelServer", "ServeSettings", "create_app", "create_app_from_env"]

log = logging.getLogger(__name__)

SETTINGS_ENV = "SHIPYARD_SERVE_SETTINGS"
"""Where ``shipyard serve --workers N`` hands its settings (JSON) to each worker process."""
REQUEST_ID_HEADER = "x-request-id"


@dataclass
class ServeSettings:
    """What a model server serves and how.

    Attributes:
        refs: models to serve (``name@alias``, ``name@3``, ``name``); the first also answers
            ``/invocations``.
        home: the workspace (default: ``SHIPYARD_HOME`` or the nearest ``.shipyard``).
        max_batch_size: rows scored together at most; 1 turns adaptive batching off.
        max_batch_wait_ms: how long the first request of a batch waits for others.
        refresh_seconds: how often to re-resolve each reference and hot-swap a moved alias
            (0: never).
        log_predictions: write the prediction log under ``<home>/predictions``.
        log_queue_size: prediction log records held before new ones are dropped.
        log_flush_seconds: how often the prediction log is written.
        trusted_pickle: allow pickled models (whose digest matches).
        trusted_code: allow models that import code of their own.
    """

    refs: list[str]
    home: str | None = None
    max_batch_size: int = 64
    max_batch_wait_ms: float = 2.0
    refresh_seconds: float = 30.0
    log_predictions: bool = True
    log_queue_size: int = 100_000
    log_flush_seconds: float = 1.0
    trusted_pickle: bool = False
    trusted_code: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        return cls(**json.loads(text))


class ModelServer:
    """The models, the batcher, the metrics and the prediction log, without HTTP."""

    def __init__(self, settings: ServeSettings) -> None:
        from shipyard.tracking import open_workspace

        if not settings.refs:
            raise InvalidArgumentError("give at least one model to serve, e.g. churn@champion")
        self.settings = settings
        self.metrics = ServerMetrics()
        self.workspace = open_workspace(settings.home)
        resolve, load = registry_loader(
            self.workspace,
            trusted_pickle=settings.trusted_pickle,
            trusted_code=settings.trusted_code,
        )
        self.models: dict[str, ModelHolder] = {}
        for ref in settings.refs:
            holder = ModelHolder(ref, resolve, load, on_load=self._loaded)
            if holder.name in self.models:
                raise InvalidArgumentError(f"{holder.name!r} is given twice")
            self.models[holder.name] = holder
        self.batcher = Batcher(
            max_batch_size=settings.max_batch_size,
            max_wait=settings.max_batch_wait_ms / 1000,
            on_batch=lambda name, rows: self.metrics.batch_size.labels(name).observe(rows),
            on_queue=lambda name, n: self.metrics.queue_depth.labels(name).set(n),
        )
        self.log = (
            PredictionLog(
                self.workspace.settings.home,
                max_queue=settings.log_queue_size,
                flush_seconds=settings.log_flush_seconds,
                on_drop=self.metrics.log_dropped.inc,
                on_write=self.metrics.log_written.inc,
            )
            if settings.log_predictions
            else None
        )
        self.ready = False
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    def _loaded(self, served: ServedModel) -> None:
        self.metrics.load_seconds.labels(served.name, served.version).set(served.load_seconds)

    def start(self) -> None:
        """Start the prediction log writer and the alias watcher."""
        if self.log is not None:
            self.log.start()
        if self.settings.refresh_seconds > 0 and self._refresher is None:
            self._stop.clear()
            self._refresher = threading.Thread(
                target=self._watch, name="shipyard-model-refresh", daemon=True
            )
            self._refresher.start()
        self.ready = True

    def close(self) -> None:
        """Stop watching and write every logged prediction (graceful shutdown)."""
        self.ready = False
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=10)
            self._refresher = None
        if self.log is not None:
            self.log.close()

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.refresh_seconds):
            self.refresh()

    def refresh(self) -> list[str]:
        """Re-resolve every reference now; returns the names whose model was swapped."""
        swapped = []
        for name, holder in self.models.items():
            try:
                if holder.refresh():
                    swapped.append(name)
            except Exception:  # the registry unreachable for a moment: keep serving
                log.exception("could not re-resolve %s", holder.ref)
        return swapped

    def model(self, name: str, version: str | None = None) -> ServedModel:
        """The model served as ``name`` (and ``version``, when given)."""
        holder = self.models.get(name)
        if holder is None:
            raise RequestError(
                "model",
                f"no model {name!r} here; serving {', '.join(sorted(self.models))}",
                status=404,
            )
        served = holder.current
        if version is not None and version != served.version:
            raise RequestError(
                "version",
                f"model {name!r} is served at version {served.version}, not {version!r}",
                status=404,
            )
        return served

    @property
    def default(self) -> ServedModel:
        return next(iter(self.models.values())).current

    async def predict(
        self, served: ServedModel, data: Any, outputs: tuple[str, ...] = ("predict",)
    ) -> dict[str, Any]:
        """Check ``data`` against the signature, then score it (batched); name -> values."""
        from shipyard.models import enforce_signature

        signature = served.model.signature
        if signature is not None:
            data = enforce_signature(data, signature)
        if "predict_proba" in outputs and not served.model.has_predict_proba:
            raise RequestError(
                "outputs", f"model {served.name!r} has no predict_proba output", status=400
            )
        results = {}
        for output in dict.fromkeys(outputs):
            results[output] = await self.batcher.predict(served, output, data)
        return results

    def log_prediction(
        self,
        request_id: str,
        served: ServedModel,
        protocol: str,
        data: Any,
        results: dict[str, Any],
        seconds: float,
    ) -> None:
        if self.log is not None:
            self.log.log_prediction(
                request_id=request_id,
                timestamp=datetime.now(UTC),
                model=served.name,
                version=served.version,
                protocol=protocol,
                inputs=data,
                outputs=results,
                latency_ms=seconds * 1000,
            )


def _listed(values: Any) -> Any:
    """Predictions as JSON-ready lists (arrays, Series, DataFrames of a pyfunc model)."""
    import pandas as pd

    if isinstance(values, pd.DataFrame):
        return values.to_dict("records")
    tolist = getattr(values, "tolist", None)
    return tolist() if callable(tolist) else list(values)


def _datatype(type_name: str) -> str:
    from shipyard.serving.protocols import V2_DATATYPES

    for key, value in V2_DATATYPES.items():
        if value == type_name:
            return key
    return "BYTES"


def create_app(settings: ServeSettings) -> Starlette:
    """The model server app for ``settings``; models are loaded before this returns.

    Raises:
        NotFoundError: a reference names no model, version or alias.
        InvalidArgumentError: no references, or the same model twice.
    """
    try:
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "the model server needs the 'serve' extra: pip install 'shipyard[serve]'"
        ) from exc

    server = ModelServer(settings)

    def error(status: int, message: str) -> Response:
        return JSONResponse({"error": message}, status_code=status)

    async def read_json(request: Request) -> Any:
        body = await request.body()
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RequestError("body", f"the request body is not valid JSON: {exc}") from exc

    async def answer(request: Request, protocol: str, handle: Any) -> Response:
        """Run one prediction request: ids, timing, metrics, errors and the log."""
        started = time.perf_counter()
        request_id = request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        request.state.request_id = request_id
        seen: list[ServedModel] = []  # the handler adds the model as soon as it knows it
        status = 200
        server.metrics.in_flight.inc()
        try:
            data, results, body = await handle(request, seen)
            response: Response = JSONResponse(body)
        except RequestError as exc:
            status = exc.status
            response = error(status, str(exc))
        except (InvalidArgumentError, NotFoundError) as exc:  # InputMismatchError among them
            status = 404 if isinstance(exc, NotFoundError) else 400
            response = error(status, str(exc))
        except Exception as exc:
            log.exception("prediction failed")
            status = 500
            response = error(500, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            server.metrics.in_flight.dec()
        seconds = time.perf_counter() - started
        name, version = (seen[0].name, seen[0].version) if seen else ("", "")
        server.metrics.observe(name, version, protocol, status, seconds)
        if status == 200:
            server.log_prediction(request_id, seen[0], protocol, data, results, seconds)
        response.headers[REQUEST_ID_HEADER] = request_id
        return response

    # --- Open Inference Protocol v2 -------------------------------------------------------

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": server.ready}, status_code=200 if server.ready else 503)

    async def server_metadata(request: Request) -> Response:
        from shipyard import __version__

        return JSONResponse({"name": "shipyard", "version": __version__, "extensions": []})

    def lookup(request: Request) -> ServedModel:
        return server.model(request.path_params["name"], request.path_params.get("version"))

    async def model_metadata(request: Request) -> Response:
        try:
            served = lookup(request)
        except RequestError as exc:
            return error(exc.status, str(exc))
        signature = served.model.signature
        specs = signature.inputs if signature else ()
        columns = bool(signature) and not signature.is_tensor  # type: ignore[union-attr]
        outputs = ["predict"] + (["predict_proba"] if served.model.has_predict_proba else [])
        return JSONResponse(
            {
                "name": served.name,
                "versions": [served.version],
                "platform": f"shipyard-{served.model.meta.flavor}",
                "inputs": [
                    {
                        "name": spec.name,
                        "datatype": _datatype(spec.type),
                        "shape": [-1] if columns else list(spec.shape or [-1]),
                    }
                    for spec in specs
                ],
                "outputs": [{"name": n, "datatype": "FP64", "shape": [-1]} for n in outputs],
                "parameters": {"digest": served.digest, "ref": server.models[served.name].ref},
            }
        )

    async def model_ready(request: Request) -> Response:
        try:
            served = lookup(request)
        except RequestError as exc:
            return error(exc.status, str(exc))
        return JSONResponse({"name": served.name, "ready": server.ready})

    async def v2_infer(request: Request, seen: list[ServedModel]) -> Any:
        served = lookup(request)
        seen.append(served)
        body = await read_json(request)
        parsed = parse_v2(body, served.model.signature)
        results = await server.predict(served, parsed.data, parsed.outputs)
        reply = {
            "model_name": served.name,
            "model_version": served.version,
            "id": parsed.id or request.state.request_id,
            "outputs": [v2_output(name, values) for name, values in results.items()],
        }
        return parsed.data, results, reply

    async def infer(request: Request) -> Response:
        return await answer(request, "v2", v2_infer)

    # --- MLflow scoring -------------------------------------------------------------------

    async def mlflow_invocations(request: Request, seen: list[ServedModel]) -> Any:
        served = server.default
        seen.append(served)
        content_type = request.headers.get("content-type", "application/json").split(";")[0]
        if content_type == "text/csv":
            data = parse_csv(await request.body())
        elif content_type in ("application/json", ""):
            data = parse_mlflow(await read_json(request), served.model.signature)
        else:
            raise RequestError(
                "content-type",
                f"content type {content_type!r} is not supported: use application/json or text/csv",
                status=415,
            )
        results = await server.predict(served, data)
        return data, results, {"predictions": _listed(results["predict"])}

    async def invocations(request: Request) -> Response:
        return await answer(request, "mlflow", mlflow_invocations)

    async def ping(request: Request) -> Response:
        return Response("\n", status_code=200 if server.ready else 503)

    # --- KServe v1 ------------------------------------------------------------------------

    async def kserve_predict(request: Request, seen: list[ServedModel]) -> Any:
        served = lookup(request)
        seen.append(served)
        data = parse_kserve_v1(await read_json(request), served.model.signature)
        results = await server.predict(served, data)
        return data, results, {"predictions": _listed(results["predict"])}

    async def v1_predict(request: Request) -> Response:
        return await answer(request, "kserve-v1", kserve_predict)

    async def v1_model(request: Request) -> Response:
        try:
            served = lookup(request)
        except RequestError as exc:
            return error(exc.status, str(exc))
        return JSONResponse({"name": served.name, "ready": server.ready})

    # --- operations -----------------------------------------------------------------------

    async def metrics(request: Request) -> Response:
        body, content_type = server.metrics.render()
        return Response(body, media_type=content_type)

    async def feedback(request: Request) -> Response:
        try:
            body = await read_json(request)
            items = body if isinstance(body, list) else [body]
            if not items:
                raise RequestError("body", 'give at least one {"request_id", "label"}')
            for i, item in enumerate(items):
                where = f"[{i}]" if isinstance(body, list) else ""
                if not isinstance(item, dict) or not isinstance(item.get("request_id"), str):
                    raise RequestError(
                        f"{where}request_id", f"item{where} needs a 'request_id' (a string)"
                    )
                if "label" not in item:
                    raise RequestError(f"{where}label", f"item{where} needs a 'label'")
                row = item.get("row")
                if row is not None and (not isinstance(row, int) or isinstance(row, bool)):
                    raise RequestError(f"{where}row", f"item{where}: 'row' must be an integer")
        except RequestError as exc:
            return error(exc.status, str(exc))
        if server.log is None:
            return error(409, "this server does not keep a prediction log")
        accepted = sum(
            server.log.log_feedback(
                request_id=item["request_id"], label=item["label"], row=item.get("row")
            )
            for item in items
        )
        return JSONResponse({"accepted": accepted, "dropped": len(items) - accepted})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        server.start()
        try:
            yield
        finally:
            server.close()

    routes = [
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route("/v2/models/{name}", model_metadata),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}", model_metadata),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready),
        Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/ping", ping),
        Route("/health", ping),
        Route("/v1/models/{name}:predict", v1_predict, methods=["POST"]),
        Route("/v1/models/{name}", v1_model),
        Route("/metrics", metrics),
        Route("/feedback", feedback, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.server = server
    return app


def create_app_from_env() -> Starlette:
    """The app for :data:`SETTINGS_ENV` (how each ``--workers`` process gets its settings)."""
    text = os.environ.get(SETTINGS_ENV)
    if not text:
        raise InvalidArgumentError(f"set {SETTINGS_ENV} to the server's settings (JSON)")
    return create_app(ServeSettings.from_json(text))
