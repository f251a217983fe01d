"""``shipyard.tuning.tune`` in one process: trials as child runs, pruning, failures, the best
model, joining a study, and bad input that writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

import shipyard
from shipyard.entities import Run, RunStatus
from shipyard.errors import InvalidArgumentError, NotFoundError, ShipyardError
from shipyard.tuning import (
    Categorical,
    Float,
    Int,
    Trial,
    TrialPruned,
    list_studies,
    load_study,
    tune,
)
from tests.tuning import _objectives

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _children(parent_run_id: str) -> list[Run]:
    backend = shipyard.open_workspace().backend
    parent = backend.get_run(parent_run_id)
    return backend.search_runs(
        [parent.experiment_id], f"attributes.parent_run_id = '{parent_run_id}'"
    )


def _journal_size() -> int:
    return len(shipyard.open_workspace().backend.read_tuning_logs(0))


def test_importing_tuning_does_not_import_optuna() -> None:
    code = "import sys, shipyard.tuning; assert 'optuna' not in sys.modules, 'optuna loaded'"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_tune_improves_and_every_trial_is_a_child_run(home: Path) -> None:
    space = {"alpha": Float(1e-3, 1e3, log=True)}
    study = tune(
        _objectives.ridge_loss, space, n_trials=12, study="ridge", experiment="tuning", seed=0
    )
    assert [t.number for t in study.trials] == list(range(12))
    assert {t.state for t in study.trials} == {"COMPLETE"}
    first = study.trials[0].value
    assert study.best_value is not None and first is not None
    assert study.best_value < first
    assert study.best_params == study.trials[study.best_trial_number or 0].params

    parent = shipyard.get_run(study.run_id or "")
    assert parent.name == "ridge" and parent.status is RunStatus.FINISHED
    assert parent.tags["shipyard.tuning.study"] == "ridge"
    assert parent.metrics["objective"] == study.best_value
    assert parent.tags["shipyard.tuning.best_run"] == study.best_run_id

    children = {int(r.tags["shipyard.tuning.trial"]): r for r in _children(parent.run_id)}
    assert sorted(children) == list(range(12))
    for trial in study.trials:
        run = children[trial.number]
        assert run.run_id == trial.run_id
        assert run.status is RunStatus.FINISHED
        assert run.name == f"trial-{trial.number}"
        assert run.tags["shipyard.tuning.study"] == "ridge"
        assert run.params == {"alpha": str(trial.params["alpha"])}
        assert run.metrics == {"objective": trial.value}
    best = study.best_run()
    assert best.run_id == study.best_run_id
    assert best.metrics["objective"] == study.best_value
    assert [s.name for s in list_studies()] == ["ridge"]
    assert load_study("ridge").trials == study.trials


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_report_logs_steps_and_the_pruner_stops_bad_trials(home: Path) -> None:
    pruner = optuna.pruners.ThresholdPruner(upper=3.0)
    study = tune(_objectives.epochs, {"x": Float(-10.0, 10.0)}, n_trials=10, pruner=pruner, seed=1)
    backend = shipyard.open_workspace().backend
    assert {t.state for t in study.trials} == {"COMPLETE", "PRUNED"}
    for trial in study.trials:
        x = trial.params["x"]
        run = backend.get_run(trial.run_id or "")
        steps = [m.step for m in backend.get_metric_history(run.run_id, "objective")]
        if abs(x - 2.0) + 1.0 > 3.0:  # above the threshold at the first report
            assert trial.state == "PRUNED"
            assert run.status is RunStatus.KILLED
            assert run.tags["shipyard.tuning.state"] == "PRUNED"
            assert steps == [0]
            assert trial.intermediate == {0: abs(x - 2.0) + 1.0}
        else:
            assert trial.state == "COMPLETE"
            assert run.status is RunStatus.FINISHED
            assert steps == [0, 1, 2, 3, 4, 5]  # the returned value follows the reports
            assert "shipyard.tuning.state" not in run.tags


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_trial_that_raises_fails_alone_and_a_study_that_only_fails_raises(
    home: Path,
) -> None:
    study = tune(_objectives.fails_on_negative, {"x": Float(-10.0, 10.0)}, n_trials=8, seed=3)
    states = {t.number: t.state for t in study.trials}
    assert set(states.values()) == {"COMPLETE", "FAIL"}
    backend = shipyard.open_workspace().backend
    for trial in study.trials:
        run = backend.get_run(trial.run_id or "")
        if trial.state == "FAIL":
            assert run.status is RunStatus.FAILED
            assert run.tags["shipyard.tuning.state"] == "FAIL"
            assert run.tags["shipyard.tuning.error"].startswith("ValueError: x is negative")
        else:
            assert run.status is RunStatus.FINISHED
    assert shipyard.get_run(study.run_id or "").status is RunStatus.FINISHED

    with pytest.raises(ShipyardError, match=r"every trial of this call failed.*data is missing"):
        tune(_objectives.always_fails, {"x": Float(0, 1)}, n_trials=2, study="broken")
    broken = load_study("broken")
    assert [t.state for t in broken.trials] == ["FAIL", "FAIL"]
    assert shipyard.get_run(broken.run_id or "").status is RunStatus.FAILED

    with pytest.raises(RuntimeError, match="data is missing"):
        tune(_objectives.always_fails, {"x": Float(0, 1)}, n_trials=3, study="b2", catch=False)
    stopped = load_study("b2")
    assert [t.state for t in stopped.trials] == ["FAIL"]  # the first error stopped it
    assert shipyard.get_run(stopped.trials[0].run_id or "").status is RunStatus.FAILED


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_best_model_is_one_call_away(home: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = (x[:, 0] + 0.3 * rng.normal(size=60) > 0).astype(int)

    def objective(trial: Trial) -> float:
        model = LogisticRegression(C=trial.params["C"]).fit(x[:40], y[:40])
        trial.log_model(model, "clf", input_example=x[:2])
        return float(model.score(x[40:], y[40:]))

    study = tune(
        objective, {"C": Float(1e-3, 10.0, log=True)}, n_trials=3, direction="maximize", seed=0
    )
    model = study.load_best_model()
    assert model.predict(x[:5]).shape == (5,)
    assert study.load_best_model("clf").meta.flavor == model.meta.flavor
    with pytest.raises(NotFoundError, match="no model 'other'"):
        study.load_best_model("other")
    version = study.register_best_model(as_name="tuned-clf")
    assert (version.model, version.version, version.run_id) == ("tuned-clf", 1, study.best_run_id)
    # Logging a model per trial does not register a version per trial.
    assert [m.name for m in shipyard.open_workspace().backend.list_registered_models()] == [
        "tuned-clf"
    ]


def test_calls_with_one_study_name_add_to_one_study(home: Path) -> None:
    space = {"x": Float(-10.0, 10.0), "k": Int(1, 4)}
    first = tune(_objectives.quadratic, space, n_trials=3, study="shared", direction="minimize")
    seen: list[int] = []
    second = tune(_objectives.quadratic, space, n_trials=2, study="shared", progress=seen.append)
    assert seen == [1, 2]  # this call's trials, one report after each
    assert [t.number for t in second.trials] == [0, 1, 2, 3, 4]
    assert second.run_id == first.run_id
    assert len(_children(first.run_id or "")) == 5
    assert shipyard.get_run(first.run_id or "").status is RunStatus.FINISHED

    before = (_journal_size(), len(_children(first.run_id or "")))
    mismatches: list[tuple[dict[str, Any], str]] = [
        ({"direction": "maximize"}, "direction"),
        ({"metric": "loss"}, "metric"),
        ({"experiment": "elsewhere"}, "experiment"),
    ]
    for kwargs, named in mismatches:
        with pytest.raises(InvalidArgumentError, match=named):
            tune(_objectives.quadratic, space, n_trials=1, study="shared", **kwargs)
    with pytest.raises(InvalidArgumentError, match=r"space\['k'\]"):
        tune(_objectives.quadratic, {"x": space["x"], "k": Int(1, 8)}, n_trials=1, study="shared")
    assert (_journal_size(), len(_children(first.run_id or ""))) == before


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_study_inside_a_run_is_its_child_and_suggest_adds_params(home: Path) -> None:
    def objective(trial: Trial) -> float:
        if trial.params["model"] == "b":
            return trial.suggest("depth", Int(1, 3))
        if trial.number == 0:
            raise TrialPruned
        return 10.0

    space = {"model": Categorical(["a", "b"])}
    with shipyard.start_run(experiment="outer", log_code=False) as outer:
        with pytest.raises(InvalidArgumentError, match="leave out experiment='other'"):
            tune(objective, space, n_trials=6, study="elsewhere", experiment="other")
        study = tune(objective, space, n_trials=6, seed=2, study="nested", experiment="outer")
    assert [s.name for s in list_studies()] == ["nested"]
    assert shipyard.get_run(study.run_id or "").parent_run_id == outer.run_id
    for trial in study.trials:
        run = shipyard.get_run(trial.run_id or "")
        assert run.params == {k: str(v) for k, v in trial.params.items()}
        if trial.params["model"] == "b":
            assert trial.state == "COMPLETE" and "depth" in trial.params
    assert study.trials[0].state == "PRUNED"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_unknown_study_is_not_found(home: Path) -> None:
    with pytest.raises(NotFoundError, match="no study named 'nope'"):
        load_study("nope")
    assert list_studies() == []


_SPACE = {"x": Float(0.0, 1.0)}


@pytest.mark.parametrize(
    ("space", "kwargs", "named"),
    [
        ({"x": Float(1.0, 0.0)}, {}, r"space\['x'\]: low \(1\) must be less than high \(0\)"),
        ({"x": Float(0.0, 1.0, log=True)}, {}, r"space\['x'\]: a log scale needs low > 0"),
        ({"x": Float(0.0, 1.0, step=0.3)}, {}, r"space\['x'\].*multiple of step"),
        ({"n": Int(1, 2, step=0)}, {}, r"space\['n'\]: step must be at least 1"),
        ({"n": Int(1.5, 3)}, {}, r"space\['n'\]: low must be an integer"),  # type: ignore[arg-type]
        ({"c": Categorical([])}, {}, r"space\['c'\]: choices must be a non-empty list"),
        ({"c": Categorical([object()])}, {}, r"space\['c'\]: choice .* is a object"),  # type: ignore[list-item]
        ({"x": (0, 1)}, {}, r"space\['x'\] is \(0, 1\): use Float"),
        ({"bad name!": Float(0, 1)}, {}, r"space\['bad name!'\]: invalid param name"),
        ([("x", Float(0, 1))], {}, "space must be a dict"),
        (_SPACE, {"direction": "up"}, "direction must be 'minimize' or 'maximize'"),
        (_SPACE, {"executor": "spark"}, "unknown executor 'spark'"),
        (_SPACE, {"n_trials": 0}, "n_trials must be a whole number of at least 1"),
        (_SPACE, {"n_trials": None}, "give n_trials, timeout or both"),
        (_SPACE, {"timeout": -1.0}, "timeout must be a positive number of seconds"),
        (_SPACE, {"n_workers": 2}, "n_workers > 1 needs executor='processes' or 'ray'"),
        (_SPACE, {"metric": "a|b"}, "invalid metric name"),
        (_SPACE, {"seed": "1"}, "seed must be an integer"),
        (_SPACE, {"sampler": "tpe"}, "sampler must be an Optuna sampler"),
        (_SPACE, {"study": ""}, "invalid study name"),
    ],
)
def test_bad_input_names_the_parameter_and_writes_nothing(
    tmp_path: Path, space: Any, kwargs: dict[str, Any], named: str
) -> None:
    arguments: dict[str, Any] = {"n_trials": 2, "home": tmp_path / "ws" / ".shipyard"}
    arguments.update(kwargs)
    with pytest.raises(InvalidArgumentError, match=named):
        tune(_objectives.quadratic, space, **arguments)
    assert not (tmp_path / "ws").exists()


def test_objectives_other_processes_cannot_import_are_refused(tmp_path: Path) -> None:
    def local(trial: Trial) -> float:
        return 0.0

    home = tmp_path / ".shipyard"
    for objective, named in ((lambda t: 0.0, "<lambda>"), (local, "local")):
        with pytest.raises(InvalidArgumentError, match=f"executor='processes'.*{named}"):
            tune(objective, _SPACE, n_trials=2, executor="processes", home=home)
    with pytest.raises(InvalidArgumentError, match="objective must be a function"):
        tune("train.py:objective", _SPACE, n_trials=2, home=home)  # type: ignore[arg-type]
    assert not home.exists()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_worker_that_loses_the_race_to_create_the_study_joins_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.tuning import study as study_module

    first = tune(_objectives.quadratic, _objectives.SPACE, n_trials=2, study="race")
    # As if the study appeared between this worker's look and its attempt to create it.
    monkeypatch.setattr(study_module, "find_study", lambda storage, name: None)
    joined = tune(_objectives.quadratic, _objectives.SPACE, n_trials=2, study="race")
    assert joined.run_id == first.run_id
    assert [t.number for t in joined.trials] == [0, 1, 2, 3]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_study_whose_creator_never_recorded_its_run_gets_one(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.tuning import study as study_module
    from shipyard.tuning.journal import open_storage

    storage = open_storage(shipyard.open_workspace(create=True).backend)
    optuna.create_study(storage=storage, study_name="orphan")  # no Shipyard attributes
    monkeypatch.setattr(study_module, "_JOIN_WAIT_S", 0.1)
    study = tune(_objectives.quadratic, _objectives.SPACE, n_trials=2, study="orphan")
    assert study.run_id is not None
    assert {t.run_id is not None for t in study.trials} == {True}
    assert shipyard.get_run(study.run_id).status is RunStatus.FINISHED
