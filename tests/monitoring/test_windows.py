"""Monitoring a deployment window by window: a real model, a real workspace, a real log."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import shipyard
from shipyard import data
from shipyard.entities.data import Severity
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.monitoring.windows import (
    MAX_WINDOWS,
    monitor_deployment,
    parse_window,
    resolve_reference,
    split_windows,
)
from tests.monitoring._logs import spread, write_failures, write_feedback, write_predictions

T0 = datetime(2024, 5, 1, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)
# Planted drift: most size features grow by 60 %, as if measured in other units.
SHIFTED = [c for c in load_breast_cancer().feature_names if c.startswith(("mean", "worst"))]


@pytest.mark.parametrize(
    ("text", "width"),
    [
        ("15m", timedelta(minutes=15)),
        ("1h", HOUR),
        (" 1d ", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
        ("30s", timedelta(seconds=30)),
        (timedelta(minutes=5), timedelta(minutes=5)),
    ],
)
def test_window_lengths(text: str | timedelta, width: timedelta) -> None:
    assert parse_window(text) == width


@pytest.mark.parametrize("text", ["1.5h", "h", "10", "1y", "0m", "-1h", "an hour"])
def test_window_lengths_that_are_not(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="window"):
        parse_window(text)
    with pytest.raises(InvalidArgumentError, match="longer than zero"):
        parse_window(timedelta(0))


def test_windows_split_the_period_and_the_last_may_be_short() -> None:
    windows = split_windows(T0, T0 + timedelta(minutes=150), HOUR)
    assert windows == [
        (T0, T0 + HOUR),
        (T0 + HOUR, T0 + 2 * HOUR),
        (T0 + 2 * HOUR, T0 + timedelta(minutes=150)),
    ]
    with pytest.raises(InvalidArgumentError, match="at most"):
        split_windows(T0, T0 + timedelta(days=365), timedelta(minutes=1))
    assert MAX_WINDOWS >= 24 * 366
    with pytest.raises(InvalidArgumentError, match="before it starts"):
        split_windows(T0, T0, HOUR)


@dataclass
class Deployment:
    model: Pipeline
    test: pd.DataFrame
    labelled: int


def _deploy(home: Path) -> Deployment:
    """Train on cancer@1 inside a run, log the model, and write four hours of traffic:
    10:00 as in training (with failures and some labels), 11:00 with planted drift, 12:00
    empty, 13:00 with too few rows."""
    frame = load_breast_cancer(as_frame=True).frame
    train, test = train_test_split(frame, test_size=0.4, random_state=0, stratify=frame["target"])
    data.add(train.reset_index(drop=True), "cancer")
    with shipyard.start_run(experiment="cancer", log_code=False) as run:
        table = data.load("cancer@1")
        x = table.drop(columns="target")
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(
            x, table["target"]
        )
        run.log_model(model, "cancer-clf", input_example=x.head())
    test = test.reset_index(drop=True)
    x_test = test.drop(columns="target")
    parts = {
        T0: x_test.iloc[:100],
        T0 + HOUR: x_test.iloc[100:200].assign(
            **{c: x_test[c].iloc[100:200] * 1.6 for c in SHIFTED}
        ),
        T0 + 3 * HOUR: x_test.iloc[200:210],
    }
    for start, inputs in parts.items():
        ids = [f"{start:%H}-{i}" for i in range(len(inputs))]
        write_predictions(
            home, "cancer-clf", inputs, timestamps=spread(start, len(inputs), HOUR),
            predictions=model.predict(inputs).tolist(), proba=model.predict_proba(inputs),
            classes=[0, 1], request_ids=ids,
        )  # fmt: skip
    write_failures(
        home, "cancer-clf", timestamps=[T0 + timedelta(minutes=m) for m in (5, 6, 7)],
        input_types={c: pa_double() for c in x_test.columns},
    )  # fmt: skip
    labelled = 40
    write_feedback(
        home,
        [
            (f"10-{i}", None, int(test["target"][i]), T0 + 2 * HOUR + timedelta(minutes=i))
            for i in range(labelled)
        ],
    )
    return Deployment(model, test, labelled)


def pa_double() -> object:
    import pyarrow as pa

    return pa.float64()


@pytest.mark.integration
def test_monitor_a_deployment_window_by_window(home: Path) -> None:
    deployment = _deploy(home)
    result = monitor_deployment("cancer-clf", reference="cancer@1", window="1h")
    assert result.reference == "cancer@1"
    assert (result.start, result.end) == (T0, T0 + 4 * HOUR)
    normal, drifted, empty, few = result.windows
    assert [w.start for w in result.windows] == [T0 + i * HOUR for i in range(4)]
    assert [w.rows for w in result.windows] == [100, 100, 0, 10]

    # Drift: planted in the second window only; the model's answers moved with it.
    assert normal.drift is not None and drifted.drift is not None
    assert not normal.drift.drifted and normal.drift.drifted_columns == ()
    assert drifted.drift.drifted and "mean radius" in drifted.drift.drifted_columns
    assert "target" not in {c.column for c in drifted.drift.columns}
    assert normal.drift.reference == "cancer@1" and normal.drift.window_start == T0
    assert drifted.drift.prediction is not None and normal.drift.prediction is not None
    assert empty.drift is None and few.drift is None
    notes = dict(result.notes)
    assert "fewer than 30" in notes[T0 + 3 * HOUR] and "no answered" in notes[T0 + 2 * HOUR]

    # Quality against the stored profile of cancer@1: the target is not expected of traffic.
    assert not any(f.severity is Severity.ERROR for f in normal.quality)
    assert ("out_of_range", "mean area") in {(f.check, f.column) for f in drifted.quality}
    assert empty.quality == ()

    # Performance where labels arrived; the estimate everywhere the model gave probabilities.
    y = deployment.test["target"]
    pred = deployment.model.predict(deployment.test.drop(columns="target"))
    assert normal.labelled_rows == deployment.labelled and drifted.labelled_rows == 0
    assert normal.performance is not None and drifted.performance is None
    assert normal.performance["accuracy"] == pytest.approx(accuracy_score(y[:40], pred[:40]))
    assert normal.label_delay_seconds is not None and normal.label_delay_seconds["max"] > 3600
    assert normal.estimated_performance is not None and normal.estimated_performance["rows"] == 100
    realised = accuracy_score(y[:100], pred[:100])
    assert normal.estimated_performance["accuracy"] == pytest.approx(realised, abs=0.05)
    assert empty.estimated_performance is None

    # Health, failed requests included.
    assert normal.health is not None and (normal.health.requests, normal.health.errors) == (103, 3)
    assert empty.health is not None and empty.health.requests == 0

    # The whole period, from a sample.
    assert result.drift is not None and result.drift.current_rows == 210
    assert result.drift.window_start == T0 and result.drift.window_end == T0 + 4 * HOUR
    json.dumps(result.to_dict(), allow_nan=False)
    assert normal.metrics()["health.error_rate"] == pytest.approx(3 / 103)


@pytest.mark.integration
def test_options_columns_and_the_period(home: Path) -> None:
    _deploy(home)
    result = monitor_deployment(
        "cancer-clf", reference="cancer@1", window="2h", start=T0 + HOUR,
        end=T0 + timedelta(hours=3, minutes=30), columns=["mean radius", "mean texture"],
        prediction_drift=False, estimate=False, drift_options={"share_threshold": 0.9},
        min_rows=5,
    )  # fmt: skip
    assert [(w.start, w.end) for w in result.windows] == [
        (T0 + HOUR, T0 + 3 * HOUR),
        (T0 + 3 * HOUR, T0 + timedelta(hours=3, minutes=30)),
    ]
    first, second = result.windows
    assert first.drift is not None and first.drift.share_threshold == 0.9
    assert [c.column for c in first.drift.columns] == ["mean radius", "mean texture"]
    assert first.drift.prediction is None and first.estimated_performance is None
    assert second.rows == 5 and second.drift is not None  # 10 rows over the hour, half of it
    with pytest.raises(NotFoundError, match="no input columns nope"):
        monitor_deployment("cancer-clf", reference="cancer@1", columns=["nope"])
    with pytest.raises(NotFoundError, match="no prediction log for model 'other'"):
        monitor_deployment("other", reference="cancer@1")


@pytest.mark.integration
def test_references_by_dataset_model_table_path_and_profile(home: Path, tmp_path: Path) -> None:
    _deploy(home)
    inputs = list(load_breast_cancer().feature_names)
    by_model = resolve_reference("model:cancer-clf@1", inputs=inputs)
    assert by_model.label == "cancer@1" and by_model.dataset is not None
    assert resolve_reference("cancer-clf@latest", inputs=inputs).label == "cancer@1"
    assert resolve_reference("dataset:cancer@1").profile == by_model.profile
    frame = data.load("cancer@1")
    assert resolve_reference(frame).label == "the DataFrame"
    path = tmp_path / "reference.parquet"
    frame.to_parquet(path)
    assert resolve_reference(path).label == str(path)
    profile = resolve_reference(by_model.profile)
    assert profile.data is None and profile.profile == by_model.profile
    with pytest.raises(NotFoundError):
        resolve_reference("dataset:nope@1")
    with pytest.raises(NotFoundError, match="neither a path"):
        resolve_reference("nope@1")
    with pytest.raises(NotFoundError, match="no table holding"):
        resolve_reference("model:cancer-clf@1", inputs=[*inputs, "not logged"])

    # A profile-only reference: drift from its bins, no prediction drift, noted.
    result = monitor_deployment("cancer-clf", reference=by_model.profile, end=T0 + 2 * HOUR)
    assert result.windows[1].drift is not None and result.windows[1].drift.drifted
    assert result.windows[1].drift.columns[0].from_profile
    assert any("no predictions" in note for _, note in result.notes)
    assert np.isfinite(result.windows[0].metrics()["drift.share"])


def _traffic(root: Path, hours: int, rows: int = 60, *, seed: int = 0) -> None:
    """``hours`` of traffic with inputs ``a`` and ``b``, each request labelled an hour later."""
    rng = np.random.default_rng(seed)
    for hour in range(hours):
        start = T0 + hour * HOUR
        ids = [f"{hour}-{i}" for i in range(rows)]
        write_predictions(
            root, "m", pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)}),
            timestamps=spread(start, rows, HOUR), predictions=[i % 2 for i in range(rows)],
            request_ids=ids,
        )  # fmt: skip
        later = start + HOUR + timedelta(minutes=5)
        write_feedback(root, [(r, None, i % 2, later) for i, r in enumerate(ids)])


def test_a_reference_without_the_logged_inputs_is_refused_by_name(tmp_path: Path) -> None:
    _traffic(tmp_path, 1)
    reference = pd.DataFrame({"age": np.arange(100.0), "income": np.arange(100.0)})
    with pytest.raises(InvalidArgumentError, match=r"none of the inputs logged for 'm' \(a, b\)"):
        monitor_deployment("m", reference=reference, log_folder=tmp_path, estimate=False)
    with pytest.raises(InvalidArgumentError, match="its columns are age, income"):
        monitor_deployment("m", reference=reference, log_folder=tmp_path, estimate=False)
    partial = reference.assign(b=np.arange(100.0))
    result = monitor_deployment(
        "m", reference=partial, log_folder=tmp_path, estimate=False, prediction_drift=False
    )
    assert result.windows[0].drift is not None
    assert [c.column for c in result.windows[0].drift.columns] == ["b"]


def test_the_period_sample_holds_answered_rows(tmp_path: Path) -> None:
    _traffic(tmp_path, 1, rows=40)
    write_failures(
        tmp_path, "m", timestamps=spread(T0, 400, HOUR),
        input_types={"a": pa_double(), "b": pa_double()},
    )  # fmt: skip
    reference = pd.DataFrame({"a": np.linspace(-2, 2, 500), "b": np.linspace(-2, 2, 500)})
    result = monitor_deployment(
        "m", reference=reference, log_folder=tmp_path, estimate=False, prediction_drift=False,
        sample_rows=35,
    )  # fmt: skip
    assert result.drift is not None and result.drift.current_rows == 35


def test_the_reference_is_sorted_once_and_the_feedback_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not once per window: 12 windows would sort the reference 13 times and read the
    feedback of every later hour again for each window."""
    import shipyard.monitoring.drift as drift_module
    import shipyard.monitoring.logs as logs_module

    _traffic(tmp_path, 12)
    reference = pd.DataFrame(
        {"a": np.random.default_rng(1).normal(size=5_000), "b": np.linspace(-3, 3, 5_000)}
    )
    sorted_sizes: list[int] = []
    numbers = drift_module._numbers

    def counted_numbers(values: Any) -> Any:
        sorted_sizes.append(len(values))
        return numbers(values)

    feedback_reads: list[str] = []
    segment_files = logs_module.segment_files

    def counted_files(root: Any, area: str, *args: Any, **kwargs: Any) -> list[str]:
        found = segment_files(root, area, *args, **kwargs)
        if area == "feedback":
            feedback_reads.extend(found)
        return found

    monkeypatch.setattr(drift_module, "_numbers", counted_numbers)
    monkeypatch.setattr(logs_module, "segment_files", counted_files)
    result = monitor_deployment(
        "m", reference=reference, log_folder=tmp_path, estimate=False, prediction_drift=False
    )
    assert len(result.windows) == 12 and all(w.drift is not None for w in result.windows)
    assert sorted_sizes.count(5_000) == 2  # each reference column once
    assert len(feedback_reads) == 12  # each feedback segment once
    # Latest label per row, window by window, as before.
    assert [w.labelled_rows for w in result.windows] == [60] * 12
    assert all(w.performance == {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
               for w in result.windows)  # fmt: skip


@pytest.mark.integration
def test_a_period_without_traffic_reports_empty_windows(home: Path) -> None:
    """What `monitor exporter` asks for when the last complete hour was quiet."""
    _deploy(home)
    quiet = monitor_deployment(
        "cancer-clf", reference="cancer@1", window="1h", start=T0 + 20 * HOUR,
        end=T0 + 22 * HOUR, home=home,
    )  # fmt: skip
    assert [w.rows for w in quiet.windows] == [0, 0]
    assert all(w.drift is None for w in quiet.windows) and quiet.drift is None
    assert "health.error_rate" not in quiet.windows[0].metrics()
