"""Authentication and roles: every endpoint declares its role, checked in one place; tokens
stored as hashes, shown once, revocable; denials audited; failed logins rate-limited."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from shipyard.config import init_workspace
from shipyard.entities import Role
from shipyard.registry.tokens import issue_token
from shipyard.tracking import open_workspace
from tests._cli import ROOT, run_shipyard
from tests.server.test_api import Client, _free_port

pytestmark = pytest.mark.integration
# who may call what; the REST API on PostgreSQL: test_api.py and tests/tracking
STORE_KINDS = ("sqlite",)

ROLES = (Role.VIEWER, Role.MEMBER, Role.APPROVER, Role.ADMIN)


@pytest.fixture
def world(home: Path) -> tuple[Client, dict[Role, str]]:
    """An app with authentication on, a user of each role and a token for each."""
    from shipyard.registry import Registry
    from shipyard.server import create_app

    init_workspace(home.parent)
    backend = open_workspace().backend
    Registry(backend, "alice").bootstrap_admin()  # alice, from the environment, is the admin
    tokens = {}
    for r in ROLES:
        backend.set_user(f"{r.value}-user", r, actor="alice")
        tokens[r] = issue_token(backend, "alice", user=f"{r.value}-user")[1]
    return Client(create_app(home, auth=True)), tokens


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_the_matrix_of_endpoints_and_roles_from_the_openapi_document(
    world: tuple[Client, dict[Role, str]],
) -> None:
    api, tokens = world
    run_id = api(
        "POST", "/api/v1/runs", json={"experiment_name": "m"}, headers=_bearer(tokens[Role.MEMBER])
    ).json()["run_id"]
    document = api("GET", "/api/v1/openapi.json").json()
    checked = 0
    for path, operations in document["paths"].items():
        if not path.startswith("/api/"):
            continue
        url = path.format(
            run_id=run_id,
            experiment_id=1,
            key="loss",
            name="churn",
            version="1",
            alias="champion",
            user="someone",
            digest="0" * 64,
            journal_id="j1",
            model_id="m-0",
            tag_key="t",
            artifact_path=f"1/{run_id}/artifacts/x.txt",
            token_id="000000000000",  # noqa: S106 - an id, not a secret
            ref="latest",
        )
        for method, operation in operations.items():
            needed = Role(operation["x-shipyard-role"])  # every endpoint declares one
            body = {} if method in ("post", "patch", "put") else None
            anonymous = api(method.upper(), url, json=body)
            assert anonymous.status_code == 401, (method, path)
            for r in ROLES:
                answer = api(method.upper(), url, json=body, headers=_bearer(tokens[r]))
                if r.allows(needed):
                    assert answer.status_code not in (401, 403), (method, path, r, answer.text)
                else:
                    assert answer.status_code == 403, (method, path, r)
                    assert f"needs the {needed.value} role" in answer.json()["message"]
                checked += 1
    assert checked >= 40 * len(ROLES)


def test_an_endpoint_without_a_declared_role_is_refused() -> None:
    """create_app runs this check over its routes: a new endpoint must declare its role."""
    from fastapi import FastAPI

    from shipyard.server.auth import check_declared, role

    def endpoint() -> str:
        return "ok"

    app = FastAPI()
    app.add_api_route("/api/v1/fine", endpoint, methods=["GET"], **role(Role.VIEWER))
    app.add_api_route("/health", endpoint, methods=["GET"])  # outside the API: no role
    check_declared(app.routes)
    app.add_api_route("/api/v1/secret", endpoint, methods=["GET"])
    with pytest.raises(RuntimeError, match=r"/api/v1/secret declares no role"):
        check_declared(app.routes)


def test_tokens_are_hashed_shown_once_revocable_and_expire(
    world: tuple[Client, dict[Role, str]], home: Path
) -> None:
    api, _ = world
    made = run_shipyard("token", "create", "--name", "ci", "--expires", "1d")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("shp_") and "Shown once" in made.stderr
    listed = run_shipyard("token", "ls", "--json")
    assert secret not in listed.stdout and '"name": "ci"' in listed.stdout
    store_files = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    assert secret.split("_")[-1].encode() not in store_files  # only its hash is kept
    assert api("GET", "/api/v1/experiments", headers=_bearer(secret)).status_code == 200
    token_id = secret.split("_")[1]
    assert run_shipyard("token", "revoke", token_id).returncode == 0
    revoked = api("GET", "/api/v1/experiments", headers=_bearer(secret))
    assert revoked.status_code == 401 and secret not in revoked.text
    backend = open_workspace().backend
    _, short = issue_token(backend, "alice", expires_in=timedelta(milliseconds=300))
    assert api("GET", "/api/v1/experiments", headers=_bearer(short)).status_code == 200
    time.sleep(0.4)
    assert api("GET", "/api/v1/experiments", headers=_bearer(short)).status_code == 401
    # someone else's token: only an admin may make or revoke it
    viewer_cli = dict(os.environ, SHIPYARD_USER="viewer-user")
    refused = run_shipyard("token", "create", "--user", "alice", env=viewer_cli)
    assert refused.returncode == 3 and "admin" in refused.stderr


def test_basic_auth_with_user_and_token_as_the_mlflow_client_sends_it(
    world: tuple[Client, dict[Role, str]],
) -> None:
    api, tokens = world

    def basic(user: str, secret: str) -> dict[str, str]:
        return {"authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}

    ok = api("GET", "/api/v1/experiments", headers=basic("member-user", tokens[Role.MEMBER]))
    assert ok.status_code == 200
    other = api("GET", "/api/v1/experiments", headers=basic("admin-user", tokens[Role.MEMBER]))
    assert other.status_code == 401


def test_denials_are_audited_and_failed_logins_rate_limited(
    world: tuple[Client, dict[Role, str]],
) -> None:
    api, tokens = world
    denied = api(
        "POST", "/api/v1/experiments", json={"name": "x"}, headers=_bearer(tokens[Role.VIEWER])
    )
    assert denied.status_code == 403
    backend = open_workspace().backend
    entries = [e for e in backend.list_audit(limit=50) if e.action == "auth.denied"]
    assert entries[0].actor == "viewer-user" and entries[0].target == "POST /api/v1/experiments"
    wrong = "shp_000000000000_" + "x" * 43
    for _ in range(10):
        assert api("GET", "/api/v1/experiments", headers=_bearer(wrong)).status_code == 401
    limited = api("GET", "/api/v1/experiments", headers=_bearer(tokens[Role.ADMIN]))
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    audited = [e for e in backend.list_audit(limit=50) if e.action == "auth.denied"]
    assert len(audited) >= 11
    assert all(wrong not in str(e.details) for e in audited)


def test_a_server_with_auth_binds_anywhere_and_its_first_admin_gets_a_token(home: Path) -> None:
    init_workspace(home.parent)
    assert run_shipyard("server", "--init-admin", "root").returncode == 2  # needs --auth
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    command = [sys.executable, "-c", "from shipyard.cli import main; main()", "server"]
    command += ["--auth", "--init-admin", "boss", "--host", "0.0.0.0", "--port", str(port)]  # noqa: S104
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.05)
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/experiments").status_code == 401
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=20)
    secret = next(line for line in err.splitlines() if line.startswith("shp_"))
    backend = open_workspace().backend
    assert backend.get_user("boss").role is Role.ADMIN  # type: ignore[union-attr]
    from shipyard.registry.tokens import verify_token

    assert verify_token(backend, secret).user == "boss"
