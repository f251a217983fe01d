"""Registry rules and the audit trail, on SQLite, PostgreSQL and through a server."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from shipyard.entities import ReviewState, Role
from shipyard.errors import (
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from shipyard.registry import Registry
from shipyard.registry.tokens import issue_token
from shipyard.store import Backend, open_backend
from shipyard.store.sql import SqlBackend

pytestmark = pytest.mark.integration

TEAM = {"alice": Role.ADMIN, "bob": Role.APPROVER, "carol": Role.APPROVER, "dave": Role.MEMBER}


def through_a_server(store_url: str) -> bool:
    return store_url.startswith(("http://", "https://"))


def as_user(backend: Backend, name: str) -> Registry:
    return Registry(backend, name)


@pytest.fixture
def database(store_url: str, backend: Backend) -> Iterator[SqlBackend]:
    """The SQL store itself, where the audit chain lives: through a server, the server's own,
    as a command on its host (`shipyard init`, `shipyard users add`) sees it."""
    if not through_a_server(store_url):
        assert isinstance(backend, SqlBackend)
        yield backend
        return
    import httpx

    opened = open_backend(httpx.get(f"{store_url}/health").json()["store"])
    assert isinstance(opened, SqlBackend)
    yield opened
    opened.close()


@pytest.fixture
def team(
    store_url: str, backend: Backend, database: SqlBackend, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Registry]]:
    """alice (admin, ran init), bob and carol (approvers), dave (member), each with a token
    (on every kind, so that the audit trails are alike).

    Locally the backend is told who acts. A server decides that itself, and with auth off it
    acts as its own user whoever the client names; so through a server each of them calls a
    twin of it with auth on (over the same workspace) with their own token."""
    admin = as_user(database, "alice")
    assert admin.bootstrap_admin()
    for name, role in TEAM.items():
        if name != "alice":
            admin.set_user(name, role)
    tokens = {name: issue_token(database, name)[1] for name in TEAM}
    if not through_a_server(store_url):
        yield {name: as_user(backend, name) for name in TEAM}
        return
    from tests._served import Served

    server_home = Path(sa.make_url(database.url).database or "").parent  # its store is in it
    with monkeypatch.context() as env:  # the twin opens the server's store, not a server
        env.delenv("SHIPYARD_SERVER")
        env.setenv("SHIPYARD_STORE_URL", database.url)
        twin = Served(server_home, auth=True)
    with twin:
        clients = {name: open_backend(twin.url, token=token) for name, token in tokens.items()}
        try:
            yield {name: as_user(client, name) for name, client in clients.items()}
        finally:
            for client in clients.values():
                client.close()


@pytest.fixture
def store_model(home: Path) -> Callable[[str], str]:
    """``store_model(text)``: the digest of a model folder holding ``text``, put in the
    workspace's artifact store (a server registers no version whose files it lacks)."""
    from shipyard.tracking import open_workspace

    made = itertools.count(1)

    def store(text: str) -> str:
        folder = home.parent / "models" / str(next(made))
        folder.mkdir(parents=True)
        (folder / "model.json").write_text(text)
        return open_workspace().artifacts.put_dir(folder).digest

    return store


@pytest.fixture
def digest(store_model: Callable[[str], str]) -> str:
    return store_model('{"weights": [1, 2, 3]}')


def test_versions_are_numbered_and_refs_resolve(
    team: dict[str, Registry], digest: str, store_model: Callable[[str], str]
) -> None:
    dave = team["dave"]
    first = dave.register("churn", digest=digest, flavor="sklearn")
    second = dave.register("churn", digest=store_model('{"weights": [4]}'), flavor="sklearn")
    assert (first.ref, second.ref) == ("churn@1", "churn@2")
    assert dave.resolve("churn").version == 2
    assert dave.resolve("churn@latest").version == 2
    assert dave.resolve("churn@1").digest == digest
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


def test_governed_champion_needs_four_eyes_approval(team: dict[str, Registry], digest: str) -> None:
    alice, bob, carol, dave = (team[n] for n in ("alice", "bob", "carol", "dave"))
    bob.register("fraud", digest=digest, flavor="sklearn")  # bob is the author
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


def test_rejection_and_re_review(team: dict[str, Registry], digest: str) -> None:
    dave, carol = team["dave"], team["carol"]
    dave.register("m", digest=digest, flavor="python")
    with pytest.raises(InvalidArgumentError, match="not awaiting review"):
        carol.approve("m@1")
    dave.request_review("m@1")
    assert carol.reject("m@1", "AUC below policy").review is ReviewState.REJECTED
    dave.request_review("m@1")
    assert carol.approve("m@1").review is ReviewState.APPROVED


def test_the_first_user_may_make_themself_admin(backend: Backend, store_url: str) -> None:
    if through_a_server(store_url):
        pytest.skip("a server's first admin is made on its host (`shipyard init`), not over HTTP")
    mallory = as_user(backend, "mallory")
    with pytest.raises(PermissionDeniedError, match="shipyard init"):
        mallory.set_user("mallory2", "admin")
    alice = as_user(backend, "alice")
    assert alice.bootstrap_admin()
    assert not as_user(backend, "mallory").bootstrap_admin()  # only the very first
    with pytest.raises(PermissionDeniedError):
        mallory.set_user("mallory", "admin")
    assert [(u.name, u.role) for u in alice.users()] == [("alice", Role.ADMIN)]


def test_roles(team: dict[str, Registry]) -> None:
    alice, dave = team["alice"], team["dave"]
    with pytest.raises(PermissionDeniedError, match="admin"):
        dave.set_user("dave", "admin")
    with pytest.raises(InvalidArgumentError, match="unknown role"):
        alice.set_user("erin", "wizard")
    alice.set_user("erin", Role.VIEWER)
    assert [(u.name, u.role) for u in alice.users()] == [*TEAM.items(), ("erin", Role.VIEWER)]
    assert dave.role_of("erin") is Role.VIEWER
    assert dave.role_of("mallory") is Role.MEMBER  # anyone not listed


def test_the_last_admin_cannot_be_demoted(team: dict[str, Registry]) -> None:
    alice = team["alice"]
    with pytest.raises(ConflictError, match="last admin"):
        alice.set_user("alice", Role.MEMBER)
    alice.set_user("bob", Role.ADMIN)
    alice.set_user("alice", Role.MEMBER)  # another admin remains
    assert alice.role_of("alice") is Role.MEMBER


def test_a_name_stands_for_itself(team: dict[str, Registry], digest: str) -> None:
    """Names go into a server's URLs: ``eve#x`` must not reach it as ``eve``, nor ``.`` as
    the list of users."""
    alice, dave = team["alice"], team["dave"]
    odd = ["eve#x", "eve?role=admin", "eve x", ".", ".."]
    for name in odd:
        alice.set_user(name, Role.VIEWER)
    assert {u.name for u in alice.users()} == {*TEAM, *odd}
    assert dave.role_of("eve") is Role.MEMBER and dave.role_of("..") is Role.VIEWER
    dave.register("churn", digest=digest, flavor="python")
    dave.set_alias("churn@1", "x")
    for selector in ("x#y", "1?x", "x y"):
        with pytest.raises(NotFoundError, match=re.escape(f"no alias '{selector}'")):
            dave.resolve(f"churn@{selector}")
    with pytest.raises(NotFoundError, match="no alias 'x#y'"):
        dave.delete_alias("churn", "x#y")
    assert dave.model("churn").aliases == {"x": 1}


def test_every_change_is_audited_and_the_chain_verifies(
    team: dict[str, Registry], database: SqlBackend, digest: str
) -> None:
    bob = team["bob"]
    bob.register("churn", digest=digest, flavor="sklearn")
    bob.set_alias("churn@1", "champion")
    entries = team["alice"].backend.list_audit()
    assert [e.action for e in reversed(entries)] == [
        *["user.set"] * 4,
        *["token.create"] * 4,
        "model.create",
        "version.create",
        "alias.set",
    ]
    assert entries[0].details == {"from": None, "to": 1} and entries[0].actor == "bob"
    assert database.verify_audit() == []


def test_the_audit_log_pages_back_by_entry(
    team: dict[str, Registry], database: SqlBackend, digest: str
) -> None:
    bob = team["bob"]
    bob.register("churn", digest=digest, flavor="sklearn")
    for i in range(7):
        bob.tag("churn@1", "round", str(i))
    audit = team["alice"].backend  # through a server when the suite runs that way
    everything = audit.list_audit(limit=1000)
    pages, before = [], None
    while page := audit.list_audit(limit=4, before=before):
        pages.append([e.seq for e in page])
        before = page[-1].seq
    assert [seq for page in pages for seq in page] == [e.seq for e in everything]
    assert all(len(page) == 4 for page in pages[:-1])
    tags = audit.list_audit(limit=3, target="churn@1", before=everything[1].seq)
    assert [e.details.get("value") for e in tags] == ["4", "3", "2"]  # older than round 5
    assert audit.list_audit(before=1) == []


def test_tags_are_audited(team: dict[str, Registry], database: SqlBackend, digest: str) -> None:
    bob = team["bob"]
    version = bob.register("churn", digest=digest, flavor="sklearn")
    bob.tag("churn@1", "stage/env", "prod")
    bob.tag("churn", "owner", "bob")
    assert bob.resolve("churn@1").tags == {"stage/env": "prod"}
    assert bob.model("churn").tags == {"owner": "bob"}
    changes = [(e.actor, e.action, e.target) for e in team["alice"].backend.list_audit(limit=2)]
    assert changes == [("bob", "tag.set", "churn"), ("bob", "tag.set", "churn@1")]
    assert database.verify_audit() == []
    assert team["alice"].audit_problems() == []  # through the registry, as an admin
    assert bob.backend.model_versions_of_runs(["0" * 32]) == []
    assert version.run_id is None


# The team's entries are 1-4 (roles) and 5-8 (tokens); then 9 model, 10 version, 11 alias.
@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        ("UPDATE audit_log SET actor = 'eve' WHERE seq = 2", "entry 2 (user.set bob) was edited"),
        (
            'UPDATE audit_log SET details = \'{"from": null, "to": 99}\' WHERE seq = 11',
            "entry 11 (alias.set churn@champion) was edited",
        ),
        ("DELETE FROM audit_log WHERE seq = 3", "entry 3 is missing"),
        ("DELETE FROM audit_log WHERE seq = 11", "deleted from the end"),
    ],
)
def test_verify_detects_edits_and_deletions(
    team: dict[str, Registry], database: SqlBackend, digest: str, tamper: str, problem: str
) -> None:
    team["bob"].register("churn", digest=digest, flavor="sklearn")
    team["bob"].set_alias("churn@1", "champion")
    assert database.verify_audit() == []
    with database.engine.begin() as conn:  # someone edits the database behind our back
        conn.execute(sa.text(tamper))
    problems = database.verify_audit()
    assert any(problem in p for p in problems), problems


def test_denied_actions_change_nothing(
    team: dict[str, Registry], store_url: str, digest: str
) -> None:
    alice, bob, carol, dave = (team[n] for n in ("alice", "bob", "carol", "dave"))
    bob.register("m", digest=digest, flavor="sklearn")
    bob.request_review("m@1")
    before = len(alice.backend.list_audit(limit=1000))
    with pytest.raises(PermissionDeniedError):
        bob.approve("m@1")
    with pytest.raises(PermissionDeniedError):
        dave.approve("m@1")
    assert len(alice.backend.list_audit(limit=1000)) == before
    assert bob.resolve("m@1").review is ReviewState.REQUESTED
    # a decision only applies to a version still awaiting review: checked in the write, and
    # by a server's registry before that
    carol.reject("m@1", "no")
    late = "not awaiting review" if through_a_server(store_url) else "reviewed it first"
    with pytest.raises(InvalidArgumentError, match=late):
        carol.backend.set_review_state(
            "m", 1, ReviewState.APPROVED, actor="carol", expected=ReviewState.REQUESTED
        )
    assert bob.resolve("m@1").review is ReviewState.REJECTED


def test_governed_champion_cannot_be_removed_or_grandfathered(
    team: dict[str, Registry], digest: str
) -> None:
    alice, bob, dave = team["alice"], team["bob"], team["dave"]
    dave.register("g", digest=digest, flavor="sklearn")
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
    team: dict[str, Registry], digest: str
) -> None:
    carol = team["carol"]
    exp = carol.backend.get_or_create_experiment("e")
    run = carol.backend.create_run(exp.experiment_id, name="r", user="carol", start_time=1)
    assert run.user == "carol"
    team["dave"].register("t", digest=digest, flavor="sklearn", run_id=run.run_id)
    team["dave"].request_review("t@1")
    with pytest.raises(PermissionDeniedError, match="trained"):
        carol.approve("t@1")
    assert team["bob"].approve("t@1").review is ReviewState.APPROVED
