"""After a crash: replay the journals of dead processes, mark their runs ``CRASHED``.

Runs each time a workspace opens its store, before ``search_runs``/``get_run`` and on
``shipyard runs recover``. Cheap when there is nothing to do: one folder listing and one
query for the RUNNING runs that have an owner. Safe to run in many processes at once: the
store applies each journal segment once, and marks a run crashed only if its heartbeat is
still the one judged dead.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.errors import ShipyardError
from shipyard.store import Backend
from shipyard.tracking.journal import JOURNAL_DIR, journal_owner, read_journal
from shipyard.tracking.liveness import owner_is_dead, this_process

__all__ = ["Recovery", "recover"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Recovery:
    """What a recovery did."""

    journals: int = 0
    """Journals of dead processes read (and deleted once in the store)."""
    metrics: int = 0
    """Metrics written from those journals (segments already in the store are not counted)."""
    crashed: list[tuple[str, int]] = field(default_factory=list)
    """``(run_id, end_time)`` of each run marked CRASHED."""
    problems: list[str] = field(default_factory=list)
    """Journals that could not be replayed, and why (left on disk)."""


def recover(backend: Backend, home: Path, *, heartbeat_timeout: float = 60.0) -> Recovery:
    """Replay dead processes' journals into ``backend``, then mark their runs crashed.

    Args:
        backend: the workspace's store.
        home: the workspace folder (its ``journal/`` holds this machine's journals).
        heartbeat_timeout: seconds of silence after which an owner on another host is dead.
    """
    done = Recovery()
    now = time.time_ns() // 1_000_000
    me = this_process()
    watched = {run_id: (owner, beat) for run_id, owner, beat in backend.watched_runs()}
    for folder in _journal_folders(home / JOURNAL_DIR):
        found = journal_owner(folder)
        if found is None:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: its writer re-creates it when it needs it
            continue
        run_id, writer = found
        # A writer on another host is judged by its run's heartbeat; a run that is no longer
        # RUNNING has no live writer to wait for.
        beat = watched[run_id][1] if run_id in watched else 0
        if writer == me or not owner_is_dead(writer, beat, now, heartbeat_timeout):
            continue
        journal = read_journal(folder)
        if journal is None:
            continue
        try:
            done.metrics += backend.log_journal(journal.segments)
        except ShipyardError as exc:
            done.problems.append(f"{folder}: {exc}")
            log.warning("could not replay the metric journal %s: %s", folder, exc)
            continue
        journal.delete()
        done.journals += 1
    if done.journals:
        watched = {run_id: (owner, beat) for run_id, owner, beat in backend.watched_runs()}
    for run_id, (owner, beat) in watched.items():
        if owner == me or not owner_is_dead(owner, beat, now, heartbeat_timeout):
            continue
        end = backend.mark_run_crashed(run_id, heartbeat=beat, now=now)
        if end is not None:
            done.crashed.append((run_id, end))
            log.info("run %s crashed (%s is gone); marked CRASHED", run_id, owner)
    return done


def _journal_folders(root: Path) -> list[Path]:
    try:
        return sorted(entry for entry in root.iterdir() if entry.is_dir())
    except FileNotFoundError:
        return []
