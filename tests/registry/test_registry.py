"""Registry rules and the audit trail, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shipyard.entities import ReviewState, Role
from shipyard.errors import InvalidArgumentError, NotFoundError, PermissionDeniedError
from shipyard.registry import Registry
from shipyard.store.sql import SqlBackend

pytestmark = pytest.mark.integration

DIGEST = "ab" * 32


def as_user(backend: SqlBackend, name: str) -> Registry:
    return Registry(backend, name)


@pytest.fixture
def team(backend: SqlBackend) -> dict[str, Registry]:
    """alice (admin, ran init), bob (approver), carol (approver), dave (member)."""
    alice = as_user(backend, "alice")
    assert alice.bootstrap_admin()
    alice.set_user("bob", "approver")
    alice.set_user("carol", Role.APPROVER)
    return {n: as_user(backend, n) for n in ("alice", "bob", "carol", "dave")}


def test_versions_are_numbered_and_refs_resolve(team: dict[str, Registry]) -> None:
    dave = team["dave"]
    first = dave.register("churn", digest=DIGEST, flavor="sklearn")
    second = dave.register("churn", digest="cd" * 32, flavor="sklearn")
    assert (first.ref, second.ref) == ("churn@1", "churn@2")
    assert dave.resolve("churn").version == 2
    assert dave.resolve("churn@latest").version == 2
    assert dave.resolve("churn@1").digest == DIGEST
    dave.set_alias("churn@1", "challenger")
    assert dave.resolve("churn@challenger").version == 1
    dave.set_alias("churn@2", "challenger")  # moving is atomic and audited
    assert dave.resolve("churn@challenger").version == 2
    assert dave.model("churn").aliases == {"challenger": 2}
    with pytest.raises(NotFoundError, match="no alias 'champion'"):
        dave.resolve("churn@champion")
    with pytest.raises(NotFoundError, match="no version 9"):
        dave.resolve("churn@9")
    with pytest.raises(InvalidArgumentError, match="invalid alias"):
        dave.set_alias("churn@1", "latest")
    with pytest.raises(NotFoundError, match="no registered model"):
        dave.resolve("nope@1")


def test_governed_champion_needs_four_eyes_approval(team: dict[str, Registry]) -> None:
    alice, bob, carol, dave = (team[n] for n in ("alice", "bob", "carol", "dave"))
    bob.register("fraud", digest=DIGEST, flavor="sklearn")  # bob is the author
    with pytest.raises(PermissionDeniedError, match="admin"):
        dave.set_governed("fraud")
    alice.set_governed("fraud")
    with pytest.raises(PermissionDeniedError, match="not approved"):
        bob.set_alias("fraud@1", "champion")
    bob.request_review("fraud@1", "ready")
    with pytest.raises(PermissionDeniedError, match="four-eyes"):
        bob.approve("fraud@1")
    with pytest.raises(PermissionDeniedError, match="approver"):
        dave.approve("fraud@1")
    with pytest.raises(InvalidArgumentError, match="say why"):
        carol.reject("fraud@1", "  ")
    approved = carol.approve("fraud@1", "looks good")
    assert approved.review is ReviewState.APPROVED
    assert bob.set_alias("fraud@1", "champion").aliases == ("champion",)
    # other aliases and ungoverned models need no review
    bob.set_alias("fraud@1", "staging")
    with pytest.raises(InvalidArgumentError, match="already approved"):
        bob.request_review("fraud@1")


def test_rejection_and_re_review(team: dict[str, Registry]) -> None:
    dave, carol = team["dave"], team["carol"]
    dave.register("m", digest=DIGEST, flavor="python")
    with pytest.raises(InvalidArgumentError, match="not awaiting review"):
        carol.approve("m@1")
    dave.request_review("m@1")
    assert carol.reject("m@1", "AUC below policy").review is ReviewState.REJECTED
    dave.request_review("m@1")
    assert carol.approve("m@1").review is ReviewState.APPROVED


def test_roles(backend: SqlBackend) -> None:
    mallory = as_user(backend, "mallory")
    with pytest.raises(PermissionDeniedError, match="shipyard init"):
        mallory.set_user("mallory2", "admin")
    alice = as_user(backend, "alice")
    alice.bootstrap_admin()
    assert not as_user(backend, "mallory").bootstrap_admin()  # only the very first
    with pytest.raises(PermissionDeniedError):
        mallory.set_user("mallory", "admin")
    with pytest.raises(InvalidArgumentError, match="unknown role"):
        alice.set_user("x", "wizard")
    assert [(u.name, u.role) for u in alice.users()] == [("alice", Role.ADMIN)]
    assert mallory.role_of("mallory") is Role.MEMBER


def test_every_change_is_audited_and_the_chain_verifies(
    team: dict[str, Registry], backend: SqlBackend
) -> None:
    bob = team["bob"]
    bob.register("churn", digest=DIGEST, flavor="sklearn")
    bob.set_alias("churn@1", "champion")
    bob.tag("churn@1", "stage", "prod")
    entries = backend.list_audit()
    assert [e.action for e in reversed(entries)] == [
        "user.set",
        "user.set",
        "user.set",
        "model.create",
        "version.create",
        "alias.set",
        "tag.set",
    ]
    assert entries[1].details == {"from": None, "to": 1} and entries[1].actor == "bob"
    assert backend.verify_audit() == []


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        ("UPDATE audit_log SET actor = 'eve' WHERE seq = 2", "entry 2 (user.set bob) was edited"),
        (
            'UPDATE audit_log SET details = \'{"from": null, "to": 99}\' WHERE seq = 6',
            "entry 6 (alias.set churn@champion) was edited",
        ),
        ("DELETE FROM audit_log WHERE seq = 3", "entry 3 is missing"),
        ("DELETE FROM audit_log WHERE seq = 6", "deleted from the end"),
    ],
)
def test_verify_detects_edits_and_deletions(
    team: dict[str, Registry], backend: SqlBackend, tamper: str, problem: str
) -> None:
    team["bob"].register("churn", digest=DIGEST, flavor="sklearn")
    team["bob"].set_alias("churn@1", "champion")
    assert backend.verify_audit() == []
    with backend.engine.begin() as conn:  # someone edits the database behind our back
        conn.execute(sa.text(tamper))
    problems = backend.verify_audit()
    assert any(problem in p for p in problems), problems


def test_denied_actions_change_nothing(team: dict[str, Registry], backend: SqlBackend) -> None:
    bob, carol, dave = team["bob"], team["carol"], team["dave"]
    bob.register("m", digest=DIGEST, flavor="sklearn")
    bob.request_review("m@1")
    before = len(backend.list_audit(limit=1000))
    with pytest.raises(PermissionDeniedError):
        bob.approve("m@1")
    with pytest.raises(PermissionDeniedError):
        dave.approve("m@1")
    assert len(backend.list_audit(limit=1000)) == before
    assert bob.resolve("m@1").review is ReviewState.REQUESTED
    # a decision only applies to a version still awaiting review (checked in the write)
    carol.reject("m@1", "no")
    with pytest.raises(InvalidArgumentError, match="someone else reviewed it first"):
        backend.set_review_state(
            "m", 1, ReviewState.APPROVED, actor="carol", expected=ReviewState.REQUESTED
        )
    assert bob.resolve("m@1").review is ReviewState.REJECTED


def test_governed_champion_cannot_be_removed_or_grandfathered(team: dict[str, Registry]) -> None:
    alice, bob, dave = team["alice"], team["bob"], team["dave"]
    dave.register("g", digest=DIGEST, flavor="sklearn")
    dave.set_alias("g@1", "champion")
    with pytest.raises(PermissionDeniedError, match="not approved"):
        alice.set_governed("g")  # its champion was never approved
    dave.request_review("g@1")
    bob.approve("g@1")
    alice.set_governed("g")
    with pytest.raises(PermissionDeniedError, match="approver"):
        dave.delete_alias("g", "champion")
    bob.delete_alias("g", "champion")
    assert alice.model("g").aliases == {}


def test_the_user_who_trained_a_model_may_not_approve_it(
    team: dict[str, Registry], backend: SqlBackend
) -> None:
    exp = backend.get_or_create_experiment("e")
    run = backend.create_run(exp.experiment_id, name="r", user="carol", start_time=1)
    team["dave"].register("t", digest=DIGEST, flavor="sklearn", run_id=run.run_id)
    team["dave"].request_review("t@1")
    with pytest.raises(PermissionDeniedError, match="trained"):
        team["carol"].approve("t@1")
    assert team["bob"].approve("t@1").review is ReviewState.APPROVED
