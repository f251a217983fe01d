"""The continuous-training loop: triggers → pipeline → gate → approval → rollout.

Each pass (``tick``) does two things for every automation of the policy:

1. **Detect.** Every trigger reports what happened since the automation was armed (its first
   pass); each finding becomes a trigger event whose id is derived from what fired, added to
   the store only if absent. Two automators, or one after a crash, add one event.
2. **Advance.** Under a lease in the store (one automator per automation at a time; it lapses
   ``lease_seconds`` after its holder stops renewing it, so a dead automator is taken over),
   the event in progress moves on as far as it can without waiting: a pipeline run (its id
   recorded *before* it starts, so a crash resumes that run's work from the step cache
   instead of training twice), the gate, approval, the canary. Waiting for an approver or for
   the canary's verdict is a state, not a blocked process: a later pass, by any automator,
   picks it up.

Only one event per automation is in progress; newer ones wait, and when it finishes only the
newest waiting event starts (the others are recorded as superseded). Rejected and failed
candidates slow the automation down (``limits``: a back-off that doubles, and a cap per
period), so a model that keeps failing its gate does not retrain in a loop.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from shipyard.automation.policy import Automation, AutomationPolicy, DatasetTrigger
from shipyard.automation.triggers import detect
from shipyard.entities import AutomationEvent, AutomationState, DeploymentState, ReviewState
from shipyard.errors import (
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ShipyardError,
)
from shipyard.tracking.workspace import Workspace, open_workspace

__all__ = ["Automator", "TickReport"]

log = logging.getLogger(__name__)

S = AutomationState
_OPEN = [S.WAITING, S.TRAINING, S.GATING, S.AWAITING_APPROVAL, S.ROLLING_OUT]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(slots=True)
class TickReport:
    """What one pass did."""

    detected: list[AutomationEvent] = field(default_factory=list)
    """Trigger events this pass added to the store."""
    changed: list[AutomationEvent] = field(default_factory=list)
    """Every state an event was moved to, in order."""
    busy: list[str] = field(default_factory=list)
    """Automations another automator held the lease of."""
    errors: list[str] = field(default_factory=list)


class Automator:
    """Runs an :class:`AutomationPolicy` against one workspace.

    Args:
        policy: the parsed ``automation.yaml``.
        home: the workspace (default: ``SHIPYARD_HOME`` or the nearest ``.shipyard/``).
        lease_seconds: how long a pass's hold on an automation lasts without renewal.
        executor: the pipeline executor (``inprocess``, ``processes``, ``ray``).
        echo: let pipeline steps print to this terminal.
        on_change: called with each event whenever this automator changes it.
    """

    def __init__(
        self,
        policy: AutomationPolicy,
        *,
        home: str | os.PathLike[str] | None = None,
        lease_seconds: float = 60.0,
        executor: str = "inprocess",
        echo: bool = False,
        on_change: Callable[[AutomationEvent], None] | None = None,
    ) -> None:
        self.policy = policy
        self.workspace: Workspace = open_workspace(home)
        self.backend = self.workspace.backend
        self.user = self.workspace.settings.user
        self.home = self.workspace.settings.home
        self.lease_ms = int(lease_seconds * 1000)
        self.executor = executor
        self.echo = echo
        self.on_change = on_change
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._checked = False
        self._report = TickReport()

    # checks --------------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """What in the policy names something that does not exist (empty: nothing)."""
        from shipyard.pipelines.loading import load_pipeline

        found: list[str] = []
        datasets = {d.name for d in self.backend.list_datasets()}
        deployments = {d.name for d in self.backend.list_deployments()}
        where = self.policy.source
        for a in self.policy.automations:
            try:
                load_pipeline(a.pipeline)
            except ShipyardError as exc:
                found.append(f"{where}: automation {a.name!r}: pipeline {a.pipeline}: {exc}")
            for t in a.triggers:
                if isinstance(t, DatasetTrigger) and t.dataset not in datasets:
                    found.append(
                        f"{where}: automation {a.name!r}: trigger {t.name!r} watches dataset "
                        f"{t.dataset!r}, which does not exist (see `shipyard data ls`)"
                    )
            if a.gate is not None and a.gate.data.split("@")[0] not in datasets:
                found.append(
                    f"{where}: automation {a.name!r}: the gate's data {a.gate.data!r} names a "
                    "dataset that does not exist (see `shipyard data ls`)"
                )
            if a.rollout.deployment is not None and a.rollout.deployment not in deployments:
                found.append(
                    f"{where}: automation {a.name!r}: deployment {a.rollout.deployment!r} does "
                    f"not exist: `shipyard deploy create {a.rollout.deployment} --model "
                    f"{a.model}@champion` first"
                )
        return found

    def check(self) -> None:
        """Raise :class:`InvalidArgumentError` listing every problem of the policy."""
        found = self.problems()
        if found:
            raise InvalidArgumentError("\n".join(found))
        self._checked = True

    # the loop ------------------------------------------------------------------------------

    def tick(self, now_ms: int | None = None) -> TickReport:
        """One pass: detect trigger events, then move each automation's event on."""
        if not self._checked:
            self.check()
        self._report = report = TickReport()
        for automation in self.policy.automations:
            now = now_ms if now_ms is not None else _now_ms()
            try:
                armed = self.backend.arm_automation(automation.name, now)
                for found in detect(
                    automation, self.backend, armed_at=armed, now_ms=now, home=self.home
                ):
                    event = found.event(automation, now)
                    if self.backend.add_automation_event(event, actor=self.user):
                        report.detected.append(event)
                        self._notify(event)
                self._advance(automation)
            except ShipyardError as exc:  # one automation's trouble must not stop the others
                report.errors.append(f"{automation.name}: {exc}")
                log.warning("automation %s: %s", automation.name, exc)
            except Exception as exc:
                report.errors.append(f"{automation.name}: {type(exc).__name__}: {exc}")
                log.exception("automation %s: the pass failed", automation.name)
        return report

    def run(self, interval_s: float = 30.0, stop: threading.Event | None = None) -> None:
        """Pass after pass, ``interval_s`` apart, until ``stop`` is set."""
        stop = stop or threading.Event()
        while True:
            self.tick()
            if stop.wait(interval_s):
                return

    # one automation ------------------------------------------------------------------------

    def _advance(self, automation: Automation) -> None:
        open_events = self.backend.list_automation_events(
            automation=automation.name, states=_OPEN, limit=1000
        )
        if not open_events:
            return
        with self._lease(automation.name) as held:
            if not held:
                self._report.busy.append(automation.name)
                return
            # Read again under the lease: another automator may have moved them meanwhile.
            open_events = self.backend.list_automation_events(
                automation=automation.name, states=_OPEN, limit=1000
            )
            started = sorted((e for e in open_events if e.state.started), key=_age)
            if started:
                event = started[0]
            else:
                waiting = sorted(open_events, key=_age)
                if not waiting:
                    return
                event = waiting[-1]
                for older in waiting[:-1]:
                    self._move(
                        older,
                        S.SKIPPED,
                        f"superseded by the newer trigger event {event.event_id[:12]} "
                        f"({event.kind}: {event.source})",
                    )
            for _ in range(8):  # as far as it goes without waiting
                try:
                    moved = self._step(automation, event)
                except ConflictError as exc:
                    log.info("automation %s: %s", automation.name, exc)
                    return
                if moved.revision == event.revision or moved.state.finished:
                    return
                event = moved

    def _step(self, a: Automation, event: AutomationEvent) -> AutomationEvent:
        if event.state is S.WAITING:
            return self._start(a, event)
        if event.state is S.TRAINING:
            return self._train(a, event)
        if event.state is S.GATING:
            return self._gate(a, event)
        if event.state is S.AWAITING_APPROVAL:
            return self._approve(a, event)
        return self._roll_out(a, event)

    # stages --------------------------------------------------------------------------------

    def _start(self, a: Automation, event: AutomationEvent) -> AutomationEvent:
        now = _now_ms()
        limited = self._limited(a, now)
        if limited is not None:
            state, reason = limited
            if state is S.WAITING:
                return self._wait(event, reason)
            return self._move(event, state, reason)
        busy = self._rollout_in_progress(a, event)
        if busy is not None:
            return self._wait(event, f"waiting: {busy}; training starts when it has ended")
        return self._run_pipeline(a, event)

    def _run_pipeline(self, a: Automation, event: AutomationEvent) -> AutomationEvent:
        from shipyard.pipelines.loading import load_pipeline
        from shipyard.pipelines.runner import PipelineFailedError, run_pipeline

        run_id = uuid.uuid4().hex
        attempt = event.attempts + 1
        again = " again (the last attempt's process died; finished steps come from the cache)"
        event = self._move(
            event,
            S.TRAINING,
            f"pipeline run {run_id[:12]} started{again if attempt > 1 else ''}",
            pipeline_run_id=run_id,
            attempts=attempt,
        )
        params = {**a.params, **event.details.get("params", {})}
        try:
            pipe, source = load_pipeline(a.pipeline)
            with self._renewing(a.name):
                run_pipeline(
                    pipe,
                    params,
                    executor=self.executor,
                    home=self.home,
                    source=source,
                    echo=self.echo,
                    run_id=run_id,
                )
        except PipelineFailedError as exc:
            return self._move(event, S.FAILED, f"pipeline run {run_id[:12]} failed: {exc}")
        except ShipyardError as exc:
            return self._move(event, S.FAILED, f"pipeline {a.pipeline} could not run: {exc}")
        return self._trained(a, event)

    def _train(self, a: Automation, event: AutomationEvent) -> AutomationEvent:
        """An event left in training: the pipeline finished, is still running, or died."""
        from shipyard.pipelines.runner import shown_status

        status = None
        if event.pipeline_run_id is not None:
            try:
                status = shown_status(self.backend.get_pipeline_run(event.pipeline_run_id))
            except NotFoundError:
                status = None  # the automator died before the run was recorded
        if status == "FINISHED":
            return self._trained(a, event)
        if status == "RUNNING":
            return event  # its process is alive: let it finish
        if status == "FAILED":
            run = self.backend.get_pipeline_run(str(event.pipeline_run_id))
            return self._move(event, S.FAILED, f"pipeline run failed: {run.error}")
        return self._run_pipeline(a, event)

    def _trained(self, a: Automation, event: AutomationEvent) -> AutomationEvent:
        run_id = str(event.pipeline_run_id)
        candidate = self._candidate(run_id, a.model)
        if candidate is None:
            return self._move(
                event,
                S.FAILED,
                f"pipeline run {run_id[:12]} registered no version of {a.model}: "
                "its training step must register one (see docs/automation.md)",
            )
        current = self._alias_holder(a.model, a.rollout.alias)
        if candidate == current:
            return self._move(
                event,
                S.SKIPPED,
                f"the pipeline gave {candidate}, which is already {a.model}@{a.rollout.alias} "
                "(nothing changed since it was trained): nothing to roll out",
                candidate=candidate,
            )
        return self._move(
            event,
            S.GATING,
            f"pipeline run {run_id[:12]} registered {candidate}",
            candidate=candidate,
        )

    def _gate(self, a: Automation, event: AutomationEvent) -> AutomationEvent:
        from shipyard.automation.gate import run_gate

        candidate = _candidate_of(event)
        if a.gate is None:
            return self._move(
                event, S.AWAITING_APPROVAL, "no gate in the policy", gate={"passed": None}
            )
        try:
            with self._renewing(a.name):
                outcome = run_gate(
                    self.workspace, a.gate, candidate, model=a.model, event_id=event.event_id
                )
        except ShipyardError as exc:
            return self._move(event, S.FAILED, f"the gate could not run: {exc}")
        except Exception as exc:  # the candidate broke the evaluation: record it, never loop
            log.exception("automation %s: the gate of %s failed", a.name, candidate)
            reason = f"the gate could not run: {type(exc).__name__}: {exc}"
            return self._move(event, S.FAILED, reason)
        if not outcome.passed:
            failures = "; ".join(outcome.summary["failures"])
            self._tag(candidate, "rejected: gate failed")
            return self._move(event, S.REJECTED, f"gate failed: {failures}", gate=outcome.summary)
        main = outcome.summary["main_metric"]
        value = outcome.summary["metrics"].get(main)
        return self._move(
            event,
            S.AWAITING_APPROVAL,
            f"gate passed: {main} {value:.4f} on {outcome.summary['data']}"
            if isinstance(value, float)
            else "gate passed",
            gate=outcome.summary,
        )

    def _approve(self, a: Automation, event: AutomationEvent) -> AutomationEvent:
        from shipyard.registry import Registry

        candidate = _candidate_of(event)
        registry = Registry(self.backend, self.user)
        version = registry.resolve(candidate)
        governed = self.backend.get_registered_model(a.model).governed
        if a.approval == "auto":
            if governed and version.review is not ReviewState.APPROVED:
                return self._move(
                    event,
                    S.FAILED,
                    f"{a.model} is governed: its versions need an approver, so set "
                    "'approval: review' in the policy",
                )
            return self._move(
                event, S.ROLLING_OUT, "approved automatically (policy)", approval={"mode": "auto"}
            )
        if version.review is ReviewState.APPROVED:
            entry = self._review_entry(version.model, version.version, "approve")
            return self._move(
                event,
                S.ROLLING_OUT,
                f"approved by {entry.get('actor', '?')}",
                approval={"mode": "review", **entry},
            )
        if version.review is ReviewState.REJECTED:
            entry = self._review_entry(version.model, version.version, "reject")
            self._tag(candidate, "rejected: review")
            return self._move(
                event,
                S.REJECTED,
                f"review rejected by {entry.get('actor', '?')}: {entry.get('comment', '')}",
                approval={"mode": "review", **entry},
            )
        if version.review is not ReviewState.REQUESTED:
            registry.request_review(
                candidate,
                comment=f"automation {a.name}, trigger event {event.event_id[:12]}: "
                + str(event.gate.get("main_metric", "")),
            )
            return self._move(
                event,
                S.AWAITING_APPROVAL,
                f"review requested for {candidate}: waiting for an approver "
                f"(`shipyard models approve {candidate}`)",
                approval={"mode": "review", "requested_by": self.user},
            )
        return event

    def _roll_out(self, a: Automation, event: AutomationEvent) -> AutomationEvent:
        from shipyard.deploy.analysis import CanarySpec
        from shipyard.deploy.service import Deployments
        from shipyard.registry import Registry

        candidate = _candidate_of(event)
        name = a.rollout.deployment
        if name is None:
            try:
                Registry(self.backend, self.user).set_alias(candidate, a.rollout.alias)
            except (PermissionDeniedError, NotFoundError) as exc:
                return self._move(event, S.FAILED, f"could not move the alias: {exc}")
            return self._move(
                event,
                S.PROMOTED,
                f"{a.model}@{a.rollout.alias} now names {candidate}",
                rollout={"alias": a.rollout.alias},
            )
        deployments = Deployments(self.backend, self.user, home=self.home)
        if not event.rollout.get("started"):
            busy = self._rollout_in_progress(a, event)
            if busy is not None:
                return self._wait(event, f"waiting to roll out: {busy}")
            try:
                deployment = deployments.canary(
                    name,
                    candidate,
                    CanarySpec(**a.rollout.canary),
                    reason=f"automation {a.name}: trigger event {event.event_id[:12]}",
                )
            except ShipyardError as exc:
                return self._move(event, S.FAILED, f"the canary could not start: {exc}")
            return self._move(
                event,
                S.ROLLING_OUT,
                f"canary of {candidate} started on {name}",
                deployment=name,
                rollout={"started": _now_ms(), "revision": deployment.revision},
            )
        deployment = deployments.get(name)
        ended = self._rollout_end(name, int(event.rollout.get("revision", 0)))
        if ended is None:
            if deployment.state is DeploymentState.HELD:
                return self._wait(event, f"the canary on {name} is held: {deployment.state.value}")
            return event
        outcome = {**event.rollout, **ended}
        if ended["action"] == "promote":
            return self._move(
                event, S.PROMOTED, f"canary on {name} promoted: {ended['reason']}", rollout=outcome
            )
        self._tag(candidate, "rejected: canary rolled back")
        return self._move(
            event,
            S.REJECTED,
            f"canary on {name} {ended['action']}: {ended['reason']}",
            rollout=outcome,
        )

    # helpers -------------------------------------------------------------------------------

    def _rollout_end(self, name: str, since_revision: int) -> dict[str, Any] | None:
        """The event that ended the canary started at ``since_revision`` (None: running)."""
        for e in reversed(self.backend.list_deployment_events(name, limit=200)):
            if e.revision <= since_revision:
                continue
            if e.action in ("promote", "rollback", "canary.promote", "canary.rollback"):
                action = "promote" if e.action.endswith("promote") else "rollback"
                return {
                    "action": action,
                    "reason": e.reason,
                    "deployment_event": e.seq,
                    "actor": e.actor,
                    "at": e.at,
                    "details": e.details,
                }
        return None

    def _rollout_in_progress(self, a: Automation, event: AutomationEvent) -> str | None:
        name = a.rollout.deployment
        if name is None:
            return None
        try:
            deployment = self.backend.get_deployment(name)
        except NotFoundError:
            return None
        if not deployment.state.in_progress:
            return None
        doing = f"{deployment.strategy.value} in progress ({deployment.state.value})"
        return f"deployment {name} has a {doing}"

    def _limited(self, a: Automation, now: int) -> tuple[AutomationState, str] | None:
        finished = self.backend.list_automation_events(
            automation=a.name, states=[S.PROMOTED, S.REJECTED, S.FAILED], limit=200
        )
        bad = [e for e in finished if e.state in (S.REJECTED, S.FAILED)]
        recent = [e for e in bad if e.updated_at >= now - a.limits.period.total_seconds() * 1000]
        if len(recent) >= a.limits.max_rejections:
            oldest = min(e.updated_at for e in recent)
            until = oldest + int(a.limits.period.total_seconds() * 1000)
            return (
                S.SKIPPED,
                f"{len(recent)} candidates rejected or failed within {a.limits.period}: the cap "
                f"is {a.limits.max_rejections}; trigger events are skipped until {_iso(until)}",
            )
        streak: list[AutomationEvent] = []
        for e in sorted(finished, key=lambda e: e.updated_at, reverse=True):
            if e.state is S.PROMOTED:
                break
            streak.append(e)
        if streak:
            wait = a.limits.backoff.total_seconds() * 1000 * 2 ** (len(streak) - 1)
            until = int(streak[0].updated_at + wait)
            if now < until:
                return (
                    S.WAITING,
                    f"backing off until {_iso(until)} after {len(streak)} rejected or failed "
                    f"candidate(s) in a row (last: {streak[0].reason})",
                )
        return None

    def _candidate(self, run_id: str, model: str) -> str | None:
        """The newest version of ``model`` the pipeline run's steps made (a step reused from
        the cache counts with what its original run made)."""
        found: list[int] = []
        edges = list(self.backend.pipeline_lineage(run_id=run_id, kind="model_version"))
        for step in self.backend.list_step_runs(run_id):
            if step.reused_from:
                original = self.backend.get_step_run(step.reused_from)
                edges.extend(
                    e
                    for e in self.backend.pipeline_lineage(
                        run_id=original.run_id, kind="model_version"
                    )
                    if e.step_run_id == original.step_run_id
                )
        for edge in edges:
            name, _, number = edge.ref.partition("@")
            if edge.direction == "made" and name == model and number.isdigit():
                found.append(int(number))
        return f"{model}@{max(found)}" if found else None

    def _alias_holder(self, model: str, alias: str) -> str | None:
        try:
            return f"{model}@{self.backend.resolve_model_alias(model, alias)}"
        except NotFoundError:
            return None

    def _review_entry(self, model: str, version: int, verb: str) -> dict[str, Any]:
        """Who decided the review of ``model@version`` and when, from the audit log."""
        for entry in self.backend.list_audit(limit=200, target=f"{model}@{version}"):
            if verb in entry.action:
                return {
                    "actor": entry.actor,
                    "at": entry.at,
                    "audit_seq": entry.seq,
                    "comment": str(entry.details.get("comment", "")),
                }
        return {}

    def _tag(self, ref: str, value: str) -> None:
        name, _, number = ref.partition("@")
        try:
            self.backend.set_model_tag(
                name, int(number), "shipyard.automation", value, actor=self.user
            )
        except ShipyardError as exc:  # a tag is a courtesy; the event records the decision
            log.warning("could not tag %s: %s", ref, exc)

    def _wait(self, event: AutomationEvent, reason: str) -> AutomationEvent:
        if event.reason == reason:
            return event
        return self._move(event, event.state, reason)

    def _move(
        self, event: AutomationEvent, state: AutomationState, reason: str, **changes: Any
    ) -> AutomationEvent:
        changed = replace(event, state=state, reason=reason, updated_at=_now_ms(), **changes)
        details = {k: v for k, v in changes.items() if k in ("gate", "approval", "rollout")}
        saved = self.backend.update_automation_event(changed, actor=self.user, details=details)
        self._report.changed.append(saved)
        self._notify(saved)
        return saved

    def _notify(self, event: AutomationEvent) -> None:
        if self.on_change is not None:
            self.on_change(event)

    @contextmanager
    def _lease(self, automation: str) -> Iterator[bool]:
        name = f"automation:{automation}"
        held = self.backend.acquire_lease(name, self.holder, self.lease_ms)
        try:
            yield held
        finally:
            if held:
                self.backend.release_lease(name, self.holder)

    @contextmanager
    def _renewing(self, automation: str) -> Iterator[None]:
        """Keep renewing the automation's lease while a long stage runs."""
        stop = threading.Event()
        name = f"automation:{automation}"

        def renew() -> None:
            while not stop.wait(self.lease_ms / 3000):
                try:
                    self.backend.acquire_lease(name, self.holder, self.lease_ms)
                except ShipyardError as exc:  # the next renewal may get through
                    log.warning("renewing the lease of %s failed: %s", automation, exc)

        thread = threading.Thread(target=renew, name=f"lease-{automation}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def _candidate_of(event: AutomationEvent) -> str:
    if event.candidate is None:  # a stage after training always has one
        raise ConflictError(f"trigger event {event.event_id} has no candidate yet")
    return event.candidate


def _age(event: AutomationEvent) -> tuple[int, str]:
    return (event.detected_at, event.event_id)
