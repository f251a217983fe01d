"""Where object bytes live: a local folder (plain ``os`` calls) or any fsspec filesystem.

Both backends use the same layout under their root::

    objects/<first 2 hex digits>/<remaining 62 hex digits>   one file per object
    objects/<first 2 hex digits>/.tmp-<pid>-<uuid>            local writes in progress
    packs/pack-<id>.pack, packs/pack-<id>.idx                 small objects, packed
    packs/.tmp-pack-<pid>-<uuid>                              a local pack being written
    tmp/<pid>-<uuid>                                          fsspec writes in progress

A backend moves bytes and never decides what they are called: the store hashes, the backend
stores under the digest it is given and reports the digest of what it actually copied, so the
store can refuse a copy that does not match.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, Protocol, TypeVar

from blake3 import blake3

from shipyard.artifacts.digest import hash_file, is_digest
from shipyard.artifacts.packs import index_name, indexed_packs, pack_name
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
        """Yield the digest of every loose (unpacked) object, in sorted order."""

    def loose_prefixes(self) -> frozenset[str] | None:
        """The two-character folders of loose objects that exist now (None: unknown here)."""
        return None

    # Packs (see packs.py) and garbage collection. A backend without them (a Shipyard
    # server's objects API) stores every object loose and cannot be collected from here.
    supports_packs = False

    def pack_staging(self) -> str:
        """A local folder to write a new pack in (for a local store, the packs folder itself,
        so that installing the pack is a rename)."""
        raise NotImplementedError

    def list_packs(self) -> list[str]:
        """The ids of the packs that have an index (a pack without one is not there yet)."""
        return []

    def read_index(self, pack_id: str) -> bytes:
        raise NotImplementedError

    def read_range(self, pack_id: str, offset: int, size: int) -> bytes:
        """``size`` bytes of the pack at ``offset``; fewer when the pack is shorter."""
        raise NotImplementedError

    def read_ranges(self, pack_id: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        return [self.read_range(pack_id, offset, size) for offset, size in ranges]

    def install_pack(self, temp: str, index: bytes, pack_id: str, *, sync: bool = True) -> None:
        """Move the finished local pack ``temp`` in, then write its index: pack first, so an
        index never names a pack that is not all there."""
        raise NotImplementedError

    def fetch_pack(self, pack_id: str, target: str) -> None:
        """Copy the whole pack file to the new local file ``target``."""
        raise NotImplementedError

    def pack_file(self, pack_id: str) -> str | None:
        """The pack's file on this machine, or None when it is elsewhere."""
        return None

    def delete_pack(self, pack_id: str) -> None:
        """Remove a pack: its index first, so that no reader is ever sent to a missing pack."""
        raise NotImplementedError

    def delete_object(self, digest: str) -> None:
        raise NotImplementedError

    def loose_objects(self) -> Iterator[tuple[str, int, float]]:
        """``(digest, size, modified time)`` of every loose object."""
        raise NotImplementedError

    def pack_stat(self, pack_id: str) -> tuple[int, float]:
        """``(size, modified time)`` of the pack file."""
        raise NotImplementedError

    def object_mtime(self, digest: str) -> float:
        """When the loose object was last written or reused (0 when unknown or gone)."""
        raise NotImplementedError

    def read_prefix(self, digest: str, size: int) -> bytes:
        """The first ``size`` bytes of a loose object, unverified."""
        return self.read(digest)[:size]

    def freshen(self, digest: str | None = None, pack_id: str | None = None) -> bool:
        """Mark an object (or a whole pack) as just used, so that gc's grace period protects
        it while the add that reused it records it; False when it is gone."""
        return True

    def temporaries(self) -> Iterator[tuple[str, float]]:
        """``(key, modified time)`` of files left by writes in progress (or crashed ones)."""
        return iter(())

    def remove_temporary(self, key: str) -> None:
        raise NotImplementedError


class LocalBackend(ObjectBackend):
    """Objects in a local folder, written with ``os`` calls, fsynced, made read-only."""

    supports_packs = True

    def __init__(self, root: str) -> None:
        self.url = os.path.abspath(root)
        self._objects = os.path.join(self.url, "objects")
        self._packs = os.path.join(self.url, "packs")
        self._unsynced = False
        self._new_folder = False

    def pack_staging(self) -> str:
        return self._packs

    def loose_prefixes(self) -> frozenset[str] | None:
        try:
            return frozenset(os.listdir(self._objects))
        except (FileNotFoundError, NotADirectoryError):
            return frozenset()

    def _pack_file(self, pack_id: str) -> str:
        return os.path.join(self._packs, pack_name(pack_id))

    def list_packs(self) -> list[str]:
        try:
            return indexed_packs(os.listdir(self._packs))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def read_index(self, pack_id: str) -> bytes:
        try:
            with open(os.path.join(self._packs, index_name(pack_id)), "rb") as file:
                return file.read()
        except FileNotFoundError:
            raise NotFoundError(f"no pack {pack_id} in artifact store {self.url}") from None

    def read_range(self, pack_id: str, offset: int, size: int) -> bytes:
        return self.read_ranges(pack_id, [(offset, size)])[0]

    def read_ranges(self, pack_id: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        try:
            fd = os.open(self._pack_file(pack_id), os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            raise NotFoundError(f"no pack {pack_id} in artifact store {self.url}") from None
        try:
            return [os.pread(fd, size, offset) for offset, size in ranges]
        finally:
            os.close(fd)

    def install_pack(self, temp: str, index: bytes, pack_id: str, *, sync: bool = True) -> None:
        os.makedirs(self._packs, exist_ok=True)
        if os.path.dirname(os.path.abspath(temp)) != self._packs:
            staged = os.path.join(self._packs, f".tmp-pack-{_temp_name()}")
            shutil.copyfile(temp, staged)
            temp = staged
        if sync:
            _fsync_file(temp)
        os.chmod(temp, 0o444)
        os.replace(temp, self._pack_file(pack_id))
        index_temp = os.path.join(self._packs, f".tmp-idx-{_temp_name()}")
        _write_all(os.open(index_temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444), index, sync)
        os.replace(index_temp, os.path.join(self._packs, index_name(pack_id)))
        if sync:
            _fsync_folder(self._packs)

    def fetch_pack(self, pack_id: str, target: str) -> None:
        shutil.copyfile(self._pack_file(pack_id), target)

    def pack_file(self, pack_id: str) -> str | None:
        return self._pack_file(pack_id)

    def delete_pack(self, pack_id: str) -> None:
        for name in (index_name(pack_id), pack_name(pack_id)):
            try:
                os.remove(os.path.join(self._packs, name))
            except FileNotFoundError:
                pass

    def delete_object(self, digest: str) -> None:
        try:
            os.remove(self.location(digest))
        except FileNotFoundError:
            pass

    def loose_objects(self) -> Iterator[tuple[str, int, float]]:
        for digest in self.iter_digests():
            try:
                info = os.stat(self.location(digest))
            except FileNotFoundError:
                continue
            yield digest, info.st_size, info.st_mtime

    def pack_stat(self, pack_id: str) -> tuple[int, float]:
        info = os.stat(self._pack_file(pack_id))
        return info.st_size, info.st_mtime

    def object_mtime(self, digest: str) -> float:
        try:
            return os.stat(self.location(digest)).st_mtime
        except FileNotFoundError:
            return 0.0

    def read_prefix(self, digest: str, size: int) -> bytes:
        with open(self.location(digest), "rb") as file:
            return file.read(size)

    def freshen(self, digest: str | None = None, pack_id: str | None = None) -> bool:
        path = self.location(digest) if digest is not None else self._pack_file(str(pack_id))
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        except OSError:
            pass  # not ours to touch (another user's store): gc's grace is then the file's age
        return True

    def temporaries(self) -> Iterator[tuple[str, float]]:
        folders = [self._packs, self._objects]  # (large files are staged in objects/ itself)
        try:
            folders += [os.path.join(self._objects, p) for p in os.listdir(self._objects)]
        except (FileNotFoundError, NotADirectoryError):
            pass
        for folder in folders:
            try:
                with os.scandir(folder) as entries:
                    found = [e for e in entries if e.name.startswith(".tmp-")]
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in found:
                try:
                    yield entry.path, entry.stat().st_mtime
                except FileNotFoundError:
                    continue

    def remove_temporary(self, key: str) -> None:
        _remove_quietly(key)

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
            _write_all(self._create(temp, lambda: os.open(temp, flags, 0o444)), data, sync)
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
                _fsync_file(temp)
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
            # A reflink (btrfs, XFS, APFS-like filesystems) shares the blocks until one side is
            # written: no bytes move, and hashing the clone proves what the object holds.
            # Elsewhere one pass reads, hashes and writes, so the bytes written are the bytes
            # hashed (a file changing meanwhile is caught by the digest, not re-read).
            actual = self._create(temp, lambda: _clone_or_copy(source, temp))
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

    def stage_file(self, source: str) -> tuple[str, str, int]:
        """Copy ``source`` (a reflink where the filesystem has them) to a temporary name in the
        store, hashing in the same pass; return ``(temp, digest, size)``.

        Raises ArtifactCorruptedError, leaving nothing, when the file was written to during the
        copy (its size, modification or change time moved): the copy would hold no version of
        it that ever existed whole.
        """
        before = os.stat(source)
        temp = os.path.join(self._objects, f".tmp-{_temp_name()}")
        done = False
        try:
            digest = self._create(temp, lambda: _clone_or_copy(source, temp))
            after = os.stat(source)
            if _stat_key(after) != _stat_key(before):
                raise ArtifactCorruptedError(
                    f"{source} changed while it was being stored; nothing was stored, try "
                    "again once nothing writes to it"
                )
            done = True
            return temp, digest, os.stat(temp).st_size
        finally:
            if not done:
                _remove_quietly(temp)

    def install_staged(self, temp: str, digest: str, *, sync: bool = True) -> None:
        """Give a file made by :meth:`stage_file` its final name (synced first when ``sync``)."""
        installed = False
        try:
            if sync:
                _fsync_file(temp)
            folder = os.path.dirname(self.location(digest))
            if not os.path.isdir(folder):
                os.makedirs(folder, exist_ok=True)
                self._new_folder = True
            installed = self._install(temp, digest, sync=sync)
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


def _stat_key(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


_FICLONE = 0x40049409  # Linux ioctl: make the new file share the source's blocks


def _clone_or_copy(source: str, target: str) -> str:
    """Create ``target`` as a reflink of ``source`` where the filesystem can, else as a copy
    made in the kernel; return the BLAKE3 digest of what ``target`` holds (the stored bytes
    themselves are hashed, never the source)."""
    with open(source, "rb") as src, open(target, "x+b") as dst:  # read back to hash it
        try:
            import fcntl

            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
        except (ImportError, OSError):
            pass  # ext4, tmpfs, another filesystem, or not Linux: copy
        else:
            return hash_file(target)
        try:
            return _kernel_copy_hashing(src.fileno(), dst.fileno())
        except _NoKernelCopy:  # another OS, an old kernel, two filesystems: copy in Python
            return copy_hashing(src, dst)


class _NoKernelCopy(Exception):
    """``copy_file_range`` cannot copy these two files (nothing was copied)."""


_KERNEL_CHUNK = 64 << 20
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM}


def _kernel_copy_hashing(src: int, dst: int) -> str:
    """Copy with ``copy_file_range`` (the kernel moves the bytes, as ``cp`` does) in 64 MiB
    steps, hashing each step's bytes *in the target* on another thread while the next step
    copies: about the time of the copy alone, for the guarantee of hashing what was stored."""
    import mmap
    from concurrent.futures import Future, ThreadPoolExecutor

    if not hasattr(os, "copy_file_range"):
        raise _NoKernelCopy
    hasher = blake3(max_threads=blake3.AUTO)

    def hash_range(offset: int, length: int) -> None:
        start = offset - offset % mmap.ALLOCATIONGRANULARITY  # where a mapping may begin
        with mmap.mmap(dst, length + offset - start, offset=start, access=mmap.ACCESS_READ) as m:
            with memoryview(m) as view:
                hasher.update(view[offset - start :])

    offset = 0
    with ThreadPoolExecutor(1, thread_name_prefix="shipyard-hash") as pool:
        pending: Future[None] | None = None
        while True:
            try:
                copied = os.copy_file_range(src, dst, _KERNEL_CHUNK, offset_dst=offset)
            except OSError as exc:
                if offset == 0 and exc.errno in _NO_KERNEL_COPY:
                    raise _NoKernelCopy from exc
                raise
            if pending is not None:
                pending.result()  # in order: one step hashed while the next one copies
                pending = None
            if copied == 0:
                break
            pending = pool.submit(hash_range, offset, copied)
            offset += copied
    return hasher.hexdigest()


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


def _write_all(fd: int, data: bytes, sync: bool) -> None:
    """Write ``data`` to the new file ``fd`` (fsynced when ``sync``), then close it."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        self._packs = f"{root}/packs" if root else "packs"
        self._tmp = f"{root}/tmp" if root else "tmp"  # noqa: S108 (inside the store root)

    supports_packs = True

    def loose_prefixes(self) -> frozenset[str] | None:
        # One listing (on S3, one request: at most 256 common prefixes), so that adding many
        # small objects costs no existence check per object.
        try:
            keys = self._fs.ls(self._objects, detail=False, refresh=True)
        except FileNotFoundError:
            return frozenset()
        except TypeError:  # a filesystem whose ls takes no refresh
            try:
                keys = self._fs.ls(self._objects, detail=False)
            except FileNotFoundError:
                return frozenset()
        return frozenset(str(key).rstrip("/").rsplit("/", 1)[-1] for key in keys)

    def pack_staging(self) -> str:
        import tempfile

        return tempfile.gettempdir()

    def list_packs(self) -> list[str]:
        try:
            keys = self._fs.ls(self._packs, detail=False)
        except FileNotFoundError:
            return []
        return indexed_packs(str(key).rsplit("/", 1)[-1] for key in keys)

    def read_index(self, pack_id: str) -> bytes:
        try:
            return bytes(self._fs.cat_file(f"{self._packs}/{index_name(pack_id)}"))
        except FileNotFoundError:
            raise NotFoundError(f"no pack {pack_id} in artifact store {self.url}") from None

    def read_range(self, pack_id: str, offset: int, size: int) -> bytes:
        return self.read_ranges(pack_id, [(offset, size)])[0]

    def read_ranges(self, pack_id: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        key = f"{self._packs}/{pack_name(pack_id)}"
        try:
            found = self._fs.cat_ranges(
                [key] * len(ranges), [o for o, _ in ranges], [o + n for o, n in ranges]
            )
        except FileNotFoundError:
            raise NotFoundError(f"no pack {pack_id} in artifact store {self.url}") from None
        for item in found:
            if isinstance(item, Exception):
                raise item
        return [bytes(item) for item in found]

    def install_pack(self, temp: str, index: bytes, pack_id: str, *, sync: bool = True) -> None:
        # The pack's name is its content's, and it is invisible until its index exists: it can
        # go straight to its final key (an interrupted upload is simply sent again).
        key = f"{self._packs}/{pack_name(pack_id)}"
        self._with_parent(key, lambda: self._fs.put_file(temp, key))
        staged = f"{self._tmp}/{_temp_name()}"
        self._with_parent(staged, lambda: self._fs.pipe_file(staged, index))
        final = f"{self._packs}/{index_name(pack_id)}"
        self._fs.mv(staged, final)

    def fetch_pack(self, pack_id: str, target: str) -> None:
        self._fs.get_file(f"{self._packs}/{pack_name(pack_id)}", target)

    def delete_pack(self, pack_id: str) -> None:
        for name in (index_name(pack_id), pack_name(pack_id)):
            try:
                self._fs.rm_file(f"{self._packs}/{name}")
            except FileNotFoundError:
                pass

    def delete_object(self, digest: str) -> None:
        try:
            self._fs.rm_file(self._key(digest))
        except FileNotFoundError:
            pass

    def loose_objects(self) -> Iterator[tuple[str, int, float]]:
        try:
            found = self._fs.find(self._objects, detail=True)
        except FileNotFoundError:
            return
        for key, info in sorted(found.items()):
            prefix, name = str(key).rsplit("/", 2)[-2:]
            if len(prefix) == 2 and is_digest(prefix + name):
                yield prefix + name, int(info.get("size") or 0), _modified(info)

    def pack_stat(self, pack_id: str) -> tuple[int, float]:
        info = self._fs.info(f"{self._packs}/{pack_name(pack_id)}")
        return int(info["size"]), _modified(info)

    def object_mtime(self, digest: str) -> float:
        try:
            return _modified(self._fs.info(self._key(digest)))
        except FileNotFoundError:
            return 0.0

    def read_prefix(self, digest: str, size: int) -> bytes:
        return bytes(self._fs.cat_file(self._key(digest), start=0, end=size))

    def temporaries(self) -> Iterator[tuple[str, float]]:
        try:
            found = self._fs.find(self._tmp, detail=True)
        except FileNotFoundError:
            return
        for key, info in found.items():
            yield str(key), _modified(info)

    def remove_temporary(self, key: str) -> None:
        self._remove_quietly(key)

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


def _modified(info: dict[str, Any]) -> float:
    """A file's modification time from an fsspec ``info``, as seconds since the epoch (the key
    differs between filesystems); 0 when none is given, so that the file counts as old."""
    import datetime as dt

    for key in ("mtime", "LastModified", "last_modified", "created", "updated"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return 0.0
