"""`shipyard gc` through a team server: the server collects in its own store, for admins only,
keeping what the caller's pointer files name; the collection is audited."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipyard.artifacts import ArtifactStore
from shipyard.config import init_workspace
from shipyard.entities import Role
from shipyard.registry import Registry
from shipyard.registry.tokens import issue_token
from shipyard.store import Backend
from shipyard.store.rest import RestBackend
from shipyard.tracking import open_workspace
from tests._cli import run_shipyard
from tests._served import Served

pytestmark = pytest.mark.integration
STORE_KINDS = ("sqlite",)  # the server's own store; the REST calls are what is tested

DAY = 86400


@dataclass
class Team:
    served: Served
    store: Backend
    """The server's own metadata store, read directly."""
    objects: ArtifactStore
    """The server's own artifact store, on its disk."""
    client: Path
    """A project folder of the client's (SHIPYARD_SERVER), holding its pointer files."""
    tokens: dict[str, str]

    def shipyard(self, *args: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        env |= {"SHIPYARD_SERVER": self.served.url, "SHIPYARD_TOKEN": self.tokens[user]}
        env["SHIPYARD_HOME"] = str(self.client / ".shipyard")
        return run_shipyard(*args, cwd=self.client, env=env)


@pytest.fixture
def team(home: Path, tmp_path: Path) -> Iterator[Team]:
    init_workspace(home.parent)
    workspace = open_workspace(home)
    store = workspace.backend
    Registry(store, "alice").bootstrap_admin()
    store.set_user("mo", Role.MEMBER, actor="alice")
    tokens = {user: issue_token(store, user)[1] for user in ("alice", "mo")}
    client = tmp_path / "client"
    init_workspace(client)
    with Served(home, auth=True) as served:
        yield Team(served, store, workspace.artifacts, client, tokens)


def _age(store: ArtifactStore, seconds: float) -> None:
    then = time.time() - seconds
    for path in Path(store.url).rglob("*"):
        if path.is_file():
            os.utime(path, (then, then))


def _history(team: Team) -> None:
    """images@1 and images@2 added by the client through the server (ten files changed)."""
    images = team.client / "images"
    for i in range(30):
        path = images / f"{i % 3}" / f"{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"v1-{i}\n" * 20)
    for version in (1, 2):
        if version == 2:
            for path in sorted(images.rglob("*.txt"))[:10]:
                path.write_text("changed\n" * 30)
        added = team.shipyard("data", "add", "images", "--name", "images")
        assert added.returncode == 0, added.stderr


def test_an_admin_collects_the_servers_store_and_the_callers_pointers_are_kept(
    team: Team,
) -> None:
    _history(team)
    orphan = team.objects.put_bytes(b"nobody refers to this").digest
    before = set(team.objects.iter_digests())
    _age(team.objects, 2 * DAY)

    refused = team.shipyard("gc", "--older-than", "1d", user="mo")
    assert refused.returncode == 3, refused.stderr
    assert "admin" in refused.stderr

    dry = team.shipyard("gc", "--dry-run", "--older-than", "1d", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["removed"] == 1
    assert set(ArtifactStore(team.objects.url).iter_digests()) == before

    # a pointer file of the caller's pins images@1: its bytes stay although --keep-last 1
    # drops it from the metadata's roots (the server cannot see the caller's files)
    pinned = json.loads((team.client / "images.ship").read_text())
    pinned["version"] = 1
    pinned["digest"] = team.store.get_dataset_version("images", "1").digest
    (team.client / "branch").mkdir()
    (team.client / "branch" / "images.ship").write_text(json.dumps(pinned))
    kept = team.shipyard("gc", "--keep-last", "1", "--older-than", "0s", "--json")
    assert kept.returncode == 0, kept.stderr
    assert json.loads(kept.stdout)["removed"] == 1  # the orphan
    assert not ArtifactStore(team.objects.url).exists(orphan)

    (team.client / "branch" / "images.ship").unlink()
    dropped = team.shipyard("gc", "--keep-last", "1", "--older-than", "0s")
    assert dropped.returncode == 0, dropped.stderr
    assert dropped.stdout.startswith("Removed 11 of ")
    got = team.shipyard("data", "get", "images@2", "--out", "restored")
    assert got.returncode == 0, got.stderr
    assert len(list((team.client / "restored").rglob("*.txt"))) == 30

    audited = [e for e in team.store.list_audit(limit=20) if e.action == "gc"]
    assert [(e.actor, e.details["removed"]) for e in audited] == [("alice", 11), ("alice", 1)]


def test_the_roots_are_the_servers_references_and_only_admins_read_them(team: Team) -> None:
    _history(team)
    admin = RestBackend(team.served.url, token=team.tokens["alice"])
    member = RestBackend(team.served.url, token=team.tokens["mo"])
    try:
        assert admin.referenced_digests() == team.store.referenced_digests()
        newest = admin.referenced_digests(keep_last=1)
        assert newest == team.store.referenced_digests(keep_last=1)
        assert newest < admin.referenced_digests()  # not images@1's manifest
        # every version is "recent" since time 0: a zero is sent, not dropped
        assert admin.referenced_digests(keep_last=1, since_ms=0) == admin.referenced_digests()
        with pytest.raises(Exception, match="admin"):
            member.referenced_digests()
    finally:
        admin.close()
        member.close()
