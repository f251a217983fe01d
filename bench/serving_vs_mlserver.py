"""Online serving side by side: ``shipyard serve`` vs MLServer 1.7 vs ``mlflow models serve``.

Both models (LogisticRegression(max_iter=5000) and RandomForestClassifier(n_estimators=100,
random_state=0) fitted on sklearn's breast_cancer) are trained by each tool in its own
interpreter and served with default settings:

* Shipyard: ``shipyard serve lr@1 rf@1`` from the project venv, a fresh workspace in a temp
  dir, prediction log ON (the default: logging is part of the product); also a run with
  ``--max-batch-size 1`` (batching off);
* MLServer: ``mlserver start`` in ``bench/.venvs/mlserver`` (created when missing), one
  ``model-settings.json`` per model (``mlserver_sklearn.SKLearnModel``, a joblib file), default
  settings, then again with adaptive batching (``max_batch_size`` 32, ``max_batch_time`` 2 ms);
* MLflow: ``mlflow models serve --env-manager local`` in ``bench/.venvs/mlflow``, one server per
  model, each logged by MLflow itself to a sqlite store in the temp dir.

Every request is the same single row (the first breast_cancer row), in each server's protocol:
an OIP v2 ``[1, 30]`` FP64 tensor for Shipyard and MLServer, ``dataframe_split`` for MLflow.
Load comes from ``wrk`` (one thread, a Lua script POSTing the fixed body; closed loop, so
latencies under overload are understated for every server alike), 3 s warm-up then a timed
run, at concurrency 16 and 64, to 127.0.0.1 only. Before loading a server its answer to the row
is checked against the class every other server returns.

Batch inference (``--batch``): ``shipyard predict lr@1 --input X.parquet --output out.parquet``
(wall time of the CLI, including interpreter start, model load, parquet I/O and the prediction
log) vs reading the same parquet, ``model.predict`` and writing the predictions in-process, on
1,000,000 rows resampled from breast_cancer. Target: >= 70 % of the in-process rows/s.

Run: ``.venv/bin/python bench/serving_vs_mlserver.py [--duration 15] [--json PATH]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / "bench" / ".venvs"
MLSERVER_VENV = VENVS / "mlserver"
MLFLOW_VENV = VENVS / "mlflow"
MLSERVER_REQS = ["mlserver==1.7.*", "mlserver-sklearn==1.7.*", "uvloop<0.22"]
MLFLOW_VERSION = "3.17.2"
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
MODELS = ("lr", "rf")
CONCURRENCY = (16, 64)
PORT = 18080
Result = dict[str, Any]

# Trains both models the same way in every interpreter; `frame`, `x`, `y`, `models` afterwards.
TRAIN = textwrap.dedent(
    """
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    frame = load_breast_cancer(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    def models(fit_x):
        return {
            "lr": LogisticRegression(max_iter=5000).fit(fit_x, y),
            "rf": RandomForestClassifier(n_estimators=100, random_state=0).fit(fit_x, y),
        }
    """
)

SHIPYARD_SETUP = TRAIN + textwrap.dedent(
    """
    import json, shipyard
    for name, model in models(x).items():
        with shipyard.start_run(experiment="bench", log_code=False) as run:
            run.log_model(model, name, input_example=x.head())
    print(json.dumps({"columns": list(x.columns), "row": [float(v) for v in x.iloc[0]]}))
    """
)

MLSERVER_SETUP = TRAIN + textwrap.dedent(
    """
    import json, sys, joblib
    from pathlib import Path
    repo = Path(sys.argv[1])
    for name, model in models(x.to_numpy()).items():  # served an ndarray: fit on one
        for variant, extra in (("default", {}), ("batched", BATCHING)):
            folder = repo / variant / name
            folder.mkdir(parents=True, exist_ok=True)
            joblib.dump(model, folder / "model.joblib")
            settings = {"name": name, "implementation": "mlserver_sklearn.SKLearnModel",
                        "parameters": {"uri": "./model.joblib", "version": "v1"}} | extra
            (folder / "model-settings.json").write_text(json.dumps(settings))
    print("{}")
    """
)
BATCHING = {"max_batch_size": 32, "max_batch_time": 0.002}

MLFLOW_SETUP = TRAIN + textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import mlflow, mlflow.sklearn
    tmp = Path(sys.argv[1])
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    mlflow.create_experiment("bench", artifact_location=(tmp / "artifacts").as_uri())
    mlflow.set_experiment("bench")
    uris = {}
    for name, model in models(x).items():
        with mlflow.start_run():
            # MLflow 3 saves with skops and wants the tree type named as trusted
            trusted = {"skops_trusted_types": ["sklearn.tree._tree.Tree"]} if name == "rf" else {}
            logged = mlflow.sklearn.log_model(model, name=name, input_example=x.head(), **trusted)
            uris[name] = logged.model_uri
    print(json.dumps(uris))
    """
)

BASELINE = TRAIN + textwrap.dedent(
    """
    import json, sys, time
    import pandas as pd
    model = models(x)[sys.argv[3]]
    start = time.perf_counter()
    table = pd.read_parquet(sys.argv[1])
    pd.DataFrame({"prediction": model.predict(table)}).to_parquet(sys.argv[2])
    print(json.dumps({"seconds": time.perf_counter() - start, "rows": len(table)}))
    """
)


# --- environments ---------------------------------------------------------------------------


def ensure_venv(venv: Path, requirements: list[str]) -> Path:
    """The venv's interpreter; create the venv and install ``requirements`` when missing."""
    python = venv / "bin" / "python"
    if not python.exists():
        base = shutil.which("python3.11") or sys.executable
        print(f"creating {venv} and installing {' '.join(requirements)} ...", flush=True)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *requirements], check=True)
    return python


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None and shutil.which("apt-get") and os.geteuid() == 0:
        print("installing wrk with apt-get ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
        wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is needed (apt-get install wrk)")
    return wrk


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SHIPYARD_"))}
    env.pop("PYTHONPATH", None)
    env |= {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "PYTHONHASHSEED": "0"}
    return env | extra


def run_json(cmd: list[str], env: dict[str, str], cwd: Path) -> Any:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed:\n{proc.stderr.strip()[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def version_of(python: Path, dist: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


# --- servers --------------------------------------------------------------------------------


@dataclass
class Server:
    """One configuration: how to start it, where to POST, and the body for a model."""

    label: str
    protocol: str  # "v2" or "mlflow"
    commands: dict[str, list[str]]  # process key -> argv; "*" serves every model
    env: dict[str, str]
    cwd: Path
    ports: dict[str, int]  # model -> port
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def url(self, model: str) -> str:
        base = f"http://127.0.0.1:{self.ports[model]}"
        return (
            f"{base}/invocations"
            if self.protocol == "mlflow"
            else f"{base}/v2/models/{model}/infer"
        )

    def ready_url(self, model: str) -> str:
        base = f"http://127.0.0.1:{self.ports[model]}"
        return f"{base}/ping" if self.protocol == "mlflow" else f"{base}/v2/models/{model}/ready"

    def start(self, log: Path) -> None:
        for key, cmd in self.commands.items():
            self.logs.append(log.with_suffix(f".{key}.log"))
            out = open(self.logs[-1], "wb")
            self.procs.append(
                subprocess.Popen(
                    cmd,
                    env=self.env,
                    cwd=self.cwd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            for _ in range(20):  # children (uvicorn under `mlflow models serve`) too
                try:
                    os.killpg(proc.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.5)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        for model in MODELS:
            while True:
                if any(p.poll() is not None for p in self.procs):
                    tail = "".join(p.read_text(errors="replace")[-3000:] for p in self.logs)
                    raise RuntimeError(f"{self.label}: a server process exited:\n{tail}")
                try:
                    with urllib.request.urlopen(self.ready_url(model), timeout=2) as r:  # noqa: S310
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.label}: {model} not ready after {timeout:.0f} s")
                time.sleep(0.5)


def body(protocol: str, columns: list[str], row: list[float]) -> str:
    if protocol == "mlflow":
        return json.dumps({"dataframe_split": {"columns": columns, "data": [row]}})
    tensor = {"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}
    return json.dumps({"inputs": [tensor]})


def predicted_class(url: str, payload: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - 127.0.0.1 only
        url, data=payload.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        answer = json.loads(response.read())
    if "outputs" in answer:
        value: Any = answer["outputs"][0]["data"]
    else:
        value = answer.get("predictions", answer)
    while isinstance(value, list | dict):
        value = value[0] if isinstance(value, list) else next(iter(value.values()))
    return int(value)


# --- load -----------------------------------------------------------------------------------

UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def seconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * UNITS[unit]


def wrk(tool: str, url: str, script: Path, connections: int, duration: float) -> Result:
    cmd = [tool, "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s", "--latency"]
    out = subprocess.run(
        [*cmd, "-s", str(script), url], capture_output=True, text=True, check=True
    ).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non2xx.group(1)) if non2xx else 0
    # wrk pads "1.20s" with a space after it, "ms" and "us" not
    pct = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)[ \t]*$", out, re.M))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": seconds(pct["50"]),
        "p99": seconds(pct["99"]),
        "requests": total,
        "errors": errors,
        "load1": os.getloadavg()[0],
    }


def lua(path: Path, payload: str) -> Path:
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(payload)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return path


def wait_quiet(limit: float, max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) for no pytest and a 1-minute load average below ``limit``."""
    deadline = time.monotonic() + max_wait

    def busy() -> bool:  # a test suite running beside us moves the numbers most
        pytest = subprocess.run(["pgrep", "-f", "pytest"], capture_output=True).returncode == 0
        return pytest or os.getloadavg()[0] >= limit

    while busy() and time.monotonic() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]


# --- driver ---------------------------------------------------------------------------------


def build_servers(tmp: Path, only: list[str] | None) -> tuple[list[Server], dict[str, Any]]:
    info: dict[str, Any] = {}
    home = tmp / "shipyard"
    home.mkdir()
    shipyard_env = clean_env(SHIPYARD_HOME=str(home / ".shipyard"))
    print("training + registering models in a Shipyard workspace ...", flush=True)
    info |= run_json([str(PROJECT_PYTHON), "-c", SHIPYARD_SETUP], shipyard_env, home)
    shipyard_bin = str(PROJECT_PYTHON.parent / "shipyard")
    refs = [f"{m}@1" for m in MODELS]
    both = dict.fromkeys(MODELS, PORT)
    serve = [shipyard_bin, "serve", *refs, "--port", str(PORT)]
    variants = {"shipyard": [], "shipyard bs1": ["--max-batch-size", "1"]}
    # diagnostics, only when named with --only: two workers; prediction log off
    extras = {"shipyard w2": ["--workers", "2"], "shipyard nolog": ["--no-log"]}
    variants |= extras
    servers = [
        Server(label, "v2", {"all": serve + extra}, shipyard_env, home, both)
        for label, extra in variants.items()
    ]
    info["versions"] = {
        "shipyard": version_of(PROJECT_PYTHON, "shipyard-mlops"),
        "sklearn (shipyard)": version_of(PROJECT_PYTHON, "scikit-learn"),
    }

    if not only or any(s.startswith("mlserver") for s in only):
        python = ensure_venv(MLSERVER_VENV, MLSERVER_REQS)
        repo = tmp / "mlserver"
        print("training MLServer models ...", flush=True)
        run_json(
            [str(python), "-c", MLSERVER_SETUP.replace("BATCHING", repr(BATCHING)), str(repo)],
            clean_env(),
            tmp,
        )
        for variant in ("default", "batched"):
            (repo / variant / "settings.json").write_text(
                json.dumps(
                    {
                        "host": "127.0.0.1",
                        "http_port": PORT + 1,
                        "grpc_port": PORT + 2,
                        "metrics_port": PORT + 3,
                    }
                )
            )
            label = "mlserver" if variant == "default" else "mlserver batched"
            cmd = [str(python.parent / "mlserver"), "start", str(repo / variant)]
            servers.append(
                Server(
                    label,
                    "v2",
                    {"all": cmd},
                    clean_env(),
                    repo / variant,
                    dict.fromkeys(MODELS, PORT + 1),
                )
            )
        info["versions"] |= {
            "mlserver": version_of(python, "mlserver"),
            "sklearn (mlserver)": version_of(python, "scikit-learn"),
        }

    if not only or "mlflow" in only:
        python = ensure_venv(MLFLOW_VENV, [f"mlflow=={MLFLOW_VERSION}"])
        store = tmp / "mlflow"
        store.mkdir()
        print("training + logging MLflow models ...", flush=True)
        uris = run_json([str(python), "-c", MLFLOW_SETUP, str(store)], clean_env(), store)
        env = clean_env(
            MLFLOW_TRACKING_URI=f"sqlite:///{store / 'mlflow.db'}",
            PATH=f"{python.parent}{os.pathsep}{os.environ['PATH']}",  # it execs `uvicorn`
        )
        mlflow_bin = str(python.parent / "mlflow")
        ports = {m: PORT + 4 + i for i, m in enumerate(MODELS)}
        commands = {
            m: [
                mlflow_bin,
                "models",
                "serve",
                "-m",
                uris[m],
                "-h",
                "127.0.0.1",
                "-p",
                str(ports[m]),
                "--env-manager",
                "local",
            ]
            for m in MODELS
        }
        servers.append(Server("mlflow", "mlflow", commands, env, store, ports))
        info["versions"] |= {
            "mlflow": version_of(python, "mlflow"),
            "sklearn (mlflow)": version_of(python, "scikit-learn"),
        }
    if only:
        servers = [s for s in servers if s.label.replace(" ", "_") in only]
    else:
        servers = [s for s in servers if s.label not in extras]
    return servers, info


def bench_server(
    server: Server,
    info: dict[str, Any],
    args: argparse.Namespace,
    tmp: Path,
    tool: str,
    expected: dict[str, int],
) -> list[Result]:
    rows: list[Result] = []
    server.start(tmp / server.label.replace(" ", "_"))
    try:
        server.wait_ready()
        for model in MODELS:
            payload = body(server.protocol, info["columns"], info["row"])
            got = predicted_class(server.url(model), payload)
            expected.setdefault(model, got)
            if got != expected[model]:
                raise RuntimeError(f"{server.label} {model}: class {got} != {expected[model]}")
            print(f"  {server.label} {model}: class {got} for the row", flush=True)
            script = lua(tmp / f"{server.protocol}.lua", payload)
            for c in () if args.check else CONCURRENCY:
                wrk(tool, server.url(model), script, c, args.warmup)
                try:
                    result = wrk(tool, server.url(model), script, c, args.duration)
                except Exception as exc:  # report the others; this run is marked failed
                    print(f"  {server.label} {model} c{c}: wrk run failed: {exc!r}", flush=True)
                    continue
                result |= {"server": server.label, "model": model, "c": c}
                print(
                    f"  {server.label:17} {model} c{c:<3} {result['rps']:8.0f} req/s  "
                    f"p50 {result['p50'] * 1e3:7.1f} ms  p99 {result['p99'] * 1e3:7.1f} ms  "
                    f"errors {result['errors']}  load1 {result['load1']:.2f}",
                    flush=True,
                )
                rows.append(result)
    finally:
        server.stop()
    return rows


def table(rows: list[Result]) -> list[str]:
    by = {(r["server"], r["model"], r["c"]): r for r in rows}
    lines = [
        "| model | c | server | req/s | p50 ms | p99 ms | errors | x MLS | x MLS batched |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for model in MODELS:
        for c in CONCURRENCY:
            base = by.get(("mlserver", model, c))
            batched = by.get(("mlserver batched", model, c))
            labels = ("shipyard", "shipyard bs1", "shipyard w2", "shipyard nolog", "mlserver")
            for label in (*labels, "mlserver batched", "mlflow"):
                r = by.get((label, model, c))
                if r is None:
                    continue
                x1 = f"{r['rps'] / base['rps']:.2f}" if base else "-"
                x2 = f"{r['rps'] / batched['rps']:.2f}" if batched else "-"
                lines.append(
                    f"| {model} | {c} | {label} | {r['rps']:.0f} | {r['p50'] * 1e3:.1f} "
                    f"| {r['p99'] * 1e3:.1f} | {r['errors']} | {x1} | {x2} |"
                )
            ship = by.get(("shipyard", model, c))
            if ship and base and batched:
                checks = {
                    ">=2x MLServer": ship["rps"] >= 2 * base["rps"],
                    ">=MLS batched": ship["rps"] >= batched["rps"],
                    "lower p99": ship["p99"] < min(base["p99"], batched["p99"]),
                    "no errors": ship["errors"] == 0,
                }
                status = "PASS" if all(checks.values()) else "MISS"
                failed = ", ".join(k for k, ok in checks.items() if not ok)
                verdicts.append(f"{model} c{c}: {status}" + (f" ({failed})" if failed else ""))
    return [*lines, "", "target (shipyard default): " + "; ".join(verdicts)]


def batch_bench(tmp: Path, info: dict[str, Any], rows: int) -> list[str]:
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    index = np.random.default_rng(0).integers(0, len(frame), rows)
    data = tmp / "X.parquet"
    frame.iloc[index].reset_index(drop=True).to_parquet(data)
    small = tmp / "X100.parquet"
    frame.iloc[index[:100]].reset_index(drop=True).to_parquet(small)
    home = tmp / "shipyard"
    env = clean_env(SHIPYARD_HOME=str(home / ".shipyard"))

    def cli(model: str, source: Path, out: Path) -> float:
        start = time.perf_counter()
        cmd = [str(PROJECT_PYTHON.parent / "shipyard"), "predict", f"{model}@1"]
        cmd += ["--input", str(source), "--output", str(out)]
        subprocess.run(cmd, env=env, cwd=home, check=True, capture_output=True)
        return time.perf_counter() - start

    lines = [
        "| model | rows | shipyard predict s | of which fixed (100-row run) s | in-process s | "
        "shipyard rows/s | in-process rows/s | ratio | target >= 70% |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model in MODELS:
        base = run_json(
            [str(PROJECT_PYTHON), "-c", BASELINE, str(data), str(tmp / "b.parquet"), model],
            env,
            home,
        )
        fixed = cli(model, small, tmp / "small.parquet")
        out = tmp / f"{model}.parquet"
        wall = cli(model, data, out)
        n = len(pd.read_parquet(out, columns=["prediction"]))
        assert n == rows, f"shipyard predict wrote {n} rows, expected {rows}"
        ship_rps, base_rps = rows / wall, rows / base["seconds"]
        ratio = ship_rps / base_rps
        lines.append(
            f"| {model} | {rows:,} | {wall:.2f} | {fixed:.2f} | {base['seconds']:.2f} "
            f"| {ship_rps:,.0f} | {base_rps:,.0f} | {ratio:.0%} "
            f"| {'PASS' if ratio >= 0.7 else 'MISS'} |"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15, help="seconds per timed run")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per run")
    parser.add_argument(
        "--max-load",
        type=float,
        default=1.0,
        help="wait (up to 10 min) for the 1-min load average to drop below this first",
    )
    parser.add_argument(
        "--max-wait", type=float, default=600, help="seconds to wait for --max-load at most"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        help="servers: shipyard shipyard_bs1 mlserver mlserver_batched mlflow shipyard_w2 "
        "shipyard_nolog (default: all but shipyard_w2 and shipyard_nolog)",
    )
    parser.add_argument(
        "--check", action="store_true", help="start each server and check its answer; no load"
    )
    parser.add_argument("--batch", action="store_true", help="also the batch-inference bench")
    parser.add_argument("--no-serving", action="store_true", help="skip the serving runs")
    parser.add_argument("--batch-rows", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also save results here")
    args = parser.parse_args()

    tool = ensure_wrk()
    rows: list[Result] = []
    report: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as name:
        tmp = Path(name)
        if not args.check:
            print(f"waiting for no pytest and load average < {args.max_load} ...", flush=True)
            print(
                f"load average {wait_quiet(args.max_load, args.max_wait):.2f}, starting", flush=True
            )
        servers, info = build_servers(tmp, args.only)
        info["versions"]["wrk"] = (
            subprocess.run([tool, "-v"], capture_output=True, text=True)
            .stdout.split("[")[0]
            .strip()
        )
        print(json.dumps(info["versions"]), f"on {platform.platform()}, {os.cpu_count()} CPUs")
        expected: dict[str, int] = {}
        if not args.no_serving:
            for server in servers:
                print(f"{server.label}:", flush=True)
                rows += bench_server(server, info, args, tmp, tool, expected)
            report += table(rows)
        if args.batch:
            report += ["", *batch_bench(tmp, info, args.batch_rows)]
    print("\n" + "\n".join(report))
    if args.json:
        args.json.write_text(
            json.dumps({"versions": info["versions"], "runs": rows, "report": report}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
