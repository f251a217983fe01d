"""Pipelines, tuning and continuous training through a Shipyard server: the part of
:class:`~shipyard.store.rest.RestBackend` that records pipeline runs and their steps, the step
cache and pipeline lineage (``/api/v1/pipeline-runs``, ``/step-runs``, ``/step-cache``,
``/pipeline-lineage``), Optuna's journal (``/api/v1/tuning-journal``) and trigger events
(``/api/v1/automations``, ``/automation-events``).

The server decides who acts: a pipeline run's ``user`` and a trigger event's ``actor`` are
the caller's, whatever the client names. Free-form values (a pipeline's parameters, a step's
key parts, an event's gate, approval, rollout and details) travel as JSON, as the store keeps
them (:func:`to_wire`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from shipyard.entities import (
    AutomationEvent,
    AutomationLogEntry,
    AutomationState,
    LineageEdge,
    PipelineRun,
    PipelineStatus,
    StepOutput,
    StepRun,
    StepStatus,
)
from shipyard.errors import InvalidArgumentError, NotFoundError

__all__ = ["PipelineClient", "from_wire", "to_wire"]

_FLOAT = "$float"
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def to_wire(value: Any) -> Any:
    """``value`` as the store keeps it (JSON, anything else as its ``str``), for strict JSON:
    a non-finite float becomes ``{"$float": "NaN"}`` (or ``"Infinity"``, ``"-Infinity"``).

    A pipeline's parameters may hold NaN (its cache key allows it), and an event's details an
    infinite distance; strict JSON has neither, and ``null`` would not come back equal.
    """
    return _tag(json.loads(json.dumps(value, default=str)))


def from_wire(value: Any) -> Any:
    """The inverse of :func:`to_wire`."""
    if isinstance(value, dict):
        if len(value) == 1 and value.get(_FLOAT) in _NON_FINITE:
            return _NON_FINITE[value[_FLOAT]]
        return {k: from_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    return value


def _tag(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {_FLOAT: "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, dict):
        return {k: _tag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tag(v) for v in value]
    return value


def _segment(value: str) -> str:
    """``value`` as one segment of a URL path."""
    segment = quote(value, safe="")
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


def _output(data: Mapping[str, Any]) -> StepOutput:
    return StepOutput.from_dict(dict(data))


def _pipeline_run(data: Mapping[str, Any]) -> PipelineRun:
    return PipelineRun(
        run_id=data["run_id"],
        pipeline=data["pipeline"],
        source=data["source"],
        params=from_wire(data["params"]),
        status=PipelineStatus(data["status"]),
        executor=data["executor"],
        user=data["user"],
        start_time=int(data["start_time"]),
        end_time=data.get("end_time"),
        error=data.get("error", ""),
        owner=data.get("owner"),
        heartbeat=data.get("heartbeat"),
    )


def _run_body(run: PipelineRun) -> dict[str, Any]:
    # ``user`` is the server's to decide: the caller its token names.
    return {
        "run_id": run.run_id,
        "pipeline": run.pipeline,
        "source": run.source,
        "params": to_wire(run.params),
        "status": run.status.value,
        "executor": run.executor,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "error": run.error,
        "owner": run.owner,
        "heartbeat": run.heartbeat,
    }


def _step_run(data: Mapping[str, Any]) -> StepRun:
    return StepRun(
        step_run_id=data["step_run_id"],
        run_id=data["run_id"],
        name=data["name"],
        position=int(data["position"]),
        function=data["function"],
        status=StepStatus(data["status"]),
        upstream=tuple(data.get("upstream", ())),
        cache_hit=bool(data.get("cache_hit", False)),
        cache_key=data.get("cache_key", ""),
        key_parts=from_wire(data.get("key_parts", {})),
        outputs=tuple(_output(o) for o in data.get("outputs", ())),
        reused_from=data.get("reused_from"),
        attempts=int(data.get("attempts", 0)),
        start_time=data.get("start_time"),
        end_time=data.get("end_time"),
        logs_digest=data.get("logs_digest"),
        error=data.get("error", ""),
    )


def _step_body(step: StepRun) -> dict[str, Any]:
    return {
        "step_run_id": step.step_run_id,
        "run_id": step.run_id,
        "name": step.name,
        "position": step.position,
        "function": step.function,
        "status": step.status.value,
        "upstream": list(step.upstream),
        "cache_hit": step.cache_hit,
        "cache_key": step.cache_key,
        "key_parts": to_wire(step.key_parts),
        "outputs": [o.to_dict() for o in step.outputs],
        "reused_from": step.reused_from,
        "attempts": step.attempts,
        "start_time": step.start_time,
        "end_time": step.end_time,
        "logs_digest": step.logs_digest,
        "error": step.error,
    }


def _edge(data: Mapping[str, Any]) -> LineageEdge:
    return LineageEdge(
        step_run_id=data["step_run_id"],
        run_id=data["run_id"],
        kind=data["kind"],
        ref=data["ref"],
        direction=data["direction"],
    )


_EVENT_JSON = ("gate", "approval", "rollout", "details")


def _event(data: Mapping[str, Any]) -> AutomationEvent:
    return AutomationEvent(
        event_id=data["event_id"],
        automation=data["automation"],
        trigger=data["trigger"],
        kind=data["kind"],
        source=data["source"],
        detected_at=int(data["detected_at"]),
        state=AutomationState(data["state"]),
        reason=data.get("reason", ""),
        model=data.get("model", ""),
        pipeline_run_id=data.get("pipeline_run_id"),
        candidate=data.get("candidate"),
        deployment=data.get("deployment"),
        gate=from_wire(data.get("gate", {})),
        approval=from_wire(data.get("approval", {})),
        rollout=from_wire(data.get("rollout", {})),
        details=from_wire(data.get("details", {})),
        attempts=int(data.get("attempts", 0)),
        updated_at=int(data.get("updated_at", 0)),
        revision=int(data.get("revision", 0)),
    )


def _event_body(event: AutomationEvent) -> dict[str, Any]:
    body = event.to_dict()
    for name in _EVENT_JSON:
        body[name] = to_wire(body[name])
    return body


class PipelineClient:
    """Pipeline, tuning and automation methods of the ``Backend`` protocol over HTTP (mixed
    into ``RestBackend``)."""

    def _api(self, method: str, path: str, **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError  # RestBackend's

    # pipeline runs and their steps -------------------------------------------------------

    def create_pipeline_run(self, run: PipelineRun, steps: Sequence[StepRun]) -> None:
        body = {"run": _run_body(run), "steps": [_step_body(s) for s in steps]}
        self._api("POST", "/pipeline-runs", json=body)

    def save_step_run(self, step: StepRun) -> None:
        self.save_step_runs([step])

    def save_step_runs(self, steps: Sequence[StepRun]) -> None:
        if steps:
            self._api("PUT", "/step-runs", json={"steps": [_step_body(s) for s in steps]})

    def finish_pipeline_run(
        self, run_id: str, status: PipelineStatus, *, end_time: int, error: str = ""
    ) -> None:
        body = {"status": status.value, "end_time": end_time, "error": error}
        self._api("POST", f"/pipeline-runs/{_segment(run_id)}/finish", json=body)

    def beat_pipeline_run(self, run_id: str, now: int) -> None:
        self._api("POST", f"/pipeline-runs/{_segment(run_id)}/heartbeat", json={"now": now})

    def get_pipeline_run(self, run_id: str) -> PipelineRun:
        # What no URL path can carry, the store would refuse or not find either.
        if not run_id or len(run_id) > 32:
            raise InvalidArgumentError(f"not a pipeline run id: {run_id!r}")
        if "/" in run_id:
            raise NotFoundError(
                f"no pipeline run {run_id!r}: see `shipyard pipeline runs` for the runs"
            )
        return _pipeline_run(self._api("GET", f"/pipeline-runs/{_segment(run_id)}"))

    def list_pipeline_runs(
        self, pipeline: str | None = None, *, limit: int = 50, before: int | None = None
    ) -> list[PipelineRun]:
        params: dict[str, Any] = {"limit": limit}
        if pipeline is not None:
            params["pipeline"] = pipeline
        if before is not None:
            params["before"] = before
        return [_pipeline_run(r) for r in self._api("GET", "/pipeline-runs", params=params)]

    def list_step_runs(self, run_id: str) -> list[StepRun]:
        if not run_id or "/" in run_id:
            return []  # no run has such an id
        found = self._api("GET", f"/pipeline-runs/{_segment(run_id)}/steps")
        return [_step_run(s) for s in found]

    def get_step_run(self, step_run_id: str) -> StepRun:
        if not step_run_id or "/" in step_run_id:
            raise NotFoundError(f"no step run {step_run_id}")
        return _step_run(self._api("GET", f"/step-runs/{_segment(step_run_id)}"))

    # the step cache ----------------------------------------------------------------------

    def get_cached_step(self, cache_key: str) -> tuple[tuple[StepOutput, ...], str] | None:
        found = self._api("GET", f"/step-cache/{_segment(cache_key)}")
        if found is None:
            return None
        return tuple(_output(o) for o in found["outputs"]), str(found["step_run_id"])

    def put_cached_step(
        self, cache_key: str, outputs: Sequence[StepOutput], step_run_id: str, *, now: int
    ) -> bool:
        body = {
            "outputs": [o.to_dict() for o in outputs],
            "step_run_id": step_run_id,
            "now": now,
        }
        return bool(self._api("PUT", f"/step-cache/{_segment(cache_key)}", json=body)["stored"])

    def forget_cached_step(self, cache_key: str) -> None:
        self._api("DELETE", f"/step-cache/{_segment(cache_key)}")

    # pipeline lineage --------------------------------------------------------------------

    def add_pipeline_lineage(self, edges: Sequence[LineageEdge]) -> None:
        if not edges:
            return
        body = {
            "edges": [
                {
                    "step_run_id": e.step_run_id,
                    "run_id": e.run_id,
                    "kind": e.kind,
                    "ref": e.ref,
                    "direction": e.direction,
                }
                for e in edges
            ]
        }
        self._api("POST", "/pipeline-lineage", json=body)

    def pipeline_lineage(
        self, *, run_id: str | None = None, kind: str | None = None, ref: str | None = None
    ) -> list[LineageEdge]:
        params = {
            name: value
            for name, value in (("run_id", run_id), ("kind", kind), ("ref", ref))
            if value is not None
        }
        return [_edge(e) for e in self._api("GET", "/pipeline-lineage", params=params)]

    # tuning: Optuna's journal ------------------------------------------------------------

    def append_tuning_logs(self, logs: Sequence[str]) -> int:
        # One request, so the logs stay together in order (numbered under the store's lock).
        return int(self._api("POST", "/tuning-journal", json={"logs": list(logs)})["first"])

    def read_tuning_logs(self, start: int = 0) -> list[str]:
        return [str(log) for log in self._api("GET", "/tuning-journal", params={"start": start})]

    # continuous training -----------------------------------------------------------------

    def arm_automation(self, name: str, now: int) -> int:
        found = self._api("POST", f"/automations/{_segment(name)}/arm", json={"now": now})
        return int(found["armed_at"])

    def add_automation_event(self, event: AutomationEvent, *, actor: str) -> bool:
        # ``actor`` is the server's to decide, as for every change.
        return bool(self._api("POST", "/automation-events", json=_event_body(event))["added"])

    def update_automation_event(
        self, event: AutomationEvent, *, actor: str, details: dict[str, Any] | None = None
    ) -> AutomationEvent:
        body = {"event": _event_body(event), "details": to_wire(details or {})}
        path = f"/automation-events/{_segment(event.event_id)}"
        return _event(self._api("PUT", path, json=body))

    def get_automation_event(self, event_id: str) -> AutomationEvent:
        if not event_id or "/" in event_id:
            raise NotFoundError(f"no trigger event {event_id!r}: see `shipyard automate events`")
        return _event(self._api("GET", f"/automation-events/{_segment(event_id)}"))

    def list_automation_events(
        self,
        *,
        automation: str | None = None,
        states: Sequence[AutomationState] | None = None,
        candidate: str | None = None,
        source: str | None = None,
        pipeline_run_id: str | None = None,
        limit: int = 100,
    ) -> list[AutomationEvent]:
        if states is not None and not states:
            return []
        params: dict[str, Any] = {"limit": limit}
        for name, value in (
            ("automation", automation),
            ("candidate", candidate),
            ("source", source),
            ("pipeline_run_id", pipeline_run_id),
        ):
            if value is not None:
                params[name] = value
        if states is not None:
            params["state"] = [AutomationState(s).value for s in states]
        return [_event(e) for e in self._api("GET", "/automation-events", params=params)]

    def automation_log(self, event_id: str) -> list[AutomationLogEntry]:
        if not event_id or "/" in event_id:
            return []
        found = self._api("GET", f"/automation-events/{_segment(event_id)}/log")
        return [
            AutomationLogEntry(
                event_id=e["event_id"],
                at=int(e["at"]),
                state=AutomationState(e["state"]),
                reason=e["reason"],
                actor=e["actor"],
                details=from_wire(e.get("details", {})),
            )
            for e in found
        ]
