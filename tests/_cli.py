"""Run the real `shipyard` entry point in a subprocess, as a user's shell would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_shipyard(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``shipyard ARGS...`` with this checkout's sources; never raises on a non-zero exit."""
    environ = dict(os.environ if env is None else env, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(
        [sys.executable, "-c", "from shipyard.cli import main; main()", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
