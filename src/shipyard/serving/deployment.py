"""A model server that follows a deployment: routes by weight, mirrors to shadows, counts.

:class:`DeploymentRoutes` holds one immutable :class:`RouteTable` (the deployment's routes and
their loaded models). A request reads the table once and keeps it to the end, so a change of
weights or versions (one attribute assignment, after the new models have loaded) never fails
nor mixes a request. Every second or so the table is re-read from the store when the
deployment's revision moved; the counts of each route are written to the store for the
controller; and, unless turned off, a :class:`~shipyard.deploy.controller.Controller` looks
after the deployment from inside this process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.deploy.ab import AbSpec, sticky_point, unit_of
from shipyard.deploy.controller import Controller
from shipyard.deploy.stats import RouteCounter
from shipyard.entities import Deployment, Route, RouteMode, Strategy, Target
from shipyard.errors import InvalidArgumentError
from shipyard.serving.protocols import RequestError

if TYPE_CHECKING:
    from shipyard.entities import ModelVersion
    from shipyard.serving.models import ServedModel
    from shipyard.store import Backend

__all__ = [
    "ROUTE_HEADER",
    "SHADOW_SUFFIX",
    "Chosen",
    "DeploymentRoutes",
    "RouteTable",
    "ShadowSink",
]

log = logging.getLogger(__name__)

ROUTE_HEADER = "x-shipyard-route"
"""A request header naming a route (``canary``) pins the request to it, for debugging; pinned
requests are answered and logged but left out of the rollout's numbers."""
_ROUTE_HEADER = ROUTE_HEADER.encode()
SHADOW_SUFFIX = "@shadow"
"""Shadow answers are logged as model ``NAME@shadow`` (a name no registered model can have),
so the monitoring of ``NAME`` never mixes them with the answers callers got."""
ShadowSink = Callable[["Chosen", Any, Any, float, int, Any], None]
"""Called with each shadow answer: route, input, prediction, seconds, status, context."""


@dataclass(frozen=True, slots=True)
class Chosen:
    """The route a request went to."""

    route: Route
    served: ServedModel
    deployment: str
    pinned: bool = False
    unit: str | None = None
    """A hash of the caller's sticky key (A/B tests): the unit the test assigns and counts."""

    @property
    def labels(self) -> tuple[str, str, str]:
        """``(deployment, route, mode)`` for metrics and the prediction log."""
        return self.deployment, self.route.name, self.route.mode.value


@dataclass(frozen=True)
class RouteTable:
    """A deployment's routes at one revision, with their models loaded."""

    deployment: Deployment
    live: tuple[tuple[float, Route, ServedModel], ...]
    """``(cumulative weight, route, model)`` of each live route with traffic."""
    shadows: tuple[tuple[Route, ServedModel], ...] = ()
    by_name: dict[str, tuple[Route, ServedModel]] = field(default_factory=dict)
    sticky: bytes | None = None
    """The header whose value keeps a caller on one route (A/B tests)."""

    @property
    def stable(self) -> ServedModel:
        entry = self.by_name.get("stable") or next(iter(self.by_name.values()))
        return entry[1]


def _sticky(deployment: Deployment) -> bytes | None:
    if deployment.strategy is not Strategy.AB or "ab" not in deployment.spec:
        return None
    header = AbSpec.from_dict(deployment.spec["ab"]).header
    return header.encode("latin-1") if header else None


def _same_routes(a: Deployment, b: Deployment) -> bool:
    return a.routes == b.routes


class DeploymentRoutes:
    """The routes of one deployment, as this model server answers for them.

    Args:
        name: the deployment.
        backend: the metadata store.
        version_of: ``(model, version)`` to its :class:`ModelVersion`.
        load: a version to the :class:`ServedModel` that answers for it.
        controller: run the rollout controller in this process.
        home: the workspace whose prediction log holds the labelled outcomes (a canary's
            metric rule).
        look_seconds: how often the controller looks.
        stats_seconds: how often route counts are written to the store.
    """

    def __init__(
        self,
        name: str,
        backend: Backend,
        version_of: Callable[[str, int], ModelVersion],
        load: Callable[[ModelVersion], ServedModel],
        *,
        controller: bool = True,
        look_seconds: float = 2.0,
        stats_seconds: float = 1.0,
        mirror_queue: int = 1000,
        on_shadow: ShadowSink | None = None,
        home: str | None = None,
    ) -> None:
        self.deployment_name = name
        self.backend = backend
        self._version_of = version_of
        self._load = load
        self._lock = threading.Lock()
        self.server_id = uuid.uuid4().hex
        self.counter = RouteCounter(name)
        self.stats_seconds = stats_seconds
        self.mirror_queue = mirror_queue
        self.on_shadow = on_shadow
        self._random = random.Random()  # noqa: S311 - traffic splitting, not security
        deployment = backend.get_deployment(name)
        if deployment.target is not Target.ONLINE:
            raise InvalidArgumentError(
                f"deployment {name!r} is a {deployment.target.value} deployment: a model server "
                "serves online deployments (`shipyard deploy ls` shows each one's target)"
            )
        self.table = self._build(deployment, {})
        self.controller = (
            Controller(backend, names=[name], look_seconds=look_seconds, home=home)
            if controller
            else None
        )
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._mirrors: asyncio.Queue[tuple[Chosen, Any, Any, Any]] | None = None
        self._mirror_task: asyncio.Task[None] | None = None
        self._shadow_pool: ThreadPoolExecutor | None = None

    # the holder interface of ModelServer.models ---------------------------------------------

    @property
    def ref(self) -> str:
        return f"deployment:{self.deployment_name}"

    @property
    def name(self) -> str:
        return self.table.deployment.model

    @property
    def current(self) -> ServedModel:
        return self.table.stable

    def refresh(self) -> bool:
        """Re-read the deployment; when its routes changed, load new versions and swap.

        Returns whether the routes changed. A version that fails to load keeps the old table.
        """
        with self._lock:
            deployment = self.backend.get_deployment(self.deployment_name)
            old = self.table
            if deployment.revision == old.deployment.revision:
                return False
            if _same_routes(deployment, old.deployment):
                self.table = RouteTable(
                    deployment, old.live, old.shadows, old.by_name, _sticky(deployment)
                )
                return False
            loaded = {
                (name, r.model, r.version): served for name, (r, served) in old.by_name.items()
            }
            try:
                self.table = self._build(deployment, loaded)
            except Exception:
                log.exception("could not load the routes of deployment %s", deployment.name)
                return False
            log.info(
                "deployment %s now routes %s",
                deployment.name,
                ", ".join(f"{r.name}={r.model_ref}:{r.weight:g}%" for r in deployment.routes),
            )
            return True

    def _build(
        self, deployment: Deployment, loaded: dict[tuple[str, str, int], ServedModel]
    ) -> RouteTable:
        """The route table of ``deployment``; ``loaded``: the models of the table before, by
        route name and version (reused: a version is loaded once).

        Each route gets a :class:`ServedModel` object of its own, even when two routes serve
        one version (stable and baseline): the batcher batches by object, so each route's
        requests are batched and queued as its own traffic — a baseline behaves like the
        canary it is compared with, not like the big stable route.
        """
        versions = {(model, version): served for (_, model, version), served in loaded.items()}
        by_name: dict[str, tuple[Route, ServedModel]] = {}
        taken: set[int] = set()
        for route in deployment.routes:
            served = loaded.get((route.name, route.model, route.version))
            if served is None:
                served = versions.get((route.model, route.version))
                if served is None:
                    served = versions[(route.model, route.version)] = self._load(
                        self._version_of(route.model, route.version)
                    )
            if id(served) in taken:
                served = dataclasses.replace(served)  # the same loaded model, its own batches
            taken.add(id(served))
            by_name[route.name] = (route, served)
        live = []
        total = 0.0
        for route, served in by_name.values():
            if route.mode is RouteMode.LIVE and route.weight > 0:
                total += route.weight
                live.append((total, route, served))
        if not live:
            raise RequestError("deployment", f"deployment {deployment.name!r} has no live route")
        shadows = tuple(
            (r, s) for r, s in by_name.values() if r.mode is RouteMode.SHADOW and r.weight > 0
        )
        return RouteTable(deployment, tuple(live), shadows, by_name, _sticky(deployment))

    # requests --------------------------------------------------------------------------------

    def pick(self, version: str | None, headers: dict[bytes, bytes]) -> Chosen:
        """The route of one request: pinned by the route header or a version in the path,
        else drawn by weight."""
        table = self.table
        name = self.deployment_name
        pinned = headers.get(_ROUTE_HEADER)
        if pinned is not None:
            entry = table.by_name.get(pinned.decode("latin-1"))
            if entry is None:
                raise RequestError(
                    ROUTE_HEADER,
                    f"deployment {name!r} has no route {pinned.decode('latin-1')!r}; routes: "
                    f"{', '.join(table.by_name)}",
                    status=404,
                )
            return Chosen(entry[0], entry[1], name, pinned=True)
        if version is not None:
            for route, served in table.by_name.values():
                if served.version == version:
                    return Chosen(route, served, name, pinned=True)
            raise RequestError(
                "version",
                f"deployment {name!r} serves versions "
                f"{', '.join(s.version for _, s in table.by_name.values())}, not {version!r}",
                status=404,
            )
        live = table.live
        if len(live) == 1:
            return Chosen(live[0][1], live[0][2], name)
        key = headers.get(table.sticky) if table.sticky is not None else None
        unit = None
        if key is not None:  # one caller, one route: across restarts and processes
            text = key.decode("latin-1")
            draw = sticky_point(name, text) / 100 * live[-1][0]
            unit = unit_of(name, text)
        else:  # no sticky key (or none asked for): at random by weight
            draw = self._random.random() * live[-1][0]
        for edge, route, served in live:
            if draw < edge:
                return Chosen(route, served, name, unit=unit)
        return Chosen(live[-1][1], live[-1][2], name, unit=unit)

    def record(self, chosen: Chosen, status: int, seconds: float, predictions: Any) -> None:
        """Count an answered request for its route (pinned requests are not counted)."""
        if chosen.pinned:
            return
        route = chosen.route
        self.counter.record(
            route.name,
            route.model,
            route.version,
            ok=status == 200,
            latency_ms=seconds * 1000,
            predictions=predictions,
        )

    def mirror(self, chosen: Chosen, data: Any, answer: Any, context: Any = None) -> None:
        """Copy an answered request to the shadow routes, off the request path (dropped and
        counted when the mirror queue is full). ``context`` goes to ``on_shadow`` with the
        shadow's answer."""
        shadows = self.table.shadows
        if not shadows or chosen.pinned or answer is None:  # None: probabilities only
            return
        if self._mirrors is None:
            self._mirrors = asyncio.Queue(self.mirror_queue)
            self._mirror_task = asyncio.get_running_loop().create_task(self._mirror_loop())
        for route, served in shadows:
            if route.weight < 100 and self._random.random() * 100 >= route.weight:
                continue
            shadow = Chosen(route, served, self.deployment_name)
            try:
                self._mirrors.put_nowait((shadow, data, answer, context))
            except asyncio.QueueFull:
                self.counter.record_dropped(route.name, route.model, route.version)

    async def _mirror_loop(self) -> None:
        mirrors = self._mirrors
        if mirrors is None:
            return
        loop = asyncio.get_running_loop()
        if self._shadow_pool is None:
            # Its own thread: a slow shadow model never takes the live models' threads.
            self._shadow_pool = ThreadPoolExecutor(1, thread_name_prefix="shipyard-shadow")
        while True:
            shadow, data, answer, context = await mirrors.get()
            try:
                await self._answer_shadow(loop, shadow, data, answer, context)
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad mirror must never stop the others
                log.exception("shadow route %s failed on a mirrored request", shadow.route.name)

    async def _answer_shadow(
        self, loop: asyncio.AbstractEventLoop, shadow: Chosen, data: Any, answer: Any, context: Any
    ) -> None:
        import time

        started = time.perf_counter()
        try:
            predicted = await loop.run_in_executor(
                self._shadow_pool, shadow.served.call, "predict", data
            )
            status = 200
        except Exception:  # the shadow's failure is counted, never the caller's
            predicted, status = None, 500
        seconds = time.perf_counter() - started
        self.record(shadow, status, seconds, predicted)
        if self.on_shadow is not None:
            self.on_shadow(shadow, data, predicted, seconds, status, context)
        if predicted is not None:
            agreed, compared, diff = _compare(answer, predicted)
            route = shadow.route
            self.counter.record_shadow(
                route.name, route.model, route.version, agreed=agreed, compared=compared, diff=diff
            )

    # background work -------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._flusher = threading.Thread(
            target=self._flush_loop, name="shipyard-route-stats", daemon=True
        )
        self._flusher.start()
        if self.controller is not None:
            self.controller.start()

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.stats_seconds):
            try:
                self.refresh()
            except Exception:  # the store unreachable for a moment: keep the routes we have
                log.exception("could not re-read deployment %s", self.deployment_name)
            self.flush()

    def flush(self) -> None:
        """Write this server's counts to the store (when they changed)."""
        if not self.counter.changed:
            return
        try:
            self.backend.record_route_stats(self.server_id, self.counter.snapshot())
        except Exception:  # the store unreachable for a moment: the counts are cumulative
            self.counter.changed = True
            log.exception("could not store the route counts of %s", self.deployment_name)

    def close(self) -> None:
        self._stop.set()
        if self.controller is not None:
            self.controller.stop()
        if self._flusher is not None:
            self._flusher.join(timeout=10)
            self._flusher = None
        if self._mirror_task is not None:  # mirrors still queued are dropped with the server
            self._mirror_task.cancel()
        if self._shadow_pool is not None:
            self._shadow_pool.shutdown(wait=False, cancel_futures=True)
        self._mirrors, self._mirror_task, self._shadow_pool = None, None, None
        self.flush()


def _compare(live: Any, shadow: Any) -> tuple[int, int, float]:
    """Rows where the shadow's prediction equals the live one, rows compared, and the sum of
    absolute differences (numbers only)."""
    import numpy as np

    a = np.asarray(live).reshape(len(live), -1)[:, 0] if len(live) else np.asarray([])
    b = np.asarray(shadow).reshape(len(shadow), -1)[:, 0] if len(shadow) else np.asarray([])
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    agreed = int(np.sum(a == b))
    diff = 0.0
    if a.dtype.kind in "biuf" and b.dtype.kind in "biuf":
        diff = float(np.sum(np.abs(a.astype(np.float64) - b.astype(np.float64))))
    return agreed, n, diff
