"""The pipeline and tuning pages: pipeline runs, a run's graph of steps with each step's
status (ran, reused from the cache, failed, skipped), a step's logs; tuning studies with their
optimisation history, parameter importances and trials. The data is made by the project's own
pipeline runner and tuner."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.pipelines._files import run, write
from tests.ui.conftest import Live, logged_in

pytestmark = pytest.mark.integration
STORE_KINDS = ("sqlite",)  # pages; the queries behind them run on PostgreSQL in tests/store

DIAMOND = """
import shipyard

@shipyard.step
def load(n: int) -> list[int]:
    return list(range(n))

@shipyard.step
def double(xs: list[int]) -> list[int]:
    return [2 * x for x in xs]

@shipyard.step
def square(xs: list[int]) -> list[int]:
    return [x * x for x in xs]

@shipyard.step
def combine(a: list[int], b: list[int]) -> int:
    print("combining", len(a), "values")
    return sum(a) + sum(b)

@shipyard.pipeline
def diamond(n: int = 5):
    xs = load(n)
    return combine(double(xs), square(xs))
"""

FLAKY = """
import shipyard

@shipyard.step
def first() -> int:
    return 1

@shipyard.step
def second(x: int) -> int:
    print("second is about to fail")
    raise ValueError("bad input row 7")

@shipyard.step
def third(x: int) -> int:
    return x + 1

@shipyard.pipeline
def flaky():
    return third(second(first()))
"""


@dataclass
class Made:
    fresh: str
    """The first diamond run: every step ran."""
    again: str
    """The second: every step reused from the cache."""
    failed: str


def make_pipeline_runs(folder: Path) -> Made:
    from shipyard.pipelines import PipelineFailedError

    diamond = write(folder, DIAMOND, "diamond.py")
    fresh = run(diamond, "diamond").run_id
    again = run(diamond, "diamond").run_id
    with pytest.raises(PipelineFailedError):
        run(write(folder, FLAKY, "flaky.py"), "flaky")
    import shipyard

    (failed,) = shipyard.open_workspace().backend.list_pipeline_runs("flaky")
    return Made(fresh, again, failed.run_id)


def make_study() -> Any:
    from shipyard.tuning import tune
    from tests.tuning import _objectives

    return tune(
        _objectives.quadratic,
        _objectives.SPACE,
        n_trials=10,
        study="quad",
        experiment="tuning",
        seed=0,
    )


def nodes(html: str) -> dict[str, str]:
    """Each graph node's key and its classes."""
    found = re.findall(r'<g class="node ([^"]*)" data-key="([^"]+)"', html)
    return {key: classes for classes, key in found}


def test_pipeline_runs_their_graphs_and_steps(
    users: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.server.ui import pipelines

    made = make_pipeline_runs(tmp_path)
    vic = logged_in(users, "vic")

    listing = vic.get("/pipelines")
    assert listing.status_code == 200
    rows = re.findall(r"<tr>\s*<td><a href=\"/pipelines\?pipeline=(\w+)\"", listing.text)
    assert rows == ["flaky", "diamond", "diamond"]  # newest first
    assert listing.text.index(made.again[:8]) < listing.text.index(made.fresh[:8])
    cells = re.findall(r'<td class="n">(\d+)</td>', listing.text)
    # steps, ran, cached, failed of each run, newest first
    assert cells == ["3", "1", "0", "1", "4", "0", "4", "0", "4", "4", "0", "0"]
    only = vic.get("/pipelines?pipeline=flaky").text
    assert made.failed[:8] in only and made.fresh[:8] not in only

    fresh = vic.get(f"/pipelines/{made.fresh}")
    assert fresh.status_code == 200
    drawn = nodes(fresh.text)
    assert set(drawn) == {"load", "double", "square", "combine"}
    assert all(classes == "step succeeded" for classes in drawn.values())
    assert fresh.text.count('<path class="edge"') == 4
    assert "load \u2192 combine" not in fresh.text  # combine takes from double and square only
    assert re.search(r"<title>double \u2192 combine output \u2192 a</title>", fresh.text)
    assert "first run: no earlier run of &#39;diamond&#39;" in fresh.text

    again = vic.get(f"/pipelines/{made.again[:10]}")  # a prefix works
    assert all(classes == "step cached" for classes in nodes(again.text).values())
    assert len(nodes(again.text)) == 4
    hits = re.findall(r"<td>(yes|no)(?: <span|</td>)", again.text)
    assert hits == ["yes"] * 4
    assert "4 cached" in again.text

    failed = vic.get(f"/pipelines/{made.failed}").text
    assert nodes(failed) == {
        "first": "step succeeded",
        "second": "step failed",
        "third": "step skipped",
    }
    assert "ValueError: bad input row 7" in failed
    assert "The run failed" in failed
    assert re.findall(r"<td>(yes|no)(?: <span|</td>)", failed) == ["no", "no", "no"]

    step = vic.get(f"/pipelines/{made.failed}/steps/second")
    assert step.status_code == 200
    assert "second is about to fail" in step.text and "bad input row 7" in step.text
    combine = vic.get(f"/pipelines/{made.fresh}/steps/combine").text
    assert "combining 5 values" in combine

    for missing in (
        "/pipelines/ffffffffffffffffffffffffffffffff",
        "/pipelines/not-a-run",
        f"/pipelines/{made.fresh}/steps/nowhere",
    ):
        answer = vic.get(missing)
        assert answer.status_code == 404, missing
        assert "Not found" in answer.text

    # pages of runs, by start time
    monkeypatch.setattr(pipelines, "PER_PAGE", 2)
    first = vic.get("/pipelines").text
    assert made.failed[:8] in first and made.again[:8] in first and made.fresh[:8] not in first
    older = re.search(r'<a rel="next" href="([^"]+)"', first)
    assert older, "no link to the older runs"
    second = vic.get(older.group(1).replace("&amp;", "&")).text
    assert made.fresh[:8] in second and made.again[:8] not in second
    assert 'rel="next"' not in second


def test_a_study_page_draws_its_history_and_importances(
    users: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.server.ui import pipelines

    study = make_study()
    values = {t.number: t.value for t in study.trials}
    vic = logged_in(users, "vic")

    listing = vic.get("/studies")
    assert listing.status_code == 200
    assert '<a href="/studies/quad">quad</a>' in listing.text
    assert re.search(r'<td class="n">10</td><td class="n">10</td>', listing.text)

    page = vic.get("/studies/quad")
    assert page.status_code == 200
    lines = dict(
        re.findall(r'<polyline class="line" data-series="([^"]+)" data-points="(\d+)"', page.text)
    )
    assert lines == {"trial value": "10", "best so far": "10"}
    history = page.text[page.text.index("Optimisation history (") :]
    assert re.search(r'class="axis-label"[^>]*>objective</text>', history)
    assert re.search(r'class="axis-label"[^>]*>trial number</text>', history)
    bars = re.findall(r'<rect class="bar"[^>]*><title>(\w+) importance', page.text)
    assert sorted(bars) == ["k", "x"]
    assert sum(study.param_importances().values()) == pytest.approx(1.0)
    rows = re.findall(r'<tr(?: class="differs")?>\s*<td class="n">(\d+)', page.text)
    assert rows == [str(n) for n in range(10)]
    best = study.best_trial
    assert f"{best.number} <strong>(best)</strong>" in page.text
    assert f"{values[best.number]:.6g}" in page.text
    assert f'href="/runs/{best.run_id}"' in page.text

    monkeypatch.setattr(pipelines, "TRIALS_PER_PAGE", 4)
    third = vic.get("/studies/quad?page=3").text
    assert re.findall(r'<tr(?: class="differs")?>\s*<td class="n">(\d+)', third) == ["8", "9"]
    assert "Trials 9\u201310 of 10" in third and 'rel="next"' not in third
    assert vic.get("/studies/quad?page=4").status_code == 404

    assert vic.get("/studies/nothing-here").status_code == 404
    assert vic.get("/studies/bad%20name%3F").status_code == 404


def test_pipeline_and_study_pages_in_a_browser(
    sqlite_users: Path, tmp_path: Path, request: Any
) -> None:
    made = make_pipeline_runs(tmp_path)
    make_study()
    live: Live = request.getfixturevalue("live")
    live.login("alice")

    live.goto("/pipelines")
    assert live.page.locator("table tbody tr").count() == 3
    assert live.axe() == []
    live.shot("pipelines")

    live.goto(f"/pipelines/{made.failed}")
    assert live.page.locator("svg.chart g.node").count() == 3
    assert live.page.locator("svg.chart g.node.failed").count() == 1
    assert live.axe() == []
    live.shot("failed-run")

    live.goto(f"/pipelines/{made.fresh}")
    live.page.get_by_role("link", name="step combine: record and logs").click()
    live.page.wait_for_load_state("networkidle")
    assert "combining 5 values" in live.page.locator("pre.text-preview").inner_text()
    assert live.axe() == []
    live.shot("step")
    live.goto(f"/pipelines/{made.again}")
    assert live.page.locator("svg.chart g.node.cached").count() == 4
    assert live.page.locator("svg.chart path.edge").count() == 4
    assert live.axe() == []
    live.shot("cached-run")

    live.goto("/studies")
    live.page.get_by_role("link", name="quad").click()
    live.page.wait_for_load_state("networkidle")
    points = live.page.locator("svg.chart polyline").first.get_attribute("points") or ""
    assert len(points.split()) == 10
    assert live.page.locator("svg.chart rect.bar").count() == 2
    assert live.axe() == []
    live.shot("study")
