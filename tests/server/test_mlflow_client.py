"""The `mlflow` client, unchanged, against `shipyard server`.

The newest MLflow client (`mlflow-skinny`, the official client without the server, and skops
for `mlflow.sklearn`) is installed from the package index into a venv of its own
(`.venvs/mlflow-client`, made once and reused). That venv borrows scikit-learn, pandas and
numpy from the project's venv (its site-packages, after the venv's own, through a `.pth` line:
one path, so the editable `shipyard` there is *not* importable), which saves a fresh clone
downloading and unpacking them again (~40 s). An ordinary MLflow
training script runs against a real server on 127.0.0.1 — once without authentication and
once with a token: params, metrics with steps, nested runs, artifacts, `sklearn.log_model`
with registration, an alias, `search_runs`, and `pyfunc.load_model("models:/name@alias")`
with a prediction. Shipyard's own CLI and Python API then check what arrived.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from shipyard.config import init_workspace
from shipyard.registry import Registry
from shipyard.registry.tokens import issue_token
from shipyard.tracking import open_workspace
from tests._cli import ROOT, run_shipyard
from tests.server.test_api import _free_port

pytestmark = pytest.mark.e2e
# the MLflow client; the MLflow REST API on PostgreSQL: test_mlflow_api.py
STORE_KINDS = ("sqlite",)

VENV = ROOT / ".venvs" / "mlflow-client"

SCRIPT = textwrap.dedent(
    """
    import json, os, sys, tempfile
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(sys.argv[1])
    X, y = load_iris(return_X_y=True, as_frame=True)
    mlflow.set_experiment("churn-mlflow")
    with mlflow.start_run(run_name="outer") as run:
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"trees": 50, "depth": 4})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"auc": 0.91, "f1": 0.8}, step=5)
        mlflow.set_tag("team", "a")
        with mlflow.start_run(run_name="inner", nested=True) as child:
            mlflow.log_metric("auc", 0.9)
        folder = tempfile.mkdtemp()
        with open(os.path.join(folder, "notes.txt"), "w") as f:
            f.write("hello")
        os.makedirs(os.path.join(folder, "plots"))
        with open(os.path.join(folder, "plots", "curve.csv"), "w") as f:
            f.write("x,y\\n1,2\\n")
        mlflow.log_artifact(os.path.join(folder, "notes.txt"))
        mlflow.log_artifacts(folder, artifact_path="bundle")
        model = LogisticRegression(max_iter=500).fit(X, y)
        info = mlflow.sklearn.log_model(
            model, name="model", registered_model_name="iris-clf", input_example=X.head(3)
        )
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("iris-clf", "champion", info.registered_model_version)
    loaded = mlflow.pyfunc.load_model("models:/iris-clf@champion")
    downloaded = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="bundle/plots/curve.csv"
    )
    experiment = mlflow.get_experiment_by_name("churn-mlflow")
    found = client.search_runs([experiment.experiment_id], filter_string="params.lr = '0.1'")
    history = client.get_metric_history(run.info.run_id, "loss")
    print(json.dumps({
        "run": run.info.run_id,
        "child": child.info.run_id,
        "found": [r.info.run_id for r in found],
        "history": [[m.step, m.value] for m in history],
        "params": client.get_run(run.info.run_id).data.params,
        "status": client.get_run(run.info.run_id).info.status,
        "version": mlflow.__version__,
        "model_version": info.registered_model_version,
        "predictions": [int(p) for p in loaded.predict(X.head(10))],
        "expected": [int(p) for p in model.predict(X.head(10))],
        "artifacts": sorted(a.path for a in client.list_artifacts(run.info.run_id)),
        "bundle": sorted(a.path for a in client.list_artifacts(run.info.run_id, "bundle")),
        "curve": open(downloaded).read(),
        "runs_found": len(mlflow.search_runs(experiment_names=["churn-mlflow"])),
    }))
    """
)


@pytest.fixture(scope="module")
def mlflow_python() -> Path:
    python = VENV / "bin" / "python"
    installed = VENV / ".installed-shared"
    if not installed.exists():
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        paths = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        own = subprocess.run([python, "-c", paths], capture_output=True, text=True, check=True)
        borrowed = sysconfig.get_paths()["purelib"]  # this (the project's) venv
        Path(own.stdout.strip(), "zz-project-venv.pth").write_text(borrowed + "\n")
        subprocess.run(
            [
                *(str(python), "-m", "pip", "install", "--quiet"),
                *("--disable-pip-version-check", "--upgrade"),
                *("mlflow-skinny", "skops"),
            ],
            check=True,
            timeout=900,
        )
        installed.touch()
    check = "import importlib.util as u; print(u.find_spec('shipyard') is None)"
    alone = subprocess.run([python, "-c", check], capture_output=True, text=True, check=True)
    assert alone.stdout.strip() == "True", "the MLflow venv must not see shipyard"
    return python


def _serve(home: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    server = subprocess.Popen(
        [
            *(sys.executable, "-c", "from shipyard.cli import main; main()", "server"),
            *("--port", str(port), *extra),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/health", timeout=1)
            return server, url
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the server never answered"
            time.sleep(0.05)


def _run_script(python: Path, url: str, env: dict[str, str]) -> dict[str, object]:
    clean = {k: v for k, v in env.items() if not k.startswith(("SHIPYARD_", "PYTHONPATH"))}
    done = subprocess.run(
        [str(python), "-c", SCRIPT, url],
        env=clean,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("auth", ["solo", "token", "password"])
def test_an_ordinary_mlflow_script_logs_to_shipyard(
    home: Path, mlflow_python: Path, auth: str
) -> None:
    if auth != "solo" and not os.environ["SHIPYARD_STORE_URL"].startswith("sqlite"):
        pytest.skip("credentials are the server's business, not the store's: SQLite covers it")
    init_workspace(home.parent)
    backend = open_workspace().backend
    Registry(backend, "alice").bootstrap_admin()
    env = dict(os.environ)
    extra: tuple[str, ...] = ()
    if auth == "token":
        extra = ("--auth",)
        env["MLFLOW_TRACKING_TOKEN"] = issue_token(backend, "alice")[1]
    elif auth == "password":
        from shipyard.registry.passwords import set_password

        extra = ("--auth",)
        set_password(backend, "alice", "alice", "a long passphrase")
        env["MLFLOW_TRACKING_USERNAME"] = "alice"
        env["MLFLOW_TRACKING_PASSWORD"] = "a long passphrase"  # noqa: S105 - a test user
    server, url = _serve(home, *extra)
    try:
        result = _run_script(mlflow_python, url, env)
    finally:
        server.terminate()
        server.communicate(timeout=20)
    assert result["found"] == [result["run"]]
    assert result["history"] == [[s, 1.0 / (s + 1)] for s in range(5)]
    assert result["params"] == {"lr": "0.1", "trees": "50", "depth": "4"}
    assert result["status"] == "FINISHED"
    # Shipyard's own CLI sees the same runs, nested as MLflow nested them
    listed = run_shipyard("runs", "ls", "-e", "churn-mlflow", "--json")
    runs = {r["run_id"]: r for r in json.loads(listed.stdout)}
    assert runs[str(result["child"])]["parent_run_id"] == result["run"]
    outer = runs[str(result["run"])]
    assert outer["user"] == "alice" and outer["tags"]["team"] == "a"
    assert outer["metrics"] == {"loss": 0.2, "auc": 0.91, "f1": 0.8}
    # artifacts through MLflow's proxy are the run's artifacts in Shipyard, and back
    assert result["artifacts"] == ["bundle", "notes.txt"]
    assert result["bundle"] == ["bundle/notes.txt", "bundle/plots"]
    assert result["curve"] == "x,y\n1,2\n"
    listed = json.loads(run_shipyard("artifacts", "ls", str(result["run"]), "--json").stdout)
    assert {a["path"] for a in listed} == {
        "notes.txt",
        "bundle/notes.txt",
        "bundle/plots/curve.csv",
    }
    # the model MLflow logged and registered is a Shipyard model version, loadable by both
    assert result["predictions"] == result["expected"]
    version = json.loads(run_shipyard("models", "show", "iris-clf@champion", "--json").stdout)
    assert version["version"] == int(str(result["model_version"]))
    assert version["flavor"] == "sklearn" and version["run_id"] == result["run"]
    assert version["created_by"] == "alice"

    from sklearn.datasets import load_iris

    import shipyard.models

    features, _ = load_iris(return_X_y=True, as_frame=True)
    ours = shipyard.models.load("iris-clf@champion")
    assert [int(p) for p in ours.predict(features.head(10))] == result["expected"]
    assert ours.signature is not None and len(ours.signature.inputs) == 4


def test_mlflow_errors_keep_mlflow_shape(home: Path) -> None:
    from shipyard.server import create_app
    from tests.server.test_api import Client

    init_workspace(home.parent)
    api = Client(create_app(home))
    missing = api("GET", "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "x"})
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    api("POST", "/api/2.0/mlflow/experiments/create", json={"name": "x"})
    twice = api("POST", "/api/2.0/mlflow/experiments/create", json={"name": "x"})
    assert twice.status_code == 409 and twice.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    batch = {"run_id": "0" * 32, "metrics": [{"key": "m", "value": 1, "timestamp": 1}] * 1001}
    too_many = api("POST", "/api/2.0/mlflow/runs/log-batch", json=batch)
    assert too_many.status_code == 400
    assert too_many.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "at most 1000 metrics" in too_many.json()["message"]
