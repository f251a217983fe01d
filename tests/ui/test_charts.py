"""The server-drawn SVG charts: downsampling keeps extremes, ticks are round, text is
escaped, graphs are layered."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

from hypothesis import assume, given
from hypothesis import strategies as st

from shipyard.server.ui import charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    """The chart as XML: it must be well-formed to be drawn inline."""
    return ET.fromstring(svg)  # noqa: S314 - our own output, not untrusted input


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=5000), st.integers(8, 400))
def test_downsampling_keeps_the_extremes_the_ends_and_the_order(
    values: list[float], limit: int
) -> None:
    steps = list(range(len(values)))
    xs, ys = charts.downsample(steps, values, limit)
    assert len(xs) <= max(len(values) if len(values) <= limit else 0, limit + 4)
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    assert max(ys) == max(values) and min(ys) == min(values)
    assert xs[0] == 0 and xs[-1] == len(values) - 1
    assert all(values[int(x)] == y for x, y in zip(xs, ys, strict=True))


def test_points_that_are_not_finite_are_left_out() -> None:
    xs, ys = charts.downsample([0, 1, 2, 3], [1.0, math.nan, math.inf, 2.0])
    assert (xs, ys) == ([0.0, 3.0], [1.0, 2.0])


@given(st.floats(-1e9, 1e9), st.floats(1e-6, 1e9))
def test_ticks_are_round_and_inside_the_range(low: float, span: float) -> None:
    assume(span >= abs(low) * 1e-4)  # narrower spans far from zero are beyond float precision
    high = low + span
    found = charts.ticks(low, high)
    assert 2 <= len(found) <= 12
    step = found[1] - found[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m, rel_tol=1e-3) for m in (1, 2, 5, 10))
    assert all(low - step * 1e-6 <= t <= high + step * 1e-6 for t in found)


def test_a_line_chart_is_valid_svg_with_title_axes_and_escaped_names() -> None:
    hostile = "<script>x</script>"
    svg = charts.line_chart(
        [charts.Series(hostile, [0, 1, 2], [3.0, 1.0, 2.0]), charts.Series("b", [0, 2], [1, 1])],
        title="loss by step",
        x_label="step",
        y_label="loss (nats)",
    )
    root = parse(str(svg))
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title").text == "loss by step"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "step" in texts and "loss (nats)" in texts
    lines = root.findall(f"{SVG}polyline")
    assert [line.get("data-series") for line in lines] == [hostile, "b"]
    assert "<script>" not in str(svg)
    assert len(lines[0].get("points").split()) == 3


def test_an_empty_chart_says_so_instead_of_failing() -> None:
    svg = charts.line_chart([charts.Series("x", [], [])], title="t", x_label="a", y_label="b")
    assert "no values to draw" in svg
    bars = charts.bar_chart([], {}, title="t", x_label="a", y_label="b")
    assert "nothing to draw" in bars


def test_bars_are_one_rect_per_label_and_group() -> None:
    svg = charts.bar_chart(
        ["a", "b", "c"],
        {"reference": [0.2, 0.5, 0.3], "current": [0.1, 0.6, 0.3]},
        title="plan",
        x_label="plan",
        y_label="share of rows",
    )
    assert len(re.findall(r'<rect class="bar"', svg)) == 6
    parse(str(svg))


def test_a_graph_places_each_node_right_of_its_inputs() -> None:
    nodes = [
        charts.Node("d", "data v1", "dataset"),
        charts.Node("r", "run", "run", href="/runs/x"),
        charts.Node("v", "model v2", "version"),
        charts.Node("dep", "prod", "deployment"),
    ]
    edges = [charts.Edge("d", "r"), charts.Edge("r", "v"), charts.Edge("v", "dep")]
    svg = str(charts.graph(nodes, edges, title="lineage", status={"r": "failed"}))
    root = parse(svg)
    xs = {}
    for group in root.iter(f"{SVG}g"):
        if group.get("data-key"):
            xs[group.get("data-key")] = float(group.find(f"{SVG}rect").get("x"))
    assert xs["d"] < xs["r"] < xs["v"] < xs["dep"]
    assert 'class="node run failed"' in svg and '<a href="/runs/x">' in svg
    assert len(root.findall(f".//{SVG}path[@class='edge']")) == 3


def test_a_cycle_is_drawn_without_looping_forever() -> None:
    nodes = [charts.Node("a", "a"), charts.Node("b", "b")]
    svg = charts.graph(nodes, [charts.Edge("a", "b"), charts.Edge("b", "a")], title="cycle")
    assert svg.count('<g class="node ') == 2


def test_parallel_coordinates_draw_one_line_per_complete_row() -> None:
    rows = [
        {"params.lr": 0.1, "params.model": "rf", "metrics.acc": 0.8},
        {"params.lr": 0.2, "params.model": "gbm", "metrics.acc": 0.9},
        {"params.lr": 0.3, "metrics.acc": 0.7},
    ]
    svg = charts.parallel_coordinates(
        rows, ["params.lr", "params.model", "metrics.acc"], title="p", names=["a", "b", "c"]
    )
    assert len(re.findall(r"<polyline", svg)) == 2
    parse(str(svg))
