"""Pages for monitoring: what is monitored, and one model's drift per feature, share of
drifted features, performance (measured and estimated), service health and alert events over
time.

Monitoring windows are not stored: the CLI (``shipyard monitor drift|report|run``) computes
them from the prediction log when asked, and only alert rules' progress and events are kept in
the store. The model page does the same with the project's own
:func:`shipyard.monitoring.windows.monitor_deployment` — the data path of
:mod:`shipyard.monitoring.report` — for a bounded range of recent windows (at most
:data:`MAX_WINDOWS_SHOWN`), and says so on the page.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from shipyard.entities import AlertEvent, Deployment, RouteMode, WindowResult
from shipyard.errors import InvalidArgumentError, NotFoundError, ShipyardError
from shipyard.monitoring.logformat import PREDICTIONS_AREA
from shipyard.server.auth import Identity
from shipyard.server.ui import charts
from shipyard.server.ui.pages import page_identity, render
from shipyard.store.backend import AlertProgress

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_Caller = Annotated[Identity, Depends(page_identity)]

DEFAULT_WINDOWS = 24
MAX_WINDOWS_SHOWN = 96
"""The most windows one page computes (each is read from the log and compared)."""
WINDOW_CHOICES = ("15m", "1h", "6h", "1d", "1w")
MAX_DRIFT_LINES = 8
"""Features drawn per drift chart (the largest distances); the table has every one."""
MAX_PERFORMANCE_CHARTS = 4
PER_PAGE = 50
MAX_PAGE = 100
RECENT_EVENTS = 20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_DISTANCE_LABELS = {
    "wasserstein": "Wasserstein distance (reference sd)",
    "jensen_shannon": "Jensen-Shannon distance (0 to 1)",
    "psi": "PSI (population stability index)",
}
_PREDICTION = "prediction (model output)"


def _log_folder(request: Request) -> FsPath:
    """The folder holding ``predictions/`` and ``feedback/``: the workspace's."""
    return FsPath(request.app.state.workspace.settings.home)


def _logged_models(root: FsPath) -> list[str]:
    """Models with a prediction log folder (the ``model=`` folders of the log)."""
    folder = root / PREDICTIONS_AREA
    if not folder.is_dir():
        return []
    return sorted(p.name.removeprefix("model=") for p in folder.glob("model=*") if p.is_dir())


def _span(model: str, root: FsPath) -> Any:
    """The log's first and last request and its row count (None: no log, or empty)."""
    from shipyard.monitoring.logs import log_span

    try:
        return log_span(model, root=root, memory_limit="512MB")
    except NotFoundError:
        return None


@dataclass
class _Monitored:
    model: str
    span: Any
    deployments: list[Deployment]
    rules: list[AlertProgress]
    latest: AlertEvent | None

    @property
    def firing(self) -> int:
        return sum(p.firing for p in self.rules)


@router.get("/monitoring", response_class=HTMLResponse)
def monitoring_page(
    request: Request,
    caller: _Caller,
    page: Annotated[int, Query(ge=1, le=10**6)] = 1,
) -> HTMLResponse:
    backend = request.app.state.workspace.backend
    root = _log_folder(request)
    logged = _logged_models(root)
    progress = backend.get_alert_progress()
    recent = backend.list_alert_events(limit=RECENT_EVENTS)
    deployments = backend.list_deployments()
    names = sorted({*logged, *(p.model for p in progress), *(e.model for e in recent)})
    shown = names[(page - 1) * PER_PAGE : page * PER_PAGE]
    rows = []
    for model in shown:
        events = [e for e in recent if e.model == model]
        latest = events[0] if events else None
        if latest is None and any(p.model == model for p in progress):
            found = backend.list_alert_events(model=model, limit=1)
            latest = found[0] if found else None
        rows.append(
            _Monitored(
                model=model,
                span=_span(model, root) if model in logged else None,
                deployments=[d for d in deployments if d.model == model],
                rules=[p for p in progress if p.model == model],
                latest=latest,
            )
        )
    unmonitored = sorted({d.model for d in deployments} - set(names))
    return render(
        request,
        "monitoring.html",
        title="Monitoring",
        rows=rows,
        total=len(names),
        page=page,
        more=len(names) > page * PER_PAGE,
        recent=recent,
        unmonitored=unmonitored,
    )


# -- one model ------------------------------------------------------------------------------


def _default_reference(model: str, deployments: Sequence[Deployment]) -> str:
    """The training table of the version a deployment of ``model`` serves (its stable route,
    else its first live route), else of the model's latest version."""
    for deployment in deployments:
        live = [r for r in deployment.routes if r.mode is RouteMode.LIVE]
        route = deployment.route("stable") or (live[0] if live else None)
        if route is not None:
            return f"model:{model}@{route.version}"
    return f"model:{model}@latest"


def _until(text: str) -> datetime | None:
    if not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidArgumentError(
            f"until {text!r} is not a time: write it as 2024-05-01T10:00 (UTC)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _seconds(value: datetime) -> float:
    return value.timestamp()


@dataclass
class _Cell:
    distance: float | None
    drifted: bool


@dataclass
class _Feature:
    name: str
    metric: str
    threshold: float | None
    cells: list[_Cell | None]

    @property
    def largest(self) -> float:
        found = [c.distance for c in self.cells if c is not None and c.distance is not None]
        return max(found, default=-math.inf)

    @property
    def drifted_windows(self) -> int:
        return sum(1 for c in self.cells if c is not None and c.drifted)


def _features(windows: Sequence[WindowResult]) -> list[_Feature]:
    """Each compared column (and the prediction), its distance in every window; the ones
    that drifted first, then by their largest distance."""
    found: dict[str, _Feature] = {}
    for index, window in enumerate(windows):
        report = window.drift
        if report is None:
            continue
        columns = [*((c.column, c) for c in report.columns)]
        if report.prediction is not None:
            columns.append((_PREDICTION, report.prediction))
        for name, column in columns:
            feature = found.setdefault(
                name, _Feature(name, column.distance_metric, None, [None] * len(windows))
            )
            feature.metric = column.distance_metric
            feature.threshold = column.threshold
            distance = column.distance
            finite = distance if distance is not None and math.isfinite(distance) else None
            feature.cells[index] = _Cell(finite, column.drifted)
    return sorted(found.values(), key=lambda f: (-f.drifted_windows, -f.largest, f.name))


def _drift_charts(windows: Sequence[WindowResult], features: Sequence[_Feature]) -> list[Markup]:
    """One chart per distance metric: a line per feature (the largest few) over time."""
    xs = [_seconds(w.start) for w in windows]
    by_metric: dict[str, list[_Feature]] = {}
    for feature in features:
        by_metric.setdefault(feature.metric, []).append(feature)
    out = []
    for metric, group in by_metric.items():
        drawn = sorted(group, key=lambda f: (-f.drifted_windows, -f.largest))[:MAX_DRIFT_LINES]
        series = []
        for feature in drawn:
            points = [
                (x, c.distance)
                for x, c in zip(xs, feature.cells, strict=True)
                if c is not None and c.distance is not None
            ]
            series.append(
                charts.Series(feature.name, [p[0] for p in points], [p[1] for p in points])
            )
        thresholds = sorted({f.threshold for f in group if f.threshold is not None})
        limit = ", ".join(f"{t:g}" for t in thresholds)
        more = len(group) - len(drawn)
        what = f"Drift of {drawn[0].name}" if len(group) == 1 else "Drift per feature"
        title = f"{what}: {metric}" + (f" (drifts from {limit})" if limit else "")
        if more > 0:
            title += f"; {len(drawn)} of {len(group)} drawn"
        out.append(
            charts.line_chart(
                series,
                title=title,
                x_label="window start (UTC)",
                y_label=_DISTANCE_LABELS.get(metric, f"{metric} distance"),
                x_is_time=True,
                markers=True,
            )
        )
    return out


def _share_chart(windows: Sequence[WindowResult]) -> Markup | None:
    tested = [w for w in windows if w.drift is not None]
    if not tested:
        return None
    xs = [_seconds(w.start) for w in tested]
    share = [100 * w.drift.share_drifted for w in tested if w.drift is not None]
    limit = [100 * w.drift.share_threshold for w in tested if w.drift is not None]
    return charts.line_chart(
        [
            charts.Series("drifted features", xs, share),
            charts.Series("dataset drift threshold", xs, limit),
        ],
        title="Share of features drifted per window",
        x_label="window start (UTC)",
        y_label="% of features drifted",
        x_is_time=True,
        markers=True,
    )


def _performance(windows: Sequence[WindowResult]) -> tuple[list[str], list[Markup]]:
    """The metrics measured on labels or estimated (CBPE), and a chart of each (both kinds
    on one chart where there are both)."""
    measured: set[str] = set()
    estimated: set[str] = set()
    for window in windows:
        measured.update(k for k, v in (window.performance or {}).items() if v is not None)
        estimated.update(
            k for k, v in (window.estimated_performance or {}).items() if v is not None
        )
    estimated.discard("rows")
    # accuracy first, then what is both measured and estimated, then the rest by name
    ordered = sorted(
        measured | estimated,
        key=lambda n: (n != "accuracy", not (n in measured and n in estimated), n),
    )
    out = []
    for name in ordered[:MAX_PERFORMANCE_CHARTS]:
        series = []
        for label, estimate in (("measured on labelled rows", False), ("estimated (CBPE)", True)):
            points = [
                (_seconds(w.start), float(v))
                for w in windows
                if (v := ((w.estimated_performance if estimate else w.performance) or {}).get(name))
                is not None
                and math.isfinite(float(v))
            ]
            if points:
                series.append(charts.Series(label, [p[0] for p in points], [p[1] for p in points]))
        if series:
            out.append(
                charts.line_chart(
                    series,
                    title=f"{name} per window",
                    x_label="window start (UTC)",
                    y_label=name,
                    x_is_time=True,
                    markers=True,
                )
            )
    return ordered, out


def _health_charts(starts: Sequence[datetime], healths: Sequence[Any]) -> list[Markup]:
    """Latency p50 and p95, error rate and requests per window."""
    xs = [_seconds(s) for s in starts]
    answered = [(x, h) for x, h in zip(xs, healths, strict=True) if h is not None and h.requests]

    def line(name: str, pick: Any) -> charts.Series:
        points = [(x, pick(h)) for x, h in answered if pick(h) is not None]
        return charts.Series(name, [p[0] for p in points], [float(p[1]) for p in points])

    return [
        charts.line_chart(
            [line("p50", lambda h: h.latency_p50_ms), line("p95", lambda h: h.latency_p95_ms)],
            title="Request latency per window",
            x_label="window start (UTC)",
            y_label="latency (ms)",
            x_is_time=True,
            markers=True,
        ),
        charts.line_chart(
            [line("error rate", lambda h: 100 * h.error_rate)],
            title="Failed requests per window",
            x_label="window start (UTC)",
            y_label="error rate (% of requests)",
            x_is_time=True,
            markers=True,
        ),
        charts.line_chart(
            [
                charts.Series(
                    "requests",
                    xs,
                    [float(h.requests) if h is not None else 0.0 for h in healths],
                )
            ],
            title="Requests per window",
            x_label="window start (UTC)",
            y_label="requests per window",
            x_is_time=True,
            markers=True,
        ),
    ]


@router.get("/monitoring/{model}", response_class=HTMLResponse)
def model_page(
    request: Request,
    caller: _Caller,
    model: Annotated[str, Path(max_length=200)],
    window: Annotated[str, Query(max_length=16)] = "1h",
    windows: Annotated[int, Query(ge=1, le=MAX_WINDOWS_SHOWN)] = DEFAULT_WINDOWS,
    reference: Annotated[str, Query(max_length=500)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> HTMLResponse:
    from shipyard.monitoring.windows import floor_window, parse_window

    if not _NAME.match(model):
        raise NotFoundError(f"nothing is monitored as {model!r}")
    workspace = request.app.state.workspace
    backend = workspace.backend
    width = parse_window(window)
    end_at = _until(until)
    root = _log_folder(request)
    span = _span(model, root)
    progress = backend.get_alert_progress(model)
    events = backend.list_alert_events(model=model, limit=page * PER_PAGE + 1)
    deployments = [d for d in backend.list_deployments() if d.model == model]
    if span is None and not progress and not events and not deployments:
        raise NotFoundError(
            f"nothing is monitored as {model!r}: it has no prediction log, no alert rules "
            "and no deployment"
        )
    context: dict[str, Any] = {
        "model": model,
        "span": span,
        "deployments": deployments,
        "progress": progress,
        "events": events[(page - 1) * PER_PAGE : page * PER_PAGE],
        "more_events": len(events) > page * PER_PAGE,
        "page": page,
        "window": window.strip(),
        "width": width,
        "count": windows,
        "choices": WINDOW_CHOICES,
        "reference": reference,
        "until": until,
        "result": None,
        "problem": None,
        "windows": [],
        "starts": [],
        "healths": [],
        "features": [],
        "drift_charts": [],
        "share_chart": None,
        "metric_names": [],
        "performance_charts": [],
        "health_charts": [],
        "earlier": None,
        "later": None,
        "reference_used": None,
        "start": None,
        "end": None,
        "period_notes": [],
    }
    status = 200
    if span is not None:
        end = floor_window(end_at or span.last, width) + width
        first = floor_window(span.first, width)
        start = end - windows * width
        if first < end:
            start = max(start, first)
        chosen = reference.strip() or _default_reference(model, deployments)
        context["reference_used"] = chosen
        context["start"], context["end"] = start, end
        status = _windows(request, model, chosen, start, end, width, context)
        if status != 200 and not reference.strip():
            status = 200  # the default reference failed: say so, show what needs none
        last = floor_window(span.last, width) + width
        context["earlier"] = _iso(start - width) if start > first else None
        context["later"] = _iso(end + (windows - 1) * width) if end < last else None
    return render(
        request, "monitoring_model.html", status=status, title=f"Monitoring {model}", **context
    )


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="minutes")


def _windows(
    request: Request,
    model: str,
    reference: str,
    start: datetime,
    end: datetime,
    width: timedelta,
    context: dict[str, Any],
) -> int:
    """Compute the windows into ``context``; 400 when the reference cannot be used (the
    health of each window, which needs none, is still computed)."""
    from shipyard.monitoring.health import health_by_window
    from shipyard.monitoring.windows import monitor_deployment, split_windows

    home = request.app.state.workspace.settings.home
    status = 200
    try:
        result = monitor_deployment(
            model, reference=reference, window=width, start=start, end=end, home=home
        )
    except ShipyardError as exc:
        context["problem"] = (
            f"drift and performance need a reference ({reference}), which cannot be used: "
            f"{exc}. Name a dataset version (churn-train@3) or a model version "
            "(model:churn@2) whose training table has the model's inputs."
        )
        bounds = split_windows(start, end, width)
        context["starts"] = [s for s, _ in bounds]
        context["healths"] = health_by_window(model, bounds, root=home, memory_limit="512MB")
        context["health_charts"] = _health_charts(context["starts"], context["healths"])
        return 400
    results = list(result.windows)
    features = _features(results)
    names, performance = _performance(results)
    context.update(
        result=result,
        windows=results,
        starts=[w.start for w in results],
        healths=[w.health for w in results],
        features=features,
        drift_charts=_drift_charts(results, features),
        share_chart=_share_chart(results),
        metric_names=names,
        performance_charts=performance,
        health_charts=_health_charts([w.start for w in results], [w.health for w in results]),
        period_notes=[text for at, text in result.notes if at is None],
    )
    return status
