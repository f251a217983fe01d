"""Several workers on one study: worker processes, separate OS processes joining one study
name on PostgreSQL (as on several machines), and Ray tasks. No trial is lost or run twice,
and every trial's run is a child of the one study run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

import shipyard
from shipyard.entities import Run, RunStatus
from shipyard.tuning import Float, Study, Trial, load_study, tune
from tests.tuning import _objectives

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _study_runs(name: str) -> tuple[Run, list[Run]]:
    """The study's run and its trials' runs, found by tag in every experiment."""
    backend = shipyard.open_workspace().backend
    runs = backend.search_runs([], f"tags.`shipyard.tuning.study` = '{name}'")
    parents = [r for r in runs if "shipyard.tuning.trial" not in r.tags]
    assert len(parents) == 1, f"{len(parents)} study runs"
    return parents[0], [r for r in runs if "shipyard.tuning.trial" in r.tags]


def _assert_whole(study: Study, n_trials: int) -> list[Run]:
    """Trials 0..n-1, each complete once, each with exactly one child run of the study run."""
    assert [t.number for t in study.trials] == list(range(n_trials))
    assert {t.state for t in study.trials} == {"COMPLETE"}
    parent, children = _study_runs(study.name)
    assert parent.run_id == study.run_id
    numbers = Counter(int(r.tags["shipyard.tuning.trial"]) for r in children)
    assert numbers == Counter(range(n_trials))  # no trial lost, none run twice
    by_number = {int(r.tags["shipyard.tuning.trial"]): r for r in children}
    for trial in study.trials:
        run = by_number[trial.number]
        assert run.parent_run_id == parent.run_id
        assert run.run_id == trial.run_id
        assert run.status is RunStatus.FINISHED
        assert run.metrics["objective"] == trial.value
        assert run.params == {k: str(v) for k, v in trial.params.items()}
    return children


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_worker_processes_share_the_study(home: Path) -> None:
    """(SQLite: tests/tuning/test_cli.py runs worker processes from the command line.)"""
    seen: list[int] = []
    study = tune(
        _objectives.quadratic,
        _objectives.SPACE,
        n_trials=8,
        executor="processes",
        n_workers=2,
        study="pool",
        progress=seen.append,
    )
    assert seen and seen[-1] == 8 and seen == sorted(set(seen)), seen  # grows, ends at 8
    children = _assert_whole(study, 8)
    pids = Counter(r.owner.pid for r in children if r.owner is not None)
    assert sorted(pids.values()) == [4, 4] and os.getpid() not in pids
    assert shipyard.get_run(study.run_id or "").status is RunStatus.FINISHED


_JOINER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from shipyard.tuning import tune
    from tests.tuning import _objectives

    ready, go = Path(sys.argv[1]), Path(sys.argv[2])
    ready.touch()
    while not go.exists():
        time.sleep(0.01)
    tune(_objectives.quadratic, _objectives.SPACE, n_trials=6, study="duo")
    """
)


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_two_os_processes_on_postgresql_share_one_study(home: Path, tmp_path: Path) -> None:
    """Two independent tuning processes start the same new study at the same moment."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _JOINER, str(flag), str(go)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(f.exists() for f in ready) and time.monotonic() < deadline:
            time.sleep(0.01)
        go.touch()
        outputs = [p.communicate(timeout=120)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs
    study = load_study("duo")
    children = _assert_whole(study, 12)
    assert sorted(Counter(r.owner.pid for r in children if r.owner).values()) == [6, 6]
    assert shipyard.get_run(study.run_id or "").status is RunStatus.FINISHED


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_ray_tasks_share_the_study(home: Path) -> None:
    ray = pytest.importorskip("ray")
    offset = 2.0

    def closure(trial: Trial) -> float:  # Ray ships closures by value
        return (trial.params["x"] - offset) ** 2

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        study = tune(
            closure, {"x": Float(-5.0, 5.0)}, n_trials=4, executor="ray", study="rays", seed=0
        )
    finally:
        ray.shutdown()
    children = _assert_whole(study, 4)
    assert os.getpid() not in {r.owner.pid for r in children if r.owner is not None}
