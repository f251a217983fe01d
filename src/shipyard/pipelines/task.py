"""One attempt of one step, as an executor runs it: load inputs, call, store outputs.

A :class:`StepTask` holds only plain values (and the function, or where to import it from), so
it can cross into another process or a Ray worker. It needs the artifact store, never the
metadata store: the runner in the driver process records everything.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from shipyard.artifacts import ArtifactStore
from shipyard.entities import StepOutput
from shipyard.errors import InvalidArgumentError
from shipyard.pipelines.materializers import choose, get_materializer, type_name

__all__ = [
    "DatasetInput",
    "FunctionRef",
    "StepTask",
    "StepTimeoutError",
    "TaskResult",
    "execute",
]

_MAX_LOG_BYTES = 4 << 20


class StepTimeoutError(Exception):
    """The step ran longer than its timeout."""


@dataclass(frozen=True)
class FunctionRef:
    """Where a worker process imports a step's function from."""

    module: str
    qualname: str
    path: str | None = None
    """A folder to put on ``sys.path`` first (the pipeline file's folder)."""
    file: str | None = None
    """The module's file, imported from there when the module name alone does not import."""

    def resolve(self) -> Callable[..., Any]:
        if self.path and self.path not in sys.path:
            sys.path.insert(0, self.path)
        module = sys.modules.get(self.module)
        if module is None and self.module == "__main__":
            module = sys.modules.get("__mp_main__")
        if module is None:
            try:
                module = importlib.import_module(self.module)
            except ImportError:
                if not self.file:
                    raise
                spec = importlib.util.spec_from_file_location(self.module, self.file)
                if spec is None or spec.loader is None:
                    raise
                module = importlib.util.module_from_spec(spec)
                sys.modules[self.module] = module
                spec.loader.exec_module(module)
        obj: Any = module
        for part in self.qualname.split("."):
            obj = getattr(obj, part)
        inner = getattr(obj, "fn", obj)  # a Step: its plain function
        return inner  # type: ignore[no-any-return]


@dataclass(frozen=True)
class DatasetInput:
    """A dataset version given to a step: a table becomes a DataFrame, anything else a path."""

    ref: str
    digest: str
    kind: str
    format: str
    filename: str


@dataclass
class StepTask:
    """Everything one attempt of a step needs."""

    step_run_id: str
    step: str
    function: FunctionRef
    arguments: dict[str, Any]
    """Argument -> a JSON value, a :class:`~shipyard.entities.StepOutput` or a
    :class:`DatasetInput`."""
    output_names: tuple[str, ...]
    artifacts_url: str
    allow_pickle: bool = False
    timeout: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    fn: Callable[..., Any] | None = None
    """The function itself, when the executor shares the driver's memory (or pickles by
    value, as Ray does)."""
    cpus: float | None = None
    memory: int | None = None


@dataclass
class TaskResult:
    """What an attempt produced."""

    ok: bool
    outputs: tuple[StepOutput, ...] = ()
    logs: str = ""
    error: str = ""
    start_time: int = 0
    end_time: int = 0
    timed_out: bool = False


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Tee(io.TextIOBase):
    def __init__(self, buffer: io.StringIO, echo: TextIO | None) -> None:
        self._buffer = buffer
        self._echo = echo

    def write(self, text: str) -> int:
        if self._buffer.tell() < _MAX_LOG_BYTES:
            self._buffer.write(text)
        if self._echo is not None:
            self._echo.write(text)
        return len(text)

    def flush(self) -> None:
        if self._echo is not None:
            self._echo.flush()


@contextlib.contextmanager
def _captured(echo: bool) -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    out = _Tee(buffer, sys.stdout if echo else None)
    err = _Tee(buffer, sys.stderr if echo else None)
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield buffer
    finally:
        root.removeHandler(handler)


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`StepTimeoutError` in this (main) thread after ``seconds``."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise StepTimeoutError(f"timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _read(store: ArtifactStore, value: Any, scratch: Path, allow_pickle: bool) -> Any:
    if isinstance(value, StepOutput):
        materializer = get_materializer(value.materializer)
        if materializer.name == "pickle" and not allow_pickle:
            raise InvalidArgumentError(
                f"input from output {value.name!r} is a pickle; declare the step with "
                "@step(allow_pickle=True) to load it"
            )
        path = _fetch(store, value.digest, value.kind, scratch / value.digest[:16])
        return materializer.load(path, value.type)
    if isinstance(value, DatasetInput):
        path = _fetch(store, value.digest, value.kind, scratch / value.filename)
        if value.format == "parquet":
            import pandas as pd

            return pd.read_parquet(path)
        if value.format == "csv":
            import pandas as pd

            tab = value.filename.lower().split(".")[1:2] == ["tsv"]
            return pd.read_csv(path, sep="\t" if tab else ",")
        return path
    return value


def _fetch(store: ArtifactStore, digest: str, kind: str, dest: Path) -> Path:
    """A verified local copy (or the store's own file, when local and whole)."""
    if kind == "file":
        local = store.local_path(digest)
        if local is not None:
            from shipyard.artifacts.digest import hash_file

            if hash_file(local) == digest:
                return local
    return store.get(digest, dest, is_dir=kind == "dir")


def _write(
    store: ArtifactStore, task: StepTask, name: str, value: Any, scratch: Path
) -> StepOutput:
    materializer = choose(value, step=task.step, output=name, allow_pickle=task.allow_pickle)
    path = scratch / f"out-{name}"
    materializer.save(value, path)
    if materializer.kind == "dir":
        info = store.put_dir(path)
    else:
        info = store.put_file(path, link=True)
    return StepOutput(
        name=name,
        digest=info.digest,
        kind="dir" if info.is_dir else "file",
        materializer=f"{materializer.name}/{materializer.version}",
        type=type_name(value),
        size=info.size,
    )


def _split(task: StepTask, returned: Any) -> list[tuple[str, Any]]:
    names = task.output_names
    if len(names) == 1:
        return [(names[0], returned)]
    if not isinstance(returned, tuple | list) or len(returned) != len(names):
        raise InvalidArgumentError(
            f"step {task.step!r} declares outputs {list(names)} and must return a tuple of "
            f"{len(names)} values, not a {type(returned).__name__}"
        )
    return list(zip(names, returned, strict=True))


def execute(task: StepTask, *, echo: bool = False) -> TaskResult:
    """Run one attempt of ``task`` here; never raises for the step's own errors."""
    start = _now_ms()
    store = ArtifactStore(task.artifacts_url)
    try:
        return _attempt(task, store, echo, start)
    finally:
        store.close()  # through a server, an HTTP connection per attempt otherwise


def _attempt(task: StepTask, store: ArtifactStore, echo: bool, start: int) -> TaskResult:
    with _captured(echo) as logs, _environment(task.env):
        try:
            fn = task.fn if task.fn is not None else task.function.resolve()
            with tempfile.TemporaryDirectory(prefix="shipyard-step-") as folder:
                scratch = Path(folder)
                kwargs = {
                    arg: _read(store, value, scratch, task.allow_pickle)
                    for arg, value in task.arguments.items()
                }
                with _deadline(task.timeout):
                    returned = fn(**kwargs)
                outputs = tuple(
                    _write(store, task, name, value, scratch)
                    for name, value in _split(task, returned)
                )
            store.flush()
        except StepTimeoutError as exc:
            return TaskResult(
                ok=False, logs=logs.getvalue(), error=f"StepTimeoutError: {exc}",
                start_time=start, end_time=_now_ms(), timed_out=True,
            )  # fmt: skip
        except Exception:
            return TaskResult(
                ok=False, logs=logs.getvalue(), error=traceback.format_exc(),
                start_time=start, end_time=_now_ms(),
            )  # fmt: skip
    return TaskResult(
        ok=True, outputs=outputs, logs=logs.getvalue(), start_time=start, end_time=_now_ms()
    )
