"""A run whose process was killed, handled from the command line: seen, recovered, resumed,
ended — on both stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests._cli import run_shipyard

pytestmark = pytest.mark.e2e
# what the CLI says; crash recovery on PostgreSQL: tests/tracking/test_crash.py
STORE_KINDS = ("sqlite",)

ROOT = Path(__file__).resolve().parents[2]

KILLED_SCRIPT = """
import os, signal, shipyard
run = shipyard.start_run(experiment="crash", name="doomed", log_code=False)
for step in range(500):
    run.log_metric("loss", 1.0 / (step + 1))
print(run.run_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture
def killed_run(home: Path) -> tuple[str, int]:
    """A run whose process died by SIGKILL after logging 500 buffered steps; its id and
    roughly when it died (ms)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), SHIPYARD_METRIC_FLUSH_INTERVAL="3600")
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -9, done.stderr
    return done.stdout.split()[0], time.time_ns() // 1_000_000


def _json(*args: str) -> object:
    result = run_shipyard(*args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_killed_run_is_recovered_shown_crashed_resumed_and_ended(
    killed_run: tuple[str, int],
) -> None:
    run_id, died = killed_run
    recovered = _json("runs", "recover", "--json")
    assert recovered["journals"] == 1 and recovered["metrics"] == 500  # type: ignore[index]
    assert [c["run_id"] for c in recovered["crashed"]] == [run_id]  # type: ignore[index]
    again = run_shipyard("runs", "recover")
    assert "Nothing to recover" in again.stdout

    listed = run_shipyard("runs", "ls")
    assert "CRASHED" in listed.stdout
    found = _json("runs", "ls", "--filter", "attributes.status = 'CRASHED'", "--json")
    assert [r["run_id"] for r in found] == [run_id]  # type: ignore[union-attr,index]
    shown = run_shipyard("runs", "show", run_id[:8])
    assert "its process died" in shown.stdout and "runs resume" in shown.stdout
    crashed = _json("runs", "show", run_id, "--json")
    assert crashed["status"] == "CRASHED"  # type: ignore[index]
    assert crashed["end_time"] <= died  # type: ignore[index]
    assert crashed["owner"]["pid"] > 0  # type: ignore[index]

    export = run_shipyard("runs", "resume", run_id[:8])
    assert export.returncode == 0, export.stderr
    assert export.stdout.strip() == f"export SHIPYARD_RUN_ID={run_id}"
    assert "loss after step 499" in export.stderr

    script = (
        "import shipyard\n"
        "run = shipyard.start_run(log_code=False)\n"
        "run.log_metric('loss', 0.0)\n"
        "print(run.run_id)\n"
        "raise SystemExit(3)\n"
    )
    resumed = run_shipyard("runs", "resume", run_id[:8], "--", sys.executable, "-c", script)
    assert resumed.returncode == 3, resumed.stderr  # the command's own exit code
    assert resumed.stdout.strip() == run_id
    history = _json("runs", "show", run_id, "--json")
    assert history["status"] == "FINISHED"  # type: ignore[index]
    assert history["metrics"]["loss"] == 0.0  # type: ignore[index]
    from shipyard import get_metric_history

    steps = [m.step for m in get_metric_history(run_id, "loss")]
    assert steps == list(range(501))  # the resumed process went on at step 500


def test_ending_a_crashed_run_keeps_its_time_of_death(killed_run: tuple[str, int]) -> None:
    run_id, _ = killed_run
    crashed = _json("runs", "show", run_id, "--json")
    ended = _json("runs", "end", run_id[:8], "--status", "failed", "--json")
    assert ended["status"] == "FAILED"  # type: ignore[index]
    assert ended["end_time"] == crashed["end_time"]  # type: ignore[index]
    text = run_shipyard("runs", "end", run_id[:8])
    assert text.returncode == 2
    assert text.stderr.strip().count("\n") == 0
    assert "already ended (FAILED)" in text.stderr


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["runs", "end", "ffffffff"], "no run whose id starts with 'ffffffff'", 1),
        (["runs", "resume", "ffffffff"], "no run whose id starts with 'ffffffff'", 1),
        (["runs", "end", "xy"], "is not a run id", 2),
        (["runs", "end", "abcd", "--status", "crashed"], "invalid value for '--status'", 2),
    ],
)
def test_runs_end_and_resume_errors(home: Path, args: list[str], message: str, code: int) -> None:
    result = run_shipyard(*args)
    assert result.returncode == code
    assert message in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr


def test_a_live_run_is_neither_ended_nor_resumed_without_force(home: Path) -> None:
    import shipyard

    with shipyard.start_run(experiment="live", log_code=False) as run:
        ended = run_shipyard("runs", "end", run.run_id)
        assert ended.returncode == 2 and "still running" in ended.stderr
        assert "--force" in ended.stderr
        resumed = run_shipyard("runs", "resume", run.run_id)
        assert resumed.returncode == 2 and "nothing to resume" in resumed.stderr
        forced = _json("runs", "end", run.run_id, "--force", "--json")
        assert forced["status"] == "KILLED"  # type: ignore[index]
