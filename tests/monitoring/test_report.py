"""The monitoring report: one self-contained page and strict JSON, from hand-built results."""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shipyard.entities import (
    AlertEvent,
    AlertState,
    ColumnDrift,
    DriftReport,
    Finding,
    ServiceHealth,
    Severity,
    WindowResult,
)
from shipyard.monitoring.report import render_json, render_report

HOSTILE = "<script>alert(1)</script>"
START = datetime(2024, 5, 1, tzinfo=UTC)
PNG = "data:image/png;base64,"


def _column(name: str, *, drifted: bool, distance: float | None, **changes: object) -> ColumnDrift:
    col = ColumnDrift(
        column=name,
        kind="numeric",
        test="ks",
        statistic=0.2,
        p_value=0.001,
        adjusted_p_value=0.004,
        distance_metric="psi",
        distance=distance,
        threshold=0.2,
        drifted=drifted,
        reason=f"psi {distance} vs 0.2",
        reference_count=1000,
        current_count=500,
        bins={
            "edges": [0.0, 1.0, 2.5, 4.0, 10.0],
            "reference": [0.25, 0.25, 0.25, 0.25],
            "current": [0.1, 0.2, 0.3, 0.4],
        },
    )
    return replace(col, **changes)  # type: ignore[arg-type]


def _columns() -> tuple[ColumnDrift, ...]:
    return (
        _column("age", drifted=False, distance=0.05),
        _column("income", drifted=True, distance=0.9),
        _column(
            "plan",
            drifted=True,
            distance=0.4,
            kind="categorical",
            test="chi2",
            distance_metric="jensen_shannon",
            unseen_share=0.1,
            bins={
                "categories": ["basic", "pro", "$free$", "trial"],
                "reference": [0.6, 0.3, 0.1, 0.0],
                "current": [0.4, 0.3, 0.2, 0.1],
            },
        ),
        _column(
            HOSTILE,
            drifted=False,
            distance=math.nan,
            statistic=math.nan,
            p_value=None,
            adjusted_p_value=None,
        ),
        _column(
            "notes",
            drifted=False,
            distance=None,
            bins=None,
            reason="not compared: the column holds no values in the current data",
        ),
    )


def _drift(**changes: object) -> DriftReport:
    report = DriftReport(
        reference="churn@3",
        current="logs 2024-05-01",
        columns=_columns(),
        drifted=True,
        share_drifted=0.4,
        share_threshold=0.3,
        correction="benjamini-hochberg",
        alpha=0.05,
        reference_rows=1000,
        current_rows=500,
        prediction=_column("prediction", drifted=False, distance=0.01),
        window_start=START,
        window_end=START + timedelta(days=1),
    )
    return replace(report, **changes)  # type: ignore[arg-type]


def _windows() -> list[WindowResult]:
    health = ServiceHealth(
        requests=100,
        errors=3,
        request_rate=0.03,
        latency_p50_ms=12.0,
        latency_p95_ms=40.0,
        latency_p99_ms=math.nan,
    )
    finding = Finding(
        "null_share", Severity.ERROR, f"nulls in {HOSTILE}", HOSTILE, {"share": math.nan}
    )
    calm = tuple(replace(c, drifted=c.column == "income") for c in _columns())
    return [
        # out of order on purpose: the report orders by start
        WindowResult(
            START + timedelta(hours=2),
            START + timedelta(hours=3),
            rows=80,
            drift=_drift(drifted=False, share_drifted=0.2, columns=calm),
            health=health,
            performance={"accuracy": 0.81, "f1": math.nan},
            labelled_rows=40,
            label_delay_seconds={"p50": 600.0, "p95": 3000.0, "max": None},
            estimated_performance={"accuracy": 0.8},
            quality=(finding,),
        ),
        WindowResult(
            START,
            START + timedelta(hours=1),
            rows=100,
            drift=_drift(),
            health=health,
            performance={"accuracy": 0.9},
            labelled_rows=100,
            label_delay_seconds={"p50": 300.0, "p95": 900.0, "max": 1200.0},
        ),
        WindowResult(
            START + timedelta(hours=1),
            START + timedelta(hours=2),
            rows=0,
            estimated_performance={"accuracy": 0.7},
            quality=(Finding("empty", Severity.WARNING, "no rows"),),
        ),
    ]


def _events() -> list[AlertEvent]:
    at = START + timedelta(hours=1)
    return [
        AlertEvent(
            "e1",
            "drift-share",
            "churn",
            AlertState.FIRING,
            Severity.ERROR,
            "drift.share",
            0.4,
            0.3,
            at,
        ),
        AlertEvent(
            "e2",
            HOSTILE,
            "churn",
            AlertState.FIRING,
            Severity.WARNING,
            "health.error_rate",
            math.nan,
            0.01,
            at,
        ),
        AlertEvent(
            "e3",
            HOSTILE,
            "churn",
            AlertState.RESOLVED,
            Severity.WARNING,
            "health.error_rate",
            0.0,
            0.01,
            at + timedelta(hours=1),
        ),
    ]


def _pngs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def _self_contained(html: str) -> None:
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*(?!["']?(data:|#))""", html), "external asset"
    assert "<link" not in html and "<script" not in html and "@import" not in html
    assert "http://" not in html and "https://" not in html


def test_full_page_is_self_contained_escaped_and_has_every_plot() -> None:
    html = render_report(drift=_drift(), windows=_windows(), events=_events(), title="churn")
    _self_contained(html)
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # verdict
    assert "NEEDS ATTENTION" in html
    assert "2 of 5 features drifted (40.0% \u2265 threshold 30.0%)" in html
    assert "1000 reference (<code>churn@3</code>)" in html and "benjamini-hochberg" in html
    assert 'Firing alerts</th><td><span class="yes">1</span>' in html  # e2 resolved later
    # 1 prediction + 4 columns with bins; drift share, lines, heatmap; accuracy and f1 are
    # not both empty -> accuracy only; labels; health
    images = _pngs(html)
    assert len(images) == 5 + 3 + 1 + 1 + 1
    assert all(img.startswith(b"\x89PNG\r\n\x1a\n") for img in images)
    for section in (
        "Drift",
        "Distributions",
        "Drift over time",
        "Performance and labels",
        "Service health",
        "Data quality",
        "Alert events",
    ):
        assert f">{section}</h2>" in html
    assert "<code>notes</code>: not compared: the column holds no values" in html
    assert "<td>5 min</td><td>15 min</td><td>20 min</td>" in html  # label delay p50/p95/max


def test_columns_are_sorted_drifted_first_then_by_distance() -> None:
    html = render_report(drift=_drift())
    features = html.split(">Features</h3>")[1].split("</table>")[0]
    rows = re.findall(r"<tr[^>]*><td><code>([^<]*)</code>", features)
    assert rows == ["income", "plan", "age", "&lt;script&gt;alert(1)&lt;/script&gt;", "notes"]
    assert features.count('<tr class="drifted">') == 2
    assert "\u2013" in features  # NaN distance and None p-value


def test_json_is_strict_and_round_trips() -> None:
    data = render_json(drift=_drift(), windows=_windows(), events=_events())
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data
    summary = data["summary"]
    assert summary["drift"]["drifted"] is True and summary["drift"]["source"] == "report"
    assert summary["drift"]["drifted_columns"] == ["income", "plan"]
    assert [e["rule"] for e in summary["firing_alerts"]] == ["drift-share"]
    assert summary["attention"] == [
        "dataset drift (2 of 5 features)",
        "1 data-quality error(s) in the latest window",
        "1 firing alert(s)",
    ]
    assert [c["column"] for c in data["drift"]["columns"]][:2] == ["income", "plan"]
    assert [w["rows"] for w in data["windows"]] == [100, 0, 80]
    assert data["windows"][2]["quality"][0]["details"] == {"share": None}
    assert data["events"][1]["value"] is None


def test_without_drift_the_latest_window_gives_the_verdict() -> None:
    windows = _windows()
    html = render_report(windows=windows)
    _self_contained(html)
    assert "no (latest window): 1 of 5 features drifted" in html
    assert "Firing alerts</th><td>not evaluated" in html
    assert ">Alert events</h2>" not in html
    data = render_json(windows=windows)
    assert data["summary"]["drift"]["source"] == "latest window"
    assert data["drift"] is None and data["events"] is None


def test_nothing_measured() -> None:
    html = render_report(drift=None, events=[])
    _self_contained(html)
    assert "Dataset drift</th><td>not measured" in html
    assert "Firing alerts</th><td>none" in html
    assert PNG not in html
    assert json.dumps(render_json(events=[]), allow_nan=False)


def test_healthy_report_says_so() -> None:
    columns = tuple(replace(c, drifted=False) for c in _columns())
    drift = _drift(columns=columns, drifted=False, share_drifted=0.0)
    html = render_report(drift=drift, events=[])
    assert "NO PROBLEM FLAGGED" in html and "NEEDS ATTENTION" not in html
    assert "0 of 5 features drifted (0.0% &lt; threshold 30.0%)" in html


def test_wide_tables_plot_at_most_the_limit() -> None:
    columns = tuple(_column(f"f{i:03d}", drifted=i % 7 == 0, distance=i / 100) for i in range(120))
    drift = _drift(columns=columns, prediction=None)
    html = render_report(drift=drift, max_feature_plots=12)
    assert len(_pngs(html)) == 12
    assert "108 more column(s) are not plotted" in html
    features = html.split(">Features</h3>")[1].split("</table>")[0]
    assert features.count("<tr") == 121  # header + every column
    first = re.findall(r"<figcaption><code>([^<]*)</code>", html)
    assert first[:3] == ["f119", "f112", "f105"]  # drifted first, largest distance first


def test_windows_without_performance_or_health_skip_those_sections() -> None:
    windows = [
        WindowResult(START + timedelta(hours=i), START + timedelta(hours=i + 1), rows=10)
        for i in range(3)
    ]
    html = render_report(windows=windows)
    _self_contained(html)
    assert ">Performance and labels</h2>" not in html and ">Service health</h2>" not in html
    assert ">Drift over time</h2>" not in html
    assert "No data-quality findings in 3 window(s)." in html
    assert PNG not in html


def test_json_round_trip_of_the_drift_report_renders_the_same_plots() -> None:
    """Infinite outer edges become null in JSON; the page still draws every column."""
    inf = _column(
        "open",
        drifted=True,
        distance=math.inf,
        bins={"edges": [-math.inf, 0.0, math.inf], "reference": [0.5, 0.5], "current": [1.0, 0.0]},
    )
    broken = _column(
        "broken",
        drifted=False,
        distance=0.0,
        bins={"edges": [0.0, 1.0], "reference": [0.5, 0.5], "current": [1.0]},
    )
    drift = _drift(columns=(inf, broken, *_columns()))
    again = DriftReport.from_dict(json.loads(json.dumps(drift.to_dict(), allow_nan=False)))
    assert len(_pngs(render_report(drift=again))) == len(_pngs(render_report(drift=drift))) == 6
    assert "<code>broken</code>: its recorded distributions are incomplete" in render_report(
        drift=again
    )


def test_importing_the_report_loads_no_plotting_library() -> None:
    code = (
        "import sys, shipyard.monitoring.report, shipyard.validation.html; "
        "print(sorted({'matplotlib', 'numpy'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_browser_renders_the_page(tmp_path: Path) -> None:
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("no /usr/bin/chromium on this machine")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    path = tmp_path / "report.html"
    path.write_text(render_report(drift=_drift(), windows=_windows(), events=_events()))
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.as_uri())
            widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
        finally:
            browser.close()
    assert errors == []
    assert len(widths) == 11 and all(w > 0 for w in widths)


def test_features_drifted_below_the_dataset_threshold_get_a_warning_badge() -> None:
    import numpy as np
    import pandas as pd

    from shipyard.monitoring.drift import compare

    rng = np.random.default_rng(1)
    ref = pd.DataFrame({c: rng.normal(size=3000) for c in "abcd"})
    cur = pd.DataFrame({c: rng.normal(size=3000) for c in "abcd"}).assign(a=lambda f: f.a + 1)
    report = compare(ref, cur)
    assert report.drifted_columns == ("a",) and not report.drifted
    page = render_report(drift=report)
    assert 'class="warn">SOME FEATURES DRIFTED' in page and "NO PROBLEM FLAGGED" not in page
