"""The dashboards in process (web/dashboard.py, hq/office/dashboard.py, agent/manager.py):
every chart on the page shows its report's numbers. The test reads each chart back from
the page (the SVG's series and the table printed with it), follows the chart's link to its
report, runs that report itself (schema.reports) and compares.

HQ: the chain of tests/reportkit.py (two outlets, registrations, sales and
hand-outs over March-April 2024), with the office's clock on 30 April 2024. The outlet: a
real outlet file with sales made now through the till's code (agent.sales)."""

from __future__ import annotations

import html
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.etree import ElementTree

import pytest
from agentkit import line
from fastapi.testclient import TestClient
from reportkit import SeriesChain, build

import hq.office
from agent import customers, returns, sales
from agent.api import create_app
from agent.outlet import Outlet
from hq import staff
from hq.chain import Chain as HQ
from schema import reports
from schema.api import CustomerIn, QuoteIn, ReturnIn, ReturnLineIn, SaleIn
from schema.events import new_id
from schema.money import money

NS = {"s": "http://www.w3.org/2000/svg"}
PASSWORD = "a long enough password"
APRIL_30 = datetime(2024, 4, 30, 15, 0, tzinfo=UTC)


@dataclass
class Shown:
    """One chart as the page shows it."""
    key: str
    labels: list[str]
    series: dict[str, list[int]]  # from the SVG
    table: dict[str, list[int]]  # label -> the values in the chart's table
    report: str
    filters: reports.Filters
    empty: bool


def shown(page: str) -> dict[str, Shown]:
    """Every chart of a dashboard page: its SVG's series, its table, its report link."""
    found = {}
    for figure in re.findall(r'<figure class="chart-panel[^"]*".*?</figure>', page, re.DOTALL):
        svg = re.search(r"<svg.*?</svg>", figure, re.DOTALL)
        assert svg, figure[:200]
        assert "nan" not in svg.group(0).lower()
        root = ElementTree.fromstring(svg.group(0))
        key = root.get("id", "").removeprefix("chart-")
        labels = json.loads(root.get("data-labels", "[]"))
        series = {g.get("data-series", ""): [int(v) for v in g.get("data-values", "").split(",")]
                  for g in root.findall("s:g[@class='series']", NS)}
        table = {}
        for row in re.findall(r"<tr><th[^>]*>(.*?)</th>(.*?)</tr>",
                              figure.split("<tbody>", 1)[-1], re.DOTALL):
            table[html.unescape(row[0])] = [int(v) for v in re.findall(r'data-value="(-?\d+)"',
                                                                        row[1])]
        link = re.search(r'<a class="source" href="([^"]+)"', figure)
        assert link, key
        url = urlsplit(html.unescape(link.group(1)))
        args = dict(parse_qsl(url.query))
        found[key] = Shown(key, labels, series, table, url.path.rsplit("/", 1)[1],
                           reports.Filters(**args), root.find("s:text[@class='no-data']", NS)
                           is not None)
    return found


def expected(conn: Any, chart: Shown) -> dict[str, dict[str, int]]:
    """What the chart must show (series -> label -> value), from its report run here."""
    report = reports.run(conn, chart.report, chart.filters)
    rows = report.as_dicts()
    out: dict[str, dict[str, int]] = defaultdict(dict)
    if chart.key == "turnover-per-day":
        where = "outlet" if report.kind == "hq" else "till"
        for r in rows:
            out["Total"][r["day"]] = out["Total"].get(r["day"], 0) + r["net_of_returns"]
            out[f"{where.capitalize()} {r[where]}"][r["day"]] = r["net_of_returns"]
        if len(out) == 2:  # one outlet: the total alone
            out = defaultdict(dict, {"Total": out["Total"]})
    elif chart.key in ("outlets", "tills"):
        out["Net turnover"] = {r[chart.key[:-1]]: r["net_of_returns"] for r in rows}
    elif chart.key == "categories":
        out["Net turnover"] = {r["category"]: r["net_of_returns"] for r in rows}
    elif chart.key == "members":
        out["Joined"] = {r["week"]: r["joined"] for r in rows}
    elif chart.key == "activity":
        assert report.totals is not None
        totals = dict(zip((c.name for c in report.columns), report.totals, strict=True))
        for name, title in (("active", "Active"), ("lapsed", "Lapsed"),
                            ("never_bought", "Never bought")):
            out[title] = {"All categories": totals[name],
                          **{f"Category {r['category']}": r[name] for r in rows}}
    elif chart.key == "points":
        grain = chart.filters.by or "day"
        if report.kind == "hq":
            out["Outstanding points"] = {r[grain]: r["outstanding_points"] for r in rows}
        else:
            out["Points given"] = {r[grain]: r["points_earned"] for r in rows}
            out["Points taken back"] = {r[grain]: r["points_used"] for r in rows}
    elif chart.key == "ageing":
        names = {"current": "Current (not yet due)", "overdue": "Overdue",
                 "past_term": "Past term"}
        out["Owed"] = {names[r["status"]]: r["outstanding"] for r in rows}
    else:
        raise AssertionError(f"a chart this test does not know: {chart.key}")
    return dict(out)


def check(conn: Any, page: str, keys: set[str]) -> dict[str, Shown]:
    charts = shown(page)
    assert set(charts) == keys
    for chart in charts.values():
        want = expected(conn, chart)
        got = {name: dict(zip(chart.labels, values, strict=True))
               for name, values in chart.series.items()}
        if chart.empty:
            assert not any(v for s in want.values() for v in s.values()), chart.key
            continue
        assert got == want, chart.key
        # the table printed with the chart: the same numbers, label by label
        names = list(chart.series)
        assert chart.table == {label: [chart.series[n][i] for n in names]
                               for i, label in enumerate(chart.labels)}, chart.key
    return charts


# --- HQ -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> SeriesChain:
    return build(tmp_path_factory.mktemp("dashboard") / "hq.db")


@pytest.fixture(scope="module")
def chain_pg(chain: SeriesChain, pg_cluster: Any) -> Iterator[str]:
    """The same chain moved onto PostgreSQL (`loyalty hq migrate`): its database's URL."""
    from hq.store.migrate import migrate

    url = pg_cluster.database()
    migrate(chain.path, url)
    yield url
    pg_cluster.drop(url)


# HQ's stores (as tests/hq/hqkit.py STORES): PostgreSQL's cluster is a process (slow tier)
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def office(request: pytest.FixtureRequest, chain: SeriesChain) -> Iterator[TestClient]:
    """HQ's back office over the chain's file, or over the chain moved onto PostgreSQL
    (the pages' figures are checked against the reports on the file either way)."""
    hq_chain = HQ(request.getfixturevalue("chain_pg") if request.param == "postgresql"
                  else chain.path)
    with hq_chain.db.write() as conn:
        if staff.session_gen(hq_chain.db, "alice") is None:
            staff.add(conn, "alice", PASSWORD)
    client = TestClient(hq.office.app(hq_chain, clock=lambda: APRIL_30),
                        base_url="http://127.0.0.1")
    answer = client.post("/login", data={"username": "alice", "password": PASSWORD},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    yield client
    hq_chain.close()


HQ_CHARTS = {"turnover-per-day", "outlets", "categories", "members", "activity", "points",
             "ageing"}


@pytest.mark.parametrize("days", [30, 90, 365])
def test_every_chart_of_hqs_dashboard_shows_its_reports_numbers(
        chain: SeriesChain, office: TestClient, days: int) -> None:
    page = office.get("/dashboard", params={"days": days})
    assert page.status_code == 200, page.text
    conn = reports.connect(chain.path)
    try:
        charts = check(conn, page.text, HQ_CHARTS)
    finally:
        conn.close()
    turnover = charts["turnover-per-day"]
    assert turnover.filters.date_to == "2024-04-30" and len(turnover.labels) == days
    assert set(turnover.series) == {"Total", "Outlet N", "Outlet S"}
    assert charts["points"].filters.by == ("day" if days <= 90 else "week")
    assert not any(c.empty for c in charts.values() if c.key != "ageing")


def test_one_outlets_dashboard_and_the_headline_figures(chain: SeriesChain,
                                                       office: TestClient) -> None:
    page = office.get("/dashboard", params={"days": 30, "outlet": "S"}).text
    conn = reports.connect(chain.path)
    try:
        charts = check(conn, page, HQ_CHARTS)
        turnover = reports.run(conn, "turnover", reports.Filters(
            date_from="2024-04-01", date_to="2024-04-30", outlet="S"))
    finally:
        conn.close()
    assert set(charts["turnover-per-day"].series) == {"Total"}
    assert turnover.totals is not None
    assert re.search(rf'id="figure-net" data-value="{turnover.totals[7]}"', page)
    assert re.search(rf'id="figure-receipts" data-value="{turnover.totals[1]}"', page)


def test_the_report_pages_show_the_numbers_of_the_reports_on_the_file(
        chain: SeriesChain, office: TestClient) -> None:
    april = {"date_from": "2024-04-01", "date_to": "2024-04-30"}
    conn = reports.connect(chain.path)
    try:
        want = {name: reports.run(conn, name, reports.Filters(**april))
                for name in ("turnover", "discounts")}
    finally:
        conn.close()
    for name, report in want.items():
        page = office.get(f"/reports/{name}", params=april)
        assert page.status_code == 200, page.text
        assert report.totals is not None and money(report.totals[4]) in page.text
    pack = office.get("/reports/print", params=april)
    assert pack.status_code == 200 and money(want["turnover"].totals[4]) in pack.text  # type: ignore[index]


def test_a_dashboard_for_a_period_it_does_not_offer_is_refused(office: TestClient) -> None:
    refused = office.get("/dashboard", params={"days": 7})
    assert refused.status_code == 422 and "30, 90, 365 days" in refused.text
    assert office.get("/dashboard", params={"days": "x"}).status_code == 422


def test_an_empty_period_says_so_instead_of_drawing_zeros(chain: SeriesChain) -> None:
    hq_chain = HQ(chain.path)
    try:
        with hq_chain.db.write() as conn:
            if staff.session_gen(hq_chain.db, "alice") is None:
                staff.add(conn, "alice", PASSWORD)
        client = TestClient(hq.office.app(hq_chain, clock=lambda: datetime(2031, 1, 1,
                                                                             tzinfo=UTC)),
                            base_url="http://127.0.0.1")
        client.post("/login", data={"username": "alice", "password": PASSWORD})
        page = client.get("/dashboard").text
    finally:
        hq_chain.close()
    charts = shown(page)
    assert charts["turnover-per-day"].empty and charts["members"].empty
    assert "No receipts in this period." in page and "No one joined in this period." in page
    assert not charts["points"].empty  # the points customers hold did not go away


# --- the outlet ------------------------------------------------------------------------------
@pytest.fixture
def manager(outlet: Outlet) -> TestClient:
    return TestClient(create_app(outlet), base_url="http://127.0.0.1",
                      client=("127.0.0.1", 50000))


def test_every_chart_of_the_managers_dashboard_shows_the_outlets_reports(
        outlet: Outlet, manager: TestClient) -> None:
    made = []
    for surname, category in (("Novak", "A"), ("Horvat", "B")):
        who = customers.register(outlet, CustomerIn(kind="person", given_name="Ana",
                                                    surname=surname, category=category))
        for qty in (1, 3):
            lines = [line("COF", 450, qty)]
            quote = sales.quote(outlet, QuoteIn(card=who["card_number"], lines=lines))  # type: ignore[arg-type]
            answer, _ = sales.sell(outlet, SaleIn(
                card=who["card_number"], lines=lines,  # type: ignore[arg-type]
                payments=[{"mode": "cash", "amount": quote["total_net"]}]), new_id())  # type: ignore[list-item]
            made.append(answer)
    # one coffee of the last sale comes back: every turnover figure is net of it
    back, _ = returns.give_back(outlet, ReturnIn(sale_id=made[-1]["sale_id"], till_id="T1",
                                                 lines=[ReturnLineIn(sku="COF", qty=1)]), None)
    page = manager.get("/manager/dashboard", params={"days": 90})
    assert page.status_code == 200, page.text
    conn = reports.connect(outlet.db.path)
    try:
        charts = check(conn, page.text, HQ_CHARTS - {"outlets"} | {"tills"})
    finally:
        conn.close()
    assert set(charts["points"].series) == {"Points given", "Points taken back"}
    net = sum(s["total_net"] for s in made) - back["value"]
    assert re.search(rf'id="today-net" data-value="{net}"', page.text)
    assert re.search(rf'id="week-net" data-value="{net}"', page.text)
    assert re.search(r'id="today-receipts" data-value="4"', page.text)
    assert re.search(rf'id="today-returned" data-value="{back["value"]}"', page.text)
    today = manager.get("/manager/sales").text  # today's sales: what came back, and the net
    assert re.search(rf'id="today-returned" data-value="{back["value"]}"', today)
    assert re.search(rf'id="today-net-of-returns" data-value="{net}"', today)
    # no HQ: the sync state says so in words
    assert "not connected to head office" in page.text
