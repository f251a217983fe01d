"""Charts drawn on the server as inline SVG: lines over steps or time, bars, histograms,
parallel coordinates and layered graphs.

Drawing on the server keeps every page whole without JavaScript (and offline), makes a chart
part of the HTML a test can read, and sends a few kilobytes however long the history: a line
is cut down to at most ``MAX_POINTS`` points by :func:`downsample`, which keeps each bucket's
first, last, lowest and highest point, so spikes survive. Every chart has a title, axis labels
(with units where the caller gives them) and an accessible name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from itertools import count, pairwise

from markupsafe import Markup

__all__ = [
    "MAX_POINTS",
    "PALETTE",
    "Edge",
    "Node",
    "Series",
    "bar_chart",
    "downsample",
    "graph",
    "line_chart",
    "parallel_coordinates",
]

MAX_POINTS = 2000
"""The most points a line is drawn with (about two per pixel of a wide chart)."""

PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442")
"""Okabe and Ito's colours, told apart with every common colour blindness."""

_ids = count(1)


@dataclass(frozen=True, slots=True)
class Series:
    """One line: its name in the legend and its points."""

    name: str
    x: Sequence[float]
    y: Sequence[float]


@dataclass(frozen=True, slots=True)
class Node:
    """A box in a graph: ``kind`` picks its colour, ``href`` makes it a link."""

    key: str
    label: str
    kind: str = ""
    href: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    label: str = ""


def downsample(
    x: Sequence[float], y: Sequence[float], limit: int = MAX_POINTS
) -> tuple[list[float], list[float]]:
    """At most about ``limit`` points of a line, keeping each bucket's extremes.

    Points whose value is not finite are left out (a chart cannot place them).
    """
    import numpy as np

    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    n = len(xs)
    if n <= limit:
        return xs.tolist(), ys.tolist()
    buckets = max(1, limit // 4)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    picked: list[int] = []
    for start, stop in pairwise(edges):
        if stop <= start:
            continue
        part = ys[start:stop]
        chosen = {start, stop - 1, start + int(np.argmin(part)), start + int(np.argmax(part))}
        picked.extend(sorted(chosen))
    index = np.asarray(picked)
    return xs[index].tolist(), ys[index].tolist()


def ticks(low: float, high: float, target: int = 5) -> list[float]:
    """Round numbers spanning ``low``..``high`` (1, 2 or 5 times a power of ten apart)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        return [low]
    raw = (high - low) / max(1, target)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    out = []
    value = first
    while value <= high + step * 1e-9:
        out.append(round(value, 12))
        value += step
    return out


def _label(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e5 or magnitude < 1e-3:
        return f"{value:.2g}"
    return f"{value:.6g}"


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _frame(
    chart_id: str,
    width: int,
    height: int,
    title: str,
    description: str,
    body: list[str],
    *,
    role: str = "img",
) -> Markup:
    """The ``<svg>`` around a chart. A chart with links inside is a ``group``, not an
    ``img`` (an image cannot hold interactive content)."""
    head = (
        f'<svg class="chart" id="{chart_id}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="{role}" aria-labelledby="{chart_id}-t {chart_id}-d" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{chart_id}-t">{_e(title)}</title><desc id="{chart_id}-d">{_e(description)}'
        f"</desc>"
        f'<text class="chart-title" x="{width / 2}" y="18" text-anchor="middle">{_e(title)}'
        "</text>"
    )
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 - every text above is escaped


@dataclass(slots=True)
class _Axes:
    left: float
    top: float
    width: float
    height: float
    x0: float
    x1: float
    y0: float
    y1: float
    parts: list[str] = field(default_factory=list)

    def px(self, x: float) -> float:
        span = self.x1 - self.x0 or 1.0
        return self.left + (x - self.x0) / span * self.width

    def py(self, y: float) -> float:
        span = self.y1 - self.y0 or 1.0
        return self.top + self.height - (y - self.y0) / span * self.height


def _axes(
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    width: int,
    height: int,
    x_label: str,
    y_label: str,
    *,
    x_is_time: bool = False,
    x_ticks: bool = True,
) -> _Axes:
    left, top, right, bottom = 64.0, 30.0, 16.0, 44.0
    y0, y1 = y_range
    if y0 == y1:
        y0, y1 = y0 - (abs(y0) * 0.1 or 1.0), y1 + (abs(y1) * 0.1 or 1.0)
    x0, x1 = x_range
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1
    ax = _Axes(left, top, width - left - right, height - top - bottom, x0, x1, y0, y1)
    base = ax.top + ax.height
    ax.parts.append(
        f'<g class="axis"><line x1="{left}" y1="{base}" x2="{left + ax.width}" y2="{base}"/>'
        f'<line x1="{left}" y1="{ax.top}" x2="{left}" y2="{base}"/>'
    )
    for value in ticks(y0, y1):
        y = ax.py(value)
        ax.parts.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + ax.width}" y2="{y:.1f}"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(value)}</text>'
        )
    for value in ticks(x0, x1, 6) if x_ticks else ():
        x = ax.px(value)
        text = _time_label(value) if x_is_time else _label(value)
        ax.parts.append(
            f'<line x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 4}"/>'
            f'<text x="{x:.1f}" y="{base + 16}" text-anchor="middle">{_e(text)}</text>'
        )
    ax.parts.append(
        f'<text class="axis-label" x="{left + ax.width / 2}" y="{height - 6}" '
        f'text-anchor="middle">{_e(x_label)}</text>'
        f'<text class="axis-label" transform="translate(14 {top + ax.height / 2}) rotate(-90)" '
        f'text-anchor="middle">{_e(y_label)}</text></g>'
    )
    return ax


def _time_label(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).strftime("%m-%d %H:%M")


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 640,
    height: int = 300,
    x_is_time: bool = False,
    limit: int = MAX_POINTS,
    markers: bool = False,
) -> Markup:
    """Lines, one per series, on shared axes, with a legend when there are several."""
    chart_id = f"chart-{next(_ids)}"
    drawn = [(s.name, *downsample(s.x, s.y, limit)) for s in series]
    xs = [v for _, x, _ in drawn for v in x]
    ys = [v for _, _, y in drawn for v in y]
    description = f"{len(drawn)} line(s) of {y_label} against {x_label}; " + "; ".join(
        f"{name}: {len(x)} points, last {_label(y[-1])}" for name, x, y in drawn if y
    )
    if not xs:
        return _frame(
            chart_id,
            width,
            80,
            title,
            "no finite values to draw",
            [f'<text x="{width / 2}" y="50" text-anchor="middle">no values to draw</text>'],
        )
    ax = _axes(
        (min(xs), max(xs)), (min(ys), max(ys)), width, height, x_label, y_label, x_is_time=x_is_time
    )
    for index, (name, x, y) in enumerate(drawn):
        colour = PALETTE[index % len(PALETTE)]
        path = " ".join(f"{ax.px(a):.1f},{ax.py(b):.1f}" for a, b in zip(x, y, strict=True))
        ax.parts.append(
            f'<polyline class="line" data-series="{_e(name)}" data-points="{len(x)}" '
            f'fill="none" stroke="{colour}" stroke-width="1.5" points="{path}">'
            f"<title>{_e(name)}</title></polyline>"
        )
        if markers or len(x) == 1:
            for a, b in zip(x, y, strict=True):
                ax.parts.append(
                    f'<circle cx="{ax.px(a):.1f}" cy="{ax.py(b):.1f}" r="3" fill="{colour}">'
                    f"<title>{_e(name)}: {_label(b)} at {_label(a)}</title></circle>"
                )
    if len(drawn) > 1:
        ax.parts.append(_legend([name for name, _, _ in drawn], ax.left + 8, ax.top + 4))
    return _frame(chart_id, width, height, title, description, ax.parts)


def _legend(names: Sequence[str], x: float, y: float) -> str:
    rows = []
    for index, name in enumerate(names[:12]):
        colour = PALETTE[index % len(PALETTE)]
        top = y + index * 16
        rows.append(
            f'<rect x="{x}" y="{top}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{top + 9}">{_e(name[:40])}</text>'
        )
    return f'<g class="legend">{"".join(rows)}</g>'


def bar_chart(
    labels: Sequence[str],
    groups: Mapping[str, Sequence[float]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 640,
    height: int = 280,
) -> Markup:
    """Vertical bars per label, one bar per group (e.g. reference and current) side by side."""
    chart_id = f"chart-{next(_ids)}"
    names = list(groups)
    values = [v for vs in groups.values() for v in vs if math.isfinite(v)]
    description = f"{len(labels)} bars of {y_label} by {x_label}"
    if not labels or not values:
        return _frame(
            chart_id,
            width,
            80,
            title,
            "nothing to draw",
            [f'<text x="{width / 2}" y="50" text-anchor="middle">nothing to draw</text>'],
        )
    top = max(values)
    low = min(0.0, min(values))
    # the x axis is marked with the labels below, not with numbered ticks
    ax = _axes((0, len(labels)), (low, top), width, height, x_label, y_label, x_ticks=False)
    slot = ax.width / len(labels)
    bar = slot * 0.8 / max(1, len(names))
    base = ax.py(max(low, 0.0))
    for i, label in enumerate(labels):
        for j, name in enumerate(names):
            value = groups[name][i]
            if not math.isfinite(value):
                continue
            x = ax.left + i * slot + slot * 0.1 + j * bar
            y = ax.py(value)
            ax.parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{min(y, base):.1f}" '
                f'width="{max(bar - 1, 1):.1f}" '
                f'height="{abs(base - y):.1f}" fill="{PALETTE[j % len(PALETTE)]}">'
                f"<title>{_e(label)} {_e(name)}: {_label(value)}</title></rect>"
            )
        if len(labels) <= 24 or i % math.ceil(len(labels) / 24) == 0:
            x = ax.left + (i + 0.5) * slot
            ax.parts.append(
                f'<text class="tick" x="{x:.1f}" y="{ax.top + ax.height + 14}" '
                f'text-anchor="middle">{_e(str(label)[:10])}</text>'
            )
    if len(names) > 1:
        ax.parts.append(_legend(names, ax.left + ax.width - 120, ax.top + 4))
    return _frame(chart_id, width, height, title, description, ax.parts)


def parallel_coordinates(
    rows: Sequence[Mapping[str, float | str]],
    axes: Sequence[str],
    *,
    title: str,
    names: Sequence[str],
    width: int = 720,
    height: int = 320,
) -> Markup:
    """One line per row across one vertical axis per column; the last axis is the outcome.

    Text values are placed as categories (in sorted order); the lines are coloured by row.
    """
    chart_id = f"chart-{next(_ids)}"
    width = min(width, 120 + 170 * max(1, len(axes) - 1))
    left, right, top, bottom = 50.0, 70.0, 44.0, 30.0
    span = (width - left - right) / max(1, len(axes) - 1)
    scales: list[tuple[bool, float, float, list[str]]] = []
    for key in axes:
        present = [row[key] for row in rows if key in row]
        numbers = [float(v) for v in present if _is_number(v)]
        if numbers and len(numbers) == len(present):
            scales.append((True, min(numbers), max(numbers), []))
        else:
            scales.append((False, 0.0, 0.0, sorted({str(v) for v in present})))
    inner = height - top - bottom

    def place(index: int, value: float | str) -> float:
        numeric, low, high, cats = scales[index]
        if numeric:
            share = 0.5 if high == low else (float(value) - low) / (high - low)
        else:
            share = 0.5 if len(cats) < 2 else cats.index(str(value)) / (len(cats) - 1)
        return top + inner - share * inner

    parts = []
    for index, key in enumerate(axes):
        x = left + index * span
        numeric, low, high, cats = scales[index]
        parts.append(
            f'<g class="axis"><line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + inner}"/>'
            f'<text class="axis-label" x="{x:.1f}" y="{top - 12}" text-anchor="middle">'
            f"{_e(key[-24:])}</text>"
        )
        marks = (
            [(_label(low), top + inner), (_label(high), top)]
            if numeric
            else [(c[:12], place(index, c)) for c in cats[:10]]
        )
        for text, y in marks:
            parts.append(f'<text x="{x + 4:.1f}" y="{y + 4:.1f}">{_e(text)}</text>')
        parts.append("</g>")
    for number, row in enumerate(rows):
        if not all(key in row for key in axes):
            continue
        points = " ".join(
            f"{left + i * span:.1f},{place(i, row[key]):.1f}" for i, key in enumerate(axes)
        )
        colour = PALETTE[number % len(PALETTE)]
        label = names[number] if number < len(names) else str(number)
        parts.append(
            f'<polyline class="line" data-series="{_e(label)}" fill="none" stroke="{colour}" '
            f'stroke-width="2" points="{points}"><title>{_e(label)}</title></polyline>'
        )
    description = f"{len(rows)} runs across {len(axes)} axes: " + ", ".join(axes)
    return _frame(chart_id, width, height, title, description, parts)


def _is_number(value: object) -> bool:
    if isinstance(value, int | float):
        return math.isfinite(float(value))
    try:
        return math.isfinite(float(str(value)))
    except ValueError:
        return False


_KIND_COLOURS = {
    "dataset": "#e8f1fb",
    "run": "#fdf0e6",
    "version": "#e6f5ef",
    "deployment": "#f7ebf3",
    "step": "#eef0f3",
}


def graph(
    nodes: Sequence[Node],
    edges: Sequence[Edge],
    *,
    title: str,
    width: int | None = None,
    status: Mapping[str, str] | None = None,
) -> Markup:
    """A layered drawing of a directed graph, sources on the left: each node sits one column
    right of its furthest predecessor."""
    chart_id = f"chart-{next(_ids)}"
    keys = [n.key for n in nodes]
    preds: dict[str, list[str]] = {k: [] for k in keys}
    for edge in edges:
        if edge.source in preds and edge.target in preds:
            preds[edge.target].append(edge.source)
    layer: dict[str, int] = {}

    def depth(key: str, seen: frozenset[str] = frozenset()) -> int:
        if key in layer:
            return layer[key]
        if key in seen:  # a cycle: draw it, do not loop
            return 0
        value = 1 + max((depth(p, seen | {key}) for p in preds[key]), default=-1)
        layer[key] = value
        return value

    for key in keys:
        depth(key)
    columns: dict[int, list[Node]] = {}
    for node in nodes:
        columns.setdefault(layer[node.key], []).append(node)
    box_w, box_h, gap_x, gap_y = 168.0, 44.0, 56.0, 18.0
    tallest = max((len(c) for c in columns.values()), default=1)
    drawn_w = int(width or max(320, len(columns) * (box_w + gap_x) + 20))
    height = int(40 + tallest * (box_h + gap_y) + 10)
    where: dict[str, tuple[float, float]] = {}
    for col, members in sorted(columns.items()):
        for row, node in enumerate(members):
            where[node.key] = (10 + col * (box_w + gap_x), 36 + row * (box_h + gap_y))
    parts = [
        f'<defs><marker id="{chart_id}-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#57606a"/></marker></defs>'
    ]
    for edge in edges:
        if edge.source not in where or edge.target not in where:
            continue
        (x1, y1), (x2, y2) = where[edge.source], where[edge.target]
        parts.append(
            f'<path class="edge" d="M {x1 + box_w:.1f} {y1 + box_h / 2:.1f} C '
            f"{x1 + box_w + gap_x / 2:.1f} {y1 + box_h / 2:.1f}, {x2 - gap_x / 2:.1f} "
            f'{y2 + box_h / 2:.1f}, {x2:.1f} {y2 + box_h / 2:.1f}" fill="none" stroke="#57606a" '
            f'marker-end="url(#{chart_id}-arrow)"><title>{_e(edge.source)} \u2192 '
            f"{_e(edge.target)} {_e(edge.label)}</title></path>"
        )
    for node in nodes:
        x, y = where[node.key]
        state = (status or {}).get(node.key, "")
        fill = _KIND_COLOURS.get(node.kind, "#ffffff")
        box = (
            f'<g class="node {_e(node.kind)} {_e(state)}" data-key="{_e(node.key)}">'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{box_w}" height="{box_h}" rx="6" '
            f'fill="{fill}" stroke="#57606a"/>'
            f'<text x="{x + 8:.1f}" y="{y + 18:.1f}" class="node-label">'
            f"{_e(node.label[:24])}</text>"
            f'<text x="{x + 8:.1f}" y="{y + 34:.1f}" class="node-detail">'
            f"{_e((node.detail or node.kind)[:28])}</text>"
            f"<title>{_e(node.label)} {_e(node.detail)}</title></g>"
        )
        if node.href:
            box = f'<a href="{_e(node.href)}">{box}</a>'
        parts.append(box)
    description = f"{len(nodes)} nodes and {len(edges)} edges, left to right"
    role = "group" if any(node.href for node in nodes) else "img"
    return _frame(chart_id, drawn_w, height, title, description, parts, role=role)
