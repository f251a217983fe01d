"""Where steps run: local processes run independent branches at once and stop a step that
outlives its timeout, failed attempts are retried, a step logs to its own run's store wherever
it runs, and Ray gives the same outputs and lineage as this process."""

from __future__ import annotations

import os
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import shipyard
from shipyard.entities import PipelineStatus, StepRun, StepStatus
from shipyard.pipelines import (
    PipelineFailedError,
    PipelineResult,
    load_pipeline,
    run_pipeline,
)
from shipyard.store import open_backend
from shipyard.tracking import open_workspace
from tests._cli import run_shipyard
from tests.conftest import PG_ENV, PG_SKIP, _pg_schema_url

pytestmark = pytest.mark.integration

_WORKSPACE_ENV = ("SHIPYARD_HOME", "SHIPYARD_STORE_URL", "SHIPYARD_ARTIFACTS_URL")


def _write(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(source).lstrip())
    return path


def _run(
    path: Path, name: str, home: Path, executor: str = "inprocess", **params: Any
) -> PipelineResult:
    pipe, source = load_pipeline(f"{path}:{name}")
    return run_pipeline(
        pipe, params, executor=executor, home=home, source=source, echo=False, max_workers=2
    )


def _home(folder: Path) -> Path:
    """A workspace of its own: its own SQLite store and artifact store."""
    home = folder / ".shipyard"
    home.mkdir(parents=True)
    return home


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.fixture(autouse=True)
def _own_workspaces(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each workspace is named by its folder alone; pipeline files do not outlive the test."""
    for name in _WORKSPACE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHIPYARD_USER", "alice")
    monkeypatch.chdir(tmp_path)
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def _digests(result: PipelineResult, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        f"{s.name}.{o.name}": o.digest
        for s in result.steps
        for o in s.outputs
        if o.name not in skip
    }


# --- processes: branches in parallel --------------------------------------------------------

BRANCHES = """
import time

import shipyard


@shipyard.step
def numbers(n: int) -> list:
    return list(range(n))


@shipyard.step(outputs=("value", "interval"))
def squares(values: list, pause: float):
    start = time.time()
    time.sleep(pause)
    return [v * v for v in values], [start, time.time()]


@shipyard.step(outputs=("value", "interval"))
def cubes(values: list, pause: float):
    start = time.time()
    time.sleep(pause)
    return [v**3 for v in values], [start, time.time()]


@shipyard.step
def total(squared: list, cubed: list) -> dict:
    return {"squares": sum(squared), "cubes": sum(cubed)}


@shipyard.pipeline
def branches(n: int = 6, pause: float = 1.0):
    values = numbers(n)
    squared, _ = squares(values, pause)
    cubed, _ = cubes(values, pause)
    return total(squared, cubed)
"""


def _overlap(result: PipelineResult) -> bool:
    a_start, a_end = result.output("squares", "interval")
    b_start, b_end = result.output("cubes", "interval")
    return bool(a_start < b_end and b_start < a_end)


def test_processes_run_independent_branches_at_once_with_the_same_outputs(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, "branches.py", BRANCHES)
    here = _run(path, "branches", _home(tmp_path / "here"))
    apart = _run(path, "branches", _home(tmp_path / "apart"), executor="processes")

    for result in (here, apart):
        assert result.cached == []  # two workspaces: each run computed every step
        assert result.output("total") == {"squares": 55, "cubes": 225}
    assert apart.run.executor == "processes"
    assert not _overlap(here)  # one step at a time in this process...
    assert _overlap(apart)  # ...and both branches at once in processes
    skip = ("interval",)
    assert _digests(apart, skip=skip) == _digests(here, skip=skip)
    assert len(_digests(here, skip=skip)) == 4


# --- processes: a step past its timeout is stopped -----------------------------------------

HANGS = """
import os
import signal
import time
from pathlib import Path

import shipyard


@shipyard.step(timeout=1.0)
def hang(folder: str, pause: float) -> str:
    # Deaf to the alarm that stops a step from inside: only its executor can stop it.
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    Path(folder, "started").write_text(f"{os.getpid()} {time.time()}")
    time.sleep(pause)
    Path(folder, "finished").write_text("the step outlived its timeout")
    return "finished"


@shipyard.pipeline
def hangs(folder: str, pause: float = 2.5):
    return hang(folder, pause)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_processes_stop_a_step_past_its_timeout(tmp_path: Path) -> None:
    path = _write(tmp_path, "hangs.py", HANGS)
    home = _home(tmp_path)
    marks = tmp_path / "marks"
    marks.mkdir()
    pause = 2.5
    with pytest.raises(PipelineFailedError, match=r"step 'hang'.*timed out after 1 s"):
        _run(path, "hangs", home, executor="processes", folder=str(marks), pause=pause)

    backend = open_workspace(home).backend
    (run,) = backend.list_pipeline_runs("hangs")
    assert run.status is PipelineStatus.FAILED
    (step,) = backend.list_step_runs(run.run_id)
    assert step.status is StepStatus.FAILED
    assert "timed out after 1 s" in step.error
    assert step.outputs == ()
    assert backend.get_cached_step(step.cache_key) is None

    pid, started = (marks / "started").read_text().split()
    assert not _alive(int(pid))
    # Had the step gone on, it would have written "finished" by now.
    time.sleep(max(0.0, float(started) + pause + 0.5 - time.time()))
    assert not (marks / "finished").exists()


# --- retries with backoff ------------------------------------------------------------------

FLAKY = """
from pathlib import Path

import shipyard


@shipyard.step(retries=RETRIES, retry_delay=0.1)
def flaky(counter: str) -> int:
    path = Path(counter)
    attempt = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(attempt))
    print(f"attempt {attempt}")
    if attempt <= 2:
        raise RuntimeError(f"flaky failure {attempt}")
    return attempt


@shipyard.pipeline
def flaky_twice(counter: str):
    return flaky(counter)
"""


@pytest.mark.parametrize("executor", ["inprocess", "processes"])
def test_a_failed_attempt_is_retried_until_the_retries_run_out(
    tmp_path: Path, executor: str
) -> None:
    home = _home(tmp_path)
    backend = open_workspace(home).backend

    enough = _write(tmp_path / "two", "flaky_two.py", FLAKY.replace("RETRIES", "2"))
    counter = tmp_path / "counter-two"
    result = _run(enough, "flaky_twice", home, executor=executor, counter=str(counter))
    assert result.output("flaky") == 3
    step = backend.list_step_runs(result.run_id)[0]
    assert (step.status, step.attempts, step.error) == (StepStatus.FINISHED, 3, "")
    assert counter.read_text() == "3"

    short = _write(tmp_path / "one", "flaky_one.py", FLAKY.replace("RETRIES", "1"))
    counter = tmp_path / "counter-one"  # another parameter: another cache key
    with pytest.raises(PipelineFailedError, match="flaky failure 2"):
        _run(short, "flaky_twice", home, executor=executor, counter=str(counter))
    failed = backend.list_pipeline_runs("flaky_twice")[0]
    assert failed.status is PipelineStatus.FAILED
    step = backend.list_step_runs(failed.run_id)[0]
    assert (step.status, step.attempts) == (StepStatus.FAILED, 2)
    assert "RuntimeError: flaky failure 2" in step.error
    assert counter.read_text() == "2"  # no third attempt


# --- a step logs to its run's workspace, wherever it runs ----------------------------------

TRAINS = """
import shipyard


@shipyard.step
def train(rate: float) -> float:
    with shipyard.start_run("train", name="train-run", log_code=False):
        shipyard.log_metric("rate", rate)
    return rate * 2


@shipyard.pipeline
def trains(rate: float = 0.5):
    return train(rate)
"""


def test_a_step_in_a_process_logs_to_the_store_of_its_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step processes fork from a server that keeps the environment it started with: the
    second run's step must still log to the second run's store."""
    path = _write(tmp_path, "trains.py", TRAINS)
    for name in ("first", "second"):
        folder = tmp_path / name
        url = f"sqlite:///{folder / 'elsewhere.db'}"
        home = _home(folder)
        monkeypatch.setenv("SHIPYARD_STORE_URL", url)
        result = _run(path, "trains", home, executor="processes")
        assert _lineage(url, result) == {("train", "run", "train-run", "made")}, name
        assert not (home / "shipyard.db").exists()


# --- Ray: the same outputs and lineage as this process -------------------------------------

LINES = """
import numpy as np
import pandas as pd

import shipyard

POINTS = shipyard.data.ref("points@latest")


@shipyard.step
def ingest(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values("x").reset_index(drop=True)


@shipyard.step
def clean(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.dropna().reset_index(drop=True)


@shipyard.step
def design(frame: pd.DataFrame) -> np.ndarray:
    return np.column_stack([np.ones(len(frame)), frame["x"].to_numpy()])


@shipyard.step
def fit(matrix: np.ndarray, frame: pd.DataFrame) -> list:
    coef, *_ = np.linalg.lstsq(matrix, frame["y"].to_numpy(), rcond=None)
    return [round(float(c), 6) for c in coef]


@shipyard.step
def record(coef: list) -> dict:
    with shipyard.start_run("lines", name="fit-line", log_code=False):
        shipyard.log_metric("slope", coef[1])
        summary = pd.DataFrame({"term": ["intercept", "slope"], "value": coef})
        added = shipyard.data.add(summary, "line-summary")
    return {"coef": coef, "summary": f"{added.version.dataset}@{added.version.version}"}


@shipyard.step
def buckets(frame: pd.DataFrame, bins: int) -> dict:
    edges = np.linspace(frame["x"].min(), frame["x"].max(), bins + 1)
    counts, _ = np.histogram(frame["x"], edges)
    return {str(i): int(c) for i, c in enumerate(counts)}


@shipyard.step
def shares(counts: dict) -> dict:
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()}


@shipyard.step(reads=[POINTS])
def audit(frame: pd.DataFrame, fractions: dict) -> dict:
    return {"rows": len(frame), "fractions": fractions}


@shipyard.step
def merge(line: dict, checked: dict) -> dict:
    return {**line, **checked}


@shipyard.step
def report(merged: dict) -> str:
    text = f"slope {merged['coef'][1]} over {merged['rows']} rows"
    print(text)
    return text


@shipyard.pipeline
def lines(bins: int = 3):
    frame = clean(ingest(POINTS))
    line = record(fit(design(frame), frame))
    checked = audit(frame, shares(buckets(frame, bins)))
    return report(merge(line, checked))
"""


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local Ray for the module (the Ray executor uses an initialised Ray as it is)."""
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as patch:  # workers must not inherit a workspace
        for name in _WORKSPACE_ENV:
            patch.delenv(name, raising=False)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


EXECUTORS = ("inprocess", "ray")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """An empty metadata store of one kind per executor (SQLite files, PostgreSQL schemas)."""
    if request.param == "sqlite":
        yield [f"sqlite:///{tmp_path / f'store-{name}.db'}" for name in EXECUTORS]
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(PG_SKIP)
    import sqlalchemy as sa

    schemas = [f"test_{uuid.uuid4().hex[:12]}" for _ in EXECUTORS]
    admin = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        for schema in schemas:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield [_pg_schema_url(base, schema) for schema in schemas]
    finally:
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _lineage(url: str, result: PipelineResult) -> set[tuple[str, str, str, str]]:
    """The run's lineage by step name; a tracking run is named by its name and checked to
    carry the step run it belongs to."""
    backend = open_backend(url)
    try:
        steps: dict[str, StepRun] = {s.step_run_id: s for s in result.steps}
        found = set()
        for edge in backend.pipeline_lineage(run_id=result.run_id):
            ref = edge.ref
            if edge.kind == "run":
                tracked = backend.get_run(edge.ref)
                assert tracked.tags["shipyard.pipeline.step_run"] == edge.step_run_id
                ref = tracked.name
            found.add((steps[edge.step_run_id].name, edge.kind, ref, edge.direction))
        return found
    finally:
        backend.close()


@pytest.mark.usefixtures("ray_cluster")
def test_ray_gives_the_same_outputs_and_lineage_as_this_process(
    tmp_path: Path, store_urls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "lines.py", LINES)
    points = pd.DataFrame(
        {"x": [3.0, 1.0, 2.0, 5.0, 4.0, None], "y": [7.1, 3.0, 5.2, 11.1, 8.8, 1.0]}
    )
    # Each executor in a workspace of its own, caching on (as users run): nothing is reused,
    # so equal digests mean that each executor computed the same bytes. The environment
    # names each run's store only while the driver runs it: the Ray workers keep the
    # environment they started with.
    results: dict[str, PipelineResult] = {}
    for executor, url in zip(EXECUTORS, store_urls, strict=True):
        home = _home(tmp_path / executor)
        monkeypatch.setenv("SHIPYARD_STORE_URL", url)
        shipyard.data.add(points, "points", home=home)
        results[executor] = _run(path, "lines", home, executor=executor)
    here = results["inprocess"]
    assert here.output("report") == "slope 1.98 over 5 rows"
    assert len(_digests(here)) == 10

    def shape(result: PipelineResult) -> list[tuple[str, tuple[str, ...]]]:
        return [(s.name, s.upstream) for s in result.steps]

    assert ("merge", ("record", "audit")) in shape(here)
    expected = {
        ("ingest", "dataset_version", "points@1", "read"),
        ("audit", "dataset_version", "points@1", "read"),
        ("record", "run", "fit-line", "made"),
        ("record", "dataset_version", "line-summary@1", "made"),
    }
    for (executor, result), url in zip(results.items(), store_urls, strict=True):
        assert result.run.executor == executor
        assert result.run.status is PipelineStatus.FINISHED
        assert len(result.steps) == 10 and result.cached == [], executor
        assert _digests(result) == _digests(here), executor
        assert shape(result) == shape(here), executor
        assert _lineage(url, result) == expected, executor


def test_an_unreachable_ray_address_fails_before_anything_is_recorded(tmp_path: Path) -> None:
    path = _write(tmp_path, "branches.py", BRANCHES)
    home = _home(tmp_path)
    env = dict(os.environ, SHIPYARD_HOME=str(home))
    env.pop("RAY_ADDRESS", None)
    done = run_shipyard(
        "pipeline", "run", f"{path}:branches", "--executor", "ray",
        "--ray-address", "127.0.0.1:1", env=env,
    )  # fmt: skip
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert "no Ray cluster answers at 127.0.0.1:1" in lines[0]
    listed = run_shipyard("pipeline", "runs", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "[]"
