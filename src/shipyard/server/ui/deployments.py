"""Pages for deployments: every deployment with its routes, and one deployment's traffic
weights, canary analysis (the numbers each rule was judged on), A/B results with their
intervals, shadow agreement and history.

Everything is read: a deployment changes through the CLI, the API and the rollout controller
(:mod:`shipyard.deploy`); these pages show what those stored. The canary's numbers are the
ones the controller kept in ``deployment.analysis`` and in each event's details; an A/B test's
report is :meth:`shipyard.deploy.service.Deployments.ab_report` (the same as
``shipyard deploy ab-report``), and once concluded, the report the conclusion stored.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from itertools import count
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from shipyard.deploy.analysis import (
    ERRORS,
    LATENCY,
    METRIC,
    PREDICTIONS,
    CanarySpec,
    Snapshot,
)
from shipyard.deploy.service import (
    BASELINE,
    CANARY,
    Deployments,
    validate_deployment_name,
)
from shipyard.deploy.stats import latency_quantile
from shipyard.entities import (
    Deployment,
    DeploymentEvent,
    DeploymentState,
    Route,
    RouteMode,
    RouteStats,
    Strategy,
)
from shipyard.errors import InvalidArgumentError, NotFoundError, ShipyardError
from shipyard.server.auth import Identity
from shipyard.server.ui import charts
from shipyard.server.ui.pages import page_identity, render

__all__ = ["interval_chart", "router", "strategy_label"]

router = APIRouter(include_in_schema=False)
_Caller = Annotated[Identity, Depends(page_identity)]

PER_PAGE = 50
"""Deployments, and events of one deployment, per page."""
MAX_PAGE = 200
"""The last page of a deployment's history that can be asked for (the store gives the newest
events only, so page ``n`` reads ``n * PER_PAGE`` of them)."""
CHART_EVENTS = 500
"""Events the weights-over-time chart is drawn from (the newest)."""
_ENDED = {"canary.advance", "canary.hold", "promote", "rollback"}
_RULE_NAMES = {
    ERRORS: "Failed requests",
    LATENCY: "Slow requests",
    PREDICTIONS: "Prediction distribution",
    METRIC: "Metric on feedback labels",
}


def strategy_label(deployment: Deployment) -> str:
    """How the deployment's traffic is split, as a person says it: canary, A/B, shadow,
    direct (one live route), batch or edge."""
    names = {
        Strategy.CANARY: "canary",
        Strategy.AB: "A/B",
        Strategy.SHADOW: "shadow",
        Strategy.SINGLE: "direct",
        Strategy.BATCH: "batch",
        Strategy.EDGE: "edge",
    }
    label = names.get(deployment.strategy, deployment.strategy.value)
    if deployment.shadow_routes:
        label = "shadow" if label == "direct" else f"{label} + shadow"
    return label


def _route_text(route: Route) -> str:
    if route.mode is RouteMode.SHADOW:
        return f"{route.name} v{route.version} (mirrors {route.weight:g} %)"
    return f"{route.name} v{route.version} {route.weight:g} %"


@router.get("/deployments", response_class=HTMLResponse)
def deployments_page(
    request: Request,
    caller: _Caller,
    page: Annotated[int, Query(ge=1, le=10**6)] = 1,
) -> HTMLResponse:
    backend = request.app.state.workspace.backend
    found = sorted(backend.list_deployments(), key=lambda d: d.name)
    shown = found[(page - 1) * PER_PAGE : page * PER_PAGE]
    rows = [
        {
            "deployment": d,
            "strategy": strategy_label(d),
            "routes": [_route_text(r) for r in d.routes],
        }
        for d in shown
    ]
    return render(
        request,
        "deployments.html",
        title="Deployments",
        rows=rows,
        total=len(found),
        page=page,
        more=len(found) > page * PER_PAGE,
    )


# -- one deployment ------------------------------------------------------------------------


@dataclass
class _RouteRow:
    route: Route
    stats: RouteStats | None

    @property
    def error_rate(self) -> float | None:
        s = self.stats
        return s.errors / s.requests if s is not None and s.requests else None

    def latency(self, q: float) -> float | None:
        return latency_quantile(self.stats.latency_counts, q) if self.stats is not None else None


def _stats_of(stats: Sequence[RouteStats], route: Route) -> RouteStats | None:
    return next((s for s in stats if s.route == route.name and s.version == route.version), None)


@dataclass
class _RuleRow:
    """One rule of the canary's analysis: its numbers and whether it held."""

    rule: str
    name: str
    numbers: list[tuple[str, Any]]
    statistic: str
    value: float | None
    limit: str
    verdict: str


@dataclass
class _StepCounts:
    route: str
    requests: int
    errors: int
    p95_ms: float | None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass
class _Canary:
    spec: CanarySpec
    challenger: str
    steps: list[tuple[int, float, str]]
    """``(number, percent, state)``: done, current, next, promoted or rolled back."""
    current: int
    in_progress: bool
    looks: int
    canary_requests: int
    step_started: int | None
    last_look: int | None
    threshold: float
    latency_threshold_ms: float | None
    rules: list[_RuleRow]
    counts: list[_StepCounts]
    verdict: str
    history: list[dict[str, Any]] = field(default_factory=list)


def _rule_rows(spec: CanarySpec, rules: dict[str, Any]) -> list[_RuleRow]:
    """The analysis's numbers per rule, with the statistic, its limit and the verdict."""
    threshold = 1 / spec.rule_alpha
    out = []
    for rule, numbers in rules.items():
        if not isinstance(numbers, dict):
            continue
        shown = [(k, v) for k, v in numbers.items() if k not in ("e_value", "p_value", "alpha")]
        statistic, value, limit, verdict = "", None, "", "holds"
        if rule in (ERRORS, LATENCY):
            if numbers.get("e_value") is None:
                verdict = str(numbers.get("note", "not measured yet"))
            else:
                statistic, value = "e-value", float(numbers["e_value"])
                limit = f"fails at \u2265 {threshold:.4g} (1 / \u03b1 of the rule)"
                verdict = "fails" if value >= threshold else "holds"
        elif rule == PREDICTIONS:
            statistic, value = "p-value", _float(numbers.get("p_value"))
            alpha = _float(numbers.get("alpha"))
            psi_limit = spec.predictions_psi
            limit = f"fails when p < {alpha:.3g} and PSI \u2265 {psi_limit:g}"
            psi = _float(numbers.get("psi"))
            shifted = (
                value is not None
                and alpha is not None
                and psi is not None
                and psi_limit is not None
                and value < alpha
                and psi >= psi_limit
            )
            verdict = "fails" if shifted else "holds"
        elif rule == METRIC:
            statistic, value = "one-sided p-value", _float(numbers.get("p_value"))
            alpha = _float(numbers.get("alpha"))
            limit = f"fails when p < {alpha:.3g}" if alpha is not None else ""
            if "note" in numbers:
                verdict = str(numbers["note"])
            elif value is not None and alpha is not None:
                verdict = "fails" if value < alpha else "holds"
        out.append(
            _RuleRow(rule, _RULE_NAMES.get(rule, rule), shown, statistic, value, limit, verdict)
        )
    return out


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _step_counts(
    deployment: Deployment, stats: Sequence[RouteStats], analysis: dict[str, Any]
) -> list[_StepCounts]:
    """Requests, failures and p95 latency of the baseline and the canary in the current step
    (the routes' counts now, less the counts when the step began)."""
    start = analysis.get("step_start")
    if not isinstance(start, dict):
        return []
    out = []
    for name in (BASELINE, CANARY):
        route = deployment.route(name)
        if route is None or name not in start:
            continue
        now = Snapshot.of(_stats_of(stats, route))
        step = now.minus(Snapshot.from_dict(start[name]))
        out.append(
            _StepCounts(name, step.requests, step.errors, latency_quantile(step.latency, 0.95))
        )
    return out


def _numbers_of(event: DeploymentEvent) -> dict[str, Any] | None:
    """The analysis numbers an event of the controller carries (None: a person's change)."""
    details = event.details or {}
    numbers = details.get("numbers", details)
    return numbers if isinstance(numbers, dict) and "step" in numbers else None


def _step_history(spec: CanarySpec, events: Sequence[DeploymentEvent]) -> list[dict[str, Any]]:
    """Each step the controller ended (advanced, held, promoted or rolled back), oldest first,
    with the numbers it decided on."""
    since = max(
        (i for i, e in enumerate(events) if e.action == "canary.start"), default=len(events)
    )
    rows = []
    for event in events[since:]:
        numbers = _numbers_of(event)
        if event.action not in _ENDED or numbers is None:
            continue
        rules = numbers.get("rules", {})
        rows.append(
            {
                "event": event,
                "step": numbers.get("step"),
                "weight": numbers.get("weight"),
                "canary_requests": numbers.get("canary_requests"),
                "baseline_requests": numbers.get("baseline_requests"),
                "elapsed_s": numbers.get("elapsed_s"),
                "rules": _rule_rows(spec, rules if isinstance(rules, dict) else {}),
            }
        )
    return rows


def _canary(
    deployment: Deployment, stats: Sequence[RouteStats], events: Sequence[DeploymentEvent]
) -> _Canary | None:
    """The canary in progress, or the last one (None: this deployment never ran one)."""
    raw = deployment.spec.get("canary")
    if not isinstance(raw, dict):
        return None
    try:
        spec = CanarySpec.from_dict(raw)
    except (InvalidArgumentError, TypeError):
        return None
    analysis = deployment.analysis
    current = int(analysis.get("step", 0))
    in_progress = deployment.state.in_progress and deployment.strategy is Strategy.CANARY
    outcome = analysis.get("outcome")
    steps = []
    for index, percent in enumerate(spec.steps):
        if index < current:
            state = "done"
        elif index == current:
            state = {
                "promoted": "promoted",
                "rolled_back": "rolled back",
            }.get(str(outcome), "current" if in_progress else "ended")
        else:
            state = "promoted" if outcome == "promoted" and index == len(spec.steps) - 1 else "next"
        steps.append((index + 1, percent, state))
    rules = _rule_rows(spec, analysis.get("rules", {}) or {})
    last = next((e for e in reversed(events) if e.action in _ENDED | {"canary.start"}), None)
    if in_progress:
        failing = [r.name for r in rules if r.verdict == "fails"]
        if deployment.state is not DeploymentState.PROGRESSING:
            verdict = f"{deployment.state.value}: the controller neither advances nor rolls back"
        elif failing:
            verdict = "failing at the next look: " + ", ".join(failing)
        elif rules:
            verdict = "in progress: every rule holds so far"
        else:
            verdict = "in progress: no look yet"
    else:
        verdict = last.reason if last is not None else str(outcome or deployment.state.value)
    latency_threshold = _float(analysis.get("latency_threshold_ms"))
    return _Canary(
        spec=spec,
        challenger=str(deployment.spec.get("challenger", "")),
        steps=steps,
        current=current,
        in_progress=in_progress,
        looks=int(analysis.get("looks", 0)),
        canary_requests=int(analysis.get("canary_requests", 0)),
        step_started=analysis.get("step_started"),
        last_look=analysis.get("last_look"),
        threshold=1 / spec.rule_alpha,
        latency_threshold_ms=latency_threshold,
        rules=rules,
        counts=_step_counts(deployment, stats, analysis) if in_progress else [],
        verdict=verdict,
        history=_step_history(spec, events),
    )


def _weights_over_time(
    events: Sequence[DeploymentEvent], now_ms: int | None
) -> tuple[Markup | None, list[str], list[tuple[DeploymentEvent, dict[str, float]]]]:
    """A step chart of each live route's weight after each event (oldest first), its route
    names and the table behind it."""
    table: list[tuple[DeploymentEvent, dict[str, float]]] = []
    names: dict[str, None] = {}
    for event in events:
        if not event.routes:
            continue
        weights = {r.name: r.weight for r in event.routes if r.mode is RouteMode.LIVE}
        names.update(dict.fromkeys(weights))
        table.append((event, weights))
    if not table:
        return None, [], []
    series = []
    for name in names:
        xs: list[float] = []
        ys: list[float] = []
        for event, weights in table:
            value = weights.get(name, 0.0)
            if ys:  # hold the previous weight until this change: a step, not a ramp
                xs.append(event.at / 1000)
                ys.append(ys[-1])
            xs.append(event.at / 1000)
            ys.append(value)
        if now_ms is not None and now_ms > table[-1][0].at:
            xs.append(now_ms / 1000)
            ys.append(ys[-1])
        series.append(charts.Series(name, xs, ys))
    chart = charts.line_chart(
        series,
        title="Live traffic weight of each route over time",
        x_label="time (UTC)",
        y_label="% of traffic",
        x_is_time=True,
        markers=True,
    )
    return chart, list(names), table


# -- A/B --------------------------------------------------------------------------------------


@dataclass
class _Variant:
    name: str
    weight: float
    requests: int
    labelled: int
    metric: float | None
    low: float | None
    high: float | None
    probability_best: float | None


@dataclass
class _Ab:
    metric: str
    alpha: float
    min_samples: int
    sticky_key: str | None
    variants: list[_Variant]
    p_value: float | None
    srm_p_value: float | None
    srm: bool
    ready: bool
    winner: str | None
    verdict: str
    notes: list[str]
    live: bool
    chart: Markup | None = None


def _ab(request: Request, caller: Identity, deployment: Deployment) -> tuple[_Ab | None, str]:
    """The A/B test's report (live while it runs, else the one its conclusion stored), or why
    there is none."""
    raw_spec = deployment.spec.get("ab")
    if not isinstance(raw_spec, dict):
        return None, ""
    live = deployment.strategy is Strategy.AB
    report: dict[str, Any] | None = None
    if live:
        workspace = request.app.state.workspace
        service = Deployments(workspace.backend, caller.user, home=workspace.settings.home)
        try:
            report = service.ab_report(deployment.name).to_dict()
        except ShipyardError as exc:
            return None, f"the A/B report cannot be computed: {exc}"
    else:
        stored = deployment.analysis.get("report")
        if not isinstance(stored, dict):
            return None, "the A/B test ended without a report (it was rolled back)"
        report = stored
    variants = []
    for v in report.get("variants", []):
        interval = v.get("interval") or (None, None)
        variants.append(
            _Variant(
                name=str(v["name"]),
                weight=float(v.get("weight", 0.0)),
                requests=int(v.get("requests", 0)),
                labelled=int(v.get("labelled", 0)),
                metric=_float(v.get("metric")),
                low=_float(interval[0]),
                high=_float(interval[1]),
                probability_best=_float(v.get("probability_best")),
            )
        )
    metric = str(report.get("metric", raw_spec.get("metric", "accuracy")))
    ab = _Ab(
        metric=metric,
        alpha=float(raw_spec.get("alpha", 0.05)),
        min_samples=int(raw_spec.get("min_samples", 0)),
        sticky_key=raw_spec.get("sticky_key"),
        variants=variants,
        p_value=_float(report.get("p_value")),
        srm_p_value=_float(report.get("srm_p_value")),
        srm=bool(report.get("srm")),
        ready=bool(report.get("ready")),
        winner=report.get("winner"),
        verdict=str(report.get("verdict", "")),
        notes=[str(n) for n in report.get("notes", [])],
        live=live,
    )
    ab.chart = interval_chart(
        variants,
        title=f"{metric} per variant with its 95 % interval",
        y_label=f"{metric} (share of labelled rows)",
    )
    return ab, ""


_chart_ids = count(1)


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _svg_head(chart_id: str, width: int, height: int, title: str, description: str) -> str:
    return (
        f'<svg class="chart" id="{chart_id}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d" '
        f'xmlns="http://www.w3.org/2000/svg"><title id="{chart_id}-t">{_e(title)}</title>'
        f'<desc id="{chart_id}-d">{_e(description)}</desc>'
        f'<text class="chart-title" x="{width / 2}" y="18" text-anchor="middle">{_e(title)}'
        "</text>"
    )


def interval_chart(
    variants: Sequence[_Variant],
    *,
    title: str,
    y_label: str,
    width: int = 520,
    height: int = 280,
) -> Markup:
    """Each variant's metric as a point with its interval as an error bar (inline SVG)."""
    chart_id = f"ab-chart-{next(_chart_ids)}"
    drawn = [v for v in variants if v.metric is not None]
    values = [x for v in drawn for x in (v.metric, v.low, v.high) if x is not None]
    description = "; ".join(
        f"{v.name}: {v.metric:.4g}"
        + (f" (95 % interval {v.low:.4g} to {v.high:.4g})" if v.low is not None else "")
        for v in drawn
        if v.metric is not None
    )
    if not drawn:
        return Markup(  # noqa: S704 - every text is escaped
            _svg_head(chart_id, width, 90, title, "no labelled rows yet")
            + f'<text x="{width / 2}" y="60" text-anchor="middle">no labelled rows yet: '
            "nothing to draw</text></svg>"
        )
    head = _svg_head(chart_id, width, height, title, description)
    left, top, right, bottom = 64.0, 30.0, 16.0, 44.0
    inner_w, inner_h = width - left - right, height - top - bottom
    low, high = min(values), max(values)
    pad = (high - low) * 0.15 or 0.05
    # a share stays within [0, 1]: no axis below 0 or above 1 for it
    low = max(0.0, low - pad) if low >= 0 else low - pad
    high = min(1.0, high + pad) if high <= 1 else high + pad

    def py(value: float) -> float:
        return top + inner_h - (value - low) / (high - low) * inner_h

    base = top + inner_h
    parts = [
        f'<g class="axis"><line x1="{left}" y1="{base}" x2="{left + inner_w}" y2="{base}"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}"/>'
    ]
    for tick in charts.ticks(low, high):
        y = py(tick)
        parts.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + inner_w}" y2="{y:.1f}"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.6g}</text>'
        )
    slot = inner_w / len(drawn)
    for index, v in enumerate(drawn):
        x = left + (index + 0.5) * slot
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{base + 16}" text-anchor="middle">'
            f"{_e(v.name[:16])}</text>"
        )
    parts.append(
        f'<text class="axis-label" x="{left + inner_w / 2}" y="{height - 6}" '
        'text-anchor="middle">variant</text>'
        f'<text class="axis-label" transform="translate(14 {top + inner_h / 2}) rotate(-90)" '
        f'text-anchor="middle">{_e(y_label)}</text></g>'
    )
    for index, v in enumerate(drawn):
        if v.metric is None:  # pragma: no cover - drawn holds only variants with a metric
            continue
        x = left + (index + 0.5) * slot
        colour = charts.PALETTE[index % len(charts.PALETTE)]
        label = f"{v.name}: {v.metric:.4g}"
        if v.low is not None and v.high is not None:
            label += f", 95 % interval {v.low:.4g} to {v.high:.4g}"
            y0, y1 = py(v.low), py(v.high)
            parts.append(
                f'<g class="error-bar" data-variant="{_e(v.name)}" stroke="{colour}" '
                f'stroke-width="2"><line x1="{x:.1f}" y1="{y0:.1f}" x2="{x:.1f}" y2="{y1:.1f}"/>'
                f'<line x1="{x - 8:.1f}" y1="{y0:.1f}" x2="{x + 8:.1f}" y2="{y0:.1f}"/>'
                f'<line x1="{x - 8:.1f}" y1="{y1:.1f}" x2="{x + 8:.1f}" y2="{y1:.1f}"/></g>'
            )
        parts.append(
            f'<circle class="point" data-variant="{_e(v.name)}" cx="{x:.1f}" '
            f'cy="{py(v.metric):.1f}" r="5" fill="{colour}"><title>{_e(label)}</title></circle>'
            f'<text x="{x + 10:.1f}" y="{py(v.metric) + 4:.1f}">{v.metric:.3f}</text>'
        )
    return Markup(head + "".join(parts) + "</svg>")  # noqa: S704 - every text above is escaped


# -- shadow -----------------------------------------------------------------------------------


@dataclass
class _Shadow:
    route: str
    version: int
    mirrored: float | None
    current: bool
    requests: int
    compared: int
    agreements: int
    mean_abs_difference: float | None
    dropped: int

    @property
    def agreement(self) -> float | None:
        return self.agreements / self.compared if self.compared else None


def _shadows(deployment: Deployment, stats: Sequence[RouteStats]) -> list[_Shadow]:
    """Each shadow route (now or before) and how often it agreed with the live answer."""
    current = {(r.name, r.version): r for r in deployment.shadow_routes}
    out = []
    for s in stats:
        route = current.get((s.route, s.version))
        if route is None and not (s.compared or s.mirrored_dropped):
            continue
        out.append(
            _Shadow(
                route=s.route,
                version=s.version,
                mirrored=route.weight if route is not None else None,
                current=route is not None,
                requests=s.requests,
                compared=s.compared,
                agreements=s.agreements,
                mean_abs_difference=s.abs_difference / s.compared if s.compared else None,
                dropped=s.mirrored_dropped,
            )
        )
    seen = {(s.route, s.version) for s in out}
    for (name, version), route in current.items():
        if (name, version) not in seen:
            out.append(_Shadow(name, version, route.weight, True, 0, 0, 0, None, 0))
    return out


# -- the page ---------------------------------------------------------------------------------


def _details(event: DeploymentEvent) -> str:
    if not event.details:
        return ""
    text = json.dumps(event.details, indent=1, sort_keys=True, default=str)
    return text if len(text) <= 8000 else text[:8000] + "\n\u2026"


@router.get("/deployments/{name}", response_class=HTMLResponse)
def deployment_page(
    request: Request,
    caller: _Caller,
    name: Annotated[str, Path(max_length=200)],
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> HTMLResponse:
    backend = request.app.state.workspace.backend
    try:
        validate_deployment_name(name)
    except InvalidArgumentError:
        raise NotFoundError(f"no deployment named {name!r}") from None
    deployment = backend.get_deployment(name)
    stats = backend.get_route_stats(name)
    # One read serves the chart (the newest CHART_EVENTS) and the page of history asked for.
    events = backend.list_deployment_events(name, limit=max(CHART_EVENTS, page * PER_PAGE + 1))
    newest = list(reversed(events))
    history = newest[(page - 1) * PER_PAGE : page * PER_PAGE]
    more = len(newest) > page * PER_PAGE
    routes = [_RouteRow(r, _stats_of(stats, r)) for r in deployment.routes]
    live = [r for r in deployment.live_routes]
    weights = (
        charts.bar_chart(
            [r.name for r in live],  # a route's name is unique; its version is in the table
            {"weight": [r.weight for r in live]},
            title="Live traffic per route",
            x_label="route",
            y_label="% of traffic",
            height=240,
        )
        if live
        else None
    )
    current = {(r.name, r.version) for r in deployment.routes}
    earlier = [s for s in stats if (s.route, s.version) not in current]
    now_ms = time.time_ns() // 1_000_000 if deployment.state.in_progress else None
    over_time, series_names, weight_table = _weights_over_time(events[-CHART_EVENTS:], now_ms)
    canary = _canary(deployment, stats, events)
    ab, ab_problem = _ab(request, caller, deployment)
    shadows = _shadows(deployment, stats)
    shadow_chart = None
    measured = [s for s in shadows if s.agreement is not None]
    if measured:
        shadow_chart = charts.bar_chart(
            [f"{s.route} v{s.version}" for s in measured],
            {"agree": [100 * (s.agreement or 0.0) for s in measured]},
            title="Shadow answers equal to the live answer",
            x_label="shadow route and version",
            y_label="% of compared rows",
            height=220,
        )
    return render(
        request,
        "deployment.html",
        title=f"Deployment {deployment.name}",
        d=deployment,
        strategy=strategy_label(deployment),
        routes=routes,
        earlier=earlier,
        weights=weights,
        over_time=over_time,
        series_names=series_names,
        weight_table=list(reversed(weight_table))[:PER_PAGE],
        canary=canary,
        ab=ab,
        ab_problem=ab_problem,
        shadows=shadows,
        shadow_chart=shadow_chart,
        history=history,
        details=_details,
        page=page,
        more=more,
        per=PER_PAGE,
        max_page=MAX_PAGE,
    )
