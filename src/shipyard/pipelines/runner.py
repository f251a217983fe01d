"""Run a pipeline: walk the graph, reuse what the cache holds, run the rest, record it all.

The runner lives in the driver process and is the only part that writes the metadata store;
executors only run step attempts. A step is reused when a cache entry exists under its key and
every output object is still in the artifact store. A failed step stops the run (steps already
running are stopped too); the steps that finished are cached, so a re-run resumes. Ctrl-C and
SIGTERM mark the run ``CANCELLED``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shipyard.artifacts import ArtifactStore
from shipyard.entities import (
    DatasetRef,
    LineageEdge,
    PipelineRun,
    PipelineStatus,
    StepOutput,
    StepRun,
    StepStatus,
)
from shipyard.errors import InvalidArgumentError, NotFoundError, ShipyardError
from shipyard.pipelines.cache import KeyParts, cache_key, path_digest
from shipyard.pipelines.code import code_digests
from shipyard.pipelines.dsl import Node, Output, Pipeline
from shipyard.pipelines.executors import Executor, get_executor
from shipyard.pipelines.materializers import materializer_versions
from shipyard.pipelines.task import DatasetInput, FunctionRef, StepTask, TaskResult
from shipyard.store import Backend
from shipyard.tracking import open_workspace
from shipyard.tracking.liveness import this_process
from shipyard.tracking.workspace import Workspace

__all__ = [
    "STEP_RUN_TAG",
    "PipelineCancelledError",
    "PipelineFailedError",
    "PipelineResult",
    "load_output",
    "run_pipeline",
    "shown_status",
    "step_logs",
]

STEP_RUN_TAG = "shipyard.pipeline.step_run"
RUN_TAG = "shipyard.pipeline.run"
_HEARTBEAT_S = 5.0


class PipelineFailedError(ShipyardError):
    """A step failed; the run is recorded ``FAILED`` with the step's traceback."""

    exit_code = 1

    def __init__(self, message: str, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class PipelineCancelledError(ShipyardError):
    """The run was cancelled (Ctrl-C, SIGTERM); recorded ``CANCELLED``."""

    exit_code = 130

    def __init__(self, message: str, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class _Cancelled(BaseException):
    pass


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class PipelineResult:
    """A finished run: its record, its steps, and its outputs on demand."""

    run: PipelineRun
    steps: list[StepRun]
    artifacts: ArtifactStore

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def executed(self) -> list[str]:
        """Steps that ran (not reused from the cache)."""
        return [s.name for s in self.steps if s.status is StepStatus.FINISHED]

    @property
    def cached(self) -> list[str]:
        """Steps whose outputs were reused."""
        return [s.name for s in self.steps if s.status is StepStatus.CACHED]

    def step(self, name: str) -> StepRun:
        for step_run in self.steps:
            if step_run.name == name:
                return step_run
        raise NotFoundError(f"run {self.run_id} has no step {name!r}")

    def output(self, step: str, name: str = "output", *, allow_pickle: bool = False) -> Any:
        """Load an output of a step (verified against its digest)."""
        return load_output(self.artifacts, self.step(step), name, allow_pickle=allow_pickle)


def load_output(
    store: ArtifactStore, step_run: StepRun, name: str = "output", *, allow_pickle: bool = False
) -> Any:
    """Load output ``name`` of a step run from the artifact store."""
    import tempfile

    from shipyard.pipelines.task import _read

    for output in step_run.outputs:
        if output.name == name:
            with tempfile.TemporaryDirectory(prefix="shipyard-output-") as folder:
                return _read(store, output, Path(folder), allow_pickle)
    names = ", ".join(o.name for o in step_run.outputs) or "none"
    raise NotFoundError(f"step {step_run.name!r} has no output {name!r} (outputs: {names})")


@dataclass
class _Prepared:
    node: Node
    record: StepRun
    code: dict[str, str]
    datasets: dict[str, DatasetInput]
    """Argument -> resolved dataset version."""
    reads: dict[str, str]
    """Declared external read -> digest."""
    read_refs: list[str]
    """Dataset versions the step reads (``name@3``), arguments and declared reads."""


def _resolve_dataset(backend: Backend, ref: DatasetRef) -> DatasetInput:
    version = backend.get_dataset_version(ref.name, ref.version)
    source_name = Path(version.source).name if version.source.startswith("/") else ""
    filename = source_name or f"{version.dataset}.{version.format or 'bin'}"
    return DatasetInput(
        ref=f"{version.dataset}@{version.version}",
        digest=version.digest,
        kind=version.kind,
        format=version.format or "",
        filename=filename,
    )


def _prepare(pipe: Pipeline, nodes: list[Node], backend: Backend, run_id: str) -> list[_Prepared]:
    """Resolve every dataset and external read and hash every step's code, before recording."""
    codes: dict[int, dict[str, str]] = {}
    memo: dict[int, Any] = {}  # each function parsed once per run, however many steps use it
    resolved: dict[DatasetRef, DatasetInput] = {}

    def dataset(ref: DatasetRef, step: str) -> DatasetInput:
        if ref not in resolved:
            try:
                resolved[ref] = _resolve_dataset(backend, ref)
            except NotFoundError as exc:
                raise InvalidArgumentError(f"step {step!r}: {exc}") from None
        return resolved[ref]

    prepared = []
    for node in nodes:
        step = node.step
        if id(step) not in codes:
            codes[id(step)] = code_digests(step.fn, memo)
        datasets = {
            arg: dataset(value, node.name)
            for arg, value in node.arguments.items()
            if isinstance(value, DatasetRef)
        }
        reads: dict[str, str] = {}
        read_refs = [d.ref for d in datasets.values()]
        for item in step.options.reads:
            if isinstance(item, DatasetRef):
                found = dataset(item, node.name)
                reads[str(item)] = found.digest
                read_refs.append(found.ref)
            else:
                reads[str(item)] = path_digest(Path(item), step=node.name)
        record = StepRun(
            step_run_id=uuid.uuid4().hex,
            run_id=run_id,
            name=node.name,
            position=node.position,
            function=node.function,
            status=StepStatus.PENDING,
            upstream=node.upstream,
        )
        prepared.append(
            _Prepared(
                node, record, codes[id(step)], datasets, reads, list(dict.fromkeys(read_refs))
            )
        )
    return prepared


def _function_ref(fn: Callable[..., Any]) -> FunctionRef:
    import sys

    module = sys.modules.get(fn.__module__)
    file = getattr(module, "__file__", None)
    folder = str(Path(file).resolve().parent) if file else None
    return FunctionRef(fn.__module__, fn.__qualname__, path=folder, file=file)


@contextlib.contextmanager
def _cancel_on_sigterm() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Cancelled("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Heartbeat:
    def __init__(self, backend: Backend, run_id: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(backend, run_id), name="pipeline-heartbeat", daemon=True
        )
        self._thread.start()

    def _beat(self, backend: Backend, run_id: str) -> None:
        while not self._stop.wait(_HEARTBEAT_S):
            with contextlib.suppress(Exception):  # a missed beat is retried at the next one
                backend.beat_pipeline_run(run_id, _now_ms())

    def stop(self) -> None:
        self._stop.set()


class _Run:
    """The state of one run while it goes."""

    def __init__(
        self,
        ws: Workspace,
        run: PipelineRun,
        prepared: list[_Prepared],
        executor: Executor,
        progress: Callable[[StepRun], None] | None,
    ) -> None:
        self.ws = ws
        self.backend = ws.backend
        self.store = ws.artifacts
        self.run = run
        self.prepared = {p.node.name: p for p in prepared}
        self.order = [p.node.name for p in prepared]
        self.executor = executor
        self.progress = progress
        self.outputs: dict[str, dict[str, StepOutput]] = {}
        self.records: dict[str, StepRun] = {p.node.name: p.record for p in prepared}
        self.running: dict[Future[TaskResult], tuple[str, int]] = {}
        self.retries: list[tuple[float, str, int]] = []
        self.failed: StepRun | None = None
        self.deferred: list[StepRun] = []
        self.materializers = materializer_versions()

    def save(self, record: StepRun, *, defer: bool = False) -> None:
        """Record a step's new state; ``defer`` batches it with the next save (cache hits of
        one round are written in one transaction)."""
        self.records[record.name] = record
        self.deferred.append(record)
        if not defer:
            self.flush()
        if self.progress is not None:
            self.progress(record)

    def flush(self) -> None:
        if self.deferred:
            self.backend.save_step_runs(self.deferred)
            self.deferred = []

    def key(self, item: _Prepared) -> KeyParts:
        inputs: dict[str, str] = {}
        params: dict[str, Any] = {}
        for arg, value in item.node.arguments.items():
            if isinstance(value, Output):
                inputs[arg] = self.outputs[value.node][value.name].digest
            elif isinstance(value, DatasetRef):
                inputs[arg] = item.datasets[arg].digest
            else:
                params[arg] = value
        return KeyParts(
            code=item.code,
            params=params,
            inputs=inputs,
            reads=item.reads,
            materializers=self.materializers,
            outputs=list(item.node.step.options.outputs),
        )

    def ready(self) -> list[str]:
        return [
            name
            for name in self.order
            if self.records[name].status is StepStatus.PENDING
            and name not in {n for n, _ in self.running.values()}
            and name not in {n for _, n, _ in self.retries}
            and all(up in self.outputs for up in self.prepared[name].node.upstream)
        ]

    def start(self, name: str, attempt: int) -> None:
        item = self.prepared[name]
        options = item.node.step.options
        parts = self.key(item)
        key = cache_key(parts)
        stored = parts.to_dict()
        stored["sources"] = {
            arg: f"{value.node}.{value.name}"
            for arg, value in item.node.arguments.items()
            if isinstance(value, Output)
        }
        if not options.cache:
            stored["cache"] = False
        record = replace(self.records[name], cache_key=key, key_parts=stored, attempts=attempt)
        if attempt == 1 and options.cache:
            hit = self.backend.get_cached_step(key)
            if hit is not None and all(self.store.exists(o.digest) for o in hit[0]):
                now = _now_ms()
                self.outputs[name] = {o.name: o for o in hit[0]}
                self.save(
                    replace(
                        record,
                        status=StepStatus.CACHED,
                        cache_hit=True,
                        outputs=hit[0],
                        reused_from=hit[1],
                        attempts=0,
                        start_time=now,
                        end_time=now,
                    ),
                    defer=True,
                )
                return
            if hit is not None:
                self.backend.forget_cached_step(key)  # its objects are gone from the store
        arguments: dict[str, Any] = {}
        for arg, value in item.node.arguments.items():
            if isinstance(value, Output):
                arguments[arg] = self.outputs[value.node][value.name]
            elif isinstance(value, DatasetRef):
                arguments[arg] = item.datasets[arg]
            else:
                arguments[arg] = value
        # The whole workspace, not only its folder: a Ray worker or the process server
        # inherited another environment, and runs a step logs belong in this run's stores.
        env = {
            "SHIPYARD_HOME": str(self.ws.settings.home),
            "SHIPYARD_STORE_URL": self.ws.settings.store_url,
            "SHIPYARD_ARTIFACTS_URL": self.ws.settings.artifacts_url,
            "SHIPYARD_USER": self.ws.settings.user,
            "SHIPYARD_RUN_TAGS": json.dumps(
                {
                    RUN_TAG: self.run.run_id,
                    STEP_RUN_TAG: record.step_run_id,
                    "shipyard.pipeline.step": name,
                }
            ),
        }
        task = StepTask(
            step_run_id=record.step_run_id,
            step=name,
            function=_function_ref(item.node.step.fn),
            arguments=arguments,
            output_names=options.outputs,
            artifacts_url=self.store.url,
            allow_pickle=options.allow_pickle,
            timeout=options.timeout,
            env=env,
            fn=item.node.step.fn,
            cpus=options.cpus,
            memory=options.memory,
        )
        self.save(
            replace(record, status=StepStatus.RUNNING, start_time=record.start_time or _now_ms())
        )
        self.running[self.executor.submit(task)] = (name, attempt)

    def finish(self, future: Future[TaskResult]) -> None:
        name, attempt = self.running.pop(future)
        result = future.result()
        record = self.records[name]
        logs_digest = record.logs_digest
        if result.logs:
            logs_digest = self.store.put_bytes(result.logs.encode("utf-8", "replace")).digest
        options = self.prepared[name].node.step.options
        if result.ok:
            record = replace(
                record, status=StepStatus.FINISHED, outputs=result.outputs,
                end_time=result.end_time or _now_ms(), logs_digest=logs_digest, error="",
            )  # fmt: skip
            self.outputs[name] = {o.name: o for o in result.outputs}
            if options.cache:
                self.backend.put_cached_step(
                    record.cache_key, result.outputs, record.step_run_id, now=_now_ms()
                )
            self.save(record)
            self.record_lineage(record)
            return
        if self.failed is None and attempt <= options.retries:
            delay = options.retry_delay * (2 ** (attempt - 1))
            self.save(replace(record, logs_digest=logs_digest, error=result.error))
            self.retries.append((time.monotonic() + delay, name, attempt + 1))
            return
        status = StepStatus.CANCELLED if self.failed is not None else StepStatus.FAILED
        record = replace(
            record, status=status, end_time=result.end_time or _now_ms(),
            logs_digest=logs_digest, error=result.error,
        )  # fmt: skip
        self.save(record)
        if self.failed is None:
            self.failed = record
            for other in list(self.running):
                self.executor.cancel(other)

    def record_lineage(self, record: StepRun) -> None:
        item = self.prepared[record.name]
        edges = [
            LineageEdge(record.step_run_id, self.run.run_id, "dataset_version", ref, "read")
            for ref in item.read_refs
        ]
        if record.status is StepStatus.FINISHED:
            edges.extend(self._made_by(record))
        self.backend.add_pipeline_lineage(edges)

    def _made_by(self, record: StepRun) -> list[LineageEdge]:
        backend = self.backend
        ids = [e.experiment_id for e in backend.list_experiments()]
        if not ids:
            return []
        runs = backend.search_runs(
            ids, f"tags.`{STEP_RUN_TAG}` = '{record.step_run_id}'", max_results=10_000
        )
        run_ids = [r.run_id for r in runs]
        step, run_id = record.step_run_id, self.run.run_id
        edges = [LineageEdge(step, run_id, "run", rid, "made") for rid in run_ids]
        for model, version, _ in backend.model_versions_of_runs(run_ids):
            edges.append(LineageEdge(step, run_id, "model_version", f"{model}@{version}", "made"))
        for role, direction in (("output", "made"), ("input", "read")):
            for _, dv in backend.run_dataset_versions(run_ids, role):
                ref = f"{dv.dataset}@{dv.version}"
                edges.append(LineageEdge(step, run_id, "dataset_version", ref, direction))
        return edges

    def loop(self) -> None:
        while True:
            if self.failed is None:
                now = time.monotonic()
                due = [r for r in self.retries if r[0] <= now]
                self.retries = [r for r in self.retries if r[0] > now]
                for _, name, attempt in due:
                    self.start(name, attempt)
                progressed = True
                while progressed and self.failed is None:
                    ready = self.ready()
                    progressed = bool(ready)
                    for name in ready:
                        self.start(name, 1)
            self.flush()
            if not self.running:
                if self.failed is not None or not self.retries:
                    return
                time.sleep(max(0.0, min(r[0] for r in self.retries) - time.monotonic()))
                continue
            timeout = 0.5
            if self.retries:
                timeout = max(0.0, min(timeout, min(r[0] for r in self.retries) - time.monotonic()))
            done, _ = wait(list(self.running), timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                self.finish(future)

    def cancel(self) -> None:
        for future in list(self.running):
            self.executor.cancel(future)
        for future in list(self.running):
            with contextlib.suppress(Exception):
                future.result(timeout=10)
        self.running.clear()


def run_pipeline(
    pipe: Pipeline,
    params: Mapping[str, Any] | None = None,
    *,
    executor: str | Executor = "inprocess",
    home: str | os.PathLike[str] | None = None,
    source: str | None = None,
    ray_address: str | None = None,
    max_workers: int | None = None,
    echo: bool = True,
    progress: Callable[[StepRun], None] | None = None,
    run_id: str | None = None,
) -> PipelineResult:
    """Build and run ``pipe`` with ``params``; record the run and every step.

    Args:
        pipe: a :func:`~shipyard.pipeline`.
        params: values of the pipeline's parameters (strings are converted).
        executor: ``inprocess`` (default), ``processes``, ``ray``, or an :class:`Executor`.
        home: workspace (default: ``SHIPYARD_HOME`` or the nearest ``.shipyard/``).
        source: where the pipeline came from, for the record (``file.py:name``).
        ray_address: an existing Ray cluster for the ``ray`` executor.
        max_workers: steps at once for the ``processes`` executor.
        echo: let in-process steps print to this terminal (always captured in the logs).
        progress: called with each step's record whenever it changes.
        run_id: the run's id (32 hex digits), chosen by the caller so that it can record
            the id before the run starts (the continuous-training loop does); default new.

    Returns:
        The finished run.

    Raises:
        InvalidArgumentError: a bad parameter, dataset, read path or executor (nothing is
            recorded).
        PipelineFailedError: a step failed (the run is recorded ``FAILED``).
        PipelineCancelledError: Ctrl-C or SIGTERM (the run is recorded ``CANCELLED``).
    """
    dag = pipe.build(**(params or {}))
    ws = open_workspace(home, create=True)
    backend = ws.backend
    if run_id is None:
        run_id = uuid.uuid4().hex
    elif len(run_id) != 32 or any(c not in "0123456789abcdef" for c in run_id):
        raise InvalidArgumentError(f"run_id {run_id!r} is not 32 lowercase hex digits")
    prepared = _prepare(pipe, dag.nodes, backend, run_id)
    if isinstance(executor, str):
        chosen = get_executor(executor, echo=echo, max_workers=max_workers, address=ray_address)
    else:
        chosen = executor
    me = this_process()
    run = PipelineRun(
        run_id=run_id,
        pipeline=pipe.name,
        source=source or f"{pipe.fn.__module__}:{pipe.fn.__qualname__}",
        params=dag.params,
        status=PipelineStatus.RUNNING,
        executor=chosen.name,
        user=ws.settings.user,
        start_time=_now_ms(),
        owner=json.dumps([me.host, me.pid, me.process_start]),
        heartbeat=_now_ms(),
    )
    try:
        backend.create_pipeline_run(run, [p.record for p in prepared])
    except BaseException:
        chosen.close()
        raise
    state = _Run(ws, run, prepared, chosen, progress)
    heartbeat = _Heartbeat(backend, run_id)
    status, error = PipelineStatus.FINISHED, ""
    try:
        with _cancel_on_sigterm():
            state.loop()
        if state.failed is not None:
            status = PipelineStatus.FAILED
            error = f"step {state.failed.name!r} failed:\n{state.failed.error}"
    except (KeyboardInterrupt, _Cancelled) as exc:
        status, error = PipelineStatus.CANCELLED, f"cancelled ({type(exc).__name__})"
        state.cancel()
    except BaseException as exc:
        status, error = PipelineStatus.FAILED, f"{type(exc).__name__}: {exc}"
        state.cancel()
        raise
    finally:
        heartbeat.stop()
        chosen.close()
        with contextlib.suppress(Exception):  # cache hits not yet written keep their state
            state.flush()
        backend.finish_pipeline_run(run_id, status, end_time=_now_ms(), error=error)
    finished = backend.get_pipeline_run(run_id)
    steps = backend.list_step_runs(run_id)
    if status is PipelineStatus.CANCELLED:
        raise PipelineCancelledError(f"pipeline run {run_id} was cancelled", run_id)
    if status is PipelineStatus.FAILED:
        failed = state.failed.name if state.failed is not None else "?"
        detail = state.failed.error if state.failed is not None else error
        last = detail.strip().splitlines()[-1:] or ["(no message)"]
        raise PipelineFailedError(
            f"step {failed!r} of pipeline {pipe.name!r} failed: {last[0]} "
            f"(run {run_id}; `shipyard pipeline show {run_id[:8]} --logs {failed}` "
            "has its traceback and logs)",
            run_id,
        )
    return PipelineResult(finished, steps, ws.artifacts)


def shown_status(run: PipelineRun, *, timeout_s: float = 60.0) -> str:
    """The run's status, ``CRASHED`` for a ``RUNNING`` run whose process is gone."""
    if run.status is not PipelineStatus.RUNNING or not run.owner:
        return run.status.value
    from shipyard.entities import RunOwner
    from shipyard.tracking.liveness import owner_is_dead

    try:
        host, pid, start = json.loads(run.owner)
        owner = RunOwner(str(host), int(pid), str(start))
    except (ValueError, TypeError):
        return run.status.value
    if owner_is_dead(owner, run.heartbeat or 0, _now_ms(), timeout_s):
        return "CRASHED"
    return run.status.value


def step_logs(store: ArtifactStore, record: StepRun) -> str:
    """The captured output of a step run ('' when it printed nothing)."""
    if record.logs_digest is None:
        return ""
    return store.read_bytes(record.logs_digest).decode("utf-8", "replace")
