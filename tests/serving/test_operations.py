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
# the server's operations; the prediction log on PostgreSQL: test_real_server.py
STORE_KINDS = ("sqlite",)


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
    # deployment, route and mode are empty for a model served by reference
    assert (
        'shipyard_requests_total{deployment="",mode="",model="cancer",protocol="v2",route="",'
        'status="200",version="1"} 1.0'
    ) in text
    assert 'protocol="mlflow",route="",status="400",version="1"} 1.0' in text
    assert (
        'shipyard_request_duration_seconds_bucket{deployment="",le="0.5",mode="",model="cancer",'
        'protocol="v2",route=""}'
    ) in text
    assert "shipyard_requests_in_flight 0.0" in text
    assert 'shipyard_model_load_seconds{model="cancer",version="1"}' in text
    assert "shipyard_batch_size_count" in text
    assert "shipyard_prediction_log_dropped_total 0.0" in text


def _read(root: Path) -> Any:
    import duckdb

    return duckdb.sql(
        f"select * from read_parquet('{root}/**/*.parquet', hive_partitioning=true, "  # noqa: S608 - a test folder
        "union_by_name=true) order by request_id, row"
    ).df()


def test_every_prediction_is_logged_with_typed_columns(client: Any, trained: Trained) -> None:
    x = trained.x.head(2)
    first = client.post("/v2/models/cancer/infer", json=_v2(x))
    second = client.post(
        "/invocations",
        json={"dataframe_records": x.head(1).to_dict("records")},
        headers={"x-request-id": "mine-1"},
    )
    assert second.headers["x-request-id"] == "mine-1"
    client.server.close()  # graceful shutdown flushes
    root = trained.home / "predictions"
    parts = list(root.glob("model=cancer/hour=*/part-*.parquet"))
    assert parts and not list(root.rglob(".*.tmp"))
    log = _read(root)
    assert sorted(set(log["request_id"])) == sorted([first.headers["x-request-id"], "mine-1"])
    assert len(log) == 3
    mine = log[log["request_id"] == "mine-1"].iloc[0]
    assert mine["model"] == "cancer" and mine["version"] == "1" and mine["protocol"] == "mlflow"
    assert mine["status"] == 200 and mine["row"] == 0 and mine["latency_ms"] > 0
    assert mine["input.mean radius"] == x.iloc[0]["mean radius"]
    assert mine["prediction"] == trained.clf.predict(x.head(1))[0]
    v2 = log[log["request_id"] == first.headers["x-request-id"]]
    assert list(v2["row"]) == [0, 1]
    assert list(v2["prediction"]) == trained.clf.predict(x).tolist()
    assert list(v2["input.worst symmetry"]) == list(x["worst symmetry"])
    assert "proba" not in log.columns  # nobody asked for probabilities

    import pyarrow.parquet as pq

    schema = pq.read_schema(parts[0])
    assert str(schema.field("input.mean radius").type) == "double"
    assert str(schema.field("prediction").type) == "int64"
    assert str(schema.field("status").type) == "int16"
    assert str(schema.field("timestamp").type) == "timestamp[us, tz=UTC]"


def test_probabilities_are_logged_when_asked_for_with_the_classes(
    client: Any, trained: Trained
) -> None:
    import json

    import pyarrow.parquet as pq

    from shipyard.monitoring.logformat import CLASSES_METADATA_KEY

    x = trained.x.head(3)
    body = _v2(x) | {"outputs": [{"name": "predict"}, {"name": "predict_proba"}]}
    client.post("/v2/models/cancer/infer", json=body, headers={"x-request-id": "p"})
    client.post("/v2/models/cancer/infer", json=_v2(x.head(1)), headers={"x-request-id": "q"})
    client.server.close()
    log = _read(trained.home / "predictions")
    asked = log[log["request_id"] == "p"]
    expected = trained.clf.predict_proba(x)
    for got, want in zip(asked["proba"], expected, strict=True):
        assert list(got) == pytest.approx(list(want))
    assert log[log["request_id"] == "q"]["proba"].isna().all()
    (part,) = (trained.home / "predictions").rglob("part-*.parquet")
    metadata = pq.read_schema(part).metadata
    assert json.loads(metadata[CLASSES_METADATA_KEY]) == trained.clf.classes_.tolist()


def test_failed_requests_are_logged_with_their_status(client: Any, trained: Trained) -> None:
    client.post("/invocations", json={"instances": [[1.0]]}, headers={"x-request-id": "bad"})
    client.post(
        "/v2/models/cancer/infer", json=_v2(trained.x.head(1)), headers={"x-request-id": "ok"}
    )
    client.server.close()
    log = _read(trained.home / "predictions")
    bad = log[log["request_id"] == "bad"].iloc[0]
    assert bad["status"] == 400 and bad["row"] == 0 and bad["protocol"] == "mlflow"
    assert bad[["input.mean radius", "prediction"]].isna().all()
    assert log[log["request_id"] == "ok"].iloc[0]["status"] == 200


def test_segments_are_written_while_serving_and_again_at_close(trained: Trained) -> None:
    client = serve(refs=["cancer@champion"], log_flush_seconds=0.05)
    try:
        client.post("/v2/models/cancer/infer", json=_v2(trained.x.head(1)))
        log = client.server.log
        deadline = time.monotonic() + 30
        while log.pending and time.monotonic() < deadline:
            time.sleep(0.02)
        root = trained.home / "predictions"
        while not list(root.rglob("part-*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(list(root.rglob("part-*.parquet"))) == 1
        client.post("/v2/models/cancer/infer", json=_v2(trained.x.head(1)))
    finally:
        client.close()
    assert len(_read(trained.home / "predictions")) == 2


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
    assert log["row"].isna().tolist() == [True, False, True] and log["row"][1] == 3


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
    client = serve(refs=["cancer@champion"], max_batch_wait_ms=50)
    try:
        x = trained.x.iloc[[0, 1]]
        good = [{"dataframe_records": x.iloc[[i]].to_dict("records")} for i in (0, 1)]
        bad = {"dataframe_records": x.iloc[[0]].to_dict("records")}
        bad["dataframe_records"][0]["mean radius"] = None  # passes the signature, not the model
        responses = client.post_many("/invocations", [good[0], bad, good[1]])
        assert [r.status_code for r in responses] == [200, 400, 200]
        assert "rejected the input" in responses[1].json()["error"]
        assert [responses[i].json()["predictions"] for i in (0, 2)] == [
            [p] for p in trained.clf.predict(x).tolist()
        ]
        # the three shared one model call, which failed, before each was scored alone
        assert 'shipyard_batch_size_count{model="cancer"} 1.0' in client.get("/metrics").text
    finally:
        client.close()


def test_a_row_the_model_rejects_fails_alone_in_its_batch(trained: Trained) -> None:
    import json

    client = serve(refs=["cancer@champion"], max_batch_wait_ms=50)
    try:
        good = _v2(trained.x.head(1))
        missing = _v2(trained.x.head(1))
        missing["inputs"][0]["data"][3] = float("nan")  # a float, so it passes the signature

        async def send_all() -> list[Any]:
            import asyncio

            headers = {"content-type": "application/json"}
            return await asyncio.gather(
                *(
                    client.http.post(
                        "/v2/models/cancer/infer", content=json.dumps(b), headers=headers
                    )
                    for b in (good, missing, good)
                )
            )

        responses = client.portal.call(send_all)
        assert [r.status_code for r in responses] == [200, 400, 200]
        assert "rejected the input" in responses[1].json()["error"]
        assert 'shipyard_batch_size_count{model="cancer"} 1.0' in client.get("/metrics").text
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
        # The background refresher (every 50 ms) may swap before this explicit refresh does:
        # either way the alias is followed back, and a second refresh has nothing to do.
        client.server.refresh()
        assert client.get("/v2/models/cancer").json()["versions"] == ["1"]
        assert client.server.refresh() == []
    finally:
        client.close()
