"""The JSON is strict; the HTML page is one self-contained file with every section."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from shipyard.validation import apply_policy, evaluate, parse_policy, render_html, write_report
from tests.validation.conftest import Case


def test_report_files(binary: Case, dummy_binary: Case, tmp_path: Path) -> None:
    table = binary.test.assign(group=np.where(binary.test["target"] == 1, "a", "b"))
    report = evaluate(
        binary.model,
        table,
        target="target",
        slices=["mean radius", "group"],
        sensitive=["group"],
        against=dummy_binary.model,
        model_name="cancer@2",
        against_name="cancer@champion",
        data_name="cancer@1",
    )
    gate = apply_policy(report, parse_policy({"min": {"roc_auc": 0.999}}))
    json_path, html_path = write_report(report, tmp_path / "out", gate)
    data = json.loads(json_path.read_text(), parse_constant=lambda c: 1 / 0)  # no NaN/Infinity
    assert data["model"] == "cancer@2" and data["task"] == "binary"
    assert data["gate"]["passed"] is False and "roc_auc" in data["gate"]["failures"][0]
    assert data["comparison"]["verdict"] == "better"
    assert {"slices", "fairness", "robustness", "comparison", "confusion_matrix"} <= set(data)
    html = html_path.read_text()
    for section in ("Metrics", "Slices", "Fairness", "Robustness", "Comparison", "Gate"):
        assert f">{section}</h2>" in html
    assert "Confusion matrix" not in html  # the plot title is inside the image
    assert html.count("data:image/png;base64,") == 5  # confusion, calibration, 2 slices, CI
    assert not re.search(r"""(src|href)=["'](?!data:)""", html), "external asset"
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert "cancer@champion" in html and "FAILED" in html


def test_regression_page_has_a_residual_plot(regression: Case) -> None:
    report = evaluate(regression.model, regression.test, target="target")
    html = render_html(report)
    assert html.count("data:image/png;base64,") == 1
    assert ">Robustness</h2>" in html and ">Comparison</h2>" not in html
    assert "Gate" not in html


def test_text_is_escaped(binary: Case) -> None:
    table = binary.test.assign(group=np.where(binary.test["target"] == 1, "<b>x</b>", "y"))
    report = evaluate(
        binary.model,
        table,
        target="target",
        slices=["group"],
        robustness=False,
        model_name="<script>alert(1)</script>",
    )
    html = render_html(report)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
