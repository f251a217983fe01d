"""Two `shipyard pipeline run` processes running the same pipeline at once, on one store: both
finish, the step cache keeps one entry per step, and the next run reuses everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shipyard.pipelines import load_output
from shipyard.store.sql.schema import step_cache
from shipyard.tracking import open_workspace
from tests._cli import ROOT, run_shipyard

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SHARED = """
import os
import time
from pathlib import Path

import shipyard


@shipyard.step
def gather(rendezvous: str, n: int) -> list:
    # Neither run leaves this step before both are in it: neither finds it cached.
    Path(rendezvous, str(os.getpid())).touch()
    waited = 0.0
    while len(os.listdir(rendezvous)) < 2:
        if waited > 60:
            raise TimeoutError("the other run never reached this step")
        time.sleep(0.02)
        waited += 0.02
    return list(range(n))


@shipyard.step
def double(values: list) -> list:
    return [2 * v for v in values]


@shipyard.step
def square(values: list) -> list:
    return [v * v for v in values]


@shipyard.step
def combine(doubled: list, squared: list) -> dict:
    return {"doubled": doubled, "squared": squared}


@shipyard.pipeline
def shared(rendezvous: str, n: int = 5):
    values = gather(rendezvous, n)
    return combine(double(values), square(values))
"""


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from shipyard.cli import main; main()", *args],
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _cache_rows(store_url: str) -> list[Any]:
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(step_cache.c.cache_key, step_cache.c.step_run_id)))
    finally:
        engine.dispose()


def test_two_runs_at_once_share_one_cache_entry_per_step(
    home: Path, tmp_path: Path, store_url: str
) -> None:
    path = tmp_path / "shared.py"
    path.write_text(textwrap.dedent(SHARED).lstrip())
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    ws = open_workspace(create=True)  # the store exists before the race, as a user's does
    assert ws.backend.list_pipeline_runs() == []

    args = ("pipeline", "run", f"{path}:shared", "--param", f"rendezvous={rendezvous}", "--json")
    processes = [_start(*args) for _ in range(2)]
    try:
        answers = [p.communicate(timeout=120) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    for process, (_, err) in zip(processes, answers, strict=True):
        assert process.returncode == 0, err
    runs = [json.loads(out) for out, _ in answers]
    assert len(os.listdir(rendezvous)) == 2  # both were in `gather` at once

    names = ["gather", "double", "square", "combine"]
    for run in runs:
        assert run["status"] == "FINISHED"
        assert [s["name"] for s in run["steps"]] == names
        assert {s["status"] for s in run["steps"]} <= {"FINISHED", "CACHED"}, run["steps"]
        assert run["steps"][0]["status"] == "FINISHED"
    keys = [{s["name"]: s["cache_key"] for s in run["steps"]} for run in runs]
    assert keys[0] == keys[1]

    rows = _cache_rows(store_url)
    assert sorted(r.cache_key for r in rows) == sorted(keys[0].values())
    finished = {
        s["step_run_id"]: s["cache_key"]
        for run in runs
        for s in run["steps"]
        if s["status"] == "FINISHED"
    }
    for row in rows:  # each entry was made by a step that ran under that key
        assert finished[row.step_run_id] == row.cache_key

    loaded = []
    for run in runs:
        steps = {s.name: s for s in ws.backend.list_step_runs(run["run_id"])}
        loaded.append({name: load_output(ws.artifacts, steps[name]) for name in names})
    assert loaded[0] == loaded[1]
    assert loaded[0]["combine"] == {"doubled": [0, 2, 4, 6, 8], "squared": [0, 1, 4, 9, 16]}

    third = run_shipyard(*args)
    assert third.returncode == 0, third.stderr
    again = json.loads(third.stdout)
    assert again["status"] == "FINISHED"
    assert [s["status"] for s in again["steps"]] == ["CACHED"] * 4
    assert {s["name"]: s["cache_key"] for s in again["steps"]} == keys[0]
    assert len(_cache_rows(store_url)) == 4
