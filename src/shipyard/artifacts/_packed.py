"""The packed side of one artifact store: which objects its packs hold, and the pack being
written. The index of every pack is read once, on first use, into one dictionary."""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator

from shipyard.artifacts._backends import ObjectBackend
from shipyard.artifacts.packs import PACK_MAX_BYTES, PackIndex, PackWriter
from shipyard.errors import ArtifactCorruptedError, NotFoundError

__all__ = ["PackedObjects", "read_members"]

log = logging.getLogger(__name__)

_SPAN_GAP = 256 << 10
"""Objects of one pack closer than this are read in one span (the bytes between are cheaper
than another request)."""
_ROUND_BYTES = 64 << 20
"""At most this much of a pack is requested (and held in memory) at once."""


class PackedObjects:
    """Packed objects of ``backend``: lookups, reads, and batched writes into a new pack."""

    def __init__(self, backend: ObjectBackend) -> None:
        self._backend = backend
        self._where: dict[str, tuple[str, int, int]] | None = None  # digest -> pack, offset, size
        self._packs: dict[str, PackIndex] = {}
        self._writer: PackWriter | None = None
        self._touched: set[str] = set()
        self._lock = threading.Lock()

    # Reading --------------------------------------------------------------------------

    def _index(self) -> dict[str, tuple[str, int, int]]:
        if self._where is None:
            self.reload()
        return self._where or {}

    def reload(self) -> bool:
        """Read the indexes of packs not seen yet (and forget removed ones); True if anything
        changed."""
        ids = self._backend.list_packs()
        before = set(self._packs)
        changed = self._where is None or before != set(ids)
        for pack_id in set(ids) - before:
            shown = f"{self._backend.url}/packs/{pack_id}"
            try:
                self._packs[pack_id] = PackIndex.from_bytes(
                    pack_id, self._backend.read_index(pack_id), shown
                )
            except ArtifactCorruptedError as exc:
                log.warning("ignoring %s", exc)  # its objects are simply not there
            except (FileNotFoundError, NotFoundError):
                continue  # removed by gc meanwhile
        for pack_id in before - set(ids):
            del self._packs[pack_id]
        if changed:
            where: dict[str, tuple[str, int, int]] = {}
            for pack_id in sorted(self._packs):
                for digest, (offset, size) in self._packs[pack_id].entries.items():
                    where[digest] = (pack_id, offset, size)
            self._where = where
        return changed

    def packs(self) -> dict[str, PackIndex]:
        self._index()
        return dict(self._packs)

    def size(self, digest: str) -> int | None:
        """The object's size if a pack (or the pack being written) holds it."""
        writer = self._writer
        if writer is not None and digest in writer.entries:
            return writer.entries[digest][1]
        found = self._index().get(digest)
        return None if found is None else found[2]

    def locate(self, digest: str) -> tuple[str, int, int] | None:
        return self._index().get(digest)

    def read(self, digest: str) -> bytes | None:
        """The object's bytes (unverified), or None when no pack holds it."""
        with self._lock:
            writer = self._writer
            if writer is not None and digest in writer.entries:
                return writer.read(digest)
        for attempt in range(2):
            found = self._index().get(digest)
            if found is None:
                if attempt == 0 and self.reload():
                    continue
                return None
            pack_id, offset, size = found
            try:
                return self._backend.read_range(pack_id, offset, size)
            except (FileNotFoundError, NotFoundError):
                pass  # repacked by gc since we read the index: look again
            self.reload()
        return None

    def read_remote(self, digests: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """``(digest, bytes)`` (unverified) of the ``digests`` that sit in packs *not* on this
        machine, read as a few large spans per pack instead of one request per object; the
        others (loose, local packs, not found) are not yielded. A pack that vanished meanwhile
        (gc) is skipped: its objects are then read one by one, as any object."""
        by_pack: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
        for digest in digests:
            found = self._index().get(digest)
            if found is not None:
                by_pack[found[0]].append((found[1], found[2], digest))
        for pack_id, members in by_pack.items():
            if self._backend.pack_file(pack_id) is not None:
                continue
            try:
                yield from read_members(self._backend, pack_id, members)
            except (FileNotFoundError, NotFoundError):
                continue

    def digests(self) -> set[str]:
        return set(self._index())

    def freshen(self, digest: str) -> bool:
        """Touch the pack holding ``digest`` (once per pack), so that gc's grace period covers
        it; False when no pack holds it any more (gc removed it since the index was read)."""
        writer = self._writer
        if writer is not None and digest in writer.entries:
            return True
        for attempt in range(2):
            found = self._index().get(digest)
            if found is None:
                return False
            if found[0] in self._touched or self._backend.freshen(pack_id=found[0]):
                self._touched.add(found[0])
                return True
            if attempt == 0:
                self.reload()
        return False

    # Writing --------------------------------------------------------------------------

    def add(self, digest: str, data: bytes) -> None:
        """Append the object to the pack being written (committed by :meth:`commit`)."""
        with self._lock:
            if self._writer is None:
                self._writer = PackWriter(self._backend.pack_staging())
            self._writer.add(digest, data)
            full = self._writer.size >= PACK_MAX_BYTES
        if full:
            self.commit()

    @property
    def pending(self) -> bool:
        return self._writer is not None

    def commit(self, *, sync: bool = True) -> str | None:
        """Install the pack being written (synced, renamed, then its index); return its id."""
        with self._lock:
            writer, self._writer = self._writer, None
            if writer is None:
                return None
            temp, index, pack_id = writer.finish(sync=sync)
            try:
                self.install(temp, index, pack_id, sync=sync)
            finally:
                if os.path.exists(temp):
                    try:
                        os.remove(temp)
                    except OSError:
                        pass
            return pack_id

    def install(self, temp: str, index: bytes, pack_id: str, *, sync: bool = True) -> None:
        """Install a finished pack (the local file ``temp``) and its index, and know of it."""
        parsed = PackIndex.from_bytes(pack_id, index, f"{self._backend.url}/packs/{pack_id}")
        self._backend.install_pack(temp, index, pack_id, sync=sync)
        self._packs[pack_id] = parsed
        if self._where is not None:
            for digest, (offset, size) in parsed.entries.items():
                self._where[digest] = (pack_id, offset, size)
        self._touched.add(pack_id)

    def abort(self) -> None:
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.abort()


def read_members(
    backend: ObjectBackend, pack_id: str, members: Iterable[tuple[int, int, str]]
) -> Iterator[tuple[str, bytes]]:
    """``(digest, bytes)`` (unverified) of the ``(offset, size, digest)`` members of one pack,
    in offset order: neighbours are read as one span, and at most ``_ROUND_BYTES`` is asked
    for (and held) at once, so a remote pack costs a few requests, not one per object.

    Raises:
        NotFoundError: (or FileNotFoundError) the pack is gone; what was yielded stands.
    """
    for spans in _rounds(sorted(members)):
        chunks = backend.read_ranges(pack_id, [(start, end - start) for start, end, _ in spans])
        for (start, _, inside), chunk in zip(spans, chunks, strict=True):
            for offset, size, digest in inside:
                yield digest, chunk[offset - start : offset - start + size]


_Span = tuple[int, int, list[tuple[int, int, str]]]
"""start, end, and the (offset, size, digest) objects inside."""


def _rounds(members: list[tuple[int, int, str]]) -> Iterator[list[_Span]]:
    """Sorted objects of one pack as spans, grouped into rounds of at most ``_ROUND_BYTES``."""
    spans: list[_Span] = []
    for offset, size, digest in members:
        last = spans[-1] if spans else None
        near = last is not None and offset - last[1] <= _SPAN_GAP
        if last is not None and near and offset + size - last[0] <= _ROUND_BYTES:
            spans[-1] = (last[0], max(last[1], offset + size), [*last[2], (offset, size, digest)])
        else:
            spans.append((offset, offset + size, [(offset, size, digest)]))
    batch: list[_Span] = []
    held = 0
    for span in spans:
        if batch and held + span[1] - span[0] > _ROUND_BYTES:
            yield batch
            batch, held = [], 0
        batch.append(span)
        held += span[1] - span[0]
    if batch:
        yield batch
