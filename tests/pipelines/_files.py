"""Pipeline files written into a test's folder and run from there, as a user would."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from shipyard.pipelines import PipelineResult, load_pipeline, run_pipeline


def write(folder: Path, source: str, name: str = "flow.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source).lstrip())
    return path


def run(path: Path, pipeline: str, executor: str = "inprocess", **params: Any) -> PipelineResult:
    pipe, source = load_pipeline(f"{path}:{pipeline}")
    return run_pipeline(pipe, params, executor=executor, source=source, echo=False)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path.name}"
    path.write_text(text.replace(old, new))
