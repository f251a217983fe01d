"""The monitoring report: is a model in production healthy?

:func:`render_report` gives one self-contained HTML page (no external scripts, fonts or
images; plots are inline base64 PNGs): a verdict, the drift of every column, reference and
current distributions per column, the windows over time (drift, performance, labels, service
health, data quality) and alert events. :func:`render_json` gives the same content as strict
JSON (a value that could not be computed is ``null``).

Example:
    >>> from shipyard.monitoring.report import render_report
    >>> html = render_report(drift=report, windows=windows, events=events)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from html import escape
from typing import TYPE_CHECKING, Any

from shipyard.entities import (
    AlertEvent,
    AlertState,
    ColumnDrift,
    DriftReport,
    Finding,
    Severity,
    WindowResult,
)
from shipyard.validation.htmlkit import (
    CSS,
    DASH,
    facts,
    figure,
    page,
    pct,
    percent_axis,
    plot_text,
    png,
    sig,
    subplots,
    table,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["MAX_FEATURE_PLOTS", "render_json", "render_report"]

MAX_FEATURE_PLOTS = 50
"""Distribution plots drawn at most; the other columns are in the table and the JSON."""

_MAX_LINES = 10  # features in the distance-over-time line chart, or its legend is unreadable
_MAX_HEATMAP_ROWS = 40
_MAX_CATEGORIES = 25
_MAX_PERFORMANCE_PLOTS = 6
_MAX_FINDINGS = 500
_REF, _CUR, _BAD = "#4c78a8", "#f58518", "#a40e26"
_YES = '<span class="yes">yes</span>'

_EXTRA_CSS = """
table.facts th { width: 12rem; vertical-align: top; }
tr.drifted td, tr.firing td, tr.error td { background: #fff5f5; }
tr.warning td { background: #fff8c5; }
.yes { color: #a40e26; font-weight: 600; }
figure { margin: 0; }
figcaption { font-size: 12px; color: #59636e; max-width: 480px; }
nav { margin: .5rem 0 1rem; }
"""


# --- values ---------------------------------------------------------------------------------


def _finite(value: Any) -> float:
    """A float for plotting: NaN for None, non-numbers and infinities."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value) if math.isfinite(value) else math.nan


def _strict(value: Any) -> Any:
    """Strict JSON: non-finite floats become None, datetimes ISO text, enums their value."""
    if isinstance(value, Enum):
        return _strict(value.value)
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_strict(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return _strict(item())
    return str(value)


def _when(value: datetime | None) -> str:
    return DASH if value is None else value.isoformat(sep=" ", timespec="minutes")


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if abs(seconds) >= 2 * size:
            return f"{seconds / size:.3g} {unit}"
    return DASH if math.isnan(seconds) else f"{seconds:.3g} s"


def _short(value: datetime) -> str:
    return value.strftime("%m-%d %H:%M")


def _by_time(windows: Sequence[WindowResult]) -> list[WindowResult]:
    return sorted(windows, key=lambda w: w.start.timestamp())


def _column_order(columns: Sequence[ColumnDrift]) -> list[ColumnDrift]:
    """Drifted first, then by distance (largest first), columns without a distance last."""

    def key(c: ColumnDrift) -> tuple[bool, bool, float]:
        d = _finite(c.distance)
        return (not c.drifted, math.isnan(d), -d if not math.isnan(d) else 0.0)

    return sorted(columns, key=key)


def _headline(
    drift: DriftReport | None, windows: list[WindowResult]
) -> tuple[DriftReport | None, str | None]:
    """The drift report of the verdict: the one given, else the latest window's."""
    if drift is not None:
        return drift, "report"
    for w in reversed(windows):
        if w.drift is not None:
            return w.drift, "latest window"
    return None, None


def _firing(events: Sequence[AlertEvent]) -> list[AlertEvent]:
    """Alerts whose latest event (per model and rule) is a firing one."""
    latest: dict[tuple[str, str], AlertEvent] = {}
    for event in sorted(events, key=lambda e: e.at.timestamp()):
        latest[(event.model, event.rule)] = event
    return [e for e in latest.values() if e.state == AlertState.FIRING]


# --- summary (shared by HTML and JSON) ---------------------------------------------------------

_SUMMARY_DRIFT = (
    "drifted share_drifted share_threshold drifted_columns reference current reference_rows "
    "current_rows correction alpha window_start window_end multivariate"
).split()
_SUMMARY_PREDICTION = "column drifted distance distance_metric threshold reason".split()


def _summary(
    drift: DriftReport | None, windows: list[WindowResult], events: Sequence[AlertEvent] | None
) -> dict[str, Any]:
    headline, source = _headline(drift, windows)
    attention: list[str] = []
    out: dict[str, Any] = {"drift": None, "prediction": None, "windows": None}
    if headline is not None:
        d: DriftReport = headline
        out["drift"] = {"source": source, "columns": len(d.columns)} | {
            name: getattr(d, name) for name in _SUMMARY_DRIFT
        }
        if d.drifted:
            attention.append(
                f"dataset drift ({len(d.drifted_columns)} of {len(d.columns)} features)"
            )
        p = d.prediction
        if p is not None:
            out["prediction"] = {name: getattr(p, name) for name in _SUMMARY_PREDICTION}
            if p.drifted:
                attention.append("prediction drift")
    if windows:
        out["windows"] = {"count": len(windows), "start": windows[0].start, "end": windows[-1].end}
        errors = sum(f.severity == Severity.ERROR for f in windows[-1].quality)
        if errors:
            attention.append(f"{errors} data-quality error(s) in the latest window")
    elif drift is not None and (
        errors := sum(f.severity == Severity.ERROR for f in drift.findings)
    ):
        attention.append(f"{errors} data-quality error(s)")
    firing = _firing(events or ())
    out["firing_alerts"] = None if events is None else [e.to_dict() for e in firing]
    if firing:
        attention.append(f"{len(firing)} firing alert(s)")
    out["attention"] = attention
    return out


# --- HTML pieces ------------------------------------------------------------------------------


def _verdict(summary: dict[str, Any]) -> str:
    """The badge and the facts a person reads first."""
    if summary["attention"]:
        badge = '<span class="fail">NEEDS ATTENTION</span> ' + escape(
            "; ".join(summary["attention"])
        )
    elif summary["drift"] is None and summary["firing_alerts"] is None:
        badge = '<span class="note">Nothing was measured that could flag a problem.</span>'
    elif summary["drift"] is not None and summary["drift"]["drifted_columns"]:
        drifted = summary["drift"]["drifted_columns"]
        badge = '<span class="warn">SOME FEATURES DRIFTED</span> ' + escape(
            f"{len(drifted)} feature(s) drifted, below the dataset threshold: "
            + ", ".join(drifted[:5])
            + (", …" if len(drifted) > 5 else "")
        )
    else:
        badge = '<span class="pass">NO PROBLEM FLAGGED</span> no drift and no firing alerts'
    rows = [("Dataset drift", "not measured")]
    if (s := summary["drift"]) is not None:
        latest = " (latest window)" if s["source"] == "latest window" else ""
        op = "\u2265" if s["drifted"] else "&lt;"
        rows = [
            (
                "Dataset drift",
                f"{_YES if s['drifted'] else 'no'}{latest}: {len(s['drifted_columns'])} of "
                f"{s['columns']} features drifted ({pct(s['share_drifted'])} "
                f"{op} threshold {pct(s['share_threshold'])})",
            ),
            (
                "Rows compared",
                f"{s['reference_rows']} reference (<code>{escape(s['reference'])}</code>) "
                f"\u00b7 {s['current_rows']} current (<code>{escape(s['current'])}</code>)",
            ),
            ("Correction", f"{escape(s['correction'])}, \u03b1 = {sig(s['alpha'])}"),
        ]
        if s["window_start"] is not None or s["window_end"] is not None:
            span = f"{_when(s['window_start'])} \u2192 {_when(s['window_end'])}"
            rows.append(("Time window", escape(span)))
        if isinstance(multi := s["multivariate"], dict):
            flagged = '<span class="yes">drifted</span>' if multi.get("drifted") else "no drift"
            rows.append(("Domain classifier", f"AUC {sig(_finite(multi.get('auc')))}, {flagged}"))
    prediction = "not measured"
    if (p := summary["prediction"]) is not None:
        prediction = (
            f"{_YES if p['drifted'] else 'no'}: {escape(p['distance_metric'])} "
            f"{sig(p['distance'])} (threshold {sig(p['threshold'])}) on "
            f"<code>{escape(p['column'])}</code>"
        )
    rows.append(("Prediction drift", prediction))
    if (w := summary["windows"]) is not None:
        rows.append(
            (
                "Windows",
                f"{w['count']}: {escape(_when(w['start']))} \u2192 {escape(_when(w['end']))}",
            )
        )
    firing = summary["firing_alerts"]
    alerts = "not evaluated" if firing is None else "none"
    if firing:
        items = "".join(
            f"<li><b>{escape(e['rule'])}</b> ({escape(e['severity'])}) on "
            f"{escape(e['model'])}: {escape(e['metric'])} = {sig(e['value'])}, threshold "
            f"{sig(e['threshold'])}</li>"
            for e in firing
        )
        alerts = f'<span class="yes">{len(firing)}</span><ul>{items}</ul>'
    rows.append(("Firing alerts", alerts))
    return f"<p>{badge}</p>" + facts(rows)


_COLUMN_HEADER = (
    "column|kind|test|statistic|p-value (adj.)|distance|metric|threshold|drifted|reason"
)


def _column_table(columns: Sequence[ColumnDrift]) -> str:
    rows = []
    for c in columns:
        note = ' <span class="note">(reference from a profile)</span>' if c.from_profile else ""
        rows.append(
            [
                f"<code>{escape(c.column)}</code>",
                escape(c.kind),
                escape(c.test),
                sig(c.statistic),
                sig(c.adjusted_p_value),
                sig(c.distance),
                escape(c.distance_metric),
                sig(c.threshold),
                _YES if c.drifted else "no",
                escape(c.reason) + note,
            ]
        )
    return table(_COLUMN_HEADER.split("|"), rows, ["drifted" if c.drifted else "" for c in columns])


# --- distribution plots -----------------------------------------------------------------------


def _numeric_plot(col: ColumnDrift, edges: list[float], ref: list[float], cur: list[float]) -> str:
    n = len(ref)
    fig, ax = figure(4.6, 2.6)
    ax.bar([i + 0.5 for i in range(n)], ref, width=0.9, color=_REF, alpha=0.55, label="reference")
    ax.stairs(cur, list(range(n + 1)), color=_CUR, linewidth=2, label="current")
    if len(edges) == n + 1:
        step = max(1, math.ceil((n + 1) / 12))
        ticks = list(range(0, n + 1, step))
        ax.set_xticks(ticks, [_edge(edges, i) for i in ticks], rotation=45, fontsize=7)
        ax.set_xlabel("bin edges (equal-width slots; outer bins hold everything beyond)")
    else:
        ax.set_xticks([i + 0.5 for i in range(n)], [str(i + 1) for i in range(n)], fontsize=7)
        ax.set_xlabel("bin")
    ax.set_xlim(0, n)
    percent_axis(ax.yaxis)
    ax.set_ylabel("share")
    ax.legend(fontsize="small")
    _title(ax, col)
    return png(fig)


def _edge(edges: list[float], i: int) -> str:
    """An edge's label; an open outer edge (infinite, null in JSON) is shown as infinity."""
    if math.isnan(edges[i]) and i in (0, len(edges) - 1):
        return "\u2212\u221e" if i == 0 else "\u221e"
    return sig(edges[i])


def _categorical_plot(
    col: ColumnDrift, names: list[Any], ref: list[float], cur: list[float]
) -> str:
    order = sorted(range(len(names)), key=lambda i: -max(_zero(ref[i]), _zero(cur[i])))
    shown = order[:_MAX_CATEGORIES]
    k = len(shown)
    fig, ax = figure(4.6, 1.1 + 0.32 * k)
    unseen = [_zero(ref[i]) == 0 and _zero(cur[i]) > 0 for i in shown]
    labels = [
        plot_text(names[i], 24) + (" (new)" if new else "")
        for i, new in zip(shown, unseen, strict=True)
    ]
    y = list(range(k))
    ax.barh(
        [v - 0.2 for v in y], [_zero(ref[i]) for i in shown], 0.4, color=_REF, label="reference"
    )
    ax.barh(
        [v + 0.2 for v in y],
        [_zero(cur[i]) for i in shown],
        0.4,
        color=[_BAD if new else _CUR for new in unseen],
        hatch=["//" if new else "" for new in unseen],
        label="current",
    )
    ax.set_yticks(y, labels, fontsize=8)
    for tick, new in zip(ax.get_yticklabels(), unseen, strict=True):
        if new:
            tick.set_color(_BAD)
    ax.invert_yaxis()
    percent_axis(ax.xaxis)
    ax.set_xlabel("share" + (f" (top {k} of {len(names)} categories)" if k < len(names) else ""))
    ax.legend(fontsize="small", loc="lower right")
    _title(ax, col)
    return png(fig)


def _zero(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def _title(ax: Axes, col: ColumnDrift) -> None:
    flag = " \u2014 drifted" if col.drifted else ""
    ax.set_title(
        plot_text(col.column, 48) + flag,
        fontsize="medium",
        color=_BAD if col.drifted else "#1f2328",
    )


def _distribution(col: ColumnDrift) -> str | None:
    """The plot of a column's two distributions, or None when its bins cannot be drawn."""
    bins = col.bins or {}
    ref = [_finite(v) for v in bins.get("reference") or []]
    cur = [_finite(v) for v in bins.get("current") or []]
    if not ref or len(ref) != len(cur):
        return None
    if isinstance(bins.get("categories"), list) and len(bins["categories"]) == len(ref):
        return _categorical_plot(col, list(bins["categories"]), ref, cur)
    if isinstance(bins.get("edges"), list):
        edges = [_finite(v) for v in bins["edges"]]
        return _numeric_plot(col, edges, [_zero(v) for v in ref], [_zero(v) for v in cur])
    return None


def _why_no_plot(col: ColumnDrift) -> str:
    if col.reason.startswith("not compared"):
        return col.reason
    if not col.bins:
        return "no distributions were recorded for this column"
    return "its recorded distributions are incomplete (reference and current bins differ)"


def _distributions(columns: list[ColumnDrift], limit: int) -> str:
    plots: list[str] = []
    missing: list[str] = []
    drawn = considered = 0
    for col in columns:
        if drawn >= limit:
            break
        considered += 1
        image = _distribution(col)
        if image is None:
            missing.append(
                f"<li><code>{escape(col.column)}</code>: {escape(_why_no_plot(col))}</li>"
            )
            continue
        drawn += 1
        caption = (
            f"<code>{escape(col.column)}</code> \u00b7 {escape(col.distance_metric)} "
            f"{sig(col.distance)} \u00b7 " + ("<b>drifted</b>" if col.drifted else "not drifted")
        )
        plots.append(f"<figure>{image}<figcaption>{caption}</figcaption></figure>")
    parts = [
        '<p class="note">Blue bars: reference share per bin; orange: current. Categories new '
        "in the current data are red, hatched and marked (new).</p>"
    ]
    if plots:
        parts.append(f'<div class="plots">{"".join(plots)}</div>')
    if missing:
        parts.append(f'<p>Not plotted:</p><ul class="note">{"".join(missing)}</ul>')
    rest = len(columns) - considered
    if rest:
        parts.append(
            f'<p class="note">{rest} more column(s) are not plotted (at most {limit} plots); '
            "they are in the table above and in the JSON report.</p>"
        )
    return "".join(parts)


# --- over time ----------------------------------------------------------------------------------


def _time_axis(ax: Axes, windows: list[WindowResult]) -> None:
    step = max(1, math.ceil(len(windows) / 8))
    ticks = list(range(0, len(windows), step))
    ax.set_xticks(ticks, [_short(windows[i].start) for i in ticks], rotation=30, fontsize=7)
    ax.set_xlim(-0.5, len(windows) - 0.5)


def _drift_share_plot(windows: list[WindowResult]) -> str:
    fig, ax = figure(6.5, 2.8)
    shares = [_finite(w.drift.share_drifted) if w.drift else math.nan for w in windows]
    ax.plot(range(len(windows)), shares, marker="o", color=_REF, label="share drifted")
    bad = [
        (i, s)
        for i, (w, s) in enumerate(zip(windows, shares, strict=True))
        if w.drift and w.drift.drifted
    ]
    if bad:
        ax.scatter([i for i, _ in bad], [s for _, s in bad], color=_BAD, zorder=3, label="drifted")
    thresholds = [w.drift.share_threshold for w in windows if w.drift is not None]
    if thresholds:
        ax.axhline(thresholds[-1], color=_BAD, linestyle="--", linewidth=1, label="threshold")
    ax.set_ylim(bottom=0)
    percent_axis(ax.yaxis)
    _time_axis(ax, windows)
    ax.set_title("Share of drifted features per window", fontsize="medium")
    ax.legend(fontsize="small")
    return png(fig)


def _distance_matrix(
    windows: list[WindowResult],
) -> tuple[list[str], list[list[float]], list[list[bool]], dict[str, str]]:
    """Features ordered by their largest distance, with distance and drifted per window."""
    names: dict[str, str] = {}
    for w in windows:
        for c in w.drift.columns if w.drift else ():
            names.setdefault(c.column, c.distance_metric)
    distance = {n: [math.nan] * len(windows) for n in names}
    drifted = {n: [False] * len(windows) for n in names}
    for j, w in enumerate(windows):
        for c in w.drift.columns if w.drift else ():
            distance[c.column][j] = _finite(c.distance)
            drifted[c.column][j] = c.drifted

    def peak(name: str) -> float:
        values = [v for v in distance[name] if not math.isnan(v)]
        return -max(values) if values else math.inf

    order = sorted((n for n in names if not math.isinf(peak(n))), key=peak)
    return order, [distance[n] for n in order], [drifted[n] for n in order], names


def _distance_lines_plot(
    windows: list[WindowResult], names: list[str], rows: list[list[float]], metrics: dict[str, str]
) -> str:
    fig, ax = figure(6.5, 3.2)
    for name, values in zip(names[:_MAX_LINES], rows, strict=False):
        ax.plot(
            range(len(windows)), values, marker=".", label=plot_text(f"{name} ({metrics[name]})")
        )
    _time_axis(ax, windows)
    more = f" (top {_MAX_LINES} of {len(names)})" if len(names) > _MAX_LINES else ""
    ax.set_title(f"Distance per feature{more}", fontsize="medium")
    ax.set_ylabel("distance")
    ax.legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    return png(fig)


def _heatmap_plot(
    windows: list[WindowResult], names: list[str], rows: list[list[float]], flags: list[list[bool]]
) -> str:
    import numpy as np

    k = min(len(names), _MAX_HEATMAP_ROWS)
    values = np.ma.masked_invalid(np.array(rows[:k], dtype=np.float64))
    fig, ax = figure(7, 1.4 + 0.26 * k)
    image = ax.imshow(values, aspect="auto", cmap="Reds", interpolation="nearest")
    cells = [(j, i) for i in range(k) for j in range(len(windows)) if flags[i][j]]
    if cells:
        x, y = [j for j, _ in cells], [i for _, i in cells]
        ax.scatter(x, y, marker="o", s=22, color="black", edgecolors="white", label="drifted")
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.15, 1.0))
    ax.set_yticks(range(k), [plot_text(n, 28) for n in names[:k]], fontsize=7)
    _time_axis(ax, windows)
    more = f" (top {k} of {len(names)})" if k < len(names) else ""
    ax.set_title(f"Distance per feature and window{more}", fontsize="medium")
    fig.colorbar(image, ax=ax, label="distance", shrink=0.8)
    return png(fig)


def _drift_over_time(windows: list[WindowResult]) -> list[str]:
    parts: list[str] = [f'<div class="plots">{_drift_share_plot(windows)}']
    names, rows, flags, metrics = _distance_matrix(windows)
    if names:
        parts.append(_distance_lines_plot(windows, names, rows, metrics))
        parts.append(_heatmap_plot(windows, names, rows, flags))
    parts.append("</div>")
    table_rows, classes = [], []
    for w in windows:
        if w.drift is None:
            table_rows.append(
                [escape(_when(w.start)), escape(_when(w.end)), str(w.rows)] + [DASH] * 4
            )
            classes.append("")
            continue
        cols = w.drift.drifted_columns
        listed = ", ".join(escape(c) for c in cols[:5]) + (", \u2026" if len(cols) > 5 else "")
        pred = w.drift.prediction
        table_rows.append(
            [
                escape(_when(w.start)),
                escape(_when(w.end)),
                str(w.rows),
                pct(w.drift.share_drifted),
                _YES if w.drift.drifted else "no",
                listed or DASH,
                sig(pred.distance) if pred is not None else DASH,
            ]
        )
        classes.append("drifted" if w.drift.drifted else "")
    header = "start|end|rows|share drifted|drifted|drifted columns|prediction distance"
    parts.append(table(header.split("|"), table_rows, classes))
    return parts


def _has(values: list[float]) -> bool:
    return any(not math.isnan(v) for v in values)


def _performance(windows: list[WindowResult]) -> list[str]:
    names = list(
        dict.fromkeys(
            n for w in windows for n in (*(w.performance or {}), *(w.estimated_performance or {}))
        )
    )
    plots = []
    for name in names[:_MAX_PERFORMANCE_PLOTS]:
        actual = [_finite((w.performance or {}).get(name)) for w in windows]
        estimate = [_finite((w.estimated_performance or {}).get(name)) for w in windows]
        if not _has(actual) and not _has(estimate):
            continue
        fig, ax = figure(4.6, 2.6)
        x = range(len(windows))
        if _has(actual):
            ax.plot(x, actual, marker="o", color=_REF, label="actual")
        if _has(estimate):
            ax.plot(x, estimate, marker="s", linestyle="--", color=_CUR, label="estimate")
        _time_axis(ax, windows)
        ax.set_title(plot_text(name), fontsize="medium")
        ax.legend(fontsize="small")
        plots.append(png(fig))
    labels = _labels_plot(windows)
    if labels is not None:
        plots.append(labels)
    parts = [f'<div class="plots">{"".join(plots)}</div>'] if plots else []
    if len(names) > _MAX_PERFORMANCE_PLOTS:
        parts.append(
            f'<p class="note">Plotted: the first {_MAX_PERFORMANCE_PLOTS} of '
            f"{len(names)} metrics; every one is in the table.</p>"
        )
    header = ["start", "rows", "labelled rows", "label delay p50", "p95", "max"]
    for name in names:
        header += [name, f"{name} (estimate)"]
    rows = []
    for w in windows:
        delay = w.label_delay_seconds or {}
        row = [escape(_when(w.start)), str(w.rows), str(w.labelled_rows)]
        row += [_duration(_finite(delay.get(q))) for q in ("p50", "p95", "max")]
        for name in names:
            row.append(sig(_finite((w.performance or {}).get(name))))
            row.append(sig(_finite((w.estimated_performance or {}).get(name))))
        rows.append(row)
    parts.append(table(header, rows))
    parts.append(
        '<p class="note">Estimates (dashed) come from the model\'s confidence before '
        "labels arrive; they are not measurements.</p>"
    )
    return parts


def _labels_plot(windows: list[WindowResult]) -> str | None:
    p50 = [_finite((w.label_delay_seconds or {}).get("p50")) for w in windows]
    p95 = [_finite((w.label_delay_seconds or {}).get("p95")) for w in windows]
    if not any(w.labelled_rows for w in windows) and not _has(p50) and not _has(p95):
        return None
    fig, (left, right) = subplots(9, 2.8, 2)
    x = list(range(len(windows)))
    left.bar(x, [w.rows for w in windows], color="#d0d7de", label="rows")
    left.bar(x, [w.labelled_rows for w in windows], color=_REF, label="labelled rows")
    _time_axis(left, windows)
    left.set_title("Labelled rows", fontsize="medium")
    left.legend(fontsize="small")
    top = max((v for v in p50 + p95 if not math.isnan(v)), default=0.0)
    scale, unit = (
        (3600.0, "hours") if top >= 7200 else (60.0, "minutes") if top >= 120 else (1.0, "s")
    )
    right.plot(x, [v / scale for v in p50], marker="o", color=_REF, label="p50")
    right.plot(x, [v / scale for v in p95], marker="o", color=_CUR, label="p95")
    _time_axis(right, windows)
    right.set_title(f"Label delay ({unit})", fontsize="medium")
    right.legend(fontsize="small")
    return png(fig)


def _health(windows: list[WindowResult]) -> list[str]:
    fig, axes = subplots(11, 2.8, 3)
    latency = tuple(
        (q, f"latency_{q}_ms", c) for q, c in (("p50", _REF), ("p95", _CUR), ("p99", _BAD))
    )
    panels = (
        ("Requests per second", (("requests/s", "request_rate", _REF),)),
        ("Error rate", (("error rate", "error_rate", _BAD),)),
        ("Latency (ms)", latency),
    )
    for ax, (title, lines) in zip(axes, panels, strict=True):
        for label, name, color in lines:
            values = [_finite(getattr(w.health, name, None)) for w in windows]
            ax.plot(range(len(windows)), values, marker="o", color=color, label=label)
        ax.set_title(title, fontsize="medium")
        _time_axis(ax, windows)
    axes[1].set_ylim(bottom=0)
    percent_axis(axes[1].yaxis)
    axes[2].legend(fontsize="small")
    rows = []
    for w in windows:
        h = w.health
        if h is None:
            rows.append([escape(_when(w.start))] + [DASH] * 7)
            continue
        rows.append(
            [
                escape(_when(w.start)),
                str(h.requests),
                str(h.errors),
                sig(h.request_rate),
                pct(h.error_rate),
                sig(h.latency_p50_ms),
                sig(h.latency_p95_ms),
                sig(h.latency_p99_ms),
            ]
        )
    header = "start|requests|errors|requests/s|error rate|p50 ms|p95 ms|p99 ms".split("|")
    return [f'<div class="plots">{png(fig)}</div>', table(header, rows)]


_SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


def _by_severity(findings: Sequence[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: _SEVERITY_ORDER.get(Severity(f.severity), 3))


def _quality(windows: list[WindowResult]) -> list[str]:
    found = [(_when(w.start), f) for w in windows for f in _by_severity(w.quality)]
    if not found:
        return [f"<p>No data-quality findings in {len(windows)} window(s).</p>"]
    return _findings(found, "window start")


def _table_quality(drift: DriftReport) -> list[str]:
    if not drift.findings:
        return ["<p>No data-quality findings against the reference.</p>"]
    return _findings([(None, f) for f in _by_severity(drift.findings)], None)


def _findings(found: Sequence[tuple[str | None, Finding]], first: str | None) -> list[str]:
    """A table of findings; ``first`` heads a column of the labels (none when None)."""
    shown = found[:_MAX_FINDINGS]
    rows = [
        [
            *([] if first is None else [escape(label or "")]),
            escape(str(f.severity)),
            escape(f.check),
            f"<code>{escape(f.column)}</code>" if f.column else DASH,
            escape(f.message),
        ]
        for label, f in shown
    ]
    classes = [str(f.severity) if f.severity != Severity.INFO else "" for _, f in shown]
    header = ["severity", "check", "column", "message"]
    parts = [table([first, *header] if first is not None else header, rows, classes)]
    if len(found) > len(shown):
        parts.append(
            f'<p class="note">{len(found) - len(shown)} more findings are in the JSON report.</p>'
        )
    return parts


def _events(events: Sequence[AlertEvent]) -> str:
    ordered = sorted(events, key=lambda e: e.at.timestamp())
    rows = [
        [
            escape(_when(e.at)),
            escape(e.rule),
            escape(e.model),
            escape(str(e.state)),
            escape(str(e.severity)),
            f"<code>{escape(e.metric)}</code>",
            sig(e.value),
            sig(e.threshold),
            escape(e.message) or DASH,
        ]
        for e in ordered
    ]
    classes = ["firing" if e.state == AlertState.FIRING else "" for e in ordered]
    header = ["at", "rule", "model", "state", "severity", "metric", "value", "threshold", "message"]
    return table(header, rows, classes)


# --- public -------------------------------------------------------------------------------------


def render_json(
    *,
    drift: DriftReport | None = None,
    windows: Sequence[WindowResult] = (),
    events: Sequence[AlertEvent] | None = None,
    title: str = "Monitoring report",
) -> dict[str, Any]:
    """The report's content as strict JSON (``json.dumps(..., allow_nan=False)`` works).

    Args:
        drift: The comparison to report; when None, the latest window's drift is the verdict.
        windows: Windows of a deployment's traffic, in any order (reported by start time).
        events: Alert events; None when alerts were not evaluated.
        title: The report's title.

    Returns:
        ``title``, ``summary`` (the verdict: ``attention`` lists what needs a look),
        ``drift`` (every column, drifted first then by distance), ``windows`` and ``events``.
    """
    ordered = _by_time(windows)
    full = drift.to_dict() if drift is not None else None
    if drift is not None and full is not None:
        full["columns"] = [c.to_dict() for c in _column_order(drift.columns)]
    data = {
        "title": title,
        "summary": _summary(drift, ordered, events),
        "drift": full,
        "windows": [w.to_dict() for w in ordered],
        "events": None
        if events is None
        else [e.to_dict() for e in sorted(events, key=lambda e: e.at.timestamp())],
    }
    result: dict[str, Any] = _strict(data)
    return result


def render_report(
    *,
    drift: DriftReport | None = None,
    windows: Sequence[WindowResult] = (),
    events: Sequence[AlertEvent] | None = None,
    title: str = "Monitoring report",
    max_feature_plots: int = MAX_FEATURE_PLOTS,
) -> str:
    """The monitoring report as one HTML page with no external assets.

    Args:
        drift: The comparison to report in detail; when None, the latest window's drift is
            the verdict and its columns are tabled and plotted.
        windows: Windows of a deployment's traffic, in any order; adds the "Over time"
            sections (drift, performance and labels, service health, data quality).
        events: Alert events; None when alerts were not evaluated.
        title: The page's title (escaped).
        max_feature_plots: Distribution plots drawn at most (drifted columns first).

    Returns:
        The HTML document.
    """
    ordered = _by_time(windows)
    summary = _summary(drift, ordered, events)
    detail, source = _headline(drift, ordered)
    sections: list[tuple[str, str, list[str]]] = []
    if detail is not None:
        d: DriftReport = detail
        columns = _column_order(d.columns)
        body = []
        if source == "latest window":
            body.append(
                f'<p class="note">From the latest window, {escape(_when(d.window_start))}'
                f" \u2192 {escape(_when(d.window_end))}.</p>"
            )
        if d.prediction is not None:
            body += ["<h3>Prediction</h3>", _column_table([d.prediction])]
        body += ["<h3>Features</h3>"]
        body.append(_column_table(columns) if columns else "<p>No columns were compared.</p>")
        sections.append(("drift", "Drift", body))
        shown = ([d.prediction] if d.prediction is not None else []) + columns
        if shown:
            sections.append(
                ("distributions", "Distributions", [_distributions(shown, max_feature_plots)])
            )
    if ordered:
        if any(w.drift is not None for w in ordered):
            sections.append(("drift-over-time", "Drift over time", _drift_over_time(ordered)))
        if any(w.performance or w.estimated_performance or w.labelled_rows for w in ordered):
            sections.append(("performance", "Performance and labels", _performance(ordered)))
        if any(w.health is not None for w in ordered):
            sections.append(("health", "Service health", _health(ordered)))
        sections.append(("quality", "Data quality", _quality(ordered)))
    elif drift is not None:
        sections.append(("quality", "Data quality", _table_quality(drift)))
    if events:
        sections.append(("alerts", "Alert events", [_events(events)]))

    nav = " \u00b7 ".join(f'<a href="#{key}">{name}</a>' for key, name, _ in sections)
    parts = [f"<h1>{escape(title)}</h1>", _verdict(summary)]
    if nav:
        parts.append(f"<nav>{nav}</nav>")
    for key, name, body in sections:
        parts.append(f'<h2 id="{key}">{name}</h2>')
        parts.extend(body)
    return page(title, "\n".join(parts), CSS + _EXTRA_CSS)
