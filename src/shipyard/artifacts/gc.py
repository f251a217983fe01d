"""Garbage collection of an artifact store: remove what nothing refers to, and repack.

The caller names the *roots* (digests something still refers to); a root that is a folder's
manifest keeps its files too. An object is removed only when it is not reachable from a root
**and** was last written or reused before the grace period (``older_than``): an add still
running has written objects that nothing refers to yet, and an add that found its bytes already
stored touched them (``ArtifactStore`` does this on every reuse), so neither loses anything.
Packs are rewritten into one pack of the objects kept (the new pack is installed before the old
ones are removed, so a reader always finds every kept object), and loose small objects are
packed with them. Files left by crashed writes are removed once older than the grace period.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shipyard.artifacts._packed import PackedObjects, read_members
from shipyard.artifacts.digest import hash_bytes
from shipyard.artifacts.packs import (
    PACK_HEADER_SIZE,
    PACK_MAX_BYTES,
    PACK_THRESHOLD,
    PackIndex,
    PackWriter,
)
from shipyard.artifacts.store import ArtifactStore
from shipyard.errors import ArtifactCorruptedError, InvalidArgumentError

__all__ = ["GcReport", "collect", "reachable"]

_MANIFEST_START = b'{"files":['
_MANIFEST_MAX = 256 << 20


@dataclass(frozen=True, slots=True)
class GcReport:
    """What a collection removed (or, with ``dry_run``, would remove)."""

    objects: int
    """Objects in the store before."""
    kept: int
    removed: int
    freed_bytes: int
    packs_before: int
    packs_after: int
    loose_packed: int
    """Small loose objects moved into a pack."""
    temporaries: int
    """Files of crashed or abandoned writes removed."""
    dry_run: bool


def reachable(store: ArtifactStore, roots: Iterable[str]) -> set[str]:
    """``roots`` plus the files of every root that is a folder's manifest (read and parsed;
    roots the store does not hold are kept as they are)."""
    live: set[str] = set()
    for digest in set(roots):
        live.add(digest)
        if not store.exists(digest):
            continue  # referenced but not here (never pushed, or pulled elsewhere)
        size = store.info(digest)
        if size > _MANIFEST_MAX or size < len(_MANIFEST_START):
            continue
        if not _prefix(store, digest).startswith(_MANIFEST_START):
            continue
        try:
            live.update(store.manifest_digests(digest))
        except InvalidArgumentError:  # a file whose bytes merely look like a manifest
            continue
    return live


def _prefix(store: ArtifactStore, digest: str) -> bytes:
    """The object's first bytes: enough to tell a manifest from a file without reading it."""
    packed = store._packed.locate(digest) if store._packed is not None else None
    if packed is not None:
        return store._backend.read_range(packed[0], packed[1], len(_MANIFEST_START))
    return store._backend.read_prefix(digest, len(_MANIFEST_START))


def collect(
    store: ArtifactStore,
    roots: Iterable[str],
    *,
    older_than: float = 3600.0,
    dry_run: bool = False,
    repack: bool = True,
    progress: Callable[[str], None] | None = None,
) -> GcReport:
    """Remove every object of ``store`` unreachable from ``roots`` and older than
    ``older_than`` seconds; with ``repack``, rewrite the packs (and small loose objects) into
    one pack of what is kept.

    Raises:
        InvalidArgumentError: the store cannot be collected from here (a Shipyard server's
            objects API: run gc on the server's machine).
    """
    backend = store._backend
    packed = store._packed
    if packed is None:
        raise InvalidArgumentError(
            f"cannot collect garbage in {store.url} from here: run `shipyard gc` where that "
            "store is a folder or an object-store URL (on the server's machine)"
        )
    say = progress or (lambda _: None)
    store.flush()
    cutoff = time.time() - older_than
    say("finding what is referenced")
    live = reachable(store, roots)
    packed.reload()
    packs = packed.packs()
    pack_times = {pack_id: backend.pack_stat(pack_id) for pack_id in packs}
    loose = {digest: (size, mtime) for digest, size, mtime in backend.loose_objects()}
    everything = set(loose).union(*(index.entries for index in packs.values()))

    def keep_packed(digest: str, pack_id: str) -> bool:
        return digest in live or pack_times[pack_id][1] > cutoff

    # (a filesystem that reports no modification time gives 0: such objects count as old)
    doomed_loose = [d for d, (_, mtime) in loose.items() if d not in live and mtime <= cutoff]
    doomed = set(doomed_loose)
    kept_packed: dict[str, tuple[str, int, int]] = {}
    for pack_id, index in packs.items():
        for digest, (offset, size) in index.entries.items():
            if keep_packed(digest, pack_id) and digest not in kept_packed:
                kept_packed[digest] = (pack_id, offset, size)
    small_loose = [d for d, (size, _) in loose.items() if size < PACK_THRESHOLD and d not in doomed]
    if repack:
        needs_repack = (
            len(packs) > 1
            or any(
                any(d not in kept_packed or kept_packed[d][0] != p for d in index.entries)
                for p, index in packs.items()
            )
            or bool(small_loose)
        )
    else:
        needs_repack = False
    freed = sum(loose[d][0] for d in doomed_loose)
    removed = set(doomed_loose)
    if needs_repack:
        removed.update(d for index in packs.values() for d in index.entries if d not in kept_packed)
        old_bytes = sum(size for size, _ in pack_times.values())
        new_bytes = PACK_HEADER_SIZE + sum(s for _, _, s in kept_packed.values())
        new_bytes += sum(loose[d][0] for d in small_loose if d not in kept_packed)
        freed += max(0, old_bytes - new_bytes)
    removed -= set(kept_packed)
    temporaries = [key for key, mtime in backend.temporaries() if mtime <= cutoff]
    report = GcReport(
        objects=len(everything),
        kept=len(everything - removed),
        removed=len(removed),
        freed_bytes=freed,
        packs_before=len(packs),
        packs_after=(1 if kept_packed or small_loose else 0) if needs_repack else len(packs),
        loose_packed=len([d for d in small_loose if d not in kept_packed]) if needs_repack else 0,
        temporaries=len(temporaries),
        dry_run=dry_run,
    )
    if dry_run:
        return report
    for key in temporaries:
        backend.remove_temporary(key)
    say(f"removing {len(doomed_loose)} unreferenced objects")
    for digest in doomed_loose:
        if backend.object_mtime(digest) > cutoff:
            continue  # reused by an add since we looked
        backend.delete_object(digest)
    if needs_repack:
        say(f"repacking {len(kept_packed) + len(small_loose)} objects")
        _repack(store, packs, pack_times, kept_packed, small_loose, cutoff)
    return report


def _repack(
    store: ArtifactStore,
    packs: dict[str, PackIndex],
    pack_times: dict[str, tuple[int, float]],
    kept_packed: dict[str, tuple[str, int, int]],
    small_loose: list[str],
    cutoff: float,
) -> None:
    backend = store._backend
    packed = store._packed
    if packed is None:  # checked by collect
        return
    writer = PackWriter(backend.pack_staging())
    new_ids: list[str] = []
    try:
        by_pack: dict[str, list[tuple[int, int, str]]] = {}
        for digest, (pack_id, offset, size) in kept_packed.items():
            by_pack.setdefault(pack_id, []).append((offset, size, digest))
        for pack_id, members in sorted(by_pack.items()):
            for digest, data in read_members(backend, pack_id, members):
                if hash_bytes(data) != digest:
                    raise ArtifactCorruptedError(
                        f"object {digest} in pack {pack_id} of {store.url} is corrupted; "
                        "nothing was removed"
                    )
                writer.add(digest, data)
                writer = _roll(packed, writer, new_ids)
        for digest in small_loose:
            if digest in kept_packed:
                continue
            writer.add(digest, store.read_bytes(digest))
            writer = _roll(packed, writer, new_ids)
        if writer.entries:
            temp, index, pack_id = writer.finish()
            packed.install(temp, index, pack_id)
            new_ids.append(pack_id)
        else:
            writer.abort()
    except BaseException:
        writer.abort()
        raise
    for pack_id in packs:
        if pack_id in new_ids:
            continue
        touched = backend.pack_stat(pack_id)[1]
        if touched > pack_times[pack_id][1] and touched > cutoff:
            continue  # reused since we looked: leave it (its objects are now twice, harmlessly)
        backend.delete_pack(pack_id)
    for digest in small_loose:
        backend.delete_object(digest)
    packed.reload()


def _roll(packed: PackedObjects, writer: PackWriter, new_ids: list[str]) -> PackWriter:
    """Install the pack being written once it is full, and start the next one."""
    if writer.size < PACK_MAX_BYTES:
        return writer
    temp, index, pack_id = writer.finish()
    packed.install(temp, index, pack_id)
    new_ids.append(pack_id)
    return PackWriter(os.path.dirname(temp))
