"""The runs pages in a real browser (Debian's chromium, driven by Playwright): log in, filter
and sort runs, compare two runs with their curves drawn, a 100,000-step history, pages
without JavaScript, and no serious accessibility violation (axe-core)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import shipyard
from tests.ui.conftest import Live

pytestmark = pytest.mark.e2e
STORE_KINDS = ("sqlite",)  # pages; the queries behind them run on PostgreSQL in tests/store
STEPS = 100_000


def _fill(home: Path, *, long: bool = False) -> dict[str, str]:
    from shipyard.entities import Metric
    from shipyard.tracking import open_workspace

    ids = {}
    for i in range(12):
        with shipyard.start_run("sweep", name=f"trial-{i:02d}", home=home, log_code=False) as run:
            shipyard.log_params({"lr": f"{0.1 * (i + 1):.1f}", "model": "gbm" if i % 2 else "rf"})
            for step in range(20):
                shipyard.log_metric("rmse", 1 / (i + 1) + 1 / (step + 1), step=step)
        ids[f"trial-{i:02d}"] = run.run_id
    if not long:
        return ids
    with shipyard.start_run("sweep", name="long", home=home, log_code=False) as run:
        pass
    backend = open_workspace(home).backend
    for start in range(0, STEPS, 20_000):
        backend.log_metrics(
            [Metric("loss", 1 / (s + 1), s, 0, run.run_id) for s in range(start, start + 20_000)]
        )
    ids["long"] = run.run_id
    return ids


@pytest.fixture
def filled(sqlite_users: Path) -> dict[str, str]:
    return _fill(sqlite_users)


def _drawn(page: Any, selector: str = "svg.chart polyline") -> int:
    """How many points the first line has, after checking that the browser laid it out."""
    line = page.locator(selector).first
    line.wait_for()
    box = line.bounding_box()
    assert box and box["width"] > 100, "the line is not drawn"
    return len((line.get_attribute("points") or "").split())


def test_log_in_filter_sort_and_compare_two_runs(filled: dict[str, str], live: Live) -> None:
    page = live.page
    live.goto("/experiments")
    assert page.url.endswith("/login?next=%2Fexperiments")
    live.login("vic")
    assert page.get_by_text("vic · viewer").is_visible()
    assert live.axe() == []
    live.shot("1-experiments")

    page.get_by_role("link", name="sweep").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("table.runs tbody tr").count() == 12
    assert live.axe() == []

    page.get_by_label("Filter").fill("params.model = 'gbm' and metrics.rmse < 0.25")
    page.get_by_role("button", name="Search").click()
    page.wait_for_function("document.querySelectorAll('table.runs tbody tr').length === 4")
    assert "filter=params.model" in page.url  # htmx pushed the search into the address
    names = page.locator("table.runs tbody td:nth-child(2)").all_inner_texts()
    assert sorted(names) == ["trial-05", "trial-07", "trial-09", "trial-11"]
    live.shot("2-filtered")

    page.get_by_role("link", name="rmse").click()  # sort by the metric, descending first
    page.wait_for_function(
        "document.querySelector('table.runs tbody td:nth-child(2)').innerText === 'trial-05'"
    )
    names = page.locator("table.runs tbody td:nth-child(2)").all_inner_texts()
    assert names == ["trial-05", "trial-07", "trial-09", "trial-11"]
    assert page.get_by_label("Sort by").input_value() == "metrics.rmse DESC"
    page.get_by_role("link", name="rmse").click()
    page.wait_for_function(
        "document.querySelector('table.runs tbody td:nth-child(2)').innerText === 'trial-11'"
    )
    live.shot("3-sorted")

    page.get_by_label("Filter").fill("metrics.rmse <<< 2")
    page.get_by_role("button", name="Search").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "does not parse" in alert.inner_text()
    live.shot("4-filter-error")

    page.get_by_label("Filter").fill("params.model = 'gbm' and metrics.rmse < 0.25")
    page.get_by_role("button", name="Search").click()
    page.wait_for_function("document.querySelectorAll('table.runs tbody tr').length === 4")
    page.get_by_label("compare trial-05").check()
    page.get_by_label("compare trial-11").check()
    page.get_by_role("button", name="Compare the ticked runs").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("heading", name="Compare 2 runs").is_visible()
    lines = page.locator("svg.chart polyline.line")
    assert lines.count() >= 2
    assert _drawn(page) == 20
    series = {lines.nth(i).get_attribute("data-series") for i in range(2)}
    assert all(s and s.startswith(("trial-05", "trial-11")) for s in series)
    assert page.locator("tr.differs").count() >= 2
    assert live.axe() == []
    live.shot("5-compare")


def test_a_run_with_a_100000_step_history_draws_a_light_chart(
    sqlite_users: Path, live: Live
) -> None:
    filled = _fill(sqlite_users, long=True)
    live.login("vic")
    live.goto(f"/runs/{filled['long']}")
    page = live.page
    chart = page.locator("figure.chart-box svg.chart")
    chart.wait_for()
    assert "100,000 values" in page.locator("figure.chart-box").inner_text()
    points = _drawn(page)
    assert 500 < points <= 2000
    assert page.evaluate("document.documentElement.outerHTML.length") < 400_000
    assert live.axe() == []
    live.shot("run-long")


def test_pages_stay_readable_without_javascript(
    filled: dict[str, str], live: Live, chromium: Any
) -> None:
    live.login("vic")
    cookies = live.page.context.cookies()
    context = chromium.new_context(java_script_enabled=False)
    context.add_cookies(cookies)
    page = context.new_page()
    try:
        page.goto(live.url + f"/runs/{filled['trial-03']}")
        assert page.locator("h1").inner_text() == "Run trial-03"
        assert re.search(r"rmse\s+0\.\d+", page.locator("table").first.inner_text())
        assert page.get_by_role("link", name="Chart of rmse").count() == 1  # from <noscript>
        experiment = page.get_by_role("link", name="sweep")
        experiment.click()
        page.get_by_label("Filter").fill("params.model = 'rf'")
        page.get_by_role("button", name="Search").click()  # a plain GET form
        assert page.locator("table.runs tbody tr").count() == 6
        page.screenshot(path=str(live.shot("no-js-placeholder").with_name("no-js.png")))
    finally:
        context.close()
