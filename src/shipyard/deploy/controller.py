"""The rollout controller: looks at each canary every few seconds and acts on the analysis.

It runs inside the model server (one machine) or as ``shipyard deploy controller`` (several
servers sharing one store). Only one controller acts on a deployment at a time: each look
first takes (or renews) a lease in the store, which lapses ``lease_seconds`` after its holder
stops renewing it (a dead controller is taken over). A look that loses a race with a person's
change (the deployment's revision moved) does nothing and the next look starts afresh.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from shipyard.deploy.analysis import CanarySpec, Decision, Labelled, Snapshot, analyse
from shipyard.deploy.service import BASELINE, CANARY, CONTROLLER, Deployments
from shipyard.entities import Deployment, DeploymentState, Strategy
from shipyard.errors import ConflictError, ShipyardError
from shipyard.store import Backend

__all__ = ["Controller"]

log = logging.getLogger(__name__)


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Controller:
    """Looks at canaries and acts.

    Args:
        backend: the metadata store.
        names: the deployments to look after (None: every one in progress).
        look_seconds: time between looks.
        lease_seconds: how long a look's lease lasts without renewal.
        on_decision: called with each deployment and decision that changed something.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        names: list[str] | None = None,
        look_seconds: float = 2.0,
        lease_seconds: float = 15.0,
        on_decision: Callable[[Deployment, Decision], None] | None = None,
        home: str | Path | None = None,
    ) -> None:
        self.backend = backend
        self.names = names
        self.look_seconds = look_seconds
        self.lease_ms = int(lease_seconds * 1000)
        self.holder = _holder()
        self.deployments = Deployments(backend, CONTROLLER, home=home)
        self.on_decision = on_decision
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def look(self, name: str, now_ms: int | None = None) -> Decision | None:
        """One look at a deployment: None when there is nothing to do (not progressing,
        another controller holds it, or it changed under us)."""
        deployment = self.backend.get_deployment(name)
        if deployment.state is not DeploymentState.PROGRESSING:
            return None
        if deployment.strategy is not Strategy.CANARY:
            return None
        if not self.backend.acquire_lease(f"deployment:{name}", self.holder, self.lease_ms):
            return None
        baseline, canary = deployment.route(BASELINE), deployment.route(CANARY)
        if baseline is None or canary is None:
            return None
        by_key = {(s.route, s.version): s for s in self.backend.get_route_stats(name)}
        spec = CanarySpec.from_dict(deployment.spec.get("canary", {}))
        labelled = None
        if spec.metric is not None:
            outcomes = self.deployments.labelled_outcomes(
                deployment, int(deployment.analysis.get("step_started", 0))
            )
            labelled = Labelled(
                outcomes.get(baseline.name, (0, 0)), outcomes.get(canary.name, (0, 0))
            )
        decision = analyse(
            spec,
            deployment.analysis,
            Snapshot.of(by_key.get((baseline.name, baseline.version))),
            Snapshot.of(by_key.get((canary.name, canary.version))),
            now_ms if now_ms is not None else time.time_ns() // 1_000_000,
            labelled,
        )
        try:
            changed = self.deployments.apply(deployment, decision)
        except ConflictError:
            return None
        if decision.action != "wait":
            log.info("deployment %s: %s: %s", name, decision.action, decision.reason)
            if self.on_decision is not None:
                self.on_decision(changed, decision)
        return decision

    def tick(self) -> dict[str, Decision]:
        """One look at every deployment in scope; returns what was decided."""
        names = self.names
        if names is None:
            names = [
                d.name
                for d in self.backend.list_deployments()
                if d.state is DeploymentState.PROGRESSING
            ]
        decided = {}
        for name in names:
            try:
                decision = self.look(name)
            except ShipyardError as exc:
                log.warning("deployment %s: %s", name, exc)
                continue
            except Exception:  # one deployment's trouble must not stop the others' looks
                log.exception("deployment %s: the look failed", name)
                continue
            if decision is not None:
                decided[name] = decision
        return decided

    def run(self) -> None:
        """Look every ``look_seconds`` until :meth:`stop`."""
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the store unreachable for a moment: look again later
                log.exception("rollout controller look failed")
            self._stop.wait(self.look_seconds)
        for name in self.names or []:
            try:
                self.backend.release_lease(f"deployment:{name}", self.holder)
            except Exception:  # noqa: S110 - it lapses on its own
                pass

    def start(self) -> None:
        """Run in a daemon thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="shipyard-controller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
