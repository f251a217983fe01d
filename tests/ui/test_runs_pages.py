"""The experiments and runs pages: the runs table (filter, sort, columns, pages), a run with
its charts and artifact previews, and the comparison of runs — on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

import shipyard
from tests.ui.conftest import Pages, logged_in

pytestmark = pytest.mark.integration
STORE_KINDS = ("sqlite",)  # pages; the queries behind them run on PostgreSQL in tests/store

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
LONG = 20_000


@pytest.fixture
def sweep(users: Path, tmp_path: Path) -> dict[str, str]:
    """30 runs of a sweep (lr, model; rmse, acc over 5 steps), one with a 20,000-step loss
    and artifacts of each kind. Returns run ids by name."""
    ids = {}
    for i in range(30):
        with shipyard.start_run("sweep", name=f"trial-{i:02d}", home=users, log_code=False) as run:
            shipyard.log_params({"lr": f"{0.01 * (i + 1):.2f}", "model": "gbm" if i % 2 else "rf"})
            for step in range(5):
                shipyard.log_metrics({"rmse": 1 / (i + 1) + 0.1 * (4 - step), "acc": i / 30}, step)
        ids[run.info.name if hasattr(run, "info") else f"trial-{i:02d}"] = run.run_id
    files = tmp_path / "files"
    (files / "plots").mkdir(parents=True)
    (files / "notes.txt").write_text("<b>not bold</b> hello\n")
    (files / "table.csv").write_text("city,rows\nOslo,12\nLima,7\n")
    (files / "page.html").write_text("<script>document.title='pwned'</script>")
    (files / "plots" / "curve.png").write_bytes(PNG)
    import pandas as pd

    pd.DataFrame({"x": range(100), "y": [v * 2 for v in range(100)]}).to_parquet(
        files / "data.parquet"
    )
    with shipyard.start_run("sweep", name="long", home=users, log_code=False) as run:
        shipyard.log_params({"lr": "0.5", "model": "gbm"})
        active = shipyard.active_run()
        assert active is not None
        for start in range(0, LONG, 5000):
            for step in range(start, start + 5000):
                value = 1000.0 if step == 12_345 else 1.0 / (step + 1)
                shipyard.log_metric("loss", value, step=step)
        for name in ("notes.txt", "table.csv", "page.html", "data.parquet"):
            shipyard.log_artifact(files / name)
        shipyard.log_artifacts(files / "plots", "plots")
    ids["long"] = run.run_id
    return ids


def _rows(html: str) -> list[str]:
    return re.findall(r'<a href="/runs/([0-9a-f]{32})">', html)


def _experiment(users: Path) -> int:
    from shipyard.tracking import open_workspace

    found = open_workspace(users).backend.get_experiment_by_name("sweep")
    assert found is not None
    return found.experiment_id


def test_the_runs_table_filters_sorts_pages_and_picks_columns(
    users: Path, sweep: dict[str, str]
) -> None:
    ui = logged_in(users, "vic")
    exp = _experiment(users)
    assert f'href="/experiments/{exp}"' in ui.get("/experiments").text

    first = ui.get(f"/experiments/{exp}?per=25")
    assert first.status_code == 200
    assert len(_rows(first.text)) == 25
    assert 'rel="next"' in first.text
    second = ui.get(f"/experiments/{exp}?per=25&page=2")
    assert len(_rows(second.text)) == 6 and 'rel="next"' not in second.text
    assert not set(_rows(first.text)) & set(_rows(second.text))

    ranked = ui.get(f"/experiments/{exp}", params={"order": "metrics.rmse ASC", "per": 100})
    order = _rows(ranked.text)
    expected = [sweep[f"trial-{i:02d}"] for i in range(29, -1, -1)]
    assert order == [*expected, sweep["long"]]  # a run without the metric comes last
    assert "sorted ascending" in ranked.text
    flipped = ui.get(f"/experiments/{exp}", params={"order": "metrics.rmse DESC", "per": 100})
    assert _rows(flipped.text)[:30] == expected[::-1]

    gbm = ui.get(
        f"/experiments/{exp}", params={"filter": "params.model = 'gbm' and metrics.acc >= 0.5"}
    )
    found = set(_rows(gbm.text))
    assert found == {sweep[f"trial-{i:02d}"] for i in range(15, 30) if i % 2}

    chosen = ui.get(
        f"/experiments/{exp}", params={"columns": "params.lr", "filter": "params.lr = '0.30'"}
    )
    assert re.search(r">lr</a>", chosen.text) and ">rmse</a>" not in chosen.text
    assert ">0.30<" in chosen.text or ">0.3<" in chosen.text


def test_a_filter_that_does_not_parse_is_shown_in_place(users: Path, sweep: dict[str, str]) -> None:
    ui = logged_in(users, "vic")
    exp = _experiment(users)
    page = ui.get(f"/experiments/{exp}", params={"filter": "metrics.rmse <<< 1"})
    assert page.status_code == 400
    assert 'role="alert"' in page.text and "does not parse" in page.text
    assert 'value="metrics.rmse &lt;&lt;&lt; 1"' in page.text  # kept in the box, escaped
    assert "^" in page.text
    fragment = ui.get(
        f"/experiments/{exp}", params={"filter": "nonsense"}, headers={"hx-request": "true"}
    )
    assert fragment.text.lstrip().startswith('<div id="runs">')
    assert "<html" not in fragment.text


def test_a_run_page_shows_what_the_run_logged(users: Path, sweep: dict[str, str]) -> None:
    ui = logged_in(users, "vic")
    page = ui.get(f"/runs/{sweep['trial-03']}")
    assert page.status_code == 200
    assert "trial-03" in page.text and "0.04" in page.text  # lr
    assert 'hx-get="/runs/' in page.text and "/charts/rmse" in page.text
    assert re.search(r"<td>rmse</td>|>rmse</a>", page.text)
    short = ui.get(f"/runs/{sweep['trial-03'][:10]}")  # a unique prefix works as in the CLI
    assert short.status_code == 200


def test_a_long_history_is_drawn_downsampled_keeping_its_spike(
    users: Path, sweep: dict[str, str]
) -> None:
    ui = logged_in(users, "vic")
    fragment = ui.get(f"/runs/{sweep['long']}/charts/loss", headers={"hx-request": "true"})
    assert fragment.status_code == 200
    points = re.search(r'data-points="(\d+)"', fragment.text)
    assert points and 100 < int(points.group(1)) <= 2000
    assert f"{LONG:,} values" in fragment.text
    assert "last 5e-05" in fragment.text  # the last value survives, in the chart's description
    coords = re.search(r' points="([^"]+)"', fragment.text)
    assert coords
    ys = [float(p.split(",")[1]) for p in coords.group(1).split()]
    assert min(ys) < 40  # the spike of 1000 at step 12,345 reaches the top of the plot
    whole = ui.get(f"/runs/{sweep['long']}/charts/loss")
    assert "<html" in whole.text and "<svg" in whole.text
    assert ui.get(f"/runs/{sweep['long']}/charts/nope").status_code == 404


def test_artifacts_are_previewed_and_served_sandboxed(users: Path, sweep: dict[str, str]) -> None:
    ui = logged_in(users, "vic")
    run = sweep["long"]
    listing = ui.get(f"/runs/{run}").text
    for path in ("notes.txt", "table.csv", "data.parquet", "plots/"):
        assert path in listing
    text = ui.get(f"/runs/{run}/artifacts/notes.txt").text
    assert "&lt;b&gt;not bold&lt;/b&gt; hello" in text
    csv = ui.get(f"/runs/{run}/artifacts/table.csv").text
    assert '<th scope="col">city</th>' in csv and "<td>Lima</td>" in csv
    parquet = ui.get(f"/runs/{run}/artifacts/data.parquet").text
    assert "The first 20 rows." in parquet and "<td>38</td>" in parquet
    folder = ui.get(f"/runs/{run}/artifacts/plots").text
    assert f'href="/runs/{run}/artifacts/plots/curve.png"' in folder
    image = ui.get(f"/runs/{run}/artifacts/plots/curve.png").text
    assert f'<img class="preview" src="/runs/{run}/raw/plots/curve.png"' in image
    raw = ui.get(f"/runs/{run}/raw/plots/curve.png")
    assert raw.content == PNG and raw.headers["content-type"] == "image/png"
    html = ui.get(f"/runs/{run}/raw/page.html")
    assert "sandbox" in html.headers["content-security-policy"]
    assert html.headers["content-type"] == "text/plain; charset=utf-8"  # never run as a page
    assert html.headers["x-content-type-options"] == "nosniff"
    assert ui.get(f"/runs/{run}/artifacts/missing.txt").status_code == 404
    assert ui.get(f"/runs/{run}/artifacts/../../etc/passwd").status_code == 404


def test_comparing_runs_overlays_curves_and_marks_differences(
    users: Path, sweep: dict[str, str]
) -> None:
    ui = logged_in(users, "vic")
    a, b = sweep["trial-01"], sweep["trial-02"]
    page = ui.get("/compare", params=[("runs", a), ("runs", b)])
    assert page.status_code == 200
    curves = re.findall(r'<polyline class="line" data-series="([^"]+)" data-points="5"', page.text)
    assert len(curves) == 4  # rmse and acc, one line per run
    assert "Params against acc" in page.text  # the parallel coordinates, lr and model vary
    assert page.text.count('class="differs"') == 4  # lr, model, acc, rmse
    one = ui.get("/compare", params={"runs": a})
    assert one.status_code == 400 and "at least two runs" in one.text
    missing = ui.get("/compare", params=[("runs", a), ("runs", "f" * 32)])
    assert missing.status_code == 404


def test_deleted_runs_are_hidden_until_asked_for(users: Path, sweep: dict[str, str]) -> None:
    from shipyard.tracking import open_workspace

    open_workspace(users).backend.set_run_deleted(sweep["trial-07"], True)
    ui = logged_in(users, "vic")
    exp = _experiment(users)
    active = ui.get(f"/experiments/{exp}", params={"per": 100}).text
    assert sweep["trial-07"] not in _rows(active)
    deleted = ui.get(f"/experiments/{exp}", params={"deleted": "true"}).text
    assert _rows(deleted) == [sweep["trial-07"]]
    assert ui.get(f"/runs/{sweep['trial-07']}").status_code == 200  # still readable


def test_no_run_pages_without_a_session(pages: Pages, sweep: dict[str, str]) -> None:
    assert pages.get(f"/runs/{sweep['long']}").status_code == 303
    assert pages.get(f"/runs/{sweep['long']}/raw/notes.txt").status_code == 303
