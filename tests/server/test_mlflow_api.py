"""The MLflow REST API in-process: what the client needs beyond the ordinary script —
deletions and restores, tag removal, dataset inputs, the artifact proxy's refusals, logged
models, and the registry's rules (governance, no stages, no deletions) in MLflow's shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.config import init_workspace
from shipyard.registry import Registry
from shipyard.tracking import open_workspace
from tests.server.test_api import Client

pytestmark = pytest.mark.integration

API = "/api/2.0/mlflow"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture
def api(home: Path) -> Client:
    from shipyard.server import create_app

    init_workspace(home.parent)
    return Client(create_app(home))


def _run(api: Client, experiment: str = "e") -> tuple[str, str]:
    created = api("POST", f"{API}/experiments/create", json={"name": experiment}).json()
    exp = created["experiment_id"]
    run = api("POST", f"{API}/runs/create", json={"experiment_id": exp}).json()["run"]
    return exp, run["info"]["run_id"]


def test_deleted_runs_leave_searches_and_come_back_on_restore(api: Client) -> None:
    exp, run_id = _run(api)
    search = {"experiment_ids": [exp]}
    assert len(api("POST", f"{API}/runs/search", json=search).json()["runs"]) == 1
    assert api("POST", f"{API}/runs/delete", json={"run_id": run_id}).status_code == 200
    assert api("POST", f"{API}/runs/search", json=search).json().get("runs", []) == []
    deleted = {**search, "run_view_type": "DELETED_ONLY"}
    found = api("POST", f"{API}/runs/search", json=deleted).json()["runs"]
    assert [r["info"]["lifecycle_stage"] for r in found] == ["deleted"]
    api("POST", f"{API}/runs/restore", json={"run_id": run_id})
    got = api("GET", f"{API}/runs/get", params={"run_id": run_id}).json()["run"]
    assert got["info"]["lifecycle_stage"] == "active"
    missing = api("POST", f"{API}/runs/delete", json={"run_id": "f" * 32})
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_experiments_are_renamed_deleted_restored_and_filtered_by_name(api: Client) -> None:
    exp, _ = _run(api, "first")
    _run(api, "second")
    api("POST", f"{API}/experiments/update", json={"experiment_id": exp, "new_name": "renamed"})
    taken = api(
        "POST", f"{API}/experiments/update", json={"experiment_id": exp, "new_name": "second"}
    )
    assert taken.status_code == 409
    assert taken.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    api("POST", f"{API}/experiments/delete", json={"experiment_id": exp})
    names = [
        e["name"] for e in api("POST", f"{API}/experiments/search", json={}).json()["experiments"]
    ]
    assert "renamed" not in names and "second" in names
    everything = api("POST", f"{API}/experiments/search", json={"view_type": "ALL"}).json()
    assert {"renamed", "second"} <= {e["name"] for e in everything["experiments"]}
    by_name = api("GET", f"{API}/experiments/get-by-name", params={"experiment_name": "renamed"})
    assert by_name.json()["experiment"]["lifecycle_stage"] == "deleted"
    liked = api(
        "POST", f"{API}/experiments/search", json={"filter": "name LIKE 'sec%'", "view_type": 3}
    ).json()["experiments"]
    assert [e["name"] for e in liked] == ["second"]
    api("POST", f"{API}/experiments/restore", json={"experiment_id": exp})
    again = api("POST", f"{API}/experiments/search", json={}).json()["experiments"]
    assert "renamed" in {e["name"] for e in again}


def test_tags_are_removed_and_dataset_inputs_are_kept_as_tags(api: Client) -> None:
    _, run_id = _run(api)
    api("POST", f"{API}/runs/set-tag", json={"run_id": run_id, "key": "k", "value": "v"})
    assert api("POST", f"{API}/runs/delete-tag", json={"run_id": run_id, "key": "k"}).is_success
    again = api("POST", f"{API}/runs/delete-tag", json={"run_id": run_id, "key": "k"})
    assert again.status_code == 404
    dataset = {"name": "iris", "digest": "abc", "source_type": "local", "source": "/d/iris.csv"}
    body = {
        "run_id": run_id,
        "datasets": [
            {"tags": [{"key": "mlflow.data.context", "value": "train"}], "dataset": dataset}
        ],
    }
    assert api("POST", f"{API}/runs/log-inputs", json=body).is_success
    tags = open_workspace().backend.get_run(run_id).tags
    assert "k" not in tags
    assert json.loads(tags["mlflow.dataset.iris"]) == {
        "digest": "abc",
        "source_type": "local",
        "source": "/d/iris.csv",
        "mlflow.data.context": "train",
    }


def test_the_artifact_proxy_stores_by_content_and_refuses_escapes(api: Client) -> None:
    exp, run_id = _run(api)
    root = f"{PROXY}/{exp}/{run_id}/artifacts"
    assert api("PUT", f"{root}/data/a.txt", content=b"alpha").is_success
    assert api("GET", f"{root}/data/a.txt").content == b"alpha"
    ranged = api("GET", f"{root}/data/a.txt", headers={"range": "bytes=2-"})
    assert ranged.status_code == 206 and ranged.content == b"pha"
    listed = api("GET", PROXY, params={"path": f"{exp}/{run_id}/artifacts"}).json()["files"]
    assert listed == [{"path": "data", "is_dir": True}]
    tracked = api("GET", f"{API}/artifacts/list", params={"run_id": run_id, "path": "data"}).json()
    assert tracked["files"] == [{"path": "data/a.txt", "is_dir": False, "file_size": 5}]
    for bad in (f"{root}/../x.txt", f"{root}/data/%2e%2e/%2e%2e/x", f"{PROXY}/{exp}/{run_id}/x"):
        answer = api("PUT", bad, content=b"x")
        assert answer.status_code in (400, 404), bad
        assert "error_code" in answer.json()
    nowhere = api("PUT", f"{PROXY}/{exp}/{'e' * 32}/artifacts/a.txt", content=b"x")
    assert nowhere.status_code == 404
    records = open_workspace().backend.list_artifacts(run_id)
    assert [r.path for r in records] == ["data/a.txt"]  # nothing else was written


def _logged_model(api: Client, exp: str, run_id: str) -> str:
    body = {"experiment_id": exp, "name": "clf", "source_run_id": run_id, "tags": []}
    model = api("POST", f"{API}/logged-models", json=body).json()["model"]
    assert model["info"]["status"] == "LOGGED_MODEL_PENDING"
    model_id: str = model["info"]["model_id"]
    location = f"{PROXY}/{exp}/models/{model_id}/artifacts"
    api("PUT", f"{location}/MLmodel", content=b"flavors:\n  sklearn: {}\n")
    api("PUT", f"{location}/model.skops", content=b"not really")
    done = api("PATCH", f"{API}/logged-models/{model_id}", json={"status": "LOGGED_MODEL_READY"})
    assert done.json()["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    return model_id


def test_logged_models_are_found_by_name_and_run_and_tagged(api: Client) -> None:
    exp, run_id = _run(api)
    model_id = _logged_model(api, exp, run_id)
    api(
        "PATCH", f"{API}/logged-models/{model_id}/tags", json={"tags": [{"key": "a", "value": "1"}]}
    )

    def search(filter_string: str) -> list[str]:
        body = {"experiment_ids": [exp], "filter": filter_string}
        found = api("POST", f"{API}/logged-models/search", json=body).json()["models"]
        return [m["info"]["model_id"] for m in found]

    assert search("name = 'clf'") == [model_id]
    assert search("name = 'bundle'") == []  # how the client tells a folder from a model
    assert search(f"source_run_id = '{run_id}' AND tags.a = '1'") == [model_id]
    refused = api("POST", f"{API}/logged-models/search", json={"filter": "name ~ 'x'"})
    assert refused.status_code == 400
    api("DELETE", f"{API}/logged-models/{model_id}/tags/a")
    assert search("tags.a = '1'") == []
    files = api("GET", f"{API}/logged-models/{model_id}/artifacts/directories").json()["files"]
    assert [f["path"] for f in files] == ["MLmodel", "model.skops"]


def test_registering_through_mlflow_follows_shipyard_governance(api: Client) -> None:
    exp, run_id = _run(api)
    model_id = _logged_model(api, exp, run_id)
    api("POST", f"{API}/registered-models/create", json={"name": "clf"})
    twice = api("POST", f"{API}/registered-models/create", json={"name": "clf"})
    assert twice.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    body = {"name": "clf", "source": f"models:/{model_id}", "model_id": model_id}
    version = api("POST", f"{API}/model-versions/create", json=body).json()["model_version"]
    assert (version["version"], version["status"], version["run_id"]) == ("1", "READY", run_id)
    backend = open_workspace().backend
    stored = Registry(backend, "x").resolve("clf@1")
    assert (stored.flavor, stored.source) == ("sklearn", f"models:/{model_id}")
    uri = api(
        "GET", f"{API}/model-versions/get-download-uri", params={"name": "clf", "version": "1"}
    )
    assert uri.json()["artifact_uri"] == "mlflow-artifacts:/registry/clf/1"
    served = api("GET", f"{PROXY}/registry/clf/1/model.skops")
    assert served.content == b"not really"
    fixed = api("PUT", f"{PROXY}/registry/clf/1/model.skops", content=b"swap")
    assert fixed.status_code == 405
    # a run's artifacts under a path are a source too
    api("PUT", f"{PROXY}/{exp}/{run_id}/artifacts/m/MLmodel", content=b"flavors: {}\n")
    second = api(
        "POST", f"{API}/model-versions/create", json={"name": "clf", "source": f"runs:/{run_id}/m"}
    )
    assert second.json()["model_version"]["version"] == "2"
    outside = api(
        "POST", f"{API}/model-versions/create", json={"name": "clf", "source": "s3://b/m"}
    )
    assert outside.status_code == 400 and "not on this server" in outside.json()["message"]
    # governance: a governed model's champion must be an approved version, over MLflow too
    Registry(backend, open_workspace().settings.user).bootstrap_admin()
    Registry(backend, open_workspace().settings.user).set_governed("clf")
    alias = {"name": "clf", "alias": "champion", "version": "1"}
    denied = api("POST", f"{API}/registered-models/alias", json=alias)
    assert denied.status_code == 403 and denied.json()["error_code"] == "PERMISSION_DENIED"
    assert "not approved" in denied.json()["message"]
    api("POST", f"{API}/registered-models/alias", json={**alias, "alias": "candidate"})
    by_alias = api(
        "GET", f"{API}/registered-models/alias", params={"name": "clf", "alias": "candidate"}
    )
    assert by_alias.json()["model_version"]["aliases"] == ["candidate"]
    stage = {"name": "clf", "version": "1", "stage": "Production"}
    staged = api("POST", f"{API}/model-versions/transition-stage", json=stage)
    assert staged.status_code == 400 and "alias" in staged.json()["message"]
    gone = api("DELETE", f"{API}/model-versions/delete", params={"name": "clf", "version": "1"})
    assert gone.status_code == 405 and "audit trail" in gone.json()["message"]
    api(
        "POST",
        f"{API}/registered-models/set-tag",
        json={"name": "clf", "key": "team", "value": "a"},
    )
    listed = api("GET", f"{API}/registered-models/search", params={"filter": "name = 'clf'"})
    model = listed.json()["registered_models"][0]
    assert model["tags"] == [{"key": "team", "value": "a"}]
    assert model["latest_versions"][0]["version"] == "2"
    assert model["aliases"] == [{"alias": "candidate", "version": "1"}]
    versions = api("GET", f"{API}/model-versions/search", params={"filter": "name='clf'"})
    assert [v["version"] for v in versions.json()["model_versions"]] == ["2", "1"]


def test_runs_carry_each_metrics_latest_step_and_time_in_one_page(api: Client) -> None:
    exp, run_id = _run(api)
    metrics = [
        {"key": "loss", "value": 1.0 / (s + 1), "step": s, "timestamp": 1000 + s} for s in range(5)
    ] + [{"key": "auc", "value": "NaN", "step": 2, "timestamp": 7}]
    api("POST", f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": metrics})
    got = api("GET", f"{API}/runs/get", params={"run_id": run_id}).json()["run"]["data"]
    assert sorted(got["metrics"], key=lambda m: m["key"]) == [
        {"key": "auc", "value": "NaN", "timestamp": 7, "step": 2},
        {"key": "loss", "value": 0.2, "timestamp": 1004, "step": 4},
    ]
    found = api("POST", f"{API}/runs/search", json={"experiment_ids": [exp]}).json()["runs"]
    assert found[0]["data"]["metrics"] == got["metrics"]
