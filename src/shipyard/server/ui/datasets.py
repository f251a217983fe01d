"""Pages for datasets: every dataset, a dataset's versions, a version's schema, profile and
lineage, and what changed between two versions.

Profiles are read as stored when the version was added (``DatasetProfile``): a page never reads
the data itself. Quality checks compare a table's data with a reference profile, so they need
a pass over the data; the version page says how to run them (``shipyard data check``) instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from shipyard.entities import ColumnProfile, DatasetVersion, Histogram
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.server.auth import Identity
from shipyard.server.ui import charts
from shipyard.server.ui.pages import page_identity, render

if TYPE_CHECKING:
    from shipyard.artifacts import ArtifactStore
    from shipyard.store import Backend

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_Caller = Annotated[Identity, Depends(page_identity)]
_Name = Annotated[str, Path(max_length=128)]
_Page = Annotated[int, Query(ge=1, le=10**7)]

DATASETS_PER_PAGE = 50
VERSIONS_PER_PAGE = 25
MAX_CHOICES = 500
"""Versions offered in the diff form's selects (newest first); older ones by URL."""
MAX_CHARTS = 40
"""Histograms (and category charts) drawn on one page; the tables list every column."""
MAX_LINEAGE_RUNS = 50
MAX_FILES = 200
"""Files listed per kind of change in a diff, and files of a folder version."""


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.workspace.backend
    return backend


def _artifacts(request: Request) -> ArtifactStore:
    store: ArtifactStore = request.app.state.workspace.artifacts
    return store


def _version(backend: Backend, name: str, ref: str) -> DatasetVersion:
    """A version by number, ``latest`` or digest prefix; a malformed one does not exist."""
    try:
        return backend.get_dataset_version(name, ref)
    except InvalidArgumentError as exc:
        raise NotFoundError(f"dataset {name!r} has no version {ref!r} ({exc})") from None


def _latest(backend: Backend, name: str) -> DatasetVersion | None:
    try:
        return backend.get_dataset_version(name, "latest")
    except NotFoundError:  # removed meanwhile
        return None


# ------------------------------------------------------------------------------- the list


@router.get("/datasets", response_class=HTMLResponse)
def datasets_page(request: Request, caller: _Caller, page: _Page = 1) -> HTMLResponse:
    backend = _backend(request)
    found = backend.list_datasets()
    start = (page - 1) * DATASETS_PER_PAGE
    shown = found[start : start + DATASETS_PER_PAGE]
    rows = [(d, _latest(backend, d.name)) for d in shown]
    return render(
        request,
        "datasets.html",
        title="Datasets",
        rows=rows,
        total=len(found),
        page=page,
        more=len(found) > start + DATASETS_PER_PAGE,
    )


# ------------------------------------------------------------------------------ a dataset


@router.get("/datasets/{name}", response_class=HTMLResponse)
def dataset_page(request: Request, caller: _Caller, name: _Name, page: _Page = 1) -> HTMLResponse:
    backend = _backend(request)
    newest = backend.list_dataset_versions(name)[::-1]  # no profiles: one row per version
    if not newest:
        raise NotFoundError(f"dataset {name!r} has no versions")
    dataset = next((d for d in backend.list_datasets() if d.name == name), None)
    start = (page - 1) * VERSIONS_PER_PAGE
    shown = newest[start : start + VERSIONS_PER_PAGE]
    return render(
        request,
        "dataset.html",
        title=f"Dataset {name}",
        name=name,
        description=dataset.description if dataset else "",
        versions=shown,
        total=len(newest),
        page=page,
        more=len(newest) > start + VERSIONS_PER_PAGE,
        choices=[v.version for v in newest[:MAX_CHOICES]],
        default_a=newest[1].version if len(newest) > 1 else newest[0].version,
        default_b=newest[0].version,
    )


# ---------------------------------------------------------------------- the diff of two


def _outline(histogram: Histogram) -> tuple[list[float], list[float]]:
    """A histogram as a stepped line (x: bin edges, y: share of its values in %)."""
    total = sum(histogram.counts) or 1
    xs: list[float] = [histogram.edges[0]]
    ys: list[float] = [0.0]
    for (low, high), n in zip(pairwise(histogram.edges), histogram.counts, strict=False):
        share = 100.0 * n / total
        xs += [low, high]
        ys += [share, share]
    xs.append(histogram.edges[-1])
    ys.append(0.0)
    return xs, ys


def _numeric_delta(old: Any, new: Any) -> float | None:
    if isinstance(old, bool) or isinstance(new, bool):
        return None
    if isinstance(old, int | float) and isinstance(new, int | float):
        change = float(new) - float(old)
        return change if math.isfinite(change) else None
    return None


@router.get("/datasets/{name}/diff", response_class=HTMLResponse)
def diff_page(
    request: Request,
    caller: _Caller,
    name: _Name,
    a: Annotated[str, Query(max_length=70)] = "",
    b: Annotated[str, Query(max_length=70)] = "",
) -> HTMLResponse:
    backend = _backend(request)
    if not a.strip() or not b.strip():
        raise InvalidArgumentError("choose two versions to compare: ?a=OLD&b=NEW")
    old, new = _version(backend, name, a), _version(backend, name, b)
    if old.version == new.version:
        raise InvalidArgumentError(
            f"a and b both name version {old.version} of {name!r}: "
            "choose two different versions to compare"
        )
    from shipyard.data.version_diff import diff_versions

    result = diff_versions(_artifacts(request), old, new)
    overlays: list[tuple[str, Markup]] = []
    if old.profile is not None and new.profile is not None:
        before = {c.name: c for c in old.profile.columns}
        for column in new.profile.columns:
            previous = before.get(column.name)
            if previous is None or previous.histogram is None or column.histogram is None:
                continue
            if len(overlays) >= MAX_CHARTS:
                break
            series = [
                charts.Series(f"v{v.version}", *_outline(h))
                for v, h in ((old, previous.histogram), (new, column.histogram))
            ]
            overlays.append(
                (
                    column.name,
                    charts.line_chart(
                        series,
                        title=f"{column.name}: v{old.version} against v{new.version}",
                        x_label=column.name,
                        y_label="share of values (%)",
                    ),
                )
            )
    stats = [
        (column, stat, before, after, _numeric_delta(before, after))
        for column, changed in result.stat_changes.items()
        for stat, (before, after) in changed.items()
    ]
    versions = backend.list_dataset_versions(name)[::-1][:MAX_CHOICES]
    return render(
        request,
        "dataset_diff.html",
        title=f"{name}: v{old.version} against v{new.version}",
        name=name,
        old=old,
        new=new,
        diff=result,
        stats=stats,
        overlays=overlays,
        choices=[v.version for v in versions],
        default_a=old.version,
        default_b=new.version,
        max_files=MAX_FILES,
    )


# ----------------------------------------------------------------------------- a version


@dataclass(slots=True)
class _ColumnChart:
    column: ColumnProfile
    chart: Markup
    bins: list[tuple[str, str, int]] = field(default_factory=list)
    """``(from, to, rows)`` of a histogram's bins."""


def _edge(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g}"


def _histogram_chart(column: ColumnProfile) -> _ColumnChart:
    histogram = column.histogram
    assert histogram is not None  # noqa: S101 - the caller checked
    labels = [_edge(e) for e in histogram.edges[:-1]]
    bins = [
        (_edge(low, 6), _edge(high, 6), n)
        for (low, high), n in zip(pairwise(histogram.edges), histogram.counts, strict=False)
    ]
    chart = charts.bar_chart(
        labels,
        {"rows": [float(n) for n in histogram.counts]},
        title=f"Histogram of {column.name} ({len(histogram.counts)} bins)",
        x_label=f"{column.name} (bin start)",
        y_label="rows",
        width=760,
    )
    return _ColumnChart(column, chart, bins)


def _categories_chart(column: ColumnProfile) -> _ColumnChart:
    top = list(column.top_values or ())
    labels = [value for value, _ in top]
    counts = [float(n) for _, n in top]
    if column.other_count:
        labels.append("(other)")
        counts.append(float(column.other_count))
    chart = charts.bar_chart(
        labels,
        {"rows": counts},
        title=f"Most frequent values of {column.name}",
        x_label=column.name,
        y_label="rows",
    )
    return _ColumnChart(column, chart)


@dataclass(frozen=True, slots=True)
class _RunUse:
    """A run that wrote (``output``) or read (``input``) a version."""

    id: str
    name: str
    status: str
    roles: tuple[str, ...]


def _lineage(
    backend: Backend, version: DatasetVersion
) -> tuple[list[_RunUse], list[tuple[str, int, str]], Markup | None, int]:
    """The runs that wrote or read the version, model versions registered from the readers,
    and a graph of them: (runs, model versions, graph, runs left out).

    The graph's boxes are not links: links inside an SVG with ``role="img"`` are nested
    interactive content (axe: ``nested-interactive``); the table beside it has the links.
    """
    roles: dict[str, list[str]] = {}
    if version.run_id:
        roles[version.run_id] = ["output"]
    for run_id, role in backend.dataset_users(version.dataset, version.version):
        if role not in roles.setdefault(run_id, []):
            roles[run_id].append(role)
    ordered = sorted(roles, key=lambda r: ("output" not in roles[r], r))
    left_out = max(0, len(ordered) - MAX_LINEAGE_RUNS)
    runs: list[_RunUse] = []
    for run_id in ordered[:MAX_LINEAGE_RUNS]:
        try:
            run = backend.get_run(run_id)
            name, state = run.name, run.status.value
        except NotFoundError:
            name, state = run_id[:8], ""
        runs.append(_RunUse(run_id, name, state, tuple(sorted(roles[run_id], reverse=True))))
    readers = [r.id for r in runs if "input" in r.roles]
    models = backend.model_versions_of_runs(readers) if readers else []
    if not runs:
        return runs, models, None, left_out
    here = f"dataset:{version.ref}"
    nodes = [
        charts.Node(
            here,
            version.ref,
            "dataset",
            None,
            version.format or version.kind,
        )
    ]
    edges: list[charts.Edge] = []
    status: dict[str, str] = {}
    for use in runs:
        key = f"run:{use.id}"
        nodes.append(charts.Node(key, use.name, "run", None, use.id[:8]))
        if use.status == "FINISHED":
            status[key] = "succeeded"
        elif use.status in ("FAILED", "CRASHED"):
            status[key] = "failed"
        if "output" in use.roles:
            edges.append(charts.Edge(key, here, "wrote"))
        if "input" in use.roles:
            edges.append(charts.Edge(here, key, "read"))
    for model, number, run_id in models:
        key = f"version:{model}@{number}"
        nodes.append(charts.Node(key, f"{model} v{number}", "version", None, "model"))
        edges.append(charts.Edge(f"run:{run_id}", key, "registered"))
    graph = charts.graph(
        nodes, edges, title=f"Lineage of {version.ref}: data, runs, model versions", status=status
    )
    return runs, models, graph, left_out


def _files(store: ArtifactStore, version: DatasetVersion) -> tuple[list[Any], int]:
    if version.kind != "dir":
        return [], 0
    entries = list(store.read_manifest(version.digest).entries)
    return entries[:MAX_FILES], max(0, len(entries) - MAX_FILES)


@router.get("/datasets/{name}/{version}", response_class=HTMLResponse)
def version_page(
    request: Request,
    caller: _Caller,
    name: _Name,
    version: Annotated[str, Path(max_length=70)],
) -> HTMLResponse:
    backend = _backend(request)
    found = _version(backend, name, version)
    profile = found.profile
    numeric: list[ColumnProfile] = []
    categorical: list[ColumnProfile] = []
    histograms: list[_ColumnChart] = []
    categories: list[_ColumnChart] = []
    if profile is not None:
        numeric = [c for c in profile.columns if c.is_numeric]
        categorical = [c for c in profile.columns if c.top_values is not None]
        histograms = [_histogram_chart(c) for c in numeric if c.histogram][:MAX_CHARTS]
        categories = [_categories_chart(c) for c in categorical if c.top_values][:MAX_CHARTS]
    runs, models, graph, runs_left_out = _lineage(backend, found)
    files, files_left_out = _files(_artifacts(request), found)
    previous = found.version - 1 if found.version > 1 else None
    return render(
        request,
        "dataset_version.html",
        title=f"Dataset {found.ref}",
        v=found,
        profile=profile,
        numeric=numeric,
        categorical=categorical,
        histograms=histograms,
        categories=categories,
        charts_cut=max(len(numeric), len(categorical)) > MAX_CHARTS,
        runs=runs,
        runs_left_out=runs_left_out,
        models=models,
        graph=graph,
        files=files,
        files_left_out=files_left_out,
        previous=previous,
    )
