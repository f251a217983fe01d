"""``shipyard gc``: what nothing refers to goes, what anything refers to stays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import shipyard
from shipyard import data
from shipyard.artifacts import ArtifactStore, hash_bytes
from shipyard.data.gc import collect_garbage, parse_age
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.tracking import open_workspace
from tests._cli import ROOT, run_shipyard
from tests._served import local_stores_only

pytestmark = pytest.mark.integration

DAY = 86400


def _folder(root: Path, count: int, seed: str) -> Path:
    for i in range(count):
        path = root / f"{i % 4}" / f"{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{seed}-{i}\n" * 20)
    return root


def _age(store: ArtifactStore, seconds: float) -> None:
    """Make every object and pack of ``store`` look ``seconds`` old."""
    then = time.time() - seconds
    for path in Path(store.url).rglob("*"):
        if path.is_file():
            os.utime(path, (then, then))


@pytest.fixture
def workspace_with_history(home: Path, store_url: str) -> Path:
    local_stores_only(store_url, "these tests age the store's files (see test_gc_through_server)")
    project = home.parent
    images = _folder(project / "images", 30, "v1")
    data.add(images, "images")  # images@1
    for path in list(images.rglob("*.txt"))[:10]:
        path.write_text("changed\n" * 30)
    data.add(images, "images")  # images@2; images.ship now names it
    with shipyard.start_run(experiment="gc") as run:
        (project / "report.txt").write_text("a run's artifact\n")
        run.log_artifact(project / "report.txt")
    return project


def test_only_what_nothing_refers_to_is_removed(workspace_with_history: Path) -> None:
    store = open_workspace().artifacts
    orphan = store.put_bytes(b"nobody refers to this").digest
    before = set(store.iter_digests())
    _age(store, 2 * DAY)
    dry = collect_garbage(older_than="1d", dry_run=True)
    assert (dry.removed, dry.dry_run) == (1, True)
    assert set(ArtifactStore(store.url).iter_digests()) == before  # a dry run changes nothing
    report = collect_garbage(older_than="1d")
    assert report.removed == 1
    after = ArtifactStore(store.url)
    assert set(after.iter_digests()) == before - {orphan}
    assert report.packs_after == 1  # both versions' packs (and loose objects) in one pack
    for version in (1, 2):
        out = data.get(f"images@{version}", workspace_with_history / f"out{version}")
        assert len(list(out.rglob("*.txt"))) == 30
    assert (data.get("images@1", workspace_with_history / "o") / "0" / "0.txt").read_text() == (
        "v1-0\n" * 20
    )


def test_the_grace_period_protects_new_and_reused_objects(workspace_with_history: Path) -> None:
    store = open_workspace().artifacts
    new = store.put_bytes(b"written a moment ago").digest
    assert collect_garbage().removed == 0  # default grace: 1 hour
    _age(store, 2 * DAY)
    again = ArtifactStore(store.url)
    assert not again.put_bytes(b"written a moment ago").stored  # reused: touched, not rewritten
    assert collect_garbage(older_than="1d").removed == 0
    assert ArtifactStore(store.url).exists(new)


def test_keep_last_drops_the_bytes_of_older_versions(workspace_with_history: Path) -> None:
    store = open_workspace().artifacts
    _age(store, 2 * DAY)
    # (a grace of 1d would keep images@1 too: it was created a moment ago)
    report = collect_garbage(keep_last=1, older_than="0s")
    assert report.removed == 10 + 1  # images@1's ten files that @2 changed, and its manifest
    with pytest.raises(NotFoundError):
        data.get("images@1", workspace_with_history / "old")
    assert len(list(data.get("images@2", workspace_with_history / "new").rglob("*.txt"))) == 30
    with pytest.raises(InvalidArgumentError, match="at least 1"):
        collect_garbage(keep_last=0)


def test_a_pointer_file_keeps_its_version(workspace_with_history: Path) -> None:
    project = workspace_with_history
    ship = project / "images.ship"
    pinned = json.loads(ship.read_text())
    pinned["version"], pinned["digest"] = 1, data.resolve("images@1").digest
    (project / "old").mkdir()
    (project / "old" / "images.ship").write_text(json.dumps(pinned))  # a branch's pointer
    _age(open_workspace().artifacts, 2 * DAY)
    assert collect_garbage(keep_last=1, older_than="0s").removed == 0


def test_gc_on_a_remote(workspace_with_history: Path, tmp_path: Path) -> None:
    remote = str(tmp_path / "remote")
    data.push(remote)
    orphan = ArtifactStore(remote).put_bytes(b"left over on the remote").digest
    _age(ArtifactStore(remote), 2 * DAY)
    report = collect_garbage(remote=remote, older_than="1d")
    assert report.removed == 1
    assert not ArtifactStore(remote).exists(orphan)
    fresh = ArtifactStore(tmp_path / "fresh")
    pulled = data.pull(remote)  # everything still pullable
    assert pulled.copied + pulled.skipped > 0
    del fresh


def test_parse_age() -> None:
    assert [parse_age(t) for t in ("90", "30m", "12h", "7d", "2w")] == [
        90,
        1800,
        43200,
        604800,
        1209600,
    ]
    with pytest.raises(InvalidArgumentError, match="7d or 12h"):
        parse_age("soon")


_ADDER = """
import sys
from pathlib import Path
from shipyard import data
folder = Path(sys.argv[1])
for round in range(int(sys.argv[2])):
    for i in range(600):
        (folder / f"{i}.txt").write_text(f"round {round} file {i}\\n" * 10)
    data.add(folder, "stream", pointer=False, profile=False)
"""


def test_gc_running_beside_an_add_loses_nothing(workspace_with_history: Path) -> None:
    """A collection with the default grace period, over and over while another process adds
    new versions: every version the adder recorded is whole afterwards."""
    folder = workspace_with_history / "stream"
    folder.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    adder = subprocess.Popen(
        [sys.executable, "-c", _ADDER, str(folder), "4"], env=env, stderr=subprocess.PIPE
    )
    collections = 0
    while adder.poll() is None:
        collect_garbage()
        collections += 1
    _, errors = adder.communicate()
    assert adder.returncode == 0, errors
    assert collections > 1
    collect_garbage()
    versions = open_workspace().backend.list_dataset_versions("stream")
    assert len(versions) == 4
    for version in versions:
        out = data.get(version.ref, workspace_with_history / f"check-{version.version}")
        assert len(list(out.glob("*.txt"))) == 600


def test_the_command(workspace_with_history: Path) -> None:
    store = open_workspace().artifacts
    store.put_bytes(b"orphan one")
    _age(store, 2 * DAY)
    env = dict(os.environ)
    dry = run_shipyard("gc", "--dry-run", "--older-than", "1d", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["removed"] == 1
    real = run_shipyard("gc", "--older-than", "1d", env=env)
    assert real.returncode == 0, real.stderr
    assert real.stdout.startswith("Removed 1 of ")
    bad = run_shipyard("gc", "--older-than", "soon", env=env)
    assert bad.returncode != 0 and "7d or 12h" in bad.stderr
    assert hash_bytes(b"orphan one") not in set(ArtifactStore(store.url).iter_digests())
