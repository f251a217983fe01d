"""Copy dataset objects between this workspace's artifact store and a remote one (any fsspec
URL or folder): only what the other side is missing, verified on the way, small objects as
whole packs (see :mod:`shipyard.artifacts.transfer`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from shipyard.artifacts import ArtifactStore
from shipyard.artifacts.transfer import Transfer, transfer
from shipyard.data.refs import parse_ref
from shipyard.data.versions import workspace
from shipyard.entities import DatasetVersion

__all__ = ["Transfer", "pull", "push"]


def _versions(
    refs: Iterable[str] | None, home: str | os.PathLike[str] | None
) -> list[DatasetVersion]:
    backend = workspace(home).backend
    if refs:
        return [backend.get_dataset_version(*parse_ref(ref)) for ref in refs]
    return [v for d in backend.list_datasets() for v in backend.list_dataset_versions(d.name)]


def _objects(source: ArtifactStore, wanted_versions: list[tuple[str, str]]) -> list[str]:
    """Every digest the ``(digest, kind)`` pairs need, a folder's manifest *after* its files,
    so that an interrupted transfer never leaves a manifest whose files are missing."""
    wanted: dict[str, None] = {}
    for digest, kind in wanted_versions:
        if digest in wanted:
            continue  # a version and its pointer name the same folder: read its manifest once
        if kind == "dir":
            for file_digest in source.manifest_digests(digest):
                wanted[file_digest] = None
        wanted[digest] = None
    return list(wanted)


def _wanted(
    refs: Iterable[str] | None, home: str | os.PathLike[str] | None
) -> list[tuple[str, str]]:
    """Versions named by ``refs``; by default every version this workspace knows and every
    version a ``.ship`` pointer under the working folder names (a fresh clone knows only
    those)."""
    found = [(v.digest, v.kind) for v in _versions(refs, home)]
    if not refs:
        from shipyard.data.pointer import Pointer, find_pointers

        found += [(p.digest, p.kind) for p in map(Pointer.read, find_pointers([Path.cwd()]))]
    return found


def push(
    remote: str,
    refs: Iterable[str] | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Transfer:
    """Copy the objects of ``refs`` (default: every version) to ``remote``."""
    local = workspace(home).artifacts
    digests = _objects(local, _wanted(refs, home))
    return transfer(local, ArtifactStore(remote), digests, progress)


def pull(
    remote: str,
    refs: Iterable[str] | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Transfer:
    """Copy the objects of ``refs`` (default: every version) from ``remote``."""
    other = ArtifactStore(remote)
    digests = _objects(other, _wanted(refs, home))
    return transfer(other, workspace(home).artifacts, digests, progress)
