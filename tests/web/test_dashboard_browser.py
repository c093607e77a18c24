"""The dashboards in a real headless Chromium over the shop's real processes (HQ's
`loyalty hq serve`, outlet A's `loyalty agent serve`): the charts draw without internet,
fit a window of 1280 and 800 px (screenshots `layout-*-dashboard-*.png` under
tests/artefacts/web/), show the same figures as their reports, and print to PDF with the
numbers on the paper. The shop's chain is a day old; the chain of tests/reportkit.py (two
outlets, two months of sales, lapsed customers) is shown too, its office served in process
with the clock on 30 April 2024, so a chart with several lines and stacks is seen."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from reportkit import build
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from test_backoffice import hq_rows, money, signed_in
from test_office_layout import WIDTHS, shot_at
from webkit import PASSWORD, Shop, print_pdf, today

import hq.office
from hq import staff
from hq.chain import Chain
from web.serving import Background

pytestmark = pytest.mark.timeout(180)


def charts_on(driver: Any) -> dict[str, dict[str, Any]]:
    """Each chart of the page: its labels and series as its SVG carries them, its size."""
    found = {}
    for svg in driver.find_elements(By.CSS_SELECTOR, "svg.chart"):
        key = svg.get_attribute("id").removeprefix("chart-")
        series = {g.get_attribute("data-series"): [int(v) for v in
                                                    g.get_attribute("data-values").split(",")]
                  for g in svg.find_elements(By.CSS_SELECTOR, "g.series")}
        found[key] = {"labels": json.loads(svg.get_attribute("data-labels")), "series": series,
                      "width": svg.size["width"], "height": svg.size["height"]}
    return found


def outside_requests(driver: Any) -> list[str]:
    """Requests the page made to anything but this machine (the browser's network log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if not url.startswith(("http://127.0.0.1", "http://localhost", "data:", "about:")):
                urls.append(url)
    return urls


def fits(driver: Any, name: str, width: int) -> None:
    for box in ("document.documentElement", "document.querySelector('main')"):
        wide = driver.execute_script(f"return {box}.scrollWidth - {box}.clientWidth")
        assert wide <= 1, f"{name}: {box} is {wide} px wider than a {width} px window"


@pytest.mark.parametrize("width", WIDTHS)
def test_hqs_dashboard_draws_every_chart_without_internet_and_fits_the_window(
        shop: Shop, browser: Any, width: int) -> None:
    signed_in(browser, shop)
    browser.get_log("performance")  # forget what came before
    browser.set_window_size(width, 1000)
    browser.get(shop.office + "/dashboard?days=30")
    assert browser.find_element(By.CSS_SELECTOR, "header.nav nav a").text == "Dashboard"
    charts = charts_on(browser)
    assert set(charts) == {"turnover-per-day", "outlets", "categories", "members", "activity",
                           "points", "ageing"}
    assert all(c["width"] > 200 and c["height"] > 60 for c in charts.values()), charts
    assert outside_requests(browser) == []
    shot_at(browser, "hq-dashboard", width)
    fits(browser, "hq-dashboard", width)
    # the day's total is the turnover report's, and today is the last day of the chart
    everything = [s for sales in shop.sales.values() for s in sales]
    turnover = charts["turnover-per-day"]
    assert turnover["labels"][-1] == today().isoformat()
    assert turnover["series"]["Total"][-1] == sum(s["total_net"] for s in everything)
    assert charts["outlets"]["series"]["Net turnover"] == [sum(s["total_net"]
                                                               for s in everything)]
    owed = charts["ageing"]["series"]["Owed"]  # issued today, due later: all current
    unpaid = hq_rows(shop, "SELECT SUM(amount - paid_amount) FROM invoices WHERE status = ?",
                     ("unpaid",))[0][0]
    assert owed == [unpaid or 0, 0, 0]
    browser.set_window_size(1280, 1000)


def test_hqs_dashboard_prints_with_its_numbers(shop: Shop, browser: Any) -> None:
    signed_in(browser, shop)
    browser.get(shop.office + "/dashboard?days=30")
    pdf, text = print_pdf(browser, "hq-dashboard")
    assert pdf.read_bytes().startswith(b"%PDF-")
    if text:  # pdftotext is there: the paper has the charts' figures, not the menus
        everything = [s for sales in shop.sales.values() for s in sales]
        net = money(sum(s["total_net"] for s in everything))
        assert "Net turnover per day" in text and "Invoice ageing" in text
        assert text.count(net) >= 3  # the headline, the chart's axis/table, the outlets' bar
        assert today().isoformat() in text  # a row of the printed table
        unpaid = hq_rows(shop, "SELECT SUM(amount - paid_amount) FROM invoices")[0][0]
        assert money(unpaid) in text
        assert "Log out" not in text and "The numbers" not in text and "Show" not in text


@pytest.mark.parametrize("width", WIDTHS)
def test_the_managers_dashboard_says_the_sync_state_and_fits_the_window(
        shop: Shop, browser: Any, width: int) -> None:
    shop.rig.settled()
    browser.get_log("performance")
    browser.set_window_size(width, 1000)
    browser.get(shop.manager + "/dashboard")
    state = browser.find_element(By.ID, "sync-state").text
    assert "In sync with head office, last contact" in state, state
    a_sales = [s for sales in shop.sales.values() for s in sales]
    net = sum(s["total_net"] for s in a_sales)
    assert int(browser.find_element(By.ID, "today-net").get_attribute("data-value")) == net
    assert int(browser.find_element(By.ID, "week-net").get_attribute("data-value")) == net
    charts = charts_on(browser)
    assert charts["turnover-per-day"]["series"]["Total"][-1] == net
    assert set(charts["points"]["series"]) == {"Points given", "Points taken back"}
    assert outside_requests(browser) == []
    shot_at(browser, "agent-dashboard", width)
    fits(browser, "agent-dashboard", width)
    browser.set_window_size(1280, 1000)
    answer = requests.get(shop.manager + "/dashboard?days=365", timeout=30)
    assert answer.status_code == 200 and "Points given and taken back per week" in answer.text


@pytest.fixture(scope="module")
def april(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The office of the reportkit chain on 30 April 2024, served on loopback: its URL."""
    path: Path = tmp_path_factory.mktemp("april") / "hq.db"
    build(path)
    chain = Chain(path)
    with chain.db.write() as conn:
        staff.add(conn, "alice", PASSWORD)
    server = Background(hq.office.app(chain, clock=lambda: datetime(2024, 4, 30, 15,
                                                                    tzinfo=UTC)))
    try:
        yield server.url
    finally:
        server.stop()
        chain.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_chain_with_history_draws_lines_stacks_and_legends_that_fit(
        april: str, browser: Any, width: int) -> None:
    browser.delete_all_cookies()
    try:
        browser.get(april + "/login?next=/dashboard%3Fdays%3D90")
        if browser.find_elements(By.ID, "password"):
            browser.find_element(By.ID, "username").send_keys("alice")
            browser.find_element(By.ID, "password").send_keys(PASSWORD)
            browser.find_element(By.ID, "login").click()
        WebDriverWait(browser, 10).until(EC.presence_of_element_located((By.ID,
                                                                         "chart-points")))
        browser.set_window_size(width, 1000)
        charts = charts_on(browser)
        assert set(charts["turnover-per-day"]["series"]) == {"Total", "Outlet N", "Outlet S"}
        assert len(charts["turnover-per-day"]["labels"]) == 90
        assert set(charts["activity"]["series"]) == {"Active", "Lapsed", "Never bought"}
        shot_at(browser, "hq-dashboard-history", width)
        fits(browser, "hq-dashboard-history", width)
        if width == 1280:
            pdf, _ = print_pdf(browser, "hq-dashboard-history")
            assert pdf.read_bytes().startswith(b"%PDF-")
    finally:
        # this office's cookie (path /, host 127.0.0.1: ports do not count) would shadow
        # the shop's in the tests that follow
        browser.delete_all_cookies()
        browser.set_window_size(1280, 1000)
