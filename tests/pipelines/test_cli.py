"""`shipyard pipeline` as a user runs it: run, list, show and explain runs; bad input that says
what to fix in one line and records nothing; SIGTERM that leaves a run CANCELLED."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shipyard.entities import PipelineStatus, StepStatus
from shipyard.tracking import open_workspace
from tests._cli import ROOT, run_shipyard

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
# the CLI's wording; pipelines on PostgreSQL: test_cache.py, test_executors.py
STORE_KINDS = ("sqlite",)

FLOW = """
import shipyard


@shipyard.step
def load(n: int) -> list:
    print(f"loading {n} numbers")
    return list(range(n))


@shipyard.step
def double(values: list) -> list:
    return [2 * v for v in values]


@shipyard.step
def square(values: list) -> list:
    return [v * v for v in values]


@shipyard.step
def total(doubled: list, squared: list) -> int:
    return sum(doubled) + sum(squared)


@shipyard.pipeline
def numbers(n: int = 3):
    values = load(n)
    return total(double(values), square(values))


@shipyard.step
def explode(values: list) -> int:
    print("about to fail")
    raise ValueError("bad row 7")


@shipyard.pipeline
def broken(n: int = 3):
    return explode(load(n))


@shipyard.step
def opaque(values: list) -> object:
    return object()


@shipyard.pipeline
def unpicklable(n: int = 3):
    return double(opaque(load(n)))
"""


def _write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source).lstrip())
    return path


def _ok(*args: str) -> str:
    done = run_shipyard(*args)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


def _all(*commands: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
    """Run independent commands at once (each its own process, as from several shells)."""
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        return list(pool.map(lambda args: run_shipyard(*args), commands))


def _one_error_line(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_run_list_show_and_explain_runs(home: Path, tmp_path: Path) -> None:
    flow = _write(tmp_path, "flow.py", FLOW)
    first = json.loads(_ok("pipeline", "run", f"{flow}:numbers", "--param", "n=4", "--json"))
    assert (first["pipeline"], first["status"]) == ("numbers", "FINISHED")
    assert first["params"] == {"n": 4} and first["executor"] == "inprocess"
    assert first["source"] == f"{flow}:numbers"
    assert [(s["name"], s["status"], s["upstream"]) for s in first["steps"]] == [
        ("load", "FINISHED", []),
        ("double", "FINISHED", ["load"]),
        ("square", "FINISHED", ["load"]),
        ("total", "FINISHED", ["double", "square"]),
    ]
    second = json.loads(_ok("pipeline", "run", f"{flow}:numbers", "-p", "n=5", "--json"))
    assert [s["status"] for s in second["steps"]] == ["FINISHED"] * 4
    again = json.loads(_ok("pipeline", "run", f"{flow}:numbers", "-p", "n=5", "--json"))
    assert [s["status"] for s in again["steps"]] == ["CACHED"] * 4
    assert [s["reused_from"] for s in again["steps"]] == [s["step_run_id"] for s in second["steps"]]
    run = second["run_id"][:8]

    listed, nothing, shown, explained, reused = _all(
        ("pipeline", "runs", "--json"),
        ("pipeline", "runs", "--pipeline", "broken", "--json"),
        ("pipeline", "show", run, "--json"),
        ("pipeline", "explain", run, "--json"),
        ("pipeline", "explain", again["run_id"], "--json"),
    )
    for done in (listed, nothing, shown, explained, reused):
        assert done.returncode == 0, (done.args, done.stderr)
    newest_first = [again["run_id"], second["run_id"], first["run_id"]]
    assert [r["run_id"] for r in json.loads(listed.stdout)] == newest_first
    assert json.loads(nothing.stdout) == []

    detail = json.loads(shown.stdout)
    assert detail["run_id"] == second["run_id"] and detail["params"] == {"n": 5}
    assert detail["steps"] == second["steps"]
    outputs = {s["name"]: s["outputs"] for s in detail["steps"]}
    assert outputs["total"][0]["type"] == "int" and outputs["load"][0]["name"] == "output"

    reasons = {e["step"]: e for e in json.loads(explained.stdout)["steps"]}
    assert reasons["load"]["decision"] == "ran"
    assert reasons["load"]["compared_with"] == first["run_id"]
    assert reasons["load"]["reasons"] == ["parameter 'n' changed: 4 -> 5"]
    (why,) = reasons["double"]["reasons"]
    assert why.startswith("input 'values' changed") and "output of step 'load'" in why
    for step in json.loads(reused.stdout)["steps"]:
        assert step["decision"] == "reused"
        assert step["reasons"][0].startswith("nothing in its key changed")


# Drawing a run and printing its logs read the records the test above reads on both stores.
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_show_draws_the_graph_and_prints_a_steps_logs(home: Path, tmp_path: Path) -> None:
    flow = _write(tmp_path, "flow.py", FLOW)
    done = run_shipyard("pipeline", "run", f"{flow}:numbers", "-p", "n=5")
    assert done.returncode == 0, done.stderr
    said = re.fullmatch(r"Run ([0-9a-f]{8}) finished in \S+: 4 ran, 0 reused from the cache",
                        done.stdout.strip().splitlines()[-1])  # fmt: skip
    assert said is not None, done.stdout
    run = said.group(1)
    assert done.stdout.startswith("loading 5 numbers\n")  # the step's print, as it ran
    assert done.stderr.startswith("Running pipeline numbers (inprocess)\n")

    failed = run_shipyard("pipeline", "run", f"{flow}:broken")
    assert failed.returncode == 1, failed.stderr
    assert failed.stdout == "loading 3 numbers\nabout to fail\n"
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: step 'explode' of pipeline 'broken' failed: ValueError: bad")
    assert "failed explode" in failed.stderr  # the progress said so
    broken = last.split("(run ")[1][:8]

    mermaid, dot, logs, traceback = _all(
        ("pipeline", "show", run, "--format", "mermaid"),
        ("pipeline", "show", run, "--format", "dot"),
        ("pipeline", "show", run, "--logs", "load"),
        ("pipeline", "show", broken, "--logs", "explode"),
    )
    for done in (mermaid, dot, logs, traceback):
        assert done.returncode == 0, (done.args, done.stderr)

    graph = mermaid.stdout.splitlines()
    assert graph[0] == "flowchart LR"
    for edge in ("s_load --> s_double", "s_load --> s_square", "s_double --> s_total",
                 "s_square --> s_total"):  # fmt: skip
        assert f"    {edge}" in graph
    assert '    s_total["total<br/>finished"]' in graph
    assert sum("-->" in line for line in graph) == 4

    drawn = dot.stdout.strip().splitlines()
    assert drawn[0] == 'digraph "numbers" {' and drawn[-1] == "}"
    assert '    "double" -> "total";' in drawn
    assert sum("->" in line for line in drawn) == 4

    assert logs.stdout == "loading 5 numbers\n"

    # a failed step: what it printed on stdout, its traceback on stderr
    assert traceback.stdout == "about to fail\n"
    assert traceback.stderr.startswith("Traceback (most recent call last):")
    assert 'raise ValueError("bad row 7")' in traceback.stderr
    assert traceback.stderr.strip().endswith("ValueError: bad row 7")


# The store plays no part until a run starts: one store kind is enough here.
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_bad_input_says_what_to_fix_and_records_nothing(home: Path, tmp_path: Path) -> None:
    flow = _write(tmp_path, "flow.py", FLOW)
    broken = _write(tmp_path, "typo.py", "import shipyard\n\ndef oops(:\n    pass\n")
    raising = _write(tmp_path, "raises.py", "import shipyard\n\nraise RuntimeError('no config')\n")
    run = ("pipeline", "run")
    cases: list[tuple[tuple[str, ...], int, tuple[str, ...]]] = [
        ((*run, f"{broken}:x"), 2, (f"pipeline file {broken} does not import", "SyntaxError")),
        ((*run, f"{raising}:x"), 2,
         ("does not import: RuntimeError: no config", "line 3 of raises.py")),
        ((*run, f"{tmp_path / 'missing.py'}:x"), 2, ("no pipeline file",)),
        ((*run, f"{flow}:nope"), 2, ("has no pipeline 'nope'", "broken, numbers, unpicklable")),
        ((*run, f"{flow}:numbers", "--param", "k=1"), 2,
         ("pipeline 'numbers' has no parameter 'k'", "its parameters: n")),
        ((*run, f"{flow}:numbers", "--param", "n=abc"), 2,
         ("parameter 'n' of pipeline 'numbers'", "'abc'")),
        ((*run, f"{flow}:numbers", "--param", "n"), 2, ("--param takes KEY=VALUE",)),
        ((*run, f"{flow}:numbers", "--executor", "warp"), 2,
         ("unknown executor 'warp'", "inprocess", "processes", "ray")),
        ((*run, f"{flow}:unpicklable", "--json"), 1,
         ("step 'opaque' of pipeline 'unpicklable' failed", "allow_pickle=True")),
    ]  # fmt: skip
    for (args, code, needles), done in zip(cases, _all(*(c[0] for c in cases)), strict=True):
        _one_error_line(done, code, *needles)
        if "--json" in args:  # a run that started and failed: its record, for scripts
            assert json.loads(done.stdout)["status"] == "FAILED", args
        else:
            assert done.stdout == "", args

    # Only the run that started is recorded, and it is recorded whole: FAILED, its failed
    # step without outputs or a cache entry, nothing stored for the output that could not be,
    # the step before it finished and cached (a re-run resumes from there).
    ws = open_workspace()
    (failed,) = ws.backend.list_pipeline_runs()
    assert (failed.pipeline, failed.status) == ("unpicklable", PipelineStatus.FAILED)
    assert "step 'opaque' failed" in failed.error
    load, opaque, double = ws.backend.list_step_runs(failed.run_id)
    assert (load.status, opaque.status, double.status) == (
        StepStatus.FINISHED, StepStatus.FAILED, StepStatus.SKIPPED,
    )  # fmt: skip
    assert opaque.outputs == () and opaque.end_time is not None
    assert "no materializer stores a value of type object without pickle" in opaque.error
    assert ws.backend.get_cached_step(opaque.cache_key) is None
    assert ws.backend.get_cached_step(load.cache_key) is not None
    stored = set(ws.artifacts.iter_digests())
    assert load.logs_digest is not None and opaque.logs_digest is None  # it printed nothing
    assert stored == {o.digest for o in load.outputs} | {load.logs_digest}


SLOW = """
import os
import time
from pathlib import Path

import shipyard


@shipyard.step
def first(n: int) -> int:
    return n


@shipyard.step(cache=False)
def wait(x: int, marker: str) -> int:
    Path(marker).write_text(str(os.getpid()))
    time.sleep(30)
    return x


@shipyard.step
def after(x: int) -> int:
    return x


@shipyard.pipeline
def slow(marker: str, n: int = 1):
    return after(wait(first(n), marker))
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_sigterm_cancels_a_run_and_stops_its_steps(home: Path, tmp_path: Path) -> None:
    flow = _write(tmp_path, "slow.py", SLOW)
    started: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    for executor in ("inprocess", "processes"):
        marker = tmp_path / f"{executor}.pid"
        process = subprocess.Popen(
            [sys.executable, "-c", "from shipyard.cli import main; main()", "pipeline", "run",
             f"{flow}:slow", "--param", f"marker={marker}", "--executor", executor],
            env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        started[executor] = (process, marker)
    try:
        for executor, (process, marker) in started.items():
            waited = 0.0
            while not marker.exists() or not marker.read_text():
                assert process.poll() is None, (executor, process.communicate())
                assert waited < 60, f"the {executor} step never started"
                time.sleep(0.05)
                waited += 0.05
            process.send_signal(signal.SIGTERM)

        for executor, (process, marker) in started.items():
            out, err = process.communicate(timeout=60)
            assert process.returncode == 130, (executor, out, err)
            assert err.strip().splitlines()[-1].startswith("error: pipeline run "), err
            assert err.strip().endswith("was cancelled"), err
            assert not _alive(int(marker.read_text())), executor  # the step is stopped too
    finally:  # a failed check leaves no run sleeping behind
        for process, _ in started.values():
            if process.poll() is None:
                process.kill()
                process.communicate()

    ws = open_workspace()
    runs = ws.backend.list_pipeline_runs("slow")
    assert sorted(r.executor for r in runs) == ["inprocess", "processes"]
    for run in runs:
        assert run.status is PipelineStatus.CANCELLED, run
        assert run.end_time is not None
        first, wait, after = ws.backend.list_step_runs(run.run_id)
        assert first.status in (StepStatus.FINISHED, StepStatus.CACHED)
        assert (wait.status, after.status) == (StepStatus.CANCELLED, StepStatus.CANCELLED)
