"""Hostile and odd requests: every one a 4xx naming what is wrong, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.serving.conftest import AsgiClient, Trained, serve

pytestmark = pytest.mark.integration
# the inference protocol; the prediction log on PostgreSQL: test_real_server.py
STORE_KINDS = ("sqlite",)

V2 = "/v2/models/cancer/infer"
JSON = {"content-type": "application/json"}


def _row(trained: Trained) -> list[float]:
    return [float(v) for v in trained.x.iloc[0]]


def _v2(trained: Trained, **tensor: Any) -> dict[str, Any]:
    spec = {"name": "x", "shape": [1, 30], "datatype": "FP64", "data": _row(trained)} | tensor
    return {"inputs": [spec]}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (V2, b"[" * 100_000 + b"]" * 100_000),
        ("/invocations", b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("/feedback", b"[" * 100_000 + b"]" * 100_000),
    ],
)
def test_deeply_nested_json_is_400(client: AsgiClient, path: str, body: bytes) -> None:
    response = client.post(path, content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert "nested too deeply" in response.json()["error"]


@pytest.mark.parametrize("path", [V2, "/invocations", "/v1/models/cancer:predict", "/feedback"])
def test_an_integer_of_5000_digits_is_400(client: AsgiClient, path: str) -> None:
    body = b'{"instances": [[' + b"9" * 5000 + b"]]}"
    response = client.post(path, content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert "number too long" in response.json()["error"]


def test_a_datatype_that_is_not_a_string_is_400(client: AsgiClient, trained: Trained) -> None:
    response = client.post(V2, json=_v2(trained, datatype=["FP64"]))
    assert response.status_code == 400, response.text
    assert "'datatype' must be a string" in response.json()["error"]


def test_an_id_that_is_not_a_string_is_400(client: AsgiClient, trained: Trained) -> None:
    response = client.post(V2, json=_v2(trained) | {"id": {"a": 1}})
    assert response.status_code == 400 and "'id' must be a string" in response.json()["error"]
    assert client.post(V2, json=_v2(trained) | {"id": "mine"}).json()["id"] == "mine"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (V2, '{"id": "\\ud800", "inputs": []}', "id"),
        (V2, '{"inputs": [{"name": "\\udc00", "shape": [1], "datatype": "FP64", "data": [1]}]}',
         "inputs[0].name"),
        ("/invocations", '{"dataframe_records": [{"\\ud800": 1}]}', "dataframe_records[0] key"),
        ("/invocations", '{"instances": [["\\ud800", 1.0]]}', "instances[0][0]"),
        ("/feedback", '{"request_id": "\\ud800", "label": 1}', "request_id"),
    ],
)  # fmt: skip
def test_lone_surrogates_are_400_naming_the_field(
    client: AsgiClient, path: str, body: str, field: str
) -> None:
    response = client.post(path, content=body.encode(), headers=JSON)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(field)
    assert "not valid Unicode" in response.json()["error"]


def test_a_surrogate_pair_is_text_like_any_other(client: AsgiClient, trained: Trained) -> None:
    body = json.dumps(_v2(trained) | {"id": "\U0001f600"}, ensure_ascii=True)  # \ud83d\ude00
    response = client.post(V2, content=body.encode(), headers=JSON)
    assert response.status_code == 200 and response.json()["id"] == "\U0001f600"


def test_a_content_type_is_compared_without_case(client: AsgiClient, trained: Trained) -> None:
    body = json.dumps({"instances": [_row(trained)]}).encode()
    upper = {"content-type": "Application/JSON"}
    assert client.post("/invocations", content=body, headers=upper).status_code == 200
    csv = client.post("/invocations", content=b"a\n1\n", headers={"content-type": "Text/CSV"})
    assert csv.status_code == 400 and "missing column" in csv.json()["error"]  # read, not 415


def test_an_empty_model_query_is_400(client: AsgiClient, trained: Trained) -> None:
    response = client.post("/invocations?model=", json={"instances": [_row(trained)]})
    assert response.status_code == 400 and "model" in response.json()["error"]


@pytest.fixture
def small_bodies(trained: Trained) -> Iterator[AsgiClient]:
    test_client = serve(refs=["cancer@champion"], max_body_bytes=4096)
    try:
        yield test_client
    finally:
        test_client.close()


@pytest.mark.parametrize("path", [V2, "/invocations", "/feedback"])
def test_a_body_over_the_limit_is_413(small_bodies: AsgiClient, path: str) -> None:
    big = b'{"instances": [' + b"1," * 4000 + b"1]}"
    response = small_bodies.post(path, content=big, headers=JSON)
    assert response.status_code == 413, response.text
    assert "4096 bytes" in response.json()["error"]


def test_a_body_over_the_limit_without_a_length_is_413_while_read(
    small_bodies: AsgiClient,
) -> None:
    async def chunks() -> Any:
        for _ in range(10):
            yield b" " * 1000

    response = small_bodies.post("/invocations", content=chunks(), headers=JSON)
    assert response.status_code == 413 and "content-length" not in response.request.headers


def test_a_body_that_does_not_arrive_in_time_is_408(trained: Trained) -> None:
    import asyncio

    from shipyard.serving import ServeSettings, create_app

    app = create_app(ServeSettings(refs=["cancer@champion"], body_timeout_seconds=0.2))
    received: list[int] = []
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:  # half a body, then nothing
        received.append(1)
        if len(received) == 1:
            return {"type": "http.request", "body": b"{", "more_body": True}
        await asyncio.sleep(60)
        raise AssertionError("the server waited for the rest of the body")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": [],
             "query_string": b""}  # fmt: skip
    try:
        asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    finally:
        app.state.server.close()
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]
    assert "did not arrive" in json.loads(sent[1]["body"])["error"]


def test_large_bodies_are_parsed_off_the_event_loop(client: AsgiClient, trained: Trained) -> None:
    import threading

    from shipyard.serving import asgi

    threads: list[str] = []
    parse = asgi._PARSERS["mlflow"]

    def spy(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return parse(*args)

    asgi._PARSERS["mlflow"] = spy
    try:
        rows = trained.x.head(500).to_numpy().tolist()
        big = client.post("/invocations", json={"instances": rows})
        small = client.post("/invocations", json={"instances": rows[:1]})
    finally:
        asgi._PARSERS["mlflow"] = parse
    assert big.status_code == small.status_code == 200
    loop_thread = threads[1]
    assert threads[0] != loop_thread


def test_feedback_rows_must_fit_int32_and_labels_be_finite(client: AsgiClient) -> None:
    for row in (-1, 2**31, 2**40):
        response = client.post("/feedback", json={"request_id": "r", "label": 1, "row": row})
        assert response.status_code == 400 and "row" in response.json()["error"]
    nan = client.post("/feedback", content=b'{"request_id": "r", "label": NaN}', headers=JSON)
    assert nan.status_code == 400 and "label" in nan.json()["error"]
    ok = client.post("/feedback", json={"request_id": "r", "label": 1, "row": 2**31 - 1})
    assert ok.status_code == 200


def test_queue_depth_is_the_sum_over_a_models_open_batches() -> None:
    import asyncio

    from shipyard.serving.batching import Batcher

    class Served:
        name = "m"

        def call(self, method: str, data: Any) -> Any:
            return data

    depths: list[int] = []
    batcher = Batcher(max_batch_size=8, max_wait=0.05, on_queue=lambda _, n: depths.append(n))
    served: Any = Served()

    async def main() -> None:
        import pandas as pd

        await asyncio.gather(
            batcher.predict(served, "predict", np.zeros((1, 2))),  # one batch of arrays
            batcher.predict(served, "predict", np.zeros((1, 2))),
            batcher.predict(served, "predict", pd.DataFrame({"a": [1]})),  # one of frames
        )

    asyncio.run(main())
    batcher.close()
    assert max(depths) == 3 and depths[-1] == 0
