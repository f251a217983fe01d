"""Where steps run: this process, local processes in parallel, or a Ray cluster.

An executor takes :class:`~shipyard.pipelines.task.StepTask` s and gives back futures of
:class:`~shipyard.pipelines.task.TaskResult` s. The runner decides what to submit when (the
graph, the cache, retries); the executor only runs attempts, enforces their timeout and stops
them when asked. Plugins register under the ``shipyard.executors`` entry-point group.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol, runtime_checkable

from shipyard.errors import InvalidArgumentError
from shipyard.pipelines.task import StepTask, TaskResult, execute

__all__ = [
    "ENTRY_POINT_GROUP",
    "Executor",
    "InProcessExecutor",
    "ProcessExecutor",
    "RayExecutor",
    "get_executor",
]

ENTRY_POINT_GROUP = "shipyard.executors"
_RAY_HINT = "the Ray executor needs Ray: pip install 'shipyard-mlops[ray]'"


@runtime_checkable
class Executor(Protocol):
    """Runs step attempts.

    Example:
        >>> class ThreadExecutor:
        ...     name = "threads"
        ...     def __init__(self): self.pool = ThreadPoolExecutor()
        ...     def submit(self, task): return self.pool.submit(execute, task)
        ...     def cancel(self, future): future.cancel()
        ...     def close(self): self.pool.shutdown()
    """

    name: str

    def submit(self, task: StepTask) -> Future[TaskResult]:
        """Start an attempt; the future never raises for the step's own errors."""
        ...

    def cancel(self, future: Future[TaskResult]) -> None:
        """Stop an attempt that is still running (best effort)."""
        ...

    def close(self) -> None:
        """Release workers; called once when the run ends."""
        ...


class InProcessExecutor:
    """Runs each step in this process, one at a time, printing its output as it goes."""

    name = "inprocess"

    def __init__(self, *, echo: bool = True) -> None:
        self._echo = echo

    def submit(self, task: StepTask) -> Future[TaskResult]:
        future: Future[TaskResult] = Future()
        future.set_result(execute(task, echo=self._echo))
        return future

    def cancel(self, future: Future[TaskResult]) -> None:
        return None

    def close(self) -> None:
        return None


def _child(task: StepTask, conn: Any) -> None:
    try:
        result = execute(task)
    except BaseException as exc:  # the child must always answer
        result = TaskResult(ok=False, error=f"{type(exc).__name__}: {exc}")
    conn.send(result)
    conn.close()


class ProcessExecutor:
    """Runs each attempt in its own local process, independent branches in parallel.

    Processes are forked from a clean server process (``forkserver``), so the driver's threads
    and open connections never leak into a step. A step that outlives its timeout is killed.

    Args:
        max_workers: steps at once (default: the number of CPUs).
    """

    name = "processes"

    def __init__(self, *, max_workers: int | None = None) -> None:
        workers = max_workers or os.cpu_count() or 1
        if workers < 1:
            raise InvalidArgumentError("max_workers must be at least 1")
        import multiprocessing

        method = (
            "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        )
        self._context = multiprocessing.get_context(method)
        if method == "forkserver":
            self._context.set_forkserver_preload(["shipyard.pipelines.task"])
        self._slots = threading.Semaphore(workers)
        self._processes: dict[int, Any] = {}
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, task: StepTask) -> Future[TaskResult]:
        if task.fn is not None:
            task = _without_fn(task)
        future: Future[TaskResult] = Future()
        threading.Thread(
            target=self._run, args=(task, future), name=f"step-{task.step}", daemon=True
        ).start()
        return future

    def _run(self, task: StepTask, future: Future[TaskResult]) -> None:
        with self._slots:
            if self._closed or id(future) in self._cancelled:
                future.set_result(TaskResult(ok=False, error="cancelled"))
                return
            receiver, sender = self._context.Pipe(duplex=False)
            process = self._context.Process(  # type: ignore[attr-defined]
                target=_child, args=(task, sender), daemon=True
            )
            started = time.time_ns() // 1_000_000
            with self._lock:
                self._processes[id(future)] = process
            process.start()
            sender.close()
            deadline = None if task.timeout is None else time.monotonic() + task.timeout
            result: TaskResult | None = None
            while result is None:
                wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
                if receiver.poll(wait):
                    try:
                        result = receiver.recv()
                    except EOFError:
                        result = self._died(process, started)
                elif not process.is_alive() and not receiver.poll(0):
                    result = self._died(process, started)
                elif deadline is not None and time.monotonic() >= deadline:
                    process.kill()
                    result = TaskResult(
                        ok=False, error=f"StepTimeoutError: timed out after {task.timeout:g} s",
                        start_time=started, end_time=time.time_ns() // 1_000_000, timed_out=True,
                    )  # fmt: skip
            process.join(5)
            receiver.close()
            with self._lock:
                self._processes.pop(id(future), None)
            future.set_result(result)

    @staticmethod
    def _died(process: Any, started: int) -> TaskResult:
        process.join(5)
        return TaskResult(
            ok=False,
            error=f"the step's process exited with code {process.exitcode} before answering",
            start_time=started,
            end_time=time.time_ns() // 1_000_000,
        )

    def cancel(self, future: Future[TaskResult]) -> None:
        with self._lock:
            self._cancelled.add(id(future))
            process = self._processes.get(id(future))
        if process is not None and process.is_alive():
            process.kill()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            processes = list(self._processes.values())
        for process in processes:
            if process.is_alive():
                process.kill()


def _without_fn(task: StepTask) -> StepTask:
    from dataclasses import replace

    return replace(task, fn=None)


def _ray_execute(task: StepTask) -> TaskResult:
    return execute(task)


def check_ray_address(address: str, timeout: float = 3.0) -> None:
    """Fail fast, with a clear message, when a ``host:port`` Ray address does not answer."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        if address == "auto":
            return
        raise InvalidArgumentError(f"Ray address {address!r} is not host:port (or 'auto')")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise InvalidArgumentError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with "
            "`ray start --head` or leave out --ray-address for a local Ray"
        ) from None


class RayExecutor:
    """Runs each attempt as a Ray task with the step's CPUs and memory.

    Args:
        address: a running cluster (``host:port``, ``ray://host:port`` or ``auto``); default
            ``RAY_ADDRESS`` or, when unset, a local Ray started for the run.
        num_cpus: CPUs of a local Ray started here.
    """

    name = "ray"

    def __init__(self, *, address: str | None = None, num_cpus: int | None = None) -> None:
        address = address or os.environ.get("RAY_ADDRESS") or None
        if address is not None:
            check_ray_address(address)  # before importing Ray: a dead address fails at once
        try:
            import ray
        except ImportError as exc:
            raise InvalidArgumentError(_RAY_HINT) from exc
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False}
            if address is None and num_cpus is not None:
                kwargs["num_cpus"] = num_cpus
            ray.init(address=address, **kwargs)
            self._started = True
        self._remote = ray.remote(max_retries=0)(_ray_execute)
        self._refs: dict[int, Any] = {}

    def submit(self, task: StepTask) -> Future[TaskResult]:
        options: dict[str, Any] = {}
        if task.cpus is not None:
            options["num_cpus"] = task.cpus
        if task.memory is not None:
            options["memory"] = task.memory
        if task.fn is not None:
            _pickle_by_value(task.fn)
        ref = self._remote.options(**options).remote(task)
        future: Future[TaskResult] = Future()
        self._refs[id(future)] = ref
        threading.Thread(
            target=self._wait, args=(ref, task, future), name=f"ray-{task.step}", daemon=True
        ).start()
        return future

    def _wait(self, ref: Any, task: StepTask, future: Future[TaskResult]) -> None:
        ray = self._ray
        started = time.time_ns() // 1_000_000
        ready, _ = ray.wait([ref], timeout=task.timeout)
        if not ready:
            ray.cancel(ref, force=True)
            result = TaskResult(
                ok=False, error=f"StepTimeoutError: timed out after {task.timeout:g} s",
                start_time=started, end_time=time.time_ns() // 1_000_000, timed_out=True,
            )  # fmt: skip
        else:
            try:
                result = ray.get(ref)
            except Exception as exc:  # the worker died, or the task was cancelled
                result = TaskResult(
                    ok=False, error=f"{type(exc).__name__}: {exc}", start_time=started,
                    end_time=time.time_ns() // 1_000_000,
                )  # fmt: skip
        self._refs.pop(id(future), None)
        future.set_result(result)

    def cancel(self, future: Future[TaskResult]) -> None:
        ref = self._refs.get(id(future))
        if ref is not None:
            self._ray.cancel(ref, force=True)

    def close(self) -> None:
        for ref in list(self._refs.values()):
            self._ray.cancel(ref, force=True)
        if self._started:
            self._ray.shutdown()


def _pickle_by_value(fn: Callable[..., Any]) -> None:
    """Ray workers cannot import a pipeline file's module by name: ship its code instead."""
    import sys

    module = sys.modules.get(fn.__module__)
    if module is None or fn.__module__ in ("__main__", "builtins"):
        return
    import cloudpickle  # type: ignore[import-untyped]

    if not getattr(module, "__file__", "").startswith(sys.prefix):
        cloudpickle.register_pickle_by_value(module)


_BUILTIN: dict[str, Callable[..., Executor]] = {
    "inprocess": InProcessExecutor,
    "local": InProcessExecutor,
    "processes": ProcessExecutor,
    "ray": RayExecutor,
}


def get_executor(name: str, **options: Any) -> Executor:
    """An executor by name: ``inprocess`` (or ``local``), ``processes``, ``ray``, or a plugin's.

    Raises:
        InvalidArgumentError: no executor has that name.
    """
    factory = _BUILTIN.get(name)
    if factory is None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                factory = ep.load()
                break
    if factory is None:
        known = ", ".join(
            sorted({*_BUILTIN, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})
        )
        raise InvalidArgumentError(f"unknown executor {name!r}; choose one of: {known}")
    accepted = {
        "inprocess": {"echo"},
        "local": {"echo"},
        "processes": {"max_workers"},
        "ray": {"address", "num_cpus"},
    }.get(name)
    chosen = {
        k: v for k, v in options.items() if v is not None and (accepted is None or k in accepted)
    }
    return factory(**chosen)
