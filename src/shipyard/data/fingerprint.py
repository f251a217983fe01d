"""The digest a file or folder *would* have in the artifact store, computed without storing it
and without re-hashing files the stat cache already knows."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from shipyard.artifacts import canonical_bytes, hash_bytes, hash_file, list_files
from shipyard.data.statcache import RACY_WINDOW_NS, StatCache, stat_key
from shipyard.errors import NotFoundError

__all__ = ["Fingerprint", "cached_fingerprint", "fingerprint"]

_SMALL = 1 << 20


@dataclass(frozen=True, slots=True)
class Fingerprint:
    digest: str
    size: int
    files: int
    kind: str
    """``"file"`` or ``"dir"``."""
    hashed: int
    """Files that had to be read (not found unchanged in the stat cache)."""


def _hash(path: str, size: int) -> str:
    if size < _SMALL:
        with open(path, "rb") as file:
            return hash_bytes(file.read())
    return hash_file(path)


def fingerprint(path: Path, cache: StatCache) -> Fingerprint:
    """Digest of ``path`` as :meth:`ArtifactStore.put` would compute it, reading only the
    files the stat cache does not vouch for."""
    found = _fingerprint(path, cache, hash_missing=True)
    if found is None:  # pragma: no cover - hash_missing=True always answers
        raise AssertionError(path)
    return found


def cached_fingerprint(path: Path, cache: StatCache) -> Fingerprint | None:
    """The digest of ``path`` if the stat cache vouches for every file, else None; reads no
    file (a cheap "was exactly this content added before?")."""
    return _fingerprint(path, cache, hash_missing=False)


def _fingerprint(path: Path, cache: StatCache, *, hash_missing: bool) -> Fingerprint | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise NotFoundError(f"{path} does not exist") from None
    if not path.is_dir():
        key = stat_key(info)
        absolute = os.path.realpath(path)
        digest = cache.get(absolute, key)
        hashed = 0
        if digest is None:
            if not hash_missing:
                return None
            digest = _hash(absolute, info.st_size)
            cache.put_many([(absolute, key, digest)])
            hashed = 1
        return Fingerprint(digest, info.st_size, 1, "file", hashed)

    real = os.path.realpath(path)
    remembered = cache.folder(real)
    files = None
    if remembered is not None:  # the whole folder, unchanged since: no per-file lookup
        files = list_files(path)
        listing = _listing_key(files)
        if listing == remembered[0]:
            return Fingerprint(remembered[1], remembered[2], remembered[3], "dir", 0)
    # list_files reports real paths: look them up under the real folder, symlinks resolved.
    known = cache.lookup_under(real + os.sep)
    if not known and not hash_missing:
        return None  # nothing under it was ever hashed here: no need to list it
    if files is None:
        files = list_files(path)  # validated and sorted, as put_dir stores them
    triples = []
    fresh = []
    total = 0
    for relative, absolute, st in files:  # list_files gives absolute paths
        key = stat_key(st)
        cached = known.get(absolute)
        if cached is not None and cached[0] == key:
            digest = cached[1]
        elif not hash_missing:
            return None
        else:
            digest = _hash(absolute, st.st_size)
            fresh.append((absolute, key, digest))
        triples.append((relative, digest, st.st_size))
        total += st.st_size
    cache.put_many(fresh)
    digest = hash_bytes(canonical_bytes(triples))
    remember_folder(real, files, digest, total, cache)
    return Fingerprint(digest, total, len(triples), "dir", len(fresh))


def remember_folder(
    real: str,
    files: list[tuple[str, str, os.stat_result]],
    digest: str,
    size: int,
    cache: StatCache,
) -> None:
    """Remember the manifest digest of the folder ``real`` for exactly the listing ``files``
    (:func:`~shipyard.artifacts.list_files`, stats taken before the files were read), unless
    a file is within the racy window."""
    settled = time.time_ns() - RACY_WINDOW_NS
    if all(st.st_mtime_ns < settled for _, _, st in files):
        cache.put_folder(real, _listing_key(files), digest, size, len(files))


def _listing_key(files: list[tuple[str, str, os.stat_result]]) -> str:
    """A digest of every file's path and stat key: equal only for an unchanged folder."""
    text = "\n".join(
        f"{relative}\0{absolute}\0{st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}"
        for relative, absolute, st in files
    )
    return hash_bytes(text.encode("utf-8", "surrogateescape"))
