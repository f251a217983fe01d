"""The datasets pages: the list, a dataset's versions, a version's schema, profile charts and
lineage, and the diff of two versions — over data added with ``shipyard.data``, on SQLite and
PostgreSQL, and in a real browser."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import shipyard
from shipyard import data
from shipyard.server.ui.format import size
from tests.ui.conftest import Live, Pages, logged_in

pytestmark = pytest.mark.integration
STORE_KINDS = ("sqlite",)  # pages; the queries behind them run on PostgreSQL in tests/store


def _sales(rows: int, *, shift: float = 0.0, version: int = 1) -> pd.DataFrame:
    """Known numbers: ``price`` cycles 0, 2.5, ..., 122.5 (+ shift); ``city`` is a/b/c."""
    price = np.array([(i % 50) * 2.5 for i in range(rows)]) + shift
    city = (["a"] * 5 + ["b"] * 3 + ["c"] * 2) * (rows // 10)
    frame = pd.DataFrame({"id": np.arange(rows), "price": price, "city": city})
    if version == 1:
        frame["qty"] = np.arange(rows) % 7
    else:
        frame["discount"] = 0.1
        frame.loc[:29, "price"] = None  # 30 missing prices
    return frame


def _fill(tmp_path: Path) -> dict[str, Any]:
    """``sales`` v1 (Parquet, 200 rows) read by a run that registered ``churn`` v1; v2 (CSV,
    300 rows, a column swapped) written by a run; ``images``, a folder, in two versions."""
    first = tmp_path / "sales.parquet"
    _sales(200).to_parquet(first, index=False)
    v1 = data.add(first, "sales").version
    with shipyard.start_run(experiment="train", log_code=False) as train:
        data.load("sales@1")
    backend = shipyard.open_workspace().backend
    backend.create_model_version(
        "churn", digest="0" * 64, flavor="sklearn", actor="alice", run_id=train.run_id
    )
    second = tmp_path / "sales.csv"
    _sales(300, shift=10.0, version=2).to_csv(second, index=False)
    with shipyard.start_run(experiment="prep", log_code=False) as prep:
        v2 = data.add(second, "sales").version
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "keep.txt").write_text("same")
    (folder / "change.txt").write_text("v1")
    (folder / "gone.txt").write_text("bye")
    data.add(folder, "images")
    (folder / "change.txt").write_text("v2, longer")
    (folder / "gone.txt").unlink()
    (folder / "new.txt").write_text("hi")
    data.add(folder, "images")
    return {
        "v1": v1,
        "v2": v2,
        "train": train.run_id,
        "prep": prep.run_id,
        "v1_size": first.stat().st_size,
        "v2_size": second.stat().st_size,
    }


def _svg(html: str, title: str) -> str:
    """The whole SVG chart whose title starts with ``title``."""
    at = html.index(title)
    start = html.rindex("<svg", 0, at)
    return html[start : html.index("</svg>", at)]


def _cells(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", html)]


def test_the_pages_show_what_the_data_holds(users: Path, tmp_path: Path) -> None:
    made = _fill(tmp_path)
    vic = logged_in(users, "vic")  # a viewer reads every page
    _list_and_dataset(vic, made)
    _version(vic, made)
    _diff(vic)


def _list_and_dataset(vic: Pages, made: dict[str, Any]) -> None:
    listing = vic.get("/datasets")
    assert listing.status_code == 200
    assert '<a href="/datasets/sales">sales</a>' in listing.text
    assert '<a href="/datasets/images">images</a>' in listing.text
    row = listing.text.split('href="/datasets/sales"')[1].split("</tr>")[0]
    cells = _cells("<td>" + row)
    assert "v2" in cells and size(made["v2_size"]) in cells and "300" in cells
    assert "csv" in cells and "alice" in cells

    page = vic.get("/datasets/sales")
    assert page.status_code == 200
    text = page.text
    assert text.index(">v2</a>") < text.index(">v1</a>")  # newest first
    assert made["v1"].digest[:12] in text and made["v2"].digest[:12] in text
    assert size(made["v1_size"]) in text
    assert f'href="/runs/{made["prep"]}"' in text  # v2's producing run
    assert '<form method="get" action="/datasets/sales/diff"' in text
    assert (
        '<select id="diff-a" name="a"><option value="2">v2</option><option value="1" selected>'
        in (text)
    )
    assert '<label for="diff-b">' in text


def _version(vic: Pages, made: dict[str, Any]) -> None:
    page = vic.get("/datasets/sales/1")
    assert page.status_code == 200
    text = page.text
    cells = _cells(text)
    # schema: columns, their types and nullability
    schema = text.split('id="schema"')[1].split("</table>")[0]
    assert re.search(r"<td>price</td><td><code>double</code></td><td>no</td>", schema)
    assert re.search(r"<td>city</td><td><code>string</code></td>", schema)
    # statistics from the data: price cycles 0..122.5, mean 61.25; 200 rows
    stats = text.split('class="stats"')[1].split("</table>")[0]
    price = _cells(stats.split("<td>price</td>")[1].split("</tr>")[0])
    assert price[:3] == ["0", "122.5", "61.25"]
    assert "200" in text
    # a histogram per numeric column: 20 bins drawn as bars, y axis "rows"
    histogram = _svg(text, "Histogram of price")
    assert len(re.findall(r'<rect class="bar"[^>]* height="(\d+\.\d)"', histogram)) == 20
    assert ">rows</text>" in histogram and ">price (bin start)</text>" in histogram
    bins = text.split("Histogram bins of price")[1].split("</table>")[0]
    counts = [int(n) for n in re.findall(r'<td class="n">(\d+)</td></tr>', bins)]
    assert counts == np.histogram(_sales(200)["price"], bins=20)[0].tolist()
    # categories: a 100, b 60, c 40 rows
    assert "<code>a</code> (100), <code>b</code> (60), <code>c</code> (40)" in text
    city = _svg(text, "Most frequent values of city")
    heights = [float(h) for h in re.findall(r'<rect class="bar"[^>]* height="([\d.]+)"', city)]
    assert len(heights) == 3 and heights[0] > heights[1] > heights[2] > 0
    # quality checks are not stored: the page says how to run them
    assert "shipyard data check" in text
    # lineage: the run that read it and the model version registered from that run
    lineage = text.split('id="lineage"')[1]
    assert f'href="/runs/{made["train"]}"' in lineage and "read it" in lineage
    assert 'href="/models/churn/1">churn v1</a>' in lineage
    assert 'class="node dataset' in lineage and 'class="node run' in lineage
    assert 'class="node version' in lineage
    assert "FINISHED" in cells

    produced = vic.get("/datasets/sales/latest").text
    assert "produced it" in produced and f'href="/runs/{made["prep"]}"' in produced
    assert 'href="/datasets/sales/diff?a=1&amp;b=2"' in produced
    nulls = produced.split('id="schema"')[1].split("</table>")[0]
    assert re.search(
        r"<td>price</td><td><code>double</code></td><td>yes</td>"
        r"<td class=\"n\">270</td><td class=\"n\">30</td>",
        nulls,
    )

    folder = vic.get("/datasets/images/2").text
    assert "No profile" in folder and "<td>new.txt</td>" in folder


def _diff(vic: Pages) -> None:
    page = vic.get("/datasets/sales/diff?a=1&b=2")
    assert page.status_code == 200
    text = page.text
    assert "<td>discount</td><td>added</td>" in text
    assert "<td>qty</td><td>removed</td>" in text
    assert re.search(
        r"Rows <span class=\"tag\">\+100</span></td><td class=\"n\">200</td>"
        r"<td class=\"n\">300</td>",
        text,
    )
    stats = text.split('id="statistics"')[1].split("</table>")[0]
    mean = _cells(stats.split("<td>price</td><td>mean</td>")[1].split("</tr>")[0])
    # v2: 30 of the 0..122.5 cycle missing, then +10; pandas says what the mean must be
    expected = _sales(300, shift=10.0, version=2)["price"].mean()
    assert mean == ["61.25", f"{expected:.6g}", f"+{expected - 61.25:.4g}"]
    assert "<td>price</td><td>null share</td>" in stats
    overlay = text.split('id="histograms"')[1]
    assert 'data-series="v1"' in overlay and 'data-series="v2"' in overlay
    assert "share of values (%)" in overlay
    assert "<select" in text and '<option value="1" selected>' in text

    files = vic.get("/datasets/images/diff?a=1&b=2").text
    for path, change in (("new.txt", "added"), ("gone.txt", "removed"), ("change.txt", "changed")):
        assert f"<td>{path}</td><td>{change}</td>" in files
    assert "keep.txt" not in files


def test_versions_are_paged_and_missing_things_are_404(users: Path, tmp_path: Path) -> None:
    for i in range(26):
        (tmp_path / "n.txt").write_text(f"version {i}")
        data.add(tmp_path / "n.txt", "notes", pointer=False)
    vic = logged_in(users, "vic")
    first = vic.get("/datasets/notes").text
    shown = re.findall(r'aria-label="notes version (\d+)"', first)
    assert shown == [str(n) for n in range(26, 1, -1)]  # 25 per page, newest first
    assert 'rel="next" href="/datasets/notes?page=2"' in first
    second = vic.get("/datasets/notes?page=2").text
    assert re.findall(r'aria-label="notes version (\d+)"', second) == ["1"]
    assert 'rel="next"' not in second and 'rel="prev"' in second

    for url in (
        "/datasets/nope",
        "/datasets/nope/1",
        "/datasets/notes/27",
        "/datasets/notes/not-a-version",
        "/datasets/notes/diff?a=1&b=27",
        "/datasets/nope/diff?a=1&b=2",
    ):
        answer = vic.get(url)
        assert answer.status_code == 404, url
        assert "Not found" in answer.text and "<h1>" in answer.text
    same = vic.get("/datasets/notes/diff?a=26&b=latest")
    assert same.status_code == 400
    assert "both name version 26" in same.text
    assert vic.get("/datasets/notes/diff?a=1").status_code == 400
    from shipyard.server import create_app

    stranger = Pages(create_app(users, auth=True))
    assert stranger.get("/datasets").status_code == 303  # log in first


def test_in_a_browser(sqlite_users: Path, tmp_path: Path, live: Live) -> None:
    _fill(tmp_path)
    live.login("vic")
    live.goto("/datasets")
    assert live.page.get_by_role("link", name="sales", exact=True).is_visible()
    live.shot("datasets")
    assert live.axe() == []

    live.page.get_by_role("link", name="sales", exact=True).click()
    live.page.wait_for_load_state("networkidle")
    live.page.get_by_role("link", name="sales version 1").click()
    live.page.wait_for_load_state("networkidle")
    assert live.page.locator("h1").inner_text() == "sales v1"
    bars = live.page.locator("svg.chart rect.bar")
    assert bars.count() > 20
    box = bars.first.bounding_box()
    assert box is not None and box["width"] > 1
    city = live.page.locator("svg.chart", has_text="Most frequent values of city")
    drawn = [b.bounding_box() for b in city.locator("rect.bar").all()]
    heights = [round(b["height"]) for b in drawn if b is not None]
    assert len(heights) == 3 and heights[0] > heights[1] > heights[2] > 0  # 100, 60, 40 rows
    live.shot("version")
    assert live.axe() == []

    live.goto("/datasets/sales")
    live.page.get_by_label("Old version").select_option("1")
    live.page.get_by_label("New version").select_option("2")
    live.page.get_by_role("button", name="Show what changed").click()
    live.page.wait_for_load_state("networkidle")
    assert "/datasets/sales/diff?a=1&b=2" in live.page.url
    lines = live.page.locator("svg.chart polyline.line")
    assert lines.count() >= 2
    assert len((lines.first.get_attribute("points") or "").split()) > 20
    live.shot("diff")
    assert live.axe() == []
