"""Measured performance where labels arrived, and the CBPE estimate where they did not."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

import shipyard
from shipyard.monitoring.logs import read_predictions
from shipyard.monitoring.performance import (
    LoggedVersions,
    estimate_performance,
    estimated_performance,
    label_delays,
    measured_performance,
)
from shipyard.validation.metrics import classification_metrics
from tests.monitoring._logs import write_failures, write_feedback, write_predictions

T0 = datetime(2024, 5, 1, 10, tzinfo=UTC)


def _logistic_data(n: int, seed: int, shift: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows whose labels really follow a logistic model, so its fit is calibrated."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)) + np.array([shift, 0.0, 0.0, 0.0])
    logit = x @ np.array([1.5, -1.0, 0.5, 0.0]) + 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(x, columns=["a", "b", "c", "d"]), y


@pytest.fixture(scope="module")
def calibrated() -> LogisticRegression:
    x, y = _logistic_data(20_000, seed=1)
    return LogisticRegression().fit(x, y)


# --- CBPE -------------------------------------------------------------------------------------


def _as_weighted(proba: np.ndarray, predicted: np.ndarray) -> tuple[Any, Any, Any]:
    """Each row once per class, labelled with it and weighted by its probability: the
    expected confusion matrix CBPE builds is this data's weighted confusion matrix."""
    n, k = proba.shape
    y = np.repeat(np.arange(k)[None, :], n, axis=0).ravel()
    return y, np.repeat(predicted, k), proba.ravel()


@pytest.mark.parametrize("k", [2, 4])
def test_cbpe_is_the_metric_of_the_expected_confusion_matrix(k: int) -> None:
    rng = np.random.default_rng(k)
    proba = rng.dirichlet(np.ones(k) * 0.7, size=300)
    predicted = proba.argmax(axis=1)
    estimate = estimate_performance(proba, list(range(k)))
    y, pred, weight = _as_weighted(proba, predicted)
    average: dict[str, Any] = {"average": "binary"} if k == 2 else {"average": "macro"}
    assert estimate["accuracy"] == pytest.approx(accuracy_score(y, pred, sample_weight=weight))
    assert estimate["accuracy"] == pytest.approx(proba.max(axis=1).mean())
    for name, metric in (
        ("precision", precision_score),
        ("recall", recall_score),
        ("f1", f1_score),
    ):
        assert estimate[name] == pytest.approx(metric(y, pred, sample_weight=weight, **average))
    scores = np.repeat(proba, k, axis=0)
    truth, scores = (y, scores[:, 1]) if k == 2 else (np.eye(k)[y], scores)
    expected_auc = roc_auc_score(truth, scores, sample_weight=weight, average="macro")
    assert estimate["roc_auc"] == pytest.approx(expected_auc)


def test_cbpe_uses_the_logged_prediction_not_only_the_most_probable_class() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert estimate_performance(proba, [0, 1])["accuracy"] == pytest.approx(0.85)
    # A model whose threshold is not 0.5 answered class 1 for the first row.
    assert estimate_performance(proba, [0, 1], [1, 1])["accuracy"] == pytest.approx(0.45)
    # The logged type need not be the classes' own: 1.0, True and numpy's 1 are class 1.
    for logged in ([1.0, 1.0], [True, True], np.array([1, 1])):
        assert estimate_performance(proba, [0, 1], logged)["accuracy"] == pytest.approx(0.45)
    assert estimate_performance(proba, [False, True], [1, 1])["accuracy"] == pytest.approx(0.45)
    assert estimate_performance(np.empty((0, 2)), [0, 1]) == dict.fromkeys(
        ("accuracy", "precision", "recall", "f1", "roc_auc")
    )


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_cbpe_estimates_held_out_accuracy_of_a_calibrated_model(
    calibrated: LogisticRegression, shift: float
) -> None:
    """Also under covariate shift (P(x) moves, P(y | x) stays), where accuracy changes."""
    x, y = _logistic_data(10_000, seed=2, shift=shift)
    proba = calibrated.predict_proba(x)
    predicted = calibrated.predict(x)
    estimate = estimate_performance(proba, calibrated.classes_.tolist(), predicted)
    realised = classification_metrics(y, predicted, proba, calibrated.classes_)
    assert estimate["accuracy"] == pytest.approx(realised["accuracy"], abs=0.015)
    assert estimate["f1"] == pytest.approx(realised["f1"], abs=0.02)
    assert estimate["roc_auc"] == pytest.approx(realised["roc_auc"], abs=0.02)


def test_cbpe_misses_when_probabilities_are_not_calibrated(calibrated: LogisticRegression) -> None:
    """What the estimate rests on: over-confident scores overstate accuracy."""
    x, y = _logistic_data(10_000, seed=3)
    sharp = calibrated.predict_proba(x) ** 4
    sharp /= sharp.sum(axis=1, keepdims=True)
    estimate = estimate_performance(sharp, [0, 1])
    assert estimate["accuracy"] > accuracy_score(y, sharp.argmax(axis=1)) + 0.05


# --- measured ---------------------------------------------------------------------------------


def test_metrics_on_the_rows_whose_labels_arrived(
    tmp_path: Path, calibrated: LogisticRegression
) -> None:
    x, y = _logistic_data(200, seed=4)
    proba = calibrated.predict_proba(x)
    predicted = calibrated.predict(x)
    ids = [f"r{i}" for i in range(200)]
    write_predictions(
        tmp_path, "clf", x, timestamps=[T0] * 200, predictions=predicted.tolist(), proba=proba,
        classes=[0, 1], request_ids=ids,
    )  # fmt: skip
    write_failures(tmp_path, "clf", timestamps=[T0], input_types={})
    delays = [60.0 * (i + 1) for i in range(120)]
    write_feedback(
        tmp_path,
        [(ids[i], 0, int(y[i]), T0 + timedelta(seconds=delays[i])) for i in range(120)],
    )
    measured = measured_performance(read_predictions("clf", root=tmp_path))
    assert measured.labelled_rows == 120 and measured.task == "binary"
    expected = classification_metrics(y[:120], predicted[:120], proba[:120], np.array([0, 1]))
    assert measured.metrics == pytest.approx(expected)
    assert measured.label_delay_seconds == pytest.approx(
        {"p50": np.percentile(delays, 50), "p95": np.percentile(delays, 95), "max": 7200.0}
    )


def test_text_classes_without_probabilities(tmp_path: Path) -> None:
    write_predictions(
        tmp_path, "clf", pd.DataFrame({"a": range(4)}), timestamps=[T0] * 4,
        predictions=["yes", "no", "yes", "no"], request_ids=["a", "b", "c", "d"],
    )  # fmt: skip
    later = T0 + timedelta(minutes=1)
    write_feedback(
        tmp_path, [("a", None, "yes", later), ("b", None, "yes", later), ("c", 0, "yes", later)]
    )
    measured = measured_performance(read_predictions("clf", root=tmp_path))
    assert measured.labelled_rows == 3
    assert measured.metrics is not None and measured.metrics["accuracy"] == pytest.approx(2 / 3)
    assert "roc_auc" not in measured.metrics


@pytest.mark.parametrize(
    ("predictions", "labels"),
    [
        ([0.0, 1.0, 1.0, 0.0], [0, 1, 1, 0]),  # a float64 prediction column, JSON integers
        ([0, 1, 1, 0], [False, True, True, False]),  # bools logged as int64, JSON booleans
    ],
)
def test_labels_and_predictions_of_different_number_types_compare_as_numbers(
    tmp_path: Path, predictions: list[Any], labels: list[Any]
) -> None:
    ids = ["a", "b", "c", "d"]
    write_predictions(
        tmp_path, "clf", pd.DataFrame({"a": range(4)}), timestamps=[T0] * 4,
        predictions=predictions, request_ids=ids,
    )  # fmt: skip
    later = T0 + timedelta(minutes=1)
    write_feedback(tmp_path, [(r, None, v, later) for r, v in zip(ids, labels, strict=True)])
    measured = measured_performance(read_predictions("clf", root=tmp_path))
    assert measured.task == "binary" and measured.metrics is not None
    assert measured.metrics["accuracy"] == 1.0 and measured.metrics["f1"] == 1.0


def test_numbers_and_text_that_truly_mix_compare_as_text(tmp_path: Path) -> None:
    write_predictions(
        tmp_path, "clf", pd.DataFrame({"a": range(3)}), timestamps=[T0] * 3,
        predictions=["1", "0", "1"], request_ids=["a", "b", "c"],
    )  # fmt: skip
    later = T0 + timedelta(minutes=1)
    write_feedback(tmp_path, [("a", 0, 1.0, later), ("b", 0, 0, later), ("c", 0, 0, later)])
    measured = measured_performance(read_predictions("clf", root=tmp_path))
    assert measured.metrics is not None and measured.metrics["accuracy"] == pytest.approx(2 / 3)


def test_regression_metrics(tmp_path: Path) -> None:
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    model = LinearRegression().fit(x[:300], y[:300])
    pred = model.predict(x[300:])
    ids = [f"r{i}" for i in range(len(pred))]
    write_predictions(
        tmp_path, "reg", x[300:], timestamps=[T0] * len(pred), predictions=pred.tolist(),
        request_ids=ids,
    )  # fmt: skip
    write_feedback(
        tmp_path,
        [(i, 0, float(v), T0 + timedelta(hours=1)) for i, v in zip(ids, y[300:], strict=True)],
    )
    measured = measured_performance(read_predictions("reg", root=tmp_path))
    assert measured.task == "regression" and measured.labelled_rows == len(pred)
    assert measured.metrics is not None
    assert measured.metrics["rmse"] == pytest.approx(float(np.sqrt(np.mean((y[300:] - pred) ** 2))))
    assert measured.metrics["mae"] == pytest.approx(float(np.mean(np.abs(y[300:] - pred))))
    assert measured.label_delay_seconds == {"p50": 3600.0, "p95": 3600.0, "max": 3600.0}


def test_few_integer_labels_of_a_regressor_are_still_regression(tmp_path: Path) -> None:
    write_predictions(
        tmp_path, "reg", pd.DataFrame({"a": range(3)}), timestamps=[T0] * 3,
        predictions=[10.5, 20.0, 29.5], request_ids=["a", "b", "c"],
    )  # fmt: skip
    later = T0 + timedelta(minutes=1)
    write_feedback(tmp_path, [("a", 0, 10, later), ("b", 0, 20, later), ("c", 0, 30, later)])
    measured = measured_performance(read_predictions("reg", root=tmp_path))
    assert measured.task == "regression" and measured.metrics is not None
    assert measured.metrics["mae"] == pytest.approx(1 / 3)


def test_no_labels_no_metrics(tmp_path: Path) -> None:
    write_predictions(tmp_path, "clf", pd.DataFrame({"a": [1]}), timestamps=[T0], predictions=[1])
    measured = measured_performance(read_predictions("clf", root=tmp_path))
    assert (measured.metrics, measured.labelled_rows, measured.label_delay_seconds) == (
        None,
        0,
        None,
    )
    assert label_delays([]) is None


# --- estimated, through the log -------------------------------------------------------------


def test_the_estimate_reads_logged_probabilities(
    tmp_path: Path, calibrated: LogisticRegression
) -> None:
    x, _ = _logistic_data(300, seed=5)
    proba = calibrated.predict_proba(x)
    write_predictions(
        tmp_path, "clf", x, timestamps=[T0] * 300, predictions=calibrated.predict(x).tolist(),
        proba=proba, classes=[0, 1],
    )  # fmt: skip
    estimated = estimated_performance(read_predictions("clf", root=tmp_path))
    assert estimated is not None and estimated["rows"] == 300
    assert estimated["accuracy"] == pytest.approx(proba.max(axis=1).mean())


@pytest.mark.integration
def test_without_logged_probabilities_the_logged_version_computes_them(
    home: Path, calibrated: LogisticRegression, caplog: pytest.LogCaptureFixture
) -> None:
    x, y = _logistic_data(400, seed=6)
    regressor = LinearRegression().fit(x, y)
    with shipyard.start_run(experiment="monitoring", log_code=False) as run:
        run.log_model(calibrated, "clf", input_example=x.head())
        run.log_model(regressor, "reg", input_example=x.head())
    predicted = calibrated.predict(x).tolist()
    write_predictions(home, "clf", x, timestamps=[T0] * 400, predictions=predicted)
    estimated = estimated_performance(read_predictions("clf"), LoggedVersions("clf"))
    expected = estimate_performance(calibrated.predict_proba(x), [0, 1], predicted)
    assert estimated == pytest.approx({**expected, "rows": 400.0})
    assert estimated_performance(read_predictions("clf")) is None

    write_predictions(
        home, "reg", x, timestamps=[T0] * 400, predictions=regressor.predict(x).tolist()
    )
    with caplog.at_level(logging.DEBUG, logger="shipyard.monitoring.performance"):
        assert estimated_performance(read_predictions("reg"), LoggedVersions("reg")) is None
    assert "has no predict_proba" in caplog.text
    with caplog.at_level(logging.DEBUG, logger="shipyard.monitoring.performance"):
        write_predictions(
            home, "gone", x, timestamps=[T0] * 400, predictions=predicted, version="9"
        )
        assert estimated_performance(read_predictions("gone"), LoggedVersions("gone")) is None
    assert "cannot load gone@9" in caplog.text
