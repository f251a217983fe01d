"""OIP v2 inference with JSON tensors vs the binary tensor data extension, on ``shipyard serve``.

One model: LogisticRegression(max_iter=1000) fitted on sklearn's iris, its 4 features as
float32 (so the signature is FP32 and a FP32 tensor is taken without a cast), registered in a
fresh workspace in a temp dir and served with ``shipyard serve iris@1`` (default settings:
adaptive batching and the prediction log on). Every request is the same 1,000 rows (resampled
from iris, seed 0) as one ``[1000, 4]`` FP32 tensor, asking for ``predict``:

* **json**: the tensor as a JSON list, the answer as JSON (what ``set_data_from_numpy(x,
  binary_data=False)`` and ``InferRequestedOutput("predict", binary_data=False)`` send);
* **binary**: the JSON header, then the 16,000 raw bytes (``Inference-Header-Content-Length``),
  the answer's 8,000 bytes of INT64 after its JSON (``binary_data_output``).

Two clients, each the same for both formats, to 127.0.0.1:

* **httpx**: the bodies built once, POSTed by ``httpx.AsyncClient`` with C requests in flight
  (closed loop), so the numbers are the server's (and the transport's) cost;
* **tritonclient**: ``tritonclient.http`` end to end, one request at a time, encoding the array
  and decoding the answer each time, as an application would.

Before timing, each format's answer must equal the model's own predictions (in the setup
process), or the script exits 1. Reported per run: requests/s, p50 and p99 latency as the
client saw it, request and answer body sizes, and binary/json ratios.

Run: ``.venv/bin/python bench/oip_binary.py [--duration 10] [--concurrency 1 8] [--json PATH]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
ROWS = 1_000
HEADER = "Inference-Header-Content-Length"
Result = dict[str, Any]

SETUP = textwrap.dedent(
    """
    import json, sys, shipyard
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    frame = load_iris(as_frame=True).frame
    x, y = frame.drop(columns="target").astype("float32"), frame["target"]
    model = LogisticRegression(max_iter=1000).fit(x, y)
    with shipyard.start_run(experiment="bench", log_code=False) as run:
        run.log_model(model, "iris", input_example=x.head())
    rows = x.sample(int(sys.argv[1]), replace=True, random_state=0)
    print(json.dumps({"rows": rows.to_numpy().tolist(), "predict": model.predict(rows).tolist()}))
    """
)


# --- the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SHIPYARD_"))}
    env.pop("PYTHONPATH", None)
    return env | {"PYTHONHASHSEED": "0"} | extra


def setup(home: Path) -> Result:
    """Register the model in a workspace under ``home``; the rows and their predictions."""
    env = clean_env(SHIPYARD_HOME=str(home / ".shipyard"))
    proc = subprocess.run(
        [str(PROJECT_PYTHON), "-c", SETUP, str(ROWS)],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise SystemExit(f"setup failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def start(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [str(PROJECT_PYTHON.parent / "shipyard"), "serve", "iris@1", "--port", str(port)]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            cmd,
            env=clean_env(SHIPYARD_HOME=str(home / ".shipyard")),
            cwd=home,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).is_success:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop(process)
    raise SystemExit("the server was not ready within 120 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- the two bodies -------------------------------------------------------------------------


def json_request(x: np.ndarray[Any, Any]) -> tuple[bytes, dict[str, str]]:
    tensor = {"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
    outputs = [{"name": "predict", "parameters": {"binary_data": False}}]
    body = json.dumps({"inputs": [tensor], "outputs": outputs}).encode()
    return body, {"content-type": "application/json"}


def binary_request(x: np.ndarray[Any, Any]) -> tuple[bytes, dict[str, str]]:
    raw = x.astype("<f4").tobytes()
    tensor = {
        "name": "x",
        "shape": list(x.shape),
        "datatype": "FP32",
        "parameters": {"binary_data_size": len(raw)},
    }
    header = json.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}}).encode()
    return header + raw, {"content-type": "application/octet-stream", HEADER: str(len(header))}


def predictions(response: httpx.Response) -> list[int]:
    """``predict`` from a JSON or a binary answer."""
    length = response.headers.get(HEADER)
    if length is None:
        return list(response.json()["outputs"][0]["data"])
    answer = json.loads(response.content[: int(length)])
    assert answer["outputs"][0]["parameters"]["binary_data_size"] == 8 * ROWS
    return np.frombuffer(response.content[int(length) :], "<i8").tolist()  # type: ignore[no-any-return]


# --- load -----------------------------------------------------------------------------------


def summary(latencies: list[float], elapsed: float, errors: int) -> Result:
    ordered = np.sort(np.array(latencies))
    return {
        "rps": len(ordered) / elapsed,
        "p50": float(np.percentile(ordered, 50)),
        "p99": float(np.percentile(ordered, 99)),
        "requests": len(ordered),
        "errors": errors,
        "load1": os.getloadavg()[0],
    }


async def httpx_load(
    url: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float
) -> Result:
    """POST ``body`` with ``concurrency`` requests in flight for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                response = await http.post(url, content=body, headers=headers)
                latencies.append(time.perf_counter() - sent)
                errors += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return summary(latencies, elapsed, errors)


def triton_infer(client: Any, x: np.ndarray[Any, Any], binary: bool) -> list[int]:
    """One request with ``tritonclient.http``: encode ``x``, send, decode ``predict``."""
    import tritonclient.http as triton

    tensor = triton.InferInput("x", list(x.shape), "FP32").set_data_from_numpy(x, binary)
    output = triton.InferRequestedOutput("predict", binary_data=binary)
    result = client.infer("iris", [tensor], outputs=[output])
    return list(result.as_numpy("predict").tolist())


def triton_request_bytes(x: np.ndarray[Any, Any], binary: bool) -> int:
    import tritonclient.http as triton

    tensor = triton.InferInput("x", list(x.shape), "FP32").set_data_from_numpy(x, binary)
    output = triton.InferRequestedOutput("predict", binary_data=binary)
    body, _ = triton.InferenceServerClient.generate_request_body([tensor], outputs=[output])
    return len(body)


def triton_load(port: int, x: np.ndarray[Any, Any], binary: bool, seconds: float) -> Result:
    """``tritonclient.http`` end to end, one request at a time, for ``seconds``."""
    import tritonclient.http as triton

    latencies: list[float] = []
    client = triton.InferenceServerClient(f"127.0.0.1:{port}", network_timeout=60)
    try:
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            sent = time.perf_counter()
            triton_infer(client, x, binary)
            latencies.append(time.perf_counter() - sent)
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    return summary(latencies, elapsed, 0)


def wait_quiet(limit: float, max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) for no pytest and a 1-minute load average below ``limit``."""
    deadline = time.monotonic() + max_wait

    def busy() -> bool:
        pytest = subprocess.run(["pgrep", "-f", "pytest"], capture_output=True).returncode == 0
        return pytest or os.getloadavg()[0] >= limit

    while busy() and time.monotonic() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]


# --- driver ---------------------------------------------------------------------------------


def run(
    args: argparse.Namespace, port: int, x: np.ndarray[Any, Any], expected: list[int]
) -> list[Result]:
    url = f"http://127.0.0.1:{port}/v2/models/iris/infer"
    bodies = {"json": json_request(x), "binary": binary_request(x)}
    sizes: dict[str, tuple[int, int]] = {}
    for fmt, (body, headers) in bodies.items():
        response = httpx.post(url, content=body, headers=headers, timeout=60)
        if response.status_code != 200 or predictions(response) != expected:
            raise SystemExit(
                f"{fmt}: the answer is not the model's predictions: {response.text[:500]}"
            )
        sizes[fmt] = (len(body), len(response.content))
        print(
            f"{fmt}: request {len(body):,} B, answer {len(response.content):,} B, checked",
            flush=True,
        )
    rows: list[Result] = []
    for fmt, (body, headers) in bodies.items():
        for c in args.concurrency:
            asyncio.run(httpx_load(url, body, headers, c, args.warmup))
            result = asyncio.run(httpx_load(url, body, headers, c, args.duration))
            rows.append(record(result, "httpx", fmt, c, sizes[fmt]))
    if not args.no_tritonclient:
        rows += triton_runs(args, port, x, expected, sizes)
    return rows


def triton_runs(
    args: argparse.Namespace,
    port: int,
    x: np.ndarray[Any, Any],
    expected: list[int],
    sizes: dict[str, tuple[int, int]],
) -> list[Result]:
    import tritonclient.http as triton

    rows = []
    for fmt in ("json", "binary"):
        binary = fmt == "binary"
        client = triton.InferenceServerClient(f"127.0.0.1:{port}", network_timeout=60)
        try:
            if triton_infer(client, x, binary) != expected:
                raise SystemExit(f"tritonclient {fmt}: the answer is not the model's predictions")
        finally:
            client.close()
        triton_load(port, x, binary, args.warmup)
        result = triton_load(port, x, binary, args.duration)
        request_bytes = triton_request_bytes(x, binary)
        rows.append(record(result, "tritonclient", fmt, 1, (request_bytes, sizes[fmt][1])))
    return rows


def record(result: Result, client: str, fmt: str, c: int, sizes: tuple[int, int]) -> Result:
    result |= {"client": client, "format": fmt, "c": c, "request_bytes": sizes[0]}
    result["answer_bytes"] = sizes[1]
    print(
        f"  {client:12} {fmt:6} c{c:<3} {result['rps']:7.1f} req/s  "
        f"p50 {result['p50'] * 1e3:6.2f} ms  p99 {result['p99'] * 1e3:6.2f} ms  "
        f"errors {result['errors']}  load1 {result['load1']:.2f}",
        flush=True,
    )
    return result


def table(rows: list[Result]) -> list[str]:
    lines = [
        "| client | c | format | req/s | p50 ms | p99 ms | request bytes | answer bytes | errors |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    by = {(r["client"], r["c"], r["format"]): r for r in rows}
    ratios = []
    for client, c in dict.fromkeys((r["client"], r["c"]) for r in rows):
        for fmt in ("json", "binary"):
            r = by[(client, c, fmt)]
            lines.append(
                f"| {client} | {c} | {fmt} | {r['rps']:,.1f} | {r['p50'] * 1e3:.2f} "
                f"| {r['p99'] * 1e3:.2f} | {r['request_bytes']:,} | {r['answer_bytes']:,} "
                f"| {r['errors']} |"
            )
        j, b = by[(client, c, "json")], by[(client, c, "binary")]
        ratios.append(
            f"| {client} | {c} | {b['rps'] / j['rps']:.2f}x | {j['p50'] / b['p50']:.2f}x "
            f"| {j['p99'] / b['p99']:.2f}x | {j['request_bytes'] / b['request_bytes']:.2f}x "
            f"| {j['answer_bytes'] / b['answer_bytes']:.2f}x |"
        )
    header = [
        "",
        "| client | c | req/s binary / json | p50 json / binary | p99 json / binary "
        "| request bytes json / binary | answer bytes json / binary |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    return lines + header + ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per timed run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--no-tritonclient", action="store_true", help="httpx runs only")
    parser.add_argument(
        "--max-load",
        type=float,
        default=1.0,
        help="wait for the 1-min load average to drop below this (and no pytest) first",
    )
    parser.add_argument("--max-wait", type=float, default=300, help="seconds to wait at most")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also save results here")
    args = parser.parse_args()

    if not PROJECT_PYTHON.exists() or shutil.which("pgrep") is None:
        raise SystemExit("run `make .venv/.installed` first (and install procps for pgrep)")
    with tempfile.TemporaryDirectory(prefix="bench-oip-binary-") as name:
        home = Path(name)
        print("training + registering iris ...", flush=True)
        data = setup(home)
        x = np.array(data["rows"], dtype=np.float32)
        print(f"waiting for no pytest and load average < {args.max_load} ...", flush=True)
        print(f"load average {wait_quiet(args.max_load, args.max_wait):.2f}, starting", flush=True)
        port = free_port()
        process = start(home, port, home / "server.log")
        try:
            rows = run(args, port, x, data["predict"])
        finally:
            stop(process)
    print(f"\non {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    report = table(rows)
    print("\n".join(report))
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, "report": report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
