"""Pack files: a folder of small files becomes one pack; crashes, damage and old stores."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shipyard.artifacts import ArtifactStore, hash_bytes
from shipyard.artifacts.gc import collect
from shipyard.artifacts.packs import PACK_THRESHOLD
from shipyard.errors import ArtifactCorruptedError, NotFoundError
from tests.artifacts.conftest import StoreCase


def _small_files(root: Path, count: int, size: int = 4096) -> dict[str, bytes]:
    files = {f"d{i % 7}/f{i:05d}.bin": os.urandom(size) for i in range(count)}
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_a_folder_of_small_files_becomes_one_pack(case: StoreCase, tmp_path: Path) -> None:
    files = _small_files(tmp_path / "src", 500)
    big = os.urandom(PACK_THRESHOLD)  # at the threshold: stays a file of its own
    (tmp_path / "src" / "big.bin").write_bytes(big)
    info = case.store.put_dir(tmp_path / "src")
    assert info.file_count == 501
    # 500 packed objects in one pack + its index; the big file and the manifest alone
    assert len(case.pack_keys()) == 2
    assert len(case.object_keys()) == 2
    # another store object (another process) finds and verifies every file
    again = ArtifactStore(case.store.url)
    for data in files.values():
        assert again.read_bytes(hash_bytes(data)) == data
    again.get_dir(info.digest, tmp_path / "out")
    assert (tmp_path / "out" / "big.bin").read_bytes() == big
    assert {
        p.relative_to(tmp_path / "out").as_posix(): p.read_bytes()
        for p in _files_under(tmp_path / "out")
        if p.name != "big.bin"
    } == files
    # adding it again writes nothing, not even a new pack
    assert not case.store.put_dir(tmp_path / "src").stored
    assert len(case.pack_keys()) == 2


def test_damage_inside_a_pack_is_reported(case: StoreCase, tmp_path: Path) -> None:
    files = _small_files(tmp_path / "src", 20, size=100)
    case.store.put_dir(tmp_path / "src")
    victim = hash_bytes(next(iter(files.values())))
    case.flip_byte(victim, offset=5)
    with pytest.raises(ArtifactCorruptedError, match=victim):
        ArtifactStore(case.store.url).read_bytes(victim)


def test_a_damaged_index_hides_its_pack_instead_of_misdirecting_reads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ArtifactStore(tmp_path / "store")
    files = _small_files(tmp_path / "src", 10, size=100)
    store.put_dir(tmp_path / "src")
    (index,) = (Path(store.url) / "packs").glob("*.idx")
    os.chmod(index, 0o644)
    raw = bytearray(index.read_bytes())
    raw[-1] ^= 0xFF  # the last record's size
    index.write_bytes(bytes(raw))
    fresh = ArtifactStore(store.url)
    digest = hash_bytes(next(iter(files.values())))
    with pytest.raises(NotFoundError):
        fresh.read_bytes(digest)
    assert "do not hash to its name" in caplog.text


# A process killed while it installs its pack: before the pack is renamed, between the pack
# and its index, and before the index is renamed. The store must show the old state (nothing
# of the add) and accept the same add afterwards.
_KILLED_ADD = textwrap.dedent(
    """
    import os, sys
    from shipyard.artifacts import ArtifactStore
    real_replace = os.replace
    stage = sys.argv[3]

    def replace(src, dst):
        name = os.path.basename(str(dst))
        if stage == "pack" and name.endswith(".pack"):
            os._exit(9)
        real_replace(src, dst)
        if stage == "between" and name.endswith(".pack"):
            os._exit(9)
        if stage == "index" and name.endswith(".idx"):
            os._exit(9)

    os.replace = replace
    ArtifactStore(sys.argv[1]).put_dir(sys.argv[2])
    """
)


@pytest.mark.parametrize("stage", ["pack", "between", "index"])
def test_a_crash_while_installing_a_pack_leaves_a_consistent_store(
    tmp_path: Path, stage: str
) -> None:
    root = tmp_path / "store"
    files = _small_files(tmp_path / "src", 50, size=500)
    before = ArtifactStore(root)
    old = before.put_bytes(b"already here")
    run = subprocess.run(
        [sys.executable, "-c", _KILLED_ADD, str(root), str(tmp_path / "src"), stage],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 9, run.stderr
    after = ArtifactStore(root)
    assert after.read_bytes(old.digest) == b"already here"
    visible = {hash_bytes(d) for d in files.values()} & set(after.iter_digests())
    # "index": the index was renamed before the kill, so the add's objects are all there
    assert visible == (set() if stage != "index" else {hash_bytes(d) for d in files.values()})
    for digest in visible:
        after.read_bytes(digest)  # every object an index names is whole and verified
    info = after.put_dir(tmp_path / "src")
    after.get_dir(info.digest, tmp_path / "out")
    assert len(_files_under(tmp_path / "out")) == 50


def test_an_old_store_of_loose_objects_is_read_and_repacked(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    blobs = [os.urandom(300) for _ in range(40)]
    digests = [store.put_bytes(b).digest for b in blobs]  # synced one by one: loose files
    assert len(_files_under(tmp_path / "store" / "objects")) == 40
    report = collect(store, digests, older_than=0)
    assert (report.removed, report.loose_packed, report.packs_after) == (0, 40, 1)
    assert _files_under(tmp_path / "store" / "objects") == []
    fresh = ArtifactStore(tmp_path / "store")
    assert [fresh.read_bytes(d) for d in digests] == blobs


def test_a_store_open_before_a_repack_still_finds_every_object(tmp_path: Path) -> None:
    """A long-lived process (a server) read the indexes before ``gc`` moved loose objects
    into a new pack and removed the loose files: it looks again instead of missing them."""
    early = ArtifactStore(tmp_path / "store")
    blobs = [os.urandom(200) for _ in range(5)]
    digests = [early.put_bytes(b).digest for b in blobs]  # loose
    assert all(early.exists(d) for d in digests)  # indexes read now (no packs yet)
    collect(ArtifactStore(tmp_path / "store"), digests, older_than=0)  # another process
    assert _files_under(tmp_path / "store" / "objects") == []
    assert all(early.exists(d) for d in digests)
    assert [early.info(d) for d in digests] == [200] * 5
    assert [early.read_bytes(d) for d in digests] == blobs
    early.get_file(digests[0], tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == blobs[0]


def test_gc_removes_what_crashed_writes_left_once_they_are_old(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    kept = store.put_bytes(b"kept").digest
    leftovers = [
        tmp_path / "store" / "objects" / ".tmp-1-staged-large-file",
        tmp_path / "store" / "objects" / kept[:2] / ".tmp-1-loose",
        tmp_path / "store" / "packs" / ".tmp-pack-1-abandoned",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    assert collect(store, [kept], older_than=3600).temporaries == 0  # too new: maybe running
    old = 1_000_000_000.0
    for path in leftovers:
        os.utime(path, (old, old))
    assert collect(store, [kept], older_than=3600).temporaries == 3
    assert not any(path.exists() for path in leftovers)
    assert ArtifactStore(tmp_path / "store").read_bytes(kept) == b"kept"


def test_a_pack_written_in_megabyte_batches_reads_back_and_names_its_digest(
    tmp_path: Path,
) -> None:
    from shipyard.artifacts.packs import PackIndex, PackWriter

    objects = [os.urandom(size) for size in (1, 4096, 65_000, 700_000, 3, 500_000)]
    writer = PackWriter(str(tmp_path))
    for data in objects:
        writer.add(hash_bytes(data), data)
        writer.add(hash_bytes(data), data)  # the same object twice is stored once
        # readable at once, whether or not its batch was written out yet
        assert writer.read(hash_bytes(data)) == data
    path, index_bytes, pack_id = writer.finish(sync=False)
    index = PackIndex.from_bytes(pack_id, index_bytes, path)
    pack = Path(path).read_bytes()
    assert index.pack_size == len(pack) and index.pack_digest == hash_bytes(pack)
    for data in objects:
        offset, size = index.entries[hash_bytes(data)]
        assert pack[offset : offset + size] == data


def test_an_object_is_readable_before_its_pack_is_installed(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    info = store.put_bytes(b"small, not yet synced", sync=False)  # goes to the open pack
    assert store.read_bytes(info.digest) == b"small, not yet synced"
    store.flush()
    assert ArtifactStore(tmp_path / "store").read_bytes(info.digest) == b"small, not yet synced"
