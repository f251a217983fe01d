"""The server for real: processes listening on 127.0.0.1, stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import shipyard
from shipyard.registry import Registry
from tests._cli import ROOT
from tests.serving.conftest import Trained, register

pytestmark = pytest.mark.integration

SERVE = (
    "import typer; from shipyard.cli.serve import serve; "
    "app = typer.Typer(); app.command()(serve); app()"
)
RUN_SERVER = (
    "import json, sys; from shipyard.serving import ServeSettings, run_server; "
    "run_server(ServeSettings(**json.loads(sys.argv[1])), port=int(sys.argv[2]), "
    "workers=int(sys.argv[3]))"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_ready(url: str, process: subprocess.Popen[str], timeout: float = 90) -> None:
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


def _v2_body(x: Any) -> dict[str, Any]:
    data = x.to_numpy().ravel().tolist()
    return {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP64", "data": data}]}


def _stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=90)
    # uvicorn shuts down gracefully, then re-raises the signal it caught
    assert process.returncode in (0, -signal.SIGTERM), err
    return out, err


def _logged_ids(home: Path) -> list[str]:
    import pyarrow.parquet as pq

    segments = Path(home, "predictions").rglob("part-*.parquet")
    return [i for seg in segments for i in pq.read_table(seg)["request_id"].to_pylist()]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store is not the point
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
        response = httpx.post(f"{base}/v2/models/cancer/infer", json=_v2_body(x))
        assert response.status_code == 200
        assert response.json()["outputs"][0]["data"] == trained.clf.predict(x).tolist()
        request_id = response.headers["x-request-id"]
    finally:
        out, _ = _stop(process)
    assert "Serving cancer@1" in out
    assert set(_logged_ids(trained.home)) == {request_id}


class RunningServer:
    """``run_server`` in a subprocess on a free port."""

    def __init__(self, workers: int = 1, **settings: Any) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        options = {"refs": ["cancer@champion"], "log_flush_seconds": 0.2} | settings
        self.process = subprocess.Popen(
            [sys.executable, "-c", RUN_SERVER, json.dumps(options), str(self.port), str(workers)],
            env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_until_ready(f"{self.base}/v2/health/ready", self.process)

    def stop(self) -> None:
        if self.process.poll() is None:
            _stop(self.process)


@pytest.fixture
def two_workers(trained: Trained, tmp_path: Path) -> Iterator[tuple[RunningServer, Path]]:
    folder = tmp_path / "metrics"
    folder.mkdir()
    server = RunningServer(workers=2, metrics_dir=str(folder))
    try:
        yield server, folder
    finally:
        server.stop()


def test_two_workers_share_the_port_the_metrics_and_the_log(
    two_workers: tuple[RunningServer, Path], trained: Trained
) -> None:
    from prometheus_client.multiprocess import MultiProcessCollector

    server, folder = two_workers
    x = trained.x.head(1)
    expected = trained.clf.predict(x).tolist()
    ids = []
    for _ in range(60):  # a new connection each time: the kernel spreads them over workers
        with httpx.Client(base_url=server.base) as http:
            response = http.post("/v2/models/cancer/infer", json=_v2_body(x))
        assert response.status_code == 200 and response.json()["outputs"][0]["data"] == expected
        ids.append(response.headers["x-request-id"])
    text = httpx.get(f"{server.base}/metrics").text
    assert 'protocol="v2",route="",status="200",version="1"} 60.0' in text
    per_worker = []
    for counters in folder.glob("counter_*.db"):
        metrics = MultiProcessCollector.merge([str(counters)], accumulate=True)
        per_worker.append(
            sum(
                s.value
                for m in metrics
                if m.name == "shipyard_requests"
                for s in m.samples
                if s.name == "shipyard_requests_total"
            )
        )
    assert len(per_worker) == 2 and all(n > 0 for n in per_worker) and sum(per_worker) == 60
    server.stop()
    assert sorted(_logged_ids(trained.home)) == sorted(ids)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store is not the point
def test_a_taken_port_is_refused(two_workers: tuple[RunningServer, Path]) -> None:
    server, _ = two_workers
    second = subprocess.run(
        [sys.executable, "-c", RUN_SERVER, json.dumps({"refs": ["cancer@champion"]}),
         str(server.port), "2"],
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert second.returncode != 0 and f"cannot listen on 127.0.0.1:{server.port}" in second.stderr


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store is not the point
def test_hot_swap_over_a_socket_loses_no_request(trained: Trained) -> None:
    server = RunningServer(refresh_seconds=0.2)
    failures: list[str] = []
    versions: list[str] = []
    stop = threading.Event()
    body = _v2_body(trained.x.head(1))

    def drive() -> None:
        with httpx.Client(base_url=server.base, timeout=30) as http:
            while not stop.is_set():
                try:
                    response = http.post("/v2/models/cancer/infer", json=body)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    failures.append(response.text)
                else:
                    versions.append(response.json()["model_version"])

    drivers = [threading.Thread(target=drive) for _ in range(6)]
    try:
        for driver in drivers:
            driver.start()
        while len(versions) < 20 and not failures:
            time.sleep(0.05)
        register(trained.home, c=0.5)  # version 2 becomes the champion
        deadline = time.monotonic() + 60
        while "2" not in versions[-6:] and time.monotonic() < deadline:
            time.sleep(0.05)
        answered_before_the_end = len(versions)
        while len(versions) < answered_before_the_end + 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for driver in drivers:
            driver.join()
        server.stop()
    assert failures == []
    assert versions[0] == "1" and "2" in versions
    after = versions[versions.index("2") :]
    assert set(after[-20:]) == {"2"}  # the new version answers once it took over
    workspace = shipyard.open_workspace()
    champion = Registry(workspace.backend, workspace.settings.user).resolve("cancer@champion")
    assert champion.version == 2


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store is not the point
def test_sigterm_ends_despite_a_half_sent_request_and_flushes_the_log(trained: Trained) -> None:
    server = RunningServer(body_timeout_seconds=2)
    try:
        response = httpx.post(f"{server.base}/v2/models/cancer/infer", json=_v2_body(trained.x))
        assert response.status_code == 200
        with socket.create_connection(("127.0.0.1", server.port)) as slow:
            slow.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100000\r\n\r\n{"instances":'
            )
            time.sleep(0.3)
            server.process.send_signal(signal.SIGTERM)
            server.process.communicate(timeout=15)  # not held up by the request
            assert slow.recv(4096).startswith(b"HTTP/1.1 408")
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.communicate()
    assert response.headers["x-request-id"] in _logged_ids(trained.home)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store is not the point
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_stop_when_the_supervisor_is_killed(trained: Trained) -> None:
    server = RunningServer(workers=2)
    supervisor = server.process.pid
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    workers = [int(pid) for pid in children]
    environ = Path(f"/proc/{workers[0]}/environ").read_bytes().split(b"\0")
    (settings,) = [e for e in environ if e.startswith(b"SHIPYARD_SERVE_SETTINGS=")]
    metrics = Path(json.loads(settings.partition(b"=")[2])["metrics_dir"])
    assert len(workers) == 2 and metrics.is_dir()
    server.process.kill()
    server.process.communicate()
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", server.port))  # the port is free again
    assert not metrics.exists()
