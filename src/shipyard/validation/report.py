"""Write a validation report to a folder: ``report.json`` (strict JSON) and ``report.html``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from shipyard.entities.validation import GateResult, ValidationReport
from shipyard.validation.html import render_html

__all__ = ["report_json", "write_report"]


def report_json(report: ValidationReport, gate: GateResult | None = None) -> dict[str, Any]:
    """The report as a JSON-ready dict, with the gate's verdict under ``gate`` when given."""
    data = report.to_dict()
    data["gate"] = gate.to_dict() if gate is not None else None
    return data


def write_report(
    report: ValidationReport, folder: str | os.PathLike[str], gate: GateResult | None = None
) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``folder`` (created); return both paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "report.json", out / "report.html"
    text = json.dumps(report_json(report, gate), indent=2, allow_nan=False)
    json_path.write_text(text + "\n", encoding="utf-8")
    html_path.write_text(render_html(report, gate), encoding="utf-8")
    return json_path, html_path
