"""Pipelines, tuning and automation through a real server: every ``Backend`` method of theirs
through ``RestBackend`` gives what the store itself gives (entities equal, errors of the same
kind), and a pipeline run twice and a tuning study work with ``SHIPYARD_SERVER`` set."""

from __future__ import annotations

import gc
import json
import math
import threading
from collections.abc import Iterator
from dataclasses import asdict, is_dataclass, replace
from pathlib import Path

import pytest

from shipyard.entities import (
    AutomationEvent,
    AutomationState,
    LineageEdge,
    PipelineRun,
    PipelineStatus,
    Role,
    StepOutput,
    StepRun,
    StepStatus,
)
from shipyard.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from shipyard.store import Backend
from shipyard.store.rest import RestBackend
from shipyard.store.rest_pipelines import from_wire, to_wire
from tests._cli import run_shipyard
from tests._served import Served

pytestmark = pytest.mark.integration

RUN = "ab" * 16
DIGEST = "0f" * 32
OUT = StepOutput("output", DIGEST, "file", "pickle/1", "builtins.list", 12)
# What JSON has no words for, and the store keeps: the wire must bring it back equal.
ODD = {"nan": math.nan, "inf": [math.inf, -math.inf], "nested": {"n": 2**70, "s": "é\u0000"}}


@pytest.fixture
def both(home: Path) -> Iterator[tuple[RestBackend, Backend]]:
    """The client of a server over ``home``, and the store that server writes to."""
    with Served(home, auth=False) as served:
        client = RestBackend(served.url)
        try:
            yield client, served.app.state.workspace.backend
        finally:
            client.close()


def _plain(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        return {"@": type(value).__name__, **_plain(asdict(value))}  # type: ignore[dict-item]
    if isinstance(value, list | tuple):
        return [type(value).__name__, *(_plain(v) for v in value)]
    if isinstance(value, dict):
        return {repr(k): _plain(v) for k, v in value.items()}
    return repr(value)


def _same(a: object, b: object) -> bool:
    """Equal, types included, and a NaN equal to a NaN (``==`` says NaN is not NaN)."""
    return _plain(a) == _plain(b)


def _run(run_id: str = RUN, **changes: object) -> PipelineRun:
    run = PipelineRun(
        run_id=run_id,
        pipeline="train",
        source="flow.py:train",
        params={"n": 5, "threshold": math.nan, **ODD},
        status=PipelineStatus.RUNNING,
        executor="inprocess",
        user="mallory",  # the server decides: its caller
        start_time=1_700_000_000_000,
        owner=json.dumps(["host", 42, 1.5]),
        heartbeat=1_700_000_000_000,
    )
    return replace(run, **changes)  # type: ignore[arg-type]


def _steps(run_id: str = RUN) -> list[StepRun]:
    return [
        StepRun(
            step_run_id=f"{position:x}" * 32 if run_id == RUN else f"{position + 8:x}" * 32,
            run_id=run_id,
            name=name,
            position=position,
            function=f"flow:{name}",
            status=StepStatus.PENDING,
            upstream=upstream,
        )
        for position, (name, upstream) in enumerate(
            [("load", ()), ("fit", ("load",)), ("score", ("load", "fit"))], start=1
        )
    ]


def test_the_wire_brings_back_what_the_store_keeps() -> None:
    value = {"a": (1, 2), 3: math.nan, "p": Path("/x"), "f": [math.inf, {"g": -math.inf}]}
    sent = to_wire(value)
    assert json.loads(json.dumps(sent, allow_nan=False)) == sent  # strict JSON
    assert _same(from_wire(sent), json.loads(json.dumps(value, default=str)))


def test_pipeline_runs_and_steps_round_trip(both: tuple[RestBackend, Backend]) -> None:
    client, store = both
    steps = _steps()
    client.create_pipeline_run(_run(), steps)
    got = client.get_pipeline_run(RUN[:6])
    assert _same(got, store.get_pipeline_run(RUN))
    assert got.user == "alice"  # the server's caller, not what the client named
    assert math.isnan(got.params["threshold"]) and got.params["nested"]["n"] == 2**70
    assert _same(got, replace(_run(), user="alice", params=store.get_pipeline_run(RUN).params))
    assert client.list_step_runs(RUN) == store.list_step_runs(RUN) == steps

    # a step's life: running, then done with outputs and key parts (NaN kept)
    load, fit, score = steps
    running = replace(load, status=StepStatus.RUNNING, start_time=5, attempts=1)
    client.save_step_run(running)
    assert client.get_step_run(load.step_run_id) == store.get_step_run(load.step_run_id) == running
    done = replace(
        running,
        status=StepStatus.FINISHED,
        end_time=9,
        outputs=(OUT, replace(OUT, name="extra", kind="dir", size=0)),
        cache_key="c" * 64,
        key_parts={"params": {"n": 5, "x": math.nan}, "inputs": {}},
        logs_digest=DIGEST,
        error="",
    )
    cached = replace(
        fit, status=StepStatus.CACHED, cache_hit=True, reused_from=load.step_run_id, outputs=(OUT,)
    )
    client.save_step_runs([done, cached])
    for step in (done, cached):
        assert _same(client.get_step_run(step.step_run_id), step)
        assert _same(client.get_step_run(step.step_run_id), store.get_step_run(step.step_run_id))
    client.beat_pipeline_run(RUN, 1_700_000_001_000)
    assert client.get_pipeline_run(RUN).heartbeat == 1_700_000_001_000
    client.finish_pipeline_run(RUN, PipelineStatus.FAILED, end_time=1_700_000_002_000, error="x")
    finished = client.get_pipeline_run(RUN)
    assert (finished.status, finished.end_time, finished.error, finished.owner) == (
        PipelineStatus.FAILED,
        1_700_000_002_000,
        "x",
        None,
    )
    assert client.get_step_run(score.step_run_id).status is StepStatus.SKIPPED
    assert _same(client.list_step_runs(RUN), store.list_step_runs(RUN))


def test_pipeline_run_listings_and_errors_are_the_stores(
    both: tuple[RestBackend, Backend],
) -> None:
    client, store = both
    other = "ab" * 15 + "cd"
    client.create_pipeline_run(_run(), _steps())
    client.create_pipeline_run(_run(other, pipeline="score", start_time=1_800_000_000_000), [])
    for kwargs in (
        {},
        {"pipeline": "train"},
        {"pipeline": "nothing"},
        {"limit": 1},
        {"limit": 0},
        {"before": 1_800_000_000_000},
        {"before": 0},
    ):
        assert _same(client.list_pipeline_runs(**kwargs), store.list_pipeline_runs(**kwargs))
    assert [r.run_id for r in client.list_pipeline_runs()] == [other, RUN]
    for prefix, kind in (
        ("abab", InvalidArgumentError),  # ambiguous
        ("ff", NotFoundError),
        ("", InvalidArgumentError),
        ("a" * 33, InvalidArgumentError),
        ("zz/..", NotFoundError),
    ):
        with pytest.raises(kind):
            store.get_pipeline_run(prefix)
        with pytest.raises(kind):
            client.get_pipeline_run(prefix)
    with pytest.raises(NotFoundError):
        client.get_step_run("9" * 32)
    assert client.list_step_runs("9" * 32) == []
    with pytest.raises(NotFoundError):  # a step that was never created
        client.save_step_runs([replace(_steps()[0], step_run_id="9" * 32)])
    with pytest.raises(InvalidArgumentError, match="do not change"):
        client.save_step_run(replace(_steps()[0], name="renamed"))
    with pytest.raises(AlreadyExistsError):
        client.create_pipeline_run(_run(), [])
    with pytest.raises(AlreadyExistsError):  # its steps' ids are taken
        client.create_pipeline_run(_run("cd" * 16), [replace(_steps()[0], run_id="cd" * 16)])
    with pytest.raises(InvalidArgumentError, match="every step must be of run"):
        client.create_pipeline_run(_run("ef" * 16), _steps())
    assert [r.run_id for r in store.list_pipeline_runs()] == [other, RUN]  # nothing half-made


def test_the_step_cache_keeps_its_first_writer(both: tuple[RestBackend, Backend]) -> None:
    client, store = both
    key = "e" * 64
    assert client.get_cached_step(key) is None
    outcomes: list[bool] = []
    barrier = threading.Barrier(6)

    def put(n: int) -> None:
        barrier.wait()
        outcomes.append(client.put_cached_step(key, [OUT], f"{n:x}" * 32, now=n))

    threads = [threading.Thread(target=put, args=(n,)) for n in range(1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [False] * 5 + [True]  # exactly one caller stored it
    hit = client.get_cached_step(key)
    assert hit is not None and hit == store.get_cached_step(key)
    assert hit[0] == (OUT,) and hit[1] in {f"{n:x}" * 32 for n in range(1, 7)}
    client.forget_cached_step(key)
    assert client.get_cached_step(key) is None and store.get_cached_step(key) is None
    client.forget_cached_step(key)  # forgetting nothing is fine, as locally
    with pytest.raises(InvalidArgumentError):  # not a cache key
        client.put_cached_step("loss", [OUT], "1" * 32, now=1)


def test_pipeline_lineage_round_trips(both: tuple[RestBackend, Backend]) -> None:
    client, store = both
    step, other = "1" * 32, "2" * 32
    edges = [
        LineageEdge(step, RUN, "dataset_version", "customers@3", "read"),
        LineageEdge(step, RUN, "run", "9" * 32, "made"),
        LineageEdge(other, RUN, "model_version", "churn@2", "made"),
        LineageEdge(other, "cd" * 16, "dataset_version", "customers@3", "read"),
    ]
    client.add_pipeline_lineage(edges)
    client.add_pipeline_lineage(edges[:2])  # kept once
    client.add_pipeline_lineage([])
    for kwargs in (
        {},
        {"run_id": RUN},
        {"kind": "dataset_version", "ref": "customers@3"},
        {"run_id": RUN, "kind": "model_version"},
        {"ref": "nothing"},
    ):
        assert client.pipeline_lineage(**kwargs) == store.pipeline_lineage(**kwargs)
    assert sorted(client.pipeline_lineage(), key=repr) == sorted(edges, key=repr)


def test_the_tuning_journal_keeps_order_and_numbers(both: tuple[RestBackend, Backend]) -> None:
    client, store = both
    assert client.read_tuning_logs() == []
    assert client.append_tuning_logs(['{"op_code":0,"n":0}', '{"op_code":1,"n":1}']) == 0
    assert client.append_tuning_logs([]) == 2
    firsts: list[tuple[int, int]] = []

    def append(worker: int) -> None:
        logs = [json.dumps({"worker": worker, "i": i}) for i in range(5)]
        firsts.append((worker, client.append_tuning_logs(logs)))

    threads = [threading.Thread(target=append, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    logs = client.read_tuning_logs()
    assert logs == store.read_tuning_logs() and len(logs) == 22
    for worker, first in firsts:  # each call's logs together, in order, from its number
        assert [json.loads(log) for log in logs[first : first + 5]] == [
            {"worker": worker, "i": i} for i in range(5)
        ]
    assert client.read_tuning_logs(20) == store.read_tuning_logs(20) == logs[20:]
    with pytest.raises(InvalidArgumentError, match="not a JSON object"):
        client.append_tuning_logs(['{"ok":1}', "not json"])
    assert len(store.read_tuning_logs()) == 22  # nothing of a refused call


def _event(event_id: str = "a1" * 12, **changes: object) -> AutomationEvent:
    event = AutomationEvent(
        event_id=event_id,
        automation="retrain",
        trigger="new-data",
        kind="dataset",
        source="customers@4",
        detected_at=1_700_000_000_000,
        model="churn",
        details={"rows": 400, "distance": math.inf, "odd": ODD},
        updated_at=1_700_000_000_000,
    )
    return replace(event, **changes)  # type: ignore[arg-type]


def test_trigger_events_round_trip_with_compare_and_set(
    both: tuple[RestBackend, Backend],
) -> None:
    client, store = both
    armed = client.arm_automation("retrain", 1000)
    assert armed == 1000 and client.arm_automation("retrain", 5000) == 1000
    assert store.arm_automation("retrain", 9000) == 1000
    event = _event()
    assert client.add_automation_event(event, actor="mallory") is True
    assert client.add_automation_event(event, actor="mallory") is False  # it exists
    got = client.get_automation_event(event.event_id[:6])
    assert _same(got, event) and _same(got, store.get_automation_event(event.event_id))

    training = replace(
        got,
        state=AutomationState.TRAINING,
        pipeline_run_id=RUN,
        attempts=1,
        gate={"auc": math.nan},
        updated_at=1_700_000_000_500,
        reason="started",
    )
    saved = client.update_automation_event(training, actor="mallory", details={"x": -math.inf})
    assert saved.revision == 1 and _same(saved, replace(training, revision=1))
    assert _same(client.get_automation_event(event.event_id), saved)
    with pytest.raises(ConflictError):  # read at revision 0: another automator moved it on
        client.update_automation_event(replace(training, reason="late"), actor="mallory")
    with pytest.raises(ConflictError):  # no such event: nothing to compare with
        client.update_automation_event(_event("ff" * 12), actor="mallory")

    log = client.automation_log(event.event_id)
    assert _same(log, store.automation_log(event.event_id))
    assert [(e.state, e.actor) for e in log] == [
        (AutomationState.WAITING, "alice"),  # the server's caller, not "mallory"
        (AutomationState.TRAINING, "alice"),
    ]
    assert math.isinf(log[1].details["x"])
    assert client.automation_log("ff" * 12) == []

    client.add_automation_event(
        _event("b2" * 12, detected_at=1_800_000_000_000, candidate="churn@2", source="alert e1"),
        actor="x",
    )
    for kwargs in (
        {},
        {"automation": "retrain"},
        {"automation": "other"},
        {"states": [AutomationState.TRAINING]},
        {"states": [AutomationState.WAITING, AutomationState.PROMOTED]},
        {"states": []},
        {"candidate": "churn@2"},
        {"source": "customers@4"},
        {"pipeline_run_id": RUN},
        {"limit": 1},
    ):
        assert _same(
            client.list_automation_events(**kwargs),  # type: ignore[arg-type]
            store.list_automation_events(**kwargs),  # type: ignore[arg-type]
        ), kwargs
    for prefix in ("", "ff"):  # the empty prefix names both: no one event
        with pytest.raises(NotFoundError):
            store.get_automation_event(prefix)
        with pytest.raises(NotFoundError):
            client.get_automation_event(prefix)


def test_the_server_decides_who_acts_and_roles_hold(home: Path) -> None:
    from shipyard.registry import Registry
    from shipyard.registry.tokens import issue_token
    from shipyard.tracking import open_workspace

    backend = open_workspace(home).backend
    Registry(backend, "alice").bootstrap_admin()
    backend.set_user("bob", Role.MEMBER, actor="alice")
    backend.set_user("vera", Role.VIEWER, actor="alice")
    with Served(home, auth=True) as served:
        bob = RestBackend(served.url, token=issue_token(backend, "alice", user="bob")[1])
        vera = RestBackend(served.url, token=issue_token(backend, "alice", user="vera")[1])
        try:
            bob.create_pipeline_run(_run(), _steps())
            assert vera.get_pipeline_run(RUN).user == "bob"
            bob.add_automation_event(_event(), actor="alice")
            assert [e.actor for e in vera.automation_log(_event().event_id)] == ["bob"]
            for write in (
                lambda: vera.create_pipeline_run(_run("cd" * 16), []),
                lambda: vera.put_cached_step("e" * 64, [OUT], "1" * 32, now=1),
                lambda: vera.append_tuning_logs(["{}"]),
                lambda: vera.add_automation_event(_event("c3" * 12), actor="vera"),
                lambda: vera.arm_automation("retrain", 1),
            ):
                with pytest.raises(PermissionDeniedError, match="needs the member role"):
                    write()
            assert _same(vera.list_pipeline_runs(), backend.list_pipeline_runs())
            assert vera.read_tuning_logs() == []
        finally:
            bob.close()
            vera.close()


FLOW = """
import shipyard


@shipyard.step
def load(n: int) -> list:
    return list(range(n))


@shipyard.step
def total(values: list, scale: float) -> float:
    return sum(values) * scale


@shipyard.pipeline
def small(n: int = 5, scale: float = 2.0):
    return total(load(n), scale)
"""


@pytest.fixture
def remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """This process a client of a server (``SHIPYARD_SERVER``) with a workspace of its own;
    yields the store the server writes to."""
    from shipyard.config import init_workspace

    monkeypatch.setenv("SHIPYARD_USER", "alice")
    for name in ("SHIPYARD_SERVER", "SHIPYARD_TOKEN", "SHIPYARD_ARTIFACTS_URL"):
        monkeypatch.delenv(name, raising=False)
    server_home = init_workspace(tmp_path / "server")
    monkeypatch.setenv("SHIPYARD_STORE_URL", f"sqlite:///{server_home / 'shipyard.db'}")
    with Served(server_home, auth=False) as served:
        monkeypatch.delenv("SHIPYARD_STORE_URL")
        monkeypatch.setenv("SHIPYARD_SERVER", served.url)
        monkeypatch.setenv("SHIPYARD_HOME", str(init_workspace(tmp_path / "laptop")))
        monkeypatch.chdir(tmp_path)
        yield served.app.state.workspace.backend


def test_a_pipeline_run_twice_through_a_server_reuses_its_steps(
    remote: Backend, tmp_path: Path
) -> None:
    import shipyard
    from shipyard.pipelines import explain
    from shipyard.pipelines.loading import load_pipeline
    from tests.pipelines._files import run, write

    # Another flow.py loaded first, so that this one is imported under a made-up module name
    # in this process, which must not change a step's cache key (the CLI's process below
    # imports it as `flow`).
    (tmp_path / "other").mkdir()
    load_pipeline(f"{write(tmp_path / 'other', FLOW)}:small")
    flow = write(tmp_path, FLOW)
    assert isinstance(shipyard.open_workspace().backend, RestBackend)
    first = run(flow, "small")
    assert first.executed == ["load", "total"] and first.output("total") == 20.0
    # the second run, by the CLI in another process: every step from the cache, via the server
    again = run_shipyard("pipeline", "run", f"{flow}:small", "--json")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert [s["status"] for s in second["steps"]] == ["CACHED", "CACHED"]
    # the server's own store holds both runs, by the server's user
    runs = remote.list_pipeline_runs("small")
    assert [r.run_id for r in runs] == [second["run_id"], first.run_id]
    assert {r.user for r in runs} == {"alice"} and runs[0].status is PipelineStatus.FINISHED
    made = {s.name: s.step_run_id for s in remote.list_step_runs(first.run_id)}
    reused = {s.name: s.reused_from for s in remote.list_step_runs(second["run_id"])}
    assert reused == made
    assert explain(shipyard.open_workspace().backend, second["run_id"])
    shown = run_shipyard("pipeline", "show", second["run_id"][:8], "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["steps"][1]["reused_from"] == made["total"]
    gc.collect()  # any connection a step left open would warn here (none: task.py closes)


def test_a_tuning_study_through_a_server(remote: Backend) -> None:
    from shipyard.tuning import load_study, tune
    from tests.tuning import _objectives

    study = tune(_objectives.quadratic, _objectives.SPACE, n_trials=3, study="q", seed=0)
    assert [t.state for t in study.trials] == ["COMPLETE"] * 3
    assert remote.read_tuning_logs()  # the journal is the server's
    assert load_study("q").best_value == study.best_value
    parent = remote.get_run(study.run_id or "")
    assert parent.tags["shipyard.tuning.study"] == "q" and parent.user == "alice"


def test_continuous_training_through_a_server(remote: Backend, tmp_path: Path) -> None:
    """A new dataset version, through the server: one event, one pipeline run, a gated and
    promoted candidate; `automate events`/`show` tell it from another process."""
    from shipyard import data
    from shipyard.automation import Automator, load_policy
    from tests.automation import _world

    data.add(_world.table(400, 1), name="customers")
    data.add(_world.table(400, 2), name="holdout")
    policy = load_policy(_world.policy(tmp_path, _world.BASIC))
    Automator(policy).tick()  # armed: what existed before fires nothing
    data.add(_world.table(400, 3), name="customers")
    Automator(policy).tick()
    (event,) = remote.list_automation_events()
    assert (event.state, event.candidate, event.source) == (
        AutomationState.PROMOTED,
        "churn@1",
        "customers@2",
    )
    assert remote.get_pipeline_run(event.pipeline_run_id or "").status is PipelineStatus.FINISHED
    edges = remote.pipeline_lineage(kind="model_version", ref="churn@1")
    assert [e.run_id for e in edges] == [event.pipeline_run_id]
    assert {e.actor for e in remote.automation_log(event.event_id)} == {"alice"}
    listed = run_shipyard("automate", "events", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [e["event_id"] for e in json.loads(listed.stdout)] == [event.event_id]
    shown = run_shipyard("automate", "show", event.event_id[:8], "--json")
    assert shown.returncode == 0, shown.stderr
    assert [h["state"] for h in json.loads(shown.stdout)["history"]] == [
        "waiting",
        "training",
        "gating",
        "awaiting_approval",
        "rolling_out",
        "promoted",
    ]
    gc.collect()
