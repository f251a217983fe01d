"""Gate policies: parsing errors name the culprit; failures name the rule and the numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.validation import apply_policy, evaluate, load_policy, parse_policy
from tests.validation.conftest import Case

POLICY = """\
min: {roc_auc: 0.9, accuracy: 0.85}
max: {log_loss: 0.5}
max_regression: {roc_auc: 0.01}
max_fairness_gap: {demographic_parity_difference: 0.1, equalized_odds_difference: 0.15}
max_robustness_drop: 0.5
required: [fairness, robustness, comparison]
"""


def test_load_policy_reads_every_rule(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(POLICY)
    policy = load_policy(path)
    assert policy.min == {"roc_auc": 0.9, "accuracy": 0.85}
    assert policy.max == {"log_loss": 0.5}
    assert policy.max_regression == {"roc_auc": 0.01}
    assert policy.max_fairness_gap["equalized_odds_difference"] == 0.15
    assert policy.max_robustness_drop == 0.5
    assert policy.required == ("fairness", "robustness", "comparison")
    assert parse_policy(None).to_dict()["min"] == {}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"minimum": {"roc_auc": 0.9}}, "unknown rule 'minimum'"),
        ({"min": {"auc": 0.9}}, "unknown metric 'auc' in min"),
        ({"max_fairness_gap": {"roc_auc": 0.1}}, "unknown metric 'roc_auc' in max_fairness_gap"),
        ({"min": {"roc_auc": "high"}}, "min.roc_auc must be a number"),
        ({"min": {"roc_auc": True}}, "min.roc_auc must be a number"),
        ({"min": [0.9]}, "min must be a mapping"),
        ({"required": "fairness"}, "required must be a list"),
        ({"required": ["speed"]}, "unknown check 'speed'"),
        ({"max_robustness_drop": "x"}, "max_robustness_drop must be a number"),
        ([1, 2], "must hold a mapping"),
    ],
)
def test_bad_policies_are_rejected_by_name(document: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        parse_policy(document)


def test_policy_file_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no policy file"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("min: {roc_auc: [\n")
    with pytest.raises(InvalidArgumentError, match="not valid YAML"):
        load_policy(bad)


def test_gate_passes_a_good_model(binary: Case) -> None:
    table = binary.test.assign(group=np.random.default_rng(0).choice(["a", "b"], len(binary.test)))
    report = evaluate(
        binary.model, table, target="target", sensitive=["group"], against=binary.model
    )
    policy = parse_policy(
        {
            "min": {"roc_auc": 0.9, "accuracy": 0.85},
            "max_regression": {"roc_auc": 0.01},
            "max_fairness_gap": {"demographic_parity_difference": 0.2},
            "max_robustness_drop": 0.5,
            "required": ["fairness", "robustness", "comparison"],
        }
    )
    gate = apply_policy(report, policy)
    assert gate.passed and gate.failures == []


def test_gate_failures_carry_the_numbers(binary: Case, dummy_binary: Case) -> None:
    table = binary.test.assign(group=np.where(binary.test["target"] == 1, "a", "b"))
    report = evaluate(
        dummy_binary.model,
        table,
        target="target",
        sensitive=["group"],
        against=binary.model,
        robustness=False,
    )
    policy = parse_policy(
        {
            "min": {"roc_auc": 0.9},
            "max": {"log_loss": 0.1},
            "max_regression": {"accuracy": 0.01},
            "max_fairness_gap": {"demographic_parity_difference": 0.1},
            "required": ["robustness", "slices"],
        }
    )
    gate = apply_policy(report, policy)
    assert not gate.passed
    champion_accuracy = report.comparison.champion_metrics["accuracy"]  # type: ignore[union-attr]
    ours = report.metrics["accuracy"]
    assert gate.failures == [
        "roc_auc 0.500 < min 0.900",
        f"log_loss {report.metrics['log_loss']:.3f} > max 0.100",
        f"accuracy {ours:.3f} is {champion_accuracy - ours:.3f} worse than "
        f"sklearn.pipeline.Pipeline {champion_accuracy:.3f} > max_regression 0.010",
        "required check 'robustness' did not run",
        "required check 'slices' did not run",
    ]


def test_gate_on_unfair_model_and_robustness_drop(binary: Case) -> None:
    table = binary.test.assign(group=np.where(binary.test["target"] == 1, "a", "b"))
    report = evaluate(binary.model, table, target="target", sensitive=["group"])
    gate = apply_policy(
        report,
        parse_policy(
            {"max_fairness_gap": {"demographic_parity_difference": 0.1}, "max_robustness_drop": 0.0}
        ),
    )
    dp = report.fairness[0].demographic_parity_difference
    assert f"demographic_parity_difference for group {dp:.3f} > max_fairness_gap 0.100" in (
        gate.failures
    )
    assert any(f.startswith("roc_auc under noise 0.3") for f in gate.failures)


def test_metric_the_task_lacks_fails(regression: Case) -> None:
    report = evaluate(regression.model, regression.test, target="target", robustness=False)
    gate = apply_policy(report, parse_policy({"min": {"roc_auc": 0.9, "r2": 0.2}}))
    assert gate.failures == ["roc_auc not computed for this model (min 0.900)"]


def test_a_rule_implies_its_check(binary: Case) -> None:
    """A gate with a regression rule fails when no champion was compared, not passes."""
    report = evaluate(binary.model, binary.test, target="target", robustness=False)
    gate = apply_policy(
        report,
        parse_policy({"max_regression": {"roc_auc": 0.01}, "max_robustness_drop": 0.1}),
    )
    assert not gate.passed
    assert gate.failures == [
        "required check 'comparison' did not run",
        "required check 'robustness' did not run",
    ]
