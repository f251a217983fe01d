"""Copy objects between two artifact stores, packs as packs.

What the target already holds is read from its listing (one listing and its pack indexes, not
one request per object). Packed objects travel by pack: when most of a source pack is wanted,
the whole pack file is sent in one request and installed under its own name; otherwise the
wanted ranges are read (one batched request per pack on object storage) and written into a
new pack. Large objects are copied one by one. Every object fetched from another machine is
hashed on the way (a pack of this machine's store is checked whole against the BLAKE3 its index
records), and a pack is installed (pack, then index) only once all of it checks out, so an
interrupted transfer leaves the target with whole packs and whole objects: running it again
copies only what is missing.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from shipyard.artifacts._packed import PackedObjects, read_members
from shipyard.artifacts.digest import hash_bytes
from shipyard.artifacts.packs import PACK_HEADER_SIZE, PackIndex
from shipyard.artifacts.store import ArtifactStore
from shipyard.errors import ArtifactCorruptedError

__all__ = ["Transfer", "object_sizes", "transfer"]

_IN_MEMORY = 8 << 20


@dataclass(frozen=True, slots=True)
class Transfer:
    """What a transfer did: objects copied and skipped (already there), bytes copied."""

    copied: int
    skipped: int
    bytes: int


def object_sizes(store: ArtifactStore) -> dict[str, int] | None:
    """``digest -> size`` of every object ``store`` holds, from one listing (None when the
    store cannot be listed cheaply: a Shipyard server's objects API)."""
    packed = store._packed
    if packed is None:
        return None
    packed.reload()
    sizes = {d: size for d, (_, _, size) in packed._index().items()}
    for digest, size, _ in store._backend.loose_objects():
        sizes.setdefault(digest, size)
    return sizes


def transfer(
    source: ArtifactStore,
    target: ArtifactStore,
    digests: Iterable[str],
    progress: Callable[[int, int], None] | None = None,
) -> Transfer:
    """Copy the objects named by ``digests`` from ``source`` to ``target`` when missing there.

    Order matters to callers: a folder's manifest should come after its files. Packs are
    installed before the loose objects (manifests) that follow them, so a manifest never
    arrives before its files do.
    """
    wanted = list(dict.fromkeys(digests))
    have = object_sizes(target)
    known = object_sizes(source)
    missing: list[str] = []
    for digest in wanted:
        size = known[digest] if known is not None and digest in known else source.info(digest)
        there = have.get(digest) if have is not None else _stored_size(target, digest)
        if there != size:  # (a torn copy of another size is written again)
            missing.append(digest)
    done = len(wanted) - len(missing)
    total = 0
    src_packed = source._packed
    by_pack: dict[str, list[str]] = defaultdict(list)
    loose: list[str] = []
    for digest in missing:
        found = src_packed.locate(digest) if src_packed is not None else None
        if found is not None:
            by_pack[found[0]].append(digest)
        else:
            loose.append(digest)
    if by_pack and src_packed is not None:
        indexes = src_packed.packs()
        for pack_id, members in by_pack.items():
            total += _copy_pack(source, target, indexes[pack_id], members)
            done += len(members)
            if progress is not None:
                progress(done, len(wanted))
        target.flush()  # the packs are in before anything that names their objects
    for digest in loose:
        total += _copy_object(source, target, digest)
        done += 1
        if progress is not None and (done % 64 == 0 or done == len(wanted)):
            progress(done, len(wanted))
    target.flush()
    if progress is not None:
        progress(len(wanted), len(wanted))
    return Transfer(copied=len(missing), skipped=len(wanted) - len(missing), bytes=total)


def _stored_size(store: ArtifactStore, digest: str) -> int | None:
    return store.info(digest) if store.exists(digest) else None


def _copy_object(source: ArtifactStore, target: ArtifactStore, digest: str) -> int:
    size = source.info(digest)
    if size <= _IN_MEMORY:
        target.put_bytes(source.read_bytes(digest), sync=False)
        return size
    with tempfile.TemporaryDirectory() as folder:
        temp = source.get_file(digest, Path(folder) / "object")
        target.put_file(temp, sync=False)
    return size


def _copy_pack(
    source: ArtifactStore, target: ArtifactStore, index: PackIndex, members: list[str]
) -> int:
    """Copy ``members`` of one source pack: the whole pack when they are most of it."""
    wanted_bytes = sum(index.entries[d][1] for d in members)
    tgt_packed = target._packed
    if tgt_packed is not None and 2 * wanted_bytes >= index.pack_size - PACK_HEADER_SIZE:
        _copy_whole_pack(source, tgt_packed, index)
        return wanted_bytes
    located = [(*index.entries[d], d) for d in members]
    for digest, data in read_members(source._backend, index.pack_id, located):
        _verify(digest, data, f"pack {index.pack_id} of {source.url}")
        if tgt_packed is not None:
            tgt_packed.add(digest, data)
        else:
            target.put_bytes(data, sync=False)
    return wanted_bytes


def _copy_whole_pack(source: ArtifactStore, target: PackedObjects, index: PackIndex) -> None:
    src = source._backend
    local = src.pack_file(index.pack_id)
    staging = target._backend.pack_staging()
    fetched: str | None = None
    try:
        if local is None:
            os.makedirs(staging, exist_ok=True)
            fd, fetched = tempfile.mkstemp(prefix=".tmp-pack-", dir=staging)
            os.close(fd)
            os.remove(fetched)
            src.fetch_pack(index.pack_id, fetched)
            local = fetched
        with open(local, "rb") as file:
            data = file.read()
        where = f"pack {index.pack_id} of {source.url}"
        if len(data) != index.pack_size or hash_bytes(data) != index.pack_digest:
            raise ArtifactCorruptedError(f"{where} is corrupted: it does not match its index")
        if fetched is not None:  # from elsewhere: every object is checked, not only the pack
            view = memoryview(data)
            for digest, (offset, size) in index.entries.items():
                _verify(digest, view[offset : offset + size], where)
        index_bytes = src.read_index(index.pack_id)
        target.install(local, index_bytes, index.pack_id)
    finally:
        if fetched is not None and os.path.exists(fetched):
            os.remove(fetched)


def _verify(digest: str, data: bytes | memoryview, where: str) -> None:
    actual = hash_bytes(data)
    if actual != digest:
        raise ArtifactCorruptedError(
            f"object {digest} in {where} is corrupted: its bytes hash to {actual}"
        )
