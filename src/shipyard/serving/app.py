"""The model server: OIP v2, MLflow scoring and KServe v1 on one ASGI app.

:class:`ModelServer` does the work (models, batching, metrics, the prediction log) and knows
nothing of HTTP; :func:`create_app` puts routes in front of it. Run it with
``shipyard serve name@champion`` or any ASGI server::

    uvicorn --factory shipyard.serving.app:create_app_from_env
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError
from shipyard.serving.asgi import ClientDisconnected, ServingApp, read_body
from shipyard.serving.batching import Batcher
from shipyard.serving.metrics import ServerMetrics
from shipyard.serving.models import ModelHolder, ServedModel, load_served, registry_loader
from shipyard.serving.predlog import PredictionLog
from shipyard.serving.protocols import RequestError, read_json

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from shipyard.entities import ModelVersion
    from shipyard.models import LoadedModel
    from shipyard.serving.deployment import Chosen, DeploymentRoutes

__all__ = ["SETTINGS_ENV", "ModelServer", "ServeSettings", "create_app", "create_app_from_env"]

log = logging.getLogger(__name__)

SETTINGS_ENV = "SHIPYARD_SERVE_SETTINGS"
"""Where each worker process of :func:`~shipyard.serving.run_server` finds its settings (JSON)."""


@dataclass
class ServeSettings:
    """What a model server serves and how.

    Attributes:
        refs: models to serve (``name@alias``, ``name@3``, ``name``); the first is the one
            ``/invocations`` answers for unless the request names another.
        home: the workspace (default: ``SHIPYARD_HOME`` or the nearest ``.shipyard``).
        max_batch_size: rows scored together at most; 1 turns adaptive batching off.
        max_batch_wait_ms: how long the first request of a batch waits for others.
        refresh_seconds: how often to re-resolve each reference and hot-swap a moved alias
            (0: never).
        log_predictions: write the prediction log under ``<home>/predictions``.
        log_queue_size: prediction log rows held before new ones are dropped.
        log_flush_seconds: how often the prediction log is written.
        model_threads: model calls that may run at once (each in its own thread).
        max_body_bytes: the largest request body taken (a larger one is answered 413).
        body_timeout_seconds: how long a request body may take to arrive (then 408), so a
            slow or half-sent request cannot hold the server up, nor its shutdown.
        metrics_dir: where worker processes share their metrics (set by
            :func:`~shipyard.serving.run_server` for several workers; None: this process only).
        trusted_pickle: allow pickled models (whose digest matches).
        trusted_code: allow models that import code of their own.
        deployment: serve this deployment's routes (instead of, or besides, ``refs``) and
            follow its changes.
        controller: run the rollout controller for the deployment in this server.
        look_seconds: how often the controller looks at the deployment's numbers.
        shadow_queue_size: requests waiting to be mirrored to shadows before new ones are
            dropped (and counted).
    """

    refs: list[str]
    home: str | None = None
    max_batch_size: int = 64
    max_batch_wait_ms: float = 2.0
    refresh_seconds: float = 30.0
    log_predictions: bool = True
    log_queue_size: int = 100_000
    log_flush_seconds: float = 1.0
    model_threads: int = 2
    max_body_bytes: int = 32 * 2**20
    body_timeout_seconds: float = 30.0
    metrics_dir: str | None = None
    trusted_pickle: bool = False
    trusted_code: bool = False
    deployment: str | None = None
    controller: bool = True
    look_seconds: float = 2.0
    shadow_queue_size: int = 1000

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        return cls(**json.loads(text))


class ModelServer:
    """The models, the batcher, the metrics and the prediction log, without HTTP."""

    def __init__(self, settings: ServeSettings) -> None:
        from shipyard.tracking import open_workspace

        if not settings.refs and not settings.deployment:
            raise InvalidArgumentError(
                "give at least one model to serve, e.g. churn@champion, or --deployment NAME"
            )
        self.settings = settings
        self.metrics = ServerMetrics(settings.metrics_dir)
        self.workspace = open_workspace(settings.home)
        resolve, load = registry_loader(
            self.workspace,
            trusted_pickle=settings.trusted_pickle,
            trusted_code=settings.trusted_code,
        )
        self.models: dict[str, ModelHolder | DeploymentRoutes] = {}
        self.routes: DeploymentRoutes | None = None
        if settings.deployment:
            self.routes = self._follow(settings.deployment, resolve, load)
            self.models[self.routes.name] = self.routes
        for ref in settings.refs:
            holder = ModelHolder(ref, resolve, load, on_load=self._loaded)
            if holder.name in self.models:
                raise InvalidArgumentError(f"{holder.name!r} is given twice")
            self.models[holder.name] = holder
        self.batcher = Batcher(
            max_batch_size=settings.max_batch_size,
            max_wait=settings.max_batch_wait_ms / 1000,
            threads=settings.model_threads,
            on_batch=self.metrics.observe_batch,
            on_queue=self.metrics.set_queue_depth,
        )
        self.log = (
            PredictionLog(
                self.workspace.settings.home,
                max_queue=settings.log_queue_size,
                flush_seconds=settings.log_flush_seconds,
                on_drop=self.metrics.log_dropped.inc,
                on_write=self.metrics.log_written.inc,
                on_error=self.metrics.log_write_errors.inc,
            )
            if settings.log_predictions
            else None
        )
        self.ready = False
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    def _follow(
        self,
        name: str,
        resolve: Callable[[str], ModelVersion],
        load: Callable[[ModelVersion], LoadedModel],
    ) -> DeploymentRoutes:
        from shipyard.serving.deployment import DeploymentRoutes

        return DeploymentRoutes(
            name,
            self.workspace.backend,
            lambda model, version: resolve(f"{model}@{version}"),
            lambda version: load_served(version, load, self._loaded),
            controller=self.settings.controller,
            look_seconds=self.settings.look_seconds,
            mirror_queue=self.settings.shadow_queue_size,
            on_shadow=self._log_shadow,
            home=str(self.workspace.settings.home),
        )

    def _log_shadow(
        self, chosen: Chosen, data: Any, predicted: Any, seconds: float, status: int, context: Any
    ) -> None:
        """Log a shadow's answer under ``NAME@shadow`` (see :data:`SHADOW_SUFFIX`)."""
        from shipyard.serving.deployment import SHADOW_SUFFIX

        if self.log is None or context is None:
            return
        request_id, arrived, protocol = context
        served = chosen.served
        common = {
            "request_id": request_id,
            "timestamp": arrived,
            "model": served.name + SHADOW_SUFFIX,
            "version": served.version,
            "protocol": protocol,
            "latency_ms": seconds * 1000,
            "route": chosen.labels,
        }
        if status != 200:
            self.log.log_failure(status=status, **common)
            return
        self.log.log_prediction(
            inputs=data,
            columns=served.plan.columns,
            types=served.plan.types,
            prediction=predicted,
            **common,
        )

    def pick(
        self, name: str | None, version: str | None, headers: dict[bytes, bytes]
    ) -> tuple[ServedModel, Chosen | None]:
        """The model that answers a request for ``name``, and its deployment route (None
        for a model served by reference)."""
        routes = self.routes
        if routes is None or (name is not None and name != routes.name):
            return self.model(name, version), None
        chosen = routes.pick(version, headers)
        return chosen.served, chosen

    def _loaded(self, served: ServedModel) -> None:
        self.metrics.load_seconds.labels(served.name, served.version).set(served.load_seconds)

    def start(self) -> None:
        """Start the prediction log writer and the alias watcher."""
        if self.log is not None:
            self.log.start()
        if self.routes is not None:
            self.routes.start()
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
        if self.routes is not None:
            self.routes.close()
        self.batcher.close()
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

    def model(self, name: str | None = None, version: str | None = None) -> ServedModel:
        """The model served as ``name`` (the first one when None), at ``version`` if given."""
        holder = self.models.get(name) if name is not None else next(iter(self.models.values()))
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
        return self.model()

    async def predict(
        self, served: ServedModel, data: Any, outputs: tuple[str, ...] = ("predict",)
    ) -> tuple[Any, dict[str, Any]]:
        """Check ``data`` against the signature, then score it (batched).

        Returns the checked input and output name -> values.
        """
        return await self.score(served, self.prepare(served, data, outputs), outputs)

    def prepare(self, served: ServedModel, data: Any, outputs: tuple[str, ...]) -> Any:
        """``data`` checked against the signature (no event loop needed: large input is
        checked in a thread).

        Raises:
            InputMismatchError: the input does not fit the signature.
            RequestError: the model has no ``predict_proba`` and it was asked for.
        """
        if "predict_proba" in outputs and not served.model.has_predict_proba:
            raise RequestError(
                "outputs", f"model {served.name!r} has no predict_proba output", status=400
            )
        return served.plan.check(data)

    async def score(
        self, served: ServedModel, data: Any, outputs: tuple[str, ...] = ("predict",)
    ) -> tuple[Any, dict[str, Any]]:
        """Score input checked by :meth:`prepare` (batched); ``data`` and name -> values."""
        names = tuple(dict.fromkeys(outputs))
        if len(names) == 1:
            return data, {names[0]: await self.batcher.predict(served, names[0], data)}
        values = await asyncio.gather(*(self.batcher.predict(served, n, data) for n in names))
        return data, dict(zip(names, values, strict=True))

    def log_prediction(
        self,
        request_id: str,
        arrived: float,
        served: ServedModel,
        protocol: str,
        data: Any,
        results: dict[str, Any],
        seconds: float,
        route: tuple[str, str, str] = ("", "", ""),
        unit: str | None = None,
    ) -> None:
        """Queue an answered request for the prediction log (``arrived``: ``time.time()``;
        ``route``: its deployment, route and mode; ``unit``: its A/B assignment unit)."""
        if self.log is not None:
            proba = results.get("predict_proba")
            self.log.log_prediction(
                request_id=request_id,
                timestamp=arrived,
                model=served.name,
                version=served.version,
                protocol=protocol,
                inputs=data,
                columns=served.plan.columns,
                types=served.plan.types,
                prediction=results.get("predict"),
                proba=proba,
                classes=served.classes if proba is not None else None,
                latency_ms=seconds * 1000,
                route=route,
                unit=unit,
            )

    def log_failure(
        self,
        request_id: str,
        arrived: float,
        served: ServedModel | None,
        protocol: str,
        status: int,
        seconds: float,
        route: tuple[str, str, str] = ("", "", ""),
        unit: str | None = None,
    ) -> None:
        """Queue a failed request for the prediction log (only when its model is known)."""
        if self.log is not None and served is not None:
            self.log.log_failure(
                request_id=request_id,
                timestamp=arrived,
                model=served.name,
                version=served.version,
                protocol=protocol,
                status=status,
                latency_ms=seconds * 1000,
                route=route,
                unit=unit,
            )


_MAX_ROW = 2**31 - 1
"""Rows are int32 in the log."""


def _finite(label: Any) -> bool:
    """Whether a JSON label holds no NaN or Infinity (which JSON itself cannot hold)."""
    try:
        json.dumps(label, allow_nan=False)
    except ValueError:
        return False
    return True


def _datatype(type_name: str) -> str:
    from shipyard.serving.protocols import V2_DATATYPES

    for key, value in V2_DATATYPES.items():
        if value == type_name:
            return key
    return "BYTES"


def create_app(settings: ServeSettings) -> ServingApp:
    """The model server app for ``settings``; models are loaded before this returns.

    Prediction routes are answered by :class:`~shipyard.serving.asgi.ServingApp` directly;
    metadata, health, metrics and feedback by a small Starlette app behind it.

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

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": server.ready}, status_code=200 if server.ready else 503)

    async def server_metadata(request: Request) -> Response:
        from shipyard import __version__

        return JSONResponse(
            {"name": "shipyard", "version": __version__, "extensions": ["binary_tensor_data"]}
        )

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

    async def ping(request: Request) -> Response:
        return Response("\n", status_code=200 if server.ready else 503)

    async def metrics(request: Request) -> Response:
        body, content_type = server.metrics.render()
        return Response(body, media_type=content_type)

    async def feedback(request: Request) -> Response:
        try:
            raw = await read_body(
                request.receive,
                dict(request.scope["headers"]),
                settings.max_body_bytes,
                settings.body_timeout_seconds,
            )
            body = read_json(raw)
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
                if row is not None and (
                    not isinstance(row, int) or isinstance(row, bool) or not 0 <= row <= _MAX_ROW
                ):
                    raise RequestError(
                        f"{where}row", f"item{where}: 'row' must be an integer 0..{_MAX_ROW}"
                    )
                if not _finite(item["label"]):
                    raise RequestError(
                        f"{where}label",
                        f"item{where}: 'label' must be JSON without NaN or Infinity",
                    )
        except ClientDisconnected:
            return error(400, "the client went away")
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
        Route("/v2/models/{name}/versions/{version}", model_metadata),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready),
        Route("/ping", ping),
        Route("/health", ping),
        Route("/v1/models/{name}", model_ready),
        Route("/metrics", metrics),
        Route("/feedback", feedback, methods=["POST"]),
    ]
    return ServingApp(server, Starlette(routes=routes, lifespan=lifespan))


def create_app_from_env() -> ServingApp:
    """The app for :data:`SETTINGS_ENV` (how each ``--workers`` process gets its settings)."""
    text = os.environ.get(SETTINGS_ENV)
    if not text:
        raise InvalidArgumentError(f"set {SETTINGS_ENV} to the server's settings (JSON)")
    return create_app(ServeSettings.from_json(text))
