"""Why is this model version where it is? A few lines, each naming the record it comes from.

Where it is now (aliases, deployments), the trigger event that started it, the training
(pipeline run, tracking run, data), the gate's numbers, the approval and the rollout — from the
trigger event when an automation produced the version, otherwise from the registry, the audit
log and the deployments' histories.

Example:
    >>> why = explain_version(backend, "churn@champion")  # doctest: +SKIP
    >>> for label, text in why.lines:  # doctest: +SKIP
    ...     print(f"{label:>9}  {text}")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shipyard.automation.lineage import resolve_model_version
from shipyard.entities import AuditEntry, AutomationEvent, AutomationState, ModelVersion
from shipyard.errors import NotFoundError
from shipyard.store import Backend

__all__ = ["Why", "explain_version"]

_ENDED = ("promote", "canary.promote", "ab.conclude", "conclude", "create")
"""Deployment events after which a version can be a deployment's stable route."""
_PREFERRED = (
    AutomationState.PROMOTED,
    AutomationState.ROLLING_OUT,
    AutomationState.AWAITING_APPROVAL,
    AutomationState.GATING,
)


@dataclass(frozen=True, slots=True)
class Why:
    """The explanation of one model version.

    Attributes:
        version: ``NAME@V``.
        lines: ``(label, text)`` pairs, in the order of the version's life.
        facts: the ids and numbers behind the lines, for scripts (trigger event, pipeline run,
            run, data, gate, approval, rollout).
    """

    version: str
    lines: list[tuple[str, str]]
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "lines": [{"label": label, "text": text} for label, text in self.lines],
            **self.facts,
        }


def explain_version(backend: Backend, ref: str) -> Why:
    """Why ``ref`` (``churn@champion``, ``churn@4``) is where it is, in a few lines.

    Raises:
        NotFoundError: no such model or version.
    """
    version = resolve_model_version(backend, ref)
    event = _trigger_event(backend, version)
    lines: list[tuple[str, str]] = []
    facts: dict[str, Any] = {"trigger_event": None}

    lines += _where(backend, version, facts)
    if event is not None:
        lines.append(("trigger", _trigger_text(event)))
        facts["trigger_event"] = event.event_id
        facts["automation"] = event.automation
        facts["state"] = event.state.value
    else:
        lines.append(
            (
                "registered",
                f"registered by hand by {version.created_by} at {_time(version.created_at)} "
                "(no automation produced it)",
            )
        )
    lines += _training(backend, version, event, facts)
    if event is not None and event.gate:
        lines.append(("gate", _gate_text(event.gate)))
        facts["gate"] = event.gate
    lines.append(("approval", _approval(backend, version, event, facts)))
    lines += _rollout(backend, version, event, facts)
    return Why(version.ref, lines, facts)


def _trigger_event(backend: Backend, version: ModelVersion) -> AutomationEvent | None:
    """The trigger event whose candidate the version is (the one that got furthest)."""
    events = backend.list_automation_events(candidate=version.ref, limit=100)
    for state in _PREFERRED:
        found = [e for e in events if e.state is state]
        if found:
            return found[0]
    return events[0] if events else None


def _where(backend: Backend, version: ModelVersion, facts: dict[str, Any]) -> list[tuple[str, str]]:
    aliases = ", ".join(f"{version.model}@{a}" for a in version.aliases)
    now = f"{version.ref} is {aliases}" if aliases else f"{version.ref} has no alias"
    lines = [("now", f"{now} · review {version.review.value}")]
    deployed = []
    for name, since in backend.deployments_of_version(version.model, version.version):
        try:
            deployment = backend.get_deployment(name)
        except NotFoundError:
            continue
        routes = [
            f"route {r.name} {r.weight:g}% {r.mode.value}"
            for r in deployment.routes
            if (r.model, r.version) == (version.model, version.version)
        ]
        if routes:
            text = f"{name} ({deployment.state.value}): {', '.join(routes)}"
        else:
            current = ", ".join(r.model_ref for r in deployment.live_routes) or "nothing"
            text = f"{name} routed to it from {_time(since)}; it now serves {current}"
        lines.append(("deployed", f"{text} · since {_time(since)}" if routes else text))
        deployed.append({"deployment": name, "since": since, "routes": routes})
    if not deployed:
        lines[0] = ("now", f"{lines[0][1]} · no deployment routes to it")
    facts["aliases"] = list(version.aliases)
    facts["deployments"] = deployed
    return lines


def _trigger_text(event: AutomationEvent) -> str:
    d = event.details
    head = f"{event.kind} trigger {event.trigger!r} of automation {event.automation}"
    if event.kind == "alert":
        what = (
            f"alert {d.get('rule', '?')} on {d.get('model', '?')}: {d.get('metric', '?')} = "
            f"{_num(d.get('value'))} (threshold {_num(d.get('threshold'))}), "
            f"alert event {d.get('alert_event', event.source.removeprefix('alert '))}"
        )
    elif event.kind == "performance":
        what = (
            f"{d.get('how', 'measured')} {d.get('metric', '?')} of {d.get('model', '?')} = "
            f"{_num(d.get('value'))} below {_num(d.get('below'))} in {d.get('window', '?')}"
        )
    elif event.kind == "dataset":
        what = f"new dataset version {event.source}"
    else:
        what = event.source
    return f"{head}: {what} · trigger event {event.event_id} ({event.state.value})"


def _training(
    backend: Backend,
    version: ModelVersion,
    event: AutomationEvent | None,
    facts: dict[str, Any],
) -> list[tuple[str, str]]:
    pipeline_runs = [
        e.run_id
        for e in backend.pipeline_lineage(kind="model_version", ref=version.ref)
        if e.direction == "made"
    ]
    if event is not None and event.pipeline_run_id and event.pipeline_run_id not in pipeline_runs:
        pipeline_runs.insert(0, event.pipeline_run_id)
    parts = []
    for run_id in dict.fromkeys(pipeline_runs):
        try:
            pipeline = backend.get_pipeline_run(run_id)
            parts.append(f"pipeline run {run_id} ({pipeline.pipeline}, {pipeline.status.value})")
        except NotFoundError:
            parts.append(f"pipeline run {run_id} (not recorded)")
    if version.run_id is not None:
        try:
            run = backend.get_run(version.run_id)
            parts.append(f"run {run.run_id} ({run.name}, by {run.user}) registered {version.ref}")
        except NotFoundError:
            parts.append(f"run {version.run_id} (deleted) registered {version.ref}")
    else:
        parts.append(f"{version.ref} was registered without a run")
    lines = [("training", " · ".join(parts))]
    facts["pipeline_runs"] = list(dict.fromkeys(pipeline_runs))
    facts["run"] = version.run_id

    read = (
        [v.ref for _, v in backend.run_dataset_versions([version.run_id], "input")]
        if version.run_id
        else []
    )
    pipeline_read = {
        run_id: sorted(
            {
                e.ref
                for e in backend.pipeline_lineage(run_id=run_id, kind="dataset_version")
                if e.direction == "read"
            }
        )
        for run_id in dict.fromkeys(pipeline_runs)
    }
    data = [f"run {version.run_id[:8]} read {', '.join(read)}"] if version.run_id and read else []
    for run_id, refs in pipeline_read.items():
        if refs:
            data.append(f"pipeline run {run_id[:8]} read {', '.join(refs)}")
    lines.append(("data", " · ".join(data) or "no dataset version is recorded as read"))
    facts["data"] = {"run": read, "pipeline_runs": pipeline_read}
    return lines


def _gate_text(gate: dict[str, Any]) -> str:
    if gate.get("passed") is None:
        return "no gate in the policy"
    parts = ["passed" if gate["passed"] else "FAILED: " + "; ".join(gate.get("failures", []))]
    main = gate.get("main_metric")
    if main:
        value = gate.get("metrics", {}).get(main)
        parts.append(f"{main} {_num(value)} on {gate.get('data', '?')} ({gate.get('rows')} rows)")
    comparison = gate.get("comparison")
    if comparison:
        low, high = (comparison.get("ci") or [None, None])[:2]
        parts.append(
            f"vs {comparison.get('against')}: {comparison.get('metric')} difference "
            f"{_num(comparison.get('difference'), signed=True)} "
            f"({_percent(comparison.get('confidence'))} CI {_num(low, signed=True)} to "
            f"{_num(high, signed=True)}), {comparison.get('verdict')}"
        )
    elif gate.get("against") is None:
        parts.append("no champion to compare with")
    for attribute, gaps in (gate.get("fairness") or {}).items():
        parts.append(
            f"fairness {attribute}: demographic parity gap "
            f"{_num(gaps.get('demographic_parity_difference'))}, equalized odds gap "
            f"{_num(gaps.get('equalized_odds_difference'))}"
        )
    parts.extend(f"note: {note}" for note in gate.get("notes", []))
    if gate.get("report_html"):
        digest = str(gate.get("report_digest") or "")
        parts.append(
            f"report {gate['report_html']}" + (f" (digest {digest[:12]})" if digest else "")
        )
    return " · ".join(parts)


def _approval(
    backend: Backend, version: ModelVersion, event: AutomationEvent | None, facts: dict[str, Any]
) -> str:
    approval = event.approval if event is not None else {}
    if approval.get("mode") == "auto":
        facts["approval"] = approval
        return "approved automatically: the automation's policy says 'approval: auto'"
    if approval.get("actor"):
        facts["approval"] = approval
        return _approved_text(
            str(approval["actor"]),
            approval.get("at"),
            approval.get("audit_seq"),
            str(approval.get("comment") or ""),
        )
    entries = [e for e in _audit(backend, version.ref) if e.action == "review.approved"]
    if entries:
        entry = entries[0]
        facts["approval"] = {"actor": entry.actor, "at": entry.at, "audit_seq": entry.seq}
        return _approved_text(
            entry.actor, entry.at, entry.seq, str(entry.details.get("comment") or "")
        )
    facts["approval"] = None
    if approval.get("requested_by"):
        return f"review requested by {approval['requested_by']}; not approved yet"
    return f"not approved (review {version.review.value})"


def _approved_text(actor: str, at: Any, seq: Any, comment: str) -> str:
    when = f" at {_time(int(at))}" if isinstance(at, int) else ""
    audit = f" (audit #{seq})" if seq is not None else ""
    return f"approved by {actor}{when}{audit}" + (f": {comment}" if comment else "")


def _rollout(
    backend: Backend, version: ModelVersion, event: AutomationEvent | None, facts: dict[str, Any]
) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    rollout = event.rollout if event is not None else {}
    if rollout.get("action"):
        deployment = event.deployment if event is not None else None
        numbers = _numbers(rollout.get("details") or {})
        lines.append(
            (
                "rollout",
                f"{rollout['action']} on {deployment} by {rollout.get('actor', '?')} at "
                f"{_time(rollout.get('at'))} (deployment event #{rollout.get('deployment_event')})"
                f": {rollout.get('reason', '')}" + (f" [{numbers}]" if numbers else ""),
            )
        )
    elif rollout.get("started") and event is not None:
        lines.append(("rollout", f"canary on {event.deployment} in progress ({event.reason})"))
    facts["rollout"] = rollout or None
    automated = {str(rollout["alias"])} if rollout.get("alias") else set()
    for alias in version.aliases:
        moved = _alias_move(backend, version, alias)
        if moved is None:
            continue
        who = "the automation" if alias in automated else moved.actor
        lines.append(
            (
                "rollout",
                f"{who} pointed {version.model}@{alias} at {version.ref} "
                f"(by {moved.actor} at {_time(moved.at)}, audit #{moved.seq})",
            )
        )
        facts.setdefault("alias_moves", []).append(
            {"alias": alias, "actor": moved.actor, "at": moved.at, "audit_seq": moved.seq}
        )
    if not rollout.get("action"):
        lines += _deployment_rollouts(backend, version, facts)
    return lines


def _alias_move(backend: Backend, version: ModelVersion, alias: str) -> AuditEntry | None:
    """The newest audit entry that pointed ``alias`` at ``version``."""
    for entry in _audit(backend, f"{version.model}@{alias}"):
        if entry.action == "alias.set" and entry.details.get("to") == version.version:
            return entry
    return None


def _deployment_rollouts(
    backend: Backend, version: ModelVersion, facts: dict[str, Any]
) -> list[tuple[str, str]]:
    """The deployment events that put the version on each deployment's live routes."""
    lines = []
    for name, _ in backend.deployments_of_version(version.model, version.version):
        for e in reversed(backend.list_deployment_events(name, limit=200)):
            live = any(
                (r.model, r.version) == (version.model, version.version) and r.weight >= 100
                for r in e.routes
            )
            if e.action in _ENDED and live:
                numbers = _numbers(e.details)
                lines.append(
                    (
                        "rollout",
                        f"{e.action} on {name} by {e.actor} at {_time(e.at)} "
                        f"(deployment event #{e.seq}): {e.reason}"
                        + (f" [{numbers}]" if numbers else ""),
                    )
                )
                facts.setdefault("deployment_events", []).append(
                    {"deployment": name, "seq": e.seq, "action": e.action}
                )
                break
    return lines


def _audit(backend: Backend, target: str) -> list[AuditEntry]:
    """Audit entries of exactly ``target``, newest first (the store matches a prefix)."""
    return [e for e in backend.list_audit(limit=1000, target=target) if e.target == target]


def _numbers(details: dict[str, Any]) -> str:
    """The numbers of a deployment event, ``key=value`` (nested ``numbers`` flattened)."""
    flat = dict(details.get("numbers") or {}) | {k: v for k, v in details.items() if k != "numbers"}
    shown = [
        f"{k}={_num(v)}"
        for k, v in flat.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    return ", ".join(shown[:8])


def _num(value: Any, *, signed: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "?" if value is None else str(value)
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def _percent(share: Any) -> str:
    return f"{share * 100:g}%" if isinstance(share, int | float) else "?"


def _time(ms: Any) -> str:
    if not isinstance(ms, int):
        return "?"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
