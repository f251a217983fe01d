"""Pieces of Shipyard's self-contained HTML reports: the stylesheet, tables, number
formatting and matplotlib figures inlined as base64 PNGs.

Shared by the validation report and the monitoring report; matplotlib is imported only when a
figure is made.
"""

from __future__ import annotations

import base64
import io
import math
import re
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure

__all__ = [
    "CSS",
    "DASH",
    "facts",
    "figure",
    "is_number",
    "num",
    "page",
    "pct",
    "percent_axis",
    "plot_text",
    "png",
    "sig",
    "subplots",
    "table",
]

DASH = "\u2013"
"""What a table shows for a value that could not be computed (an en dash)."""

_NUMERIC = re.compile("^(\u2013|" r"\[?-?[0-9.]+(e[-+]?[0-9]+)?(, -?[0-9.]+(e[-+]?[0-9]+)?\])?)$")

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #1f2328; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; border-bottom: 1px solid #d0d7de; padding-bottom: .2rem;
     margin-top: 2rem; }
h3 { font-size: 1rem; margin-bottom: .3rem; }
.sub { color: #59636e; margin-top: 0; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f6f8fa; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
.plots img { max-width: 100%; border: 1px solid #eaeef2; }
.pass, .fail, .warn { display: inline-block; padding: .3rem .8rem; border-radius: 4px;
                      font-weight: 600; }
.pass { background: #dafbe1; color: #116329; }
.warn { background: #fff8c5; color: #7d4e00; }
.fail { background: #ffebe9; color: #a40e26; }
.better { color: #116329; font-weight: 600; } .worse { color: #a40e26; font-weight: 600; }
.note { color: #59636e; }
"""
"""The stylesheet every report starts from; a report may append its own rules."""


def num(value: float | None, digits: int = 4) -> str:
    """``value`` with a fixed number of decimals, an en dash for None and NaN."""
    if value is None or math.isnan(value):
        return DASH
    return f"{value:.{digits}f}"


def sig(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits (whole numbers from ``10**digits`` on, never
    an exponent there), an en dash for None, NaN and infinities."""
    if value is None or not math.isfinite(value):
        return DASH
    if abs(value) >= 10**digits:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def pct(value: float | None) -> str:
    """``value`` as a percentage with one decimal, an en dash for None, NaN and infinities."""
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value:.1%}"


def plot_text(text: object, limit: int = 32) -> str:
    """Text for a matplotlib label: shortened, ``$`` escaped so it is never read as math."""
    s = str(text)
    s = s if len(s) <= limit else s[: limit - 1] + "\u2026"
    return s.replace("$", r"\$")


def is_number(cell: str) -> bool:
    """Whether a table cell holds a number (or an en dash), to right-align it."""
    return _NUMERIC.match(cell) is not None


def png(figure: Figure) -> str:
    """The figure as an ``<img>`` whose source is an inline base64 PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def figure(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure (inches) with one axes, made without pyplot's global state."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.add_subplot()


def subplots(width: float, height: float, columns: int) -> tuple[Figure, list[Axes]]:
    """A figure (inches) with ``columns`` axes side by side."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, columns, squeeze=False)
    return fig, [axes[0][i] for i in range(columns)]


def percent_axis(axis: Axis) -> None:
    """Label an axis of shares (0-1) as percentages."""
    from matplotlib.ticker import PercentFormatter

    axis.set_major_formatter(PercentFormatter(1.0))


def table(
    header: Sequence[str], rows: Sequence[Sequence[str]], row_classes: Sequence[str] = ()
) -> str:
    """An HTML table. ``header`` is escaped here; cells must already be HTML (escaped text).

    Numeric cells after the first column are right-aligned; ``row_classes`` (one CSS class
    per row, ``""`` for none) lets a report highlight rows.
    """
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        (f'<tr class="{row_classes[r]}">' if r < len(row_classes) and row_classes[r] else "<tr>")
        + "".join(
            f'<td class="n">{c}</td>' if i and is_number(c) else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for r, row in enumerate(rows)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def facts(rows: Sequence[tuple[str, str]]) -> str:
    """A two-column table of label and value: labels are escaped here, values must be HTML."""
    body = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="facts"><tbody>{body}</tbody></table>'


def page(title: str, body: str, css: str = CSS) -> str:
    """A complete HTML document with no external assets; ``title`` is escaped here."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{css}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
