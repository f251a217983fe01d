"""Slices, fairness, robustness and the champion comparison on real models."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score

from shipyard.errors import InvalidArgumentError
from shipyard.validation import evaluate
from tests.validation.conftest import Case


def _with_groups(case: Case, *, unfair: bool) -> pd.DataFrame:
    """``group`` follows the target (unfair: predictions differ by group) or a coin."""
    rng = np.random.default_rng(0)
    table = case.test.copy()
    if unfair:
        flip = rng.random(len(table)) < 0.1
        table["group"] = np.where((table["target"] == 1) ^ flip, "a", "b")
    else:
        table["group"] = rng.choice(["a", "b"], len(table))
    return table


def test_slices_by_category_and_by_quantile_bins(binary: Case) -> None:
    table = _with_groups(binary, unfair=False)
    report = evaluate(
        binary.model, table, target="target", slices=["group", "mean radius"], robustness=False
    )
    by_group, by_radius = report.slices
    assert (by_group.column, by_group.binned) == ("group", False)
    assert [s.value for s in by_group.slices] == ["a", "b"]
    proba = binary.estimator.predict_proba(binary.x)[:, 1]
    for s in by_group.slices:
        mask = (table["group"] == s.value).to_numpy()
        assert s.rows == mask.sum()
        assert s.metrics["roc_auc"] == pytest.approx(
            roc_auc_score(table["target"][mask], proba[mask])
        )
    assert by_radius.binned and len(by_radius.slices) == 4
    assert sum(s.rows for s in by_radius.slices) == len(table)
    assert all(abs(s.rows - len(table) / 4) <= 2 for s in by_radius.slices)
    assert by_radius.slices[0].value.startswith(f"[{table['mean radius'].min():.4g},")
    assert by_radius.slices[-1].value.endswith(f"{table['mean radius'].max():.4g}]")
    assert any("quantile bins" in n for n in report.notes)


def test_slice_where_the_main_metric_is_undefined_is_none_in_json(binary: Case) -> None:
    table = binary.test.assign(kind=np.where(binary.test["target"] == 1, "pos", "neg"))
    report = evaluate(binary.model, table, target="target", slices=["kind"], robustness=False)
    assert all(np.isnan(s.metrics["roc_auc"]) for s in report.slices[0].slices)
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert json.loads(text)["slices"][0]["slices"][0]["metrics"]["roc_auc"] is None


def _fairness(case: Case, table: pd.DataFrame) -> tuple[float, float]:
    result = evaluate(
        case.model, table, target="target", sensitive=["group"], robustness=False
    ).fairness[0]
    assert result.demographic_parity_difference is not None
    assert result.equalized_odds_difference is not None
    return result.demographic_parity_difference, result.equalized_odds_difference


def test_demographic_parity_gap_is_large_when_positives_concentrate_in_a_group(
    binary: Case,
) -> None:
    unfair_dp, unfair_eo = _fairness(binary, _with_groups(binary, unfair=True))
    fair_dp, fair_eo = _fairness(binary, _with_groups(binary, unfair=False))
    assert unfair_dp > 0.6 and fair_dp < 0.15
    # The model is as accurate in both groups, so equalized odds holds nonetheless.
    assert unfair_eo < 0.15 and fair_eo < 0.2
    result = evaluate(
        binary.model,
        _with_groups(binary, unfair=True),
        target="target",
        sensitive=["group"],
        robustness=False,
    ).fairness[0]
    groups = {g.value: g for g in result.groups}
    assert set(groups) == {"a", "b"}
    rates = [g.metrics["selection_rate"] for g in groups.values()]
    assert max(rates) - min(rates) == pytest.approx(unfair_dp)


def test_equalized_odds_gap_is_large_when_errors_concentrate_in_a_group(binary: Case) -> None:
    wrong = binary.estimator.predict(binary.x) != binary.y.to_numpy()
    rng = np.random.default_rng(0)
    table = binary.test.assign(group=np.where(wrong | (rng.random(len(wrong)) < 0.03), "b", "a"))
    _, eo = _fairness(binary, table)
    assert eo >= 0.5  # group a has no errors: TPR 1, FPR 0; group b about half of each wrong
    result = evaluate(
        binary.model, table, target="target", sensitive=["group"], robustness=False
    ).fairness[0]
    a = next(g for g in result.groups if g.value == "a")
    assert a.metrics["accuracy"] == 1.0


def test_fairness_multiclass_and_regression(multiclass: Case, regression: Case) -> None:
    wine = multiclass.test.assign(group=np.where(multiclass.test["target"] == 0, "a", "b"))
    result = evaluate(
        multiclass.model, wine, target="target", sensitive=["group"], robustness=False
    ).fairness[0]
    assert result.demographic_parity_difference is not None
    assert result.demographic_parity_difference > 0.8
    assert "one-vs-rest" in result.note
    table = regression.test.assign(group=np.where(regression.test["sex"] > 0, "m", "f"))
    result = evaluate(
        regression.model, table, target="target", sensitive=["group"], robustness=False
    ).fairness[0]
    assert result.demographic_parity_difference is None
    assert result.equalized_odds_difference is None
    assert "classification" in result.note
    mask = (table["group"] == "f").to_numpy()
    pred = regression.estimator.predict(regression.x)
    female = next(g for g in result.groups if g.value == "f")
    assert female.metrics["r2"] == pytest.approx(r2_score(regression.y[mask], pred[mask]))


def test_robustness_degrades_under_heavy_noise_and_missing_values(binary: Case) -> None:
    report = evaluate(binary.model, binary.test, target="target")
    checks = {(c.kind, c.level): c for c in report.robustness}
    assert set(checks) == {("noise", 0.1), ("noise", 0.3), ("missing", 0.1), ("missing", 0.3)}
    baseline = report.metrics["roc_auc"]
    for check in checks.values():
        assert check.metric == "roc_auc" and check.baseline == baseline
        assert check.degradation == pytest.approx(baseline - check.value)
    assert checks["noise", 0.3].value < baseline
    assert checks["missing", 0.3].value < baseline
    assert checks["noise", 0.3].degradation > checks["noise", 0.1].degradation


def test_robustness_of_a_regression_counts_lower_error_as_better(regression: Case) -> None:
    report = evaluate(regression.model, regression.test, target="target")
    assert report.robustness and all(c.metric == "r2" for c in report.robustness)
    assert max(c.degradation for c in report.robustness) > 0


def test_a_clearly_better_model_wins_beyond_noise(binary: Case, dummy_binary: Case) -> None:
    report = evaluate(
        binary.model, binary.test, target="target", against=dummy_binary.model, robustness=False
    )
    c = report.comparison
    assert c is not None
    assert c.metric == "roc_auc" and c.champion == pytest.approx(0.5)
    assert c.ci_low > 0 and c.verdict == "better" and c.resamples == 1000
    assert c.difference == pytest.approx(report.metrics["roc_auc"] - 0.5)
    reverse = evaluate(
        dummy_binary.model, binary.test, target="target", against=binary.model, robustness=False
    ).comparison
    assert reverse is not None and reverse.ci_high < 0 and reverse.verdict == "worse"


def test_a_model_against_itself_is_no_difference(binary: Case, regression: Case) -> None:
    for case in (binary, regression):
        c = evaluate(
            case.model, case.test, target="target", against=case.model, robustness=False
        ).comparison
        assert c is not None
        assert c.ci_low <= 0 <= c.ci_high and c.verdict == "no difference"


def test_champion_without_probabilities_is_compared_on_accuracy(binary: Case) -> None:
    class Labels:
        def __init__(self, case: Case) -> None:
            self.model = case.estimator

        def predict(self, x: pd.DataFrame) -> np.ndarray:
            return self.model.predict(x)  # type: ignore[no-any-return]

    report = evaluate(
        binary.model,
        binary.test,
        target="target",
        against=Labels(binary),  # type: ignore[arg-type]
        robustness=False,
    )
    assert report.comparison is not None and report.comparison.metric == "accuracy"
    assert report.comparison.difference == 0
    assert any("accuracy" in n for n in report.notes)


def test_same_seed_same_report_and_seed_changes_draws(binary: Case) -> None:
    table = _with_groups(binary, unfair=False)
    kwargs = {"target": "target", "slices": ["group"], "sensitive": ["group"]}
    first = evaluate(binary.model, table, against=binary.model, **kwargs)  # type: ignore[arg-type]
    again = evaluate(binary.model, table, against=binary.model, **kwargs)  # type: ignore[arg-type]
    other = evaluate(binary.model, table, against=binary.model, seed=7, **kwargs)  # type: ignore[arg-type]
    assert first.to_dict() == again.to_dict()
    assert first.to_dict()["robustness"] != other.to_dict()["robustness"]
    assert first.metrics == other.metrics


def test_extra_columns_do_not_reach_the_model(binary: Case) -> None:
    table = binary.test.assign(note="x", id=range(len(binary.test)))
    report = evaluate(binary.model, table, target="target", robustness=False)
    assert report.metrics["accuracy"] == accuracy_score(
        binary.y, binary.estimator.predict(binary.x)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": "label"}, "no target column 'label'"),
        ({"target": "target", "slices": ["nope"]}, "no column(s) 'nope'"),
        ({"target": "target", "sensitive": ["nope"]}, "no column(s) 'nope'"),
        ({"target": "target", "task": "ranking"}, "unknown task 'ranking'"),
    ],
)
def test_bad_arguments_are_named(binary: Case, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate(binary.model, binary.test, **kwargs)  # type: ignore[arg-type]


def test_missing_feature_and_missing_target_values(binary: Case) -> None:
    with pytest.raises(InvalidArgumentError, match="'mean radius'"):
        evaluate(binary.model, binary.test.drop(columns="mean radius"), target="target")
    gappy = binary.test.astype({"target": float})
    gappy.loc[3, "target"] = np.nan
    with pytest.raises(InvalidArgumentError, match="missing on 1 row"):
        evaluate(binary.model, gappy, target="target")
