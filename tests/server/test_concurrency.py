"""Eight clients at once through a real `shipyard server --workers 2 --auth`, on SQLite and
PostgreSQL: nothing lost, nothing doubled, no lock error reaching a client.

Eight spawned processes, each with its own token (eight members) and its own `RestBackend`,
wait at a barrier and then all at once: get-or-create one shared experiment, create runs, log
params and tags, log metrics in batches and as journal segments (one segment sent twice, as a
client does after a lost answer), end their runs, upload model folders and register versions
of one shared model (so version numbers race), and move one shared alias. The store is then
read directly: one experiment, every run with exactly its params, tags and metric histories,
versions numbered 1..N without gaps or duplicates (one per registration, each with its
digest and author), an intact audit chain, and no error in any client or in the server log.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.config import init_workspace
from shipyard.entities import Role, RunStatus
from shipyard.registry import Registry
from shipyard.registry.tokens import issue_token
from shipyard.tracking import open_workspace
from tests._cli import ROOT
from tests.server.test_api import _free_port

pytestmark = pytest.mark.integration

CLIENTS = 8
RUNS = 2
"""Runs per client."""
STEPS = 100
"""Steps per metric key; two keys, so 200 points per run."""
BATCH = 25
VERSIONS = 3
"""Registrations per client."""
EXPERIMENT = "concurrency"
MODEL = "shared-model"
ALIAS = "newest"


@dataclass
class Outcome:
    """What one client did and saw, sent back to the test."""

    client: int
    user: str
    experiment_id: int = -1
    runs: dict[str, str] = field(default_factory=dict)
    """Run name -> run id."""
    versions: list[tuple[int, str]] = field(default_factory=list)
    """(version number, digest) of each registration, as the server answered."""
    journal_new: int = 0
    errors: list[str] = field(default_factory=list)


def _loss(client: int, run: int, step: int) -> float:
    return client * 1000 + run * 100 + step / 8


def _acc(client: int, run: int, step: int) -> float:
    return -(client * 1000 + run * 100 + step / 4)


def _params(client: int, run: int) -> dict[str, str]:
    return {"client": str(client), "run": str(run), "lr": f"0.{client}{run}", "depth": str(run)}


def _tags(client: int, run: int) -> dict[str, str]:
    return {"client": str(client), "run": str(run), "stage": "done"}


def _client(client: int, url: str, token: str, scratch: str, barrier: Any, results: Any) -> None:
    """One client process: everything through the server, errors collected, never raised."""
    from shipyard.artifacts import ArtifactStore
    from shipyard.entities import JournalSegment, Metric
    from shipyard.store.rest import RestBackend

    outcome = Outcome(client, f"user{client}")
    backend = objects = None
    try:
        backend = RestBackend(url, token=token)
        objects = ArtifactStore(f"{url}/api/v1/objects", token=token)
        registry = Registry(backend, outcome.user)
        barrier.wait()
        experiment = backend.get_or_create_experiment(EXPERIMENT)
        outcome.experiment_id = experiment.experiment_id
        for run in range(RUNS):
            name = f"c{client}-r{run}"
            made = backend.create_run(
                experiment.experiment_id,
                name=name,
                user="mallory",  # the server decides: the token's user
                start_time=int(time.time() * 1000),
                tags={"client": str(client), "stage": "training"},
            )
            outcome.runs[name] = made.run_id
            params = _params(client, run)
            backend.log_params(made.run_id, {k: params[k] for k in ("client", "run")})
            backend.log_params(made.run_id, params)  # the same values again: a no-op
            backend.set_tags(made.run_id, {"run": str(run)})
            now = int(time.time() * 1000)
            for start in range(0, STEPS, BATCH):
                backend.log_metrics(
                    [
                        Metric("loss", _loss(client, run, s), s, now, made.run_id)
                        for s in range(start, start + BATCH)
                    ]
                )
            segments = [
                JournalSegment(
                    journal_id=f"{outcome.user}-{run}",
                    run_id=made.run_id,
                    segment=i,
                    metrics=tuple(
                        ("acc", _acc(client, run, s), s, now)
                        for s in range(i * BATCH, (i + 1) * BATCH)
                    ),
                )
                for i in range(STEPS // BATCH)
            ]
            for i, segment in enumerate(segments):
                outcome.journal_new += backend.log_journal([segment])
                if i == 1:  # an answer lost in transit: the client sends it again
                    outcome.journal_new += backend.log_journal([segments[0], segment])
            backend.set_tags(made.run_id, {"stage": "done"})
            backend.end_run(made.run_id, RunStatus.FINISHED, int(time.time() * 1000))
        for version in range(VERSIONS):
            folder = Path(scratch) / f"model-{client}-{version}"
            folder.mkdir(parents=True)
            (folder / "model.json").write_text(f'{{"client": {client}, "version": {version}}}')
            digest = objects.put_dir(folder).digest
            run_id = outcome.runs[f"c{client}-r{version % RUNS}"]
            registered = registry.register(MODEL, digest=digest, flavor="python", run_id=run_id)
            outcome.versions.append((registered.version, digest))
            registry.set_alias(registered.ref, ALIAS)
    except BaseException:
        outcome.errors.append(traceback.format_exc())
    finally:
        for opened in (backend, objects):
            if opened is not None:
                with contextlib.suppress(Exception):
                    opened.close()
        results.put(outcome)


@contextlib.contextmanager
def _serve(home: Path, log: Path) -> Iterator[str]:
    """`shipyard server --auth --workers 2` over ``home``, logging to a file (a full pipe would
    block a server that logs); yields its URL once /health answers."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                *(sys.executable, "-c", "from shipyard.cli import main; main()", "server"),
                *("--port", str(port), "--auth", "--workers", "2"),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, f"the server stopped: {log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.05)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung shutdown
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def test_eight_clients_at_once_lose_and_double_nothing(home: Path, tmp_path: Path) -> None:
    init_workspace(home.parent)
    backend = open_workspace(home).backend
    Registry(backend, "alice").bootstrap_admin()
    tokens: dict[int, str] = {}
    for client in range(CLIENTS):
        backend.set_user(f"user{client}", Role.MEMBER, actor="alice")
        tokens[client] = issue_token(backend, "alice", user=f"user{client}")[1]
    log = tmp_path / "server.log"
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(CLIENTS, timeout=60)
    results = spawn.Queue()
    started = time.monotonic()
    with _serve(home, log) as url:
        clients = [
            spawn.Process(
                target=_client,
                args=(c, url, tokens[c], str(tmp_path / "clients"), barrier, results),
                daemon=True,
            )
            for c in range(CLIENTS)
        ]
        for process in clients:
            process.start()
        outcomes: list[Outcome] = []
        try:
            for _ in clients:
                outcomes.append(results.get(timeout=120))
        except queue.Empty:
            pytest.fail(f"a client never finished; server log:\n{log.read_text()[-3000:]}")
        finally:
            for process in clients:
                process.join(timeout=20)
                if process.is_alive():  # pragma: no cover - a hung client
                    process.terminate()
    print(f"{CLIENTS} clients done in {time.monotonic() - started:.1f} s")
    server_log = log.read_text()

    # no client saw an error (a lock error would arrive as a 503 StoreError), nor did the server
    errors = [e for o in outcomes for e in o.errors]
    assert not errors, "\n".join(errors) + f"\nserver log:\n{server_log[-3000:]}"
    assert "Traceback" not in server_log, server_log[-3000:]
    assert [p.exitcode for p in clients] == [0] * CLIENTS

    # one experiment, whoever created it
    experiments = [e for e in backend.list_experiments() if e.name == EXPERIMENT]
    assert len(experiments) == 1
    experiment_id = experiments[0].experiment_id
    assert {o.experiment_id for o in outcomes} == {experiment_id}

    # every run once, with exactly what its client logged
    runs = {r.run_id: r for r in backend.search_runs([experiment_id], max_results=1000)}
    expected_ids = {run_id for o in outcomes for run_id in o.runs.values()}
    assert len(expected_ids) == CLIENTS * RUNS
    assert set(runs) == expected_ids
    for outcome in outcomes:
        assert outcome.journal_new == RUNS * STEPS  # the segments sent twice counted once
        for run, run_id in enumerate(outcome.runs.values()):
            stored = runs[run_id]
            c = outcome.client
            assert stored.name == f"c{c}-r{run}"
            assert stored.user == outcome.user
            assert stored.status is RunStatus.FINISHED
            assert stored.params == _params(c, run)
            assert stored.tags == _tags(c, run)
            assert stored.metrics == {
                "loss": _loss(c, run, STEPS - 1),
                "acc": _acc(c, run, STEPS - 1),
            }
            for key, value in (("loss", _loss), ("acc", _acc)):
                history = [(m.step, m.value) for m in backend.get_metric_history(run_id, key)]
                assert history == [(s, value(c, run, s)) for s in range(STEPS)], (run_id, key)

    # versions 1..N, one per registration, each with its client's digest and author
    answered = sorted(n for o in outcomes for n, _ in o.versions)
    assert answered == list(range(1, CLIENTS * VERSIONS + 1))
    registered = {(n, digest, o.user) for o in outcomes for n, digest in o.versions}
    versions = backend.list_model_versions(MODEL)
    assert sorted(v.version for v in versions) == list(range(1, CLIENTS * VERSIONS + 1))
    assert {(v.version, v.digest, v.created_by) for v in versions} == registered
    assert len({v.digest for v in versions}) == CLIENTS * VERSIONS
    assert backend.get_registered_model(MODEL).aliases[ALIAS] in {v.version for v in versions}

    # every write was audited once, and the concurrent appends kept one unbroken chain
    assert backend.verify_audit() == []
    audited = Counter(e.action for e in backend.list_audit(limit=10_000, target=MODEL))
    assert audited["version.create"] == CLIENTS * VERSIONS
    assert audited["model.create"] == 1
    assert audited["alias.set"] == CLIENTS * VERSIONS
