"""Why each step of a run ran or was reused, and the graph of a run drawn as text."""

from __future__ import annotations

from dataclasses import dataclass, field

from shipyard.entities import PipelineRun, StepRun, StepStatus
from shipyard.pipelines.cache import differences
from shipyard.store import Backend

__all__ = ["StepExplanation", "explain", "to_dot", "to_mermaid"]

_LOOK_BACK = 50


@dataclass(frozen=True)
class StepExplanation:
    """Whether a step ran or was reused, and why."""

    step: str
    status: StepStatus
    decision: str
    """``reused``, ``ran``, ``failed``, ``cancelled`` or ``skipped``."""
    reasons: list[str] = field(default_factory=list)
    compared_with: str | None = None
    """The earlier pipeline run the step was compared with."""

    def to_dict(self) -> dict[str, object]:
        return {
            "step": self.step,
            "status": self.status.value,
            "decision": self.decision,
            "reasons": self.reasons,
            "compared_with": self.compared_with,
        }


def _previous(
    backend: Backend, run: PipelineRun, name: str, seen: dict[str, list[StepRun]]
) -> tuple[str, StepRun] | None:
    """The latest earlier run of the pipeline that completed step ``name``, and that step
    (earlier runs' steps are read once, into ``seen``, and only as far back as needed)."""
    for other in backend.list_pipeline_runs(run.pipeline, limit=_LOOK_BACK, before=run.start_time):
        if other.run_id == run.run_id:
            continue
        if other.run_id not in seen:
            seen[other.run_id] = backend.list_step_runs(other.run_id)
        for step in seen[other.run_id]:
            if step.name == name and step.key_parts and step.status.done:
                return other.run_id, step
    return None


def _decision(step: StepRun) -> str:
    return {
        StepStatus.CACHED: "reused",
        StepStatus.FINISHED: "ran",
        StepStatus.FAILED: "failed",
        StepStatus.CANCELLED: "cancelled",
        StepStatus.RUNNING: "running",
    }.get(step.status, "skipped")


def _input_sources(step: StepRun, changes: list[str]) -> list[str]:
    sources: dict[str, str] = step.key_parts.get("sources", {})
    out = []
    for change in changes:
        for arg, source in sources.items():
            if change.startswith(f"input {arg!r} changed"):
                change += f" (the output of step {source.split('.')[0]!r} changed)"
                break
        out.append(change)
    return out


def explain(backend: Backend, run_id: str) -> list[StepExplanation]:
    """Explain each step of a run against the latest earlier run that had the same step."""
    run = backend.get_pipeline_run(run_id)
    seen: dict[str, list[StepRun]] = {}
    explained = []
    for step in backend.list_step_runs(run.run_id):
        decision = _decision(step)
        if step.status is StepStatus.SKIPPED:
            explained.append(
                StepExplanation(step.name, step.status, decision, ["an upstream step failed"])
            )
            continue
        if step.status is StepStatus.CACHED:
            reasons = [
                f"nothing in its key changed: reused the outputs of step run "
                f"{(step.reused_from or '?')[:8]} (key {step.cache_key[:12]})"
            ]
            explained.append(StepExplanation(step.name, step.status, decision, reasons))
            continue
        if step.key_parts.get("cache") is False:
            reasons = ["caching is off for this step (@step(cache=False)): it always runs"]
            explained.append(StepExplanation(step.name, step.status, decision, reasons))
            continue
        previous = _previous(backend, run, step.name, seen)
        if previous is None:
            reasons = [f"first run: no earlier run of {run.pipeline!r} completed this step"]
            explained.append(StepExplanation(step.name, step.status, decision, reasons))
            continue
        other_id, other = previous
        changes = _input_sources(step, differences(other.key_parts, step.key_parts))
        if not changes:
            changes = [
                "its key is the same as in that run, but no outputs were cached under it "
                "(they were deleted from the artifact store, or that run was running it at "
                "the same time)"
            ]
        explained.append(StepExplanation(step.name, step.status, decision, changes, other_id))
    return explained


_MERMAID_CLASS = {
    StepStatus.CACHED: "cached",
    StepStatus.FINISHED: "ran",
    StepStatus.FAILED: "failed",
}


def _node_id(name: str) -> str:
    return "s_" + "".join(c if c.isalnum() else "_" for c in name)


def to_mermaid(steps: list[StepRun]) -> str:
    """A Mermaid flowchart of a run: one node per step, coloured by status."""
    lines = ["flowchart LR"]
    for step in steps:
        label = f"{step.name}<br/>{step.status.value.lower()}"
        lines.append(f'    {_node_id(step.name)}["{label}"]')
    for step in steps:
        for up in step.upstream:
            lines.append(f"    {_node_id(up)} --> {_node_id(step.name)}")
    lines += [
        "    classDef cached fill:#e0f0ff,stroke:#4a90d9",
        "    classDef ran fill:#e6f7e6,stroke:#3c9a3c",
        "    classDef failed fill:#fde2e2,stroke:#d04040",
    ]
    for step in steps:
        css = _MERMAID_CLASS.get(step.status)
        if css:
            lines.append(f"    class {_node_id(step.name)} {css}")
    return "\n".join(lines) + "\n"


_DOT_COLOUR = {
    StepStatus.CACHED: "#e0f0ff",
    StepStatus.FINISHED: "#e6f7e6",
    StepStatus.FAILED: "#fde2e2",
}


def to_dot(steps: list[StepRun], title: str = "pipeline") -> str:
    """A Graphviz digraph of a run."""
    lines = [f'digraph "{title}" {{', "    rankdir=LR;", "    node [shape=box, style=filled];"]
    for step in steps:
        colour = _DOT_COLOUR.get(step.status, "#f0f0f0")
        label = f"{step.name}\\n{step.status.value.lower()}"
        lines.append(f'    "{step.name}" [label="{label}", fillcolor="{colour}"];')
    for step in steps:
        for up in step.upstream:
            lines.append(f'    "{up}" -> "{step.name}";')
    lines.append("}")
    return "\n".join(lines) + "\n"
