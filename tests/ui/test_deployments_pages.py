"""The deployment pages: every deployment, and one deployment's weights, canary analysis, A/B
results with intervals, shadow agreement and history — on data made by the project's own
deployment services (the rollout controller, the route counters of a model server and its
prediction log), on SQLite and PostgreSQL, and once in a real browser."""

from __future__ import annotations

import random
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.deploy.ab import AbSpec
from shipyard.deploy.analysis import CanarySpec
from shipyard.deploy.controller import Controller
from shipyard.deploy.service import Deployments
from shipyard.deploy.stats import RouteCounter
from shipyard.entities import Deployment
from shipyard.registry import Registry
from shipyard.server.ui.format import number, percent
from shipyard.serving.predlog import PredictionLog
from tests.ui.conftest import Live, Pages, logged_in

pytestmark = pytest.mark.integration
STORE_KINDS = ("sqlite",)  # pages; the queries behind them run on PostgreSQL in tests/store


@dataclass
class Made:
    canary: Deployment
    """The canary as the controller left it: advanced to its second step, looked at once."""
    advanced_numbers: dict[str, Any]
    ab_counts: dict[str, tuple[int, int]]
    """Per variant: labelled rows and how many were right."""
    agreement: tuple[int, int]


def _record(
    counter: RouteCounter,
    route: str,
    version: int,
    n: int,
    *,
    failures: int = 0,
    latency: float = 10.0,
    rng: random.Random,
) -> None:
    """``n`` requests answered by ``route`` as a model server counts them."""
    for i in range(n):
        ok = i >= failures
        counter.record(
            route,
            "churn",
            version,
            ok=ok,
            latency_ms=latency + rng.random() * 4,
            predictions=np.asarray([rng.random() < 0.4], dtype=np.int64) if ok else None,
        )


def make_deployments(home: Path) -> Made:
    """A canary (advanced once by the controller, then looked at again), an A/B test with a
    labelled prediction log, and a deployment with a shadow route — through the services."""
    from shipyard.tracking import open_workspace

    backend = open_workspace(home).backend
    registry = Registry(backend, "mia")
    for n in (1, 2, 3):
        registry.register("churn", digest=f"{n:02d}" * 32, flavor="sklearn")
    deploy = Deployments(backend, "mia", home=home)
    rng = random.Random(7)  # noqa: S311 - test data, not secrets

    # A canary: stable's history fixes the latency threshold; the controller advances step 1.
    deploy.create("churn-canary", "churn@1", reason="first release")
    counter = RouteCounter("churn-canary")
    _record(counter, "stable", 1, 300, rng=rng)
    backend.record_route_stats("server-1", counter.snapshot())
    started = deploy.canary(
        "churn-canary",
        "churn@2",
        CanarySpec(steps=(10, 50), interval_s=1, min_requests=50),
        reason="try v2 on a tenth",
    )
    _record(counter, "baseline", 1, 200, failures=2, rng=rng)
    _record(counter, "canary", 2, 200, failures=3, latency=11.0, rng=rng)
    backend.record_route_stats("server-1", counter.snapshot())
    controller = Controller(backend, names=["churn-canary"])
    first = controller.look("churn-canary", now_ms=int(started.analysis["step_started"]) + 2000)
    assert first is not None and first.action == "advance", first
    step_two = deploy.get("churn-canary")
    _record(counter, "baseline", 1, 120, failures=1, rng=rng)
    _record(counter, "canary", 2, 130, failures=4, latency=12.0, rng=rng)
    backend.record_route_stats("server-1", counter.snapshot())
    wait = controller.look("churn-canary", now_ms=int(step_two.analysis["step_started"]) + 100)
    assert wait is not None and wait.action == "wait", wait

    # An A/B test whose answers were logged (with their route) and labelled.
    deploy.create("churn-ab", "churn@1")
    deploy.ab("churn-ab", [("a", "churn@1", 50), ("b", "churn@2", 50)], AbSpec(min_samples=50))
    ab_counter = RouteCounter("churn-ab")
    log = PredictionLog(home, flush_seconds=60)
    counts = {"a": (120, 100), "b": (120, 70)}
    now = time.time()
    for variant, (labelled, right) in counts.items():
        version = 1 if variant == "a" else 2
        _record(ab_counter, variant, version, labelled, rng=rng)
        for i in range(labelled):
            request_id = uuid.uuid4().hex
            log.log_prediction(
                request_id=request_id,
                timestamp=now + i * 0.001,
                model="churn",
                version=str(version),
                protocol="v2",
                inputs=pd.DataFrame({"score": [rng.random()]}),
                prediction=np.asarray([1]),
                latency_ms=3.0,
                route=("churn-ab", variant, "live"),
            )
            log.log_feedback(request_id=request_id, label=1 if i < right else 0)
    log.close()
    backend.record_route_stats("server-2", ab_counter.snapshot())

    # A shadow that agrees with the live route on 180 of 200 rows.
    deploy.create("churn-shadow", "churn@1")
    deploy.shadow("churn-shadow", "churn@3", 50, reason="listen to v3")
    shadow_counter = RouteCounter("churn-shadow")
    _record(shadow_counter, "stable", 1, 200, rng=rng)
    shadow_counter.record_shadow("shadow", "churn", 3, agreed=180, compared=200, diff=20.0)
    backend.record_route_stats("server-3", shadow_counter.snapshot())
    return Made(deploy.get("churn-canary"), first.numbers, counts, (180, 200))


def _polyline_points(svg: str) -> list[int]:
    return [int(n) for n in re.findall(r'<polyline[^>]*data-points="(\d+)"', svg)]


def test_every_deployment_and_each_kind_of_rollout_on_its_page(users: Path) -> None:
    """A viewer reads the list, a canary's analysis, an A/B test's intervals and a shadow's
    agreement (one workspace for all four: filling it is the slow part)."""
    made = make_deployments(users)
    vic = logged_in(users, "vic")
    _check_the_list(vic)
    _check_the_canary(vic, made)
    _check_the_ab_test(vic, made)
    _check_the_shadow(vic, made)


def _check_the_list(vic: Pages) -> None:
    page = vic.get("/deployments")
    assert page.status_code == 200
    text = page.text
    for name in ("churn-canary", "churn-ab", "churn-shadow"):
        assert f'href="/deployments/{name}"' in text
    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(r'<tr>\s*<td><a href="/deployments/([\w-]+)">.*?</tr>', text, re.S)
    }
    assert "canary" in rows["churn-canary"] and "progressing" in rows["churn-canary"]
    assert "stable v1 0 %" in rows["churn-canary"]  # at 50 %: no stable traffic left
    assert "baseline v1 50 %" in rows["churn-canary"] and "canary v2 50 %" in rows["churn-canary"]
    assert "A/B" in rows["churn-ab"] and "a v1 50 %" in rows["churn-ab"]
    assert ">shadow<" in rows["churn-shadow"] and "shadow v3 (mirrors 50 %)" in rows["churn-shadow"]
    assert "<form" not in text.split("<main", 1)[1].split("</main>")[0]  # nothing to change


def _check_the_canary(vic: Pages, made: Made) -> None:
    page = vic.get("/deployments/churn-canary")
    assert page.status_code == 200
    text = page.text
    analysis = made.canary.analysis
    # the current step, with the route weights as a bar chart in % of traffic
    assert "Canary in progress" in text
    assert re.search(r"Step 2: 50 % of traffic to the canary — <span[^>]*>current", text)
    assert re.search(r"Step 1: 10 % of traffic to the canary — <span[^>]*>done", text)
    bars = re.findall(r'<rect class="bar"[^>]*height="([\d.]+)"', text)
    assert len(bars) >= 3 and "% of traffic" in text
    # weights over time: a step line per route from the events
    points = _polyline_points(text)
    assert points and max(points) >= 4
    # the numbers the analysis used at the last look, and the e-value threshold
    errors = analysis["rules"]["errors"]
    assert errors["canary_errors"] == 4 and errors["baseline_errors"] == 1
    assert number(errors["e_value"]) in text
    assert number(1 / CanarySpec().rule_alpha) in text  # 1 / (0.05 / 3 rules) = 60
    assert f"canary rate = {percent(errors['canary_rate'], 2)}" in text
    latency = analysis["rules"]["latency"]
    assert number(latency["threshold_ms"]) in text and number(latency["e_value"]) in text
    assert text.count(">holds<") >= 2
    # this step's counts: the route counts less those when the step began
    assert re.search(r"<td>canary</td><td class=\"n\">130</td><td class=\"n\">4</td>", text)
    # the step the controller ended, with the numbers it decided on
    advanced = made.advanced_numbers
    assert advanced["canary_requests"] == 200
    ended = text.split("Steps the controller ended", 1)[1].split("</table>", 1)[0]
    row = re.search(r"<td>canary\.advance</td>.*?</tr>", ended, re.S)
    assert row is not None and ">200<" in row.group(0)
    assert number(advanced["rules"]["errors"]["e_value"]) in row.group(0)
    # history: newest first, with who and why
    history = text.split('id="history"', 1)[1]
    actions = re.findall(r"<td>(create|canary\.start|canary\.advance)</td>", history)
    assert actions == ["canary.advance", "canary.start", "create"]
    assert "shipyard-controller" in history and "try v2 on a tenth" in history
    assert "mia" in history


def _check_the_ab_test(vic: Pages, made: Made) -> None:
    text = vic.get("/deployments/churn-ab").text
    from shipyard.deploy.ab import _wilson

    for variant, (labelled, right) in made.ab_counts.items():
        low, high = _wilson(right, labelled)  # type: ignore[misc]
        assert number(right / labelled) in text
        assert f"{number(low)} \u2013 {number(high)}" in text
        bar = re.search(rf'<g class="error-bar" data-variant="{variant}"[^>]*>(.*?)</g>', text)
        assert bar is not None and bar.group(1).count("<line") == 3
        assert re.search(rf'<circle class="point" data-variant="{variant}"', text)
    assert "a wins" in text and '<span class="tag">winner</span>' in text


def _check_the_shadow(vic: Pages, made: Made) -> None:
    text = vic.get("/deployments/churn-shadow").text
    agreed, compared = made.agreement
    assert percent(agreed / compared) in text and "90.0 %" in text
    assert re.search(r'<rect class="bar"[^>]*><title>shadow v3 agree: 90</title>', text)
    assert "listen to v3" in text


def test_history_pages_missing_deployments_and_logged_out(users: Path) -> None:
    from shipyard.tracking import open_workspace

    backend = open_workspace(users).backend
    Registry(backend, "mia").register("churn", digest="01" * 32, flavor="sklearn")
    Registry(backend, "mia").register("churn", digest="02" * 32, flavor="sklearn")
    deploy = Deployments(backend, "mia")
    deploy.create("busy", "churn@1")
    for i in range(30):  # 61 events: two pages of history
        deploy.shadow("busy", "churn@2", 10 + i, reason=f"mirror round {i}")
        deploy.stop_shadow("busy")
    vic = logged_in(users, "vic")
    first = vic.get("/deployments/busy").text
    assert "stopped mirroring" in first and "Older changes" in first
    assert "mirror round 29" in first and "mirror round 4<" not in first
    second = vic.get("/deployments/busy?page=2").text
    assert "mirror round 4<" in second and "Newer changes" in second
    assert "Older changes" not in second
    missing = vic.get("/deployments/nope")
    assert missing.status_code == 404 and "no deployment named" in missing.text
    assert vic.get("/deployments/bad%20name").status_code == 404
    assert vic.get("/deployments/busy?page=0").status_code in (400, 422)
    from shipyard.server import create_app

    stranger = Pages(create_app(users, auth=True))
    for path in ("/deployments", "/deployments/busy"):
        answer = stranger.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def test_deployment_pages_in_a_browser(sqlite_users: Path, live: Live) -> None:
    make_deployments(sqlite_users)
    live.login("vic")
    live.goto("/deployments")
    assert live.axe() == []
    live.shot("deployments")
    live.page.get_by_role("link", name="churn-canary").click()
    live.page.wait_for_load_state("networkidle")
    assert live.page.url.endswith("/deployments/churn-canary")
    bars = live.page.locator("svg.chart rect.bar")
    assert bars.count() >= 3
    line = live.page.locator("svg.chart polyline").first.get_attribute("points") or ""
    assert len(line.split()) >= 4
    analysis = live.page.locator("#canary ~ table").first
    assert analysis.count() == 1
    assert live.page.get_by_text("e-value threshold").count() == 1
    live.shot("canary")
    assert live.axe() == []
    live.goto("/deployments/churn-ab")
    assert live.page.locator("svg.chart g.error-bar").count() == 2
    live.shot("ab")
    assert live.axe() == []
