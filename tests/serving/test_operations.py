"""Metrics, the prediction log, feedback, adaptive batching and hot swap over ASGI."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import shipyard
from shipyard.registry import Registry
from tests.serving.conftest import Trained, register, serve

pytestmark = pytest.mark.integration


def _v2(x: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "x",
                "shape": list(x.shape),
                "datatype": "FP64",
                "data": x.to_numpy().ravel().tolist(),
            }
        ]
    }


def test_metrics_count_requests_by_model_version_protocol_status(
    client: Any, trained: Trained
) -> None:
    x = trained.x.head(1)
    client.post("/v2/models/cancer/infer", json=_v2(x))
    client.post("/invocations", json={"instances": x.to_numpy().tolist()})
    client.post("/invocations", json={"instances": [[1.0]]})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'shipyard_requests_total{model="cancer",protocol="v2",status="200",version="1"} 1.0' in (
        text
    )
    assert 'protocol="mlflow",status="400",version="1"} 1.0' in text
    assert 'shipyard_request_duration_seconds_bucket{le="0.5",model="cancer",protocol="v2"}' in (
        text
    )
    assert "shipyard_requests_in_flight 0.0" in text
    assert 'shipyard_model_load_seconds{model="cancer",version="1"}' in text
    assert "shipyard_batch_size_count" in text
    assert "shipyard_prediction_log_dropped_total 0.0" in text


def _read(root: Path) -> Any:
    import duckdb

    return duckdb.sql(
        f"select * from read_parquet('{root}/**/*.parquet', hive_partitioning=true) "  # noqa: S608 - a test folder
        "order by request_id, row"
    ).df()


def test_every_prediction_is_logged_with_its_request_id(client: Any, trained: Trained) -> None:
    x = trained.x.head(2)
    first = client.post("/v2/models/cancer/infer", json=_v2(x))
    second = client.post(
        "/invocations",
        json={"dataframe_records": x.head(1).to_dict("records")},
        headers={"x-request-id": "mine-1"},
    )
    assert second.headers["x-request-id"] == "mine-1"
    client.post("/invocations", json={"instances": [[1.0]]})  # failed: not logged
    client.server.close()  # graceful shutdown flushes
    root = trained.home / "predictions"
    parts = list(root.glob("model=cancer/hour=*/part-*.parquet"))
    assert parts and not list(root.rglob(".*.tmp"))
    log = _read(root)
    assert sorted(set(log["request_id"])) == sorted([first.headers["x-request-id"], "mine-1"])
    assert len(log) == 3
    row = log[log["request_id"] == "mine-1"].iloc[0]
    assert row["model"] == "cancer" and row["version"] == "1" and row["protocol"] == "mlflow"
    assert row["latency_ms"] > 0
    import json

    assert json.loads(row["inputs"])["mean radius"] == x.iloc[0]["mean radius"]
    assert json.loads(row["output"]) == {"predict": int(trained.clf.predict(x.head(1))[0])}


def test_feedback_is_written_by_request_id(client: Any, trained: Trained) -> None:
    ok = client.post("/feedback", json={"request_id": "r1", "label": 1})
    assert ok.status_code == 200 and ok.json() == {"accepted": 1, "dropped": 0}
    many = client.post(
        "/feedback",
        json=[{"request_id": "r2", "label": 0, "row": 3}, {"request_id": "r3", "label": "benign"}],
    )
    assert many.json()["accepted"] == 2
    bad = client.post("/feedback", json=[{"request_id": "r4"}])
    assert bad.status_code == 400 and "label" in bad.json()["error"]
    assert client.post("/feedback", json={"label": 1}).status_code == 400
    client.server.close()
    log = _read(trained.home / "feedback")
    assert list(log["request_id"]) == ["r1", "r2", "r3"]
    assert list(log["label"]) == ["1", "0", '"benign"']


def test_a_full_log_buffer_drops_and_counts_never_fails(trained: Trained) -> None:
    client = serve(refs=["cancer@champion"], log_queue_size=1)
    try:
        client.server.log.close()  # the writer stops: the queue can only fill up
        x = trained.x.head(1)
        for _ in range(3):
            assert client.post("/v2/models/cancer/infer", json=_v2(x)).status_code == 200
        assert "shipyard_prediction_log_dropped_total 2.0" in client.get("/metrics").text
    finally:
        client.close()


def test_concurrent_single_rows_are_scored_in_batches(trained: Trained) -> None:
    client = serve(refs=["cancer@champion"], max_batch_size=16, max_batch_wait_ms=20)
    try:
        rows = [trained.x.iloc[[i]] for i in range(40)]
        responses = client.post_many("/v2/models/cancer/infer", [_v2(r) for r in rows])
        assert [r.status_code for r in responses] == [200] * 40
        got = [r.json()["outputs"][0]["data"][0] for r in responses]
        assert got == trained.clf.predict(trained.x.head(40)).tolist()
        text = client.get("/metrics").text
        count = float(text.split('shipyard_batch_size_count{model="cancer"} ')[1].split()[0])
        assert count < 40  # some rows shared a model call
    finally:
        client.close()


def test_a_bad_request_in_a_batch_fails_alone(trained: Trained) -> None:
    client = serve(refs=["cancer@champion"], max_batch_wait_ms=20)
    try:
        good = _v2(trained.x.head(1))
        bad = _v2(trained.x.iloc[:, :29].head(1))
        responses = client.post_many("/v2/models/cancer/infer", [good, bad, good])
        assert [r.status_code for r in responses] == [200, 400, 200]
    finally:
        client.close()


def test_hot_swap_when_the_alias_moves_without_failed_requests(trained: Trained) -> None:
    import threading

    client = serve(refs=["cancer@champion"], refresh_seconds=0.05)
    try:
        x = trained.x.head(1)
        failures: list[int] = []
        versions: set[str] = set()
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                for r in client.post_many("/v2/models/cancer/infer", [_v2(x)] * 8):
                    if r.status_code != 200:
                        failures.append(r.status_code)
                    else:
                        versions.add(r.json()["model_version"])

        worker = threading.Thread(target=load)
        worker.start()
        try:
            register(trained.home, c=0.5)  # version 2 becomes the champion
            deadline = time.monotonic() + 30
            while "2" not in versions and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            worker.join()
        assert versions == {"1", "2"} and failures == []
        assert client.get("/v2/models/cancer").json()["versions"] == ["2"]
        workspace = shipyard.open_workspace()
        Registry(workspace.backend, workspace.settings.user).set_alias("cancer@1", "champion")
        assert client.server.refresh() == ["cancer"]
        assert client.get("/v2/models/cancer").json()["versions"] == ["1"]
    finally:
        client.close()
