"""`make demo` runs examples/quickstart.py: it must keep working from a clean directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._cli import run_shipyard

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_runs_and_leaves_a_searchable_workspace(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    env["TMPDIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Top runs by validation accuracy" in result.stdout
    assert not (tmp_path / ".shipyard").exists(), "the demo must not write into the cwd"
    home = re.search(r"Workspace: (\S+)", result.stdout)
    assert home is not None
    listed = run_shipyard("--home", home.group(1), "runs", "ls", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count('"parent_run_id": null') == 1
    assert listed.stdout.count('"status": "FINISHED"') == 7
