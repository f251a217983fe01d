"""The registry through `RestBackend`: the same `Registry` calls as locally, and the server
enforcing the rules as the token's user even when a client lies about who acts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.artifacts import ArtifactStore
from shipyard.config import init_workspace
from shipyard.entities import ReviewState, Role
from shipyard.errors import PermissionDeniedError
from shipyard.registry import Registry
from shipyard.registry.tokens import issue_token
from shipyard.store.rest import RestBackend
from shipyard.tracking import open_workspace
from tests.server.test_rest_backend import _Served

pytestmark = pytest.mark.integration


@pytest.fixture
def clients(home: Path) -> Iterator[tuple[_Served, dict[str, RestBackend], dict[str, str]]]:
    init_workspace(home.parent)
    backend = open_workspace(home).backend
    Registry(backend, "alice").bootstrap_admin()
    backend.set_user("bob", Role.APPROVER, actor="alice")
    tokens = {user: issue_token(backend, user)[1] for user in ("alice", "bob")}
    with _Served(home, auth=True) as served:
        opened = {user: RestBackend(served.url, token=t) for user, t in tokens.items()}
        try:
            yield served, opened, tokens
        finally:
            for client in opened.values():
                client.close()


def test_the_registry_through_a_server_keeps_four_eyes(
    clients: tuple[_Served, dict[str, RestBackend], dict[str, str]], tmp_path: Path
) -> None:
    served, backends, tokens = clients
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.json").write_text('{"weights": [1, 2, 3]}')
    objects = ArtifactStore(f"{served.url}/api/v1/objects", token=tokens["alice"])
    try:
        digest = objects.put_dir(folder).digest
    finally:
        objects.close()
    alice = Registry(backends["alice"], "alice")
    bob = Registry(backends["bob"], "bob")
    # the server decides who acts: a client naming someone else is ignored
    made = backends["alice"].create_model_version(
        "churn", digest=digest, flavor="python", actor="mallory"
    )
    assert made.ref == "churn@1" and made.created_by == "alice"
    alice.set_governed("churn")
    alice.request_review("churn@1", comment="please")
    with pytest.raises(PermissionDeniedError, match="four-eyes"):
        alice.approve("churn@1")
    # skipping the client's own check changes nothing: the server refuses as alice
    with pytest.raises(PermissionDeniedError, match="four-eyes"):
        backends["alice"].set_review_state("churn", 1, ReviewState.APPROVED, actor="bob")
    with pytest.raises(PermissionDeniedError, match="not approved"):
        alice.set_alias("churn@1", "champion")
    approved = bob.approve("churn@1", comment="fine")
    assert approved.review is ReviewState.APPROVED
    alice.set_alias("churn@1", "champion")
    assert bob.resolve("churn@champion").version == 1
    assert [v.ref for v in bob.versions("churn")] == ["churn@1"]
    assert bob.model("churn").governed
    audit = [(e.actor, e.action) for e in backends["alice"].list_audit(limit=20)]
    assert ("bob", "review.approved") in audit and ("alice", "alias.set") in audit
    with pytest.raises(PermissionDeniedError, match="admin"):
        backends["bob"].list_audit()
