"""Tracked paths: data with a ``.ship`` pointer beside it. Which changed, and putting back the
version a pointer names (after ``git checkout`` of older code, say).

Neither needs the metadata store: the pointer holds the digest, the artifact store the bytes.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.config import load_settings
from shipyard.data.fingerprint import fingerprint
from shipyard.data.pointer import Pointer, find_pointers
from shipyard.data.statcache import StatCache
from shipyard.errors import InvalidArgumentError, NotFoundError

if TYPE_CHECKING:
    from shipyard.tracking import Workspace

__all__ = ["PathState", "TrackedPath", "checkout", "status"]


class PathState(StrEnum):
    UNCHANGED = "unchanged"
    MODIFIED = "modified"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class TrackedPath:
    """A tracked file or folder and how it compares with its pointer."""

    path: Path
    pointer: Pointer
    state: PathState
    current_digest: str | None
    hashed: int = 0
    """Files that had to be read because the stat cache did not vouch for them."""

    def to_dict(self) -> dict[str, str | None]:
        """What ``shipyard data status --json`` prints for it."""
        return {
            "path": str(self.path),
            "ref": self.pointer.ref,
            "state": self.state.value,
            "digest": self.pointer.digest,
            "current_digest": self.current_digest,
        }


def _targets(paths: list[str | os.PathLike[str]] | None) -> list[Path]:
    return [Path(p) for p in paths] if paths else [Path.cwd()]


def status(
    paths: list[str | os.PathLike[str]] | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
) -> list[TrackedPath]:
    """Compare tracked data with its pointers, re-hashing only files whose stat changed.

    Args:
        paths: data paths, pointer files or folders to search (default: the working folder).
    """
    # Only the workspace's folder: a status answered by pointers and the stat cache opens
    # no store (and imports none).
    results = []
    with StatCache.in_workspace(load_settings(home).home) as cache:
        for pointer_file in find_pointers(_targets(paths)):
            pointer = Pointer.read(pointer_file)
            data = pointer.data_path(pointer_file)
            if not data.exists():
                results.append(TrackedPath(data, pointer, PathState.MISSING, None))
                continue
            found = fingerprint(data, cache)
            state = PathState.UNCHANGED if found.digest == pointer.digest else PathState.MODIFIED
            results.append(TrackedPath(data, pointer, state, found.digest, found.hashed))
    return results


def checkout(
    paths: list[str | os.PathLike[str]] | None = None,
    *,
    link: bool = False,
    force: bool = False,
    home: str | os.PathLike[str] | None = None,
) -> list[TrackedPath]:
    """Make tracked data match its pointers; return what was restored.

    A folder is rebuilt beside the old one and swapped in with renames, so files the version
    does not have disappear and a failure leaves the old folder in place.

    Raises:
        InvalidArgumentError: a tracked path holds changes that were never added (they would
            be lost); add them, or pass ``force=True`` to discard them. Nothing is changed.
        NotFoundError: a version's objects are not in this workspace; pull them first.
    """
    pending = [t for t in status(paths, home=home) if t.state is not PathState.UNCHANGED]
    if not pending:
        return []
    from shipyard.data.versions import workspace

    ws = workspace(home)
    for tracked in pending:  # check everything before changing anything
        pointer = tracked.pointer
        if not ws.artifacts.exists(pointer.digest):
            raise NotFoundError(
                f"{pointer.ref} ({pointer.digest[:12]}) is not in this workspace's artifact "
                "store; run `shipyard data pull --remote URL` first"
            )
        unsaved = tracked.current_digest is not None and not ws.artifacts.exists(
            tracked.current_digest
        )
        if unsaved and not force:
            raise InvalidArgumentError(
                f"{tracked.path} has changes that were never added; `shipyard data add` them "
                "first, or check out with --force to discard them"
            )
    for tracked in pending:
        _replace(ws, tracked, link)
    return pending


def _replace(ws: Workspace, tracked: TrackedPath, link: bool) -> None:
    from shipyard.data.versions import materialize

    pointer, data = tracked.pointer, tracked.path
    staging = data.with_name(f".{data.name}.{uuid.uuid4().hex}.new")
    old = data.with_name(f".{data.name}.{uuid.uuid4().hex}.old")
    try:
        materialize(ws.artifacts, pointer.digest, pointer.kind, staging, link=link)
        moved = False
        if data.exists() or data.is_symlink():
            os.replace(data, old)
            moved = True
        try:
            os.replace(staging, data)
        except OSError:
            if moved:
                os.replace(old, data)  # put the user's data back before reporting
            raise
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        elif old.exists():
            old.unlink()
    finally:
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
        elif staging.exists():
            staging.unlink()
