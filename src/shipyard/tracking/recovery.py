"""After a crash: replay the journals of dead processes, mark their runs ``CRASHED``; end or
resume such a run by hand.

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

from shipyard.entities import Run, RunOwner, RunStatus
from shipyard.errors import InvalidArgumentError, ShipyardError
from shipyard.store import Backend
from shipyard.tracking.journal import (
    JOURNAL_DIR,
    JOURNAL_MAGIC,
    SEGMENT_SUFFIX,
    journal_header,
    read_journal,
)
from shipyard.tracking.liveness import owner_is_dead, this_process

__all__ = ["Recovery", "check_resumable", "end_stored_run", "owner_alive", "recover"]

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

    def merge(self, other: Recovery) -> Recovery:
        """Both recoveries' work as one report."""
        return Recovery(
            self.journals + other.journals,
            self.metrics + other.metrics,
            self.crashed + other.crashed,
            self.problems + other.problems,
        )


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
        try:
            _replay(backend, folder, watched, now, heartbeat_timeout, done)
        except FileNotFoundError:
            continue  # its writer closed it meanwhile
        except (ShipyardError, OSError) as exc:  # one bad journal must not stop the rest
            done.problems.append(f"{folder}: {exc}")
            log.warning("could not replay the metric journal %s: %s", folder, exc)
    if done.journals:
        watched = {run_id: (owner, beat) for run_id, owner, beat in backend.watched_runs()}
    for run_id, (owner, beat) in watched.items():
        if owner == me or not owner_is_dead(owner, beat, now, heartbeat_timeout):
            continue
        try:
            end = backend.mark_run_crashed(run_id, heartbeat=beat, now=now)
        except ShipyardError as exc:
            done.problems.append(f"run {run_id}: {exc}")
            continue
        if end is not None:
            done.crashed.append((run_id, end))
            log.info("run %s crashed (%s is gone); marked CRASHED", run_id, owner)
    return done


def _replay(
    backend: Backend,
    folder: Path,
    watched: dict[str, tuple[RunOwner, int]],
    now: int,
    timeout_s: float,
    done: Recovery,
) -> None:
    """Replay one journal folder into the store if its writer is dead."""
    header = journal_header(folder)
    if header is None:
        _tidy(folder, now)
        return
    if header.store and header.store != backend.url:
        return  # metrics for another store that this home was used with
    # A writer elsewhere is judged by its run's heartbeat and by when it last touched its
    # journal (a shared home); a run no longer RUNNING has no owner heartbeat to go by. The
    # files are looked at only for a writer that seems dead: live local ones cost no stat.
    beat = watched[header.run_id][1] if header.run_id in watched else 0
    if header.owner == this_process() or not owner_is_dead(header.owner, beat, now, timeout_s):
        return
    if not owner_is_dead(header.owner, max(beat, _last_touched(folder)), now, timeout_s):
        return
    journal = read_journal(folder)
    if journal is None:
        return
    done.metrics += backend.log_journal(journal.segments)
    journal.delete()
    done.journals += 1


def _last_touched(folder: Path) -> int:
    """Newest modification time (ms) of a journal folder or its segments."""
    times = [folder.stat().st_mtime_ns]
    for path in folder.iterdir():
        with contextlib.suppress(FileNotFoundError):
            times.append(path.stat().st_mtime_ns)
    return max(times) // 1_000_000


_CUT_OFF_AFTER_MS = 2_000
"""A writer writes a segment's header right after creating it; one still without a header
after this long was left by a writer killed in between."""


def _tidy(folder: Path, now: int) -> None:
    """A folder with no readable header: empty (its writer re-creates it when it needs it),
    or holding a segment cut off before its header was written (no metric in it was
    acknowledged): such a segment is deleted once it is a few seconds old."""
    for path in folder.glob(f"*{SEGMENT_SUFFIX}"):
        if now - path.stat().st_mtime_ns // 1_000_000 <= _CUT_OFF_AFTER_MS:
            continue
        with path.open("rb") as segment:
            head = segment.read(len(JOURNAL_MAGIC) + 4096)
        if b"\n" not in head[len(JOURNAL_MAGIC) :] and JOURNAL_MAGIC.startswith(
            head[: len(JOURNAL_MAGIC)]
        ):
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()


def _journal_folders(root: Path) -> list[Path]:
    try:
        return sorted(entry for entry in root.iterdir() if entry.is_dir())
    except FileNotFoundError:
        return []


def owner_alive(run: Run, *, timeout_s: float, now: int | None = None) -> bool:
    """Whether a RUNNING run's owning process can still log to it (False for a run with no
    recorded owner, which nothing watches)."""
    if run.status is not RunStatus.RUNNING or run.owner is None:
        return False
    now = time.time_ns() // 1_000_000 if now is None else now
    return not owner_is_dead(run.owner, run.heartbeat or 0, now, timeout_s)


def _describe_owner(run: Run, now: int) -> str:
    if run.owner is None:
        return "no owner recorded"
    ago = (
        ""
        if run.heartbeat is None
        else f", last heartbeat {(now - run.heartbeat) / 1000:.0f} s ago"
    )
    return f"{run.owner}{ago}"


def end_stored_run(
    backend: Backend,
    run_id: str,
    status: RunStatus | str = RunStatus.KILLED,
    *,
    heartbeat_timeout: float = 60.0,
    force: bool = False,
) -> Run:
    """End a run from outside the process that ran it (``shipyard runs end``).

    The end time is the run's last sign of life (its last heartbeat or logged metric), not
    the time of this call — unless ``force`` ends a run whose process is still alive.

    Raises:
        InvalidArgumentError: the run has already ended, its process is alive (without
            ``force``), or ``status`` is not a final status.
    """
    final = RunStatus(str(status).upper())
    if final not in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED):
        raise InvalidArgumentError(
            f"a run can be ended as finished, failed or killed, not {str(status).lower()!r}"
        )
    run = backend.get_run(run_id)
    now = time.time_ns() // 1_000_000
    if run.status not in (RunStatus.RUNNING, RunStatus.CRASHED):
        raise InvalidArgumentError(
            f"run {run.run_id} has already ended ({run.status.value}); nothing to do"
        )
    end: int | None = run.end_time
    if run.status is RunStatus.RUNNING:
        if owner_alive(run, timeout_s=heartbeat_timeout, now=now):
            if not force:
                raise InvalidArgumentError(
                    f"run {run.run_id} is still running ({_describe_owner(run, now)}); stop "
                    "that process, or pass --force to end the run anyway"
                )
            end = now
        else:
            end = backend.mark_run_crashed(run.run_id, heartbeat=run.heartbeat, now=now)
            if end is None:  # it moved on meanwhile (a heartbeat, another end): look again
                return end_stored_run(
                    backend, run_id, final, heartbeat_timeout=heartbeat_timeout, force=force
                )
    backend.end_run(run.run_id, final, end if end is not None else now, only_active=True)
    return backend.get_run(run.run_id)


def check_resumable(backend: Backend, run_id: str, *, heartbeat_timeout: float = 60.0) -> Run:
    """The run ``shipyard runs resume`` would continue.

    Raises:
        InvalidArgumentError: a live process still owns the run.
    """
    run = backend.get_run(run_id)
    now = time.time_ns() // 1_000_000
    if owner_alive(run, timeout_s=heartbeat_timeout, now=now):
        raise InvalidArgumentError(
            f"run {run.run_id} is still running ({_describe_owner(run, now)}); there is "
            "nothing to resume"
        )
    return run
