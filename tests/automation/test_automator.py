"""The continuous-training loop on real stores (SQLite and PostgreSQL), real pipelines and
real processes: one event starts one run, a crash resumes, a bad candidate is stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from shipyard import data
from shipyard.automation import Automator, load_policy
from shipyard.entities import AutomationState, PipelineStatus
from shipyard.errors import InvalidArgumentError
from shipyard.tracking import open_workspace
from tests._cli import ROOT, run_shipyard
from tests.automation import _world

pytestmark = pytest.mark.integration

S = AutomationState


def _seed(home: Path) -> None:
    data.add(_world.table(400, 1), name="customers")
    data.add(_world.table(400, 2), name="holdout")


def _tick_process(home: Path, policy: Path, *extra: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.Popen(
        [
            *(sys.executable, "-c", "from shipyard.cli import main; main()", "automate", "tick"),
            *("--policy", str(policy), "--json", *extra),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_a_new_dataset_version_starts_exactly_one_retraining_with_two_automators(
    home: Path, tmp_path: Path
) -> None:
    _seed(home)
    hold = tmp_path / "hold"
    body = _world.BASIC.replace(
        "    model: churn\n", f"    params: {{sleep_file: {hold}}}\n    model: churn\n"
    )
    policy = _world.policy(home.parent, body)
    armed = run_shipyard("automate", "tick", "--policy", str(policy))
    assert armed.returncode == 0, armed.stderr
    assert "Nothing to do" in armed.stdout
    data.add(_world.table(400, 3), name="customers")
    hold.touch()  # the training step waits while this file exists: both passes overlap
    first, second = _tick_process(home, policy), _tick_process(home, policy)
    backend = open_workspace().backend
    _wait_for(lambda: backend.list_pipeline_runs())
    time.sleep(1.0)  # the other pass has had time to detect the event and try the lease
    hold.unlink()
    outs = [p.communicate(timeout=120) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    reports = [json.loads(out) for out, _ in outs]
    assert sum(len(r["detected"]) for r in reports) == 1  # one event, added once
    (event,) = backend.list_automation_events()
    assert event.source == "customers@2" and event.state is S.PROMOTED
    assert len(backend.list_pipeline_runs()) == 1
    assert [v.version for v in backend.list_model_versions("churn")] == [1]
    assert event.details["params"] == {"dataset": "customers@2"}
    # a later pass finds nothing new
    again = run_shipyard("automate", "tick", "--policy", str(policy), "--json")
    assert json.loads(again.stdout) == {"detected": [], "changed": [], "busy": [], "errors": []}


def test_a_killed_automator_is_resumed_by_the_next_pass(home: Path, tmp_path: Path) -> None:
    _seed(home)
    hold = tmp_path / "hold"
    body = _world.BASIC.replace(
        "    model: churn\n", f"    params: {{sleep_file: {hold}}}\n    model: churn\n"
    )
    policy = _world.policy(home.parent, body)
    Automator(load_policy(policy)).tick()  # arm
    data.add(_world.table(400, 3), name="customers")
    hold.touch()
    doomed = _tick_process(home, policy, "--lease", "2s")
    backend = open_workspace().backend
    _wait_for(lambda: backend.list_pipeline_runs())
    doomed.send_signal(signal.SIGKILL)
    doomed.communicate()
    hold.unlink()
    (event,) = backend.list_automation_events()
    assert event.state is S.TRAINING and event.attempts == 1
    time.sleep(2.2)  # the dead pass's lease lapses
    Automator(load_policy(policy), lease_seconds=2).tick()
    (event,) = backend.list_automation_events()
    assert event.state is S.PROMOTED, event.reason
    assert event.attempts == 2
    runs = {r.run_id: r for r in backend.list_pipeline_runs()}
    assert len(runs) == 2 and event.pipeline_run_id in runs
    assert runs[event.pipeline_run_id].status is PipelineStatus.FINISHED
    # the killed run never registered anything: one version, trained once
    assert [v.version for v in backend.list_model_versions("churn")] == [1]
    history = [h.state for h in backend.automation_log(event.event_id)]
    assert history.count(S.TRAINING) == 2


def test_a_finished_pipeline_run_is_not_trained_again_after_a_crash(home: Path) -> None:
    """The automator died after the pipeline finished but before it recorded the next stage:
    the next pass finds the run finished and goes on from its model."""
    from dataclasses import replace

    from shipyard.pipelines import load_pipeline, run_pipeline

    _seed(home)
    policy = _world.policy(home.parent, _world.BASIC)
    automator = Automator(load_policy(policy))
    automator.tick()
    data.add(_world.table(400, 3), name="customers")
    backend = open_workspace().backend
    # Detect without advancing: take the lease away for a moment.
    assert backend.acquire_lease("automation:retrain", "someone-else", 60_000)
    automator.tick()
    backend.release_lease("automation:retrain", "someone-else")
    (event,) = backend.list_automation_events()
    assert event.state is S.WAITING
    run_id = "ab" * 16
    event = backend.update_automation_event(
        replace(event, state=S.TRAINING, pipeline_run_id=run_id, attempts=1), actor="test"
    )
    pipe, source = load_pipeline(f"{home.parent / 'train.py'}:train")
    run_pipeline(pipe, {"dataset": "customers@2"}, source=source, echo=False, run_id=run_id)
    automator.tick()
    (event,) = backend.list_automation_events()
    assert event.state is S.PROMOTED and event.attempts == 1
    assert event.candidate == "churn@1"
    assert len(backend.list_pipeline_runs()) == 1


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store is not the point
def test_a_degraded_candidate_is_stopped_by_the_gate_and_the_automation_backs_off(
    home: Path,
) -> None:
    _seed(home)
    body = _world.BASIC.replace("backoff: 1s", "backoff: 1h")
    policy = _world.policy(home.parent, body)
    automator = Automator(load_policy(policy))
    automator.tick()
    data.add(_world.table(400, 3), name="customers")
    automator.tick()
    backend = open_workspace().backend
    (good,) = backend.list_automation_events()
    assert good.state is S.PROMOTED and good.candidate == "churn@1"
    # New data whose labels are noise: the model trained on it is no better than chance.
    noisy = _world.table(400, 4)
    noisy["label"] = np.random.default_rng(0).integers(0, 2, size=len(noisy))
    data.add(noisy, name="customers")
    automator.tick()
    bad = backend.list_automation_events(limit=1)[0]
    assert bad.state is S.REJECTED, bad.reason
    assert bad.candidate == "churn@2"
    assert bad.reason.startswith("gate failed: roc_auc")
    assert "< min 0.750" in bad.reason and "worse than churn@1" in bad.reason
    assert bad.gate["passed"] is False and bad.gate["against"] == "churn@1"
    assert Path(bad.gate["report_html"]).is_file()
    assert backend.resolve_model_alias("churn", "champion") == 1  # production untouched
    tags = backend.get_model_version("churn", 2).tags
    assert tags["shipyard.automation"] == "rejected: gate failed"
    # The next trigger waits out the back-off instead of training again at once.
    data.add(_world.table(400, 5), name="customers")
    automator.tick()
    waiting = backend.list_automation_events(limit=1)[0]
    assert waiting.state is S.WAITING
    assert waiting.reason.startswith("backing off until")
    assert len(backend.list_pipeline_runs()) == 2


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store is not the point
def test_rejections_beyond_the_cap_skip_new_events(home: Path) -> None:
    _seed(home)
    body = _world.BASIC.replace("max_rejections: 3", "max_rejections: 1").replace(
        "backoff: 1s", "backoff: 1s"
    )
    policy = _world.policy(home.parent, body)
    automator = Automator(load_policy(policy))
    automator.tick()
    noisy = _world.table(400, 4)
    noisy["label"] = np.random.default_rng(0).integers(0, 2, size=len(noisy))
    data.add(noisy, name="customers")
    automator.tick()
    backend = open_workspace().backend
    assert backend.list_automation_events(limit=1)[0].state is S.REJECTED
    time.sleep(1.1)
    data.add(_world.table(400, 5), name="customers")
    automator.tick()
    skipped = backend.list_automation_events(limit=1)[0]
    assert skipped.state is S.SKIPPED
    assert "the cap is 1" in skipped.reason
    assert len(backend.list_pipeline_runs()) == 1


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store is not the point
def test_a_trigger_waits_while_a_rollout_of_the_model_is_in_progress(home: Path) -> None:
    from shipyard.deploy.service import Deployments
    from shipyard.registry import Registry

    _seed(home)
    body = _world.BASIC + "    rollout:\n      deployment: churn-prod\n"
    policy = _world.policy(home.parent, body.replace("backoff: 1s", "backoff: 1s"))
    plain = _world.policy(home.parent, _world.BASIC)
    Automator(load_policy(plain)).tick()
    data.add(_world.table(400, 3), name="customers")
    Automator(load_policy(plain)).tick()  # churn@1, champion
    backend = open_workspace().backend
    registry = Registry(backend, "alice")
    version = registry.resolve("churn@1")
    registry.register("churn", digest=version.digest, flavor=version.flavor)  # churn@2
    deployments = Deployments(backend, "alice")
    deployments.create("churn-prod", "churn@champion")
    deployments.canary("churn-prod", "churn@2")
    policy = _world.policy(home.parent, body)
    automator = Automator(load_policy(policy))
    data.add(_world.table(400, 4), name="customers")
    automator.tick()
    waiting = [e for e in backend.list_automation_events() if e.state is S.WAITING]
    assert len(waiting) == 1
    assert "churn-prod has a canary in progress" in waiting[0].reason
    before = len(backend.list_pipeline_runs())
    automator.tick()
    assert len(backend.list_pipeline_runs()) == before  # still waiting, nothing trained
    deployments.rollback("churn-prod", reason="test over")
    automator.tick()
    event = backend.get_automation_event(waiting[0].event_id)
    assert event.state is S.ROLLING_OUT, event.reason
    assert backend.get_deployment("churn-prod").state.in_progress


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("- dataset: customers\n        param: dataset", '- schedule: "61 * * * *"'),
            ":6: automations[0].triggers[0].schedule: '61 * * * *' is not a 5-field cron",
        ),
        (
            ("model: churn", "model: churn\n    colour: blue"),
            ":5: automations[0].colour: unknown key 'colour' in an automation",
        ),
        (("train.py:train", "missing.py:train"), ":3: automations[0].pipeline: no pipeline file"),
        (("train.py:train", "train.py"), "write FILE.py:NAME"),
        (("    limits:", "    approval: maybe\n    limits:"), "approval is 'auto' or 'review'"),
        (
            ("    limits:", "    rollout: {canary: {steps: [50]}}\n    limits:"),
            "a canary needs the 'deployment' it runs on",
        ),
        (("target: label", "target: [label"), "not valid YAML"),
    ],
)
def test_a_bad_policy_is_refused_with_its_line(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = _world.policy(tmp_path, _world.BASIC.replace(*change))
    with pytest.raises(InvalidArgumentError, match=r"automation\.yaml") as caught:
        load_policy(path)
    assert message in str(caught.value)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store is not the point
def test_check_names_what_does_not_exist(home: Path) -> None:
    body = _world.BASIC + "    rollout:\n      deployment: nowhere\n"
    policy = _world.policy(home.parent, body)
    checked = run_shipyard("automate", "check", "--policy", str(policy))
    assert checked.returncode == 2
    assert "watches dataset 'customers', which does not exist" in checked.stderr
    assert "deployment 'nowhere' does not exist" in checked.stderr
    ticked = run_shipyard("automate", "tick", "--policy", str(policy))
    assert ticked.returncode == 2 and "does not exist" in ticked.stderr
    _seed(home)
    good = _world.policy(home.parent, _world.BASIC)
    ok = run_shipyard("automate", "check", "--policy", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "ok retrain" in ok.stdout


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store is not the point
def test_events_and_show_tell_what_happened(home: Path) -> None:
    _seed(home)
    policy = _world.policy(home.parent, _world.BASIC)
    Automator(load_policy(policy)).tick()
    data.add(_world.table(400, 3), name="customers")
    Automator(load_policy(policy)).tick()
    listed = run_shipyard("automate", "events", "--json")
    (event,) = json.loads(listed.stdout)
    assert event["state"] == "promoted"
    shown = run_shipyard("automate", "show", event["event_id"][:8], "--json")
    history = [h["state"] for h in json.loads(shown.stdout)["history"]]
    assert history == [
        "waiting",
        "training",
        "gating",
        "awaiting_approval",
        "rolling_out",
        "promoted",
    ]
    bad = run_shipyard("automate", "events", "--state", "sleeping")
    assert bad.returncode == 2 and "unknown state 'sleeping'" in bad.stderr


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store is not the point
def test_run_keeps_passing_until_sigterm(home: Path) -> None:
    _seed(home)
    policy = _world.policy(home.parent, _world.BASIC)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    loop = subprocess.Popen(
        [
            *(sys.executable, "-c", "from shipyard.cli import main; main()", "automate", "run"),
            *("--policy", str(policy), "--interval", "1s"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    backend = open_workspace().backend
    try:
        # Armed now (as the loop's first pass would), so the next version is new to it.
        backend.arm_automation("retrain", int(time.time() * 1000))
        data.add(_world.table(400, 3), name="customers")
        _wait_for(lambda: [e.state for e in backend.list_automation_events()] == [S.PROMOTED])
    finally:
        loop.send_signal(signal.SIGTERM)
        out, err = loop.communicate(timeout=60)
    assert loop.returncode == 0, err
    assert "promoted retrain" in out and out.rstrip().endswith("Stopped.")


def test_a_gate_that_cannot_run_fails_the_event_once(home: Path) -> None:
    _seed(home)
    policy = _world.policy(home.parent, _world.BASIC.replace("target: label", "target: nope"))
    automator = Automator(load_policy(policy))
    automator.tick()
    data.add(_world.table(400, 3), name="customers")
    automator.tick()
    backend = open_workspace().backend
    (event,) = backend.list_automation_events()
    assert event.state is S.FAILED
    assert event.reason.startswith("the gate could not run:") and "nope" in event.reason
    automator.tick()  # recorded once: the next pass does not try the gate again
    assert [h.state for h in backend.automation_log(event.event_id)] == [
        S.WAITING,
        S.TRAINING,
        S.GATING,
        S.FAILED,
    ]
