"""The gate a candidate must pass: ``shipyard validate`` against the champion, as a step.

The report is written under ``<home>/reports/automation/<event>/`` (JSON and HTML) and its
JSON is also kept in the artifact store, so the numbers outlive the folder; the event keeps a
summary — the main metric, the champion comparison, the fairness gaps and every failed rule —
which is what ``shipyard models why`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shipyard.automation.policy import Gate
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.tracking.workspace import Workspace

__all__ = ["GateOutcome", "run_gate"]


@dataclass(frozen=True, slots=True)
class GateOutcome:
    passed: bool
    summary: dict[str, Any]
    """What the event keeps (JSON): passed, failures, metrics, comparison, fairness, paths."""


def _champion(workspace: Workspace, model: str, alias: str, candidate: str) -> str | None:
    """``model@<version>`` the alias names, unless there is none or it is the candidate."""
    from shipyard.registry import Registry

    try:
        version = Registry(workspace.backend, workspace.settings.user).resolve(f"{model}@{alias}")
    except NotFoundError:
        return None
    return None if version.ref == candidate else version.ref


def _summary(report: Any, gate: Any, data: str, champion: str | None) -> dict[str, Any]:
    comparison = report.comparison
    return {
        "passed": gate.passed if gate is not None else True,
        "failures": list(gate.failures) if gate is not None else [],
        "data": data,
        "rows": report.rows,
        "against": champion,
        "main_metric": report.main_metric,
        "metrics": {k: round(v, 6) for k, v in report.metrics.items()},
        "comparison": None
        if comparison is None
        else {
            "against": comparison.against,
            "metric": comparison.metric,
            "candidate": comparison.candidate,
            "champion": comparison.champion,
            "difference": comparison.difference,
            "ci": [comparison.ci_low, comparison.ci_high],
            "confidence": comparison.confidence,
            "verdict": comparison.verdict,
        },
        "fairness": {
            f.attribute: {
                "demographic_parity_difference": f.demographic_parity_difference,
                "equalized_odds_difference": f.equalized_odds_difference,
            }
            for f in report.fairness
        },
    }


def run_gate(
    workspace: Workspace,
    gate: Gate,
    candidate: str,
    *,
    model: str,
    event_id: str,
    folder: Path | None = None,
) -> GateOutcome:
    """Validate ``candidate`` on the gate's data against the champion and apply the policy.

    The report goes to ``folder`` (default ``<home>/reports/automation/<event_id>/``).

    Raises:
        NotFoundError: the gate's dataset does not exist.
        InvalidArgumentError: the candidate's training run read the gate's data (it is not
            unseen), or the data lacks the target or a sensitive column.
    """
    from shipyard import data, models
    from shipyard.registry import Registry
    from shipyard.validation import apply_policy, evaluate, load_policy, write_report

    home = workspace.settings.home
    backend = workspace.backend
    version = data.resolve(gate.data, home=home)
    exact = version.ref
    trained = Registry(backend, workspace.settings.user).resolve(candidate)
    if trained.run_id is not None:
        seen = backend.run_dataset_versions([trained.run_id], "input")
        if any((v.dataset, v.version) == (version.dataset, version.version) for _, v in seen):
            raise InvalidArgumentError(
                f"the gate's data {exact} was read by the run that trained {candidate}: "
                "gate on data the model has not seen (a held-out dataset)"
            )
    table = data.load(exact, home=home)
    champion = _champion(workspace, model, gate.against, candidate)
    report = evaluate(
        models.load(candidate, home=home),
        table,
        target=gate.target,
        slices=gate.slices,
        sensitive=gate.sensitive,
        against=models.load(champion, home=home) if champion else None,
        model_name=candidate,
        against_name=champion,
        data_name=exact,
    )
    policy = load_policy(gate.policy) if gate.policy is not None else None
    notes = []
    if policy is not None and champion is None and policy.max_regression:
        # The first version of a model has nothing to regress from.
        policy = replace(
            policy,
            max_regression={},
            required=tuple(r for r in policy.required if r != "comparison"),
        )
        notes.append(f"no {model}@{gate.against} yet: max_regression not applied")
    result = apply_policy(report, policy) if policy is not None else None
    folder = folder or Path(home) / "reports" / "automation" / event_id
    json_path, html_path = write_report(report, folder, result)
    stored = workspace.artifacts.put_file(json_path)
    summary = _summary(report, result, exact, champion)
    summary.update(
        {
            "policy": str(gate.policy) if gate.policy is not None else None,
            "report_html": str(html_path),
            "report_json": str(json_path),
            "report_digest": stored.digest,
            "notes": notes,
        }
    )
    return GateOutcome(summary["passed"], summary)
