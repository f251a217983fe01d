"""``shipyard lineage`` and ``shipyard models why`` over a chain the real automator made.

The world: ``customers@1`` and a held-out ``holdout@1``; the automator is armed, a new
``customers@2`` arrives, and the next pass trains ``churn@1`` in a pipeline run, gates it on
the holdout and moves ``churn@champion`` to it. On top of that, a deployment serving the
champion and an alert event about it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

import shipyard
import shipyard.data
from shipyard.automation import Automator, load_policy
from shipyard.automation.lineage import resolve_node, walk
from shipyard.automation.why import explain_version
from shipyard.config import init_workspace
from shipyard.entities import (
    AlertEvent,
    AlertState,
    AutomationEvent,
    AutomationState,
    Severity,
)
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.store import Backend
from shipyard.store.backend import AlertProgress
from shipyard.tracking import open_workspace
from tests._cli import run_shipyard
from tests.automation import _world

pytestmark = pytest.mark.integration
STORE_KINDS = ("sqlite",)  # lineage views; the automator on PostgreSQL: test_automator.py


@dataclass
class World:
    backend: Backend
    event: AutomationEvent
    """The trigger event that produced churn@1."""
    run_id: str
    """The tracking run that registered churn@1."""
    root: Path


@pytest.fixture
def world(home: Path) -> World:
    init_workspace(home.parent)
    shipyard.data.add(_world.table(400, 1), name="customers")
    shipyard.data.add(_world.table(400, 2), name="holdout")
    automator = Automator(load_policy(_world.policy(home.parent, _world.BASIC)))
    assert automator.tick().errors == []  # arms the automation
    time.sleep(0.01)  # the new version must be younger than the arming
    shipyard.data.add(_world.table(400, 3), name="customers")
    report = automator.tick()
    assert report.errors == []
    [event] = automator.backend.list_automation_events()
    assert event.state is AutomationState.PROMOTED, event.reason
    assert event.candidate == "churn@1"
    version = automator.backend.get_model_version("churn", 1)
    assert version.run_id is not None
    return World(automator.backend, event, version.run_id, home.parent)


def _alert(model: str, event_id: str, value: float = 0.42) -> AlertEvent:
    return AlertEvent(
        event_id=event_id,
        rule="drift-share",
        model=model,
        state=AlertState.FIRING,
        severity=Severity.ERROR,
        metric="drift.share",
        value=value,
        threshold=0.3,
        at=datetime.now(UTC),
        message=f"drift.share = {value} > 0.3 for 2 consecutive windows",
    )


def _record(backend: Backend, event: AlertEvent) -> None:
    progress = AlertProgress(
        event.model, event.rule, consecutive=2, firing=True, last_window_end=event.at
    )
    assert backend.record_alert_progress(progress, [event], expected_window_end=None)


def test_the_champion_walks_back_to_its_run_data_pipeline_and_trigger(world: World) -> None:
    event, run_id = world.event, world.run_id
    graph = walk(world.backend, "churn@champion")

    assert graph.root.key == "model:churn@1"
    assert "champion" in graph.root.label
    upstream = [n.key for n in graph.upstream()]
    pipeline = f"pipeline:{event.pipeline_run_id}"
    trigger = f"trigger:{event.event_id}"
    for key in (f"run:{run_id}", "dataset:customers@2", pipeline, trigger):
        assert key in upstream
    assert "dataset:customers@1" not in upstream
    assert "dataset:holdout@1" not in upstream  # the gate's data trained nothing
    assert [n.key for n in graph.parents()] == [f"run:{run_id}", pipeline, trigger]
    assert graph.relation(f"run:{run_id}", "model:churn@1") == "registered"
    assert graph.relation(pipeline, f"run:{run_id}") == "made"
    assert graph.relation("dataset:customers@2", pipeline) == "read by"
    assert graph.relation(trigger, pipeline) == "started"
    assert graph.relation("dataset:customers@2", trigger) == "triggered"
    assert graph.downstream() == []  # not deployed yet
    assert "promoted" in graph.nodes[trigger].label
    assert "FINISHED" in graph.nodes[f"run:{run_id}"].label

    down = walk(world.backend, "customers@2")
    assert down.root.key == "dataset:customers@2"
    assert "model:churn@1" in [n.key for n in down.downstream()]
    assert down.upstream() == []

    near = walk(world.backend, "churn@1", depth=1)
    assert set(near.nodes) == {"model:churn@1", f"run:{run_id}", pipeline, trigger}
    assert walk(world.backend, "churn@1", depth=0).nodes == {"model:churn@1": near.root}
    json.dumps(graph.to_dict())  # JSON-able as it is


def test_models_why_names_trigger_pipeline_data_gate_and_promotion(world: World) -> None:
    event = world.event
    result = run_shipyard("models", "why", "churn@champion", "--json", cwd=world.root)
    assert result.returncode == 0, result.stderr
    why = json.loads(result.stdout)

    assert why["version"] == "churn@1"
    assert why["trigger_event"] == event.event_id
    assert why["pipeline_runs"] == [event.pipeline_run_id]
    assert why["run"] == world.run_id
    assert why["data"]["pipeline_runs"] == {event.pipeline_run_id: ["customers@2"]}
    text = {line["label"]: line["text"] for line in why["lines"]}
    assert event.event_id in text["trigger"] and "customers@2" in text["trigger"]
    assert str(event.pipeline_run_id) in text["training"] and world.run_id in text["training"]
    assert "customers@2" in text["data"]
    roc_auc = event.gate["metrics"]["roc_auc"]
    assert text["gate"].startswith("passed")
    assert f"roc_auc {roc_auc:.4g} on holdout@1" in text["gate"]
    assert "demographic parity gap" in text["gate"]
    assert event.gate["report_digest"][:12] in text["gate"]
    assert "approved automatically" in text["approval"]
    assert "churn@champion at churn@1" in text["rollout"]
    assert "audit #" in text["rollout"]
    assert why["alias_moves"][0]["alias"] == "champion"

    shown = run_shipyard("models", "why", "churn@champion", cwd=world.root)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("churn@1\n")
    assert "trigger" in shown.stdout and "gate" in shown.stdout

    # the same gate through the server, and its full report by digest
    from shipyard.server import create_app
    from tests.server.test_api import Client

    api = Client(create_app(world.root / ".shipyard"))
    gates = api("GET", "/api/v1/models/churn/versions/champion/validation").json()["gates"]
    assert [g["event_id"] for g in gates] == [event.event_id]
    assert gates[0]["passed"] is True and gates[0]["metrics"]["roc_auc"] == roc_auc
    report = api("GET", f"/api/v1/objects/{gates[0]['report_digest']}")
    assert report.status_code == 200 and "roc_auc" in report.text


def test_a_deployment_leads_to_its_alerts_and_back_to_the_model(world: World) -> None:
    from shipyard.deploy.service import Deployments

    backend = world.backend
    Deployments(backend, "alice", home=world.root / ".shipyard").create(
        "churn-prod", "churn@champion"
    )
    alert = _alert("churn-prod", "a1" * 16)
    _record(backend, alert)
    other = _alert("fraud-prod", "b2" * 16)  # another model's alert is not linked
    _record(backend, other)
    retrain = AutomationEvent(
        event_id="c3" * 12,
        automation="retrain-on-drift",
        trigger="drift",
        kind="alert",
        source=f"alert {alert.event_id}",
        detected_at=1,
        model="churn",
        details={"model": "churn-prod", "rule": "drift-share", "alert_event": alert.event_id},
    )
    assert backend.add_automation_event(retrain, actor="alice")

    graph = walk(backend, "deployment:churn-prod")
    assert graph.root.label.startswith("churn-prod · stable · stable churn@1")
    assert [n.key for n in graph.parents()] == ["model:churn@1"]
    assert f"trigger:{world.event.event_id}" in [n.key for n in graph.upstream()]
    downstream = [n.key for n in graph.downstream()]
    assert downstream[:2] == [f"alert:{alert.event_id}", f"trigger:{retrain.event_id}"]
    assert f"alert:{other.event_id}" not in graph.nodes
    label = graph.nodes[f"alert:{alert.event_id}"].label
    assert "drift-share · firing · drift.share 0.42 vs 0.3" in label

    from_alert = walk(backend, alert.event_id[:10])  # a bare id prefix
    assert from_alert.root.key == f"alert:{alert.event_id}"
    assert [n.key for n in from_alert.parents()] == ["deployment:churn-prod"]
    assert "model:churn@1" in [n.key for n in from_alert.upstream()]
    assert [n.key for n in from_alert.children()] == [f"trigger:{retrain.event_id}"]

    from_model = walk(backend, "churn@1", depth=3)
    assert [n.key for n in from_model.downstream()][:3] == [
        "deployment:churn-prod",
        f"alert:{alert.event_id}",
        f"trigger:{retrain.event_id}",
    ]

    why = explain_version(backend, "churn@1")
    lines = dict(why.lines)
    assert lines["deployed"].startswith("churn-prod (stable): route stable 100% live")

    # a prefix shared by a trigger event and an alert event is refused, naming both
    shared = AutomationEvent(
        event_id="a1" * 12,
        automation="x",
        trigger="t",
        kind="manual",
        source="now",
        detected_at=2,
    )
    assert backend.add_automation_event(shared, actor="alice")
    with pytest.raises(InvalidArgumentError, match="say which with a prefix") as info:
        resolve_node(backend, "a1a1a1a1")
    assert "trigger:" in str(info.value) and "alert:" in str(info.value)
    assert resolve_node(backend, "trigger:a1a1a1a1").key == f"trigger:{shared.event_id}"
    assert resolve_node(backend, "alert:a1a1a1a1").key == f"alert:{alert.event_id}"
    assert resolve_node(backend, alert.event_id).key == f"alert:{alert.event_id}"  # whole id


def _hand_made_chain() -> tuple[Backend, str]:
    """``customers@1`` read by a run that registered ``churn@1`` by hand (no automation)."""
    shipyard.data.add(_world.table(50, 1), name="customers")
    with shipyard.start_run(experiment="churn") as run:
        run.use_dataset("customers", 1)
    backend = open_workspace().backend
    backend.create_model_version(
        "churn", digest="0" * 64, flavor="sklearn", actor="bob", run_id=run.run_id
    )
    return backend, run.run_id


def test_a_hand_made_chain_and_its_why(home: Path) -> None:
    backend, run_id = _hand_made_chain()
    graph = walk(backend, "churn@latest")
    assert [n.key for n in graph.upstream()] == [f"run:{run_id}", "dataset:customers@1"]
    assert walk(backend, f"run:{run_id[:8]}").root.key == f"run:{run_id}"
    assert walk(backend, run_id[:8]).root.key == f"run:{run_id}"
    assert walk(backend, "customers@latest").root.key == "dataset:customers@1"
    assert walk(backend, "dataset:customers").root.key == "dataset:customers@1"

    why = explain_version(backend, "churn@1")
    lines = dict(why.lines)
    assert lines["registered"].startswith("registered by hand by bob")
    assert run_id in lines["training"]
    assert lines["data"] == f"run {run_id[:8]} read customers@1"
    assert lines["approval"] == "not approved (review none)"
    assert "gate" not in lines and why.to_dict()["trigger_event"] is None


def test_lineage_cli_prints_a_tree_mermaid_or_json(home: Path) -> None:
    _, run_id = _hand_made_chain()

    mermaid = run_shipyard("lineage", "churn@1", "--format", "mermaid")
    assert mermaid.returncode == 0, mermaid.stderr
    lines = mermaid.stdout.splitlines()
    assert lines[0] == "flowchart LR"
    assert lines[1].startswith('    n0["model churn@1 · review none')
    assert any(line.startswith('    n1["run ' + run_id[:8]) for line in lines)
    assert "    n1 -->|registered| n0" in lines
    assert "    n2 -->|read by| n1" in lines
    assert lines[-1] == "    class n0 root"

    wide = dict(os.environ, COLUMNS="200")
    tree = run_shipyard("lineage", "customers@1", env=wide)
    assert tree.returncode == 0, tree.stderr
    out = tree.stdout.splitlines()
    assert out[0].startswith("dataset customers@1 · 50 rows")
    assert out[1:3] == ["upstream", "└── nothing recorded"]
    assert out[3] == "downstream"
    assert "run " + run_id[:8] in out[4] and "(read by)" in out[4]
    assert "model churn@1" in out[5] and "(registered)" in out[5]

    as_json = run_shipyard("lineage", "churn@1", "--json", "--depth", "1")
    graph = json.loads(as_json.stdout)
    assert graph["root"] == "model:churn@1"
    assert graph["upstream"] == [f"run:{run_id}"]
    assert {"source": f"run:{run_id}", "target": "model:churn@1", "relation": "registered"} in (
        graph["edges"]
    )


def test_lineage_cli_errors_are_one_line(home: Path) -> None:
    _hand_made_chain()
    missing = run_shipyard("lineage", "no-such-thing")
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert missing.stderr.count("error:") == 1
    assert "no-such-thing" in missing.stderr and "deployment:" in missing.stderr

    bare = run_shipyard("lineage", "churn")  # a model's bare name is not a deployment
    assert bare.returncode == 1
    assert "churn@latest or model:churn" in bare.stderr

    unknown_kind = run_shipyard("lineage", "experiment:churn")
    assert unknown_kind.returncode == 2
    assert "unknown kind 'experiment'" in unknown_kind.stderr

    bad_format = run_shipyard("lineage", "churn@1", "--format", "dot")
    assert bad_format.returncode == 2
    assert "--format is tree or mermaid" in bad_format.stderr

    assert run_shipyard("data", "lineage", "customers@1").returncode == 0  # older ones work
    assert run_shipyard("models", "lineage", "churn@1").returncode == 0


def test_unknown_and_ambiguous_references(home: Path) -> None:
    backend, _ = _hand_made_chain()
    with pytest.raises(NotFoundError, match="no registered model and no dataset named 'nope'"):
        resolve_node(backend, "nope@1")
    with pytest.raises(NotFoundError, match="no deployment, run, pipeline run"):
        resolve_node(backend, "beef")
    with pytest.raises(NotFoundError):
        resolve_node(backend, "deployment:churn-prod")
    with pytest.raises(InvalidArgumentError, match="depth"):
        walk(backend, "churn@1", depth=-1)
    for n in (1, 2):
        event = AutomationEvent(
            event_id=f"dead{n:020d}",
            automation="x",
            trigger="t",
            kind="manual",
            source=f"now {n}",
            detected_at=n,
        )
        assert backend.add_automation_event(event, actor="alice")
    with pytest.raises(InvalidArgumentError, match="several trigger events: give more of it"):
        resolve_node(backend, "dead0000")
    with pytest.raises(InvalidArgumentError, match="several trigger events"):
        resolve_node(backend, "trigger:dead0000")
    assert resolve_node(backend, "dead00000000000000000002").key == f"trigger:dead{2:020d}"


def test_lineage_over_the_server_is_the_same_graph(home: Path) -> None:
    """``GET /api/v1/lineage`` walks the same graph as the CLI, as JSON or Mermaid."""
    from shipyard.server import create_app
    from tests.server.test_api import Client

    _, run_id = _hand_made_chain()
    api = Client(create_app(home))
    graph = api("GET", "/api/v1/lineage", params={"ref": "churn@1", "depth": 1}).json()
    cli = json.loads(run_shipyard("lineage", "churn@1", "--json", "--depth", "1").stdout)
    assert graph == cli and graph["upstream"] == [f"run:{run_id}"]
    mermaid = api("GET", "/api/v1/lineage", params={"ref": "churn@1", "format": "mermaid"})
    assert mermaid.text.startswith("flowchart LR")
    missing = api("GET", "/api/v1/lineage", params={"ref": "no-such-thing"})
    assert missing.status_code == 404 and "deployment:" in missing.json()["message"]
