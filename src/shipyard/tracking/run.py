"""A run you are logging to: params, metrics, tags and artifacts."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from shipyard.artifacts import safe_relative_path
from shipyard.entities import ArtifactRecord, MetricRecord, ModelVersion, Run, RunStatus
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.tracking.validation import (
    int64,
    metric_value,
    param_value,
    tag_value,
    validate_key,
)
from shipyard.tracking.workspace import Workspace

__all__ = ["ActiveRun"]


_STEP_MIN, _STEP_MAX = -(2**63), 2**63 - 2  # room for the next step


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ActiveRun:
    """A run in progress. Use it as a context manager so that it always ends:

    Example:
        >>> with shipyard.start_run(experiment="churn") as run:  # doctest: +SKIP
        ...     run.log_params({"model": "rf", "trees": 100})
        ...     run.log_metric("auc", 0.91, step=3)
        ...     run.log_artifact("plot.png")

    Leaving the block normally marks the run FINISHED; an exception marks it FAILED, and
    Ctrl-C marks it KILLED. Metrics are journaled on local disk when their call returns (they
    survive ``kill -9``) and reach the store in batches; params, tags and artifacts are in
    the store when their call returns. While the run is active, a heartbeat tells the store
    that its process is alive; if the process dies, the run is shown ``CRASHED``.
    """

    def __init__(
        self,
        workspace: Workspace,
        run: Run,
        *,
        on_end: Callable[[ActiveRun], None] | None = None,
        owned: bool = False,
    ) -> None:
        self._workspace = workspace
        self._run = run
        self._on_end = on_end
        self._owned = owned
        self._next_step: dict[str, int] = {}
        self._ended = False
        if owned:
            workspace.heartbeat.watch(run.run_id)

    def __repr__(self) -> str:
        return f"ActiveRun(run_id={self.run_id!r}, name={self.name!r})"

    @property
    def run_id(self) -> str:
        return self._run.run_id

    id = run_id

    @property
    def name(self) -> str:
        return self._run.name

    @property
    def experiment_id(self) -> int:
        return self._run.experiment_id

    @property
    def parent_run_id(self) -> str | None:
        return self._run.parent_run_id

    @property
    def workspace(self) -> Workspace:
        return self._workspace

    @property
    def info(self) -> Run:
        """The run as stored now (buffered metrics are flushed first)."""
        self.flush()
        return self._workspace.backend.get_run(self.run_id)

    def continue_steps(self, latest: Mapping[str, int]) -> None:
        """Default steps continue after ``latest`` (key -> last step), for resumed runs."""
        for key, step in latest.items():
            self._next_step[key] = max(self._next_step.get(key, 0), step + 1)

    # params and tags -----------------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params. Logging a key again with the same value is a no-op; a different
        value raises :class:`~shipyard.errors.ParamConflictError` and writes nothing."""
        clean = {validate_key("param", k): param_value(k, v) for k, v in params.items()}
        self._workspace.backend.log_params(self.run_id, clean)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags; unlike params, a tag may be overwritten."""
        clean = {validate_key("tag", k): tag_value(k, v) for k, v in tags.items()}
        self._workspace.backend.set_tags(self.run_id, clean)

    def use_dataset(self, name: str, version: int | str = "latest") -> None:
        """Record that this run read ``name@version`` (a version number, ``latest`` or a
        digest prefix). ``shipyard.data.load`` calls this for you inside a run."""
        backend = self._workspace.backend
        found = backend.get_dataset_version(name, str(version))
        backend.record_dataset_use(self.run_id, found.dataset, found.version, "input")

    # metrics -------------------------------------------------------------------------------

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Journal and buffer one metric value (NaN and ±inf allowed); once this returns,
        the value survives a crash of the process.

        Args:
            key: metric name.
            value: the number.
            step: training step; by default one more than the last step this process logged
                for ``key`` in this run (starting at 0).
            timestamp: milliseconds since the epoch; default now.
        """
        step = self._step(key, step)
        self._next_step[key] = step + 1
        self._workspace.metric_buffer.add(
            self._run.run_id,
            key,
            metric_value(key, value),
            step,
            now_ms() if timestamp is None else int64(f"timestamp of {key!r}", timestamp),
        )

    def log_metrics(
        self, metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Journal and buffer several metrics at one step (one journal write)."""
        stamp = now_ms() if timestamp is None else int64("timestamp", timestamp)
        batch: list[MetricRecord] = []
        for key, value in metrics.items():
            at = self._step(key, step)
            batch.append((key, metric_value(key, value), at, stamp))
        for key, _, at, _ in batch:
            self._next_step[key] = at + 1
        self._workspace.metric_buffer.extend(self.run_id, batch)

    def _step(self, key: str, step: int | None) -> int:
        """The checked step of a metric about to be logged (the next one when None); the
        key is checked the first time this run sees it."""
        if key not in self._next_step:
            validate_key("metric", key)
        if step is None:
            return self._next_step.get(key, 0)
        if type(step) is not int or not _STEP_MIN <= step <= _STEP_MAX:
            return int64(f"step of metric {key!r}", step)
        return step

    def flush(self) -> None:
        """Write buffered metrics now; when it returns they are in the store."""
        self._workspace.flush()

    # artifacts -----------------------------------------------------------------------------

    def log_artifact(
        self, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> ArtifactRecord:
        """Store a file or a folder with the run.

        Args:
            local_path: the file or folder to store.
            artifact_path: where it appears in the run (a relative path); default its name.
        """
        source = Path(local_path)
        if not source.exists():
            raise NotFoundError(f"cannot log artifact: {source} does not exist")
        path = safe_relative_path(artifact_path or source.resolve().name)
        info = self._workspace.artifacts.put(source)
        record = ArtifactRecord(path, info.digest, info.size, info.is_dir, info.file_count)
        self._workspace.backend.log_artifacts(self.run_id, [record])
        return record

    def log_artifacts(
        self, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> ArtifactRecord:
        """Store a folder with the run (same as :meth:`log_artifact` on a folder)."""
        if not Path(local_dir).is_dir():
            raise InvalidArgumentError(f"{local_dir} is not a folder")
        return self.log_artifact(local_dir, artifact_path)

    def log_model(
        self, model: Any, name: str, *, input_example: Any = None, **options: Any
    ) -> ModelVersion:
        """Save ``model`` (flavor, signature from ``input_example``, requirements) as this
        run's artifact ``models/NAME`` and register it as the next version of ``NAME``.

        See :func:`shipyard.models.log_model` for the options.
        """
        from shipyard.models.logged import log_model

        return log_model(self, model, name, input_example=input_example, **options)

    def log_text(self, text: str | bytes, artifact_path: str) -> ArtifactRecord:
        """Store ``text`` as a file at ``artifact_path`` in the run."""
        path = safe_relative_path(artifact_path)
        data = text.encode() if isinstance(text, str) else text
        info = self._workspace.artifacts.put_bytes(data)
        record = ArtifactRecord(path, info.digest, info.size)
        self._workspace.backend.log_artifacts(self.run_id, [record])
        return record

    def log_figure(self, figure: Any, artifact_path: str) -> ArtifactRecord:
        """Store a matplotlib figure as an image (format from the file extension)."""
        suffix = Path(artifact_path).suffix or ".png"
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"figure{suffix}"
            figure.savefig(out)
            return self.log_artifact(out, artifact_path)

    # lifecycle -----------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._ended

    def end(self, status: RunStatus | str = RunStatus.FINISHED) -> None:
        """Flush buffered metrics and record the final status and end time."""
        if self._ended:
            return
        final = RunStatus(status)
        try:
            self.flush()
        finally:
            self._workspace.backend.end_run(self.run_id, final, now_ms())
            self._ended = True
            if self._owned:
                self._workspace.heartbeat.unwatch(self.run_id)
            if self._on_end is not None:
                self._on_end(self)
        # Every metric of the run is in the store: its journal is no longer needed.
        self._workspace.metric_buffer.close_journal(self.run_id)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.end(RunStatus.FINISHED)
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end(RunStatus.KILLED)
        else:
            self.end(RunStatus.FAILED)
