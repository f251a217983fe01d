"""Adaptive batching: concurrent small requests to one model are scored in one call.

The first request waiting for a model opens a batch; it closes when ``max_batch_size`` rows are
in it or ``max_wait`` seconds have passed, whichever is first. The batch is scored in a worker
thread (so the event loop keeps reading requests) and each request gets its own rows back. Input
is checked against the signature *before* it joins a batch, so one bad request never fails
another; should the model still reject a batch, its requests are scored one by one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.serving.models import ServedModel

__all__ = ["Batcher"]


@dataclass
class _Pending:
    data: Any
    rows: int
    future: asyncio.Future[Any]


@dataclass
class _Queue:
    items: list[_Pending] = field(default_factory=list)
    rows: int = 0
    full: asyncio.Event = field(default_factory=asyncio.Event)


def _call(served: ServedModel, method: str, data: Any) -> Any:
    return getattr(served.model, method)(data)


def _slice(result: Any, start: int, stop: int) -> Any:
    iloc = getattr(result, "iloc", None)
    return iloc[start:stop] if iloc is not None else result[start:stop]


class Batcher:
    """Scores requests for any number of models, batching DataFrame input.

    Args:
        max_batch_size: rows per model call at most; 1 turns batching off.
        max_wait: seconds the first request of a batch waits for company.
        on_batch: called with ``(model name, rows)`` for each model call.
        on_queue: called with ``(model name, waiting requests)`` when that changes.
    """

    def __init__(
        self,
        max_batch_size: int = 64,
        max_wait: float = 0.002,
        on_batch: Callable[[str, int], None] | None = None,
        on_queue: Callable[[str, int], None] | None = None,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self._on_batch = on_batch
        self._on_queue = on_queue
        self._queues: dict[tuple[int, str], _Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def _run(self, served: ServedModel, method: str, data: Any, rows: int) -> Any:
        import anyio.to_thread

        if self._on_batch is not None:
            self._on_batch(served.name, rows)
        return await anyio.to_thread.run_sync(_call, served, method, data)

    async def predict(self, served: ServedModel, method: str, data: Any) -> Any:
        """``served.model.<method>(data)``, possibly together with other requests' rows."""
        import pandas as pd

        rows = len(data)
        if (
            self.max_batch_size <= 1
            or not isinstance(data, pd.DataFrame)
            or rows >= self.max_batch_size
        ):
            return await self._run(served, method, data, rows)
        key = (id(served), method)
        queue = self._queues.get(key)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if queue is None:
            queue = self._queues[key] = _Queue()
            queue.items.append(_Pending(data, rows, future))
            queue.rows = rows
            self._report(served, queue)
            # A task of its own: should this request be cancelled, the batch still completes.
            task = asyncio.get_running_loop().create_task(
                self._gather_and_score(key, queue, served, method)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            queue.items.append(_Pending(data, rows, future))
            queue.rows += rows
            self._report(served, queue)
            if queue.rows >= self.max_batch_size:
                queue.full.set()
        return await future

    def _report(self, served: ServedModel, queue: _Queue) -> None:
        if self._on_queue is not None:
            self._on_queue(served.name, len(queue.items))

    async def _gather_and_score(
        self, key: tuple[int, str], queue: _Queue, served: ServedModel, method: str
    ) -> None:
        import pandas as pd

        try:
            await asyncio.wait_for(queue.full.wait(), self.max_wait)
        except TimeoutError:
            pass
        del self._queues[key]  # later requests start the next batch
        items = queue.items
        if self._on_queue is not None:
            self._on_queue(served.name, 0)
        if len(items) == 1:
            await self._settle_one(served, method, items[0])
            return
        try:
            frame = pd.concat([item.data for item in items], ignore_index=True)
            result = await self._run(served, method, frame, len(frame))
        except Exception:
            for item in items:
                await self._settle_one(served, method, item)
            return
        start = 0
        for item in items:
            if not item.future.done():
                item.future.set_result(_slice(result, start, start + item.rows))
            start += item.rows

    async def _settle_one(self, served: ServedModel, method: str, item: _Pending) -> None:
        try:
            result = await self._run(served, method, item.data, item.rows)
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(exc)
            return
        if not item.future.done():
            item.future.set_result(result)
