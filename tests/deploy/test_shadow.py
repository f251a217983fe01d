"""Shadow traffic: mirrored off the request path, compared and logged, never returned."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import shipyard
from shipyard.deploy.service import Deployments
from tests.deploy._models import register
from tests.deploy.test_rollout_server import workspace  # noqa: F401 - a fixture
from tests.serving.conftest import serve

pytestmark = pytest.mark.integration

SCORES = [0.25 + i / 100 for i in range(20)]  # where live (cut 0.5) and shadow (0.2) differ


def _body(score: float) -> dict[str, object]:
    return {"inputs": [{"name": "score", "shape": [1], "datatype": "FP64", "data": [score]}]}


def test_a_slow_shadow_never_changes_an_answer_nor_slows_the_live_route(
    workspace: Path,  # noqa: F811
) -> None:
    register(workspace, "score", cut=0.5)
    register(workspace, "score", cut=0.2, delay_ms=300)  # disagrees below 0.5, and is slow
    backend = shipyard.open_workspace().backend
    deploy = Deployments(backend, "alice")
    deploy.create("score-prod", "score@1")
    deploy.shadow("score-prod", "score@2", percent=100)
    client = serve(
        refs=[], deployment="score-prod", trusted_code=True, controller=False,
        max_batch_size=1, shadow_queue_size=3,
    )  # fmt: skip
    try:
        started = time.perf_counter()
        answers = [client.post("/v2/models/score/infer", json=_body(s)) for s in SCORES]
        live_seconds = time.perf_counter() - started
        # 20 shadow calls take 6 s; the live answers do not wait for them
        assert live_seconds < 3, live_seconds
        assert [a.status_code for a in answers] == [200] * len(SCORES)
        assert [a.json()["model_version"] for a in answers] == ["1"] * len(SCORES)
        assert [a.json()["outputs"][0]["data"][0] for a in answers] == [0] * len(SCORES)
        time.sleep(1.5)  # the shadow works through what was queued
        routes = client.server.routes
        assert routes is not None
        routes.flush()
    finally:
        client.close()
    stats = {s.route: s for s in backend.get_route_stats("score-prod")}
    shadow, live = stats["shadow"], stats["stable"]
    assert live.requests == len(SCORES)
    assert shadow.mirrored_dropped > 0  # a queue of 3 cannot hold 20 mirrors of 300 ms each
    assert shadow.compared == shadow.requests > 0
    assert shadow.compared + shadow.mirrored_dropped <= len(SCORES)
    assert shadow.agreements == 0  # the shadow said 1 where callers were told 0
    assert shadow.predictions == {"1": shadow.compared}
    logged = list((workspace / "predictions" / "model=score@shadow").rglob("*.parquet"))
    assert logged, "shadow answers are logged under score@shadow"
    import pyarrow.parquet as pq

    table = pq.read_table(logged[0])
    assert set(table.column("mode").to_pylist()) == {"shadow"}
    assert set(table.column("version").to_pylist()) == {"2"}


def test_a_request_for_probabilities_only_does_not_stop_the_mirror(
    workspace: Path,  # noqa: F811
) -> None:
    from tests.serving.conftest import register as register_cancer

    trained = register_cancer(workspace)  # cancer@1, champion
    register_cancer(workspace, c=0.5)  # cancer@2
    backend = shipyard.open_workspace().backend
    deploy = Deployments(backend, "alice")
    deploy.create("cancer-prod", "cancer@1")
    deploy.shadow("cancer-prod", "cancer@2")
    client = serve(refs=[], deployment="cancer-prod", controller=False)
    x = trained.x.head(1)
    body = {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64",
                        "data": x.to_numpy().ravel().tolist()}]}  # fmt: skip
    try:
        proba_only = dict(body, outputs=[{"name": "predict_proba"}])
        assert client.post("/v2/models/cancer/infer", json=proba_only).status_code == 200
        for _ in range(5):
            assert client.post("/v2/models/cancer/infer", json=body).status_code == 200
        time.sleep(1.0)
        assert client.server.routes is not None
        client.server.routes.flush()
    finally:
        client.close()
    shadow = {s.route: s for s in backend.get_route_stats("cancer-prod")}["shadow"]
    assert shadow.compared == 5 and shadow.mirrored_dropped == 0
