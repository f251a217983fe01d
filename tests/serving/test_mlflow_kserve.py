"""MLflow scoring (/invocations, /ping, /health) and KServe v1 (:predict) over ASGI."""

from __future__ import annotations

from typing import Any

import pytest

from tests.serving.conftest import Trained, register, serve

pytestmark = pytest.mark.integration


def test_ping_and_health(client: Any) -> None:
    assert client.get("/ping").status_code == 200
    assert client.get("/health").status_code == 200


def test_invocations_in_every_json_form_and_csv(client: Any, trained: Trained) -> None:
    x = trained.x.head(5)
    expected = trained.clf.predict(x).tolist()
    split = x.to_dict(orient="split")
    bodies = [
        {"dataframe_split": {"columns": split["columns"], "data": split["data"]}},
        {"dataframe_records": x.to_dict(orient="records")},
        {"instances": x.to_dict(orient="records")},
        {"instances": x.to_numpy().tolist()},
        {"inputs": x.to_numpy().tolist()},
        {"inputs": x.to_dict(orient="list")},
    ]
    for body in bodies:
        response = client.post("/invocations", json=body)
        assert response.status_code == 200, (body.keys(), response.text)
        assert response.json() == {"predictions": expected}
    csv = client.post(
        "/invocations", content=x.to_csv(index=False), headers={"content-type": "text/csv"}
    )
    assert csv.status_code == 200, csv.text
    assert csv.json() == {"predictions": expected}


@pytest.mark.parametrize(
    ("make_body", "names"),
    [
        (lambda x: {"instances": x.iloc[:, :29].to_numpy().tolist()}, ["29", "30"]),
        (
            lambda x: {"dataframe_records": x.drop(columns="mean radius").to_dict("records")},
            ["mean radius"],
        ),
        (lambda x: {"dataframe_records": x.assign(extra=1).to_dict("records")}, ["extra"]),
        (
            lambda x: {"dataframe_records": x.assign(**{"mean radius": "big"}).to_dict("records")},
            ["mean radius", "big"],
        ),
        (lambda x: {"rows": []}, ["dataframe_split"]),
        (lambda x: {"instances": [], "inputs": []}, ["instances", "inputs"]),
    ],
)
def test_bad_invocations_are_400_naming_the_field(
    client: Any, trained: Trained, make_body: Any, names: list[str]
) -> None:
    response = client.post("/invocations", json=make_body(trained.x.head(2)))
    assert response.status_code == 400, response.text
    for name in names:
        assert name in response.json()["error"]


def test_unsupported_content_type_is_415(client: Any) -> None:
    response = client.post("/invocations", content=b"x", headers={"content-type": "text/plain"})
    assert response.status_code == 415


def test_kserve_v1_predict(client: Any, trained: Trained) -> None:
    x = trained.x.head(3)
    for instances in (x.to_numpy().tolist(), x.to_dict(orient="records")):
        response = client.post("/v1/models/cancer:predict", json={"instances": instances})
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": trained.clf.predict(x).tolist()}
    assert client.get("/v1/models/cancer").json() == {"name": "cancer", "ready": True}
    wrong = client.post("/v1/models/cancer:predict", json={"instances": [[1.0, 2.0]]})
    assert wrong.status_code == 400 and "30" in wrong.json()["error"]
    assert client.post("/v1/models/other:predict", json={"instances": [[1.0]]}).status_code == 404


def test_invocations_choose_a_model_with_a_query_parameter(trained: Trained) -> None:
    register(trained.home, name="other", c=0.01)
    client = serve(refs=["cancer@champion", "other@champion"])
    try:
        x = trained.x.head(20)
        body = {"instances": x.to_numpy().tolist()}
        default = client.post("/invocations", json=body)
        other = client.post("/invocations?model=other", json=body)
        assert default.status_code == 200 and other.status_code == 200
        assert default.json() == {"predictions": trained.clf.predict(x).tolist()}
        text = client.get("/metrics").text
        for name in ("cancer", "other"):
            assert (
                f'model="{name}",protocol="mlflow",route="",status="200",version="1"}} 1.0' in text
            )
        missing = client.post("/invocations?model=nope", json=body)
        assert missing.status_code == 404 and "'nope'" in missing.json()["error"]
    finally:
        client.close()


def test_prediction_routes_want_post(client: Any) -> None:
    for path in ("/invocations", "/v2/models/cancer/infer", "/v1/models/cancer:predict"):
        response = client.get(path)
        assert response.status_code == 405 and "POST" in response.json()["error"]
