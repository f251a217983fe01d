"""Metric buffering: ``log_metric`` appends to memory; batches reach the store in one write.

A batch is written when the buffer reaches its size limit (in the caller's thread, which also
bounds memory), every ``interval`` seconds by a daemon thread, and whenever ``flush()`` is
called (run end, ``shipyard.flush()``, interpreter exit). A metric is acknowledged once a
flush that included it has returned.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Sequence

from shipyard.entities import Metric

__all__ = ["MetricBuffer"]

log = logging.getLogger(__name__)

_live_buffers: weakref.WeakSet[MetricBuffer] = weakref.WeakSet()


class MetricBuffer:
    """A thread-safe list of metrics waiting to be written by ``sink``.

    Args:
        sink: writes one batch atomically (e.g. ``Backend.log_metrics``); raises on failure.
        max_size: buffered metrics that trigger a flush in the caller's thread.
        interval: seconds between background flushes.
    """

    def __init__(
        self,
        sink: Callable[[Sequence[Metric]], None],
        *,
        max_size: int = 10_000,
        interval: float = 2.0,
    ) -> None:
        self._sink = sink
        self._max_size = max_size
        self._interval = interval
        self._pending: list[Metric] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        _live_buffers.add(self)

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, metric: Metric) -> None:
        with self._lock:
            self._pending.append(metric)
            full = len(self._pending) >= self._max_size
            if self._thread is None and not self._closed:
                self._start_thread()
        if full:
            self.flush()

    def extend(self, metrics: Sequence[Metric]) -> None:
        with self._lock:
            self._pending.extend(metrics)
            full = len(self._pending) >= self._max_size
            if self._thread is None and not self._closed:
                self._start_thread()
        if full:
            self.flush()

    def flush(self) -> None:
        """Write everything buffered so far; raise if the store refuses it (nothing is lost:
        the batch stays buffered for the next attempt)."""
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                self._sink(batch)
            except BaseException:
                with self._lock:
                    self._pending[:0] = batch
                raise

    def close(self) -> None:
        """Flush and stop the background thread."""
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._interval + 5)
        self.flush()

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
            except Exception as exc:  # kept buffered; the next flush retries or raises
                if not warned:
                    log.warning("could not write buffered metrics yet (%s); will retry", exc)
                    warned = True

    def _after_fork(self) -> None:
        # A forked child has no flusher thread and must not write its parent's metrics.
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._pending = []
        self._thread = None


def _reset_after_fork() -> None:
    for buffer in list(_live_buffers):
        buffer._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
