"""web/charts.py in process: the SVG it draws, read back as XML. Every mark inside the plot
area whatever the values (hypothesis), no NaN, the values carried unchanged, an honest
"no data", escaping, and what makes a chart readable without colour or a mouse."""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any
from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from web import charts

NS = {"s": "http://www.w3.org/2000/svg"}
BIG = 10**15  # ten trillion in minor units: more than any chain's turnover


def parse(svg: str) -> ElementTree.Element:
    assert "nan" not in svg.lower() and "inf" not in svg.lower()
    return ElementTree.fromstring(svg)


def plot_area(root: ElementTree.Element) -> tuple[float, float, float, float]:
    box = root.find("s:rect[@class='plot-area']", NS)
    assert box is not None
    x, y = float(box.get("x", "")), float(box.get("y", ""))
    return x, y, x + float(box.get("width", "")), y + float(box.get("height", ""))


def series_values(root: ElementTree.Element) -> dict[str, list[int]]:
    return {g.get("data-series", ""): [int(v) for v in g.get("data-values", "").split(",")]
            for g in root.findall("s:g[@class='series']", NS)}


def marks_inside(root: ElementTree.Element) -> None:
    """Every bar, point and line vertex within the plot area (half a pixel of rounding)."""
    x0, y0, x1, y1 = plot_area(root)

    def inside(x: float, y: float) -> None:
        assert x0 - 0.5 <= x <= x1 + 0.5 and y0 - 0.5 <= y <= y1 + 0.5, (x, y, (x0, y0, x1, y1))

    for g in root.findall("s:g[@class='series']", NS):
        for rect in g.findall("s:rect", NS):
            x, y = float(rect.get("x", "")), float(rect.get("y", ""))
            w, h = float(rect.get("width", "")), float(rect.get("height", ""))
            assert w >= 0 and h >= 0
            inside(x, y)
            inside(x + w, y + h)
        for circle in g.findall("s:circle", NS):
            inside(float(circle.get("cx", "")), float(circle.get("cy", "")))
        for poly in g.findall("s:polyline", NS):
            for point in poly.get("points", "").split():
                x, y = (float(v) for v in point.split(","))
                inside(x, y)
    width = float(root.get("width", ""))
    for text in root.iter("{http://www.w3.org/2000/svg}text"):
        assert -1 <= float(text.get("x", "")) <= width + 1


values = st.integers(-BIG, BIG)


@settings(max_examples=60, deadline=None)
@given(st.data(), st.sampled_from(["line", "columns", "bars", "stacked"]),
       st.integers(1, 40), st.integers(1, 4))
def test_every_mark_is_inside_the_plot_and_the_values_are_carried_unchanged(
        data: Any, kind: str, n: int, k: int) -> None:
    labels = [f"2024-04-{i + 1:02d}" for i in range(n)]
    if kind in ("columns", "bars"):
        k = 1
    raw = [data.draw(st.lists(values, min_size=n, max_size=n)) for _ in range(k)]
    if kind == "stacked":
        raw = [[abs(v) for v in vs] for vs in raw] if data.draw(st.booleans()) else raw
    series = [(f"S{i}", vs) for i, vs in enumerate(raw)]
    unit = data.draw(st.sampled_from(["money", "count"]))
    if kind == "line":
        chart = charts.line("c", "T", labels, series, unit=unit, y_label="Net")
    elif kind == "stacked":
        chart = charts.stacked("c", "T", labels, series, unit=unit)
    elif kind == "columns":
        chart = charts.columns("c", "T", labels, raw[0], name="S0", unit=unit)
    else:
        chart = charts.bars("c", "T", labels, raw[0], name="S0", unit=unit)
    root = parse(str(chart.svg()))
    if chart.is_empty:
        assert root.find("s:text[@class='no-data']", NS) is not None
        return
    assert series_values(root) == {name: list(vs) for name, vs in series}
    marks_inside(root)


@given(st.integers(-BIG, BIG), st.integers(-BIG, BIG), st.sampled_from([1, 100]))
def test_ticks_are_round_integers_covering_zero_and_both_ends(low: int, high: int,
                                                             min_step: int) -> None:
    ticks = charts.nice_ticks(low, high, min_step)
    assert ticks[0] <= min(low, high, 0) and ticks[-1] >= max(low, high, 0)
    assert 0 in ticks and len(ticks) <= 6 and ticks == sorted(set(ticks))
    steps = {b - a for a, b in pairwise(ticks)}
    assert len(steps) == 1
    step = steps.pop()
    assert step >= min_step and re.fullmatch(r"[125]0*", str(step))


def test_no_data_is_said_and_no_axes_pretend_otherwise() -> None:
    for chart in (charts.line("a", "Turnover", [], []),
                  charts.line("b", "Turnover", ["2024-04-01", "2024-04-02"], [("Total", [0, 0])]),
                  charts.bars("c", "Outlets", [], [], name="Net", empty="No receipts."),
                  charts.stacked("d", "Members", ["A"], [])):
        assert chart.is_empty
        root = parse(str(chart.svg()))
        said = root.find("s:text[@class='no-data']", NS)
        assert said is not None and said.text in ("No data for this period.", "No receipts.")
        assert root.find("s:g[@class='series']", NS) is None
        assert root.find("s:rect[@class='plot-area']", NS) is None


def test_a_chart_is_accessible_and_readable_without_colour() -> None:
    chart = charts.line("turnover", "Turnover per day", ["2024-04-01", "2024-04-02"],
                        [("Total", [100, 250]), ("A", [100, 50]), ("B", [0, 200])],
                        unit="money", x_label="Day", y_label="Net turnover")
    svg = str(chart.svg())
    root = parse(svg)
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "turnover-title turnover-desc"
    assert root.find("s:title", NS).text == "Turnover per day"  # type: ignore[union-attr]
    assert "table" in root.find("s:desc", NS).text  # type: ignore[union-attr]
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "Day" in texts and "Net turnover" in texts and {"Total", "A", "B"} <= set(texts)
    tips = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert "B, 2024-04-02: 2.00" in tips
    # lines differ by dash pattern and weight, not only by colour
    lines = root.findall(".//s:polyline", NS)
    assert len({(p.get("stroke-dasharray"), p.get("stroke-width")) for p in lines}) == 3
    assert "style=" not in svg  # the pages' CSP refuses inline styles
    assert chart.rows() == [("2024-04-01", (100, 100, 0)), ("2024-04-02", (250, 50, 200))]
    stacks = charts.stacked("m", "Members", ["A", "B"], [("active", [3, 1]), ("lapsed", [1, 0]),
                                                         ("never", [2, 2])])
    fills = [r.get("fill") for r in parse(str(stacks.svg())).findall(".//s:g/s:rect", NS)]
    lightness = sorted({_lightness(f or "") for f in fills})
    assert len(lightness) == 3 and min(b - a for a, b in pairwise(lightness)) > 15


def _lightness(colour: str) -> float:
    """CIE L* of an sRGB colour: how light it prints in greyscale."""
    lin = []
    for i in (1, 3, 5):
        c = int(colour[i:i + 2], 16) / 255
        lin.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    y = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return 116 * y ** (1 / 3) - 16 if y > 0.008856 else 903.3 * y


def test_every_text_is_escaped() -> None:
    nasty = '<script>alert("x")</script> & Co'
    chart = charts.bars("x", nasty, [nasty, "B"], [1, 2], name=nasty, x_label=nasty)
    svg = str(chart.svg())
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    root = parse(svg)
    assert root.find("s:title", NS).text == nasty  # type: ignore[union-attr]


def test_a_series_of_the_wrong_length_or_not_of_integers_is_refused() -> None:
    with pytest.raises(ValueError, match="2 values for 3 labels"):
        charts.line("x", "T", ["a", "b", "c"], [("S", [1, 2])])
    with pytest.raises(ValueError, match="integers"):
        charts.bars("x", "T", ["a"], [1.5], name="S")  # type: ignore[list-item]


def test_money_ticks_are_whole_units_and_values_have_cents() -> None:
    chart = charts.bars("m", "Net", ["A", "B"], [123_456, 7_801], name="Net", unit="money")
    root = parse(str(chart.svg()))
    texts = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "1,234.56" in texts and "78.01" in texts  # the bars' values
    assert "1,400" in texts or "1,500" in texts  # a tick in whole units
    assert chart.text(-5) == "-0.05"
