"""``shipyard.tune``: hyperparameter search on Optuna, every trial a child run of the study's run.

The study lives in the workspace's metadata store (Optuna's journal in the ``tuning_journal``
table), so processes on several machines that share the store can work on one study: call
``tune`` with the same ``study`` name from each.
"""

from __future__ import annotations

import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.entities import RunStatus
from shipyard.errors import InvalidArgumentError, ShipyardError
from shipyard.tracking import ActiveRun, Workspace, active_run, open_workspace
from shipyard.tracking.fluent import DEFAULT_EXPERIMENT, default_run_tags
from shipyard.tracking.liveness import owner_is_dead, this_process
from shipyard.tracking.run import now_ms
from shipyard.tracking.validation import validate_key, validate_name
from shipyard.tuning.executors import (
    EXECUTORS,
    RAY_HINT,
    Job,
    check_portable,
    default_workers,
    run_local,
    run_processes,
    run_ray,
)
from shipyard.tuning.results import (
    ATTR_METRIC,
    ATTR_RUN_ID,
    ATTR_SPACE,
    Study,
    StudySummary,
    direction_name,
    find_study,
    read_study,
    summarize,
)
from shipyard.tuning.space import Dimension, check_space, space_from_json, space_to_json
from shipyard.tuning.trial import TAG_STUDY, Outcome, Trial, TrialContext

if TYPE_CHECKING:
    from optuna.storages import JournalStorage

__all__ = ["DIRECTIONS", "OPTUNA_HINT", "list_studies", "load_study", "tune"]

log = logging.getLogger(__name__)

DIRECTIONS = ("minimize", "maximize")
OPTUNA_HINT = "hyperparameter tuning needs Optuna: pip install 'shipyard-mlops[tune]'"
TAG_DIRECTION = "shipyard.tuning.direction"
TAG_BEST_TRIAL = "shipyard.tuning.best_trial"
TAG_BEST_RUN = "shipyard.tuning.best_run"
_JOIN_WAIT_S = 10.0
"""How long a joining worker waits for the study's creator to record the study's run."""


@dataclass(frozen=True, slots=True)
class _Args:
    """The checked arguments of :func:`tune`."""

    space: dict[str, Dimension]
    study: str
    direction: str | None
    metric: str | None
    experiment: str | None
    executor: str
    n_trials: int | None
    n_workers: int | None
    timeout: float | None


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name} must be a whole number of at least 1, not {value!r}")
    return value


def _check_args(
    objective: Any,
    space: Any,
    *,
    n_trials: Any,
    direction: Any,
    study: Any,
    experiment: Any,
    executor: Any,
    n_workers: Any,
    timeout: Any,
    metric: Any,
    seed: Any,
) -> _Args:
    if not callable(objective):
        raise InvalidArgumentError(
            f"objective must be a function that takes a Trial and returns a number, not "
            f"{type(objective).__name__}"
        )
    checked = check_space(space)
    if direction is not None and direction not in DIRECTIONS:
        raise InvalidArgumentError(f"direction must be 'minimize' or 'maximize', not {direction!r}")
    if executor not in EXECUTORS:
        raise InvalidArgumentError(
            f"unknown executor {executor!r}: use {', '.join(map(repr, EXECUTORS))}"
        )
    if n_trials is not None:
        _positive_int("n_trials", n_trials)
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise InvalidArgumentError(f"timeout must be seconds, not {timeout!r}")
        if not (math.isfinite(timeout) and timeout > 0):
            raise InvalidArgumentError(
                f"timeout must be a positive number of seconds, not {timeout!r}"
            )
    if n_trials is None and timeout is None:
        raise InvalidArgumentError("give n_trials, timeout or both: the study must end")
    if n_workers is not None:
        _positive_int("n_workers", n_workers)
        if executor == "local" and n_workers > 1:
            raise InvalidArgumentError(
                "n_workers > 1 needs executor='processes' or 'ray' (executor='local' runs one "
                "trial at a time in this process)"
            )
    if metric is not None:
        validate_key("metric", metric)
    if study is None:
        study = f"study-{uuid.uuid4().hex[:8]}"
    else:
        validate_name("study", study)
    if experiment is not None:
        validate_name("experiment", experiment)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidArgumentError(f"seed must be an integer, not {seed!r}")
    if executor == "processes":
        check_portable(objective, executor)
    return _Args(
        checked, study, direction, metric, experiment, executor, n_trials, n_workers, timeout
    )


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise InvalidArgumentError(OPTUNA_HINT) from exc
    return optuna


def _check_extras(executor: str, sampler: Any, pruner: Any) -> None:
    optuna = _import_optuna()
    if sampler is not None and not isinstance(sampler, optuna.samplers.BaseSampler):
        raise InvalidArgumentError(f"sampler must be an Optuna sampler, not {sampler!r}")
    if pruner is not None and not isinstance(pruner, optuna.pruners.BasePruner):
        raise InvalidArgumentError(f"pruner must be an Optuna pruner, not {pruner!r}")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise InvalidArgumentError(RAY_HINT) from exc


def _check_matches(
    storage: JournalStorage, study_id: int, name: str, args: _Args, workspace: Workspace
) -> None:
    """Refuse to add trials to an existing study with other settings (nothing is written)."""
    attrs = storage.get_study_user_attrs(study_id)
    stored = direction_name(storage.get_study_directions(study_id))
    if args.direction is not None and args.direction != stored:
        raise InvalidArgumentError(
            f"study {name!r} is set to {stored}; direction={args.direction!r} does not match "
            "(leave direction out, or give the study another name)"
        )
    metric = attrs.get(ATTR_METRIC)
    if args.metric is not None and metric is not None and args.metric != metric:
        raise InvalidArgumentError(
            f"study {name!r} logs its objective as {metric!r}; metric={args.metric!r} does not "
            "match (leave metric out, or give the study another name)"
        )
    if ATTR_SPACE in attrs:
        before = space_from_json(attrs[ATTR_SPACE])
        for key in sorted(set(before) | set(args.space)):
            if before.get(key) != args.space.get(key):
                raise InvalidArgumentError(
                    f"space[{key!r}] is {args.space.get(key)!r} but study {name!r} searches "
                    f"{before.get(key)!r}: a study keeps its space (give it another name)"
                )
    run_id = attrs.get(ATTR_RUN_ID)
    if args.experiment is not None and run_id:
        backend = workspace.backend
        experiment = backend.get_experiment(backend.get_run(run_id).experiment_id).name
        if experiment != args.experiment:
            raise InvalidArgumentError(
                f"study {name!r} is in experiment {experiment!r}, not {args.experiment!r}"
            )


@dataclass
class _StudyRun:
    """The study's run as this call holds it: ``owned`` when this call ends it."""

    run: ActiveRun
    owned: bool
    experiment_id: int


def _enclosing_run(args: _Args, workspace: Workspace) -> ActiveRun | None:
    """The active run a new study's run becomes a child of (checked against ``experiment``)."""
    parent = active_run()
    if parent is None or parent.workspace is not workspace:
        return None
    if args.experiment is not None:
        backend = workspace.backend
        experiment = backend.get_experiment(parent.experiment_id).name
        if experiment != args.experiment:
            raise InvalidArgumentError(
                f"inside run {parent.run_id} (experiment {experiment!r}) the study's run is its "
                f"child, in that experiment: leave out experiment={args.experiment!r}"
            )
    return parent


def _create_study_run(
    storage: JournalStorage, study_id: int, args: _Args, workspace: Workspace, metric: str
) -> _StudyRun:
    """Start the study's run and record it (the run id last: joiners wait for it)."""
    backend = workspace.backend
    parent = _enclosing_run(args, workspace)
    if parent is not None:
        experiment_id = parent.experiment_id
    else:
        name = args.experiment or os.environ.get("SHIPYARD_EXPERIMENT") or DEFAULT_EXPERIMENT
        experiment_id = backend.get_or_create_experiment(name).experiment_id
    stored = backend.create_run(
        experiment_id,
        name=args.study,
        user=workspace.settings.user,
        start_time=now_ms(),
        parent_run_id=None if parent is None else parent.run_id,
        tags={
            **default_run_tags(),
            TAG_STUDY: args.study,
            TAG_DIRECTION: direction_name(storage.get_study_directions(study_id)),
        },
        owner=this_process(),
    )
    run = ActiveRun(workspace, stored, owned=True)
    storage.set_study_user_attr(study_id, ATTR_METRIC, metric)
    storage.set_study_user_attr(study_id, ATTR_SPACE, space_to_json(args.space))
    storage.set_study_user_attr(study_id, ATTR_RUN_ID, run.run_id)
    return _StudyRun(run, owned=True, experiment_id=experiment_id)


def _join_study_run(
    storage: JournalStorage, study_id: int, args: _Args, workspace: Workspace
) -> _StudyRun:
    """The run of a study another call created; taken over if that call has ended."""
    deadline = time.monotonic() + _JOIN_WAIT_S
    while True:
        run_id = storage.get_study_user_attrs(study_id).get(ATTR_RUN_ID)
        if run_id:
            break
        if time.monotonic() > deadline:  # its creator died before recording it
            log.warning("study %r has no run yet: starting one", args.study)
            metric = args.metric or "objective"
            return _create_study_run(storage, study_id, args, workspace, metric)
        time.sleep(0.05)
    _check_matches(storage, study_id, args.study, args, workspace)
    backend = workspace.backend
    stored = backend.get_run(run_id)
    now = now_ms()
    alive = stored.status is RunStatus.RUNNING and (
        stored.owner is None
        or not owner_is_dead(
            stored.owner, stored.heartbeat or 0, now, workspace.settings.heartbeat_timeout
        )
    )
    if not alive:
        stored = backend.reopen_run(run_id, owner=this_process(), now=now)
    run = ActiveRun(workspace, stored, owned=not alive)
    return _StudyRun(run, owned=not alive, experiment_id=stored.experiment_id)


def _open_study(storage: JournalStorage, args: _Args, workspace: Workspace) -> _StudyRun:
    from optuna.exceptions import DuplicatedStudyError
    from optuna.study import StudyDirection

    study_id = find_study(storage, args.study)
    if study_id is not None:
        _check_matches(storage, study_id, args.study, args, workspace)
        return _join_study_run(storage, study_id, args, workspace)
    _enclosing_run(args, workspace)  # refuse a bad experiment before the study exists
    direction = StudyDirection.MAXIMIZE if args.direction == "maximize" else StudyDirection.MINIMIZE
    try:
        study_id = storage.create_new_study([direction], args.study)
    except DuplicatedStudyError:  # another worker created it a moment ago
        study_id = storage.get_study_id_from_name(args.study)
        return _join_study_run(storage, study_id, args, workspace)
    return _create_study_run(storage, study_id, args, workspace, args.metric or "objective")


def _record_best(study_run: _StudyRun, study: Study) -> None:
    """The study's run shows the best value so far (at step = finished trials)."""
    best = study.best_trial
    if best is None or best.value is None:
        return
    finished = sum(1 for t in study.trials if t.state in ("COMPLETE", "PRUNED", "FAIL"))
    run = study_run.run
    run.set_tags({TAG_BEST_TRIAL: best.number, TAG_BEST_RUN: best.run_id or ""})
    run.log_metric(study.metric, best.value, step=finished)
    run.flush()


def tune(
    objective: Callable[[Trial], float],
    space: Mapping[str, Any],
    *,
    n_trials: int | None = None,
    direction: str | None = None,
    study: str | None = None,
    experiment: str | None = None,
    executor: str = "local",
    n_workers: int | None = None,
    timeout: float | None = None,
    sampler: Any = None,
    pruner: Any = None,
    metric: str | None = None,
    seed: int | None = None,
    catch: bool = True,
    home: str | os.PathLike[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Study:
    """Search ``space`` for the parameters that minimize (or maximize) ``objective``.

    The study gets a run; every trial gets a child run of it with the sampled params, the
    objective's value as metric ``metric``, the values given to :meth:`Trial.report`, and its
    end: ``FINISHED``, ``FAILED`` (tag ``shipyard.tuning.error`` holds the error) or
    ``KILLED`` when pruned (tag ``shipyard.tuning.state=PRUNED``). Call ``tune`` with an
    existing ``study`` name to add trials to it, from any process that shares the store.

    Args:
        objective: ``objective(trial) -> float``; the sampled values are ``trial.params``.
        space: parameter name -> :class:`Float`, :class:`Int` or :class:`Categorical`.
        n_trials: trials this call runs, split among the workers (at least one of
            ``n_trials`` and ``timeout``).
        direction: ``"minimize"`` or ``"maximize"`` (default: the study's, or minimize).
        study: the study's name, unique in the workspace (default: a generated one).
        experiment: experiment of a new study's run (default as for ``start_run``). Inside
            an active run, the study's run is its child instead.
        executor: ``"local"`` (one trial at a time here), ``"processes"`` (``n_workers``
            processes on this machine; the objective must be importable by name) or
            ``"ray"`` (Ray tasks on the connected cluster, ``RAY_ADDRESS``, or a local one).
        n_workers: parallel workers (default: one per CPU, at most one per trial).
        timeout: seconds after which no new trial starts.
        sampler: an Optuna sampler (default: TPE, seeded with ``seed``).
        pruner: an Optuna pruner for :meth:`Trial.report` (default: Optuna's median pruner).
        metric: what the objective's value is called on the runs (default ``"objective"``).
        seed: seed of the default sampler (worker ``i`` uses ``seed + i``).
        catch: record a trial whose objective raised as failed and go on (default), instead
            of stopping the study with the error.
        home: the workspace (default: ``SHIPYARD_HOME`` or the nearest ``.shipyard``).
        progress: called with the number of this call's trials that have ended (complete,
            pruned or failed, by any worker), after each trial here and about twice a second
            while workers run; ``shipyard tune run`` draws its progress bar with it.

    Returns:
        A snapshot of the whole study (all its trials, not only this call's).

    Raises:
        InvalidArgumentError: a bad argument, named; nothing was written.
        ShipyardError: every trial of this call failed (each run holds its error).

    Example:
        >>> from shipyard.tuning import Float, tune
        >>> def objective(trial):  # doctest: +SKIP
        ...     return (trial.params["x"] - 2) ** 2
        >>> study = tune(objective, {"x": Float(-10, 10)}, n_trials=50)  # doctest: +SKIP
        >>> study.best_params  # doctest: +SKIP
        {'x': 2.003}
    """
    args = _check_args(
        objective,
        space,
        n_trials=n_trials,
        direction=direction,
        study=study,
        experiment=experiment,
        executor=executor,
        n_workers=n_workers,
        timeout=timeout,
        metric=metric,
        seed=seed,
    )
    _check_extras(executor, sampler, pruner)
    from shipyard.tuning.journal import open_storage

    workspace = open_workspace(home, create=True)
    storage = open_storage(workspace.backend)
    study_run = _open_study(storage, args, workspace)
    name = args.study
    attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(name))
    context = TrialContext(
        study=name,
        parent_run_id=study_run.run.run_id,
        experiment_id=study_run.experiment_id,
        space=args.space,
        metric=str(attrs.get(ATTR_METRIC, args.metric or "objective")),
    )
    job = Job(
        settings=workspace.settings,
        context=context,
        objective=objective,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
        catch=bool(catch),
        deadline=None if timeout is None else time.time() + timeout,
    )
    tick = None if progress is None else _ticker(storage, name, progress)
    try:
        if args.executor == "local":
            outcomes = run_local(job, workspace, args.n_trials, tick)
        elif args.executor == "processes":
            workers = args.n_workers or default_workers(args.n_trials)
            outcomes = run_processes(job, args.n_trials, workers, tick)
        else:
            outcomes = run_ray(job, args.n_trials, args.n_workers, tick)
        result = read_study(workspace, storage, name)
        _record_best(study_run, result)
    except BaseException as exc:
        if study_run.owned:
            study_run.run.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    failed = _all_failed(outcomes)
    if study_run.owned:
        study_run.run.end("FAILED" if failed else "FINISHED")
    if failed is not None:
        raise ShipyardError(
            f"every trial of this call failed ({len(outcomes)}); trial {failed.number}: "
            f"{failed.error} (study {name!r}; each trial's run holds its error)"
        )
    return result


def _ticker(storage: Any, name: str, progress: Callable[[int], None]) -> Callable[[], None]:
    """A tick that reports how many trials have ended since it was made, when that grew."""
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(name)
    ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

    def count() -> int:
        return len(storage.get_all_trials(study_id, deepcopy=False, states=ended))

    before = count()
    shown = 0

    def tick() -> None:
        nonlocal shown
        try:
            done = count() - before
        except Exception as exc:  # a progress report must never stop the trials
            log.debug("could not count the ended trials: %s", exc)
            return
        if done > shown:
            shown = done
            progress(done)

    return tick


def _all_failed(outcomes: list[Outcome]) -> Outcome | None:
    """The first failure when every trial failed, else None."""
    if outcomes and all(o.state == "FAIL" for o in outcomes):
        return min(outcomes, key=lambda o: o.number)
    return None


def load_study(name: str, *, home: str | os.PathLike[str] | None = None) -> Study:
    """The study ``name`` as stored now, with each trial's run.

    Raises:
        NotFoundError: there is no such study.
    """
    validate_name("study", name)
    _import_optuna()
    from shipyard.tuning.journal import open_storage

    workspace = open_workspace(home)
    return read_study(workspace, open_storage(workspace.backend), name)


def list_studies(*, home: str | os.PathLike[str] | None = None) -> list[StudySummary]:
    """Every study of the workspace, by name, with its trial counts and best value."""
    _import_optuna()
    from shipyard.tuning.journal import open_storage

    workspace = open_workspace(home)
    return summarize(open_storage(workspace.backend))
