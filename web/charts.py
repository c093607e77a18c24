"""Charts as server-side SVG (issue 12; docs/backoffice.md "Dashboard"): pure functions of
the numbers, no JavaScript, nothing fetched from anywhere, so a chart shows without internet
and prints like text.

A `Chart` is data: a title, the labels along one axis (days, weeks, outlets, categories),
one or more `Series` of integer values (minor units for money, counts, points) and the
unit. `line`, `columns`, `bars` and `stacked` make one; `Chart.svg()` draws it and
`Chart.rows()` gives its numbers for the table printed beside it. The values are never
changed on the way: the test of a chart reads them back from its SVG (`data-labels` of the
chart, `data-values` of each series) and compares them with the report they came from.

- `line`: time series, one line per series (the first drawn heaviest: the total).
- `columns`: one series over time as vertical bars.
- `bars`: one series, a horizontal bar per label (outlets, categories, statuses).
- `stacked`: horizontal bars of several series stacked (active / lapsed / never).

Promises: every mark lies inside the plot area, whatever the values (negative, zero, huge:
the scale is integer "nice" ticks covering 0 and every value; coordinates are computed from
integers and never NaN); a chart with no labels, no series or only zeros draws its `empty`
message instead of axes pretending to show something; every text is escaped; accessible:
`role="img"` with a <title> and a <desc> summary, axis titles, a <title> tooltip on each bar
and point, and the numbers in a table beside it (the template's part); colours are told
apart in greyscale too (lightness steps for stacks, dash patterns for lines), and nothing
depends on colour alone (legends, labels). No `style` attributes: the pages' CSP refuses
inline styles, so presentation attributes only.
Must never: invent, round or drop a value; use floats for values (only for coordinates).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from markupsafe import Markup, escape

from schema.money import money

Kind = Literal["line", "columns", "bars", "stacked"]
Unit = Literal["money", "count"]

INK = "#1b1f23"
MUTED = "#5a6470"
GRID = "#d0d7de"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif"
BAR = "#1f5fa8"  # one series (lightness 40: a mid grey on paper)
# stacks: the first three far apart in lightness (28, 71, 90), so they read in greyscale
STACK = ("#0b3d91", "#e69f00", "#dde3ea", "#d55e00", "#56b4e9", "#7f3b08", "#009e73", "#cc79a7")
# lines after the first (the total: ink, solid, heavier): a colour and a dash pattern each
LINES = (("#1f5fa8", ""), ("#d55e00", "8 4"), ("#009e73", "3 3"), ("#cc79a7", "10 3 3 3"),
         ("#7f3b08", "1 3"), ("#e69f00", "6 2 2 2"))
WIDE = 960  # time charts: the width of the page
NARROW = 560  # bar charts: two side by side on a wide page
MARKERS_UP_TO = 62  # points marked (with their tooltip) on a line of at most this many


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[int, ...]


@dataclass(frozen=True)
class Chart:
    kind: Kind
    key: str  # unique on the page: the ids of its title and description
    title: str
    labels: tuple[str, ...]
    series: tuple[Series, ...]
    unit: Unit = "count"
    x_label: str = ""  # what the labels are (Day, Outlet...): the label axis, the table's head
    y_label: str = ""  # what the values are (Net turnover, Members...): the value axis
    empty: str = "No data for this period."

    def __post_init__(self) -> None:
        for s in self.series:
            if len(s.values) != len(self.labels):
                raise ValueError(f"series {s.name!r} has {len(s.values)} values for "
                                 f"{len(self.labels)} labels")
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in s.values):
                raise ValueError(f"series {s.name!r}: values must be integers")

    @property
    def is_empty(self) -> bool:
        return not self.labels or not self.series or not any(
            v for s in self.series for v in s.values)

    def text(self, value: int) -> str:
        """A value as people read it: 1,234.56 for money, 1,234 for a count."""
        return money(value) if self.unit == "money" else f"{value:,}"

    def rows(self) -> list[tuple[str, tuple[int, ...]]]:
        """(label, the value of each series) per label: the chart's table."""
        return [(label, tuple(s.values[i] for s in self.series))
                for i, label in enumerate(self.labels)]

    def svg(self) -> Markup:
        if self.is_empty:
            return _empty(self)
        if self.kind in ("line", "columns"):
            return _time(self)
        return _bars(self)


def _chart(kind: Kind, key: str, title: str, labels: Sequence[str],
           series: Sequence[tuple[str, Sequence[int]]], unit: Unit, x_label: str,
           y_label: str, empty: str) -> Chart:
    return Chart(kind, key, title, tuple(labels),
                 tuple(Series(name, tuple(values)) for name, values in series),
                 unit, x_label, y_label, empty)


def line(key: str, title: str, labels: Sequence[str],
         series: Sequence[tuple[str, Sequence[int]]], *, unit: Unit = "count",
         x_label: str = "", y_label: str = "", empty: str = "No data for this period.") -> Chart:
    return _chart("line", key, title, labels, series, unit, x_label, y_label, empty)


def columns(key: str, title: str, labels: Sequence[str], values: Sequence[int], *, name: str,
            unit: Unit = "count", x_label: str = "", y_label: str = "",
            empty: str = "No data for this period.") -> Chart:
    return _chart("columns", key, title, labels, [(name, values)], unit, x_label, y_label, empty)


def bars(key: str, title: str, labels: Sequence[str], values: Sequence[int], *, name: str,
         unit: Unit = "count", x_label: str = "", y_label: str = "",
         empty: str = "No data for this period.") -> Chart:
    return _chart("bars", key, title, labels, [(name, values)], unit, x_label, y_label, empty)


def stacked(key: str, title: str, labels: Sequence[str],
            series: Sequence[tuple[str, Sequence[int]]], *, unit: Unit = "count",
            x_label: str = "", y_label: str = "",
            empty: str = "No data for this period.") -> Chart:
    return _chart("stacked", key, title, labels, series, unit, x_label, y_label, empty)


# --- scales -----------------------------------------------------------------------------------
def nice_ticks(low: int, high: int, min_step: int = 1, most: int = 5) -> list[int]:
    """Integer ticks covering 0, `low` and `high`: a step of 1, 2 or 5 times a power of ten
    (at least `min_step`), at most `most` intervals. Integers only: exact for any size."""
    low, high = min(low, high, 0), max(low, high, 0)
    if low == high:
        return [0, min_step]
    magnitude = 1
    while True:
        for m in (1, 2, 5):
            step = m * magnitude
            if step < min_step:
                continue
            first, last = low // step, -(-high // step)
            if last - first <= most:
                return [i * step for i in range(first, last + 1)]
        magnitude *= 10


def _tick_text(chart: Chart, value: int) -> str:
    """A tick label: money in whole units where it is whole (ticks step by 1.00 at least)."""
    if chart.unit == "money" and value % 100 == 0:
        return f"{value // 100:,}"
    return chart.text(value)


def _scale(ticks: list[int], start: float, length: float, value: int) -> float:
    """Where `value` falls on an axis from `start` spanning `length` for ticks[0]..ticks[-1]."""
    return start + (value - ticks[0]) * length / (ticks[-1] - ticks[0])


def _width(text: str, size: float) -> float:
    """About how wide a text is drawn (a sans-serif averages 0.58 em per character)."""
    return len(text) * size * 0.58


# --- drawing ----------------------------------------------------------------------------------
def _n(v: float) -> str:
    return f"{v:.1f}"


def _text(x: float, y: float, text: str, size: float = 12, anchor: str = "start",
          fill: str = INK, extra: str = "", tip: str = "") -> str:
    """A text; `tip`, a tooltip (the whole of a shortened label)."""
    title = f"<title>{escape(tip)}</title>" if tip else ""
    return (f'<text x="{_n(x)}" y="{_n(y)}" font-size="{size}" text-anchor="{anchor}" '
            f'fill="{fill}"{extra}>{escape(text)}{title}</text>')


def _frame(x: float, y: float, width: float, height: float) -> str:
    """The plot area, drawn as nothing: where every mark lies (the tests read it)."""
    return (f'<rect class="plot-area" x="{_n(x)}" y="{_n(y)}" width="{_n(width)}" '
            f'height="{_n(height)}" fill="none" stroke="none"/>')


def _open(chart: Chart, width: int, height: float) -> list[str]:
    k = escape(chart.key)
    labels = escape(json.dumps(list(chart.labels), ensure_ascii=False))
    return [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{chart.kind}" '
             f'id="chart-{k}" role="img" aria-labelledby="{k}-title {k}-desc" '
             f'data-labels="{labels}" '
             f'viewBox="0 0 {width} {_n(height)}" width="{width}" height="{_n(height)}" '
             f'font-family="{FONT}">'),
            f'<title id="{k}-title">{escape(chart.title)}</title>',
            f'<desc id="{k}-desc">{escape(_describe(chart))}</desc>']


def _describe(chart: Chart) -> str:
    what = {"line": "Line chart", "columns": "Column chart", "bars": "Bar chart",
            "stacked": "Stacked bar chart"}[chart.kind]
    span = (f"{len(chart.labels)} {chart.x_label.lower() or 'labels'} from {chart.labels[0]} "
            f"to {chart.labels[-1]}") if chart.labels else "no labels"
    names = ", ".join(s.name for s in chart.series)
    return (f"{what} of {chart.y_label.lower() or 'values'}: {span}; {names}. "
            "The numbers are in the table that follows the chart.")


def _empty(chart: Chart) -> Markup:
    width = WIDE if chart.kind in ("line", "columns") else NARROW
    out = _open(chart, width, 90)
    out.append(f'<rect x="0.5" y="0.5" width="{width - 1}" height="89" fill="none" '
               f'stroke="{GRID}" stroke-dasharray="4 3"/>')
    out.append(_text(width / 2, 50, chart.empty, 14, "middle", MUTED, ' class="no-data"'))
    out.append("</svg>")
    return Markup("\n".join(out))


def _legend(chart: Chart, width: int, y: float, kind: str) -> list[str]:
    """One row of swatches and names (wrapping when it runs out of width)."""
    out, x = [], 0.0
    for i, s in enumerate(chart.series):
        w = 34 + _width(s.name, 12) + 18
        if x and x + w > width:
            x, y = 0.0, y + 18
        if kind == "line":
            colour, dash, stroke = _line_style(i)
            out.append(f'<line x1="{_n(x)}" y1="{_n(y - 4)}" x2="{_n(x + 28)}" y2="{_n(y - 4)}" '
                       f'stroke="{colour}" stroke-width="{stroke}"'
                       + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
        else:
            out.append(f'<rect x="{_n(x)}" y="{_n(y - 11)}" width="28" height="12" '
                       f'fill="{STACK[i % len(STACK)]}" stroke="{INK}" stroke-width="0.5"/>')
        out.append(_text(x + 34, y, s.name, 12))
        x += w
    return out


def _legend_height(chart: Chart, width: int) -> float:
    rows, x = 1, 0.0
    for s in chart.series:
        w = 34 + _width(s.name, 12) + 18
        if x and x + w > width:
            rows, x = rows + 1, 0.0
        x += w
    return rows * 18.0


def _line_style(i: int) -> tuple[str, str, float]:
    if i == 0:
        return INK, "", 3.0
    colour, dash = LINES[(i - 1) % len(LINES)]
    return colour, dash, 2.0


def _time(chart: Chart) -> Markup:
    """A line or column chart: labels along the bottom, values up the side."""
    size = 14.0
    values = [v for s in chart.series for v in s.values]
    step = 100 if chart.unit == "money" else 1
    ticks = nice_ticks(min(values), max(values), step)
    tick_texts = [_tick_text(chart, t) for t in ticks]
    width = WIDE
    n = len(chart.labels)
    label_w = max(_width(label, size) for label in chart.labels)
    legend = chart.kind == "line" and len(chart.series) > 1
    top = (_legend_height(chart, width) + 14 if legend else 0) + 12
    plot_h = 240.0
    height = top + plot_h + 64
    # room for the value labels and the axis title on the left, and for half a label along
    # the bottom at either end (a label is centred on its day)
    left = max(max(_width(t, size) for t in tick_texts) + 12 + (24 if chart.y_label else 0),
               label_w / 2 + 4)
    right = max(18.0, label_w / 2 + 4)
    plot_w = width - left - right
    bottom = top + plot_h
    out = _open(chart, width, height)
    out.append(_frame(left, top, plot_w, plot_h))
    if legend:
        out += _legend(chart, width, 16, "line")
    # value axis: grid lines and their labels
    for t, text in zip(ticks, tick_texts, strict=True):
        y = bottom - _scale(ticks, 0, plot_h, t)
        out.append(f'<line x1="{_n(left)}" y1="{_n(y)}" x2="{_n(width - right)}" y2="{_n(y)}" '
                   f'stroke="{INK if t == 0 else GRID}" stroke-width="{1 if t == 0 else 0.7}"/>')
        out.append(_text(left - 6, y + size * 0.35, text, size, "end", MUTED))
    if chart.y_label:
        cy = top + plot_h / 2
        out.append(_text(16, cy, chart.y_label, size, "middle", INK,
                         f' transform="rotate(-90 16 {_n(cy)})"'))
    # where each label sits; every k-th label is written, counted back from the last (the
    # latest day is the one people look for), as many as fit without touching
    if chart.kind == "columns":
        band = plot_w / n
        xs = [left + band * (i + 0.5) for i in range(n)]
    else:
        band = plot_w / max(n - 1, 1)
        xs = [left + plot_w / 2] if n == 1 else [left + band * i for i in range(n)]
    every = max(1, math.ceil((label_w + 16) / band)) if n > 1 else 1
    for i in range(n - 1, -1, -every):
        out.append(f'<line x1="{_n(xs[i])}" y1="{_n(bottom)}" x2="{_n(xs[i])}" '
                   f'y2="{_n(bottom + 5)}" stroke="{INK}" stroke-width="0.7"/>')
        out.append(_text(xs[i], bottom + 21, chart.labels[i], size, "middle", MUTED))
    if chart.x_label:
        out.append(_text(left + plot_w / 2, height - 12, chart.x_label, size, "middle"))
    zero = bottom - _scale(ticks, 0, plot_h, 0)
    for si, s in enumerate(chart.series):
        out.append(f'<g class="series" data-series="{escape(s.name)}" '
                   f'data-values="{",".join(str(v) for v in s.values)}">')
        ys = [bottom - _scale(ticks, 0, plot_h, v) for v in s.values]
        if chart.kind == "columns":
            w = max(band * 0.7, 1.0)
            for i, (x, y, v) in enumerate(zip(xs, ys, s.values, strict=True)):
                out.append(f'<rect x="{_n(x - w / 2)}" y="{_n(min(y, zero))}" width="{_n(w)}" '
                           f'height="{_n(abs(zero - y))}" fill="{BAR}">'
                           f"<title>{escape(chart.labels[i])}: {escape(chart.text(v))}</title>"
                           "</rect>")
        else:
            colour, dash, stroke = _line_style(si)
            points = " ".join(f"{_n(x)},{_n(y)}" for x, y in zip(xs, ys, strict=True))
            out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                       f'stroke-width="{stroke}" stroke-linejoin="round"'
                       + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
            if n <= MARKERS_UP_TO or n == 1:
                for i, (x, y, v) in enumerate(zip(xs, ys, s.values, strict=True)):
                    out.append(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="{3 if si == 0 else 2.5}" '
                               f'fill="{colour}"><title>{escape(s.name)}, '
                               f"{escape(chart.labels[i])}: {escape(chart.text(v))}</title>"
                               "</circle>")
        out.append("</g>")
    out.append("</svg>")
    return Markup("\n".join(out))


def _bars(chart: Chart) -> Markup:
    """Horizontal bars, one row per label; several series are stacked (positive values to
    the right of 0, negative ones to the left)."""
    size = 12.0
    n = len(chart.labels)
    pos = [sum(max(s.values[i], 0) for s in chart.series) for i in range(n)]
    neg = [sum(min(s.values[i], 0) for s in chart.series) for i in range(n)]
    step = 100 if chart.unit == "money" else 1
    ticks = nice_ticks(min(neg), max(pos), step)
    tick_texts = [_tick_text(chart, t) for t in ticks]
    totals = [sum(s.values[i] for s in chart.series) for i in range(n)]
    shown = [_short(label) for label in chart.labels]
    width = NARROW
    legend = chart.kind == "stacked"
    top = (_legend_height(chart, width) + 12 if legend else 0) + 6
    row, thick = 30.0, 20.0
    left = min(max(_width(s, size) for s in shown) + 12, 190.0)
    right = max(_width(chart.text(t), size) for t in totals) + 14
    right = max(right, _width(tick_texts[-1], size) / 2 + 4)
    plot_w = width - left - right
    plot_h = row * n
    bottom = top + plot_h
    height = bottom + 26 + (22 if chart.y_label else 0) + 6
    out = _open(chart, width, height)
    out.append(_frame(left, top, plot_w, plot_h))
    if legend:
        out += _legend(chart, width, 16, "stacked")
    for t, text in zip(ticks, tick_texts, strict=True):
        x = _scale(ticks, left, plot_w, t)
        out.append(f'<line x1="{_n(x)}" y1="{_n(top)}" x2="{_n(x)}" y2="{_n(bottom)}" '
                   f'stroke="{INK if t == 0 else GRID}" stroke-width="{1 if t == 0 else 0.7}"/>')
        anchor = "end" if t == ticks[-1] and t != ticks[0] else "middle"
        out.append(_text(x, bottom + 16, text, size, anchor, MUTED))
    if chart.y_label:  # the values run along the bottom
        out.append(_text(left + plot_w / 2, bottom + 38, chart.y_label, size, "middle"))
    zero = _scale(ticks, left, plot_w, 0)
    for i, label in enumerate(chart.labels):
        y = top + row * i + (row - thick) / 2
        out.append(_text(left - 8, y + thick / 2 + size * 0.35, shown[i], size, "end",
                         tip=label if shown[i] != label else ""))
    for si, s in enumerate(chart.series):
        colour = BAR if chart.kind == "bars" else STACK[si % len(STACK)]
        out.append(f'<g class="series" data-series="{escape(s.name)}" '
                   f'data-values="{",".join(str(v) for v in s.values)}">')
        for i, v in enumerate(s.values):
            if v == 0:
                continue
            before = sum(o.values[i] for o in chart.series[:si] if (o.values[i] > 0) == (v > 0))
            x0 = _scale(ticks, left, plot_w, before)
            x1 = _scale(ticks, left, plot_w, before + v)
            y = top + row * i + (row - thick) / 2
            a, b = min(x0, x1), max(x0, x1)
            tip = f"{chart.labels[i]}, {s.name}: {chart.text(v)}" if len(chart.series) > 1 \
                else f"{chart.labels[i]}: {chart.text(v)}"
            out.append(f'<rect x="{_n(a)}" y="{_n(y)}" width="{_n(max(b - a, 0.5))}" '
                       f'height="{_n(thick)}" fill="{colour}" stroke="#fff" stroke-width="1">'
                       f"<title>{escape(tip)}</title></rect>")
            text = chart.text(v)
            if chart.kind == "stacked" and b - a > _width(text, 11) + 8:
                out.append(_text((a + b) / 2, y + thick / 2 + 4, text, 11, "middle",
                                 "#fff" if _dark(colour) else INK))
        out.append("</g>")
    for i, total in enumerate(totals):
        y = top + row * i + row / 2 + size * 0.35
        end = _scale(ticks, left, plot_w, pos[i])
        out.append(_text(max(end, zero) + 5, y, chart.text(total), size, "start", INK,
                         ' class="total"'))
    out.append("</svg>")
    return Markup("\n".join(out))


def _short(label: str, most: int = 28) -> str:
    return label if len(label) <= most else label[:most - 1] + "…"


def _dark(colour: str) -> bool:
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b < 140
