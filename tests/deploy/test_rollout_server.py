"""Canary rollouts for real: `shipyard serve --deployment` on 127.0.0.1, load from another
process, the controller inside the server deciding from the stored route counts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.deploy.service import Deployments
from shipyard.entities import DeploymentState
from shipyard.registry import Registry
from tests._cli import ROOT, run_shipyard
from tests.deploy._models import PLANTED_FAILURES_ENV, register

pytestmark = pytest.mark.integration


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A SQLite workspace (the rollout logic is tested on PostgreSQL in test_service.py)."""
    home = tmp_path / "project" / ".shipyard"
    home.mkdir(parents=True)
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.setenv("SHIPYARD_STORE_URL", f"sqlite:///{home / 'shipyard.db'}")
    monkeypatch.setenv("SHIPYARD_USER", "alice")
    monkeypatch.delenv("SHIPYARD_ARTIFACTS_URL", raising=False)
    monkeypatch.chdir(tmp_path / "project")
    yield home


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, deployment: str, workers: int = 1) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=str(ROOT), **{PLANTED_FAILURES_ENV: "1"})
        # A file, not a pipe: a pipe nobody reads fills up, and a server that logs into a
        # full pipe blocks (its workers then stop answering and following the deployment).
        handle, name = tempfile.mkstemp(prefix="model-server-", suffix=".log")
        self.log = Path(name)
        with os.fdopen(handle, "w") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-c", "from shipyard.cli import main; main()",
                    "serve", "--deployment", deployment, "--port", str(self.port),
                    "--workers", str(workers), "--trust-code", "--max-batch-size", "1",
                ],
                env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {self.tail()}")
            try:
                if httpx.get(f"{self.base}/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not become ready")

    def workers(self) -> list[int]:
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                children.append(int(stat.parent.name))
        return children

    def tail(self, lines: int = 40) -> str:
        """The end of the server's log, for failure messages."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        self.log.unlink(missing_ok=True)


class Load:
    def __init__(self, url: str, folder: Path, rate: float = 120) -> None:
        self.stop_file = folder / "stop"
        self.out = folder / "load.json"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.deploy._load", url, str(self.stop_file),
             str(self.out), str(rate)],
            env=env, cwd=ROOT,
        )  # fmt: skip

    def finish(self) -> dict[str, Any]:
        self.stop_file.touch()
        assert self.process.wait(timeout=60) == 0
        return json.loads(self.out.read_text())  # type: ignore[no-any-return]

    def abandon(self) -> None:
        """Stop the load after a failed test, so that no process outlives it."""
        if self.process.poll() is None:
            self.stop_file.touch()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _deployments() -> Deployments:
    import shipyard

    workspace = shipyard.open_workspace()
    return Deployments(workspace.backend, "alice")


def _explain(server: Server, name: str = "score-prod") -> str:
    """What a stuck rollout did: its analysis, its history with reasons, the server's log."""
    deploy = _deployments()
    found = deploy.get(name)
    history = [(e.action, e.reason) for e in deploy.history(name)]
    return (
        f"{name} is {found.state.value}; analysis {found.analysis}; history {history}; "
        f"server log:\n{server.tail()}"
    )


def _wait_for(server: Server, name: str, states: set[DeploymentState], timeout: float = 120) -> Any:
    deploy = _deployments()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = deploy.get(name)
        if found.state in states:
            return found
        assert found.state is not DeploymentState.HELD, _explain(server, name)
        time.sleep(0.25)
    raise AssertionError(f"not done in {timeout}s: {_explain(server, name)}")


def _start(name: str, challenger: str, *extra: str, interval: str = "3s") -> None:
    done = run_shipyard(
        "deploy", "canary", name, "--model", challenger, "--steps", "20,50,100",
        # a deadline far past the interval: a machine too busy to send the load must not
        # hold the rollout (holding a starved step is tested in test_simulation.py)
        "--interval", interval, "--min-requests", "40", "--deadline", "90s", *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_a_good_challenger_is_promoted_with_no_failed_request_across_a_restart(
    workspace: Path, tmp_path: Path
) -> None:
    register(workspace, "score", delay_ms=1)
    register(workspace, "score", delay_ms=1)
    Registry(_deployments().backend, "alice").set_alias("score@1", "champion")
    created = run_shipyard("deploy", "create", "score-prod", "--model", "score@champion")
    assert created.returncode == 0, created.stderr
    server = Server("score-prod", workers=2)
    load = Load(f"{server.base}/v2/models/score/infer", tmp_path)
    try:
        time.sleep(3)  # stable history for the latency threshold
        _start("score-prod", "score@2")
        deploy = _deployments()
        deadline = time.monotonic() + 100
        while deploy.get("score-prod").analysis.get("step", 0) < 1:
            assert time.monotonic() < deadline, _explain(server)
            time.sleep(0.2)
        # restart a worker mid-rollout: the supervisor starts a new one, which reads the
        # deployment's current routes; the other worker answers meanwhile
        os.kill(server.workers()[0], signal.SIGTERM)
        promoted = _wait_for(
            server, "score-prod", {DeploymentState.PROMOTED, DeploymentState.ROLLED_BACK}
        )
        time.sleep(2)  # every worker follows the promotion
        summary = load.finish()
        log = server.tail(400)
    finally:
        load.abandon()
        server.stop()
    print(f"load: {summary}")
    assert promoted.state is DeploymentState.PROMOTED, _deployments().history("score-prod")[-1]
    # the server's log says what the rollout did, from the worker that decided it
    assert "deployment score-prod: advance: step 1 passed" in log, log
    assert "deployment score-prod: promote: step 2 passed" in log, log
    assert set(summary["statuses"]) == {"200"}, summary
    assert summary["failed_transport"] == 0
    assert summary["versions"].get("2", 0) > 0 and summary["versions"].get("1", 0) > 0
    actions = [e.action for e in _deployments().history("score-prod")]
    assert actions == ["create", "canary.start", "canary.advance", "promote"]
    assert Registry(_deployments().backend, "alice").resolve("score@champion").version == 2


@pytest.mark.parametrize(
    ("behaviour", "rule"),
    [({"fail_rate": 0.05, "delay_ms": 1}, "errors"), ({"delay_ms": 25}, "latency")],
    ids=["5-percent-errors", "5x-slower"],
)
def test_a_bad_challenger_is_rolled_back_at_an_early_step(
    workspace: Path, tmp_path: Path, behaviour: dict[str, float], rule: str
) -> None:
    register(workspace, "score", delay_ms=5)
    register(workspace, "score", **behaviour)
    assert run_shipyard("deploy", "create", "score-prod", "--model", "score@1").returncode == 0
    server = Server("score-prod")
    load = Load(f"{server.base}/v2/models/score/infer", tmp_path, rate=150)
    try:
        time.sleep(3)
        _start("score-prod", "score@2", "--no-prediction-rule", interval="6s")
        rolled = _wait_for(
            server, "score-prod", {DeploymentState.PROMOTED, DeploymentState.ROLLED_BACK}
        )
        load.finish()
    finally:
        load.abandon()
        server.stop()
    last = _deployments().history("score-prod")[-1]
    numbers = last.details["numbers"]
    print(
        f"{rule}: rolled back at step {numbers['step']} after {numbers['canary_requests']} "
        f"canary requests: {last.reason}"
    )
    assert rolled.state is DeploymentState.ROLLED_BACK
    assert last.action == "rollback" and last.details["rule"] == rule
    # early: at the first step (20 %) as a rule, at the second (50 %) when a loaded machine
    # sent the first step too few requests to tell — never promoted
    assert numbers["step"] <= 2
    assert rule in last.reason and "e-value" in last.reason
    status = run_shipyard("deploy", "status", "score-prod", "--json")
    assert json.loads(status.stdout)["routes"][0]["version"] == 1
