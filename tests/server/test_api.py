"""The REST API in-process (httpx over ASGI) on SQLite and PostgreSQL, and once for real over
a socket with `shipyard server`."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import shipyard
from shipyard.config import init_workspace
from tests._cli import ROOT, run_shipyard

pytestmark = pytest.mark.integration


class Client:
    """Synchronous calls into the app over ASGI (no socket)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        content = kwargs.get("content")
        if content is not None and not isinstance(content, bytes | str):
            chunks = content

            async def stream() -> Any:
                for chunk in chunks:
                    yield chunk

            kwargs["content"] = stream()

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(send())


@pytest.fixture
def api(home: Path) -> Client:
    from shipyard.server import create_app

    init_workspace(home.parent)
    return Client(create_app(home))


def test_a_run_logged_through_the_api_is_the_same_run_for_the_python_api(api: Client) -> None:
    created = api("POST", "/api/v1/runs", json={"experiment_name": "churn", "tags": {"team": "a"}})
    assert created.status_code == 201
    run = created.json()
    assert run["status"] == "RUNNING" and run["user"] == "alice" and run["tags"] == {"team": "a"}
    rid = run["run_id"]
    assert (
        api("POST", f"/api/v1/runs/{rid}/params", json={"params": {"lr": 0.1}}).status_code == 204
    )
    metrics = [{"key": "loss/train", "value": 1.0 / (s + 1), "step": s} for s in range(5)]
    metrics.append({"key": "loss/train", "value": None, "step": 5})
    assert api("POST", f"/api/v1/runs/{rid}/metrics", json={"metrics": metrics}).status_code == 204
    ended = api("POST", f"/api/v1/runs/{rid}/end", json={"status": "finished"})
    assert ended.json()["status"] == "FINISHED"
    # The same store, read by the Python API.
    found = shipyard.search_runs("churn", filter="params.lr = '0.1'")
    assert list(found["run_id"]) == [rid]
    history = shipyard.get_run(rid)
    assert math.isnan(history.metrics["loss/train"])
    # A metric's history, a page at a time.
    first = api("GET", f"/api/v1/runs/{rid}/metrics/loss/train", params={"limit": 4}).json()
    assert [m["step"] for m in first["items"]] == [0, 1, 2, 3]
    rest = api(
        "GET",
        f"/api/v1/runs/{rid}/metrics/loss/train",
        params={"limit": 4, "page_token": first["next_page_token"]},
    ).json()
    assert [m["value"] for m in rest["items"]] == [0.2, None] and rest["next_page_token"] is None


def test_search_pages_filters_and_sorts(api: Client) -> None:
    for i in range(5):
        rid = api("POST", "/api/v1/runs", json={"experiment_name": "sweep"}).json()["run_id"]
        api(
            "POST",
            f"/api/v1/runs/{rid}/metrics",
            json={"metrics": [{"key": "auc", "value": i / 10}]},
        )
    query = {"experiment_names": ["sweep"], "filter": "metrics.auc > 0.05"}
    query |= {"order_by": ["metrics.auc DESC"], "max_results": 3}
    page = api("POST", "/api/v1/runs/search", json=query).json()
    assert [r["metrics"]["auc"] for r in page["items"]] == [0.4, 0.3, 0.2]
    query["page_token"] = page["next_page_token"]
    last = api("POST", "/api/v1/runs/search", json=query).json()
    assert [r["metrics"]["auc"] for r in last["items"]] == [0.1]
    assert last["next_page_token"] is None
    api("POST", "/api/v1/experiments", json={"name": "other"})
    experiments = api("GET", "/api/v1/experiments", params={"limit": 1}).json()
    assert len(experiments["items"]) == 1 and experiments["next_page_token"]


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "code", "words"),
    [
        ("GET", "/api/v1/runs/0123456789abcdef0123456789abcdef", None, 404, "not_found", "run"),
        ("GET", "/api/v1/experiments/999", None, 404, "not_found", "experiment"),
        (
            "POST",
            "/api/v1/runs",
            {"experiment_id": 1, "experiment_name": "x"},
            400,
            "invalid_argument",
            "one of them",
        ),
        (
            "POST",
            "/api/v1/runs",
            {"experiment_name": "x", "colour": 1},
            422,
            "invalid_request",
            "colour",
        ),
        ("POST", "/api/v1/runs", {"experiment_name": 5}, 422, "invalid_request", "experiment_name"),
        (
            "POST",
            "/api/v1/runs/search",
            {"filter": "metrics.auc >"},
            400,
            "filter_syntax",
            "metrics.auc",
        ),
        (
            "POST",
            "/api/v1/runs/search",
            {"page_token": "garbage"},
            422,
            "invalid_request",
            "page_token",
        ),
        (
            "POST",
            "/api/v1/runs/search",
            {"max_results": 100000},
            422,
            "invalid_request",
            "max_results",
        ),
        ("POST", "/api/v1/experiments", {"name": ""}, 422, "invalid_request", "name"),
    ],
)
def test_bad_input_is_a_4xx_in_one_shape_and_writes_nothing(
    api: Client, method: str, url: str, body: Any, status: int, code: str, words: str
) -> None:
    before = api("GET", "/api/v1/experiments").json()["items"]
    answer = api(method, url, json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert {"code", "message", "field"} <= set(error)
    assert set(error) - {"code", "message", "field"} <= {"text", "position"}  # a filter's
    assert error["code"] == code and words in error["message"]
    assert api("GET", "/api/v1/experiments").json()["items"] == before


def test_malformed_json_and_duplicates(api: Client) -> None:
    broken = api(
        "POST",
        "/api/v1/experiments",
        content=b"{nope",
        headers={"content-type": "application/json"},
    )
    assert broken.status_code == 422 and broken.json()["code"] == "invalid_request"
    assert api("POST", "/api/v1/experiments", json={"name": "once"}).status_code == 201
    again = api("POST", "/api/v1/experiments", json={"name": "once"})
    assert again.status_code == 409 and again.json()["code"] == "already_exists"
    rid = api("POST", "/api/v1/runs", json={"experiment_name": "once"}).json()["run_id"]
    api("POST", f"/api/v1/runs/{rid}/params", json={"params": {"lr": 0.1}})
    changed = api("POST", f"/api/v1/runs/{rid}/params", json={"params": {"lr": 0.2}})
    assert changed.status_code == 400 and "cannot change" in changed.json()["message"]
    ended = api("POST", f"/api/v1/runs/{rid}/end", json={"status": "RUNNING"})
    assert ended.status_code == 400 and "FINISHED, FAILED or KILLED" in ended.json()["message"]


def test_the_openapi_document_describes_every_endpoint_and_its_errors(api: Client) -> None:
    document = api("GET", "/api/v1/openapi.json").json()
    assert document["info"]["title"] == "Shipyard"
    paths = document["paths"]
    assert {"/api/v1/runs", "/api/v1/runs/search", "/api/v1/experiments"} <= set(paths)
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method} {path} has no summary"
            if path.startswith("/api/v1"):
                assert "404" in operation["responses"], f"{method} {path}"
    assert "ErrorBody" in document["components"]["schemas"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_shipyard_server_answers_over_a_socket_and_refuses_to_be_public(home: Path) -> None:
    init_workspace(home.parent)
    refused = run_shipyard("server", "--host", "0.0.0.0")  # noqa: S104 - the point of the test
    assert refused.returncode == 2 and "without --auth" in refused.stderr
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    started = time.monotonic()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from shipyard.cli import main; main()",
            "server",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = started + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.05)
        print(f"/health answered {time.monotonic() - started:.2f} s after start")
        assert health.json()["status"] == "ok"
        made = httpx.post(f"http://127.0.0.1:{port}/api/v1/runs", json={"experiment_name": "wire"})
        assert made.status_code == 201
        assert shipyard.get_run(made.json()["run_id"]).user == "alice"
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=20)
    assert "authentication is off" in err
    # uvicorn shuts down cleanly, then re-raises SIGTERM so that the exit says why.
    assert server.returncode in (0, -signal.SIGTERM), err
    assert "Traceback" not in err
