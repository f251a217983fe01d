"""Add, find and materialise dataset versions.

A version is named by the digest of its content and numbered per dataset. Adding content that
a dataset already holds creates nothing: the existing version comes back with
``created=False``, and no byte is written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.artifacts import hash_file, list_files
from shipyard.data.fingerprint import cached_fingerprint, remember_folder
from shipyard.data.pointer import Pointer, pointer_path
from shipyard.data.refs import parse_ref, validate_dataset_name
from shipyard.data.statcache import StatCache, StatKey, stat_key
from shipyard.entities import DatasetProfile, DatasetVersion
from shipyard.errors import InvalidArgumentError, NotFoundError

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.artifacts import ArtifactStore
    from shipyard.tracking import ActiveRun, Workspace

__all__ = [
    "AddResult",
    "add",
    "get",
    "load",
    "materialize",
    "resolve",
    "stat_cache",
    "workspace",
]


@dataclass(frozen=True, slots=True)
class AddResult:
    """What :func:`add` did."""

    version: DatasetVersion
    created: bool
    """False when the dataset already held identical content (nothing new was stored)."""
    stored_bytes: bool
    """Whether any new bytes went into the artifact store (False for deduplicated content,
    even when ``created`` is True because another dataset holds the same bytes)."""
    pointer: Path | None


def workspace(home: str | os.PathLike[str] | None, *, create: bool = False) -> Workspace:
    # Imported on use, as is the active run below: importing this module opens no store.
    from shipyard.tracking.workspace import open_workspace

    return open_workspace(home, create=create)


def stat_cache(ws: Workspace) -> StatCache:
    return StatCache.in_workspace(ws.settings.home)


def _active_run() -> ActiveRun | None:
    from shipyard.tracking import active_run as current

    return current()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _is_table_object(source: object) -> bool:
    module = type(source).__module__
    return module.startswith(("pandas", "pyarrow"))


def _profile(source: Any, fmt: str, enabled: bool) -> DatasetProfile | None:
    if not enabled or not fmt:
        return None
    from shipyard.data.profiling import profile_table

    return profile_table(source)


def add(
    source: str | os.PathLike[str] | pd.DataFrame | Any,
    name: str,
    *,
    link: bool = False,
    profile: bool = True,
    pointer: bool = True,
    home: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AddResult:
    """Snapshot a file, a folder, a pandas DataFrame or an Arrow table as a dataset version.

    Args:
        source: the data. Tables (CSV, Parquet, DataFrame, Arrow) are profiled on the way in;
            a malformed table is refused before anything is stored.
        name: the dataset (created on first use).
        link: hard-link files into a local artifact store instead of copying them (they become
            read-only; see docs/data.md). Much faster for large files.
        profile: compute and store the table profile.
        pointer: write ``PATH.ship`` beside a file or folder (never for in-memory tables).
        home: workspace (default: ``SHIPYARD_HOME`` or the nearest ``.shipyard/``).
        progress: called as ``progress(files_done, files_total)`` while a folder is stored.

    Returns:
        The version, and whether it was new. Inside an active run, the run is recorded as the
        version's producer.
    """
    validate_dataset_name(name)
    ws = workspace(home, create=True)
    if not isinstance(source, str | os.PathLike):
        if _is_table_object(source):
            return _add_table_object(ws, source, name, profile=profile)
        raise InvalidArgumentError(
            f"cannot add a {type(source).__name__}: give a path, a pandas DataFrame or an "
            "Arrow table"
        )
    path = Path(source)
    if not path.exists():
        raise NotFoundError(f"cannot add {path}: no such file or folder")
    from shipyard.data.formats import table_format

    if path.is_file() and path.stat().st_size == 0:
        raise InvalidArgumentError(f"cannot add {path}: the file is empty")
    real, home_dir = path.resolve(), ws.settings.home.resolve()
    if real == home_dir or home_dir.is_relative_to(real) or real.is_relative_to(home_dir):
        raise InvalidArgumentError(
            f"cannot add {path}: it holds (or is inside) the Shipyard workspace {home_dir}; "
            "add the data folder itself"
        )
    if path.is_dir() and not _has_files(path):
        raise InvalidArgumentError(f"cannot add {path}: the folder holds no files")
    fmt = table_format(path)
    store = ws.artifacts
    run = _active_run()
    with stat_cache(ws) as cache:
        known = cached_fingerprint(path, cache)
    if known is not None:
        # Added before and unchanged since (by stat): skip hashing, profiling and storing.
        existing = _existing_version(ws, name, known.digest)
        if existing is not None and store.exists(known.digest):
            _record_output(ws, run, existing)
            return AddResult(existing, False, False, _write_pointer(existing, path, pointer))
    before = _content_stat(path)
    summary = _profile(path, fmt, profile)
    cached: list[tuple[str, StatKey, str]] = []
    listing = None
    if path.is_dir():
        listing = list_files(path)
        info = store.put_dir(
            path,
            link=link,
            on_file=lambda src, st, digest: cached.append((src, stat_key(st), digest)),
            progress=progress,
            listing=listing,
        )
    else:
        info = store.put_file(path, link=link)
        # Taken after storing: linking makes the file read-only, which changes its ctime.
        cached.append((os.path.realpath(path), stat_key(os.stat(path)), info.digest))
    if summary is not None and _content_stat(path) != before:
        raise InvalidArgumentError(
            f"{path} changed while it was being added; try again once nothing writes to it"
        )
    if link:  # the cached stats predate the chmod that linking did
        cached = [(p, stat_key(os.stat(p)), d) for p, _, d in cached]
    with stat_cache(ws) as cache:
        cache.put_many(cached)
        if listing is not None and not link:  # (linking changed the files' ctimes)
            # the next status of the unchanged folder needs no per-file lookup
            remember_folder(os.path.realpath(path), listing, info.digest, info.size, cache)
    version, created = ws.backend.add_dataset_version(
        name,
        digest=info.digest,
        size=info.size,
        file_count=info.file_count,
        kind="dir" if info.is_dir else "file",
        format=fmt,
        created_at=_now_ms(),
        created_by=ws.settings.user,
        source=str(path.resolve()),
        profile=summary,
        run_id=run.run_id if run is not None else None,
    )
    if not created:
        _record_output(ws, run, version)
    return AddResult(version, created, info.stored, _write_pointer(version, path, pointer))


def _has_files(folder: Path) -> bool:
    for _, _, files in os.walk(folder):
        if files:
            return True
    return False


def _content_stat(path: Path) -> tuple[int, int, int] | None:
    """What changes when a file's bytes change (not ctime: linking changes that)."""
    if path.is_dir():
        return None
    info = os.stat(path)
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _record_output(ws: Workspace, run: ActiveRun | None, version: DatasetVersion) -> None:
    """A run that adds content a dataset already holds still produced that version."""
    if run is not None and run.workspace is ws:
        ws.backend.record_dataset_use(run.run_id, version.dataset, version.version, "output")


def _existing_version(ws: Workspace, name: str, digest: str) -> DatasetVersion | None:
    try:
        return ws.backend.get_dataset_version(name, digest)
    except NotFoundError:
        return None


def _write_pointer(version: DatasetVersion, path: Path, enabled: bool) -> Path | None:
    if not enabled:
        return None
    pointer_file = pointer_path(path.resolve())
    Pointer(
        dataset=version.dataset,
        version=version.version,
        digest=version.digest,
        size=version.size,
        files=version.file_count,
        kind=version.kind,
        path=path.resolve().name,
    ).write(pointer_file)
    return pointer_file


def _add_table_object(ws: Workspace, table: Any, name: str, *, profile: bool) -> AddResult:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = table if isinstance(table, pa.Table) else pa.Table.from_pandas(table)
    if arrow.num_rows == 0:
        raise InvalidArgumentError(f"cannot add an empty table as {name!r}")
    tmp = ws.settings.home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp) as folder:
        path = Path(folder) / f"{name}.parquet"
        # Deterministic bytes for identical tables, so that adding one twice deduplicates.
        pq.write_table(arrow, path, compression="zstd", write_statistics=True)
        summary = _profile(path, "parquet", profile)
        info = ws.artifacts.put_file(path)
    run = _active_run()
    version, created = ws.backend.add_dataset_version(
        name,
        digest=info.digest,
        size=info.size,
        file_count=1,
        kind="file",
        format="parquet",
        created_at=_now_ms(),
        created_by=ws.settings.user,
        source=f"<{type(table).__module__.split('.')[0]} table>",
        profile=summary,
        run_id=run.run_id if run is not None else None,
    )
    if not created:
        _record_output(ws, run, version)
    return AddResult(version, created, info.stored, None)


def resolve(ref: str, *, home: str | os.PathLike[str] | None = None) -> DatasetVersion:
    """The version named by ``name@3``, ``name@latest``, ``name@<digest prefix>`` or ``name``."""
    name, version = parse_ref(ref)
    return workspace(home).backend.get_dataset_version(name, version)


def materialize(
    store: ArtifactStore, digest: str, kind: str, dest: Path, *, link: bool = False
) -> Path:
    """Write an object (file) or manifest (folder) to ``dest``, verified.

    By default each file is a private copy: a reflink (the filesystem shares the blocks until
    one side is written) where the filesystem supports it, a plain copy otherwise. With
    ``link`` a local object is hard-linked instead (read-only, no copy at all) — writing to it
    in place would change the stored version, so it is opt-in.
    """
    if kind == "dir":
        manifest = store.read_manifest(digest)
        dest.mkdir(parents=True, exist_ok=True)
        from shipyard.artifacts import resolve_inside

        for entry in manifest.entries:
            _materialize_file(store, entry.digest, resolve_inside(dest, entry.path), link)
        return dest
    _materialize_file(store, digest, dest, link)
    return dest


def _materialize_file(store: ArtifactStore, digest: str, dest: Path, link: bool) -> None:
    location = store.local_path(digest)
    if location is not None:
        if hash_file(location) != digest:
            store.read_bytes(digest)  # raises the store's corruption error
        dest.parent.mkdir(parents=True, exist_ok=True)
        temp = dest.parent / f".shipyard-{uuid.uuid4().hex}.tmp"
        try:
            if (_hard_link if link else _reflink)(location, temp):
                os.replace(temp, dest)
                return
        finally:
            temp.unlink(missing_ok=True)  # left behind when dest already was that link
    store.get_file(digest, dest)


def _hard_link(source: Path, target: Path) -> bool:
    try:
        os.link(source, target)
    except OSError:  # another filesystem: copy instead
        return False
    return True


def _reflink(source: Path, target: Path) -> bool:
    """Clone ``source`` into the new file ``target`` (Btrfs, XFS, ...); False if unsupported."""
    try:
        import fcntl
    except ImportError:  # not on this platform
        return False
    ficlone = 0x40049409  # _IOW(0x94, 9, int), Linux
    try:
        with open(source, "rb") as src, open(target, "xb") as dst:
            fcntl.ioctl(dst.fileno(), ficlone, src.fileno())
    except OSError:
        target.unlink(missing_ok=True)
        return False
    os.chmod(target, 0o644)
    return True


def get(
    ref: str,
    out: str | os.PathLike[str],
    *,
    link: bool = False,
    home: str | os.PathLike[str] | None = None,
) -> Path:
    """Materialise a version into the folder ``out`` and return the path written.

    A folder version fills ``out`` with its files; a file version is written as
    ``out/<original file name>``. Files are reflinks where the filesystem can, copies
    otherwise; ``link=True`` hard-links them to the store instead (read-only, no copy).
    Inside an active run, the run is recorded as having read the version.
    """
    ws = workspace(home)
    version = resolve(ref, home=home)
    _record_input(ws, version)
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise InvalidArgumentError(f"{target} is a file; --out must be a folder")
    if version.kind == "dir":
        return materialize(ws.artifacts, version.digest, "dir", target, link=link)
    filename = Path(version.source).name if version.source.startswith("/") else ""
    if not filename:
        filename = f"{version.dataset}.{version.format or 'bin'}"
    return materialize(ws.artifacts, version.digest, "file", target / filename, link=link)


def load(
    ref: str, *, home: str | os.PathLike[str] | None = None, columns: list[str] | None = None
) -> pd.DataFrame:
    """Read a table version into pandas; inside an active run, record that the run read it."""
    ws = workspace(home)
    version = resolve(ref, home=home)
    if not version.format:
        raise InvalidArgumentError(
            f"{version.ref} is not a table (CSV or Parquet); use shipyard.data.get to fetch it"
        )
    # Keep the original name: its suffix tells the readers the separator and compression.
    name = Path(version.source).name if version.source.startswith("/") else "data"
    with tempfile.TemporaryDirectory() as folder:
        path = materialize(
            ws.artifacts, version.digest, version.kind, Path(folder) / name, link=True
        )
        if version.format == "csv":
            import pandas as pd

            tab = name.lower().split(".")[1:2] == ["tsv"]
            frame = pd.read_csv(path, usecols=columns, sep="\t" if tab else ",")
        else:
            import pyarrow.parquet as pq

            frame = pq.read_table(path, columns=columns).to_pandas()
    _record_input(ws, version)
    return frame


def _record_input(ws: Workspace, version: DatasetVersion) -> None:
    run = _active_run()
    if run is not None and run.workspace is ws:
        run.use_dataset(version.dataset, version.version)


def copy_tree_atomically(source: Path, dest: Path) -> None:
    """Replace the folder ``dest`` by ``source`` (a sibling) in two renames."""
    trash = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.old")
    if dest.exists():
        os.replace(dest, trash)
    os.replace(source, dest)
    shutil.rmtree(trash, ignore_errors=True)
