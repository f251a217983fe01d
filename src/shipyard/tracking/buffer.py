"""Metric buffering: ``log_metric`` journals and buffers; batches reach the store in one write.

Each metric is first written to its run's journal (:mod:`shipyard.tracking.journal`) — once
that write returns the metric survives ``kill -9`` — and kept in memory. A batch is written to
the store when the buffer reaches its size limit (in the caller's thread, which also bounds
memory), every ``interval`` seconds by a daemon thread, and whenever ``flush()`` is called
(run end, ``shipyard.flush()``, interpreter exit). Each journal segment in a batch is applied
at most once, and its file is deleted only after the store has committed it.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

from shipyard.entities import JournalSegment, MetricRecord, RunOwner
from shipyard.tracking.journal import RunJournal
from shipyard.tracking.liveness import this_process

__all__ = ["MetricBuffer"]

log = logging.getLogger(__name__)

_live_buffers: weakref.WeakSet[MetricBuffer] = weakref.WeakSet()


class MetricBuffer:
    """A thread-safe, journaled queue of metrics waiting to be written by ``sink``.

    Args:
        sink: writes journal segments in one transaction, each at most once (e.g.
            ``Backend.log_journal``); raises on failure.
        journal_root: the folder for this process's journals (``<home>/journal``).
        owner: this process, recorded in each journal segment.
        store: the store the metrics are for (URL without password), recorded likewise.
        max_size: buffered metrics that trigger a flush in the caller's thread.
        interval: seconds between background flushes.
        sync: ``fsync`` each journal segment before its batch is written to the store.
    """

    def __init__(
        self,
        sink: Callable[[Sequence[JournalSegment]], object],
        *,
        journal_root: Path,
        owner: RunOwner,
        store: str = "",
        max_size: int = 10_000,
        interval: float = 2.0,
        sync: bool = False,
    ) -> None:
        self._sink = sink
        self._journal_root = journal_root
        self._owner = owner
        self._store = store
        self._max_size = max_size
        self._interval = interval
        self._sync = sync
        self._journals: dict[str, RunJournal] = {}
        self._count = 0
        self._unapplied: list[tuple[RunJournal, JournalSegment]] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        _live_buffers.add(self)

    def __len__(self) -> int:
        """Metrics logged but not yet in the store."""
        return self._count + sum(len(segment.metrics) for _, segment in self._unapplied)

    def _journal(self, run_id: str) -> RunJournal:
        journal = self._journals.get(run_id)
        if journal is None:
            journal = self._journals[run_id] = RunJournal(
                self._journal_root, run_id, self._owner, store=self._store, sync=self._sync
            )
            if self._thread is None and not self._closed:
                self._start_thread()
        return journal

    def add(self, run_id: str, key: str, value: float, step: int, timestamp: int) -> None:
        """Journal and buffer one metric; when this returns it survives ``kill -9``."""
        with self._lock:
            journal = self._journals.get(run_id) or self._journal(run_id)
            journal.append(key, value, step, timestamp)
            self._count += 1
            full = self._count >= self._max_size
        if full:
            self._flush_when_full()

    def extend(self, run_id: str, metrics: Sequence[MetricRecord]) -> None:
        """Journal and buffer several metrics of one run with one write."""
        with self._lock:
            self._journal(run_id).extend(metrics)
            self._count += len(metrics)
            full = self._count >= self._max_size
        if full:
            self._flush_when_full()

    def flush(self) -> None:
        """Write everything buffered so far; raise if the store refuses it (nothing is lost:
        the batch stays journaled and buffered for the next attempt)."""
        with self._flush_lock:
            self._flush_locked()

    def _flush_when_full(self) -> None:
        # The metric is journaled already: a store that is down must not fail the caller's
        # log_metric (a retry would log it twice). The flusher thread keeps trying.
        try:
            self.flush()
        except Exception as exc:
            log.warning("could not write buffered metrics yet (%s); they are journaled", exc)

    def _flush_locked(self) -> None:
        with self._lock:
            taken = [
                (journal, segment)
                for journal in self._journals.values()
                if (segment := journal.take()) is not None
            ]
            self._count = 0
        for journal, _ in taken:
            journal.sync_taken()  # SHIPYARD_SYNC: outside the lock, loggers go on
        batch = self._unapplied + taken
        if not batch:
            return
        self._unapplied = batch
        self._sink([segment for _, segment in batch])
        self._unapplied = []
        for journal, segment in batch:
            journal.discard(segment.segment)

    def close_journal(self, run_id: str) -> None:
        """Flush, then forget the journal of a run that has ended.

        The flush lock is held throughout: another thread's flush cannot be between taking a
        segment and storing it while the journal's files are deleted.
        """
        with self._flush_lock:
            self._flush_locked()
            with self._lock:
                journal = self._journals.get(run_id)
                if journal is None or journal.pending:
                    return  # logged to again meanwhile: keep it
                del self._journals[run_id]
            journal.close()

    def close(self) -> None:
        """Flush, stop the background thread and delete the journals now in the store."""
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._interval + 5)
        with self._flush_lock:
            self._flush_locked()
            with self._lock:
                journals, self._journals = list(self._journals.values()), {}
            for journal in journals:
                journal.close()

    def _start_thread(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="shipyard-metric-flusher", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        warned = False
        while not self._closed:
            self._wake.wait(self._interval)
            if self._closed:
                return
            try:
                self.flush()
                warned = False
            except Exception as exc:  # kept journaled; the next flush retries or raises
                if not warned:
                    log.warning("could not write buffered metrics yet (%s); will retry", exc)
                    warned = True

    def _after_fork(self, owner: RunOwner) -> None:
        # A forked child has no flusher thread and must neither write its parent's metrics
        # nor touch its parent's journal files; it journals its own metrics afresh.
        for journal in self._journals.values():
            journal.abandon()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._journals = {}
        self._unapplied = []
        self._count = 0
        self._thread = None
        self._owner = owner


def _reset_after_fork() -> None:
    owner = this_process()
    for buffer in list(_live_buffers):
        buffer._after_fork(owner)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
