"""Pointer files, status with the stat cache, checkout, and push/pull between stores."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from shipyard import data
from shipyard.artifacts import ArtifactStore
from shipyard.config import init_workspace
from shipyard.data import PathState
from shipyard.errors import InvalidArgumentError
from shipyard.tracking import open_workspace
from tests._served import local_stores_only
from tests.data._files import settle

pytestmark = pytest.mark.integration


@pytest.fixture
def tracked(home: Path) -> Path:
    project = home.parent
    folder = project / "images"
    (folder / "a").mkdir(parents=True)
    for i in range(20):
        (folder / "a" / f"{i}.bin").write_bytes(os.urandom(128))
    (project / "table.csv").write_text("x,y\n1,2\n3,4\n")
    settle(project)
    data.add(folder, "images")
    data.add(project / "table.csv", "table")
    return project


def _states(project: Path) -> dict[str, str]:
    return {r.path.name: r.state.value for r in data.status([project])}


def test_status_uses_the_stat_cache(tracked: Path) -> None:
    results = data.status()
    assert {r.path.name: r.state for r in results} == {
        "images": PathState.UNCHANGED,
        "table.csv": PathState.UNCHANGED,
    }
    assert sum(r.hashed for r in results) == 0  # add filled the cache: nothing re-read
    target = tracked / "images" / "a" / "3.bin"
    target.write_bytes(b"different")
    after = {r.path.name: r for r in data.status()}
    assert after["images"].state is PathState.MODIFIED and after["images"].hashed == 1
    # touching a file without changing it re-hashes that file only, and it is unchanged
    (tracked / "table.csv").touch()
    os.utime(tracked / "table.csv", ns=(time.time_ns(), time.time_ns() + 10**9))
    table = {r.path.name: r for r in data.status()}["table.csv"]
    assert table.state is PathState.UNCHANGED and table.hashed == 1


def test_status_reports_missing_and_explicit_paths(tracked: Path) -> None:
    (tracked / "table.csv").unlink()
    assert _states(tracked)["table.csv"] == "missing"
    only = data.status([tracked / "images"])
    assert [r.path.name for r in only] == ["images"]


def test_checkout_restores_what_the_pointer_names(tracked: Path) -> None:
    (tracked / "images" / "a" / "0.bin").write_bytes(b"edited")
    (tracked / "images" / "a" / "extra.bin").write_bytes(b"not in the version")
    (tracked / "table.csv").unlink()
    with pytest.raises(InvalidArgumentError, match="never added"):
        data.checkout()  # the edits to images/ were never added: refuse, change nothing
    assert (tracked / "images" / "a" / "0.bin").read_bytes() == b"edited"
    assert not (tracked / "table.csv").exists()
    restored = data.checkout(force=True)
    assert sorted(r.path.name for r in restored) == ["images", "table.csv"]
    assert set(_states(tracked).values()) == {"unchanged"}
    assert not (tracked / "images" / "a" / "extra.bin").exists()
    assert (tracked / "table.csv").read_text() == "x,y\n1,2\n3,4\n"
    assert data.checkout() == []


def test_checkout_an_older_version_after_the_pointer_changes(tracked: Path) -> None:
    pointer = (tracked / "table.csv.ship").read_text()
    (tracked / "table.csv").write_text("x,y\n9,9\n")
    data.add(tracked / "table.csv", "table")
    (tracked / "table.csv.ship").write_text(pointer)  # as `git checkout` of old code would
    assert _states(tracked)["table.csv"] == "modified"
    data.checkout([tracked / "table.csv"])
    assert (tracked / "table.csv").read_text() == "x,y\n1,2\n3,4\n"


@pytest.mark.parametrize("kind", ["folder", "memory"])
def test_push_and_pull(tracked: Path, tmp_path: Path, kind: str, store_url: str) -> None:
    local_stores_only(store_url, "the test empties the workspace's own object folder")
    remote = str(tmp_path / "remote") if kind == "folder" else f"memory://r-{uuid.uuid4().hex}"
    pushed = data.push(remote)
    assert pushed.copied == 20 + 1 + 1  # the folder's files, its manifest, the table
    assert len(list(ArtifactStore(remote).iter_digests())) == 22
    again = data.push(remote)
    assert (again.copied, again.skipped) == (0, 22)
    # this workspace loses its objects; pulling brings back exactly those, verified
    shutil.rmtree(open_workspace().settings.home / "artifacts")
    pulled = data.pull(remote)
    assert pulled.copied == 22
    (tracked / "table.csv").unlink()
    data.checkout()
    assert (tracked / "table.csv").read_text() == "x,y\n1,2\n3,4\n"


def test_checkout_of_added_changes_needs_no_force(tracked: Path) -> None:
    (tracked / "table.csv").write_text("x,y\n5,5\n")
    data.add(tracked / "table.csv", "table-next", pointer=False)  # stored, so not lost
    data.checkout()
    assert (tracked / "table.csv").read_text() == "x,y\n1,2\n3,4\n"


def test_a_fresh_clone_pulls_what_its_pointers_name(
    tracked: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    local_stores_only(store_url, "a clone on a server's workspace shares its store already")
    remote = str(tmp_path / "remote")
    data.push(remote)
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("table.csv.ship", "images.ship"):
        shutil.copy(tracked / name, clone / name)
    monkeypatch.chdir(clone)
    monkeypatch.setenv("SHIPYARD_HOME", str(init_workspace(clone)))
    monkeypatch.delenv("SHIPYARD_STORE_URL")  # another machine: its own, empty stores
    pulled = data.pull(remote)
    assert pulled.copied == 22
    assert {r.path.name for r in data.checkout()} == {"images", "table.csv"}
    assert (clone / "table.csv").read_text() == "x,y\n1,2\n3,4\n"


def test_pull_repairs_a_torn_object(tracked: Path, tmp_path: Path, store_url: str) -> None:
    local_stores_only(store_url, "objects live on the server's disk, not this workspace's")
    remote = str(tmp_path / "remote")
    data.push(remote)
    store = open_workspace().artifacts
    table = data.resolve("table@1")
    location = store.local_path(table.digest)
    assert location is not None
    os.chmod(location, 0o644)
    location.write_bytes(b"")  # what a power loss before the sync could leave
    assert data.pull(remote).copied == 1
    assert store.read_bytes(table.digest).startswith(b"x,y")


def test_status_through_a_symlink_uses_the_cache(tracked: Path) -> None:
    link = tracked.parent / "via-link"
    link.symlink_to(tracked, target_is_directory=True)
    data.status([link / "images"])
    again = data.status([link / "images"])
    assert again[0].state is PathState.UNCHANGED and again[0].hashed == 0


def test_a_pointer_cannot_aim_at_another_path(tracked: Path) -> None:
    pointer = tracked / "table.csv.ship"
    pointer.write_text(pointer.read_text().replace('"table.csv"', '".git"'))
    with pytest.raises(InvalidArgumentError, match="only the path it sits beside"):
        data.status([pointer])


def test_recently_modified_files_are_not_vouched_for(tmp_path: Path) -> None:
    from shipyard.data.statcache import StatCache, stat_key

    fresh, old = tmp_path / "fresh.bin", tmp_path / "old.bin"
    fresh.write_bytes(b"a")
    old.write_bytes(b"b")
    settle(old)
    with StatCache(tmp_path / "cache.db") as cache:
        cache.put_many(
            [(str(fresh), stat_key(fresh.stat()), "d1"), (str(old), stat_key(old.stat()), "d2")]
        )
        assert cache.get(str(fresh), stat_key(fresh.stat())) is None
        assert cache.get(str(old), stat_key(old.stat())) == "d2"


@pytest.fixture
def looked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The folders the stat cache is asked for per-file entries of, one item a lookup."""
    from shipyard.data.statcache import StatCache

    asked: list[str] = []
    lookup = StatCache.lookup_under

    def counted(self: StatCache, prefix: str) -> dict[str, tuple[tuple[int, ...], str]]:
        asked.append(prefix)
        return dict(lookup(self, prefix))

    monkeypatch.setattr(StatCache, "lookup_under", counted)
    return asked


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the stat cache is local
def test_an_unchanged_folder_is_answered_without_a_lookup_per_file(
    tracked: Path, looked: list[str]
) -> None:
    data.status()  # remembers the folder's listing (its files are settled)
    looked.clear()
    again = {r.path.name: r for r in data.status()}
    assert again["images"].state is PathState.UNCHANGED and again["images"].hashed == 0
    assert looked == []
    folder = tracked / "images" / "a"
    changes = [
        lambda: (folder / "3.bin").rename(folder / "3b.bin"),  # same bytes, another name
        lambda: (folder / "4.bin").write_bytes(os.urandom(128)),  # same size, other bytes
        lambda: (folder / "new.bin").write_bytes(b"x"),
        lambda: (folder / "5.bin").unlink(),
    ]
    for change in changes:
        change()
        result = {r.path.name: r for r in data.status()}["images"]
        assert result.state is PathState.MODIFIED, change
    assert looked  # each change went back to the per-file cache


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the stat cache is local
@pytest.mark.parametrize("link", [False, True], ids=["copied", "linked"])
def test_the_first_status_after_an_add_needs_no_lookup_per_file(
    home: Path, looked: list[str], link: bool
) -> None:
    folder = home.parent / "clips"
    for i in range(30):
        (folder / f"{i % 3}").mkdir(parents=True, exist_ok=True)
        (folder / f"{i % 3}" / f"{i}.wav").write_bytes(os.urandom(64 + i))
    settle(folder)
    data.add(folder, "clips", link=link)
    looked.clear()
    (first,) = data.status([folder])
    assert first.state is PathState.UNCHANGED and first.hashed == 0
    # the add remembered the whole folder; linking changed the files' ctimes, so a linked
    # folder is looked up per file once (and remembered by that status)
    assert looked == ([os.path.realpath(folder) + os.sep] if link else [])


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the stat cache is local
def test_a_folder_with_a_recently_modified_file_is_not_remembered(home: Path) -> None:
    from shipyard.data.fingerprint import fingerprint
    from shipyard.data.statcache import StatCache

    folder = home.parent / "fresh"
    folder.mkdir()
    (folder / "old.bin").write_bytes(b"old")
    settle(folder / "old.bin")
    (folder / "new.bin").write_bytes(b"new")  # within the racy window
    with StatCache(home / "cache" / "stat.db") as cache:
        fingerprint(folder, cache)
        assert cache.folder(os.path.realpath(folder)) is None
        settle(folder / "new.bin")
        first = fingerprint(folder, cache)
        remembered = cache.folder(os.path.realpath(folder))
        assert remembered is not None and remembered[1] == first.digest
