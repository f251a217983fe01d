"""Tracking side by side: Shipyard vs MLflow, both on a local SQLite store.

Workloads (identical for both tools; each runs in a fresh temp directory and its own process):

* ``log_metric_10k``: 10,000 ``log_metric`` calls in one run, from the first call until the
  run has ended (Shipyard writes its buffered metrics on ``end_run``), then checks the history;
* ``log_batch_10k``: one batch write of 10,000 metrics (MLflow ``MlflowClient.log_batch``,
  which splits it into store calls of 1,000; Shipyard ``backend.log_metrics``);
* ``search_1k``: one filtered, ordered search over 1,000 runs (10 params, 10 metrics each),
  best of N repeats, returned as a pandas DataFrame by both;
* ``start_run``: ``start_run`` + end of an empty run, median of N (MLflow records git and
  source tags; Shipyard with ``log_code=True`` records git, the diff and installed packages);
* ``import``: ``import mlflow`` vs ``import shipyard`` in a fresh interpreter (median of N).

Migrations (first open of each database) happen in untimed setup. MLflow runs in its own venv
(``bench/.venvs/mlflow``, created when missing); Shipyard runs with this interpreter and
``src/`` on the path. The driver runs this file again with ``--worker`` for each measurement.

``log_metric_10k`` also reports Shipyard's cost per ``log_metric`` call alone (the 10,000 calls
before ``end_run``). ``--baseline DIR`` measures that workload a second time with the Shipyard
of another checkout (``DIR/src``, e.g. a ``git worktree`` of an earlier commit), so a change to
the hot path is compared with what came before it on the same machine, side by side.

Run: ``.venv/bin/python bench/tracking_vs_mlflow.py [--quick] [--json PATH] [--baseline DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MLFLOW_VERSION = "3.17.2"
MLFLOW_VENV = ROOT / "bench" / ".venvs" / "mlflow"
N_METRICS = 10_000
N_RUNS = 1_000
SEARCH_FILTER = "metrics.m0 > 0.5"
SEARCH_ORDER = "metrics.m0 DESC"
WORKLOADS = ("log_metric_10k", "log_batch_10k", "search_1k", "start_run", "import")
# workload -> (what must hold, check on (mlflow_s, shipyard_s))
TARGETS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "log_metric_10k": (">=100x", lambda m, s: m / s >= 100),
    "log_batch_10k": (">=10x", lambda m, s: m / s >= 10),
    "search_1k": (">=10x", lambda m, s: m / s >= 10),
    "start_run": ("info", lambda m, s: True),
    "import": ("<150 ms", lambda m, s: s < 0.150),
}
Result = dict[str, Any]


# --- workers: run in the tool's own interpreter -------------------------------------------


def _search_data() -> list[tuple[dict[str, str], dict[str, float]]]:
    """The same 1,000 (params, metrics) pairs in both workers (seeded)."""
    rng = random.Random(42)
    rows = []
    for _ in range(N_RUNS):
        params = {"p0": rng.choice(["rf", "gbm", "lin"])}
        params |= {f"p{i}": str(rng.randint(1, 1000)) for i in range(1, 5)}
        params |= {f"p{i}": f"{rng.getrandbits(32):08x}" for i in range(5, 10)}
        rows.append((params, {f"m{i}": rng.random() for i in range(10)}))
    return rows


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _repeat(action: Callable[[], object], repeat: int) -> Result:
    times = [_timed(action) for _ in range(repeat)]
    return {"best": min(times), "median": statistics.median(times), "first": times[0]}


def mlflow_worker(workload: str, tmp: Path, repeat: int) -> Result:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    client = MlflowClient()
    # Setup, untimed: migrations, the experiment, one throwaway run.
    exp = client.create_experiment("exp", artifact_location=(tmp / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp):
        mlflow.log_metric("warmup", 0.0)

    if workload == "log_metric_10k":
        run_id = mlflow.start_run(experiment_id=exp).info.run_id
        start = time.perf_counter()
        for i in range(N_METRICS):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
        mlflow.end_run()
        seconds = time.perf_counter() - start
        assert len(client.get_metric_history(run_id, "loss")) == N_METRICS
        return {"seconds": seconds}
    if workload == "log_batch_10k":
        run_id = client.create_run(exp).info.run_id
        stamp = int(time.time() * 1000)
        batch = [Metric("loss", 1.0 / (i + 1), stamp, i) for i in range(N_METRICS)]
        seconds = _timed(lambda: client.log_batch(run_id, metrics=batch))
        assert len(client.get_metric_history(run_id, "loss")) == N_METRICS
        return {"seconds": seconds}
    if workload == "search_1k":
        search_exp = client.create_experiment("search")
        stamp = int(time.time() * 1000)
        for params, metrics in _search_data():
            run_id = client.create_run(search_exp).info.run_id
            client.log_batch(
                run_id,
                metrics=[Metric(k, v, stamp, 0) for k, v in metrics.items()],
                params=[Param(k, v) for k, v in params.items()],
            )
            client.set_terminated(run_id)
        found: list[Any] = []

        def search() -> None:
            found[:] = [
                mlflow.search_runs(
                    experiment_ids=[search_exp],
                    filter_string=SEARCH_FILTER,
                    order_by=[SEARCH_ORDER],
                    max_results=N_RUNS,
                )
            ]

        result = _repeat(search, repeat)
        frame = found[0]
        top = [round(float(x), 9) for x in frame["metrics.m0"].head(3)]
        return {"seconds": result["best"], **result, "count": len(frame), "top": top}
    if workload == "start_run":

        def empty_run() -> None:
            with mlflow.start_run(experiment_id=exp):
                pass

        result = _repeat(empty_run, repeat)
        return {"seconds": result["median"], **result}
    raise ValueError(workload)


def shipyard_worker(workload: str, tmp: Path, repeat: int) -> Result:
    import shipyard

    home = tmp / ".shipyard"
    # Setup, untimed: migrations, the experiment, one throwaway run.
    with shipyard.start_run("exp", home=home, log_code=False) as warm:
        warm.log_metric("warmup", 0.0)

    if workload == "log_metric_10k":
        totals, calls = [], []
        for _ in range(repeat):
            run_id = shipyard.start_run("exp", home=home, log_code=False).run_id
            start = time.perf_counter()
            for i in range(N_METRICS):
                shipyard.log_metric("loss", 1.0 / (i + 1), step=i)
            calls.append(time.perf_counter() - start)
            shipyard.end_run()
            totals.append(time.perf_counter() - start)
            assert len(shipyard.get_metric_history(run_id, "loss", home=home)) == N_METRICS
        return {
            "seconds": statistics.median(totals),
            "times": totals,
            "per_call_us": statistics.median(calls) / N_METRICS * 1e6,
        }
    if workload == "log_batch_10k":
        with shipyard.start_run("exp", home=home, log_code=False) as run:
            stamp = int(time.time() * 1000)
            batch = [
                shipyard.Metric("loss", 1.0 / (i + 1), i, stamp, run.run_id)
                for i in range(N_METRICS)
            ]
            seconds = _timed(lambda: run.workspace.backend.log_metrics(batch))
        assert len(shipyard.get_metric_history(run.run_id, "loss", home=home)) == N_METRICS
        return {"seconds": seconds}
    if workload == "search_1k":
        for params, metrics in _search_data():
            with shipyard.start_run("search", home=home, log_code=False) as run:
                run.log_params(params)
                run.log_metrics(metrics, step=0)
        found: list[Any] = []

        def search() -> None:
            found[:] = [
                shipyard.search_runs(
                    "search",
                    filter=SEARCH_FILTER,
                    order_by=[SEARCH_ORDER],
                    max_results=N_RUNS,
                    home=home,
                )
            ]

        result = _repeat(search, repeat)
        frame = found[0]
        top = [round(float(x), 9) for x in frame["metrics.m0"].head(3)]
        return {"seconds": result["best"], **result, "count": len(frame), "top": top}
    if workload == "start_run":

        def empty_run(log_code: bool) -> Callable[[], None]:
            def action() -> None:
                with shipyard.start_run("exp", home=home, log_code=log_code):
                    pass

            return action

        no_code = _repeat(empty_run(False), repeat)
        with_code = _repeat(empty_run(True), repeat)
        return {"seconds": with_code["median"], **with_code, "log_code_false": no_code}
    raise ValueError(workload)


IMPORT_CODE = """\
import json, sys, time
start = time.perf_counter()
import {module}
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "modules": len(sys.modules)}}))
"""


# --- driver: runs under the project venv ---------------------------------------------------


def mlflow_python() -> Path:
    """The MLflow venv's interpreter; create the venv (and install MLflow) when missing."""
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        base = shutil.which("python3.11") or sys.executable
        print(f"creating {MLFLOW_VENV} and installing mlflow=={MLFLOW_VERSION} ...")
        subprocess.run([base, "-m", "venv", str(MLFLOW_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, f"mlflow=={MLFLOW_VERSION}"], check=True)
    return python


def tool_env(tool: str, src: Path = ROOT / "src") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SHIPYARD_"))}
    env.pop("PYTHONPATH", None)
    env |= {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "PYTHONHASHSEED": "0"}
    if tool == "mlflow":
        env |= {"MLFLOW_ENABLE_ASYNC_LOGGING": "false", "GIT_PYTHON_REFRESH": "quiet"}
    else:
        env["PYTHONPATH"] = str(src)
    return env


def run_python(python: Path, args: list[str], env: dict[str, str], cwd: Path) -> Result:
    """Run ``python args`` and parse the JSON on its last stdout line."""
    proc = subprocess.run(
        [str(python), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip()[-2000:] or f"exit code {proc.returncode}")
    result: Result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def measure(
    tool: str, python: Path, workload: str, repeat: int, src: Path = ROOT / "src"
) -> Result:
    env = tool_env(tool, src)
    with tempfile.TemporaryDirectory(prefix=f"bench-{tool}-") as tmp:
        if workload == "import":
            code = IMPORT_CODE.format(module=tool)
            runs = [run_python(python, ["-c", code], env, Path(tmp)) for _ in range(repeat)]
            times = [r["seconds"] for r in runs]
            modules = runs[0]["modules"]
            return {"seconds": statistics.median(times), "times": times, "modules": modules}
        args = [__file__, "--worker", tool, "--workload", workload, "--dir", tmp]
        return run_python(python, [*args, "--repeat", str(repeat)], env, Path(tmp))


def versions(python: Path, tool: str) -> dict[str, str]:
    code = "import json, sqlite3, platform; print(json.dumps({'python': platform.python_version(), 'sqlite': sqlite3.sqlite_version}))"  # noqa: E501
    out = run_python(python, ["-c", code], tool_env(tool), ROOT)
    if tool == "mlflow":
        code = "import json, importlib.metadata as m; print(json.dumps(m.version('mlflow')))"
        out["mlflow"] = run_python(python, ["-c", code], tool_env(tool), ROOT)
    return out


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (2 instead of 5)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also save results here")
    parser.add_argument("--only", nargs="+", choices=WORKLOADS, help="run only these")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="an earlier Shipyard checkout: measure log_metric_10k with it too",
    )
    parser.add_argument("--worker", choices=["mlflow", "shipyard"], help=argparse.SUPPRESS)
    parser.add_argument("--workload", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        worker = mlflow_worker if args.worker == "mlflow" else shipyard_worker
        print(json.dumps(worker(args.workload, args.dir, args.repeat)))
        return 0

    repeat = 2 if args.quick else 5
    pythons = {"mlflow": mlflow_python(), "shipyard": Path(sys.executable)}
    info = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "repeat": repeat,
        "mlflow_env": versions(pythons["mlflow"], "mlflow"),
        "shipyard_env": versions(pythons["shipyard"], "shipyard"),
    }
    print(json.dumps(info))
    results: dict[str, dict[str, Result]] = {}
    for workload in args.only or WORKLOADS:
        results[workload] = {}
        for tool in ("mlflow", "shipyard"):
            print(f"  {workload:<15} {tool:<9}", end=" ", flush=True)
            try:
                out = measure(tool, pythons[tool], workload, repeat)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                out = {"error": str(exc)}
            results[workload][tool] = out
            print(out.get("error") or fmt(out["seconds"]), flush=True)

    header = f"{'workload':<15} {'MLflow':>10} {'Shipyard':>10} {'ratio':>10}  {'target':<8} status"
    lines = [header, "-" * len(header)]
    failed = False
    for workload, pair in results.items():
        m, s = pair["mlflow"].get("seconds"), pair["shipyard"].get("seconds")
        ratio = f"{m / s:.1f}x" if m and s else "-"
        target, check = TARGETS[workload]
        status = "ERROR" if m is None or s is None else ("PASS" if check(m, s) else "MISS")
        if workload == "search_1k" and status != "ERROR":
            same = pair["mlflow"]["count"] == pair["shipyard"]["count"]
            same = same and pair["mlflow"]["top"] == pair["shipyard"]["top"]
            status = status if same else "MISMATCH"
        if target == "info" and status == "PASS":
            status = "-"
        failed = failed or status in ("ERROR", "MISMATCH")
        lines.append(f"{workload:<15} {fmt(m):>10} {fmt(s):>10} {ratio:>10}  {target:<8} {status}")
    print("\n" + "\n".join(lines))
    search = results.get("search_1k", {})
    if all("count" in search.get(t, {}) for t in ("mlflow", "shipyard")):
        counts = f"{search['mlflow']['count']} / {search['shipyard']['count']}"
        print(f"search_1k: best of {repeat}; runs matched (MLflow / Shipyard): {counts}")
    if "import" in results:
        mods = [results["import"][t].get("modules", "-") for t in ("mlflow", "shipyard")]
        print(f"import: median of {repeat}; sys.modules after import: {mods[0]} / {mods[1]}")
    start = results.get("start_run", {}).get("shipyard", {})
    if "log_code_false" in start:
        print(
            f"start_run: median of {repeat}; Shipyard log_code=True {fmt(start['median'])}, "
            f"log_code=False {fmt(start['log_code_false']['median'])}"
        )
    metric = results.get("log_metric_10k", {}).get("shipyard", {})
    if "per_call_us" in metric:
        per_call = metric["per_call_us"]
        line = f"log_metric_10k: median of {repeat}; per log_metric call {per_call:.2f} µs"
        if args.baseline:
            base = measure(
                "shipyard", pythons["shipyard"], "log_metric_10k", repeat, args.baseline / "src"
            )
            results["log_metric_10k"]["baseline"] = base
            line += (
                f" vs {base['per_call_us']:.2f} µs in {args.baseline} "
                f"({metric['per_call_us'] / base['per_call_us']:.2f}x); until the run has "
                f"ended {fmt(metric['seconds'])} vs {fmt(base['seconds'])} "
                f"({metric['seconds'] / base['seconds']:.2f}x)"
            )
        print(line)
    if args.json:
        args.json.write_text(json.dumps({**info, "results": results}, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
