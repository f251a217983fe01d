"""The registry over HTTP with authentication on: the four-eyes rule and governance hold
exactly as locally, each refusal a 403 with its reason and an audit entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.config import init_workspace
from shipyard.entities import Role
from shipyard.registry import Registry
from shipyard.registry.tokens import issue_token
from shipyard.tracking import open_workspace
from tests.server.test_api import Client

pytestmark = pytest.mark.integration


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def team(home: Path) -> tuple[Client, dict[str, dict[str, str]], str]:
    """alice (approver) and bob (approver), carol (viewer); a model folder in the store."""
    from shipyard.server import create_app

    init_workspace(home.parent)
    workspace = open_workspace()
    backend = workspace.backend
    Registry(backend, "alice").bootstrap_admin()
    backend.set_user("alice", Role.APPROVER, actor="alice")
    backend.set_user("bob", Role.APPROVER, actor="alice")
    backend.set_user("carol", Role.VIEWER, actor="alice")
    folder = home.parent / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavor: test\n")
    digest = workspace.artifacts.put_dir(folder).digest
    headers = {user: _bearer(issue_token(backend, user)[1]) for user in ("alice", "bob", "carol")}
    return Client(create_app(home, auth=True)), headers, digest


def test_four_eyes_and_governance_hold_over_http(
    team: tuple[Client, dict[str, dict[str, str]], str],
) -> None:
    api, as_, digest = team
    made = api(
        "POST",
        "/api/v1/models/churn/versions",
        json={"digest": digest, "flavor": "python"},
        headers=as_["alice"],
    )
    assert made.status_code == 201, made.text
    assert made.json()["ref"] == "churn@1" and made.json()["created_by"] == "alice"
    # governing needs an admin: alice is an approver now
    refused = api(
        "PUT", "/api/v1/models/churn/governed", json={"governed": True}, headers=as_["alice"]
    )
    assert refused.status_code == 403
    backend = open_workspace().backend
    backend.set_model_governed("churn", True, actor="test")
    # a governed model's champion must be approved
    early = api(
        "PUT", "/api/v1/models/churn/aliases/champion", json={"version": "1"}, headers=as_["alice"]
    )
    assert early.status_code == 403 and "not approved" in early.json()["message"]
    asked = api(
        "POST", "/api/v1/models/churn/versions/1/request-review", json={}, headers=as_["alice"]
    )
    assert asked.json()["review"] == "requested"
    own = api("POST", "/api/v1/models/churn/versions/1/approve", json={}, headers=as_["alice"])
    assert own.status_code == 403 and "four-eyes" in own.json()["message"]
    viewer = api("POST", "/api/v1/models/churn/versions/1/approve", json={}, headers=as_["carol"])
    assert viewer.status_code == 403 and "needs the approver role" in viewer.json()["message"]
    approved = api(
        "POST",
        "/api/v1/models/churn/versions/1/approve",
        json={"comment": "ok"},
        headers=as_["bob"],
    )
    assert approved.status_code == 200 and approved.json()["review"] == "approved"
    champion = api(
        "PUT", "/api/v1/models/churn/aliases/champion", json={"version": "1"}, headers=as_["alice"]
    )
    assert champion.status_code == 200 and champion.json()["aliases"] == ["champion"]
    seen = api("GET", "/api/v1/models/churn/versions/champion", headers=as_["carol"]).json()
    assert seen["ref"] == "churn@1"
    actions = [(e.actor, e.action) for e in backend.list_audit(limit=50)]
    assert ("bob", "review.approved") in actions
    assert ("alice", "auth.denied") in actions and ("carol", "auth.denied") in actions


def test_a_version_needs_its_files_in_the_store_first(
    team: tuple[Client, dict[str, dict[str, str]], str],
) -> None:
    api, as_, _ = team
    missing = api(
        "POST",
        "/api/v1/models/churn/versions",
        json={"digest": "0" * 64, "flavor": "python"},
        headers=as_["alice"],
    )
    assert (
        missing.status_code == 404 and "upload the model folder first" in missing.json()["message"]
    )
    bad = api(
        "POST",
        "/api/v1/models/churn/versions",
        json={"digest": "../x", "flavor": "p"},
        headers=as_["alice"],
    )
    assert bad.status_code == 422 and bad.json()["field"] == "body.digest"
    assert api("GET", "/api/v1/models", headers=as_["carol"]).json() == []
