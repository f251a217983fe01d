"""How pages write values: times, durations, sizes and numbers (Jinja filters)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

__all__ = ["FILTERS", "GLOBALS", "duration", "number", "size", "when"]


def when(ms: int | None) -> str:
    """Milliseconds since the epoch as a UTC time to the second."""
    if ms is None:
        return "\u2013"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def when_s(seconds: float | int | None) -> str:
    return "\u2013" if seconds is None else when(int(seconds * 1000))


def duration(ms: int | float | None) -> str:
    if ms is None:
        return "\u2013"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def number(value: Any, digits: int = 4) -> str:
    """A number to ``digits`` significant digits; NaN and infinities by name."""
    if value is None or value == "":
        return "\u2013"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "\u221e" if value > 0 else "-\u221e"
    return f"{value:.{digits}g}"


def percent(value: float | None, digits: int = 1) -> str:
    return "\u2013" if value is None or math.isnan(value) else f"{value * 100:.{digits}f} %"


def size(count: int | None) -> str:
    if count is None:
        return "\u2013"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def short(run_id: str | None) -> str:
    return "" if not run_id else run_id[:8]


FILTERS = {
    "when": when,
    "when_s": when_s,
    "duration": duration,
    "number": number,
    "percent": percent,
    "size": size,
    "short": short,
}


def _link(path: str, **query: object) -> str:
    from shipyard.server.ui.pages import link

    return link(path, **query)


GLOBALS = {"link": _link}
