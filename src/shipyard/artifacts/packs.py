"""Pack files: many small objects in one file, found through a sorted index, as git does.

Adding a folder of 20,000 small files would otherwise create 20,000 object files (100-200 µs
each on an ordinary disk, and as many requests on object storage). Objects smaller than
:data:`PACK_THRESHOLD` written in a batch (``sync=False`` followed by ``flush``) go into one
pack instead::

    packs/pack-<id>.pack    b"SHIPPACK" + version + the objects' bytes, back to back
    packs/pack-<id>.idx     b"SHIPIDX\\0" + version + count + the pack's size and BLAKE3 +
                            (digest, offset, size) records sorted by digest
    packs/.tmp-pack-*       a pack being written (never read; gc removes old ones)

``<id>`` is the BLAKE3 of the index's bytes, and the index records the BLAKE3 of the pack, so
a pack's name vouches for its index and the index for the pack. The pack is written under a
temporary name, synced and renamed; only then is its index written (temp name, sync, rename).
A pack without an index is invisible, so a crash at any point leaves the store as it was
before the batch or as it is after it. Reads still hash every object they return.
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from blake3 import blake3

from shipyard.errors import ArtifactCorruptedError

__all__ = [
    "PACK_MAX_BYTES",
    "PACK_THRESHOLD",
    "PackIndex",
    "PackWriter",
    "index_name",
    "indexed_packs",
    "is_pack_id",
    "pack_name",
]

PACK_THRESHOLD = 64 << 10
"""Objects smaller than this (64 KiB) are packed when written in a batch; larger ones stay one
file each (a pack would only add a copy)."""

PACK_MAX_BYTES = 128 << 20
"""A pack is closed and a new one started past this size, so an interrupted push or pull loses
at most one pack's progress."""

_MAGIC = b"SHIPPACK"
_INDEX_MAGIC = b"SHIPIDX\0"
_VERSION = 1
_PACK_HEADER = struct.Struct(">8sII")  # magic, version, reserved
_INDEX_HEADER = struct.Struct(">8sIIQ32s")  # magic, version, count, pack size, pack BLAKE3
_RECORD = struct.Struct(">32sQQ")  # digest, offset, size
PACK_HEADER_SIZE = _PACK_HEADER.size
_BUFFER = 1 << 20


def pack_name(pack_id: str) -> str:
    return f"pack-{pack_id}.pack"


def index_name(pack_id: str) -> str:
    return f"pack-{pack_id}.idx"


def is_pack_id(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def indexed_packs(names: Iterable[str]) -> list[str]:
    """The ids of the packs whose index is among the file ``names`` of a packs folder, sorted
    (a pack without its index is not there yet)."""
    ids = (name[5:-4] for name in names if name.startswith("pack-") and name.endswith(".idx"))
    return sorted(pack_id for pack_id in ids if is_pack_id(pack_id))


@dataclass(frozen=True)
class PackIndex:
    """Where each object of one pack lies: ``entries[digest] = (offset, size)``."""

    pack_id: str
    pack_size: int
    pack_digest: str
    entries: dict[str, tuple[int, int]]

    @classmethod
    def build(
        cls, pack_size: int, pack_digest: str, entries: dict[str, tuple[int, int]]
    ) -> tuple[PackIndex, bytes]:
        """Return the index of a finished pack and its bytes (whose BLAKE3 is the pack's id)."""
        records = b"".join(
            _RECORD.pack(bytes.fromhex(digest), *entries[digest]) for digest in sorted(entries)
        )
        data = (
            _INDEX_HEADER.pack(
                _INDEX_MAGIC, _VERSION, len(entries), pack_size, bytes.fromhex(pack_digest)
            )
            + records
        )
        pack_id = blake3(data).hexdigest()
        return cls(pack_id, pack_size, pack_digest, dict(entries)), data

    @classmethod
    def from_bytes(cls, pack_id: str, data: bytes, where: str) -> PackIndex:
        """Parse an index read from ``where``, checking it against its name.

        Raises:
            ArtifactCorruptedError: the bytes do not hash to ``pack_id``, or are not an index.
        """
        if blake3(data).hexdigest() != pack_id:
            raise ArtifactCorruptedError(
                f"pack index {where} is corrupted: its bytes do not hash to its name"
            )
        try:
            magic, version, count, pack_size, pack_digest = _INDEX_HEADER.unpack_from(data)
        except struct.error:
            raise ArtifactCorruptedError(f"pack index {where} is truncated") from None
        expected = _INDEX_HEADER.size + count * _RECORD.size
        if magic != _INDEX_MAGIC or version != _VERSION or len(data) != expected:
            raise ArtifactCorruptedError(
                f"pack index {where} is not a version-{_VERSION} Shipyard pack index"
            )
        entries = {
            raw.hex(): (offset, size)
            for raw, offset, size in _RECORD.iter_unpack(memoryview(data)[_INDEX_HEADER.size :])
        }
        return cls(pack_id, pack_size, pack_digest.hex(), entries)


class PackWriter:
    """Append objects to a new pack under a temporary name in ``folder``.

    :meth:`finish` returns the temporary file, the index bytes and the pack's id; the caller
    installs them (pack first, then index). Objects already added can be read back before that.
    """

    def __init__(self, folder: str) -> None:
        self.path = os.path.join(folder, f".tmp-pack-{os.getpid()}-{uuid.uuid4().hex}")
        try:
            self._file = open(self.path, "x+b", buffering=_BUFFER)  # few large writes; read back
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
            self._file = open(self.path, "x+b", buffering=_BUFFER)
        self._pending = bytearray(_PACK_HEADER.pack(_MAGIC, _VERSION, 0))
        """Bytes not yet written nor hashed: objects are written and hashed a megabyte at a
        time (one call per small object cost a third of adding 20,000 of them)."""
        self._hasher = blake3()
        self._offset = len(self._pending)
        self.entries: dict[str, tuple[int, int]] = {}

    @property
    def size(self) -> int:
        return self._offset

    def add(self, digest: str, data: bytes) -> None:
        if digest in self.entries:
            return
        self._pending += data
        self.entries[digest] = (self._offset, len(data))
        self._offset += len(data)
        if len(self._pending) >= _BUFFER:
            self._drain()

    def _drain(self) -> None:
        if self._pending:
            self._file.write(self._pending)
            self._hasher.update(self._pending)
            self._pending.clear()

    def read(self, digest: str) -> bytes:
        offset, size = self.entries[digest]
        self._drain()
        self._file.flush()
        return os.pread(self._file.fileno(), size, offset)

    def finish(self, *, sync: bool = True) -> tuple[str, bytes, str]:
        """Close the pack; return ``(temporary path, index bytes, pack id)``."""
        self._drain()
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())
        self._file.close()
        index, data = PackIndex.build(self._offset, self._hasher.hexdigest(), self.entries)
        return self.path, data, index.pack_id

    def abort(self) -> None:
        self._file.close()
        try:
            os.remove(self.path)
        except OSError:
            pass
