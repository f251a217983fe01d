"""Open Inference Protocol v2 over ASGI, with a real registered model on both stores."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.serving.conftest import Trained

pytestmark = pytest.mark.integration
# the inference protocol; the prediction log on PostgreSQL: test_real_server.py
STORE_KINDS = ("sqlite",)


def _tensor(x: Any, rows: int = 3, name: str = "input-0") -> dict[str, Any]:
    return {
        "name": name,
        "shape": [rows, x.shape[1]],
        "datatype": "FP64",
        "data": x.head(rows).to_numpy().tolist(),
    }


def test_health_and_metadata(client: Any, trained: Trained) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2").json()["name"] == "shipyard"
    meta = client.get("/v2/models/cancer").json()
    assert meta["name"] == "cancer" and meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == list(trained.x.columns)
    assert meta["inputs"][0]["datatype"] == "FP64"
    assert {o["name"] for o in meta["outputs"]} == {"predict", "predict_proba"}
    assert client.get("/v2/models/cancer/versions/1").status_code == 200
    assert client.get("/v2/models/cancer/ready").json() == {"name": "cancer", "ready": True}
    assert client.get("/v2/models/cancer/versions/1/ready").status_code == 200
    assert client.get("/v2/models/cancer/versions/7").status_code == 404
    missing = client.get("/v2/models/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_infer_with_one_2d_tensor(client: Any, trained: Trained) -> None:
    response = client.post(
        "/v2/models/cancer/infer",
        json={"id": "abc", "inputs": [_tensor(trained.x)]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "cancer" and body["model_version"] == "1"
    assert body["id"] == "abc"
    (out,) = body["outputs"]
    assert out["name"] == "predict" and out["shape"] == [3] and out["datatype"] == "INT64"
    assert out["data"] == trained.clf.predict(trained.x.head(3)).tolist()
    assert response.headers["x-request-id"]
    assert (
        client.post(
            "/v2/models/cancer/versions/1/infer", json={"inputs": [_tensor(trained.x)]}
        ).status_code
        == 200
    )


def test_infer_one_tensor_per_column_with_probabilities(client: Any, trained: Trained) -> None:
    x = trained.x.head(4)
    inputs = [
        {"name": c, "shape": [4], "datatype": "FP32", "data": x[c].astype("float32").tolist()}
        for c in reversed(x.columns)  # order does not matter: names do
    ]
    response = client.post(
        "/v2/models/cancer/infer",
        json={"inputs": inputs, "outputs": [{"name": "predict"}, {"name": "predict_proba"}]},
    )
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["predict_proba"]["shape"] == [4, 2]
    assert outputs["predict_proba"]["datatype"] == "FP64"
    proba = np.array(outputs["predict_proba"]["data"]).reshape(4, 2)
    np.testing.assert_allclose(proba, trained.clf.predict_proba(x.astype("float32")), rtol=1e-6)


def test_integer_and_bool_typed_tensors_are_read(client: Any, trained: Trained) -> None:
    data = trained.x.head(2).round().astype("int64")
    response = client.post(
        "/v2/models/cancer/infer",
        json={
            "inputs": [
                {
                    "name": "x",
                    "shape": [2, 30],
                    "datatype": "INT64",
                    "data": data.to_numpy().ravel().tolist(),
                }
            ]
        },
    )
    assert response.status_code == 200, response.text
    assert (
        response.json()["outputs"][0]["data"]
        == trained.clf.predict(data.astype("float64")).tolist()
    )


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (
            {"inputs": [{"name": "x", "shape": [1, 29], "datatype": "FP64", "data": [0.0] * 29}]},
            ["'x'", "29", "30"],
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": [0.0] * 29}]},
            ["'x'", "29 values"],
        ),
        (
            {
                "inputs": [
                    {"name": "x", "shape": [1, 30], "datatype": "FP64", "data": ["a"] + [0.0] * 29}
                ]
            },
            ["'x'", "FP64", "'a'"],
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FLOAT", "data": [0] * 30}]},
            ["'x'", "FLOAT"],
        ),
        (
            {"inputs": [{"name": "bogus", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
            ["'bogus'"],
        ),
        (
            {
                "inputs": [
                    {"name": "mean radius", "shape": [1], "datatype": "FP64", "data": [1.0]},
                    {"name": "mean texture", "shape": [1], "datatype": "FP64", "data": [1.0]},
                ]
            },
            ["missing input"],
        ),
        (
            {
                "inputs": [
                    {"name": "mean radius", "shape": [1], "datatype": "BYTES", "data": ["big"]}
                ]
                + [
                    {"name": n, "shape": [1], "datatype": "FP64", "data": [1.0]}
                    for n in ("mean texture",)
                ]
            },
            ["missing"],
        ),
        ({"inputs": []}, ["inputs"]),
        ({"inputs": [{"name": "x", "datatype": "FP64", "data": [1.0]}]}, ["'x'", "shape"]),
        (
            {
                "inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": [0.0] * 30}],
                "outputs": [{"name": "logits"}],
            },
            ["logits"],
        ),
        ([1, 2], ["JSON object"]),
    ],
)
def test_bad_requests_are_400_naming_the_field(
    client: Any, trained: Trained, body: Any, names: list[str]
) -> None:
    response = client.post("/v2/models/cancer/infer", json=body)
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    for name in names:
        assert name in message


def test_a_text_column_is_400_naming_the_column(client: Any, trained: Trained) -> None:
    x = trained.x.head(1)
    inputs = [
        {"name": c, "shape": [1], "datatype": "FP64", "data": x[c].tolist()}
        for c in x.columns
        if c != "mean radius"
    ] + [{"name": "mean radius", "shape": [1], "datatype": "BYTES", "data": ["big"]}]
    response = client.post("/v2/models/cancer/infer", json={"inputs": inputs})
    assert response.status_code == 400
    assert "mean radius" in response.json()["error"]


def test_not_json_and_unknown_model(client: Any) -> None:
    bad = client.post(
        "/v2/models/cancer/infer",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]
    unknown = client.post("/v2/models/nope/infer", json={"inputs": []})
    assert unknown.status_code == 404 and "'nope'" in unknown.json()["error"]
