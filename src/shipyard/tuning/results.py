"""What a study found: its trials with their runs, the best one, and its model.

A :class:`Study` is a snapshot read from the store; :func:`~shipyard.tuning.load_study` reads a
fresh one.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.entities import ModelVersion, Run
from shipyard.errors import ArtifactCorruptedError, InvalidArgumentError, NotFoundError
from shipyard.tracking import Workspace
from shipyard.tuning.space import Dimension, space_from_json
from shipyard.tuning.trial import TAG_TRIAL

if TYPE_CHECKING:
    from optuna.storages import JournalStorage
    from optuna.study import StudyDirection

    from shipyard.models.package import LoadedModel

__all__ = [
    "ATTR_METRIC",
    "ATTR_RUN_ID",
    "ATTR_SPACE",
    "Study",
    "StudySummary",
    "TrialRecord",
    "direction_name",
    "find_study",
    "read_study",
    "summarize",
]

ATTR_RUN_ID = "shipyard.run_id"
"""Optuna study user attribute: the id of the study's run (the trials' parent)."""
ATTR_METRIC = "shipyard.metric"
ATTR_SPACE = "shipyard.space"

_STATES = {0: "RUNNING", 1: "COMPLETE", 2: "PRUNED", 3: "FAIL", 4: "WAITING"}
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """One trial as stored: ``state`` is ``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING`` or
    ``WAITING``; ``value`` is the objective's (None unless complete)."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    run_id: str | None
    """The trial's run (a child of the study's run); None if it was never started."""
    intermediate: dict[int, float] = field(default_factory=dict)
    """Values given to :meth:`Trial.report`, by step."""
    duration_s: float | None = None


@dataclass(frozen=True, slots=True)
class StudySummary:
    """A study in the list of :func:`~shipyard.tuning.list_studies`."""

    name: str
    direction: str
    metric: str
    run_id: str | None
    trials: int
    complete: int
    pruned: int
    failed: int
    running: int
    best_value: float | None
    best_trial: int | None


@dataclass(frozen=True)
class Study:
    """A study: its trials, the best of them, and the way to its run and model.

    Example:
        >>> study = shipyard.tuning.load_study("lr-search")  # doctest: +SKIP
        >>> study.best_params, study.best_value  # doctest: +SKIP
        ({'lr': 0.012}, 0.231)
        >>> model = study.load_best_model()  # doctest: +SKIP
    """

    name: str
    direction: str
    """``minimize`` or ``maximize``."""
    metric: str
    """The name the objective's value is logged under, on every trial's run."""
    run_id: str | None
    """The study's run: every trial's run is its child."""
    space: dict[str, Dimension]
    trials: list[TrialRecord]
    _workspace: Workspace = field(repr=False, compare=False)

    @property
    def best_trial(self) -> TrialRecord | None:
        """The complete trial with the best value (the earliest of equals); None if none."""
        done = [t for t in self.trials if t.state == "COMPLETE" and t.value is not None]
        if not done:
            return None
        sign = 1.0 if self.direction == "minimize" else -1.0
        return min(done, key=lambda t: (sign * (t.value or 0.0), t.number))

    @property
    def best_value(self) -> float | None:
        best = self.best_trial
        return None if best is None else best.value

    @property
    def best_params(self) -> dict[str, Any]:
        best = self.best_trial
        return {} if best is None else dict(best.params)

    @property
    def best_trial_number(self) -> int | None:
        best = self.best_trial
        return None if best is None else best.number

    @property
    def best_run_id(self) -> str | None:
        best = self.best_trial
        return None if best is None else best.run_id

    def history(self) -> list[dict[str, Any]]:
        """Complete trials in order, each with its value and the best value so far."""
        rows: list[dict[str, Any]] = []
        best: float | None = None
        better = min if self.direction == "minimize" else max
        for trial in sorted(self.trials, key=lambda t: t.number):
            if trial.state != "COMPLETE" or trial.value is None:
                continue
            best = trial.value if best is None else better(best, trial.value)
            rows.append({"trial": trial.number, "value": trial.value, "best": best})
        return rows

    def counts(self) -> dict[str, int]:
        """How many trials are in each state."""
        found = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0, "RUNNING": 0, "WAITING": 0}
        for trial in self.trials:
            found[trial.state] = found.get(trial.state, 0) + 1
        return found

    def _best_run_id(self) -> str:
        best = self.best_trial
        if best is None:
            raise NotFoundError(f"study {self.name!r} has no complete trial yet")
        if best.run_id is None:
            raise NotFoundError(f"trial {best.number} of study {self.name!r} has no run")
        return best.run_id

    def best_run(self) -> Run:
        """The best trial's run, with its params, metrics, tags."""
        return self._workspace.backend.get_run(self._best_run_id())

    def _best_model_record(self, name: str | None) -> tuple[str, str]:
        run_id = self._best_run_id()
        models = {
            r.path.removeprefix("models/"): r.digest
            for r in self._workspace.backend.list_artifacts(run_id)
            if r.is_dir and r.path.startswith("models/") and r.path.count("/") == 1
        }
        if name is not None:
            if name not in models:
                raise NotFoundError(
                    f"the best trial's run {run_id} has no model {name!r} "
                    f"(it has: {', '.join(sorted(models)) or 'none'})"
                )
            return name, models[name]
        if not models:
            raise NotFoundError(
                f"the best trial's run {run_id} has no model: call trial.log_model(model, NAME) "
                "in the objective"
            )
        if len(models) > 1:
            raise InvalidArgumentError(
                f"the best trial's run has several models ({', '.join(sorted(models))}): "
                "pass name=..."
            )
        return next(iter(models.items()))

    def _model_folder(self, digest: str) -> Path:
        """The model's files in the workspace's cache (fetched from the artifact store)."""
        folder = self._workspace.settings.home / "cache" / "models" / digest
        if not folder.is_dir():
            staging = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.tmp")
            self._workspace.artifacts.get_dir(digest, staging)
            try:
                os.replace(staging, folder)
            except OSError:  # another process put it there first
                shutil.rmtree(staging, ignore_errors=True)
                if not folder.is_dir():
                    raise
        return folder

    def load_best_model(
        self, name: str | None = None, *, trusted_pickle: bool = False, trusted_code: bool = False
    ) -> LoadedModel:
        """Load the model the best trial logged with :meth:`Trial.log_model`.

        Args:
            name: the model's name; may be left out when the trial logged one model.
            trusted_pickle: allow pickle files (see :func:`shipyard.models.load_model`).
            trusted_code: allow importing a PythonModel's module.

        Raises:
            NotFoundError: no complete trial, or its run has no such model.
        """
        from shipyard.models.package import load_model

        _, digest = self._best_model_record(name)
        folder = self._model_folder(digest)
        try:
            return load_model(folder, trusted_pickle=trusted_pickle, trusted_code=trusted_code)
        except ArtifactCorruptedError:  # the cached copy was changed: fetch it again
            shutil.rmtree(folder, ignore_errors=True)
            folder = self._model_folder(digest)
            return load_model(folder, trusted_pickle=trusted_pickle, trusted_code=trusted_code)

    def register_best_model(
        self, name: str | None = None, *, as_name: str | None = None
    ) -> ModelVersion:
        """Register the best trial's model (see :meth:`load_best_model`) as the next version
        of ``as_name`` (default: the name it was logged under)."""
        from shipyard.models.package import read_meta
        from shipyard.registry import Registry

        logged, digest = self._best_model_record(name)
        run_id = self._best_run_id()
        flavor = read_meta(self._model_folder(digest)).flavor
        registry = Registry(self._workspace.backend, self._workspace.settings.user)
        return registry.register(
            as_name or logged,
            digest=digest,
            flavor=flavor,
            run_id=run_id,
            source=f"runs:/{run_id}/models/{logged}",
        )

    def param_importances(self) -> dict[str, float]:
        """How much each parameter mattered to the objective (Optuna's default evaluator),
        largest first, summing to 1; empty with fewer than two complete trials."""
        if self.counts()["COMPLETE"] < 2:
            return {}
        import optuna

        from shipyard.tuning.journal import open_storage

        study = optuna.load_study(
            study_name=self.name, storage=open_storage(self._workspace.backend)
        )
        try:
            found = optuna.importance.get_param_importances(study)
        except (ValueError, RuntimeError):  # e.g. no parameter varied
            return {}
        return {k: float(v) for k, v in found.items() if math.isfinite(v)}


def find_study(storage: JournalStorage, name: str) -> int | None:
    """The study's id in ``storage``, None if there is no such study."""
    try:
        return storage.get_study_id_from_name(name)
    except KeyError:
        return None


def _runs_by_trial(workspace: Workspace, parent_run_id: str) -> dict[int, str]:
    backend = workspace.backend
    try:
        experiment_id = backend.get_run(parent_run_id).experiment_id
    except NotFoundError:
        return {}
    found: dict[int, Run] = {}
    offset = 0
    while True:
        page = backend.search_runs(
            [experiment_id],
            f"attributes.parent_run_id = '{parent_run_id}'",
            max_results=_PAGE,
            offset=offset,
        )
        for run in page:
            number = run.tags.get(TAG_TRIAL)
            if number is not None and number.isdigit():
                seen = found.get(int(number))
                if seen is None or run.start_time > seen.start_time:
                    found[int(number)] = run
        if len(page) < _PAGE:
            return {number: run.run_id for number, run in found.items()}
        offset += _PAGE


def direction_name(directions: Sequence[StudyDirection]) -> str:
    """``minimize`` or ``maximize``: the direction of a single-objective study."""
    return "maximize" if directions and directions[0].name == "MAXIMIZE" else "minimize"


def read_study(workspace: Workspace, storage: JournalStorage, name: str) -> Study:
    """A snapshot of study ``name``, with each trial's run."""
    study_id = find_study(storage, name)
    if study_id is None:
        raise NotFoundError(f"no study named {name!r} (`shipyard tune ls` lists them)")
    attrs = storage.get_study_user_attrs(study_id)
    directions = storage.get_study_directions(study_id)
    run_id = attrs.get(ATTR_RUN_ID)
    runs = _runs_by_trial(workspace, run_id) if run_id else {}
    trials = [
        TrialRecord(
            number=t.number,
            state=_STATES.get(int(t.state), t.state.name),
            value=t.value if int(t.state) == 1 else None,
            params=dict(t.params),
            run_id=runs.get(t.number),
            intermediate=dict(t.intermediate_values),
            duration_s=None if t.duration is None else t.duration.total_seconds(),
        )
        for t in storage.get_all_trials(study_id, deepcopy=False)
    ]
    return Study(
        name=name,
        direction=direction_name(directions),
        metric=str(attrs.get(ATTR_METRIC, "objective")),
        run_id=run_id,
        space=space_from_json(attrs.get(ATTR_SPACE) or {}),
        trials=trials,
        _workspace=workspace,
    )


def summarize(storage: JournalStorage) -> list[StudySummary]:
    """Every study in ``storage``, by name."""
    found: list[StudySummary] = []
    for frozen in storage.get_all_studies():
        study_id = storage.get_study_id_from_name(frozen.study_name)
        trials = storage.get_all_trials(study_id, deepcopy=False)
        states = [_STATES.get(int(t.state), t.state.name) for t in trials]
        direction = direction_name(frozen.directions)
        done = [t for t in trials if int(t.state) == 1 and t.value is not None]
        sign = 1.0 if direction == "minimize" else -1.0
        best = min(done, key=lambda t: (sign * (t.value or 0.0), t.number)) if done else None
        found.append(
            StudySummary(
                name=frozen.study_name,
                direction=direction,
                metric=str(frozen.user_attrs.get(ATTR_METRIC, "objective")),
                run_id=frozen.user_attrs.get(ATTR_RUN_ID),
                trials=len(trials),
                complete=states.count("COMPLETE"),
                pruned=states.count("PRUNED"),
                failed=states.count("FAIL"),
                running=states.count("RUNNING"),
                best_value=None if best is None else best.value,
                best_trial=None if best is None else best.number,
            )
        )
    return sorted(found, key=lambda s: s.name)
