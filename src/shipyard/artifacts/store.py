"""The content-addressed artifact store: bytes stored once, under their BLAKE3 digest.

Example::

    store = ArtifactStore(".shipyard/artifacts")      # or "s3://bucket/prefix"
    info = store.put("model/")                          # a file or a whole folder
    store.get(info.digest, "restored/", is_dir=info.is_dir)

Guarantees, on every backend:

* **Dedup.** Identical bytes are stored once; storing them again writes nothing.
* **Atomic writes.** An object appears under its final name complete or not at all; a file
  written by :meth:`ArtifactStore.get_file` appears at its destination complete or not at all.
* **Verified reads.** Every read hashes the bytes and raises
  :class:`~shipyard.errors.ArtifactCorruptedError` when they do not match their digest.
* **Path safety.** Manifest paths and symlinks can never make Shipyard read or write outside
  the folder being stored or materialised.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from shipyard.artifacts._backends import FsspecBackend, LocalBackend, ObjectBackend
from shipyard.artifacts._packed import PackedObjects
from shipyard.artifacts.digest import hash_bytes, hash_file, is_digest
from shipyard.artifacts.listing import list_files, stat_path
from shipyard.artifacts.manifest import Manifest, ManifestEntry, listed_entry
from shipyard.artifacts.packs import PACK_THRESHOLD
from shipyard.artifacts.paths import resolve_inside
from shipyard.errors import (
    ArtifactCorruptedError,
    InvalidArgumentError,
    NotFoundError,
    UnsafePathError,
)

__all__ = ["ArtifactStore", "ObjectInfo", "list_files"]

StrPath = str | os.PathLike[str]

# Files below this size are read once and stored from memory: one read, one hash, and the
# stored bytes are by construction the hashed ones.
_SMALL_FILE = 1 << 20


@dataclass(frozen=True)
class ObjectInfo:
    """What :meth:`ArtifactStore.put` stored.

    Attributes:
        digest: the object's digest; for a folder, the digest of its manifest.
        size: bytes of the file, or total bytes of all files for a folder.
        is_dir: True when ``digest`` names a manifest (see :class:`Manifest`).
        file_count: 1 for a file, the number of files for a folder.
        stored: False when nothing was written because identical bytes were already stored.
    """

    digest: str
    size: int
    is_dir: bool = False
    file_count: int = 1
    stored: bool = True


class ArtifactStore:
    """A content-addressed store of files and folders in a local folder or an fsspec URL.

    Args:
        url: a local folder (created on the first write), a ``file://`` URL, any fsspec
            URL such as ``s3://bucket/prefix`` or ``memory://name``, or a Shipyard server's
            ``http(s)://host/api/v1/objects``. Local folders use plain ``os`` calls; fsspec
            and httpx are imported on first use.
        token: the API token for a server with ``--auth``.

    Raises:
        InvalidArgumentError: if ``url`` is empty, or its fsspec protocol is not installed.
    """

    def __init__(self, url: StrPath, *, token: str | None = None) -> None:
        self._backend: ObjectBackend
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            from shipyard.artifacts._http import HttpBackend

            self._backend = HttpBackend(url, token)
        elif isinstance(url, os.PathLike):
            self._backend = LocalBackend(os.fspath(url))
        elif not isinstance(url, str) or not url:
            raise InvalidArgumentError(f"artifact store URL must be a non-empty string: {url!r}")
        elif url.startswith("file://") and len(url) > len("file://"):
            self._backend = LocalBackend(url[len("file://") :])
        elif "://" in url:
            self._backend = FsspecBackend(url)
        else:
            self._backend = LocalBackend(url)
        self._packed = PackedObjects(self._backend) if self._backend.supports_packs else None

    @property
    def url(self) -> str:
        """The store's location: an absolute folder path, or the fsspec URL."""
        return self._backend.url

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    def put_bytes(self, data: bytes, *, sync: bool = True) -> ObjectInfo:
        """Store ``data`` and return its digest and size.

        ``sync=False`` defers making the object durable until :meth:`flush`; objects under
        :data:`~shipyard.artifacts.packs.PACK_THRESHOLD` written that way go into one pack.
        """
        digest = hash_bytes(data)
        if self._reusable(digest, len(data)):
            return ObjectInfo(digest=digest, size=len(data), stored=False)
        self._write(digest, data, sync=sync)
        return ObjectInfo(digest=digest, size=len(data))

    def _write(self, digest: str, data: bytes, *, sync: bool) -> None:
        if not sync and self._packed is not None and len(data) < PACK_THRESHOLD:
            self._packed.add(digest, data)
        else:
            self._backend.write_bytes(digest, data, sync=sync)

    def _stored_size(self, digest: str) -> int | None:
        if self._packed is not None:
            size = self._packed.size(digest)
            if size is not None:
                return size
        return self._backend.stored_size(digest)

    def _reusable(self, digest: str, size: int) -> bool:
        """Whether a stored object can stand for new bytes with this digest and size.

        An object of another size is a torn write from a crash, and a hard-linked object whose
        bytes no longer hash to its name was written through its other name: both are
        stored again instead of being trusted. A reused object is touched, so that a garbage
        collection running meanwhile counts it as new (its grace period) until the caller has
        recorded it.
        """
        if self._packed is not None and self._packed.size(digest) == size:
            if self._packed.freshen(digest):
                return True
        if self._backend.stored_size(digest) != size:
            return False
        if self._backend.shared(digest):
            location = self._backend.location(digest)
            if hash_file(location) != digest:
                return False
        self._backend.freshen(digest=digest)
        return True

    def close(self) -> None:
        """Install the pack being written, if any, and release connections."""
        try:
            if self._packed is not None:
                self._packed.commit()
        finally:
            self._backend.close()

    def flush(self) -> None:
        """Make objects stored with ``sync=False`` durable: install the pack being written and
        sync the rest (one ``sync`` for all of them)."""
        if self._packed is not None:
            self._packed.commit()
        self._backend.flush()

    def put_file(self, path: StrPath, *, link: bool = False, sync: bool = True) -> ObjectInfo:
        """Store the file at ``path`` (a symlink is followed).

        Files under 1 MiB are read once and stored from that read. Into a local store, a
        larger file is copied (a reflink where the filesystem has them) and hashed in the same
        pass, then given its name; if the store already held it, the copy is dropped. Elsewhere
        the file is hashed first, nothing is written if the store holds it, and the copy is
        hashed again before it takes its name.

        Raises:
            NotFoundError: if ``path`` does not exist.
            InvalidArgumentError: if ``path`` is a folder or not a regular file.
            ArtifactCorruptedError: if the file changed while it was being stored (nothing is
                stored).
        """
        source, size = _regular_file(path)
        if size < _SMALL_FILE and not link:
            with open(source, "rb") as file:
                return self.put_bytes(file.read(), sync=sync)
        if link:
            # The object will share the file's inode: make the file read-only *before*
            # hashing it, so that an ordinary write fails instead of silently changing the
            # stored version (a writer that already holds the file open is not stopped).
            mode = stat.S_IMODE(os.stat(source).st_mode)
            os.chmod(source, mode & ~0o222)
        if not link and isinstance(self._backend, LocalBackend):
            # One pass over the bytes instead of three (hash, copy, hash the copy): the cost
            # of a plain copy. A file already stored costs a copy that is dropped unsynced.
            temp, digest, size = self._backend.stage_file(source)
            if self._reusable(digest, size):
                os.remove(temp)
                return ObjectInfo(digest=digest, size=size, stored=False)
            self._backend.install_staged(temp, digest, sync=sync)
            return ObjectInfo(digest=digest, size=size)
        digest = hash_file(source)
        if self._reusable(digest, size):
            return ObjectInfo(digest=digest, size=size, stored=False)
        if link:
            if self._backend.link_file(digest, source, sync=sync):
                return ObjectInfo(digest=digest, size=size)
            os.chmod(source, mode)  # copying after all: leave the file as it was
        size = self._backend.write_file(digest, source, sync=sync)
        return ObjectInfo(digest=digest, size=size)

    def put_dir(
        self,
        path: StrPath,
        *,
        link: bool = False,
        on_file: Callable[[str, os.stat_result, str], None] | None = None,
        progress: Callable[[int, int], None] | None = None,
        listing: list[tuple[str, str, os.stat_result]] | None = None,
    ) -> ObjectInfo:
        """Store every regular file under ``path``, recursively, then the folder's manifest.

        A symlink whose target resolves inside ``path`` is stored as the file (or folder) it
        points to; one pointing outside is refused. Empty folders are not recorded, and an
        empty folder gives an empty manifest. Every path is checked before anything is stored.

        ``on_file(path, stat, digest)`` is called for each file with the ``stat`` taken
        *before* it was read, so a cache keyed by it can never pair a digest with a newer
        version of the file. ``progress(done, total)`` is called every 256 files and at the end.
        ``listing``: ``list_files(path)``, when the caller has taken it already.

        Returns:
            ``is_dir=True``, the manifest's digest, the total size and number of files;
            ``stored`` is False only when nothing at all was written.

        Raises:
            NotFoundError: if ``path`` does not exist, or holds a broken symlink.
            InvalidArgumentError: if ``path`` is not a folder, or holds a socket, FIFO or
                device, or a symlink loop.
            UnsafePathError: if a symlink points outside ``path``, or a file name is not a
                portable artifact path (it contains a backslash, for example).
        """
        files = list_files(path) if listing is None else listing
        entries: list[ManifestEntry] = []
        stored = False
        # Which loose-object folders exist, listed once: a new small object whose folder is
        # not there is not stored loose, and goes to the pack without a stat of its own. (A
        # folder another process creates meanwhile can only cost a duplicate, never a loss.)
        loose = self._backend.loose_prefixes() if self._packed is not None else None
        # Files are written without a sync each; one flush makes them all durable before the
        # manifest that names them is written.
        for relative, source, info_before in files:
            if info_before.st_size < _SMALL_FILE and not link:  # no second stat
                info = self._put_small(_read_small(source, info_before.st_size), loose)
            else:
                info = self.put_file(source, link=link, sync=False)
            if on_file is not None:
                on_file(source, info_before, info.digest)
            if progress is not None and (len(entries) % 256 == 0 or len(entries) == len(files)):
                progress(len(entries), len(files))
            entries.append(listed_entry(relative, info.digest, info.size))
            stored = stored or info.stored
        self.flush()
        manifest = Manifest(tuple(entries))
        manifest_info = self.put_bytes(manifest.to_bytes())
        return ObjectInfo(
            digest=manifest_info.digest,
            size=manifest.total_size,
            is_dir=True,
            file_count=manifest.file_count,
            stored=stored or manifest_info.stored,
        )

    def _put_small(self, data: bytes, loose: frozenset[str] | None) -> ObjectInfo:
        """``put_bytes(data, sync=False)`` for a batch (see :meth:`put_dir`)."""
        if loose is None or self._packed is None or len(data) >= PACK_THRESHOLD:
            return self.put_bytes(data, sync=False)
        digest = hash_bytes(data)
        if digest[:2] in loose or self._packed.size(digest) is not None:
            if self._reusable(digest, len(data)):
                return ObjectInfo(digest=digest, size=len(data), stored=False)
        self._packed.add(digest, data)
        return ObjectInfo(digest=digest, size=len(data))

    def put(self, path: StrPath, *, link: bool = False) -> ObjectInfo:
        """Store a file with :meth:`put_file` or a folder with :meth:`put_dir`.

        ``link=True`` hard-links local files into a local store instead of copying them (and
        makes them read-only); it falls back to a copy where a link is impossible.
        """
        mode = stat_path(path).st_mode
        if stat.S_ISDIR(mode):
            return self.put_dir(path, link=link)
        return self.put_file(path, link=link)

    def local_path(self, digest: str) -> Path | None:
        """The object's file on this machine (read-only; never write to it), or None when the
        store is not a local folder or the object is missing. Its bytes are not verified."""
        if not isinstance(self._backend, LocalBackend):
            return None
        location = Path(self._backend.location(_checked(digest)))
        return location if location.is_file() else None  # a packed object has no file

    def exists(self, digest: str) -> bool:
        """Return whether an object with this digest is stored (its bytes are not checked)."""
        return self._current_size(_checked(digest)) is not None

    def _current_size(self, digest: str) -> int | None:
        """:meth:`_stored_size`, reading the pack indexes again on a miss: another process
        (``shipyard gc``) may have moved the object into a pack since they were read."""
        size = self._stored_size(digest)
        if size is None and self._packed is not None and self._packed.reload():
            size = self._stored_size(digest)
        return size

    def info(self, digest: str) -> int:
        """Return the size in bytes of the stored object (for a folder, of its manifest).

        Raises:
            NotFoundError: if the object is not stored.
        """
        size = self._current_size(_checked(digest))
        if size is None:
            raise NotFoundError(f"no object {digest} in artifact store {self.url}")
        return size

    def read_bytes(self, digest: str) -> bytes:
        """Return the object's bytes after checking that they hash to ``digest``.

        Raises:
            NotFoundError: if the object is not stored.
            ArtifactCorruptedError: if the stored bytes do not match ``digest``.
        """
        data = self._read(_checked(digest))
        actual = hash_bytes(data)
        if actual != digest:
            raise self._corrupted(digest, actual)
        return data

    def manifest_digests(self, digest: str) -> list[str]:
        """The digests of the files of the folder stored as ``digest``, in manifest order:
        what a transfer or a collection needs, without the path checks and canonical form
        that :meth:`read_manifest` checks before anything is written from it.

        Raises:
            NotFoundError: if the object is not stored.
            ArtifactCorruptedError: if the stored bytes do not match ``digest``.
            InvalidArgumentError: if the object is not a manifest.
        """
        import json

        from shipyard.artifacts.manifest import MANIFEST_FORMAT

        try:
            document = json.loads(self.read_bytes(digest))
            if document.get("format") != MANIFEST_FORMAT:
                raise ValueError("no manifest format")
            found = [str(entry["digest"]) for entry in document["files"]]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidArgumentError(f"object {digest} is not a Shipyard manifest") from exc
        for item in found:
            _checked(item)
        return found

    def _read(self, digest: str) -> bytes:
        """The object's bytes, unverified, from a pack or its own file."""
        if self._packed is not None:
            data = self._packed.read(digest)
            if data is not None:
                return data
        try:
            return self._backend.read(digest)
        except NotFoundError:
            if self._packed is not None:  # packed by a gc since we last looked
                self._packed.reload()
                data = self._packed.read(digest)
                if data is not None:
                    return data
            raise

    def read_manifest(self, digest: str) -> Manifest:
        """Return the verified, validated manifest stored under ``digest``.

        Raises:
            NotFoundError: if the object is not stored.
            ArtifactCorruptedError: if the stored bytes do not match ``digest``.
            UnsafePathError: if an entry's path could escape the folder.
            InvalidArgumentError: if the object is not a manifest.
        """
        data = self.read_bytes(digest)
        try:
            return Manifest.from_bytes(data)
        except UnsafePathError as exc:
            raise UnsafePathError(f"manifest {digest}: {exc}") from exc
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"object {digest}: {exc}") from exc

    def get_file(self, digest: str, dest: StrPath) -> Path:
        """Write the object to the file ``dest``, creating its folders; return ``dest``.

        The bytes go to a temporary file beside ``dest``, are verified, and then replace
        ``dest`` in one rename, so ``dest`` is never left partial or corrupt. ``dest`` is
        always a copy: editing it cannot change the store.

        Raises:
            NotFoundError: if the object is not stored.
            ArtifactCorruptedError: if the stored bytes do not match ``digest`` (``dest`` is
                left as it was).
            InvalidArgumentError: if ``dest`` is an existing folder.
        """
        _checked(digest)
        target = Path(dest)
        if self._current_size(digest) is None:
            raise NotFoundError(f"no object {digest} in artifact store {self.url}")
        packed = self._packed is not None and self._packed.size(digest) is not None
        return self._write_out(digest, target, self._read(digest) if packed else None)

    def _write_out(self, digest: str, target: Path, data: bytes | None) -> Path:
        """Write ``data`` (None: the loose object ``digest``) to ``target`` through a
        temporary file, verified against ``digest``."""
        if target.is_dir():
            raise InvalidArgumentError(f"{target} is a folder; give the path of the file to write")
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.parent / f".shipyard-{os.getpid()}-{uuid.uuid4().hex}.tmp"
        replaced = False
        try:
            if data is not None:
                with open(temp, "xb") as out:
                    out.write(data)
                actual = hash_bytes(data)
            else:
                actual = self._backend.copy_out(digest, os.fspath(temp))
            if actual != digest:
                raise self._corrupted(digest, actual)
            os.replace(temp, target)
            replaced = True
        finally:
            if not replaced:
                temp.unlink(missing_ok=True)
        return target

    def get_dir(self, manifest_digest: str, dest: StrPath) -> Path:
        """Write every file of the folder stored as ``manifest_digest`` under ``dest``.

        ``dest`` is created if needed. Files already in ``dest`` that the manifest lists are
        replaced (each atomically); other files are left alone. Every entry is checked with
        :func:`resolve_inside` before anything is written, so nothing lands outside ``dest``.

        Raises:
            NotFoundError: if the manifest or one of its files is not stored.
            ArtifactCorruptedError: if stored bytes do not match their digest.
            UnsafePathError: if an entry would escape ``dest`` (through ``..`` in a tampered
                manifest or a symlink already in ``dest``).
            InvalidArgumentError: if ``dest`` is an existing file, or the object is not a
                manifest.
        """
        manifest = self.read_manifest(manifest_digest)
        root = Path(dest)
        if root.exists() and not root.is_dir():
            raise InvalidArgumentError(f"{root} is a file; give a folder to write into")
        targets = [(entry.digest, resolve_inside(root, entry.path)) for entry in manifest.entries]
        root.mkdir(parents=True, exist_ok=True)
        by_digest: dict[str, list[Path]] = {}
        for digest, target in targets:
            by_digest.setdefault(digest, []).append(target)
        if self._packed is not None:  # packs elsewhere (s3://…): a few spans, not a request each
            for digest, data in self._packed.read_remote(list(by_digest)):
                for target in by_digest.pop(digest, []):
                    self._write_out(digest, target, data)
        for digest, paths in by_digest.items():
            for target in paths:
                self.get_file(digest, target)
        return root

    def get(self, digest: str, dest: StrPath, *, is_dir: bool) -> Path:
        """Write a file (``is_dir=False``) or a folder (``is_dir=True``) to ``dest``.

        Whether a digest names a folder is not guessed from the bytes (a file could hold a
        manifest's bytes); pass the ``is_dir`` that :meth:`put` returned.
        """
        if is_dir:
            return self.get_dir(digest, dest)
        return self.get_file(digest, dest)

    def iter_digests(self) -> Iterator[str]:
        """Yield the digest of every stored object (files and manifests), in sorted order."""
        if self._packed is None:
            return self._backend.iter_digests()
        return iter(sorted(self._packed.digests().union(self._backend.iter_digests())))

    def _corrupted(self, digest: str, actual: str) -> ArtifactCorruptedError:
        return ArtifactCorruptedError(
            f"object {digest} at {self._backend.location(digest)} is corrupted: "
            f"its bytes hash to {actual}"
        )


def _read_small(path: str, size: int) -> bytes:
    """The whole file, in one ``read`` when it still has the size ``stat`` gave."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        data = os.read(fd, size + 1)
        if len(data) <= size:
            return data
        chunks = [data]  # it grew since: read it all, as a plain read would
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _checked(digest: str) -> str:
    if not is_digest(digest):
        raise InvalidArgumentError(
            f"malformed digest {digest!r}: expected 64 lowercase hex characters"
        )
    return digest


def _regular_file(path: StrPath) -> tuple[str, int]:
    source = os.fspath(path)
    info = stat_path(source)
    if stat.S_ISDIR(info.st_mode):
        raise InvalidArgumentError(f"{source} is a folder; store it with put_dir or put")
    if not stat.S_ISREG(info.st_mode):
        raise InvalidArgumentError(f"{source} is not a regular file (a socket, FIFO or device)")
    return source, info.st_size
