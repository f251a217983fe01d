"""Trigger detection: a cron schedule, and a measured or estimated performance drop read from
a real prediction log (segments written exactly as the model server writes them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.automation.policy import (
    Automation,
    PerformanceTrigger,
    ScheduleTrigger,
    parse_policy,
)
from shipyard.automation.triggers import detect
from shipyard.tracking import open_workspace
from tests.monitoring._logs import write_feedback, write_predictions

pytestmark = pytest.mark.integration


def _automation(tmp_path: Path, trigger: str) -> Automation:
    (tmp_path / "train.py").write_text("")
    text = f"""
automations:
  - name: a
    pipeline: train.py:train
    model: churn
    triggers:
      - {trigger}
"""
    return parse_policy(text, base=tmp_path).automations[0]


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def test_a_schedule_fires_once_for_its_latest_due_time(home: Path, tmp_path: Path) -> None:
    automation = _automation(tmp_path, 'schedule: "0 3 * * *"')
    assert isinstance(automation.triggers[0], ScheduleTrigger)
    backend = open_workspace().backend
    armed = _ms(datetime(2026, 12, 1, 12, tzinfo=UTC))
    before = _ms(datetime(2026, 12, 2, 2, 59, tzinfo=UTC))
    assert detect(automation, backend, armed_at=armed, now_ms=before) == []
    # Down for three days: one event, for the latest due time.
    later = _ms(datetime(2026, 12, 5, 9, tzinfo=UTC))
    (found,) = detect(automation, backend, armed_at=armed, now_ms=later)
    assert found.source == "cron 2026-12-05T03:00:00+00:00"
    again = detect(automation, backend, armed_at=armed, now_ms=later + 60_000)
    assert [f.source for f in again] == [found.source]  # same source: the same event id


def _log(home: Path, start: datetime, *, correct: float, labelled: bool) -> None:
    rng = np.random.default_rng(0)
    n = 200
    inputs = pd.DataFrame({"x": rng.normal(size=n)})
    truth = rng.integers(0, 2, size=n)
    right = rng.random(n) < correct
    predictions = np.where(right, truth, 1 - truth)
    confidence = np.full(n, correct)  # calibrated: the estimate equals the accuracy
    proba = [
        [1 - c, c] if p == 1 else [c, 1 - c] for p, c in zip(predictions, confidence, strict=True)
    ]
    stamps = [start + timedelta(seconds=i) for i in range(n)]
    ids = [f"r{i}" for i in range(n)]
    write_predictions(
        home,
        "churn",
        inputs,
        timestamps=stamps,
        predictions=predictions.tolist(),
        proba=proba,
        classes=[0, 1],
        request_ids=ids,
    )
    if labelled:
        write_feedback(
            home,
            [
                (rid, 0, int(t), ts + timedelta(seconds=1))
                for rid, t, ts in zip(ids, truth, stamps, strict=True)
            ],
        )


@pytest.mark.parametrize("labelled", [True, False], ids=["measured", "estimated"])
def test_a_performance_drop_fires_from_labels_or_the_estimate(
    home: Path, tmp_path: Path, labelled: bool
) -> None:
    automation = _automation(
        tmp_path,
        "performance: {model: churn, metric: accuracy, below: 0.8, window: 1h, min_labels: 50}",
    )
    trigger = automation.triggers[0]
    assert isinstance(trigger, PerformanceTrigger)
    hour = datetime(2026, 12, 6, 10, tzinfo=UTC)
    _log(home, hour, correct=0.6, labelled=labelled)
    backend = open_workspace().backend
    now = _ms(hour + timedelta(hours=1, minutes=5))
    armed = _ms(hour - timedelta(hours=2))
    (found,) = detect(automation, backend, armed_at=armed, now_ms=now, home=home)
    assert found.details["how"] == ("measured" if labelled else "estimated")
    assert 0.5 < found.details["value"] < 0.7
    assert found.source == "churn accuracy 2026-12-06T10:00:00+00:00/2026-12-06T11:00:00+00:00"
    # A window that ended before the automation was armed does not fire.
    late = _ms(hour + timedelta(hours=1))
    assert detect(automation, backend, armed_at=late, now_ms=now, home=home) == []


def test_a_healthy_window_does_not_fire(home: Path, tmp_path: Path) -> None:
    automation = _automation(
        tmp_path, "performance: {model: churn, metric: accuracy, below: 0.8, min_labels: 50}"
    )
    hour = datetime(2026, 12, 6, 10, tzinfo=UTC)
    _log(home, hour, correct=0.95, labelled=True)
    now = _ms(hour + timedelta(hours=1, minutes=5))
    backend = open_workspace().backend
    assert detect(automation, backend, armed_at=0, now_ms=now, home=home) == []
