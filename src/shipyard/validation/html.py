"""A validation report as one self-contained HTML page (plots are inline base64 PNGs)."""

from __future__ import annotations

import math
from html import escape

from shipyard.entities.validation import (
    CalibrationCurve,
    ChampionComparison,
    ConfusionMatrix,
    GateResult,
    Residuals,
    SliceMetrics,
    ValidationReport,
)
from shipyard.validation.htmlkit import figure as _figure
from shipyard.validation.htmlkit import num as _num
from shipyard.validation.htmlkit import page as _page
from shipyard.validation.htmlkit import png as _png
from shipyard.validation.htmlkit import table as _table

__all__ = ["render_html"]


def _confusion_plot(confusion: ConfusionMatrix) -> str:
    labels = list(confusion.labels)
    counts = [list(row) for row in confusion.counts]
    size = 1.2 + 0.6 * len(labels)
    figure, ax = _figure(max(3.5, size), max(3.2, size - 0.3))
    image = ax.imshow(counts, cmap="Blues")
    top = max((max(row) for row in counts), default=0)
    for i, row in enumerate(counts):
        for j, value in enumerate(row):
            color = "white" if value > top / 2 else "black"
            ax.text(j, i, str(value), ha="center", va="center", color=color)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("Confusion matrix")
    figure.colorbar(image, ax=ax, shrink=0.8)
    return _png(figure)


def _calibration_plot(curve: CalibrationCurve) -> str:
    figure, ax = _figure(4, 4)
    ax.plot([0, 1], [0, 1], linestyle="--", color="#999", label="perfect")
    ax.plot(curve.mean_predicted, curve.observed, marker="o", label="model")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"mean predicted P({curve.positive})")
    ax.set_ylabel(f"observed share of {curve.positive}")
    ax.set_title(f"Calibration ({curve.bins} bins)")
    ax.legend(loc="lower right")
    return _png(figure)


def _residual_plot(residuals: Residuals) -> str:
    figure, ax = _figure(5.5, 4)
    ax.scatter(residuals.predicted, residuals.residual, s=10, alpha=0.6)
    ax.axhline(0, color="#999", linestyle="--")
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual \u2212 predicted")
    shown = len(residuals.predicted)
    note = "" if shown == residuals.rows else f" ({shown} of {residuals.rows} rows)"
    ax.set_title(f"Residuals{note}")
    return _png(figure)


def _bars(title: str, metric: str, groups: tuple[SliceMetrics, ...], overall: float) -> str:
    labels = [g.value for g in groups]
    values = [g.metrics.get(metric, math.nan) for g in groups]
    figure, ax = _figure(6, 0.9 + 0.35 * len(labels))
    positions = list(range(len(labels)))
    ax.barh(positions, [0 if math.isnan(v) else v for v in values], color="#4c78a8")
    for position, value in zip(positions, values, strict=True):
        if math.isnan(value):
            ax.text(0, position, " undefined on this slice", va="center", color="#59636e")
    ax.set_yticks(positions, labels)
    ax.invert_yaxis()
    if not math.isnan(overall):
        ax.axvline(overall, color="#e45756", linestyle="--")
        title = f"{title} (dashed: all rows, {overall:.3f})"
    ax.set_xlabel(metric)
    ax.set_title(title, fontsize="medium")
    return _png(figure)


def _bar_metric(main: str, groups: tuple[SliceMetrics, ...]) -> str:
    """The main metric, or the first metric defined on some slice when it is on none."""
    for name in (main, *_metric_columns(groups)):
        if any(not math.isnan(g.metrics.get(name, math.nan)) for g in groups):
            return name
    return main


def _comparison_plot(c: ChampionComparison) -> str:
    figure, ax = _figure(6, 1.6)
    ax.axvline(0, color="#999", linestyle="--")
    ax.errorbar(
        [c.difference],
        [0],
        xerr=[[c.difference - c.ci_low], [c.ci_high - c.difference]],
        fmt="o",
        capsize=6,
        color="#4c78a8",
    )
    ax.set_yticks([])
    span = max(abs(c.ci_low), abs(c.ci_high), abs(c.difference), 1e-3) * 1.3
    ax.set_xlim(-span, span)
    ax.set_xlabel(f"difference in {c.metric}, candidate \u2212 champion ({c.confidence:.0%} CI)")
    return _png(figure)


def _metric_columns(groups: tuple[SliceMetrics, ...]) -> list[str]:
    return list(dict.fromkeys(name for g in groups for name in g.metrics))


def _group_table(groups: tuple[SliceMetrics, ...], first: str) -> str:
    names = _metric_columns(groups)
    rows = [
        [escape(g.value), str(g.rows), *(_num(g.metrics.get(n)) for n in names)] for g in groups
    ]
    return _table([first, "rows", *names], rows)


def _gate_section(gate: GateResult) -> str:
    if gate.passed:
        return '<h2>Gate</h2><p><span class="pass">PASSED</span> every rule of the policy</p>'
    items = "".join(f"<li>{escape(f)}</li>" for f in gate.failures)
    return f'<h2>Gate</h2><p><span class="fail">FAILED</span></p><ul>{items}</ul>'


def render_html(report: ValidationReport, gate: GateResult | None = None) -> str:
    """The report as a single HTML document with no external assets."""
    parts: list[str] = []
    title = f"Validation of {report.model}"
    on = f" on {report.data}" if report.data else ""
    parts.append(f"<h1>{escape(title)}</h1>")
    parts.append(
        f'<p class="sub">{escape(report.task)}{escape(on)} · target '
        f"<code>{escape(report.target)}</code> · {report.rows} rows · main metric "
        f"<b>{escape(report.main_metric)}</b> · seed {report.seed}</p>"
    )
    if gate is not None:
        parts.append(_gate_section(gate))

    parts.append('<h2 id="metrics">Metrics</h2>')
    parts.append(
        _table(
            ["metric", "value"],
            [[escape(name), _num(value)] for name, value in report.metrics.items()],
        )
    )
    plots = []
    if report.confusion is not None:
        plots.append(_confusion_plot(report.confusion))
    if report.calibration is not None:
        plots.append(_calibration_plot(report.calibration))
    if report.residuals is not None:
        plots.append(_residual_plot(report.residuals))
    if plots:
        parts.append(f'<div class="plots">{"".join(plots)}</div>')

    if report.slices:
        parts.append('<h2 id="slices">Slices</h2>')
        overall = report.metrics.get(report.main_metric, math.nan)
        for s in report.slices:
            how = " (quantile bins)" if s.binned else ""
            parts.append(f"<h3>{escape(s.column)}{how}</h3>")
            metric = _bar_metric(report.main_metric, s.slices)
            line = overall if metric == report.main_metric else report.metrics.get(metric, math.nan)
            parts.append(_bars(f"{metric} by {s.column}", metric, s.slices, line))
            parts.append(_group_table(s.slices, s.column))

    if report.fairness:
        parts.append('<h2 id="fairness">Fairness</h2>')
        gap_rows = [
            [
                escape(f.attribute),
                _num(f.demographic_parity_difference),
                _num(f.equalized_odds_difference),
                escape(f.note),
            ]
            for f in report.fairness
        ]
        parts.append(
            _table(
                ["attribute", "demographic parity difference", "equalized odds difference", "note"],
                gap_rows,
            )
        )
        for f in report.fairness:
            parts.append(f"<h3>Groups of {escape(f.attribute)}</h3>")
            parts.append(_group_table(f.groups, f.attribute))

    if report.robustness:
        parts.append('<h2 id="robustness">Robustness</h2>')
        parts.append(
            _table(
                ["perturbation", "level", "metric", "value", "baseline", "degradation"],
                [
                    [
                        escape(r.kind),
                        f"{r.level:g}",
                        escape(r.metric),
                        _num(r.value),
                        _num(r.baseline),
                        _num(r.degradation),
                    ]
                    for r in report.robustness
                ],
            )
        )
        parts.append(
            '<p class="note">noise: Gaussian, level &times; each numeric column\'s standard '
            "deviation; missing: that share of numeric cells blanked, then filled with the "
            "column median. Degradation &gt; 0 means worse.</p>"
        )

    if report.comparison is not None:
        c = report.comparison
        parts.append('<h2 id="comparison">Comparison</h2>')
        verdict_class = {"better": "better", "worse": "worse"}.get(c.verdict, "note")
        parts.append(
            f"<p>Against <b>{escape(c.against)}</b> on the same {report.rows} rows: "
            f'<span class="{verdict_class}">{escape(c.verdict)}</span> on '
            f"{escape(c.metric)} (paired bootstrap, {c.resamples} resamples).</p>"
        )
        parts.append(
            _table(
                ["metric", "candidate", escape(c.against), "difference", f"{c.confidence:.0%} CI"],
                [
                    [
                        escape(c.metric),
                        _num(c.candidate),
                        _num(c.champion),
                        _num(c.difference),
                        f"[{_num(c.ci_low)}, {_num(c.ci_high)}]",
                    ]
                ],
            )
        )
        parts.append(_comparison_plot(c))
        others = [n for n in report.metrics if n in c.champion_metrics]
        parts.append(
            _table(
                ["metric", "candidate", escape(c.against)],
                [[escape(n), _num(report.metrics[n]), _num(c.champion_metrics[n])] for n in others],
            )
        )

    if report.notes:
        items = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
        parts.append(f'<h2 id="notes">Notes</h2><ul class="note">{items}</ul>')

    return _page(title, "\n".join(parts))
