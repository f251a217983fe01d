"""The model registry's pages: models, a model's versions, a version with its review (the
four-eyes rule enforced by the server), validation gates, model card and lineage graph."""

from __future__ import annotations

import html
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import Pages, csrf_of

pytestmark = pytest.mark.integration
STORE_KINDS = ("sqlite",)  # pages; the queries behind them run on PostgreSQL in tests/store

FEATURES = ["x1", "x2"]


@dataclass
class World:
    """What the tests registered: ``churn@1`` by mia from her run, review requested."""

    home: Path
    run_id: str
    accuracy: float
    monkeypatch: pytest.MonkeyPatch

    def backend(self) -> Any:
        from shipyard.tracking import open_workspace

        return open_workspace(self.home).backend

    def register(self, user: str, *, request_review: bool = True) -> Any:
        """The next version of ``churn``, trained and registered by ``user`` from a real run."""
        import shipyard
        from shipyard import models
        from shipyard.registry import Registry

        self.monkeypatch.setenv("SHIPYARD_USER", user)
        try:
            table = _table(80, seed=7)
            with shipyard.start_run(experiment="churn", name=f"by-{user}", log_code=False) as run:
                run.use_dataset("customers", 1)
                model = _fit(table)
                version = models.log_model(run, model, "churn", input_example=table[FEATURES])
            if request_review:
                Registry(self.backend(), user).request_review(version.ref, "please review")
        finally:
            self.monkeypatch.setenv("SHIPYARD_USER", "alice")
        return version


def _table(rows: int, seed: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    noise = rng.normal(scale=0.5, size=rows)
    return pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "group": rng.choice(["a", "b"], rows),
            "target": (x1 + 0.5 * x2 + noise > 0).astype(int),
        }
    )


def _fit(table: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(table[FEATURES], table["target"])


def make_world(home: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """mia adds ``customers@1``, trains on it in a run and registers ``churn@1`` from that
    run (a real scikit-learn model file), then asks for a review; alice governs ``churn``."""
    import shipyard
    from shipyard import data, models
    from shipyard.registry import Registry
    from shipyard.tracking import open_workspace

    monkeypatch.setenv("SHIPYARD_USER", "mia")
    table = _table(200, seed=1)
    data.add(table, "customers")
    with shipyard.start_run(experiment="churn", name="train-lr", log_code=False) as run:
        run.use_dataset("customers", 1)
        model = _fit(table)
        accuracy = float(model.score(table[FEATURES], table["target"]))
        run.log_metric("accuracy", accuracy)
        version = models.log_model(run, model, "churn", input_example=table[FEATURES].head())
    assert (version.ref, version.created_by) == ("churn@1", "mia")
    Registry(open_workspace(home).backend, "mia").request_review("churn@1", "first churn model")
    monkeypatch.setenv("SHIPYARD_USER", "alice")
    Registry(open_workspace(home).backend, "alice").set_governed("churn")
    return World(home, run.run_id, accuracy, monkeypatch)


@pytest.fixture
def world(users: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return make_world(users, monkeypatch)


def _review(client: Pages, path: str, decision: str, comment: str = "") -> Any:
    token = csrf_of(client.get(path).text)
    return client.post(f"{path}/review", {"decision": decision, "comment": comment, "csrf": token})


def _state(page: str) -> str:
    found = re.search(r'id="review-state">([^<]+)<', page)
    assert found, "the page shows no review state"
    return found.group(1)


# ------------------------------------------------------------------------------- lists


def clients(home: Path, *names: str) -> dict[str, Pages]:
    """A logged-in client of one app for each of ``names``."""
    from shipyard.server import create_app

    app = create_app(home, auth=True)
    found = {}
    for name in names:
        found[name] = Pages(app)
        assert found[name].login(name).status_code == 303
    return found


def text(answer: Any) -> str:
    return html.unescape(answer.text)


def test_models_versions_and_a_version_with_its_gate_card_and_lineage(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.registry import Registry
    from shipyard.server.ui import models as pages

    second = world.register("otto", request_review=False)
    backend = world.backend()
    Registry(backend, "alice").set_alias("churn@2", "challenger")
    Registry(backend, "alice").tag("churn", "team", "retention")
    backend.create_registered_model("fraud", actor="alice", description="card fraud")
    vic, ada = clients(world.home, "vic", "ada").values()

    listing = vic.get("/models")
    assert listing.status_code == 200
    rows = re.findall(r"<tr>(.*?)</tr>", listing.text, re.S)
    churn = next(r for r in rows if 'href="/models/churn"' in r)
    assert "governed" in churn and "churn v2" in churn and "challenger → v2" in churn
    assert "not reviewed" in churn  # the latest version's review
    fraud = next(r for r in rows if 'href="/models/fraud"' in r)
    assert "no versions" in fraud and "card fraud" in fraud and "governed" not in fraud
    assert 'href="/models/fraud"' not in vic.get("/models?q=chu").text

    def shown(page: str) -> list[str]:
        return re.findall(
            r'href="/models/churn/(\d+)">churn v\d+</a></td>', page.split('id="aliases"')[0]
        )

    page = vic.get("/models/churn")
    assert page.status_code == 200
    assert shown(page.text) == ["2", "1"]
    assert "pending review" in page.text and "not reviewed" in page.text
    assert f'href="/runs/{world.run_id}"' in page.text and f"/runs/{second.run_id}" in page.text
    assert "otto" in page.text and "sklearn" in page.text
    assert "retention" in page.text and "challenger" in page.text

    monkeypatch.setattr(pages, "PER_PAGE", 1)
    first = vic.get("/models/churn")
    assert shown(first.text) == ["2"]
    assert 'rel="next" href="/models/churn?page=2"' in first.text
    older = vic.get("/models/churn?page=2")
    assert shown(older.text) == ["1"] and 'rel="next"' not in older.text
    assert 'rel="next" href="/models?page=2"' in vic.get("/models").text

    # an alias in the address leads to its version
    assert vic.get("/models/churn/challenger").headers["location"] == "/models/churn/2"
    assert vic.get("/models/churn/latest").headers["location"] == "/models/churn/2"

    for path in (
        "/models/nope",
        "/models/churn/9",
        "/models/churn/0",
        "/models/churn/champion",
        "/models/nope/1",
        "/models/bad%20name",
        "/models/churn/1/card.pdf",
        "/models/churn/1/validation/ffff/report.json",
    ):
        answer = vic.get(path)
        assert answer.status_code == 404, path
        assert "Not found" in answer.text and "Traceback" not in answer.text
    token = csrf_of(ada.get("/models").text)
    missing = ada.post("/models/churn/9/review", {"decision": "approve", "csrf": token})
    assert missing.status_code == 404

    check_validation_card_and_lineage(world, vic)


# ------------------------------------------------------------------------------ review


def test_only_an_approver_who_is_not_the_author_may_approve_or_reject(world: World) -> None:
    path = "/models/churn/1"
    vic, mia, ada, otto = clients(world.home, "vic", "mia", "ada", "otto").values()
    page = vic.get(path)
    assert page.status_code == 200 and _state(page.text) == "pending review"
    assert "Approve</button>" not in page.text and "Reject</button>" not in page.text
    assert "Request review</button>" not in page.text
    refused = _review(vic, path, "approve")
    assert refused.status_code == 403 and "'vic' is a viewer" in text(refused)

    # the author: no buttons, and refused for the four-eyes rule
    assert "Approve</button>" not in mia.get(path).text
    refused = _review(mia, path, "approve", "looks good to me")
    assert refused.status_code == 403
    assert "four-eyes rule" in text(refused)
    assert "'mia' registered or trained churn@1" in text(refused)
    assert _state(refused.text) == "pending review"

    # forged posts: no token, a wrong one, another site
    page = ada.get(path)
    assert "Approve</button>" in page.text and "Reject</button>" in page.text
    forged = ada.post(f"{path}/review", {"decision": "approve", "csrf": "0" * 64})
    assert forged.status_code == 403 and "CSRF" in forged.text
    assert ada.post(f"{path}/review", {"decision": "approve"}).status_code == 403
    elsewhere = ada.post(
        f"{path}/review",
        {"decision": "approve", "csrf": csrf_of(page.text)},
        headers={"origin": "https://evil.example"},
    )
    assert elsewhere.status_code == 403
    assert world.backend().get_model_version("churn", 1).review.value == "requested"

    done = _review(ada, path, "approve", "metrics and data look right")
    assert done.status_code == 303 and done.headers["location"] == "/models/churn/1?done=approve"
    shown = ada.get(done.headers["location"]).text
    assert _state(shown) == "approved"
    assert "Approved by <strong>ada</strong>" in shown and "metrics and data look right" in shown
    assert "You approved this version." in shown and "Approve</button>" not in shown
    assert world.backend().get_model_version("churn", 1).review.value == "approved"
    history = vic.get(path).text
    assert _state(history) == "approved" and "first churn model" in history

    # rejecting takes a reason
    world.register("mia")
    path = "/models/churn/2"
    silent = _review(ada, path, "reject")
    assert silent.status_code == 400 and "say why" in text(silent)
    assert _state(silent.text) == "pending review"
    done = _review(ada, path, "reject", "trained on last year's prices")
    assert done.status_code == 303
    shown = text(ada.get(done.headers["location"]))
    assert _state(shown) == "rejected" and "Rejected by <strong>ada</strong>" in shown
    assert "trained on last year's prices" in shown
    assert _review(ada, path, "nonsense").status_code == 400

    # a member may ask again, a viewer may not
    assert _review(vic, path, "request").status_code == 403
    assert "Request review</button>" in mia.get(path).text
    assert _review(mia, path, "request", "retrained on this year's prices").status_code == 303
    assert world.backend().get_model_version("churn", 2).review.value == "requested"

    # otto is an approver, but he trained and registered churn@3: the registry says no
    world.register("otto")
    own = otto.get("/models/churn/3").text
    assert "Approve</button>" in own and "You registered or trained this version" in own
    refused = _review(otto, "/models/churn/3", "approve")
    assert refused.status_code == 403
    assert "'otto' registered churn@3 and so may not approve it" in text(refused)
    assert "four-eyes rule" in text(refused)
    assert world.backend().get_model_version("churn", 3).review.value == "requested"


# ---------------------------------------------------------------- validation, card, lineage


def _gate(world: World) -> dict[str, Any]:
    """The real gate of an automation: ``churn@1`` validated on unseen ``holdout@1``."""
    from shipyard import data
    from shipyard.automation.gate import run_gate
    from shipyard.automation.policy import Gate
    from shipyard.entities import AutomationEvent, AutomationState
    from shipyard.tracking import open_workspace

    data.add(_table(120, seed=2), "holdout")
    policy = world.home.parent / "gate.yaml"
    policy.write_text(
        "min: {accuracy: 0.99}\nmax_fairness_gap: {demographic_parity_difference: 1}\n"
    )
    gate = Gate(data="holdout@1", policy=policy, sensitive=("group",), slices=("group",))
    event_id = "7e" * 16
    outcome = run_gate(
        open_workspace(world.home), gate, "churn@1", model="churn", event_id=event_id
    )
    event = AutomationEvent(
        event_id,
        "nightly",
        "daily",
        "schedule",
        "cron",
        int(time.time() * 1000),
        state=AutomationState.REJECTED,
        model="churn",
        candidate="churn@1",
        gate=outcome.summary,
    )
    world.backend().add_automation_event(event, actor="alice")
    return outcome.summary


def check_validation_card_and_lineage(world: World, vic: Pages) -> None:
    """``churn@1``'s page after a real gate, an approval and a deployment."""
    from shipyard.deploy.service import Deployments
    from shipyard.registry import Registry

    summary = _gate(world)
    Registry(world.backend(), "ada").approve("churn@1", "ok")
    Deployments(world.backend(), "alice").create("churn-prod", "churn@1")
    page = vic.get("/models/churn/1")
    assert page.status_code == 200
    body = page.text

    # the gate: its verdict, metrics and failures as tables, its reports linked
    assert summary["passed"] is False and "failed</span>" in body
    assert any("accuracy" in f and "< min 0.990" in f for f in summary["failures"])
    for failure in summary["failures"]:
        assert failure.replace("<", "&lt;") in body
    for key, value in summary["metrics"].items():
        assert f"{value:.6g}</td>" in body, key
    gap = summary["fairness"]["group"]["demographic_parity_difference"]
    assert f"{gap:.4g}</td>" in body
    assert "Metrics by group" in body and "Robustness" in body and "holdout@1 (120 rows)" in body
    base = "/models/churn/1/validation/" + "7e" * 16
    report = vic.get(f"{base}/report.json")
    assert report.status_code == 200 and json.loads(report.text)["metrics"]["accuracy"] == (
        pytest.approx(summary["metrics"]["accuracy"])
    )
    full = vic.get(f"{base}/report.html")
    assert full.status_code == 200 and "Validation of churn@1" in full.text
    assert full.headers["content-security-policy"].startswith("sandbox")
    assert f'href="{base}/report.html"' in body

    # the card, from the registry, the run and the model's own files
    assert "sklearn.linear_model._logistic.LogisticRegression" in body
    assert f"{world.accuracy:.4g}" in body and "customers@1" in body
    card = vic.get("/models/churn/1/card.md")
    assert card.status_code == 200 and card.text.startswith("# Model card: churn@1")
    assert "| x1 | float64 |" in card.text
    assert (
        vic.get("/models/churn/1/card.html")
        .headers["content-security-policy"]
        .startswith("sandbox")
    )

    # the lineage: dataset -> run -> version -> deployment, each box a link to its page
    svg = re.search(r'<svg class="chart".*?</svg>', body, re.S)
    assert svg, "no lineage graph"
    keys = re.findall(r'<g class="node [^"]*" data-key="([^"]+)"', svg.group(0))
    assert {"dataset:customers@1", f"run:{world.run_id}", "model:churn@1"} <= set(keys)
    assert "deployment:churn-prod" in keys and "trigger:" + "7e" * 16 in keys
    links = re.findall(r'<a href="([^"]+)"><g class="node', svg.group(0))
    assert {
        "/datasets/customers/1",
        f"/runs/{world.run_id}",
        "/models/churn/1",
        "/deployments/churn-prod",
    } <= set(links)
    arrows = re.findall(r'<path class="edge"', svg.group(0))
    assert len(arrows) >= 4
    assert "deployed to" in body and "churn-prod" in body
    assert "Approved by <strong>ada</strong>" in body


# ------------------------------------------------------------------------- the browser


def test_in_a_browser_an_approver_approves_and_an_author_is_refused(
    sqlite_users: Path, live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(sqlite_users, monkeypatch)
    world.register("otto")
    page = live.page

    live.login("ada")
    live.goto("/models")
    assert live.axe() == []
    live.page.get_by_role("link", name="churn", exact=True).click()
    page.wait_for_load_state("networkidle")
    assert page.locator("table tbody tr").count() >= 2
    assert live.axe() == []
    live.goto("/models/churn/1")
    assert page.locator("#review-state").inner_text() == "pending review"
    nodes = page.locator("#lineage ~ figure svg.chart g.node")
    assert nodes.count() >= 3
    assert page.locator('svg.chart g.node[data-key="dataset:customers@1"]').count() == 1
    assert live.axe() == []
    page.get_by_label("Comment (required to reject)").fill("checked the data and the metrics")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("/models/churn/1?done=approve")
    assert page.locator("#review-state").inner_text() == "approved"
    assert "checked the data and the metrics" in page.content()
    live.shot("approved")
    live.logout()

    live.login("otto")  # an approver, but the author of churn@2: the server refuses
    live.goto("/models/churn/2")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_load_state("networkidle")
    refusal = page.get_by_role("alert").inner_text()
    assert "four-eyes rule" in refusal and "'otto' registered churn@2" in refusal
    assert page.locator("#review-state").inner_text() == "pending review"
    live.shot("four-eyes-refusal")
    assert live.axe() == []
