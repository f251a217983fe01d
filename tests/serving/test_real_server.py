"""`serve` for real: a subprocess listening on 127.0.0.1, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests._cli import ROOT
from tests.serving.conftest import Trained

pytestmark = pytest.mark.integration

SERVE = (
    "import typer; from shipyard.cli.serve import serve; "
    "app = typer.Typer(); app.command()(serve); app()"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_ready(url: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {process.communicate()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def test_serve_answers_over_a_socket_and_flushes_on_sigterm(trained: Trained) -> None:
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, "cancer@champion", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(f"{base}/v2/health/ready", process)
        x = trained.x.head(2)
        response = httpx.post(
            f"{base}/v2/models/cancer/infer",
            json={
                "inputs": [
                    {
                        "name": "x",
                        "shape": [2, 30],
                        "datatype": "FP64",
                        "data": x.to_numpy().ravel().tolist(),
                    }
                ]
            },
        )
        assert response.status_code == 200
        assert response.json()["outputs"][0]["data"] == trained.clf.predict(x).tolist()
        request_id = response.headers["x-request-id"]
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught
    assert process.returncode in (0, -signal.SIGTERM), err
    assert "Serving cancer@1" in out
    segments = list(Path(trained.home, "predictions").rglob("part-*.parquet"))
    import pyarrow.parquet as pq

    ids = {i for seg in segments for i in pq.read_table(seg)["request_id"].to_pylist()}
    assert ids == {request_id}
