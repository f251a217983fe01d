"""The monitoring pages: what is monitored, and one model's drift per feature, share drifted,
performance (measured and estimated), health and alert events over time — from a real model,
a prediction log as the model server writes it, labels, and alert rules evaluated by the
project's own monitor, on SQLite and PostgreSQL, and once in a real browser."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

import shipyard
from shipyard import data
from shipyard.deploy.service import Deployments
from shipyard.monitoring.alerts import parse_monitors, run_monitor
from shipyard.monitoring.windows import DeploymentMonitoring, monitor_deployment
from shipyard.server.ui.format import number
from tests.monitoring._logs import spread, write_failures, write_feedback, write_predictions
from tests.ui.conftest import Live, Pages, logged_in

pytestmark = pytest.mark.integration
STORE_KINDS = ("sqlite",)  # pages; the queries behind them run on PostgreSQL in tests/store

T0 = datetime(2024, 5, 1, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)
FEATURES = ["tenure", "spend", "calls"]


@dataclass
class Monitored:
    result: DeploymentMonitoring
    accuracy: float
    """Measured accuracy of the first window (its labelled rows)."""


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tenure": rng.normal(24, 6, n),
            "spend": rng.normal(50, 10, n),
            "calls": rng.normal(3, 1, n),
        }
    )


def make_monitoring(home: Path) -> Monitored:
    """Train churn-clf on churn-train@1 inside a run, deploy it, log four hours of traffic
    (10:00 as in training with three failures and labels, 11:00 with spend and calls
    drifted, 12:00
    and 13:00 as in training), and evaluate a drift-share alert rule over the windows."""
    rng = np.random.default_rng(3)
    train = _frame(rng, 600)
    train["churned"] = (train["spend"] + rng.normal(0, 5, 600) > 52).astype(int)
    data.add(train, "churn-train")
    with shipyard.start_run(experiment="churn", log_code=False) as run:
        table = data.load("churn-train@1")
        x = table[FEATURES]
        model = LogisticRegression(max_iter=500).fit(x, table["churned"])
        run.log_model(model, "churn-clf", input_example=x.head())
    backend = shipyard.open_workspace(home).backend
    Deployments(backend, "mia").create("churn-live", "churn-clf@1")
    hours = {
        T0: _frame(rng, 120),
        T0 + HOUR: _frame(rng, 120).assign(
            spend=lambda f: f["spend"] * 1.8 + 10, calls=lambda f: f["calls"] + 2
        ),
        T0 + 2 * HOUR: _frame(rng, 120),
        T0 + 3 * HOUR: _frame(rng, 120),
    }
    labels = []
    for start, inputs in hours.items():
        ids = [f"{start:%H}-{i}" for i in range(len(inputs))]
        write_predictions(
            home, "churn-clf", inputs, timestamps=spread(start, len(inputs), HOUR),
            predictions=model.predict(inputs).tolist(), proba=model.predict_proba(inputs),
            classes=[0, 1], request_ids=ids, latency_ms=8.0 + start.hour,
        )  # fmt: skip
        if start == T0:
            truth = (inputs["spend"] + rng.normal(0, 5, len(inputs)) > 52).astype(int)
            labels = [
                (ids[i], None, int(truth[i]), T0 + 2 * HOUR + timedelta(minutes=i))
                for i in range(60)
            ]
            accuracy = accuracy_score(truth[:60], model.predict(inputs)[:60])
    write_failures(
        home, "churn-clf", timestamps=[T0 + timedelta(minutes=m) for m in (5, 6, 7)],
        input_types={c: _double() for c in FEATURES},
    )  # fmt: skip
    write_feedback(home, labels)
    result = monitor_deployment("churn-clf", reference="churn-train@1", window="1h", home=home)
    config = parse_monitors(
        {
            "monitors": [
                {
                    "model": "churn-clf",
                    "window": "1h",
                    "reference": "churn-train@1",
                    "rules": [
                        {
                            "name": "drift-share",
                            "metric": "drift.share",
                            "op": ">=",
                            "threshold": 0.3,
                            "severity": "error",
                        },
                    ],
                }
            ]
        }
    )
    run_monitor(backend, config.monitors[0], result.windows, send=False)
    return Monitored(result, float(accuracy))


def _double() -> object:
    import pyarrow as pa

    return pa.float64()


def test_what_is_monitored_one_models_windows_and_the_choices(users: Path) -> None:
    """One workspace for every check (filling it is the slow part)."""
    made = make_monitoring(users)
    vic = logged_in(users, "vic")
    _check_the_windows(vic, made)
    _check_the_choices(vic)
    from shipyard.server import create_app

    stranger = Pages(create_app(users, auth=True))
    answer = stranger.get("/monitoring/churn-clf")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def _check_the_windows(vic: Pages, made: Monitored) -> None:
    index = vic.get("/monitoring")
    assert index.status_code == 200
    row = re.search(r'<tr>\s*<td><a href="/monitoring/churn-clf">.*?</tr>', index.text, re.S)
    assert row is not None
    assert 'href="/deployments/churn-live"' in row.group(0)
    assert ">483<" in row.group(0)  # 480 answered rows and 3 failures
    assert "drift-share" in index.text and "resolved" in index.text

    page = vic.get("/monitoring/churn-clf")
    assert page.status_code == 200
    text = page.text
    assert "Computed when this page loaded" in text
    assert "<code>churn-train@1</code>" in text and "model:churn-clf@1" in text  # the default
    normal, drifted, _, _ = made.result.windows
    assert drifted.drift is not None and drifted.drift.drifted
    assert normal.drift is not None and not normal.drift.drifted
    spend = drifted.drift.column("spend")
    assert spend.drifted and spend.distance is not None
    # drift per feature over time: a line per feature with a point per window
    drift = text.split('id="drift"', 1)[1].split('id="share"', 1)[0]
    lines = dict(re.findall(r'<polyline[^>]*data-series="([^"]+)" data-points="(\d+)"', drift))
    assert {"spend", "tenure", "calls"} <= set(lines) and lines["spend"] == "4"
    assert "Wasserstein distance (reference sd)" in drift
    assert "window start (UTC)" in drift
    assert f'{number(spend.distance)} <span class="tag">drifted</span>' in drift
    # the share of drifted features against the dataset threshold
    share = text.split('id="share"', 1)[1].split('id="performance"', 1)[0]
    assert "% of features drifted" in share and share.count("<polyline") == 2
    # performance: measured where labels arrived, estimated in every window
    performance = text.split('id="performance"', 1)[1].split('id="health"', 1)[0]
    assert 'data-series="measured on labelled rows" data-points="1"' in performance
    assert 'data-series="estimated (CBPE)" data-points="4"' in performance
    assert normal.performance is not None
    assert normal.performance["accuracy"] == pytest.approx(made.accuracy)
    assert number(made.accuracy) in text
    assert normal.estimated_performance is not None
    assert number(normal.estimated_performance["accuracy"]) in text
    # health: the first window's requests include the three failures
    assert normal.health is not None and normal.health.requests == 123
    windows = text.split('id="windows-table"', 1)[1]
    assert re.search(r"2024-05-01 10:00:00</td>\s*<td class=\"n\">120</td>", windows)
    assert '<td class="n">123</td><td class="n">3</td><td class="n">2.44 %</td>' in windows
    assert "latency (ms)" in text and "error rate (% of requests)" in text
    # alert events, newest first
    alerts = text.split('id="alerts"', 1)[1]
    states = re.findall(r'<span class="status (?:fail|pass)">(firing|resolved)</span>', alerts)
    assert states == ["resolved", "firing"]
    assert number(drifted.drift.share_drifted) in alerts


def _check_the_choices(vic: Pages) -> None:
    two = vic.get("/monitoring/churn-clf?window=2h&windows=1").text
    assert "2024-05-01 12:00:00 to 2024-05-01 14:00:00" in two and "Earlier windows" in two
    assert "until=2024-05-01T10%3A00" in two
    earlier = vic.get("/monitoring/churn-clf?window=2h&windows=1&until=2024-05-01T10:00").text
    assert "2024-05-01 10:00:00 to 2024-05-01 12:00:00" in earlier and "Later windows" in earlier
    # a reference that cannot be used: said why, health still drawn
    bad = vic.get("/monitoring/churn-clf?reference=nope@1")
    assert bad.status_code == 400
    assert "cannot be used" in bad.text and "latency (ms)" in bad.text
    assert vic.get("/monitoring/churn-clf?window=soon").status_code == 400
    assert vic.get("/monitoring/churn-clf?until=yesterday").status_code == 400
    missing = vic.get("/monitoring/nope")
    assert missing.status_code == 404 and "nothing is monitored" in missing.text
    assert vic.get("/monitoring/..%2Fetc").status_code == 404


def test_monitoring_pages_in_a_browser(sqlite_users: Path, live: Live) -> None:
    make_monitoring(sqlite_users)
    live.login("vic")
    live.goto("/monitoring")
    assert live.axe() == []
    live.shot("monitoring")
    live.page.get_by_role("link", name="churn-clf").first.click()
    live.page.wait_for_load_state("networkidle")
    assert live.page.url.endswith("/monitoring/churn-clf")
    spend = live.page.locator('#drift ~ div svg.chart polyline[data-series="spend"]')
    assert spend.count() == 1
    points = (spend.get_attribute("points") or "").split()
    assert len(points) == 4
    assert live.page.locator("#drift ~ div svg.chart circle").count() >= 12
    live.shot("model")
    assert live.axe() == []
