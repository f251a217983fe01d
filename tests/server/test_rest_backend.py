"""The Python API and the CLI against a real `shipyard server` (uvicorn on 127.0.0.1) through
``SHIPYARD_SERVER``: the same calls, the same results, artifacts included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import shipyard
from shipyard.config import init_workspace
from shipyard.errors import AuthenticationError, StoreError
from shipyard.registry import Registry
from shipyard.registry.tokens import issue_token
from tests._cli import run_shipyard
from tests._served import Served as _Served
from tests._served import free_port as _free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def served(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Served]:
    """The `home` workspace served; the test itself is a client with a folder of its own."""
    from shipyard.tracking import open_workspace

    init_workspace(home.parent)
    backend = open_workspace(home).backend
    Registry(backend, "alice").bootstrap_admin()
    with _Served(home, auth=True) as server:
        token = issue_token(backend, "alice")[1]
        client = tmp_path / "laptop" / ".shipyard"
        init_workspace(client.parent)
        for name in ("SHIPYARD_STORE_URL", "SHIPYARD_ARTIFACTS_URL"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("SHIPYARD_HOME", str(client))
        monkeypatch.setenv("SHIPYARD_SERVER", server.url)
        monkeypatch.setenv("SHIPYARD_TOKEN", token)
        monkeypatch.setenv("SHIPYARD_USER", "mallory")  # the server decides: the token's user
        yield server


def test_the_python_api_logs_through_the_server(served: _Served, tmp_path: Path) -> None:
    plot = tmp_path / "roc.txt"
    plot.write_text("a curve")
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    with shipyard.start_run(experiment="remote", name="first") as run:
        run.log_params({"lr": 0.1, "trees": 50})
        for step in range(20):
            run.log_metric("loss", 1 / (step + 1), step=step)
        run.log_artifact(plot)
        run.log_artifact(folder, "model")
    stored = shipyard.get_run(run.run_id)
    assert stored.user == "alice" and stored.status.value == "FINISHED"
    assert stored.params == {"lr": "0.1", "trees": "50"}
    assert stored.metrics["loss"] == pytest.approx(1 / 20)
    found = shipyard.search_runs("remote", filter="params.trees = '50'")
    assert list(found["run_id"]) == [run.run_id]
    # the artifacts come back through the CLI, verified by digest
    out = tmp_path / "fetched"
    got = run_shipyard("artifacts", "get", run.run_id, "model", "--out", str(out))
    assert got.returncode == 0, got.stderr
    assert (out / "model" / "sub" / "weights.bin").read_bytes() == b"\x00\x01" * 1000
    listed = run_shipyard("runs", "ls", "-e", "remote", "--json")
    assert run.run_id in listed.stdout
    # and the server's own store holds it all
    history = served.app.state.workspace.backend.get_metric_history(run.run_id, "loss")
    assert [m.step for m in history] == list(range(20))


def test_a_wrong_token_or_a_missing_server_is_one_clear_error(
    served: _Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_TOKEN", "shp_000000000000_" + "x" * 43)
    _forget_workspaces()
    with pytest.raises(AuthenticationError):
        shipyard.start_run(experiment="nope")
    refused = run_shipyard("runs", "ls")
    assert refused.returncode == 3 and "invalid, revoked or expired API token" in refused.stderr
    monkeypatch.setenv("SHIPYARD_SERVER", f"http://127.0.0.1:{_free_port()}")
    _forget_workspaces()
    with pytest.raises(StoreError, match="cannot reach the Shipyard server"):
        shipyard.search_runs("x")
    unreachable = run_shipyard("runs", "ls")
    assert unreachable.returncode == 1 and "cannot reach the Shipyard server" in unreachable.stderr


def _forget_workspaces() -> None:
    """Close the open workspaces, so that the next call opens one with the new settings."""
    from shipyard.tracking import workspace

    for ws in list(workspace._open.values()):
        ws.close()
    workspace._open.clear()


def test_what_the_server_does_not_carry_yet_says_so(served: _Served) -> None:
    from shipyard.tracking import open_workspace

    backend = open_workspace().backend
    # what only the server itself may read (a password's hash) is never carried
    with pytest.raises(StoreError, match="not available through a Shipyard server"):
        backend.get_user_password_hash("alice")
