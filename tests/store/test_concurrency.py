"""Many writer processes, and a writer killed with SIGKILL, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shipyard.entities import RunStatus
from shipyard.store.sql import SqlBackend

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _env(home: Path, store_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SHIPYARD_HOME=str(home),
        SHIPYARD_STORE_URL=store_url,
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        **extra,
    )
    return env


def test_eight_processes_write_at_once(tmp_path: Path, store_url: str) -> None:
    """A fresh store, 8 writers started together: no 'database is locked' reaches anyone and
    every acknowledged run, param, tag and metric is there afterwards."""
    home = tmp_path / ".shipyard"
    home.mkdir()
    env = _env(home, store_url, SHIPYARD_METRIC_FLUSH_INTERVAL="0.05")
    runs_each, metrics_each = 6, 150
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.store._workers",
                "write",
                str(w),
                str(runs_each),
                str(metrics_each),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(8)
    ]
    results = []
    try:
        results = [(proc, *proc.communicate(timeout=240)) for proc in procs]
    finally:  # every pipe closed and every worker reaped, whatever failed
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    acked: list[tuple[str, int]] = []
    for proc, out, err in results:
        assert proc.returncode == 0, err
        assert "locked" not in err.lower()
        acked += [(line.split()[1], int(line.split()[2])) for line in out.splitlines()]
    assert len(acked) == 8 * runs_each

    backend = SqlBackend(store_url)
    try:
        for run_id, count in acked:
            run = backend.get_run(run_id)
            assert run.status is RunStatus.FINISHED
            assert set(run.params) == {"worker", "index"}
            assert run.tags["kind"] == "load"
            history = backend.get_metric_history(run_id, "loss")
            assert [m.step for m in history] == list(range(count))
        assert len(backend.list_experiments()) == 1
    finally:
        backend.close()


def test_sigkill_mid_logging_keeps_every_acknowledged_write(tmp_path: Path, store_url: str) -> None:
    home = tmp_path / ".shipyard"
    home.mkdir()
    env = _env(home, store_url, SHIPYARD_METRIC_FLUSH_INTERVAL="0.02")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.store._workers", "crash"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    run_id = ""
    last = {"PARAM": -1, "TAG": -1, "METRICS": -1}
    deadline = time.monotonic() + 60
    while last["METRICS"] < 200:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else "worker died"
        kind, value = line.split()
        if kind == "RUN":
            run_id = value
        else:
            last[kind] = int(value)
        assert time.monotonic() < deadline
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # lines written before the kill but not yet read are acknowledged too
    for line in proc.stdout.read().splitlines():
        kind, value = line.split()
        last[kind] = int(value)
    proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    backend = SqlBackend(store_url)
    try:
        if store_url.startswith("sqlite"):
            with backend.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        run = backend.get_run(run_id)
        assert run.status is RunStatus.RUNNING  # nobody ended it
        for i in range(last["PARAM"] + 1):
            assert run.params[f"p{i}"] == str(i)
        assert int(run.tags["last"]) >= last["TAG"]
        steps = {m.step for m in backend.get_metric_history(run_id, "m")}
        assert set(range(last["METRICS"] + 1)) <= steps
        # and the store still takes writes
        backend.set_tags(run_id, {"after": "crash"})
    finally:
        backend.close()
