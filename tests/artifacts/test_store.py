from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import fsspec
import pytest

import shipyard.artifacts._backends as backends_module
import shipyard.artifacts.store as store_module
from shipyard.artifacts import (
    MANIFEST_FORMAT,
    ArtifactStore,
    Manifest,
    ManifestEntry,
    ObjectInfo,
    hash_bytes,
)
from shipyard.errors import (
    ArtifactCorruptedError,
    InvalidArgumentError,
    NotFoundError,
    UnsafePathError,
)

from .conftest import StoreCase

MIB = 1 << 20
BIG = 3 * MIB + 5  # above the 1 MiB threshold: exercises mmap hashing and the copy path


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative POSIX path."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha",
        "empty": b"",
        "nested/b.bin": os.urandom(1000),
        "nested/deeper/still/c.txt": b"gamma",
        "nested/deeper/empty-too": b"",
        "big.bin": os.urandom(BIG),
        "copy-of-a.txt": b"alpha",
    }
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


# -- bytes and files ---------------------------------------------------------------------------


def test_put_bytes_round_trip(store: ArtifactStore) -> None:
    info = store.put_bytes(b"hello")
    assert info == ObjectInfo(digest=hash_bytes(b"hello"), size=5)
    assert store.exists(info.digest)
    assert store.info(info.digest) == 5
    assert store.read_bytes(info.digest) == b"hello"


def test_empty_bytes_and_empty_file(case: StoreCase, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    info = case.store.put_file(empty)
    assert info == ObjectInfo(digest=hash_bytes(b""), size=0)
    assert case.store.read_bytes(info.digest) == b""
    assert case.store.get_file(info.digest, tmp_path / "out").read_bytes() == b""
    assert case.store.put_bytes(b"").stored is False


def test_second_put_of_same_bytes_writes_nothing(case: StoreCase, tmp_path: Path) -> None:
    first = case.store.put_bytes(b"same")
    source = tmp_path / "same.txt"
    source.write_bytes(b"same")
    again = case.store.put_bytes(b"same")
    from_file = case.store.put_file(source)
    assert first.stored is True
    assert again == ObjectInfo(digest=first.digest, size=4, stored=False)
    assert from_file == again
    assert case.object_keys() == [case.object_key(first.digest)]


def test_big_file_dedup_and_round_trip(case: StoreCase, tmp_path: Path) -> None:
    data = os.urandom(BIG)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    info = case.store.put_file(source)
    assert info == ObjectInfo(digest=hash_bytes(data), size=BIG)
    assert case.store.put_file(source).stored is False
    assert case.store.put_bytes(data).stored is False
    assert case.object_keys() == [case.object_key(info.digest)]
    assert case.temp_keys() == []
    out = case.store.get_file(info.digest, tmp_path / "out" / "big.bin")
    assert out == tmp_path / "out" / "big.bin"
    assert out.read_bytes() == data
    assert case.store.read_bytes(info.digest) == data


def test_layout_is_objects_two_hex_then_sixty_two(case: StoreCase) -> None:
    info = case.store.put_bytes(b"layout")
    assert case.read_raw(info.digest) == b"layout"
    assert case.object_keys() == [case.object_key(info.digest)]


def test_local_objects_are_read_only_and_outputs_are_not(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(BIG))
    for info in (store.put_bytes(b"small"), store.put_file(source)):
        location = tmp_path / "store" / "objects" / info.digest[:2] / info.digest[2:]
        assert stat.S_IMODE(location.stat().st_mode) == 0o444
        out = store.get_file(info.digest, tmp_path / f"out-{info.digest}")
        assert out.stat().st_mode & stat.S_IWUSR
        assert out.stat().st_ino != location.stat().st_ino
        out.write_bytes(b"edited by the user")
        assert store.read_bytes(info.digest) != b"edited by the user"


def test_get_file_replaces_an_existing_file(store: ArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    dest = tmp_path / "out" / "dest.txt"
    dest.write_bytes(b"old")
    store.get_file(store.put_bytes(b"new").digest, dest)
    assert dest.read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path / "out")) == ["dest.txt"]


def test_get_file_refuses_a_folder_as_destination(store: ArtifactStore, tmp_path: Path) -> None:
    digest = store.put_bytes(b"x").digest
    with pytest.raises(InvalidArgumentError, match="is a folder"):
        store.get_file(digest, tmp_path)


def test_iter_digests_lists_every_object_sorted(store: ArtifactStore, tmp_path: Path) -> None:
    assert list(store.iter_digests()) == []
    digests = {store.put_bytes(bytes([n])).digest for n in range(20)}
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"f")
    digests.add(store.put_bytes(b"f").digest)
    digests.add(store.put_dir(tmp_path / "d").digest)
    assert list(store.iter_digests()) == sorted(digests)


# -- missing objects and malformed digests -----------------------------------------------------


def test_missing_object(store: ArtifactStore, tmp_path: Path) -> None:
    digest = hash_bytes(b"never stored")
    assert not store.exists(digest)
    for call in (store.info, store.read_bytes, store.read_manifest):
        with pytest.raises(NotFoundError, match=digest):
            call(digest)
    with pytest.raises(NotFoundError, match=digest):
        store.get_file(digest, tmp_path / "out" / "f")
    with pytest.raises(NotFoundError, match=digest):
        store.get_dir(digest, tmp_path / "dir")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "dir").exists()


@pytest.mark.parametrize(
    "digest", ["", "../../etc/passwd", hash_bytes(b"x").upper(), hash_bytes(b"x")[:-1] + "/"]
)
def test_malformed_digests_are_refused(store: ArtifactStore, tmp_path: Path, digest: str) -> None:
    for call in (store.exists, store.info, store.read_bytes, store.read_manifest):
        with pytest.raises(InvalidArgumentError, match="malformed digest"):
            call(digest)
    with pytest.raises(InvalidArgumentError, match="malformed digest"):
        store.get(digest, tmp_path / "out", is_dir=False)


# -- corruption --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [10, BIG])
def test_corrupted_object_is_detected_and_dest_is_untouched(
    case: StoreCase, tmp_path: Path, size: int
) -> None:
    digest = case.store.put_bytes(os.urandom(size)).digest
    case.flip_byte(digest, offset=size // 2)
    with pytest.raises(ArtifactCorruptedError) as error:
        case.store.read_bytes(digest)
    assert digest in str(error.value)
    assert digest[2:] in str(error.value).split("at ", 1)[1]  # names the object's location
    out = tmp_path / "out"
    out.mkdir()
    existing = out / "existing.bin"
    existing.write_bytes(b"keep me")
    for dest in (existing, out / "new.bin"):
        with pytest.raises(ArtifactCorruptedError, match=digest):
            case.store.get_file(digest, dest)
    assert _tree(out) == {"existing.bin": b"keep me"}
    assert sorted(os.listdir(out)) == ["existing.bin"]


def test_corrupted_manifest_and_file_inside_a_folder(case: StoreCase, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "f.txt").write_bytes(b"content")
    info = case.store.put_dir(source)
    case.flip_byte(hash_bytes(b"content"))
    with pytest.raises(ArtifactCorruptedError):
        case.store.get_dir(info.digest, tmp_path / "out")
    assert _tree(tmp_path / "out") == {}
    case.flip_byte(info.digest, offset=3)
    with pytest.raises(ArtifactCorruptedError):
        case.store.read_manifest(info.digest)


def test_a_file_changing_while_being_stored_stores_nothing(
    case: StoreCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(BIG))
    stale = hash_bytes(b"what the file held when it was hashed")
    if case.kind == "local":  # copied and hashed in one pass: a write during it is seen
        real = backends_module._clone_or_copy

        def written_meanwhile(src: str, dst: str) -> str:
            digest = real(src, dst)
            with open(src, "ab") as file:
                file.write(b"appended by another process")
            return digest

        monkeypatch.setattr(backends_module, "_clone_or_copy", written_meanwhile)
    else:  # hashed, then copied and hashed again: the two digests differ
        monkeypatch.setattr(store_module, "hash_file", lambda path: stale)
    with pytest.raises(ArtifactCorruptedError, match="changed while it was being stored"):
        case.store.put_file(source)
    assert case.object_keys() == []
    assert case.temp_keys() == []
    assert list(case.store.iter_digests()) == []


# -- atomicity ---------------------------------------------------------------------------------


class Crash(Exception):
    """Stands for a crash at the worst moment."""


def _crash(*args: object, **kwargs: object) -> None:
    raise Crash


def _leftovers(root: Path) -> list[str]:
    """Temporary files a failed write left behind anywhere in a local store."""
    return [p.name for p in root.rglob("*") if p.is_file() and p.name.startswith(".tmp-")]


def test_local_crash_before_rename_leaves_no_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(tmp_path / "store")
    kept = store.put_bytes(b"stored before the crash")
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(BIG))
    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", _crash)
        with pytest.raises(Crash):
            store.put_bytes(b"lost")
        with pytest.raises(Crash):
            store.put_file(source)
    assert not store.exists(hash_bytes(b"lost"))
    assert not store.exists(hash_bytes(source.read_bytes()))
    assert list(store.iter_digests()) == [kept.digest]
    assert store.read_bytes(kept.digest) == b"stored before the crash"
    assert _leftovers(tmp_path / "store") == []


def test_local_crash_mid_copy_leaves_no_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(tmp_path / "store")
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(BIG))

    def half_copy(src: str, dst: str) -> str:
        with open(src, "rb") as file:
            Path(dst).write_bytes(file.read(BIG // 2))
        raise Crash

    monkeypatch.setattr(backends_module, "_clone_or_copy", half_copy)
    with pytest.raises(Crash):
        store.put_file(source)
    assert list(store.iter_digests()) == []
    assert _leftovers(tmp_path / "store") == []


def test_fsspec_crash_before_move_leaves_no_object(
    memory_case: StoreCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = memory_case
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(BIG))
    monkeypatch.setattr(type(fsspec.filesystem("memory")), "mv", _crash)
    with pytest.raises(Crash):
        case.store.put_bytes(b"lost")
    with pytest.raises(Crash):
        case.store.put_file(source)
    assert case.object_keys() == []
    assert case.temp_keys() == []


@pytest.mark.parametrize("size", [10, BIG])
def test_crash_while_getting_leaves_dest_untouched(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    digest = store.put_bytes(os.urandom(size)).digest
    out = tmp_path / "out"
    out.mkdir()
    (out / "existing.bin").write_bytes(b"old")
    monkeypatch.setattr(os, "replace", _crash)
    for name in ("existing.bin", "new.bin"):
        with pytest.raises(Crash):
            store.get_file(digest, out / name)
    assert sorted(os.listdir(out)) == ["existing.bin"]
    assert (out / "existing.bin").read_bytes() == b"old"


# -- folders -----------------------------------------------------------------------------------


def test_put_dir_and_get_dir_round_trip(case: StoreCase, tmp_path: Path) -> None:
    files = _make_tree(tmp_path / "src")
    info = case.store.put_dir(tmp_path / "src")
    assert info.is_dir
    assert info.file_count == len(files)
    assert info.size == sum(len(data) for data in files.values())
    assert info.stored
    manifest = case.store.read_manifest(info.digest)
    assert [entry.path for entry in manifest.entries] == sorted(files)
    assert case.store.get_dir(info.digest, tmp_path / "out") == tmp_path / "out"
    assert _tree(tmp_path / "out") == files
    # 7 files with 5 distinct contents (two copies of "alpha", two empty files), + the manifest.
    assert len(list(case.store.iter_digests())) == 6
    # The small files are in one pack (and its index); big.bin and the manifest alone.
    assert len(case.object_keys()) == 2
    assert [key.rsplit(".", 1)[-1] for key in case.pack_keys()] == ["idx", "pack"]


def test_same_tree_gives_the_same_manifest_digest(case: StoreCase, tmp_path: Path) -> None:
    files = _make_tree(tmp_path / "one")
    first = case.store.put_dir(tmp_path / "one")
    objects = case.object_keys()
    again = case.store.put_dir(tmp_path / "one")
    assert again == ObjectInfo(
        digest=first.digest, size=first.size, is_dir=True, file_count=len(files), stored=False
    )
    assert case.object_keys() == objects
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    assert case.store.put_dir(tmp_path / "two").digest == first.digest
    (tmp_path / "two" / "nested" / "b.bin").write_bytes(b"changed")
    assert case.store.put_dir(tmp_path / "two").digest != first.digest
    (tmp_path / "one" / "a.txt").rename(tmp_path / "one" / "renamed.txt")
    assert case.store.put_dir(tmp_path / "one").digest != first.digest


def test_empty_folder_gives_an_empty_manifest(case: StoreCase, tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    info = case.store.put_dir(tmp_path / "empty")
    assert (info.is_dir, info.file_count, info.size) == (True, 0, 0)
    assert case.store.read_manifest(info.digest) == Manifest()
    out = case.store.get(info.digest, tmp_path / "out", is_dir=True)
    assert out.is_dir()
    assert list(out.iterdir()) == []


def test_put_and_get_dispatch(store: ArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "f").write_bytes(b"in a folder")
    (tmp_path / "file").write_bytes(b"alone")
    folder = store.put(tmp_path / "dir")
    single = store.put(str(tmp_path / "file"))
    assert folder.is_dir and not single.is_dir
    assert _tree(store.get(folder.digest, tmp_path / "o1", is_dir=True)) == {"f": b"in a folder"}
    assert store.get(single.digest, tmp_path / "o2", is_dir=False).read_bytes() == b"alone"


def test_get_dir_overwrites_listed_files_and_keeps_others(
    store: ArtifactStore, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"new")
    out = tmp_path / "out"
    out.mkdir()
    (out / "f").write_bytes(b"old")
    (out / "other").write_bytes(b"mine")
    store.get_dir(store.put_dir(tmp_path / "src").digest, out)
    assert _tree(out) == {"f": b"new", "other": b"mine"}


def test_wrong_kinds_and_missing_paths(store: ArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    (tmp_path / "dir").mkdir()
    for call in (store.put, store.put_file, store.put_dir):
        with pytest.raises(NotFoundError, match="missing"):
            call(tmp_path / "missing")
    with pytest.raises(NotFoundError):
        store.put_file(tmp_path / "file" / "below-a-file")
    with pytest.raises(InvalidArgumentError, match="put_dir"):
        store.put_file(tmp_path / "dir")
    with pytest.raises(InvalidArgumentError, match="not a folder"):
        store.put_dir(tmp_path / "file")
    digest = store.put_bytes(b"x").digest
    with pytest.raises(InvalidArgumentError, match="is a file"):
        store.get_dir(store.put_dir(tmp_path / "dir").digest, tmp_path / "file")
    with pytest.raises(InvalidArgumentError, match="not a Shipyard manifest"):
        store.read_manifest(digest)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_special_files_are_refused(store: ArtifactStore, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InvalidArgumentError, match="not a regular file"):
        store.put(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "dir" / "fifo")
    with pytest.raises(InvalidArgumentError, match="'fifo'"):
        store.put_dir(tmp_path / "dir")
    assert list(store.iter_digests()) == []


# -- symlinks and path safety ------------------------------------------------------------------


def test_symlinks_inside_are_stored_as_their_targets(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "real").mkdir(parents=True)
    (src / "real" / "f.txt").write_bytes(b"target")
    (src / "file-link").symlink_to(src / "real" / "f.txt")
    (src / "relative-link").symlink_to(Path("real") / "f.txt")
    (src / "dir-link").symlink_to(src / "real", target_is_directory=True)
    info = store.put_dir(src)
    out = store.get_dir(info.digest, tmp_path / "out")
    assert _tree(out) == {
        "real/f.txt": b"target",
        "file-link": b"target",
        "relative-link": b"target",
        "dir-link/f.txt": b"target",
    }
    assert not any(path.is_symlink() for path in out.rglob("*"))


@pytest.mark.parametrize("target", ["/etc", "/etc/passwd", "../../outside", "../../outside/secret"])
def test_symlinks_pointing_outside_are_refused(
    store: ArtifactStore, tmp_path: Path, target: str
) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(b"secret")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"fine")
    (src / "sub" / "escape").symlink_to(target)
    with pytest.raises(UnsafePathError, match="sub/escape"):
        store.put_dir(src)
    with pytest.raises(UnsafePathError):
        store.put(src)
    assert list(store.iter_digests()) == []


def test_symlink_loops_and_broken_links_are_refused(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "up").symlink_to(src, target_is_directory=True)
    with pytest.raises(InvalidArgumentError, match="sub/up"):
        store.put_dir(src)
    (src / "sub" / "up").unlink()
    (src / "sub" / "broken").symlink_to(src / "nowhere")
    with pytest.raises(NotFoundError, match="sub/broken"):
        store.put_dir(src)
    assert list(store.iter_digests()) == []


@pytest.mark.skipif(sys.platform == "win32", reason="backslash is a separator on Windows")
def test_non_portable_file_names_are_refused_before_storing(
    store: ArtifactStore, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "fine.txt").write_bytes(b"fine")
    (src / "back\\slash").write_bytes(b"x")
    with pytest.raises(UnsafePathError, match="backslash"):
        store.put_dir(src)
    assert list(store.iter_digests()) == []


@pytest.mark.parametrize("evil", ["../../evil", "../evil", "/tmp/evil", "a/../../evil", "a\\..\\e"])
def test_tampered_manifest_writes_nothing(store: ArtifactStore, tmp_path: Path, evil: str) -> None:
    payload = store.put_bytes(b"payload").digest
    files = [{"digest": payload, "path": path, "size": 7} for path in ("aaa.txt", evil)]
    raw = json.dumps({"files": files, "format": MANIFEST_FORMAT}, separators=(",", ":"))
    manifest_digest = store.put_bytes(raw.encode()).digest
    box = tmp_path / "box"
    box.mkdir()
    dest = box / "inner" / "dest"
    with pytest.raises(UnsafePathError, match="unsafe artifact path"):
        store.get_dir(manifest_digest, dest)
    with pytest.raises(UnsafePathError):
        store.get(manifest_digest, dest, is_dir=True)
    assert list(box.iterdir()) == []  # not even dest, nor aaa.txt, the safe entry
    assert not any("evil" in path.name for path in tmp_path.rglob("*"))


def test_get_dir_refuses_a_symlink_in_dest_pointing_outside(
    store: ArtifactStore, tmp_path: Path
) -> None:
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "first.txt").write_bytes(b"1")
    (tmp_path / "src" / "sub" / "f.txt").write_bytes(b"2")
    info = store.put_dir(tmp_path / "src")
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match=r"sub/f\.txt"):
        store.get_dir(info.digest, dest)
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in dest.iterdir()) == ["sub"]  # first.txt was not written either


def test_manifest_entries_built_by_hand_can_be_materialised(
    store: ArtifactStore, tmp_path: Path
) -> None:
    digest = store.put_bytes(b"hand-made").digest
    manifest = Manifest((ManifestEntry("x/y.txt", digest, 9),))
    info = store.put_bytes(manifest.to_bytes())
    assert _tree(store.get_dir(info.digest, tmp_path / "out")) == {"x/y.txt": b"hand-made"}


# -- construction ------------------------------------------------------------------------------


def test_local_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ArtifactStore(tmp_path).url == str(tmp_path)
    assert ArtifactStore(f"file://{tmp_path}").url == str(tmp_path)
    monkeypatch.chdir(tmp_path)
    store = ArtifactStore("relative/store")
    assert store.url == str(tmp_path / "relative" / "store")
    assert repr(store) == f"ArtifactStore({str(tmp_path / 'relative' / 'store')!r})"
    store.put_bytes(b"x")
    assert (tmp_path / "relative" / "store" / "objects").is_dir()


def test_construction_has_no_side_effects(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "not-yet")
    assert not store.exists(hash_bytes(b"x"))
    assert list(store.iter_digests()) == []
    assert not (tmp_path / "not-yet").exists()


@pytest.mark.parametrize(("url", "message"), [("", "non-empty"), ("nosuch://x", "nosuch")])
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        ArtifactStore(url)


def test_memory_url_is_kept(memory_case: StoreCase) -> None:
    assert memory_case.store.url.startswith("memory://shipyard-test-")
    assert memory_case.store.url.endswith("/store")
    digest = memory_case.store.put_bytes(b"x").digest
    memory_case.flip_byte(digest)
    with pytest.raises(ArtifactCorruptedError, match=f"at memory://.*/store/objects/{digest[:2]}/"):
        memory_case.store.read_bytes(digest)


def test_a_folder_made_by_another_writer_between_miss_and_look_is_used(tmp_path: Path) -> None:
    """Four processes adding at once: one misses the object's folder, another makes it before
    the first looks. The write must go on, not fail as if its source were missing."""
    from shipyard.artifacts._backends import LocalBackend

    backend = LocalBackend(str(tmp_path / "store"))
    data = b"raced"
    digest = ArtifactStore(tmp_path / "other").put_bytes(data).digest
    real_open = os.open
    calls = {"n": 0}

    def open_racing(path: str, flags: int, mode: int = 0o777) -> int:
        calls["n"] += 1
        if calls["n"] == 1:  # the first attempt misses; a rival makes the folder meanwhile
            os.makedirs(os.path.dirname(path), exist_ok=True)
            raise FileNotFoundError(path)
        return real_open(path, flags, mode)

    original = os.open
    os.open = open_racing  # type: ignore[assignment]
    try:
        backend.write_bytes(digest, data)
    finally:
        os.open = original
    assert backend.read(digest) == data


@pytest.mark.parametrize("size", [0, 1, 4096 * 3, 4096 * 3 + 17, BIG])
def test_the_kernel_copy_hashes_exactly_what_it_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """Copied in steps (made small here, and not page-aligned after a short step), each step
    hashed in the target while the next one copies: the digest is the file's."""
    monkeypatch.setattr(backends_module, "_KERNEL_CHUNK", 4096 * 2 + 100)
    if sys.platform == "linux":  # copy_file_range is there: the Python copy must not run

        def no_python_copy(*args: object) -> str:
            raise AssertionError("copied in Python, not by the kernel")

        monkeypatch.setattr(backends_module, "copy_hashing", no_python_copy)
    source, target = tmp_path / "source", tmp_path / "target"
    source.write_bytes(os.urandom(size))
    assert backends_module._clone_or_copy(str(source), str(target)) == hash_bytes(
        source.read_bytes()
    )
    assert target.read_bytes() == source.read_bytes()
