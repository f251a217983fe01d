"""Where object bytes live: a local folder (plain ``os`` calls) or any fsspec filesystem.

Both backends use the same layout under their root::

    objects/<first 2 hex digits>/<remaining 62 hex digits>   one file per object
    objects/<first 2 hex digits>/.tmp-<pid>-<uuid>            local writes in progress
    tmp/<pid>-<uuid>                                          fsspec writes in progress

A backend moves bytes and never decides what they are called: the store hashes, the backend
stores under the digest it is given and reports the digest of what it actually copied, so the
store can refuse a copy that does not match.
"""

from __future__ import annotations

import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, Protocol, TypeVar

from blake3 import blake3

from shipyard.artifacts.digest import hash_file, is_digest
from shipyard.errors import ArtifactCorruptedError, InvalidArgumentError, NotFoundError

__all__ = ["COPY_CHUNK", "FsspecBackend", "LocalBackend", "ObjectBackend", "copy_hashing"]

COPY_CHUNK = 8 << 20

T = TypeVar("T")

# Extras that provide an fsspec protocol, for the install hint when it is missing.
_EXTRAS = {"s3": "s3", "s3a": "s3"}


class _ReadInto(Protocol):
    def readinto(self, buffer: bytearray, /) -> int | None: ...


def copy_hashing(source: _ReadInto, target: BinaryIO) -> str:
    """Copy ``source`` to ``target`` in 8 MiB chunks; return the BLAKE3 digest of the bytes."""
    hasher = blake3(max_threads=blake3.AUTO)
    buffer = bytearray(COPY_CHUNK)
    view = memoryview(buffer)
    while count := source.readinto(buffer):
        hasher.update(view[:count])
        target.write(view[:count])
    return hasher.hexdigest()


def _temp_name() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex}"


def _changed_error(source: str, expected: str, actual: str) -> ArtifactCorruptedError:
    return ArtifactCorruptedError(
        f"{source} changed while it was being stored: it hashed to {expected} but the bytes "
        f"copied hash to {actual}; nothing was stored, try again once nothing writes to it"
    )


class ObjectBackend(ABC):
    """The bytes side of an artifact store: put, fetch and list objects by digest.

    Implementations never verify reads (the store does) but must never leave a partial object
    under its final name.
    """

    url: str

    @abstractmethod
    def location(self, digest: str) -> str:
        """Return where the object is (or would be), for error messages."""

    @abstractmethod
    def stored_size(self, digest: str) -> int | None:
        """Return the object's size in bytes, or None when it is not stored."""

    @abstractmethod
    def read(self, digest: str) -> bytes:
        """Return the object's bytes, unverified. Raises NotFoundError when absent."""

    @abstractmethod
    def write_bytes(self, digest: str, data: bytes, *, sync: bool = True) -> None:
        """Store ``data`` (whose digest the caller computed) atomically under ``digest``.

        ``sync=False`` skips flushing to disk; the caller must call :meth:`flush` before it
        records the object anywhere.
        """

    @abstractmethod
    def write_file(self, digest: str, source: str, *, sync: bool = True) -> int:
        """Copy the local file ``source`` in atomically under ``digest``; return its size.

        Raises ArtifactCorruptedError, storing nothing, if the copied bytes do not hash to
        ``digest`` (the file changed after the caller hashed it).
        """

    def link_file(self, digest: str, source: str, *, sync: bool = True) -> bool:
        """Store ``source`` under ``digest`` by hard-linking it, without copying its bytes.

        Returns False when this backend cannot link it (another filesystem, object storage);
        the caller then copies.
        """
        return False

    def shared(self, digest: str) -> bool:
        """Whether the object's bytes are also reachable through another name (a hard link),
        so that something else could have written them."""
        return False

    def close(self) -> None:  # noqa: B027 - optional hook: a backend holding connections
        """Release what the backend holds open."""

    def flush(self) -> None:  # noqa: B027 - optional hook, most backends write through
        """Make every write made with ``sync=False`` durable."""

    @abstractmethod
    def copy_out(self, digest: str, target: str) -> str:
        """Copy the object to the new local file ``target``; return the digest of the copy."""

    @abstractmethod
    def iter_digests(self) -> Iterator[str]:
        """Yield the digest of every stored object, in sorted order."""


class LocalBackend(ObjectBackend):
    """Objects in a local folder, written with ``os`` calls, fsynced, made read-only."""

    def __init__(self, root: str) -> None:
        self.url = os.path.abspath(root)
        self._objects = os.path.join(self.url, "objects")
        self._unsynced = False
        self._new_folder = False

    def location(self, digest: str) -> str:
        return os.path.join(self._objects, digest[:2], digest[2:])

    def stored_size(self, digest: str) -> int | None:
        try:
            return os.stat(self.location(digest)).st_size
        except (FileNotFoundError, NotADirectoryError):
            return None

    def read(self, digest: str) -> bytes:
        try:
            with open(self.location(digest), "rb") as file:
                return file.read()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"no object {digest} in artifact store {self.url}") from None

    def write_bytes(self, digest: str, data: bytes, *, sync: bool = True) -> None:
        temp = self._new_temp(digest)
        installed = False
        try:
            # Created read-only: the descriptor we hold may still write it.
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            fd = self._create(temp, lambda: os.open(temp, flags, 0o444))
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            installed = self._install(temp, digest, sync=sync, read_only=True)
        finally:
            if not installed:
                _remove_quietly(temp)

    def link_file(self, digest: str, source: str, *, sync: bool = True) -> bool:
        temp = self._new_temp(digest)
        try:
            self._create(temp, lambda: os.link(source, temp))
        except OSError:  # another filesystem (EXDEV), or links not allowed here
            return False
        installed = False
        try:
            if sync:  # the user's bytes may still be only in the page cache
                fd = os.open(temp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            installed = self._install(temp, digest, sync=sync)
        finally:
            if not installed:
                _remove_quietly(temp)
        return True

    def shared(self, digest: str) -> bool:
        try:
            return os.stat(self.location(digest)).st_nlink > 1
        except FileNotFoundError:
            return False

    def flush(self) -> None:
        # One sync of the store's filesystem for a whole folder of objects instead of two
        # fsyncs per file. Always, not only after our own writes: a deduplicated object may
        # have been written a moment ago by another process that has not synced yet.
        _sync_filesystem(self.url if os.path.isdir(self.url) else os.path.dirname(self.url))
        self._unsynced = False

    def write_file(self, digest: str, source: str, *, sync: bool = True) -> int:
        temp = self._new_temp(digest)
        installed = False
        try:
            # copyfile copies in the kernel (sendfile); hashing the copy, hot in the page cache,
            # proves that the object holds exactly the bytes its name promises.
            self._create(temp, lambda: shutil.copyfile(source, temp))
            actual = hash_file(temp)
            if actual != digest:
                raise _changed_error(source, digest, actual)
            fd = os.open(temp, os.O_RDWR | getattr(os, "O_BINARY", 0))
            try:
                if sync:
                    os.fsync(fd)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            installed = self._install(temp, digest, sync=sync)
            return size
        finally:
            if not installed:
                _remove_quietly(temp)

    def copy_out(self, digest: str, target: str) -> str:
        location = self.location(digest)
        try:
            shutil.copyfile(location, target)
        except FileNotFoundError:
            if os.path.exists(location):
                raise
            raise NotFoundError(f"no object {digest} in artifact store {self.url}") from None
        return hash_file(target)

    def iter_digests(self) -> Iterator[str]:
        try:
            prefixes = sorted(os.listdir(self._objects))
        except (FileNotFoundError, NotADirectoryError):
            return
        for prefix in prefixes:
            try:
                names = sorted(os.listdir(os.path.join(self._objects, prefix)))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in names:
                if len(prefix) == 2 and is_digest(prefix + name):
                    yield prefix + name

    def _new_temp(self, digest: str) -> str:
        """A temporary name in the object's own folder, so that installing it is a rename
        within one directory (cheaper than across directories, and just as atomic)."""
        return os.path.join(self._objects, digest[:2], f".tmp-{_temp_name()}")

    def _create(self, temp: str, action: Callable[[], T]) -> T:
        """Run ``action`` (which creates ``temp``), creating the folder on the first miss
        rather than checking for it before every write."""
        try:
            return action()
        except FileNotFoundError:
            folder = os.path.dirname(temp)
            if not os.path.isdir(folder):
                os.makedirs(folder, exist_ok=True)
                self._new_folder = True
            # Try again even when the folder is there now: another process may have made it
            # between our miss and the look. A second miss means the source is what is missing.
            return action()

    def _install(
        self, temp: str, digest: str, *, sync: bool = True, read_only: bool = False
    ) -> bool:
        final = self.location(digest)
        folder = os.path.dirname(final)
        created, self._new_folder = self._new_folder, False
        if not read_only:
            os.chmod(temp, 0o444)
        try:
            os.replace(temp, final)
        except PermissionError:
            # Windows refuses to replace a read-only file: another writer stored it first.
            if not os.path.isfile(final):
                raise
            return False
        if not sync:
            self._unsynced = True
            return True
        _fsync_folder(folder)
        if created:
            _fsync_folder(self._objects)
        return True


def _sync_filesystem(path: str) -> None:
    """``syncfs`` on the filesystem holding ``path`` (Linux), else a machine-wide ``sync``."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(path, os.O_RDONLY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    if hasattr(os, "sync"):
        os.sync()


def _fsync_folder(folder: str) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError:
        # Best effort: a leftover temp file is harmless and is never read as an object.
        pass


class FsspecBackend(ObjectBackend):
    """Objects on any fsspec filesystem (``s3://``, ``gs://``, ``memory://``, ...).

    Every write goes to ``tmp/<unique>`` and is then moved to its final key. On object stores a
    move is a server-side copy plus a delete: it costs time but a reader never sees a partial
    object, whatever the filesystem.
    """

    def __init__(self, url: str) -> None:
        import fsspec.core

        try:
            fs, root = fsspec.core.url_to_fs(url)
        except ImportError as exc:
            protocol = url.split("://", 1)[0]
            extra = _EXTRAS.get(protocol)
            hint = f" (run: pip install 'shipyard-mlops[{extra}]')" if extra else ""
            raise InvalidArgumentError(f"cannot open artifact store {url}: {exc}{hint}") from exc
        except ValueError as exc:
            raise InvalidArgumentError(f"cannot open artifact store {url}: {exc}") from exc
        self.url = url.rstrip("/")
        self._fs: Any = fs
        root = str(root).rstrip("/")
        self._objects = f"{root}/objects" if root else "objects"
        self._tmp = f"{root}/tmp" if root else "tmp"  # noqa: S108 (inside the store root)

    def location(self, digest: str) -> str:
        return str(self._fs.unstrip_protocol(self._key(digest)))

    def stored_size(self, digest: str) -> int | None:
        try:
            info = self._fs.info(self._key(digest))
        except FileNotFoundError:
            return None
        if info.get("type") == "directory":
            return None
        return int(info["size"])

    def read(self, digest: str) -> bytes:
        try:
            return bytes(self._fs.cat_file(self._key(digest)))
        except FileNotFoundError:
            raise NotFoundError(f"no object {digest} in artifact store {self.url}") from None

    def write_bytes(self, digest: str, data: bytes, *, sync: bool = True) -> None:
        temp = f"{self._tmp}/{_temp_name()}"
        installed = False
        try:
            self._with_parent(temp, lambda: self._fs.pipe_file(temp, data))
            self._install(temp, digest)
            installed = True
        finally:
            if not installed:
                self._remove_quietly(temp)

    def write_file(self, digest: str, source: str, *, sync: bool = True) -> int:
        temp = f"{self._tmp}/{_temp_name()}"
        installed = False
        try:
            with open(source, "rb") as src:
                target = self._with_parent(temp, lambda: self._fs.open(temp, "wb"))
                with target:
                    actual = copy_hashing(src, target)
                    size = src.tell()
            if actual != digest:
                raise _changed_error(source, digest, actual)
            self._install(temp, digest)
            installed = True
            return size
        finally:
            if not installed:
                self._remove_quietly(temp)

    def copy_out(self, digest: str, target: str) -> str:
        try:
            source = self._fs.open(self._key(digest), "rb")
        except FileNotFoundError:
            raise NotFoundError(f"no object {digest} in artifact store {self.url}") from None
        with source, open(target, "xb") as out:
            return copy_hashing(source, out)

    def iter_digests(self) -> Iterator[str]:
        try:
            keys = self._fs.find(self._objects)
        except FileNotFoundError:
            return
        for key in sorted(keys):
            prefix, name = str(key).rsplit("/", 2)[-2:]
            if len(prefix) == 2 and is_digest(prefix + name):
                yield prefix + name

    def _key(self, digest: str) -> str:
        return f"{self._objects}/{digest[:2]}/{digest[2:]}"

    def _install(self, temp: str, digest: str) -> None:
        final = self._key(digest)
        self._with_parent(final, lambda: self._fs.mv(temp, final))

    def _with_parent(self, key: str, action: Callable[[], Any]) -> Any:
        # Object stores have no folders; filesystems that do (local://, sftp://) get theirs
        # created on the first miss instead of paying a makedirs call on every write.
        try:
            return action()
        except FileNotFoundError:
            self._fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
            return action()

    def _remove_quietly(self, key: str) -> None:
        try:
            if self._fs.exists(key):
                self._fs.rm_file(key)
        except OSError:
            pass
