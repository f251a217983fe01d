"""`make demo` runs `shipyard demo`: the whole loop, from a clean workspace, checked from the
store (not from the printed story). The quick start script stays working too."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests._cli import run_shipyard

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    env["TMPDIR"] = str(tmp_path)
    return env


def test_the_demo_closes_the_whole_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "demo"
    env = _clean_env(tmp_path)
    result = subprocess.run(
        [
            *(sys.executable, "-c", "from shipyard.cli import main; main()", "demo"),
            *("--workspace", str(project), "--json"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout[result.stdout.rindex('{\n  "project"') :])
    home = Path(summary["home"])
    assert home == project / ".shipyard"

    from shipyard.entities import AlertState, AutomationState, ReviewState
    from shipyard.store.sql import SqlBackend

    backend = SqlBackend(f"sqlite:///{home / 'shipyard.db'}")
    try:
        # data: the first customers, then the drifted quarter
        assert [v.version for v in backend.list_dataset_versions("customers")] == [1, 2]
        # training: two pipeline runs (by alice, then by the automation), each with a study
        runs = backend.list_pipeline_runs(limit=10)
        assert sorted(r.user for r in runs) == ["alice", "automation"]
        assert all(r.status.value == "FINISHED" for r in runs)
        assert backend.read_tuning_logs(), "no tuning study was recorded"
        # registry: both versions approved by bob, the second is champion
        versions = {v.version: v for v in backend.list_model_versions("churn")}
        assert versions[1].created_by == "alice" and versions[2].created_by == "automation"
        assert all(v.review is ReviewState.APPROVED for v in versions.values())
        approvals = [e for e in backend.list_audit(limit=500) if e.action == "review.approved"]
        assert {e.actor for e in approvals} == {"bob"}
        assert backend.resolve_model_alias("churn", "champion") == 2
        assert backend.get_registered_model("churn").governed
        # monitoring: the drift alert fired
        fired = backend.list_alert_events(model="churn", state=AlertState.FIRING)
        assert any(e.rule == "drift" for e in fired)
        # automation: one event, from the alert, promoted through the canary
        (event,) = backend.list_automation_events()
        assert event.kind == "alert" and event.state is AutomationState.PROMOTED
        assert event.candidate == "churn@2" and event.gate["passed"] is True
        assert event.gate["comparison"]["verdict"] == "better"
        assert event.approval["actor"] == "bob"
        actions = [e.action for e in backend.list_deployment_events("churn-prod")]
        assert actions[-1] == "promote" and "canary.start" in actions
        # traffic and feedback reached the logs
        assert list((home / "predictions").glob("model=churn/*/*.parquet"))
        assert list((home / "feedback").glob("*/*.parquet"))
    finally:
        backend.close()
    # the reports it names exist
    for name in ("validation", "model_card", "monitoring", "gate"):
        assert Path(summary["reports"][name]).is_file(), name
    # the server was stopped: nothing listens on its port any more
    port = int(summary["url"].rsplit(":", 1)[1])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    # the workspace is there to explore with the ordinary commands
    why = run_shipyard("models", "why", "churn@champion", cwd=project, env=env)
    assert why.returncode == 0, why.stderr
    assert event.event_id[:12] in why.stdout
    assert summary["timings"]["total"] < 180
    _crawl_the_ui(home, monkeypatch)


SECTIONS = (
    "/experiments",
    "/datasets",
    "/models",
    "/deployments",
    "/monitoring",
    "/pipelines",
    "/studies",
    "/audit",
    "/users",
    "/tokens",
)


def _crawl_the_ui(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every page the UI links to, over the demo's workspace (real data of every kind), as an
    admin: each answers 200 with a whole page, never a 5xx or a traceback; then as a viewer
    on a server with authentication: no form posts anything but logging out."""
    from shipyard.entities import Role
    from shipyard.registry.passwords import set_password
    from shipyard.server import create_app
    from shipyard.tracking import open_workspace
    from tests.ui.conftest import PASSWORD, Pages, csrf_of

    for name in [k for k in os.environ if k.startswith("SHIPYARD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.setenv("SHIPYARD_USER", "alice")  # the demo's first admin
    admin = Pages(create_app(home))
    seen: dict[str, int] = {}
    queue = list(SECTIONS)
    while queue and len(seen) < 400:
        path = queue.pop(0)
        if path in seen:
            continue
        page = admin.get(path)
        seen[path] = page.status_code
        if page.status_code == 303:  # `/`, an alias of a model version
            queue.append(page.headers["location"])
            continue
        assert page.status_code == 200, (path, page.status_code, page.text[:2000])
        assert "Traceback" not in page.text
        if not page.headers["content-type"].startswith("text/html"):
            continue
        for link in re.findall(r'href="(/[^"#]*)"', page.text):
            link = link.replace("&amp;", "&")
            if link.startswith(("/static/", "/api/")) or "/raw/" in link or link in seen:
                continue
            queue.append(link)
    for section in SECTIONS:
        assert seen.get(section) == 200, section
    assert len(seen) > 40, sorted(seen)

    backend = open_workspace(home).backend
    backend.set_user("vera", Role.VIEWER, actor="alice")
    set_password(backend, "alice", "vera", PASSWORD)
    viewer = Pages(create_app(home, auth=True))
    login = viewer.post(
        "/login", {"user": "vera", "password": PASSWORD, "csrf": csrf_of(viewer.get("/login").text)}
    )
    assert login.status_code == 303
    readable = [
        p for p, status in seen.items() if status == 200 and not p.startswith(("/audit", "/users"))
    ]
    for path in readable[:150]:
        page = viewer.get(path)
        assert page.status_code == 200, (path, page.status_code)
        actions = re.findall(r'<form[^>]*method="post"[^>]*action="([^"]*)"', page.text)
        actions += re.findall(r'<form[^>]*action="([^"]*)"[^>]*method="post"', page.text)
        # a viewer may only log out and revoke their own tokens
        assert all(a == "/logout" or a.startswith("/tokens") for a in actions), (path, actions)
    assert viewer.get("/audit").status_code == 403


def test_the_demo_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    result = run_shipyard("demo", "--workspace", str(tmp_path / "busy"), env=_clean_env(tmp_path))
    assert result.returncode == 2
    assert "not empty" in result.stderr
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_quickstart_runs_and_leaves_a_searchable_workspace(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
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
