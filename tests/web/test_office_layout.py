"""One back-office base for both services (issue 10), seen from outside over the shop's real
processes: HQ's office and the outlet's manager pages serve the same stylesheet and script,
the manager's pages show times the way `loyalty status` does, and the pages people use most
fit a narrow window (screenshots at 1280 and 800 px under tests/artefacts/web/)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium.webdriver.common.by import By
from test_backoffice import signed_in
from webkit import ARTEFACTS, Shop, today

pytestmark = pytest.mark.timeout(180)

LOCAL_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d \((just now|\d+ (min|h|days) ago|in .+)\)$")
WIDTHS = (1280, 800)


def shot_at(driver: Any, name: str, width: int) -> Path:
    """A full-page screenshot at a window `width`, kept as `layout-NAME-WIDTH.png`."""
    driver.set_window_size(width, 1000)
    height = int(driver.execute_script(
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"))
    driver.set_window_size(width, min(max(height + 120, 700), 6000))
    path = ARTEFACTS / f"layout-{name}-{width}.png"
    driver.save_screenshot(str(path))
    return path


def test_both_back_offices_serve_one_stylesheet_and_one_script(shop: Shop) -> None:
    for name in ("office.css", "office.js"):
        hq = requests.get(f"{shop.office}/static/{name}", timeout=10)
        outlet = requests.get(f"{shop.manager}/static/{name}", timeout=10)
        assert hq.status_code == outlet.status_code == 200, name
        assert hq.content == outlet.content, name
        assert hq.headers["content-type"] == outlet.headers["content-type"]
    assert requests.get(f"{shop.manager}/static/../api.py", timeout=10).status_code == 404


def test_the_manager_pages_show_times_as_loyalty_status_does(shop: Shop) -> None:
    page = requests.get(shop.manager + "/", timeout=10).text
    synced = re.search(r'<td id="last-sync">([^<]*)</td>', page)
    assert synced and LOCAL_TIME.match(synced.group(1)), page
    ana = shop.customers["ana"]["customer_id"]
    card = requests.get(f"{shop.manager}/customers/{ana}", timeout=10).text
    receipts = card.split('id="receipts"', 1)[1]
    shown = re.findall(r"<tr><td>([^<]*)</td><td>[^<]*</td><td class=\"num\">", receipts)
    assert shown and all(LOCAL_TIME.match(t) for t in shown), shown
    assert "(UTC)" not in card.split("<main>", 1)[1]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_pages_people_use_most_fit_the_window(shop: Shop, browser: Any, width: int) -> None:
    signed_in(browser, shop)
    day = today().isoformat()
    ana = shop.customers["ana"]["customer_id"]
    pages = {"hq-home": shop.office + "/",
             "hq-customer-card": f"{shop.office}/customers/{ana}",
             "hq-report-turnover": f"{shop.office}/reports/turnover?date_from={day}&date_to={day}",
             "hq-outlets": shop.office + "/outlets",
             "agent-status": shop.manager + "/"}
    try:
        for name, url in pages.items():
            browser.get(url)
            assert browser.find_element(By.CSS_SELECTOR, "header.nav a.brand")
            shot_at(browser, name, width)
            for box in ("document.documentElement", "document.querySelector('main')"):
                wide = browser.execute_script(f"return {box}.scrollWidth - {box}.clientWidth")
                assert wide <= 1, f"{name}: {box} is {wide} px wider than a {width} px window"
    finally:
        browser.set_window_size(1280, 1000)
