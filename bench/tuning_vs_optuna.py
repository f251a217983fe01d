"""What Shipyard adds to each Optuna trial: ``shipyard.tune`` vs plain Optuna (issue: tuning).

Three ways to run the same study, each in its own process on a fresh SQLite file:

* ``optuna_rdb``: plain Optuna with ``RDBStorage("sqlite:///...")``, the storage Optuna users
  reach for (the baseline);
* ``optuna_journal``: plain Optuna on the storage ``shipyard.tune`` uses, a ``JournalStorage``
  over the Shipyard metadata store's ``tuning_journal`` (no runs): the storage's own cost;
* ``shipyard_tune``: ``shipyard.tune`` in a fresh workspace: the same journal plus, for every
  trial, a child run with its params, the objective metric and its final status.

Every study minimizes ``(x - 2) ** 2`` over ``x`` in [-10, 10] with ``TPESampler(seed=0)``
for N trials (default 200), one at a time in one process; Optuna's per-trial log lines are off.
Creating the database (migrations) is untimed; creating the study and its run is timed. With
``--postgres URL`` the first and last also run on PostgreSQL (a fresh schema each).

Target: ``shipyard_tune`` per trial <= 1.5x ``optuna_rdb`` on the same storage. The ratio to
``optuna_journal`` is printed too: what the child runs alone cost. Each worker checks its
result (N trials, and for Shipyard N child runs of one study run).

Run: ``.venv/bin/python bench/tuning_vs_optuna.py [--trials 200] [--rounds 1] [--postgres URL]
[--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ("optuna_rdb", "optuna_journal", "shipyard_tune")
TARGET = 1.5


def objective_value(x: float) -> float:
    return (x - 2.0) ** 2


def _pg_schema(base: str) -> tuple[str, str]:
    """A fresh schema on ``base`` and a URL that uses it."""
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    sep = "&" if "?" in base else "?"
    return schema, f"{base}{sep}options=-csearch_path%3D{schema}"


def _drop_schema(base: str, schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def _optuna(storage: Any, trials: int) -> tuple[float, int]:
    import optuna

    start = time.perf_counter()
    study = optuna.create_study(
        storage=storage, study_name="bench", sampler=optuna.samplers.TPESampler(seed=0)
    )
    study.optimize(lambda t: objective_value(t.suggest_float("x", -10.0, 10.0)), n_trials=trials)
    seconds = time.perf_counter() - start
    return seconds, len(study.trials)


def worker(workload: str, trials: int, store: str, folder: Path) -> dict[str, Any]:
    """One timed study in this (fresh) process."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if workload == "optuna_rdb":
        url = f"sqlite:///{folder / 'optuna.db'}" if store == "sqlite" else store
        storage = optuna.storages.RDBStorage(url)  # creates its tables: untimed
        seconds, done = _optuna(storage, trials)
        return {"seconds": seconds, "trials": done}

    url = f"sqlite:///{folder / 'shipyard.db'}" if store == "sqlite" else store
    os.environ["SHIPYARD_STORE_URL"] = url
    os.environ["SHIPYARD_USER"] = "bench"
    home = folder / ".shipyard"
    import shipyard
    from shipyard.tuning import Float, Trial, tune
    from shipyard.tuning.journal import open_storage

    backend = shipyard.open_workspace(home, create=True).backend  # migrations: untimed
    if workload == "optuna_journal":
        seconds, done = _optuna(open_storage(backend), trials)
        return {"seconds": seconds, "trials": done}

    def objective(trial: Trial) -> float:
        return objective_value(trial.params["x"])

    start = time.perf_counter()
    study = tune(
        objective, {"x": Float(-10.0, 10.0)}, n_trials=trials, study="bench", seed=0, home=home
    )
    seconds = time.perf_counter() - start
    parent = backend.get_run(study.run_id or "")
    children = backend.search_runs(
        [parent.experiment_id],
        f"attributes.parent_run_id = '{parent.run_id}'",
        max_results=trials + 10,
    )
    assert len(children) == trials, f"{len(children)} child runs for {trials} trials"
    assert all(r.status.value == "FINISHED" and "objective" in r.metrics for r in children)
    return {"seconds": seconds, "trials": len(study.trials), "best": study.best_value}


def _measure(workload: str, trials: int, store: str) -> dict[str, Any]:
    """Run one workload in a fresh interpreter and a fresh folder (or PostgreSQL schema)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    schema = None
    with tempfile.TemporaryDirectory(prefix="tuning-bench-") as tmp:
        target = store
        if store != "sqlite":
            schema, target = _pg_schema(store)
        try:
            command = [sys.executable, __file__, "--worker", workload]
            command += ["--trials", str(trials), "--store", target, "--folder", tmp]
            out = subprocess.run(
                command, env=env, capture_output=True, text=True, check=False, cwd=tmp
            )
        finally:
            if schema is not None:
                _drop_schema(store, schema)
    if out.returncode != 0:
        raise SystemExit(f"{workload} failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if result["trials"] != trials:
        raise SystemExit(f"{workload}: {result['trials']} trials, expected {trials}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--postgres", help="also run on this PostgreSQL URL (fresh schemas)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--worker", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--store", default="sqlite", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.trials, args.store, args.folder)))
        return

    stores = [("sqlite", "sqlite")]
    if args.postgres:
        stores.append(("postgresql", args.postgres))
    print(f"{args.trials} trials of (x - 2)^2, TPE seed 0, {args.rounds} round(s), median")
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    results: dict[str, dict[str, float]] = {}
    for label, store in stores:
        workloads = WORKLOADS if label == "sqlite" else ("optuna_rdb", "shipyard_tune")
        per_trial: dict[str, float] = {}
        for workload in workloads:
            times = [_measure(workload, args.trials, store)["seconds"] for _ in range(args.rounds)]
            per_trial[workload] = statistics.median(times) / args.trials * 1000
            print(f"  {label:<10} {workload:<15} {per_trial[workload]:8.2f} ms/trial")
        ratio = per_trial["shipyard_tune"] / per_trial["optuna_rdb"]
        verdict = "ok" if ratio <= TARGET else "over target"
        print(f"  {label:<10} shipyard_tune / optuna_rdb = {ratio:.2f}x ({verdict}, <= {TARGET}x)")
        results[label] = {**per_trial, "ratio": ratio}
        if "optuna_journal" in per_trial:
            runs = per_trial["shipyard_tune"] / per_trial["optuna_journal"]
            print(f"  {label:<10} shipyard_tune / optuna_journal = {runs:.2f}x (the child runs)")
            results[label]["ratio_journal"] = runs
    if args.json:
        args.json.write_text(json.dumps({"trials": args.trials, "results": results}, indent=2))


if __name__ == "__main__":
    main()
