"""One trial of a study: the :class:`Trial` an objective receives, and the wrapper that gives
every Optuna trial its child run (params, the objective metric, its status)."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.entities import ArtifactRecord, Metric, RunStatus
from shipyard.errors import InvalidArgumentError
from shipyard.tracking import ActiveRun, Workspace
from shipyard.tracking.fluent import default_run_tags
from shipyard.tracking.liveness import this_process
from shipyard.tracking.run import now_ms
from shipyard.tracking.validation import int64, metric_value, validate_key
from shipyard.tuning.space import Dimension, check_dimension

if TYPE_CHECKING:
    import optuna

__all__ = [
    "TAG_ERROR",
    "TAG_STATE",
    "TAG_STUDY",
    "TAG_TRIAL",
    "Outcome",
    "Trial",
    "TrialContext",
    "TrialPruned",
    "TrialRunner",
    "suggest",
]

TAG_STUDY = "shipyard.tuning.study"
"""On the study's run and on every trial's run: the study name."""
TAG_TRIAL = "shipyard.tuning.trial"
"""On a trial's run: the trial number."""
TAG_STATE = "shipyard.tuning.state"
"""On a trial's run that did not complete: ``PRUNED`` or ``FAIL``."""
TAG_ERROR = "shipyard.tuning.error"
"""On a failed trial's run: the error, one line."""

_ERROR_LIMIT = 2000


class TrialPruned(Exception):
    """Raised by :meth:`Trial.report` when the pruner stops a trial; raise it yourself to
    stop one early. The trial's run ends ``KILLED``, tagged ``shipyard.tuning.state=PRUNED``."""


@dataclass(frozen=True, slots=True)
class TrialContext:
    """What every worker of a study needs to give its trials their runs."""

    study: str
    parent_run_id: str
    experiment_id: int
    space: dict[str, Dimension]
    metric: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one trial run by this process ended: ``COMPLETE``, ``PRUNED`` or ``FAIL``."""

    number: int
    state: str
    error: str | None = None


def suggest(trial: optuna.trial.Trial, name: str, dim: Dimension) -> Any:
    """Sample ``name`` from ``dim`` with Optuna's sampler."""
    from shipyard.tuning.space import Categorical, Float

    if isinstance(dim, Float):
        return trial.suggest_float(name, dim.low, dim.high, step=dim.step, log=dim.log)
    if isinstance(dim, Categorical):
        return trial.suggest_categorical(name, dim.choices)
    return trial.suggest_int(name, dim.low, dim.high, step=dim.step, log=dim.log)


class Trial:
    """One evaluation of the objective: sampled ``params`` and the child ``run`` that records it.

    Example:
        >>> def objective(trial: Trial) -> float:  # doctest: +SKIP
        ...     model = train(lr=trial.params["lr"])
        ...     for epoch in range(20):
        ...         trial.report(epoch, model.fit_epoch())  # may raise TrialPruned
        ...     trial.log_model(model, "net")
        ...     return model.val_loss
    """

    def __init__(
        self, optuna_trial: optuna.trial.Trial, run: ActiveRun, study: str, metric: str
    ) -> None:
        self._trial = optuna_trial
        self._run = run
        self._metric = metric
        self.study = study
        """The study's name."""
        self.params: dict[str, Any] = dict(optuna_trial.params)
        """The parameters sampled for this trial (from the space, and by :meth:`suggest`)."""
        self.next_step = 0
        """The step the objective's value is logged at: one after the last reported."""

    def __repr__(self) -> str:
        return f"Trial(study={self.study!r}, number={self.number}, params={self.params!r})"

    @property
    def number(self) -> int:
        """The trial's number in the study: 0, 1, 2, ... across every worker."""
        return self._trial.number

    @property
    def run(self) -> ActiveRun:
        """The trial's run, a child of the study's run."""
        return self._run

    @property
    def optuna_trial(self) -> optuna.trial.Trial:
        """Optuna's trial, for what this class does not offer."""
        return self._trial

    def suggest(self, name: str, dimension: Dimension) -> Any:
        """Sample one more parameter (for a conditional space) and log it on the run.

        Example:
            >>> if trial.params["model"] == "svm":  # doctest: +SKIP
            ...     c = trial.suggest("C", Float(1e-3, 1e3, log=True))
        """
        validate_key("param", name)
        dim = check_dimension(f"parameter {name!r}", dimension)
        value = suggest(self._trial, name, dim)
        self._run.log_param(name, value)
        self.params[name] = value
        return value

    def report(self, step: int, value: float) -> None:
        """Record an intermediate value of the objective (say, after an epoch).

        The value is logged on the run as the study's metric at ``step`` and given to the
        pruner.

        Raises:
            TrialPruned: the pruner stops this trial; let it propagate.
        """
        step = int64("report step", step)
        if step < 0:
            raise InvalidArgumentError(f"report step must be 0 or more, not {step}")
        number = metric_value(self._metric, value)
        self._run.log_metric(self._metric, number, step=step)
        self.next_step = max(self.next_step, step + 1)
        self._trial.report(number, step)
        if self._trial.should_prune():
            raise TrialPruned(f"The pruner stopped it at step {step}.")

    def should_prune(self) -> bool:
        """Whether the pruner would stop this trial after the values reported so far."""
        return self._trial.should_prune()

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self._run.log_metric(key, value, step=step)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._run.log_metrics(metrics, step=step)

    def set_tag(self, key: str, value: Any) -> None:
        self._run.set_tag(key, value)

    def log_model(
        self, model: Any, name: str, *, input_example: Any = None, **options: Any
    ) -> ArtifactRecord:
        """Save ``model`` as the run's artifact ``models/NAME`` (not registered: a version per
        trial would flood the registry). :meth:`Study.load_best_model` loads the best
        trial's; :meth:`Study.register_best_model` registers it."""
        from shipyard.models.package import save_model
        from shipyard.registry import validate_model_name

        validate_model_name(name)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / name
            save_model(model, folder, input_example=input_example, **options)
            return self._run.log_artifact(folder, f"models/{name}")


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().replace("\n", " ")
    return text if len(text) <= _ERROR_LIMIT else text[: _ERROR_LIMIT - 1] + "\u2026"


@dataclass
class TrialRunner:
    """The function Optuna optimizes: each call is one trial with its own child run."""

    objective: Callable[[Trial], float]
    context: TrialContext
    workspace: Workspace
    outcomes: list[Outcome] = field(default_factory=list)

    def __call__(self, optuna_trial: optuna.trial.Trial) -> float:
        import optuna

        ctx = self.context
        stored = self.workspace.backend.create_run(
            ctx.experiment_id,
            name=f"trial-{optuna_trial.number}",
            user=self.workspace.settings.user,
            start_time=now_ms(),
            parent_run_id=ctx.parent_run_id,
            tags={**default_run_tags(), TAG_STUDY: ctx.study, TAG_TRIAL: str(optuna_trial.number)},
            owner=this_process(),
        )
        run = ActiveRun(self.workspace, stored, owned=True)
        number = optuna_trial.number
        try:
            params = {name: suggest(optuna_trial, name, dim) for name, dim in ctx.space.items()}
            if params:
                run.log_params(params)
            trial = Trial(optuna_trial, run, ctx.study, ctx.metric)
            value = self.objective(trial)
        except (TrialPruned, optuna.TrialPruned) as exc:
            self._end(run, Outcome(number, "PRUNED"))
            if isinstance(exc, TrialPruned):
                raise optuna.TrialPruned(str(exc)) from None
            raise
        except BaseException as exc:
            self._end(run, Outcome(number, "FAIL", _one_line(exc)), exc)
            raise
        number_value = _as_number(value)
        if number_value is None:
            # Optuna fails such a trial itself (and logs why); the run says so too.
            error = f"the objective returned {value!r}, not a number"
            self._end(run, Outcome(number, "FAIL", error))
            return math.nan
        try:
            # Straight to the store (one insert), not through the run's buffer and journal.
            self.workspace.backend.log_metrics(
                [Metric(ctx.metric, number_value, trial.next_step, now_ms(), run.run_id)]
            )
        except BaseException as exc:
            self._end(run, Outcome(number, "FAIL", _one_line(exc)), exc)
            raise
        self._end(run, Outcome(number, "COMPLETE"))
        return number_value

    def _end(self, run: ActiveRun, outcome: Outcome, exc: BaseException | None = None) -> None:
        self.outcomes.append(outcome)
        if outcome.state == "COMPLETE":
            run.end(RunStatus.FINISHED)
            return
        tags = {TAG_STATE: outcome.state}
        if outcome.error is not None:
            tags[TAG_ERROR] = outcome.error
        try:
            run.set_tags(tags)
        finally:
            failed = outcome.state == "FAIL" and not isinstance(exc, KeyboardInterrupt)
            run.end(RunStatus.FAILED if failed else RunStatus.KILLED)


def _as_number(value: Any) -> float | None:
    """The objective's value as a float; None when Optuna would not accept it."""
    if isinstance(value, bool | str | bytes) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number
