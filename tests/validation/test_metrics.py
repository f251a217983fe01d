"""Every reported number against scikit-learn, computed here independently."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from shipyard.validation import detect_task, evaluate
from shipyard.validation.metrics import resampled_scores
from tests.validation.conftest import Case


def test_binary_metrics_match_sklearn(binary: Case) -> None:
    report = evaluate(binary.model, binary.test, target="target", robustness=False)
    pred = binary.estimator.predict(binary.x)
    proba = binary.estimator.predict_proba(binary.x)
    y = binary.y
    assert report.task == "binary" and report.main_metric == "roc_auc"
    assert report.metrics == pytest.approx(
        {
            "accuracy": accuracy_score(y, pred),
            "precision": precision_score(y, pred),
            "recall": recall_score(y, pred),
            "f1": f1_score(y, pred),
            "roc_auc": roc_auc_score(y, proba[:, 1]),
            "log_loss": log_loss(y, proba),
        },
        rel=1e-12,
    )
    assert report.confusion is not None
    assert [list(r) for r in report.confusion.counts] == confusion_matrix(y, pred).tolist()
    observed, predicted = calibration_curve(y, proba[:, 1], n_bins=10)
    assert report.calibration is not None
    assert report.calibration.observed == pytest.approx(observed.tolist())
    assert report.calibration.mean_predicted == pytest.approx(predicted.tolist())
    assert report.classes == ("0", "1") and report.calibration.positive == "1"


def test_multiclass_metrics_are_macro_and_one_vs_rest(multiclass: Case) -> None:
    report = evaluate(multiclass.model, multiclass.test, target="target", robustness=False)
    pred = multiclass.estimator.predict(multiclass.x)
    proba = multiclass.estimator.predict_proba(multiclass.x)
    y = multiclass.y
    assert report.task == "multiclass"
    assert report.metrics == pytest.approx(
        {
            "accuracy": accuracy_score(y, pred),
            "precision": precision_score(y, pred, average="macro"),
            "recall": recall_score(y, pred, average="macro"),
            "f1": f1_score(y, pred, average="macro"),
            "roc_auc": roc_auc_score(y, proba, multi_class="ovr"),
            "log_loss": log_loss(y, proba),
        },
        rel=1e-12,
    )
    assert report.calibration is None
    assert report.confusion is not None and len(report.confusion.counts) == 3


def test_regression_metrics_and_residuals(regression: Case) -> None:
    report = evaluate(regression.model, regression.test, target="target", robustness=False)
    pred = regression.estimator.predict(regression.x)
    y = regression.y
    assert report.task == "regression" and report.main_metric == "r2"
    assert report.metrics == pytest.approx(
        {
            "mae": mean_absolute_error(y, pred),
            "rmse": np.sqrt(mean_squared_error(y, pred)),
            "r2": r2_score(y, pred),
        },
        rel=1e-12,
    )
    assert report.residuals is not None and report.residuals.rows == len(y)
    assert report.residuals.residual == pytest.approx((y - pred).tolist())
    assert report.confusion is None and report.classes == ()


def test_task_detection() -> None:
    assert detect_task(pd.Series([0, 1, 1]), has_proba=False) == "binary"
    assert detect_task(pd.Series(["a", "b", "c"]), has_proba=False) == "multiclass"
    assert detect_task(pd.Series(range(100)), has_proba=False) == "regression"
    assert detect_task(pd.Series([0.5, 1.5]), has_proba=False) == "regression"
    assert detect_task(pd.Series([0.5, 1.5]), has_proba=True) == "binary"


@pytest.mark.parametrize("metric", ["accuracy", "roc_auc", "log_loss"])
def test_bootstrap_scores_equal_sklearn_on_each_resample(binary: Case, metric: str) -> None:
    y = binary.y.to_numpy()
    pred = binary.estimator.predict(binary.x)
    proba = binary.estimator.predict_proba(binary.x)
    indices = np.random.default_rng(1).integers(0, len(y), size=(5, len(y)))
    fast = resampled_scores(metric, y, pred, proba, np.array([0, 1]), indices)
    reference = {
        "accuracy": lambda i: accuracy_score(y[i], pred[i]),
        "roc_auc": lambda i: roc_auc_score(y[i], proba[i, 1]),
        "log_loss": lambda i: log_loss(y[i], proba[i], labels=[0, 1]),
    }[metric]
    assert fast == pytest.approx([reference(i) for i in indices], rel=1e-9)


def test_bootstrap_scores_multiclass_auc_and_regression(multiclass: Case, regression: Case) -> None:
    y = multiclass.y.to_numpy()
    proba = multiclass.estimator.predict_proba(multiclass.x)
    pred = multiclass.estimator.predict(multiclass.x)
    indices = np.random.default_rng(2).integers(0, len(y), size=(4, len(y)))
    fast = resampled_scores("roc_auc", y, pred, proba, np.array([0, 1, 2]), indices)
    assert fast == pytest.approx(
        [roc_auc_score(y[i], proba[i], multi_class="ovr") for i in indices], rel=1e-9
    )
    y = regression.y.to_numpy()
    pred = regression.estimator.predict(regression.x)
    indices = np.random.default_rng(3).integers(0, len(y), size=(4, len(y)))
    for metric, reference in {
        "mae": mean_absolute_error,
        "rmse": lambda a, b: np.sqrt(mean_squared_error(a, b)),
        "r2": r2_score,
    }.items():
        fast = resampled_scores(metric, y, pred, None, None, indices)
        assert fast == pytest.approx([reference(y[i], pred[i]) for i in indices], rel=1e-9)
