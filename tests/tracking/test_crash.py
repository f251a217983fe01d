"""Kill -9 a training process at random moments: nothing it acknowledged is lost or doubled.

A worker (``_crash_worker.py``) logs metrics in a tight loop and writes each step to a file
after ``log_metric`` returned; the test kills it with SIGKILL — at random moments, and right
inside a batch write to the store — then reads the run back through the public API (which
replays the dead process's journal) and resumes the same run in the next worker.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import shipyard
from shipyard.entities import RunStatus
from shipyard.tracking.journal import JOURNAL_DIR

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("_crash_worker.py")
HEARTBEAT_S = 0.5
KILLS = 12
SERVER_KILLS = 8
"""Through a server every check reads the history over HTTP: fewer kills keep the test short,
and the kinds of kill (in a batch write or between) are still all reached."""


@pytest.fixture(autouse=True)
def _store(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test reads the store its workers write."""
    monkeypatch.setenv("SHIPYARD_STORE_URL", store_url)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Worker:
    """One worker process, its stdout and stderr in files (a pipe could block it)."""

    home: Path
    store_url: str
    run_id: str | None
    base: int
    mode: str = "loop"
    proc: subprocess.Popen[bytes] = field(init=False)
    out: Path = field(init=False)
    err: Path = field(init=False)

    def __post_init__(self) -> None:
        self.out = self.home.parent / f"out-{self.base}.txt"
        self.err = self.home.parent / f"err-{self.base}.txt"
        env = dict(
            os.environ,
            SHIPYARD_HOME=str(self.home),
            SHIPYARD_STORE_URL=self.store_url,
            SHIPYARD_METRIC_BUFFER_SIZE="2000",
            SHIPYARD_METRIC_FLUSH_INTERVAL="0.05",
            SHIPYARD_HEARTBEAT_INTERVAL=str(HEARTBEAT_S),
            PYTHONPATH=str(ROOT / "src"),
        )
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(WORKER), self.run_id or "new", str(self.base), self.mode],
                stdout=out,
                stderr=err,
                env=env,
            )

    def started(self, timeout: float = 60.0) -> str:
        """Wait for the worker's ``run ID`` line; return the run id."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            first = self.out.read_text().split("\n", 1)[0]
            if first.startswith("run ") and "\n" in self.out.read_text():
                return first.split()[1]
            if self.proc.poll() is not None:
                pytest.fail(f"worker exited early: {self.err.read_text()[-2000:]}")
            time.sleep(0.01)
        pytest.fail("worker did not start")

    def kill(self, *, in_batch: bool) -> int:
        """SIGKILL now (or as soon as a batch write has begun); return when, in ms."""
        if in_batch:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not self.err.read_bytes().endswith(b"B\n"):
                time.sleep(0.0005)
        killed_at = _now_ms()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        return killed_at

    def acknowledged(self) -> list[int]:
        lines = self.out.read_text().splitlines()[1:]
        return [int(line) for line in lines if line]

    def killed_in_batch(self) -> bool:
        return self.err.read_bytes().endswith(b"B\n")


def _check_run(home: Path, run_id: str, loss: set[int], acc: set[int], killed_at: int) -> None:
    """Every acknowledged step once; the run CRASHED, ended at its last sign of life."""
    run = shipyard.get_run(run_id, home=home)  # replays the dead worker's journal
    assert run.status is RunStatus.CRASHED
    history = shipyard.get_metric_history(run_id, "loss", home=home)
    counts = Counter(m.step for m in history)
    assert max(counts.values()) == 1, [s for s, c in counts.items() if c > 1][:5]
    assert loss <= counts.keys(), sorted(loss - counts.keys())[:5]
    acc_counts = Counter(m.step for m in shipyard.get_metric_history(run_id, "acc", home=home))
    assert not acc_counts or max(acc_counts.values()) == 1
    assert acc <= acc_counts.keys()
    assert run.end_time is not None
    assert run.end_time <= killed_at + HEARTBEAT_S * 1000
    assert run.end_time >= max(m.timestamp for m in history)


@pytest.mark.timeout(600)
def test_sigkill_at_random_moments_loses_and_doubles_nothing(
    tmp_path: Path, store_url: str
) -> None:
    home = tmp_path / ".shipyard"
    rng = random.Random(12)  # noqa: S311 - kill timings, not secrets
    run_id: str | None = None
    loss: set[int] = set()
    acc: set[int] = set()
    in_batch = 0
    kills = SERVER_KILLS if store_url.startswith("http") else KILLS
    for kill in range(kills):
        base = kill * 10_000_000
        worker = Worker(home, store_url, run_id, base)
        run_id = worker.started()
        time.sleep(rng.uniform(0.05, 0.6))
        killed_at = worker.kill(in_batch=kill % 2 == 1)
        in_batch += worker.killed_in_batch()
        steps = worker.acknowledged()
        assert steps, "the worker logged nothing before it was killed"
        loss.update(steps)
        acc.update(s for s in steps if s % 5 == 0)
        _check_run(home, run_id, loss, acc, killed_at)
        run = shipyard.get_run(run_id, home=home)
        assert run.params[f"param{base}"] == "kept"
        assert run.tags[f"tag{base}"] == "kept"
    needed = 3 if kills == KILLS else 1
    assert in_batch >= needed, f"only {in_batch} of {kills} kills landed inside a batch write"
    time.sleep(2.1)  # a segment cut off before its header is tidied once 2 s old
    shipyard.get_run(run_id, home=home)
    left = [[f.name for f in p.iterdir()] for p in (home / JOURNAL_DIR).iterdir()]
    assert not left, f"replayed journals are deleted: {left}"


def test_a_kill_between_commit_and_journal_deletion_replays_nothing_twice(
    tmp_path: Path, store_url: str
) -> None:
    home = tmp_path / ".shipyard"
    worker = Worker(home, store_url, None, 0, mode="after-commit")
    run_id = worker.started()
    worker.proc.wait(timeout=60)
    assert worker.proc.returncode == -signal.SIGKILL
    steps = worker.acknowledged()
    segments = list((home / JOURNAL_DIR).glob("*/*.seg"))
    assert segments, "the committed segment is still on disk: the window was hit"
    _check_run(home, run_id, set(steps), {s for s in steps if s % 5 == 0}, _now_ms())
    assert not list((home / JOURNAL_DIR).glob("*/*.seg"))


def test_several_processes_killed_at_once(tmp_path: Path, store_url: str) -> None:
    home = tmp_path / ".shipyard"
    workers = [Worker(home, store_url, None, n * 10_000_000) for n in range(3)]
    run_ids = [w.started() for w in workers]
    assert len(set(run_ids)) == 3
    rng = random.Random(7)  # noqa: S311 - kill timings, not secrets
    killed = []
    for worker in workers:
        time.sleep(rng.uniform(0.05, 0.3))
        killed.append(worker.kill(in_batch=False))
    for worker, run_id, killed_at in zip(workers, run_ids, killed, strict=True):
        steps = worker.acknowledged()
        _check_run(home, run_id, set(steps), {s for s in steps if s % 5 == 0}, killed_at)
