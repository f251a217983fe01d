"""Where trials run: this process, worker processes on this machine, or Ray tasks.

Every worker opens the workspace with the caller's settings, loads the study from the store's
journal and runs its share of the trials; Optuna's journal keeps their trial numbers apart.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from shipyard.config import Settings
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.tracking import Workspace
from shipyard.tuning.trial import Outcome, Trial, TrialContext, TrialRunner

if TYPE_CHECKING:
    import optuna

__all__ = [
    "EXECUTORS",
    "RAY_HINT",
    "FileObjective",
    "Job",
    "check_portable",
    "default_workers",
    "run_local",
    "run_processes",
    "run_ray",
    "split",
]

EXECUTORS = ("local", "processes", "ray")
RAY_HINT = "executor='ray' needs Ray: pip install 'shipyard-mlops[ray]'"


@dataclass(frozen=True)
class FileObjective:
    """An objective named ``path.py:function``, loaded from the file on first call in each
    process (so worker processes can run a function the CLI loaded from a script)."""

    path: str
    function: str

    @classmethod
    def parse(cls, ref: str) -> FileObjective:
        """``train.py:objective`` -> the checked reference (the file is loaded here)."""
        path, sep, function = ref.rpartition(":")
        if not sep or not path or not function.isidentifier():
            raise InvalidArgumentError(
                f"objective {ref!r} must be FILE.py:FUNCTION, e.g. train.py:objective"
            )
        found = cls(str(Path(path).resolve()), function)
        found.load()
        return found

    def module(self) -> ModuleType:
        """The file's module (executed once per process)."""
        name = "shipyard_tune_" + "".join(c if c.isalnum() else "_" for c in self.path)
        loaded = sys.modules.get(name)
        if loaded is not None:
            return loaded
        import importlib.util

        source = Path(self.path)
        if not source.is_file():
            raise NotFoundError(f"objective file {source} does not exist")
        spec = importlib.util.spec_from_file_location(name, source)
        if spec is None or spec.loader is None:
            raise InvalidArgumentError(f"cannot load {source} as Python")
        module = importlib.util.module_from_spec(spec)
        # Like `python FILE`: the script's folder is importable, so it can import its siblings.
        if str(source.parent) not in sys.path:
            sys.path.insert(0, str(source.parent))
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module

    def load(self) -> Callable[[Trial], float]:
        found = getattr(self.module(), self.function, None)
        if not callable(found):
            raise InvalidArgumentError(f"{self.path} has no function {self.function!r}")
        objective: Callable[[Trial], float] = found
        return objective

    def __call__(self, trial: Trial) -> float:
        return self.load()(trial)


@dataclass(frozen=True)
class Job:
    """One study's work, as sent to every worker."""

    settings: Settings
    context: TrialContext
    objective: Callable[[Trial], float]
    sampler: optuna.samplers.BaseSampler | None
    pruner: optuna.pruners.BasePruner | None
    seed: int | None
    catch: bool
    deadline: float | None
    """Wall-clock time (``time.time()``) after which no worker starts a trial."""


def split(n_trials: int | None, n_workers: int) -> list[int | None]:
    """Each worker's share of ``n_trials`` (None: until the deadline)."""
    if n_trials is None:
        return [None] * n_workers
    base, extra = divmod(n_trials, n_workers)
    return [base + (1 if i < extra else 0) for i in range(n_workers) if base or i < extra]


def check_portable(objective: Callable[..., Any], executor: str) -> None:
    """Refuse an objective that worker processes could not import."""
    if isinstance(objective, FileObjective):
        return
    qualname = getattr(objective, "__qualname__", "")
    module = getattr(objective, "__module__", None)
    where = f"executor={executor!r} runs the objective in other processes"
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise InvalidArgumentError(
            f"{where}, which import it by name: define objective {qualname!r} at the top level "
            "of a module (not a lambda or a function inside a function), or use "
            "executor='local' or 'ray'"
        )
    if module == "__main__" and not getattr(sys.modules.get("__main__"), "__file__", None):
        raise InvalidArgumentError(
            f"{where}, which import it by name: objective {qualname!r} was defined "
            "interactively; move it into a module, or use executor='local' or 'ray'"
        )
    import pickle

    try:
        pickle.dumps(objective)
    except Exception as exc:
        raise InvalidArgumentError(
            f"{where}, which receive it pickled, but objective {qualname or objective!r} cannot "
            f"be pickled ({exc}); use a top-level function of a module"
        ) from None


Tick = Callable[[], None]
"""Called now and then while trials run (after each trial here, about twice a second while
workers run): the caller's progress report."""
_TICK_S = 0.5


def _run_trials(
    job: Job, workspace: Workspace, n_trials: int | None, worker: int, tick: Tick | None = None
) -> list[Outcome]:
    """Run up to ``n_trials`` trials of the study in this process."""
    import optuna

    from shipyard.tuning.journal import open_storage

    timeout = None
    if job.deadline is not None:
        timeout = job.deadline - time.time()
        if timeout <= 0:
            return []
    sampler = job.sampler
    if sampler is None:
        seed = None if job.seed is None else job.seed + worker
        sampler = optuna.samplers.TPESampler(seed=seed)
    elif worker:
        sampler.reseed_rng()  # workers with one RNG state would sample the same points
    study = optuna.load_study(
        study_name=job.context.study,
        storage=open_storage(workspace.backend),
        sampler=sampler,
        pruner=job.pruner,
    )
    runner = TrialRunner(job.objective, job.context, workspace)
    study.optimize(
        runner,
        n_trials=n_trials,
        timeout=timeout,
        catch=(Exception,) if job.catch else (),
        callbacks=None if tick is None else [lambda _study, _trial: tick()],
    )
    return runner.outcomes


def _worker(job: Job, n_trials: int | None, worker: int) -> list[Outcome]:
    """A worker process or Ray task: its own workspace, closed (metrics flushed) at the end."""
    workspace = Workspace(job.settings)
    try:
        return _run_trials(job, workspace, n_trials, worker)
    finally:
        workspace.close()


def run_local(
    job: Job, workspace: Workspace, n_trials: int | None, tick: Tick | None = None
) -> list[Outcome]:
    """Run the trials one after another in this process."""
    return _run_trials(job, workspace, n_trials, 0, tick)


def run_processes(
    job: Job, n_trials: int | None, n_workers: int, tick: Tick | None = None
) -> list[Outcome]:
    """Run the trials in ``n_workers`` new processes (spawned: no state is inherited)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, wait

    shares = split(n_trials, n_workers)
    context = multiprocessing.get_context("spawn")
    outcomes: list[Outcome] = []
    with ProcessPoolExecutor(max_workers=len(shares), mp_context=context) as pool:
        futures = [pool.submit(_worker, job, share, i) for i, share in enumerate(shares)]
        pending = set(futures)
        while pending:
            pending = wait(pending, timeout=_TICK_S).not_done
            if tick is not None:
                tick()
        errors: list[BaseException] = []
        for future in futures:
            try:
                outcomes.extend(future.result())
            except BaseException as exc:  # the other workers finish their share first
                errors.append(exc)
    if errors:
        raise errors[0]
    return outcomes


def run_ray(
    job: Job, n_trials: int | None, n_workers: int | None, tick: Tick | None = None
) -> list[Outcome]:
    """Run the trials as Ray tasks (the connected cluster, ``RAY_ADDRESS``, or a local one)."""
    try:
        import ray
    except ImportError as exc:
        raise InvalidArgumentError(RAY_HINT) from exc
    started = False
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False)
        started = True
    try:
        if n_workers is None:
            cpus = ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
            n_workers = max(1, int(cpus))
            if n_trials is not None:
                n_workers = min(n_workers, n_trials)
        remote = ray.remote(num_cpus=1)(_worker)
        shares = split(n_trials, n_workers)
        refs = [remote.remote(job, share, i) for i, share in enumerate(shares)]
        pending = list(refs)
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=_TICK_S)
            if tick is not None:
                tick()
        outcomes: list[Outcome] = []
        errors: list[BaseException] = []
        for ref in refs:
            try:
                found = ray.get(ref)
                outcomes.extend(found)
            except Exception as exc:  # the other tasks finish their share first
                errors.append(exc)
        if errors:
            raise errors[0]
        return outcomes
    finally:
        if started:
            ray.shutdown()


def default_workers(n_trials: int | None) -> int:
    """Worker processes when none are asked for: one per CPU, at most one per trial."""
    cpus = os.cpu_count() or 1
    return max(1, min(cpus, n_trials if n_trials is not None else cpus))
