"""The loop for real: train on a dataset version, serve the model as a process, send traffic
(some of it drifted) and labels, stop the server, then monitor the deployment from its log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import shipyard
from shipyard import data
from tests._cli import ROOT, run_shipyard
from tests.serving.test_real_server import _free_port, _wait_until_ready

pytestmark = pytest.mark.e2e
# serving to monitoring; the prediction log on PostgreSQL: tests/serving/test_real_server.py
STORE_KINDS = ("sqlite",)

SERVE = "from shipyard.cli import main; main()"


def _rows(x: pd.DataFrame) -> dict[str, object]:
    """A v2 request with one 1-D tensor per named column."""
    return {
        "inputs": [
            {"name": c, "shape": [len(x)], "datatype": "FP64", "data": x[c].tolist()}
            for c in x.columns
        ]
    }


def test_served_traffic_is_monitored_from_the_prediction_log(home: Path) -> None:
    frame = load_breast_cancer(as_frame=True).frame
    train, test = train_test_split(frame, test_size=0.5, random_state=0, stratify=frame["target"])
    data.add(train.reset_index(drop=True), "cancer")
    with shipyard.start_run(experiment="cancer", log_code=False) as run:
        table = data.load("cancer@1")
        x = table.drop(columns="target")
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        run.log_model(clf.fit(x, table["target"]), "cancer", input_example=x.head())
    test = test.reset_index(drop=True)
    x_test = test.drop(columns="target")

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, "serve", "cancer@1", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    started = datetime.now(UTC)
    try:
        _wait_until_ready(f"{base}/v2/health/ready", server)
        ids: list[str] = []
        with httpx.Client(base_url=base, timeout=30) as http:
            for start in range(0, 150, 10):  # like training: 150 rows in 15 requests
                reply = http.post("/v2/models/cancer/infer", json=_rows(x_test[start : start + 10]))
                assert reply.status_code == 200, reply.text
                ids.append(reply.headers["x-request-id"])
            bad = http.post("/v2/models/cancer/infer", json=_rows(x_test[["mean radius"]][:2]))
            assert bad.status_code in (400, 422)
            labels = [
                {"request_id": rid, "label": int(label)}
                for rid, label in zip(ids, test["target"][: len(ids) * 10 : 10], strict=True)
            ]
            # every request's first row is labelled; others stay unlabelled
            labels = [{**item, "row": 0} for item in labels]
            assert http.post("/feedback", json=labels).json()["accepted"] == len(labels)
    finally:
        server.send_signal(signal.SIGTERM)
        _out, err = server.communicate(timeout=90)
    assert server.returncode in (0, -signal.SIGTERM), err

    since = started.replace(second=0, microsecond=0) - timedelta(minutes=1)
    until = datetime.now(UTC) + timedelta(minutes=1)
    done = run_shipyard(
        "monitor", "drift", "--reference", "cancer@1", "--current", "cancer", "--window", "1d",
        "--since", since.strftime("%Y-%m-%dT%H:%M:%S"),
        "--until", until.strftime("%Y-%m-%dT%H:%M:%S"), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    [window] = [w for w in result["windows"] if w["rows"]]
    assert window["rows"] == 150
    assert window["health"]["requests"] == 16 and window["health"]["errors"] == 1
    assert window["labelled_rows"] == 15
    assert window["performance"]["accuracy"] > 0.8
    assert 0.8 < window["estimated_performance"]["accuracy"] <= 1.0
    drift = window["drift"]
    assert {c["column"] for c in drift["columns"]} == set(x_test.columns)
    assert drift["prediction"] is not None
    assert not drift["drifted"]  # the same distribution as training
