"""``shipyard gc``: remove stored objects nothing in the workspace refers to, and repack.

The roots are every digest the metadata store refers to (dataset versions, model versions, run
artifacts, logged-model files, pipeline outputs and the step cache, gate reports; see
``store/sql/references.py``) and every ``.ship`` pointer file under the workspace's folder and
the working folder. The artifact store does the rest (:func:`shipyard.artifacts.gc.collect`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.artifacts import ArtifactStore
from shipyard.artifacts.gc import GcReport, collect
from shipyard.data.pointer import Pointer, find_pointers
from shipyard.data.versions import workspace
from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shipyard.store import Backend

__all__ = [
    "DEFAULT_GRACE",
    "GcReport",
    "collect_garbage",
    "collect_in",
    "parse_age",
    "pointer_digests",
]

DEFAULT_GRACE = "1h"
"""Objects written or reused more recently than this are never removed: an add (or a push)
still running has stored objects that nothing refers to yet."""

_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_age(text: str) -> float:
    """``90s``, ``30m``, ``12h``, ``7d``, ``2w`` or plain seconds -> seconds."""
    match = _AGE.fullmatch(text)
    if match is None:
        raise InvalidArgumentError(
            f"invalid age {text!r}: give a number with s, m, h, d or w, e.g. 7d or 12h"
        )
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def pointer_digests(folders: list[Path]) -> set[str]:
    found: set[str] = set()
    for folder in dict.fromkeys(folders):
        if folder.is_dir():
            found.update(Pointer.read(p).digest for p in find_pointers([folder]))
    return found


def collect_garbage(
    *,
    keep_last: int | None = None,
    older_than: str | float = DEFAULT_GRACE,
    dry_run: bool = False,
    repack: bool = True,
    remote: str | None = None,
    home: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> GcReport:
    """Remove objects no dataset version, model version, run artifact, pipeline cache entry or
    pointer file refers to, and repack what is kept.

    Through a team server (``SHIPYARD_SERVER``) the server collects in its own store (an
    admin's call), keeping what this folder's pointer files name as well; with ``remote``,
    the server's references are fetched and the remote is collected from here.

    Args:
        keep_last: keep only the newest N versions of each dataset (and any version created
            within ``older_than``); the older versions stay listed but their bytes may go,
            unless something else (a pointer file, a run, a model) refers to them.
        older_than: the grace period, as ``7d``/``12h``/seconds: nothing written or reused
            more recently is removed, so an add running meanwhile loses nothing.
        dry_run: report what would be removed; change nothing.
        remote: collect in this remote (a folder or fsspec URL) instead of the workspace's
            own store, with the same roots.
    """
    from shipyard.store.rest import RestBackend

    grace = _check(keep_last, older_than)
    ws = workspace(home)
    pointers = pointer_digests([ws.settings.home.parent.resolve(), Path.cwd().resolve()])
    if remote is None and isinstance(ws.backend, RestBackend):
        if progress is not None:
            progress(f"collecting on the server {ws.backend.url}")
        found = ws.backend.collect_garbage_on_server(
            keep=sorted(pointers),
            keep_last=keep_last,
            older_than=grace,
            dry_run=dry_run,
            repack=repack,
        )
        return GcReport(**{f.name: found[f.name] for f in dataclasses.fields(GcReport)})
    store = ArtifactStore(remote) if remote else ws.artifacts
    return collect_in(
        ws.backend,
        store,
        keep=pointers,
        keep_last=keep_last,
        older_than=grace,
        dry_run=dry_run,
        repack=repack,
        progress=progress,
    )


def collect_in(
    backend: Backend,
    store: ArtifactStore,
    *,
    keep: Iterable[str] = (),
    keep_last: int | None = None,
    older_than: float,
    dry_run: bool = False,
    repack: bool = True,
    progress: Callable[[str], None] | None = None,
) -> GcReport:
    """Collect in ``store`` with the roots ``backend`` refers to plus ``keep`` (digests that
    pointer files name); ``older_than`` is the grace period in seconds."""
    grace = _check(keep_last, older_than)
    since_ms = int((time.time() - grace) * 1000)
    roots = backend.referenced_digests(keep_last=keep_last, since_ms=since_ms) | set(keep)
    return collect(
        store, roots, older_than=grace, dry_run=dry_run, repack=repack, progress=progress
    )


def _check(keep_last: int | None, older_than: str | float) -> float:
    """The grace period in seconds, once the options are checked."""
    if keep_last is not None and keep_last < 1:
        raise InvalidArgumentError(f"--keep-last must be at least 1, not {keep_last}")
    grace = parse_age(older_than) if isinstance(older_than, str) else float(older_than)
    if not grace >= 0:  # negative, or NaN
        raise InvalidArgumentError("--older-than cannot be negative")
    return grace
