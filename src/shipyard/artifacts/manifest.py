"""Directory manifests: a folder stored in the artifact store is the list of its files.

A manifest is stored as an ordinary object whose bytes are canonical JSON, so the same files
(same paths, same bytes) always give the same manifest digest::

    {"files":[{"digest":"<64 hex>","path":"a/b.txt","size":3}],"format":"shipyard.manifest/1"}

Keys are sorted, there is no whitespace, entries are sorted by path and non-ASCII characters are
written as ``\\uXXXX`` escapes. Only files are listed: empty folders are not recorded.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shipyard.artifacts.digest import is_digest
from shipyard.artifacts.paths import safe_relative_path
from shipyard.errors import InvalidArgumentError

__all__ = ["MANIFEST_FORMAT", "Manifest", "ManifestEntry", "canonical_bytes"]

MANIFEST_FORMAT = "shipyard.manifest/1"

_ENTRY_KEYS = frozenset({"path", "digest", "size"})
_MANIFEST_KEYS = frozenset({"format", "files"})


@dataclass(frozen=True)
class ManifestEntry:
    """One file of a stored folder.

    Attributes:
        path: where the file sits inside the folder, as a normalised relative POSIX path.
        digest: the digest of the file's bytes.
        size: the file's size in bytes.

    Raises:
        UnsafePathError: if ``path`` could escape the folder (see ``safe_relative_path``).
        InvalidArgumentError: if ``path`` is not normalised, ``digest`` is malformed or
            ``size`` is not a non-negative integer.
    """

    path: str
    digest: str
    size: int

    def __post_init__(self) -> None:
        clean = safe_relative_path(self.path)
        if clean != self.path:
            raise InvalidArgumentError(
                f"manifest path {self.path!r} is not in normal form; write it as {clean!r}"
            )
        if not is_digest(self.digest):
            raise InvalidArgumentError(
                f"manifest entry {self.path!r} has a malformed digest {self.digest!r}"
            )
        if type(self.size) is not int or self.size < 0:
            raise InvalidArgumentError(
                f"manifest entry {self.path!r} has an invalid size {self.size!r}"
            )


def listed_entry(path: str, digest: str, size: int) -> ManifestEntry:
    """A :class:`ManifestEntry` for a file that :func:`~shipyard.artifacts.list_files` listed
    and the store just hashed: its path is already checked and its digest made here, so the
    checks are not repeated (20,000 files add ~0.1 s of them)."""
    entry = object.__new__(ManifestEntry)
    object.__setattr__(entry, "path", path)
    object.__setattr__(entry, "digest", digest)
    object.__setattr__(entry, "size", size)
    return entry


@dataclass(frozen=True)
class Manifest:
    """The files of a stored folder, sorted by path.

    Entries given in any order are sorted on construction. Two entries with the same path, or a
    file that is also used as a folder (``"a"`` and ``"a/b"``), are refused with
    :class:`~shipyard.errors.InvalidArgumentError`.

    Attributes:
        entries: the files, sorted by path.
    """

    entries: tuple[ManifestEntry, ...] = ()

    def __post_init__(self) -> None:
        for entry in self.entries:
            if not isinstance(entry, ManifestEntry):
                raise InvalidArgumentError(f"manifest entries must be ManifestEntry, not {entry!r}")
        entries = tuple(sorted(self.entries, key=lambda entry: entry.path))
        paths = [entry.path for entry in entries]
        seen = set(paths)
        if len(seen) != len(paths):
            duplicate = next(a for a, b in itertools.pairwise(paths) if a == b)
            raise InvalidArgumentError(f"manifest lists {duplicate!r} twice")
        for path in paths:
            parts = path.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder in seen:
                    raise InvalidArgumentError(
                        f"manifest lists {folder!r} as a file and as the folder of {path!r}"
                    )
        object.__setattr__(self, "entries", entries)

    @property
    def file_count(self) -> int:
        """The number of files."""
        return len(self.entries)

    @property
    def total_size(self) -> int:
        """The total size of all files, in bytes."""
        return sum(entry.size for entry in self.entries)

    def to_bytes(self) -> bytes:
        """Return the canonical JSON form of this manifest (see the module docstring)."""
        return canonical_bytes((e.path, e.digest, e.size) for e in self.entries)

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse and validate a manifest written by :meth:`to_bytes`.

        Every path is checked with ``safe_relative_path`` and every digest with ``is_digest``,
        so a tampered manifest cannot name a file outside the folder it is materialised into.
        The bytes must be exactly canonical, so one folder has exactly one manifest digest.

        Raises:
            UnsafePathError: if an entry's path could escape the folder.
            InvalidArgumentError: if ``data`` is not a canonical Shipyard manifest.
        """
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidArgumentError(f"not a Shipyard manifest: invalid JSON ({exc})") from exc
        if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
            raise InvalidArgumentError(
                f"not a Shipyard manifest: expected a JSON object with format {MANIFEST_FORMAT!r}"
            )
        if set(document) != _MANIFEST_KEYS or not isinstance(document["files"], list):
            raise InvalidArgumentError(
                "not a Shipyard manifest: expected exactly the keys 'format' and 'files' (a list)"
            )
        manifest = cls(tuple(_parse_entry(item) for item in document["files"]))
        if manifest.to_bytes() != bytes(data):
            raise InvalidArgumentError(
                "manifest is not in canonical form (sorted keys and entries, no whitespace)"
            )
        return manifest


def _parse_entry(item: Any) -> ManifestEntry:
    if not isinstance(item, dict) or set(item) != _ENTRY_KEYS:
        raise InvalidArgumentError(
            f"not a Shipyard manifest: entry {item!r} must have exactly 'path', 'digest', 'size'"
        )
    path, digest, size = item["path"], item["digest"], item["size"]
    if not isinstance(path, str) or not isinstance(digest, str):
        raise InvalidArgumentError(
            f"not a Shipyard manifest: entry {item!r} has a non-string field"
        )
    return ManifestEntry(path=path, digest=digest, size=size)


def canonical_bytes(files: Iterable[tuple[str, str, int]]) -> bytes:
    """The canonical manifest bytes for ``(path, digest, size)`` triples already sorted by
    path and validated: what :meth:`Manifest.to_bytes` returns, without building entries
    (``data status`` on 20,000 files needs only the digest)."""
    document = {
        "format": MANIFEST_FORMAT,
        "files": [{"path": p, "digest": d, "size": s} for p, d, s in files],
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii")
