"""The web UI's runs table and metric charts against MLflow's UI, on the same data (issue 17).

Data: ``--runs`` runs (default 100,000) in one experiment, each with 20 params (``p0``..``p19``,
values ``v0``..``v9``) and 10 metrics (``m0``..``m9``, uniform in [0, 1)), seeded; the newest
run's ``m0`` has a ``--steps``-step history (default 100,000) whose last value is its latest.
The rows are written in bulk (SQLAlchemy Core executemany) into:

* Shipyard's store on SQLite and on PostgreSQL (``--pg-url``; a database of its own is made
  and dropped): ``experiments`` (through the store's ``create_experiment``), ``runs``,
  ``params``, ``metrics`` and ``latest_metrics``, as the store's own writes would leave them.
  PostgreSQL is ``ANALYZE``d after the load (what autovacuum does soon after a bulk load).
* MLflow's SQLite database, after ``mlflow server`` created it and made the experiment through
  its REST API: ``runs`` (with the ``mlflow.runName`` tag), ``params``, ``metrics`` and
  ``latest_metrics``, as its ``log_batch`` would.

Each server runs on 127.0.0.1 with its defaults (``shipyard server``; ``mlflow server`` from
``bench/.venvs/mlflow``, made when missing); this process is the client (httpx, one kept-alive
connection). Each request is sent once to warm up, then ``--repeat`` times (fewer when that
would overrun ``--budget`` seconds; a request slower than the budget is timed by its warm-up
alone, and one unanswered after ``--timeout`` is reported as such); the median is reported:

* ``first page``: Shipyard ``GET /experiments/{id}?per=100`` (the whole page), MLflow
  ``POST /ajax-api/2.0/mlflow/runs/search`` with ``max_results=100`` and the UI's default
  ``order_by=["attributes.start_time DESC"]``;
* ``filtered``: the same with ``metrics.m1 < 0.5 and params.p3 = 'v7'`` (about 5 % of runs);
* ``sorted``: the same ordered by ``metrics.m3 DESC``;
* ``run page``: Shipyard ``GET /runs/{id}``, MLflow ``GET /ajax-api/2.0/mlflow/runs/get``;
* ``chart``: Shipyard ``GET /runs/{id}/charts/m0`` as htmx asks for it (the SVG fragment, at
  most 2,000 points kept by bucket extremes), MLflow the call its run page makes for a chart,
  ``GET /ajax-api/2.0/mlflow/metrics/get-history-bulk-interval`` (``max_results=320``, the UI's
  default), and the whole history through ``GET .../metrics/get-history``.

Both servers must show the same 100 runs in the same order on every table query (checked).
Target: every Shipyard table query and the chart under 1 s of server time.

Run: ``.venv/bin/python bench/ui_runs.py --runs 100000 --timeout 900`` (about 20 min, ten of
them MLflow's sorted search); ``--runs 2000`` for a smoke run (1.5 min); ``--stores`` to pick
among shipyard-sqlite, shipyard-postgres and mlflow; ``--json PATH``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from server_vs_mlflow import clean_env, free_port, mlflow_python, wait_for

ROOT = Path(__file__).resolve().parents[1]
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
N_PARAMS, N_METRICS, N_VALUES = 20, 10, 10
FILTER = "metrics.m1 < 0.5 and params.p3 = 'v7'"
ORDER = "metrics.m3 DESC"
CHART_KEY = "m0"
PAGE = 100
MLFLOW_SAMPLED = 320  # maxResults of MLflow's useSampledMetricHistory
TARGET_S = 1.0
BATCH = 5_000  # runs per executemany batch
TABLE_QUERIES = ("first page", "filtered", "sorted")
QUERIES = (*TABLE_QUERIES, "run page", "chart")


@dataclass(frozen=True)
class Data:
    run_ids: list[str]
    names: list[str]
    start: list[int]
    params: list[list[str]]
    metrics: list[list[float]]
    history: list[float]

    @property
    def long_run(self) -> int:
        """The run whose ``m0`` has the long history: the newest, first in the table."""
        return len(self.run_ids) - 1


def make_data(runs: int, steps: int, seed: int = 17) -> Data:
    rng = random.Random(seed)
    base = 1_780_000_000_000
    data = Data(
        run_ids=[f"{rng.getrandbits(128):032x}" for _ in range(runs)],
        names=[f"run-{i}" for i in range(runs)],
        start=[base + i * 1000 for i in range(runs)],
        params=[[f"v{rng.randrange(N_VALUES)}" for _ in range(N_PARAMS)] for _ in range(runs)],
        metrics=[[rng.random() for _ in range(N_METRICS)] for _ in range(runs)],
        history=[],
    )
    # a noisy decaying curve with a few spikes, ending at the run's latest m0
    last = data.metrics[data.long_run][0]
    curve = [1.0 / (1 + s / 500) + rng.gauss(0, 0.02) for s in range(steps)]
    for s in rng.sample(range(steps), min(20, steps)):
        curve[s] += 3.0
    curve[-1] = last
    data.history.extend(curve)
    return data


def _batches(data: Data) -> Iterator[range]:
    """Run indexes in batches, oldest first: the order in which the runs were made, so that
    each table lies on disk as it would after the runs had logged one after another."""
    for start in range(0, len(data.run_ids), BATCH):
        yield range(start, min(start + BATCH, len(data.run_ids)))


def _metric_rows(data: Data, i: int) -> tuple[list[tuple[str, float, int, int]], list[Any]]:
    """``(key, value, step, timestamp)`` of run ``i``'s history rows and latest values."""
    stamp = data.start[i] + 500
    latest = [(f"m{k}", v, 10, stamp) for k, v in enumerate(data.metrics[i])]
    if i != data.long_run:
        return latest, latest
    history = [(CHART_KEY, v, s, data.start[i] + s) for s, v in enumerate(data.history)]
    steps = len(data.history)
    latest[0] = (CHART_KEY, data.history[-1], steps - 1, data.start[i] + steps - 1)
    return history + latest[1:], latest


# --- Shipyard ----------------------------------------------------------------------------


def fill_shipyard(url: str, data: Data) -> tuple[int, float]:
    """Make the experiment through the store, then write every row in bulk."""
    from shipyard.store.sql import schema
    from shipyard.store.sql.backend import SqlBackend
    from shipyard.store.sql.engine import write

    started = time.perf_counter()
    backend = SqlBackend(url)
    try:
        experiment = backend.create_experiment("ui-bench").experiment_id
        with write(backend.engine) as conn:
            for batch in _batches(data):
                run_rows: list[dict[str, Any]] = []
                param_rows: list[dict[str, Any]] = []
                metric_rows: list[dict[str, Any]] = []
                latest_rows: list[dict[str, Any]] = []
                for i in batch:
                    run_id = data.run_ids[i]
                    run_rows.append(
                        {
                            "run_id": run_id,
                            "experiment_id": experiment,
                            "name": data.names[i],
                            "status": "FINISHED",
                            "start_time": data.start[i],
                            "end_time": data.start[i] + 900,
                            "user": "bench",
                        }
                    )
                    param_rows.extend(
                        {"run_id": run_id, "key": f"p{k}", "value": v}
                        for k, v in enumerate(data.params[i])
                    )
                    history, latest = _metric_rows(data, i)
                    metric_rows.extend(
                        {"run_id": run_id, "key": k, "value": v, "step": s, "timestamp": t}
                        for k, v, s, t in history
                    )
                    latest_rows.extend(
                        {"run_id": run_id, "key": k, "value": v, "step": s, "timestamp": t}
                        for k, v, s, t in latest
                    )
                conn.execute(schema.runs.insert(), run_rows)
                conn.execute(schema.params.insert(), param_rows)
                conn.execute(schema.metrics.insert(), metric_rows)
                conn.execute(schema.latest_metrics.insert(), latest_rows)
        if backend.engine.dialect.name == "postgresql":
            with backend.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    finally:
        backend.close()
    return experiment, time.perf_counter() - started


def shipyard_server(tmp: Path, name: str, store_url: str) -> tuple[subprocess.Popen[bytes], str]:
    project = tmp / name
    project.mkdir()
    env = clean_env() | {
        "PYTHONPATH": str(ROOT / "src"),
        "SHIPYARD_USER": "bench",
        "SHIPYARD_HOME": str(project / ".shipyard"),
        "SHIPYARD_STORE_URL": store_url,
    }
    subprocess.run([sys.executable, "-m", "shipyard.cli", "init", str(project)],
                   env=env, check=True, capture_output=True)  # fmt: skip
    port = free_port()
    log = (tmp / f"{name}.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "shipyard.cli", "server", "--port", str(port)],
        env=env, cwd=project, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_for(url, time.perf_counter())
    return server, url


_ROW = re.compile(r'<td><a href="/runs/([0-9a-f]{32})">([^<]*)</a></td>')
_POINTS = re.compile(r'data-points="(\d+)"')


def measure_shipyard(url: str, experiment: int, data: Data, timing: Timing) -> dict[str, Any]:
    table = f"{url}/experiments/{experiment}"
    long_run = data.run_ids[data.long_run]
    found = measure(
        {
            "first page": ("GET", table, {"params": {"per": PAGE}}),
            "filtered": ("GET", table, {"params": {"per": PAGE, "filter": FILTER}}),
            "sorted": ("GET", table, {"params": {"per": PAGE, "order": ORDER}}),
            "run page": ("GET", f"{url}/runs/{long_run}", {}),
            "chart": (
                "GET",
                f"{url}/runs/{long_run}/charts/{CHART_KEY}",
                {"headers": {"HX-Request": "true"}},
            ),
        },
        timing,
    )
    for query, entry in found.items():
        if "response" not in entry:
            continue
        text = entry.pop("response").text
        if query in TABLE_QUERIES:
            entry["names"] = [name for _, name in _ROW.findall(text)]
        if query == "chart":
            entry["points"] = max(int(p) for p in _POINTS.findall(text))
            assert entry["points"] <= 2100, entry["points"]
    return found


# --- MLflow ------------------------------------------------------------------------------


def fill_mlflow(db: Path, artifacts: str, experiment: int, data: Data) -> float:
    """Write the rows into MLflow's own tables, as its ``log_batch`` would."""
    started = time.perf_counter()
    t = {
        name: sa.table(name, *(sa.column(c) for c in columns))
        for name, columns in {
            "runs": ("run_uuid", "name", "source_type", "source_name", "entry_point_name",
                     "user_id", "status", "start_time", "end_time", "source_version",
                     "lifecycle_stage", "artifact_uri", "experiment_id"),
            "tags": ("key", "value", "run_uuid"),
            "params": ("key", "value", "run_uuid"),
            "metrics": ("key", "value", "timestamp", "run_uuid", "step", "is_nan"),
            "latest_metrics": ("key", "value", "timestamp", "step", "is_nan", "run_uuid"),
        }.items()
    }  # fmt: skip
    engine = sa.create_engine(f"sqlite:///{db}", connect_args={"timeout": 60})
    with engine.begin() as conn:
        for batch in _batches(data):
            runs: list[dict[str, Any]] = []
            tags: list[dict[str, Any]] = []
            params: list[dict[str, Any]] = []
            metrics: list[dict[str, Any]] = []
            latest: list[dict[str, Any]] = []
            for i in batch:
                run_id = data.run_ids[i]
                runs.append(
                    {
                        "run_uuid": run_id,
                        "name": data.names[i],
                        "source_type": "UNKNOWN",
                        "source_name": "",
                        "entry_point_name": "",
                        "user_id": "bench",
                        "status": "FINISHED",
                        "start_time": data.start[i],
                        "end_time": data.start[i] + 900,
                        "source_version": "",
                        "lifecycle_stage": "active",
                        "artifact_uri": f"{artifacts}/{experiment}/{run_id}/artifacts",
                        "experiment_id": experiment,
                    }
                )
                tags.append({"key": "mlflow.runName", "value": data.names[i], "run_uuid": run_id})
                params.extend(
                    {"key": f"p{k}", "value": v, "run_uuid": run_id}
                    for k, v in enumerate(data.params[i])
                )
                history, last = _metric_rows(data, i)
                metrics.extend(
                    {"key": k, "value": v, "timestamp": ts, "run_uuid": run_id, "step": s,
                     "is_nan": 0}
                    for k, v, s, ts in history
                )  # fmt: skip
                latest.extend(
                    {"key": k, "value": v, "timestamp": ts, "step": s, "is_nan": 0,
                     "run_uuid": run_id}
                    for k, v, s, ts in last
                )  # fmt: skip
            conn.execute(t["runs"].insert(), runs)
            conn.execute(t["tags"].insert(), tags)
            conn.execute(t["params"].insert(), params)
            conn.execute(t["metrics"].insert(), metrics)
            conn.execute(t["latest_metrics"].insert(), latest)
    engine.dispose()
    return time.perf_counter() - started


def measure_mlflow(url: str, experiment: int, data: Data, timing: Timing) -> dict[str, Any]:
    search = f"{url}/ajax-api/2.0/mlflow/runs/search"
    history = f"{url}/ajax-api/2.0/mlflow/metrics"
    long_run = data.run_ids[data.long_run]

    def body(filter_: str = "", order: str = "attributes.start_time DESC") -> dict[str, Any]:
        return {
            "json": {
                "experiment_ids": [str(experiment)],
                "filter": filter_,
                "order_by": [order],
                "max_results": PAGE,
                "run_view_type": "ACTIVE_ONLY",
            }
        }

    sampled = {"run_ids": long_run, "metric_key": CHART_KEY, "max_results": MLFLOW_SAMPLED}
    found = measure(
        {
            "first page": ("POST", search, body()),
            "filtered": ("POST", search, body(FILTER)),
            "sorted": ("POST", search, body(order=ORDER)),
            "run page": (
                "GET",
                f"{url}/ajax-api/2.0/mlflow/runs/get",
                {"params": {"run_id": long_run}},
            ),
            "chart": ("GET", f"{history}/get-history-bulk-interval", {"params": sampled}),
            "chart, whole history": (
                "GET",
                f"{history}/get-history",
                {"params": {"run_id": long_run, "metric_key": CHART_KEY}},
            ),
        },
        timing,
    )
    for query, entry in found.items():
        if "response" not in entry:
            continue
        answer = entry.pop("response").json()
        if query in TABLE_QUERIES:
            entry["names"] = [r["info"]["run_name"] for r in answer.get("runs", [])]
        if "metrics" in answer:
            entry["points"] = len(answer["metrics"])
    return found


def mlflow_server(tmp: Path, db: Path, artifacts: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (tmp / "mlflow.log").open("ab")
    server = subprocess.Popen(
        [
            str(mlflow_python()), "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{db}",
            "--default-artifact-root", artifacts,
            "--host", "127.0.0.1", "--port", str(port),
        ],
        env=clean_env(), cwd=tmp, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_for(url, time.perf_counter())
    return server, url


# --- measuring ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    repeat: int
    budget: float
    """Seconds one request may take in all: a slower one is timed fewer times."""
    timeout: float
    """Seconds to wait for one answer before giving up on the request."""


def measure(
    requests: dict[str, tuple[str, str, dict[str, Any]]], timing: Timing
) -> dict[str, dict[str, Any]]:
    """Each request's median round trip over ``timing.repeat`` tries after one warm-up.

    A request so slow that the tries would overrun ``timing.budget`` is timed fewer times; one
    slower than the whole budget is timed once, by its warm-up (``tries`` says how many), and
    one that has not answered after ``timing.timeout`` has ``seconds`` None.
    """
    found: dict[str, dict[str, Any]] = {}
    with httpx.Client(timeout=timing.timeout) as client:
        for query, (method, where, options) in requests.items():
            started = time.perf_counter()
            try:
                response = client.request(method, where, **options)
            except httpx.TimeoutException:
                found[query] = {"seconds": None, "tries": 0, "timeout": timing.timeout}
                print(f"    {query}: no answer in {timing.timeout:.0f} s", flush=True)
                continue
            times = [time.perf_counter() - started]
            response.raise_for_status()
            if times[0] <= timing.budget:
                tries = max(1, min(timing.repeat, int(timing.budget // times[0])))
                times = []
                for _ in range(tries):
                    started = time.perf_counter()
                    response = client.request(method, where, **options)
                    times.append(time.perf_counter() - started)
                    response.raise_for_status()
            found[query] = {
                "seconds": statistics.median(times),
                "tries": len(times),
                "bytes": len(response.content),
                "response": response,
            }
            print(f"    {query}: {found[query]['seconds'] * 1000:.1f} ms", flush=True)
    return found


def stop(server: subprocess.Popen[bytes]) -> None:
    """End a server and every process it started (it leads a process group of its own):
    MLflow's uvicorn workers and job consumers outlive their parent, and a worker busy with
    a slow query keeps a graceful shutdown waiting."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)  # whatever of the group is left
    server.wait()


def run_shipyard(tmp: Path, name: str, url: str, data: Data, timing: Timing) -> dict[str, Any]:
    experiment, fill_s = fill_shipyard(url, data)
    print(f"  {name}: filled in {fill_s:.1f} s", flush=True)
    server, base = shipyard_server(tmp, name, url)
    try:
        found = measure_shipyard(base, experiment, data, timing)
    finally:
        stop(server)
    return {"fill_s": fill_s, **found}


def run_postgres(tmp: Path, admin_url: str, data: Data, timing: Timing) -> dict[str, Any]:
    database = f"shipyard_ui_bench_{os.getpid()}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {database}")
        conn.exec_driver_sql(f"CREATE DATABASE {database}")
    try:
        url = sa.make_url(admin_url).set(database=database).render_as_string(hide_password=False)
        return run_shipyard(tmp, "shipyard-postgres", url, data, timing)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.dispose()


def run_mlflow(tmp: Path, data: Data, timing: Timing) -> dict[str, Any]:
    db, artifacts = tmp / "mlflow.db", str(tmp / "mlartifacts")
    # The server makes its database and the experiment; the rows go in while it is stopped
    # (writing beside a running server waits on the locks its workers take).
    server, url = mlflow_server(tmp, db, artifacts)
    try:
        made = httpx.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": "ui-bench"})
        made.raise_for_status()
        experiment = int(made.json()["experiment_id"])
    finally:
        stop(server)
    fill_s = fill_mlflow(db, artifacts, experiment, data)
    print(f"  mlflow: filled in {fill_s:.1f} s", flush=True)
    server, url = mlflow_server(tmp, db, artifacts)
    try:
        found = measure_mlflow(url, experiment, data, timing)
    finally:
        stop(server)
    return {"fill_s": fill_s, **found}


STORES = ("shipyard-sqlite", "shipyard-postgres", "mlflow")


def _ms(entry: dict[str, Any] | None, repeat: int) -> str:
    if entry is None:
        return "-"
    if entry["seconds"] is None:
        return f"> {entry['timeout']:.0f} s "
    return f"{entry['seconds'] * 1000:.1f}{'*' if entry['tries'] < repeat else ' '}"


def _ratio(theirs: dict[str, Any] | None, mine: dict[str, Any] | None) -> str:
    if not theirs or not mine or mine["seconds"] is None:
        return "-"
    if theirs["seconds"] is None:
        return f"> {theirs['timeout'] / mine['seconds']:.0f}x"
    return f"{theirs['seconds'] / mine['seconds']:.1f}x"


def report(results: dict[str, Any]) -> None:
    stores = [s for s in STORES if s in results]
    ours = [s for s in stores if s.startswith("shipyard")]
    repeat = results["repeat"]
    print(
        f"\n{results['runs']:,} runs x {N_PARAMS} params x {N_METRICS} metrics, a "
        f"{results['steps']:,}-step history; round trip in ms, median of {repeat} after a "
        "warm-up (* fewer tries: a slow request)"
    )
    head = f"{'query':<22}" + "".join(f"{s:>19}" for s in stores)
    if "mlflow" in stores:
        head += "".join(f"{'mlflow / ' + s.split('-')[1]:>19}" for s in ours)
    print(head + "   target (< 1 s)")
    for query in (*QUERIES, "chart, whole history"):
        values = {s: results[s].get(query) for s in stores}
        row = f"{query:<22}" + "".join(f"{_ms(values[s], repeat):>19}" for s in stores)
        if "mlflow" in stores:
            row += "".join(f"{_ratio(values['mlflow'], values[s]):>19}" for s in ours)
        if query in QUERIES and ours:
            slowest = max(results[s][query]["seconds"] or math.inf for s in ours)
            row += f"   {'PASS' if slowest < TARGET_S else 'MISS'}"
        print(row)
    for store in stores:
        chart = results[store]["chart"]
        print(
            f"  {store}: filled in {results[store]['fill_s']:.0f} s; chart answer "
            f"{chart.get('bytes', 0):,} bytes, {chart.get('points', 0):,} points"
        )
    whole = results.get("mlflow", {}).get("chart, whole history", {})
    if "points" in whole:
        print(f"  mlflow whole history: {whole['bytes']:,} bytes, {whole['points']:,} points")


def check_same(results: dict[str, Any]) -> None:
    """Every store shows the same runs, in the same order, for each table query answered."""
    stores = [s for s in STORES if s in results]
    for query in TABLE_QUERIES:
        pages = {s: results[s][query]["names"] for s in stores if "names" in results[s][query]}
        if not pages:
            continue
        first = next(iter(pages.values()))
        assert len(first) == PAGE, (query, len(first))
        for store, names in pages.items():
            assert names == first, f"{query}: {store} shows other runs than {next(iter(pages))}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--budget", type=float, default=120.0, help="seconds per request in all (default 120)"
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds to wait for one answer"
    )
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    timing = Timing(args.repeat, args.budget, args.timeout)
    started = time.perf_counter()
    data = make_data(args.runs, args.steps)
    results: dict[str, Any] = {"runs": args.runs, "steps": args.steps, "repeat": args.repeat}
    print(f"data made in {time.perf_counter() - started:.1f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as folder:
        tmp = Path(folder)
        if "shipyard-sqlite" in args.stores:
            url = f"sqlite:///{tmp / 'shipyard.db'}"
            results["shipyard-sqlite"] = run_shipyard(tmp, "shipyard-sqlite", url, data, timing)
        if "shipyard-postgres" in args.stores:
            results["shipyard-postgres"] = run_postgres(tmp, args.pg_url, data, timing)
        if "mlflow" in args.stores:
            results["mlflow"] = run_mlflow(tmp, data, timing)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    report(results)
    check_same(results)


if __name__ == "__main__":
    main()
