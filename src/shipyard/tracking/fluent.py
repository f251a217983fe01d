"""The module-level tracking API: ``shipyard.start_run``, ``shipyard.log_metric`` and friends.

These functions act on the *active run*: the innermost run started with :func:`start_run` and
not yet ended. Runs started inside another active run with ``nested=True`` become its children.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

from shipyard.entities import (
    SYSTEM_TAG_GIT_COMMIT,
    SYSTEM_TAG_GIT_DIFF_DIGEST,
    SYSTEM_TAG_GIT_DIRTY,
    SYSTEM_TAG_PYTHON,
    SYSTEM_TAG_SOURCE,
    ArtifactRecord,
    Experiment,
    Metric,
    Run,
    RunStatus,
)
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.tracking.code import capture_code_version, installed_packages, python_version
from shipyard.tracking.liveness import owner_is_dead, this_process
from shipyard.tracking.run import ActiveRun, now_ms
from shipyard.tracking.validation import tag_value, validate_key, validate_name
from shipyard.tracking.workspace import Workspace, open_workspace, open_workspaces

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "active_run",
    "default_run_tags",
    "end_run",
    "flush",
    "get_metric_history",
    "get_run",
    "list_experiments",
    "log_artifact",
    "log_artifacts",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "search_runs",
    "set_tag",
    "set_tags",
    "start_run",
]

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "default"
RUN_ID_ENV = "SHIPYARD_RUN_ID"
RUN_TAGS_ENV = "SHIPYARD_RUN_TAGS"
"""JSON object of tags set on every new run of the process (a pipeline step's runs carry the
step run they belong to, whichever executor ran the step)."""
"""A run to resume at the first top-level ``start_run`` (set by ``shipyard runs resume``)."""

_stack: list[ActiveRun] = []
_stack_lock = threading.Lock()
_exit_hooks_installed = False
_uncaught_exception: RunStatus | None = None
_env_run_used = False

_ADJECTIVES = (
    "amber bold brave bright calm clever crisp eager gentle grand keen lively lucky mellow "
    "nimble proud quiet rapid silent steady sunny swift tidy vivid witty"
).split()
_NOUNS = (
    "anchor beacon brig buoy cutter dinghy dock ferry galley harbor hull keel ketch lantern "
    "mast pier quay rudder sail schooner sloop tide wharf yawl"
).split()


def _run_name() -> str:
    import secrets  # lazily: it pulls in hashlib and random

    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(1000)}"


def _remove_from_stack(run: ActiveRun) -> None:
    with _stack_lock:
        if run in _stack:
            _stack.remove(run)


def _source_dir() -> Path:
    main = sys.argv[0] if sys.argv else ""
    if main and Path(main).is_file():
        return Path(main).resolve().parent
    return Path.cwd()


def _record_code_and_environment(run: ActiveRun) -> None:
    source = _source_dir()
    tags = {SYSTEM_TAG_PYTHON: python_version()}
    if sys.argv and sys.argv[0]:
        tags[SYSTEM_TAG_SOURCE] = sys.argv[0]
    code = capture_code_version(source)
    if code is not None:
        tags[SYSTEM_TAG_GIT_COMMIT] = code.commit
        tags[SYSTEM_TAG_GIT_DIRTY] = str(code.dirty).lower()
        if code.dirty:
            record = run.log_text(code.diff, "_shipyard/code.diff")
            tags[SYSTEM_TAG_GIT_DIFF_DIGEST] = record.digest
    run.log_text(installed_packages(), "_shipyard/requirements.txt")
    run.set_tags(tags)


def _forget_runs_after_fork() -> None:
    # A forked child did not start its parent's runs: it must not end them at its exit.
    global _stack_lock
    _stack_lock = threading.Lock()
    _stack.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_runs_after_fork)


def _install_exit_hooks() -> None:
    global _exit_hooks_installed
    if _exit_hooks_installed:
        return
    _exit_hooks_installed = True
    previous = sys.excepthook

    def excepthook(
        kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        global _uncaught_exception
        _uncaught_exception = (
            RunStatus.KILLED if issubclass(kind, KeyboardInterrupt) else (RunStatus.FAILED)
        )
        previous(kind, value, tb)

    sys.excepthook = excepthook
    atexit.register(_at_exit)


def _at_exit() -> None:
    status = _uncaught_exception or RunStatus.FINISHED
    while True:
        with _stack_lock:
            run = _stack[-1] if _stack else None
        if run is None:
            break
        try:
            run.end(status)
        except Exception as exc:  # nothing is left to report to at exit
            log.error("could not end run %s at exit: %s", run.run_id, exc)
            _remove_from_stack(run)
    for workspace in open_workspaces():
        try:
            workspace.close()
        except Exception as exc:
            log.error("could not flush metrics at exit: %s", exc)


def start_run(
    experiment: str | None = None,
    *,
    name: str | None = None,
    nested: bool = False,
    run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    home: str | os.PathLike[str] | None = None,
    log_code: bool = True,
) -> ActiveRun:
    """Start a run and make it the active run.

    Args:
        experiment: experiment name, created on first use (default ``SHIPYARD_EXPERIMENT`` or
            ``"default"``). A child run belongs to its parent's experiment.
        name: a human name for the run (default: a generated one such as ``swift-keel-42``).
        nested: start a child run of the active run instead of failing when one is active.
        run_id: resume an existing run (id or unique prefix) instead of starting a new one;
            default ``SHIPYARD_RUN_ID`` for the first top-level run of the process. A run
            that crashed (or ended) is ``RUNNING`` again, owned by this process; a run still
            owned by a live process is joined (logged to) without taking it over.
        tags: tags to set at start.
        home: workspace to use (default: ``SHIPYARD_HOME`` or the nearest ``.shipyard/``,
            created in the working directory when there is none).
        log_code: record the git commit, a digest of uncommitted changes (the diff is stored
            as an artifact), the Python version and installed packages.

    Returns:
        The active run; use it as a context manager.
    """
    global _env_run_used
    with _stack_lock:
        parent = _stack[-1] if _stack else None
    from_env = run_id is None and parent is None and not _env_run_used
    if from_env:
        run_id = os.environ.get(RUN_ID_ENV) or None
    if parent is not None and nested and home is None:
        workspace = parent.workspace  # a child lives where its parent does
    else:
        workspace = open_workspace(home, create=True)
    backend = workspace.backend
    if parent is not None and not nested and run_id is None:
        raise InvalidArgumentError(
            f"run {parent.run_id} ({parent.name}) is still active: end it first, or pass "
            "nested=True to start a child run"
        )
    # Check everything the user passed before anything is written.
    clean_tags = {
        validate_key("tag", k): tag_value(k, v)
        for k, v in {**default_run_tags(), **(tags or {})}.items()
    }
    if name is not None:
        validate_name("run", name)
    if experiment is not None:
        validate_name("experiment", experiment)
    _install_exit_hooks()
    if run_id is not None:
        run = _resume(workspace, backend.resolve_run_id(run_id))
        run.continue_steps(backend.latest_steps(run.run_id))
        if clean_tags:
            backend.set_tags(run.run_id, clean_tags)
    else:
        if parent is not None:
            experiment_id = parent.experiment_id
            if experiment is not None:
                wanted = backend.get_or_create_experiment(experiment).experiment_id
                if wanted != experiment_id:
                    raise InvalidArgumentError(
                        "a child run belongs to its parent's experiment; leave out "
                        "`experiment` for nested runs"
                    )
        else:
            exp_name = validate_name(
                "experiment",
                experiment or os.environ.get("SHIPYARD_EXPERIMENT") or DEFAULT_EXPERIMENT,
            )
            experiment_id = backend.get_or_create_experiment(exp_name).experiment_id
        stored = backend.create_run(
            experiment_id,
            name=name or _run_name(),
            user=workspace.settings.user,
            start_time=now_ms(),
            parent_run_id=parent.run_id if parent is not None else None,
            tags=clean_tags,
            owner=this_process(),
        )
        run = ActiveRun(workspace, stored, on_end=_remove_from_stack, owned=True)
        if log_code:
            try:
                _record_code_and_environment(run)
            except BaseException:
                run.end(RunStatus.FAILED)  # never leave a run RUNNING that nobody holds
                raise
    if from_env and run_id is not None:
        # Used once: the process's later runs, and the processes it starts (a sweep's
        # trials), start runs of their own.
        _env_run_used = True
        os.environ.pop(RUN_ID_ENV, None)
    with _stack_lock:
        _stack.append(run)
    return run


def default_run_tags() -> dict[str, Any]:
    """The tags ``SHIPYARD_RUN_TAGS`` sets on every new run of this process."""
    text = os.environ.get(RUN_TAGS_ENV)
    if not text:
        return {}
    try:
        tags = json.loads(text)
    except ValueError as exc:
        raise InvalidArgumentError(f"{RUN_TAGS_ENV} is not a JSON object: {exc}") from exc
    if not isinstance(tags, dict):
        raise InvalidArgumentError(f"{RUN_TAGS_ENV} must be a JSON object of tags")
    return tags


def _resume(workspace: Workspace, run_id: str) -> ActiveRun:
    """Continue a stored run: take it over unless a live process still owns it."""
    backend = workspace.backend
    try:
        workspace.recover()  # a dead owner's journal first, so its steps count
    except Exception as exc:  # an unrelated bad journal must not stop a resume
        log.warning("could not recover crashed runs yet: %s", exc)
    stored = backend.get_run(run_id)
    me = this_process()
    now = now_ms()
    if (
        stored.status is RunStatus.RUNNING
        and stored.owner is not None
        and stored.owner != me
        and not owner_is_dead(
            stored.owner, stored.heartbeat or 0, now, workspace.settings.heartbeat_timeout
        )
    ):
        log.info("run %s is still owned by %s: logging to it alongside", run_id, stored.owner)
        return ActiveRun(workspace, stored, on_end=_remove_from_stack)
    stored = backend.reopen_run(run_id, owner=me, now=now)
    return ActiveRun(workspace, stored, on_end=_remove_from_stack, owned=True)


def active_run() -> ActiveRun | None:
    """The innermost run started with :func:`start_run` and not yet ended."""
    with _stack_lock:
        return _stack[-1] if _stack else None


def _require_active() -> ActiveRun:
    run = active_run()
    if run is None:
        raise InvalidArgumentError(
            "no active run: call shipyard.start_run() first (or use `with shipyard.start_run():`)"
        )
    return run


def end_run(status: RunStatus | str = RunStatus.FINISHED) -> None:
    """End the active run (no-op when there is none)."""
    run = active_run()
    if run is not None:
        run.end(status)


def log_param(key: str, value: Any) -> None:
    _require_active().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    _require_active().log_params(params)


def set_tag(key: str, value: Any) -> None:
    _require_active().set_tag(key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    _require_active().set_tags(tags)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    _require_active().log_metric(key, value, step=step)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    _require_active().log_metrics(metrics, step=step)


def log_artifact(
    local_path: str | os.PathLike[str], artifact_path: str | None = None
) -> ArtifactRecord:
    return _require_active().log_artifact(local_path, artifact_path)


def log_artifacts(
    local_dir: str | os.PathLike[str], artifact_path: str | None = None
) -> ArtifactRecord:
    return _require_active().log_artifacts(local_dir, artifact_path)


def log_text(text: str | bytes, artifact_path: str) -> ArtifactRecord:
    return _require_active().log_text(text, artifact_path)


def flush() -> None:
    """Write every buffered metric of this process now."""
    for workspace in open_workspaces():
        workspace.flush()


def _workspace(home: str | os.PathLike[str] | None) -> Workspace:
    """The workspace, with crashed runs found and their journals replayed before a read."""
    workspace = open_workspace(home)
    try:
        workspace.recover()
    except Exception as exc:  # a read must not fail because a recovery could not finish
        log.warning("could not recover crashed runs yet: %s", exc)
    return workspace


def get_run(run_id: str, *, home: str | os.PathLike[str] | None = None) -> Run:
    """A run by id (or unique id prefix), with its params, latest metrics and tags."""
    backend = _workspace(home).backend
    return backend.get_run(backend.resolve_run_id(run_id))


def get_metric_history(
    run_id: str, key: str, *, home: str | os.PathLike[str] | None = None
) -> list[Metric]:
    """Every value logged for metric ``key`` of a run, by step."""
    backend = _workspace(home).backend
    return backend.get_metric_history(backend.resolve_run_id(run_id), key)


def list_experiments(*, home: str | os.PathLike[str] | None = None) -> list[Experiment]:
    return _workspace(home).backend.list_experiments()


@overload
def search_runs(
    experiment: str | Sequence[str] | None = ...,
    filter: str = ...,
    order_by: Sequence[str] = ...,
    *,
    max_results: int = ...,
    output: Literal["pandas"] = ...,
    home: str | os.PathLike[str] | None = ...,
) -> pd.DataFrame: ...


@overload
def search_runs(
    experiment: str | Sequence[str] | None = ...,
    filter: str = ...,
    order_by: Sequence[str] = ...,
    *,
    max_results: int = ...,
    output: Literal["runs"],
    home: str | os.PathLike[str] | None = ...,
) -> list[Run]: ...


def search_runs(
    experiment: str | Sequence[str] | None = None,
    filter: str = "",
    order_by: Sequence[str] = (),
    *,
    max_results: int = 1000,
    output: Literal["pandas", "runs"] = "pandas",
    home: str | os.PathLike[str] | None = None,
) -> pd.DataFrame | list[Run]:
    """Find runs with a filter compiled to SQL.

    Args:
        experiment: experiment name(s); default all experiments.
        filter: e.g. ``"metrics.auc > 0.9 and params.model = 'rf'"`` (see
            :mod:`shipyard.store.filters` for the grammar).
        order_by: e.g. ``["metrics.auc DESC", "attributes.start_time"]``.
        max_results: at most this many runs.
        output: ``"pandas"`` for a DataFrame (one row per run, columns ``metrics.*``,
            ``params.*``, ``tags.*``), ``"runs"`` for :class:`~shipyard.entities.Run` objects.

    Raises:
        FilterSyntaxError: the filter is invalid; the message points at the bad token.
        NotFoundError: an experiment does not exist.
    """
    if isinstance(order_by, str):
        order_by = [order_by]
    backend = _workspace(home).backend
    names = [experiment] if isinstance(experiment, str) else list(experiment or [])
    ids: list[int] = []
    for exp_name in names:
        found = backend.get_experiment_by_name(exp_name)
        if found is None:
            raise NotFoundError(f"no experiment named {exp_name!r}")
        ids.append(found.experiment_id)
    runs = backend.search_runs(ids, filter, order_by, max_results=max_results)
    if output == "runs":
        return runs
    if output != "pandas":
        raise InvalidArgumentError(f"output must be 'pandas' or 'runs', not {output!r}")
    from shipyard.tracking.frames import runs_to_frame

    return runs_to_frame(runs)
