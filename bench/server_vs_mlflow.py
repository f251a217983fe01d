"""The platform server against `mlflow server`, side by side (issue 16).

Both servers run with their defaults on a fresh SQLite store on 127.0.0.1:

* ``mlflow server --backend-store-uri sqlite:///…`` (MLflow from ``bench/.venvs/mlflow``);
* ``shipyard server`` over a fresh workspace.

Measured:

1. **Start-up**: seconds from launching the server to its first answer on ``/health``.
2. **log_metric through the mlflow client**: the same unchanged client (``MlflowClient``,
   synchronous logging) sends ``--calls`` ``log_metric`` calls to each server; per-call
   latency (p50, p99) and calls per second.
3. **log_metric through Shipyard's own client** (``SHIPYARD_SERVER``): the same number of
   calls; ``log_metric`` journals locally and the buffer sends segments, so this measures
   the whole path until the values are in the server's store (``flush``).

4. **search_runs over ``--runs`` runs** (10 params, 5 metrics each, written straight into each
   server's store before it starts: MLflow's through its own ``SqlAlchemyStore``, Shipyard's
   through its ``SqlBackend``): through the same ``MlflowClient``, (a) the first page of 100
   sorted by a metric, (b) a filter on a metric and a param, (c) every run, page by page
   (1,000 a page); the median of ``--repeat`` tries each.

Target: Shipyard >= 10x MLflow's server on (2), (3) and (4); start-up < 2 s.

Run: ``.venv/bin/python bench/server_vs_mlflow.py [--calls 2000] [--runs 10000] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MLFLOW_VENV = ROOT / "bench" / ".venvs" / "mlflow"
MLFLOW_VERSION = "3.17.2"

CLIENT = """
import json, statistics, sys, time
import mlflow
from mlflow import MlflowClient

url, calls = sys.argv[1], int(sys.argv[2])
client = MlflowClient(url)
experiment = client.create_experiment(f"bench-{time.time_ns()}")
run = client.create_run(experiment)
latencies = []
start = time.perf_counter()
for i in range(calls):
    t = time.perf_counter()
    client.log_metric(run.info.run_id, "loss", 1.0 / (i + 1), step=i)
    latencies.append(time.perf_counter() - t)
total = time.perf_counter() - start
client.set_terminated(run.info.run_id)
history = client.get_metric_history(run.info.run_id, "loss")
assert len(history) == calls, len(history)
latencies.sort()
print(json.dumps({
    "seconds": total,
    "per_second": calls / total,
    "p50_ms": latencies[len(latencies) // 2] * 1000,
    "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
}))
"""

SHIPYARD_CLIENT = """
import json, sys, time
import shipyard
from shipyard.tracking import open_workspace

calls = int(sys.argv[1])
with shipyard.start_run(experiment="bench") as run:
    start = time.perf_counter()
    for i in range(calls):
        run.log_metric("loss", 1.0 / (i + 1), step=i)
    open_workspace().metric_buffer.flush()
    total = time.perf_counter() - start
history = open_workspace().backend.get_metric_history(run.run_id, "loss")
assert len(history) == calls, len(history)
print(json.dumps({"seconds": total, "per_second": calls / total}))
"""


SEARCH_CLIENT = """
import json, statistics, sys, time
from mlflow import MlflowClient

url, repeat = sys.argv[1], int(sys.argv[2])
client = MlflowClient(url)
experiment = client.get_experiment_by_name("search").experiment_id

def first_page():
    return client.search_runs([experiment], order_by=["metrics.m0 DESC"], max_results=100)

def filtered():
    return client.search_runs(
        [experiment], filter_string="metrics.m1 > 0.9 and params.p0 = 'a'", max_results=1000
    )

def everything():
    runs, token = [], None
    while True:
        page = client.search_runs([experiment], max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs

answer = {}
for name, query in (("first_page", first_page), ("filtered", filtered), ("all", everything)):
    times, count = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        count = len(query())
        times.append(time.perf_counter() - t)
    answer[name] = {"seconds": statistics.median(times), "runs": count}
print(json.dumps(answer))
"""

POPULATE_MLFLOW = """
import random, sys, time
from mlflow.entities import Metric, Param
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

db, root, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SqlAlchemyStore(f"sqlite:///{db}", root)
experiment = store.create_experiment("search")
rng = random.Random(0)
now = int(time.time() * 1000)
for i in range(runs):
    run = store.create_run(experiment, "bench", now + i, [], f"run-{i}")
    params = [Param(f"p{k}", rng.choice("abcd")) for k in range(10)]
    metrics = [Metric(f"m{k}", rng.random(), now + i, 0) for k in range(5)]
    store.log_batch(run.info.run_id, metrics=metrics, params=params, tags=[])
"""

POPULATE_SHIPYARD = """
import random, sys, time
from shipyard.entities import Metric
from shipyard.tracking import open_workspace

runs = int(sys.argv[1])
backend = open_workspace().backend
experiment = backend.create_experiment("search").experiment_id
rng = random.Random(0)
now = int(time.time() * 1000)
for i in range(runs):
    run = backend.create_run(experiment, name=f"run-{i}", user="bench", start_time=now + i)
    backend.log_params(run.run_id, {f"p{k}": rng.choice("abcd") for k in range(10)})
    backend.log_metrics([Metric(f"m{k}", rng.random(), 0, now + i, run.run_id) for k in range(5)])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, started: float, timeout: float = 180.0) -> float:
    import httpx

    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{url} did not answer /health in {timeout:.0f} s")
        time.sleep(0.05)


def mlflow_python() -> Path:
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, f"mlflow=={MLFLOW_VERSION}"], check=True)
    return python


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SHIPYARD_"))}
    env.pop("PYTHONPATH", None)
    return env | {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}


def run_json(command: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=10_000, help="runs to search (0: skip)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    python = mlflow_python()
    results: dict[str, Any] = {"calls": args.calls, "runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="bench-server-") as folder:
        tmp = Path(folder)
        # MLflow's server, defaults, SQLite
        port = free_port()
        env = clean_env()
        if args.runs:
            t = time.perf_counter()
            subprocess.run(
                [str(python), "-c", POPULATE_MLFLOW, str(tmp / "mlflow.db"),
                 str(tmp / "mlartifacts"), str(args.runs)],
                env=env, cwd=tmp, check=True, capture_output=True,
            )  # fmt: skip
            results["mlflow_populate_s"] = time.perf_counter() - t
        started = time.perf_counter()
        mlflow_server = subprocess.Popen(
            [
                str(python), "-m", "mlflow", "server",
                "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
                "--default-artifact-root", str(tmp / "mlartifacts"),
                "--host", "127.0.0.1", "--port", str(port),
            ],
            env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            results["mlflow_startup_s"] = wait_for(url, started)
            results["mlflow_server"] = run_json(
                [str(python), "-c", CLIENT, url, str(args.calls)], env, tmp
            )
            if args.runs:
                results["mlflow_search"] = run_json(
                    [str(python), "-c", SEARCH_CLIENT, url, str(args.repeat)], env, tmp
                )
        finally:
            mlflow_server.terminate()
            mlflow_server.wait(timeout=30)
        # Shipyard's server over a fresh workspace
        project = tmp / "project"
        project.mkdir()
        senv = env | {"PYTHONPATH": str(ROOT / "src"), "SHIPYARD_USER": "bench"}
        subprocess.run([sys.executable, "-m", "shipyard.cli", "init", str(project)],
                       env=senv, check=True, capture_output=True)  # fmt: skip
        if args.runs:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", POPULATE_SHIPYARD, str(args.runs)],
                           env=senv, cwd=project, check=True, capture_output=True)  # fmt: skip
            results["shipyard_populate_s"] = time.perf_counter() - t
        port = free_port()
        started = time.perf_counter()
        shipyard_server = subprocess.Popen(
            [sys.executable, "-m", "shipyard.cli", "server", "--port", str(port)],
            env=senv, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            results["shipyard_startup_s"] = wait_for(url, started)
            results["shipyard_server_mlflow_client"] = run_json(
                [str(python), "-c", CLIENT, url, str(args.calls)], env, tmp
            )
            if args.runs:
                results["shipyard_search"] = run_json(
                    [str(python), "-c", SEARCH_CLIENT, url, str(args.repeat)], env, tmp
                )
            client_home = tmp / "laptop"
            client_home.mkdir()
            cenv = senv | {"SHIPYARD_SERVER": url, "SHIPYARD_HOME": str(client_home / ".shipyard")}
            subprocess.run([sys.executable, "-m", "shipyard.cli", "init", str(client_home)],
                           env=senv, check=True, capture_output=True)  # fmt: skip
            results["shipyard_server_shipyard_client"] = run_json(
                [sys.executable, "-c", SHIPYARD_CLIENT, str(args.calls)], cenv, client_home
            )
        finally:
            shipyard_server.terminate()
            shipyard_server.wait(timeout=30)
    base = results["mlflow_server"]["per_second"]
    mine = results["shipyard_server_mlflow_client"]["per_second"]
    own = results["shipyard_server_shipyard_client"]["per_second"]
    print(f"log_metric x {args.calls} (calls/s; p50 / p99 ms per call)")
    for name, key in (
        ("mlflow server, mlflow client", "mlflow_server"),
        ("shipyard server, mlflow client", "shipyard_server_mlflow_client"),
    ):
        r = results[key]
        print(f"  {name:<34} {r['per_second']:>10.0f}   {r['p50_ms']:.1f} / {r['p99_ms']:.1f}")
    print(f"  {'shipyard server, shipyard client':<34} {own:>10.0f}   (journal, batched)")
    print(f"ratio, mlflow client:   {mine / base:.1f}x  (target >= 10x: "
          f"{'PASS' if mine / base >= 10 else 'MISS'})")  # fmt: skip
    print(f"ratio, shipyard client: {own / base:.1f}x  (target >= 10x: "
          f"{'PASS' if own / base >= 10 else 'MISS'})")  # fmt: skip
    print(f"start-up to /health: mlflow {results['mlflow_startup_s']:.2f} s, "
          f"shipyard {results['shipyard_startup_s']:.2f} s (target < 2 s)")  # fmt: skip
    if args.runs:
        print(f"search_runs over {args.runs} runs through the mlflow client (median s; runs)")
        for query in ("first_page", "filtered", "all"):
            theirs, ours = results["mlflow_search"][query], results["shipyard_search"][query]
            assert theirs["runs"] == ours["runs"], (query, theirs, ours)
            ratio = theirs["seconds"] / ours["seconds"]
            print(f"  {query:<11} mlflow {theirs['seconds']:8.3f}  shipyard "
                  f"{ours['seconds']:8.3f}  ({ours['runs']} runs)  {ratio:5.1f}x  "
                  f"(target >= 10x: {'PASS' if ratio >= 10 else 'MISS'})")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
