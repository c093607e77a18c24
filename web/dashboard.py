"""The dashboard (issue 12; docs/backoffice.md "Dashboard"): the charts HQ's office and an
outlet's manager pages show, each drawn from ONE report of schema/reports.py over the
database it is given (HQ's: the chain; an outlet's: that outlet).

`build(database, days, today, outlet=None)` runs the reports for the last `days` days up to
`today` (UTC days, as every report) and returns a `Dashboard`: headline figures and one
`Panel` per chart, each with the report's name and filters (the page links to the report,
so every number on a chart can be read, printed or exported as the report itself).

What each chart takes from its report (and nothing else):
- turnover per day: `turnover --by day`; the total per day (the sum over outlets, or tills
  at an outlet), and the biggest outlets (tills) with the rest summed as "other";
- outlets (tills) side by side: `turnover`, net per outlet, biggest first;
- category mix: `turnover --by category`, net per customer category;
every turnover figure (charts and the headline) is the report's `net_of_returns`: net
less what returns and voids gave back, where and when they were made;
- members joining per week: `members --by week` (the first and last week may be partial);
- active and lapsed members: `activity --by category` as of today, the totals row first;
- points over time: `points-liability --by day` (by week over 365 days): at HQ the
  liability at each day's end; at an outlet the points it gave and took back;
- invoice ageing: `invoice-ageing`, what is owed per status (every invoice, any issue day).

Promises: a chart's numbers are its report's (tests/web/test_dashboard.py reads them back
from the SVG); the database is only read. Must never: compute a figure of its own from
the tables (a chart that needs a new figure needs a report first).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from schema import reports
from schema.errors import InvalidRequest
from web import charts

PERIODS = (30, 90, 365)  # days a dashboard covers
LINES_SHOWN = 5  # outlets (tills) drawn one by one on the turnover chart; the rest summed


@dataclass(frozen=True)
class Panel:
    chart: charts.Chart
    report: str  # the report it is drawn from
    filters: reports.Filters
    about: str  # what it counts, in a sentence
    wide: bool = False  # a time series: the page's whole width

    def query(self) -> dict[str, str]:
        """The report page's query string for the same figures."""
        f = self.filters
        return {k: v for k, v in (("date_from", f.date_from), ("date_to", f.date_to),
                                  ("outlet", f.outlet), ("by", f.by)) if v}


@dataclass(frozen=True)
class Dashboard:
    kind: str  # "hq" or "outlet"
    days: int
    date_from: str
    date_to: str
    outlet: str | None
    panels: list[Panel]
    figures: dict[str, int] = field(default_factory=dict)  # headline numbers (see build)


def period(days: int, today: date) -> tuple[str, str]:
    """The `days` days ending with `today` (both inclusive): (first day, last day)."""
    if days not in PERIODS:
        raise InvalidRequest(f"a dashboard covers {', '.join(map(str, PERIODS))} days, "
                             f"not {days}")
    return (today - timedelta(days=days - 1)).isoformat(), today.isoformat()


def build(database: str | Path | Any, days: int, today: date, outlet: str | None = None) -> Dashboard:
    """Every chart of the dashboard for the `days` days up to `today`; `outlet` (HQ) keeps
    one outlet's receipts and registrations (points and invoices stay chain-wide)."""
    first, last = period(days, today)
    with reports.reading(database) as conn:
        kind = reports.kind_of(conn)

        def run(name: str, f: reports.Filters) -> reports.Report:
            return reports.run(conn, name, f, names=reports.FORM_NAMES)

        span = reports.Filters(date_from=first, date_to=last, outlet=outlet)
        grain = "day" if days <= 90 else "week"
        made = [
            _turnover_per_day(run("turnover", replace(span, by="day")), replace(span, by="day"),
                              kind),
            _side_by_side(run("turnover", span), span, kind),
            _category_mix(run("turnover", replace(span, by="category")),
                          replace(span, by="category")),
            _members(run("members", replace(span, by="week")), replace(span, by="week")),
            _activity(run("activity", reports.Filters(date_to=last, outlet=outlet,
                                                      by="category")),
                      reports.Filters(date_to=last, outlet=outlet, by="category"), kind),
            _points(run("points-liability", reports.Filters(date_from=first, date_to=last,
                                                            by=grain)),
                    reports.Filters(date_from=first, date_to=last, by=grain), kind),
            _ageing(run("invoice-ageing", reports.Filters()), reports.Filters()),
        ]
    panels = [p for p, _ in made]
    figures: dict[str, int] = {}
    for _, found in made:
        figures.update(found)
    return Dashboard(kind, days, first, last, outlet, panels, figures)


# --- one chart per report ---------------------------------------------------------------------
def _column(report: reports.Report, name: str) -> int:
    return [c.name for c in report.columns].index(name)


def _total(report: reports.Report, name: str) -> int:
    assert report.totals is not None
    return int(report.totals[_column(report, name)])


def _turnover_per_day(report: reports.Report, f: reports.Filters,
                      kind: str) -> tuple[Panel, dict[str, int]]:
    where = "outlet" if kind == "hq" else "till"
    net: dict[str, dict[str, int]] = defaultdict(dict)  # outlet -> day -> net
    days: list[str] = []
    for row in report.as_dicts():
        if not days or days[-1] != row["day"]:
            days.append(row["day"])
        net[row[where]][row["day"]] = row["net_of_returns"]
    biggest = sorted(net, key=lambda k: (-sum(net[k].values()), k))
    total = [sum(net[k].get(d, 0) for k in net) for d in days]
    series: list[tuple[str, Sequence[int]]] = [("Total", total)]
    if len(net) > 1:
        shown = biggest[:LINES_SHOWN] if len(net) > LINES_SHOWN + 1 else biggest
        series += [(f"{where.capitalize()} {k}", [net[k].get(d, 0) for d in days])
                   for k in shown]
        rest = [k for k in biggest if k not in shown]
        if rest:
            series.append((f"{len(rest)} other {where}s",
                           [sum(net[k].get(d, 0) for k in rest) for d in days]))
    chart = charts.line("turnover-per-day", "Net turnover per day", days, series,
                        unit="money", x_label="Day (UTC)", y_label="Net turnover",
                        empty="No receipts in this period.")
    about = (f"Net turnover of each day (receipts' totals after discount, less what returns "
             f"gave back that day), in total and per "
             f"{where}" + (f"; the {LINES_SHOWN} biggest {where}s apart, the others summed"
                           if len(net) > LINES_SHOWN + 1 else "") + ".")
    return (Panel(chart, "turnover", f, about, wide=True),
            {"net": _total(report, "net_of_returns"), "receipts": _total(report, "receipts")})


def _side_by_side(report: reports.Report, f: reports.Filters,
                  kind: str) -> tuple[Panel, dict[str, int]]:
    where = "outlet" if kind == "hq" else "till"
    rows = sorted(report.as_dicts(), key=lambda r: (-r["net_of_returns"], r[where]))
    chart = charts.bars(f"{where}s", f"{where.capitalize()}s side by side",
                        [r[where] for r in rows], [r["net_of_returns"] for r in rows],
                        name="Net turnover",
                        unit="money", x_label=where.capitalize(),
                        y_label="Net turnover in the period",
                        empty="No receipts in this period.")
    return Panel(chart, "turnover", f, f"Net turnover of each {where} over the period, biggest "
                 "first."), {}


def _category_mix(report: reports.Report, f: reports.Filters) -> tuple[Panel, dict[str, int]]:
    rows = report.as_dicts()
    chart = charts.bars("categories", "Category mix", [r["category"] for r in rows],
                        [r["net_of_returns"] for r in rows], name="Net turnover", unit="money",
                        x_label="Category", y_label="Net turnover in the period",
                        empty="No receipts in this period.")
    return Panel(chart, "turnover", f, "Net turnover over the period by the customer's "
                 "current category."), {}


def _members(report: reports.Report, f: reports.Filters) -> tuple[Panel, dict[str, int]]:
    rows = report.as_dicts()
    chart = charts.columns("members", "Members joining per week", [r["week"] for r in rows],
                           [r["joined"] for r in rows], name="Joined",
                           x_label="Week (from Monday)", y_label="Members joining",
                           empty="No one joined in this period.")
    return (Panel(chart, "members", f, "Customers registered in each week (named by its "
                  "Monday; the first and last week count only the days in the period).",
                  wide=True),
            {"joined": _total(report, "joined"), "members": _total(report, "members")})


def _activity(report: reports.Report, f: reports.Filters,
              kind: str) -> tuple[Panel, dict[str, int]]:
    rows = report.as_dicts()
    labels = ["All categories", *(f"Category {r['category']}" for r in rows)]
    assert report.totals is not None
    every = dict(zip((c.name for c in report.columns), report.totals, strict=True))
    series = [(title, [every[name], *(r[name] for r in rows)])
              for name, title in (("active", "Active"), ("lapsed", "Lapsed"),
                                  ("never_bought", "Never bought"))]
    chart = charts.stacked("activity", "Active and lapsed members", labels, series,
                           x_label="Members", y_label="Members on the period's last day",
                           empty="No members yet.")
    here = " at this outlet" if kind == "outlet" else ""
    return (Panel(chart, "activity", f, f"Active: a receipt{here} in the last "
                  f"{reports.ACTIVE_DAYS} days; lapsed: receipts{here}, but none since; never "
                  "bought: none at all."),
            {"active": int(every["active"]), "lapsed": int(every["lapsed"])})


def _points(report: reports.Report, f: reports.Filters,
            kind: str) -> tuple[Panel, dict[str, int]]:
    grain = f.by or "day"
    rows = report.as_dicts()
    labels = [r[grain] for r in rows]
    if kind == "hq":
        chart = charts.line("points", "Points liability", labels,
                            [("Outstanding points", [r["outstanding_points"] for r in rows])],
                            x_label=f"{grain.capitalize()} (UTC)", y_label="Points outstanding",
                            empty="No points outstanding.")
        about = (f"The points customers hold, at the end of each {grain}: what the chain "
                 "owes in gifts.")
        found = {"points": rows[-1]["outstanding_points"]} if rows else {}
    else:
        chart = charts.line("points", f"Points given and taken back per {grain}", labels,
                            [("Points given", [r["points_earned"] for r in rows]),
                             ("Points taken back", [r["points_used"] for r in rows])],
                            x_label=f"{grain.capitalize()} (UTC)", y_label="Points",
                            empty="No points given or taken back in this period.")
        about = ("Points this outlet's receipts gave and its gift hand-outs took back; the "
                 "chain's liability is on HQ's dashboard.")
        found = {}
    return Panel(chart, "points-liability", f, about, wide=True), found


AGEING_LABELS = {"current": "Current (not yet due)", "overdue": "Overdue",
                 "past_term": "Past term"}


def _ageing(report: reports.Report, f: reports.Filters) -> tuple[Panel, dict[str, int]]:
    rows = report.as_dicts()
    chart = charts.bars("ageing", "Invoice ageing", [AGEING_LABELS[r["status"]] for r in rows],
                        [r["outstanding"] for r in rows], name="Owed", unit="money",
                        x_label="Status", y_label="Owed on consolidated invoices",
                        empty="Nothing is owed on invoices.")
    return (Panel(chart, "invoice-ageing", f, "What customers owe on consolidated invoices, "
                  "by how late it is."), {"owed": _total(report, "outstanding")})


def figures_text(dashboard: Dashboard) -> list[tuple[str, str, int, str]]:
    """The headline figures as (label, key, value, how it reads) for the page."""
    f = dashboard.figures
    shown = [("Net turnover", "net", True), ("Receipts", "receipts", False),
             ("Members joining", "joined", False), ("Active members", "active", False),
             ("Points outstanding", "points", False), ("Owed on invoices", "owed", True)]
    return [(label, key, f[key], charts.money(f[key]) if is_money else f"{f[key]:,}")
            for label, key, is_money in shown if key in f]
