"""A script that forgets to end its run still leaves a complete, ended run behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shipyard.entities import RunStatus
from shipyard.store import open_backend

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _run_script(home: Path, store_url: str, body: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        SHIPYARD_HOME=str(home),
        SHIPYARD_STORE_URL=store_url,
        SHIPYARD_METRIC_FLUSH_INTERVAL="3600",
        PYTHONPATH=str(ROOT / "src"),
    )
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(body)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("tail", "status", "returncode"),
    [
        ("", RunStatus.FINISHED, 0),
        ("raise SystemExit('bye')", RunStatus.FINISHED, 1),
        ("raise ValueError('crash')", RunStatus.FAILED, 1),
    ],
)
def test_interpreter_exit_flushes_and_ends_the_run(
    tmp_path: Path, store_url: str, tail: str, status: RunStatus, returncode: int
) -> None:
    home = tmp_path / ".shipyard"
    result = _run_script(
        home,
        store_url,
        f"""
        import shipyard
        run = shipyard.start_run(experiment="exit", log_code=False)
        print(run.run_id, flush=True)
        for i in range(500):
            shipyard.log_metric("m", i)
        {tail}
    """,
    )
    assert result.returncode == returncode, result.stderr
    run_id = result.stdout.split()[0]
    backend = open_backend(store_url)
    try:
        assert backend.get_run(run_id).status is status
        assert len(backend.get_metric_history(run_id, "m")) == 500
    finally:
        backend.close()
