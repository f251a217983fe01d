"""Adaptive batching: concurrent small requests to one model are scored in one call.

The first request waiting for a model opens a batch; it closes when ``max_batch_size`` rows are
in it or ``max_wait`` seconds have passed, whichever is first. Requests wait on plain asyncio
futures; a closed batch is joined, scored and split again in one call to a small thread pool
(so the event loop keeps reading requests meanwhile), and each request gets its own rows back.
Input is checked against the signature *before* it joins a batch, so one bad request never
fails another; should the model still reject a batch, its requests are scored one by one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.serving.models import ServedModel

__all__ = ["Batcher"]

Outcome = tuple[bool, Any]
"""``(True, result)`` or ``(False, exception)`` for one request of a batch."""


@dataclass
class _Batch:
    served: ServedModel
    method: str
    data: list[Any] = field(default_factory=list)
    futures: list[asyncio.Future[Any]] = field(default_factory=list)
    rows: int = 0
    timer: asyncio.TimerHandle | None = None


def _kind(data: Any) -> tuple[Any, ...] | None:
    """What must be alike for inputs to share a model call; None when they cannot."""
    import numpy as np

    if isinstance(data, np.ndarray):
        return ("array", data.shape[1:], data.dtype.str) if data.ndim >= 1 else None
    import pandas as pd

    return ("frame",) if isinstance(data, pd.DataFrame) else None


def _join(parts: list[Any]) -> Any:
    import numpy as np

    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    import pandas as pd

    return pd.concat(parts, ignore_index=True)


def _slice(result: Any, start: int, stop: int) -> Any:
    iloc = getattr(result, "iloc", None)
    return iloc[start:stop] if iloc is not None else result[start:stop]


def _score(served: ServedModel, method: str, parts: list[Any]) -> list[Outcome]:
    """Score the parts together (in a pool thread); one by one if the model rejects the batch."""
    if len(parts) > 1:
        try:
            result = served.call(method, _join(parts))
        except Exception:  # noqa: S110 - scored one by one below, each failing on its own
            pass
        else:
            outcomes: list[Outcome] = []
            start = 0
            for part in parts:
                outcomes.append((True, _slice(result, start, start + len(part))))
                start += len(part)
            return outcomes
    alone: list[Outcome] = []
    for part in parts:
        try:
            alone.append((True, served.call(method, part)))
        except Exception as exc:
            alone.append((False, exc))
    return alone


class Batcher:
    """Scores requests for any number of models, batching array and DataFrame input.

    Args:
        max_batch_size: rows per model call at most; 1 turns batching off.
        max_wait: seconds the first request of a batch waits for company.
        threads: model calls that may run at once (each in its own thread).
        on_batch: called with ``(model name, rows)`` for each model call.
        on_queue: called with ``(model name, requests waiting in its open batches)`` when that
            changes.
    """

    def __init__(
        self,
        max_batch_size: int = 64,
        max_wait: float = 0.002,
        threads: int = 2,
        on_batch: Callable[[str, int], None] | None = None,
        on_queue: Callable[[str, int], None] | None = None,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self.threads = threads
        self._on_batch = on_batch
        self._on_queue = on_queue
        self._open: dict[tuple[Any, ...], _Batch] = {}
        self._waiting: dict[str, int] = {}  # model name -> requests in its open batches
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        """Let running model calls finish and stop the threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _submit(self, batch: _Batch) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="shipyard-model")
        if self._on_batch is not None:
            self._on_batch(batch.served.name, batch.rows)
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(self._pool, _score, batch.served, batch.method, batch.data)
        done.add_done_callback(partial(_settle, batch.futures))

    async def predict(self, served: ServedModel, method: str, data: Any) -> Any:
        """``served.call(method, data)``, possibly together with other requests' rows."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        rows = len(data)
        kind = _kind(data) if self.max_batch_size > 1 and rows < self.max_batch_size else None
        if kind is None:
            self._submit(_Batch(served, method, [data], [future], rows))
            return await future
        key = (id(served), method, kind)
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = _Batch(served, method)
            batch.timer = loop.call_later(self.max_wait, self._close, key)
        batch.data.append(data)
        batch.futures.append(future)
        batch.rows += rows
        self._queued(served.name, 1)
        if batch.rows >= self.max_batch_size:
            self._close(key)
        return await future

    def _queued(self, name: str, change: int) -> None:
        waiting = self._waiting[name] = self._waiting.get(name, 0) + change
        if self._on_queue is not None:
            self._on_queue(name, waiting)

    def _close(self, key: tuple[Any, ...]) -> None:
        batch = self._open.pop(key, None)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        self._queued(batch.served.name, -len(batch.futures))
        self._submit(batch)


def _settle(futures: list[asyncio.Future[Any]], done: asyncio.Future[list[Outcome]]) -> None:
    """Hand each waiting request its outcome (on the event loop)."""
    error = None if done.cancelled() else done.exception()
    for i, future in enumerate(futures):
        if future.done():  # the request was cancelled (the client went away)
            continue
        if done.cancelled():
            future.cancel()
        elif error is not None:
            future.set_exception(error)
        else:
            ok, value = done.result()[i]
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
