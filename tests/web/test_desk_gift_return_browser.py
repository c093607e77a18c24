"""A gift taken back at the reception desk (issue 12; agent/desk.py over agent/returns.py
`give_gift_back`, the call of POST /v1/redemptions/{id}/return), in real headless Chromium
over the shop's real processes: the customer's hand-out of this outlet is listed on the gift
page; a double-clicked "Take back" gives one back once: the stock goes back up, the points
come back, a receipt and the card status print; the hand-out then shows "all given back",
and HQ gets the return. Screenshots `desk-gift-return-*` at 1280 and 800 px under
tests/artefacts/web/. The gift is the tote bag (handed out and given back: the gift
report's totals, which other tests count, stay as they were)."""

from __future__ import annotations

from typing import Any

import pytest
from agentkit import line
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from test_backoffice import hq_rows
from test_desk_browser import desk_signed_in
from test_office_layout import WIDTHS, shot_at
from webkit import Shop

pytestmark = pytest.mark.timeout(180)

TOTE = "GIFT-TOTE"


def stock_and_points(browser: Any) -> tuple[int, int]:
    stock = browser.find_element(By.CSS_SELECTOR, f"#gift-{TOTE} .stock")
    points = browser.find_element(By.ID, "points")
    return int(stock.get_attribute("data-value")), int(points.get_attribute("data-value"))


def test_a_double_clicked_gift_return_at_the_desk_puts_stock_and_points_back_once(
        shop: Shop, browser: Any) -> None:
    till = shop.a.till
    made = till.register("A", given_name="Rea", surname="Vrnitev")
    till.sold(made["card_number"], [line("WINE", 19_900, 10, "Wine")])
    shop.a.stock(TOTE, 1)  # a receipt of one
    handed = shop.a.redeem(made["card_number"], TOTE)
    assert handed.status_code == 201, handed.text
    rid = handed.json()["redemption_id"]
    desk = desk_signed_in(browser, shop)
    gifts = f"{desk}/customers/{made['customer_id']}/gifts"
    browser.get(gifts)
    stock, points = stock_and_points(browser)
    assert browser.find_element(By.CSS_SELECTOR, f"#handout-{rid} .returned").text == "0"
    browser.find_element(By.ID, f"return-reason-{rid}").send_keys("wrong colour")
    for width in WIDTHS:
        shot_at(browser, "desk-gift-return-form", width)
    browser.set_window_size(1280, 1000)
    ActionChains(browser).double_click(browser.find_element(By.ID, f"take-back-{rid}")).perform()
    WebDriverWait(browser, 15).until(EC.presence_of_element_located((By.ID, "receipt")))
    receipt = browser.find_element(By.ID, "receipt").text
    assert "Tote bag" in receipt and browser.find_element(By.ID, "card-statement").text
    assert made["card_number"] not in browser.page_source
    for width in WIDTHS:
        shot_at(browser, "desk-gift-return-receipt", width)
    browser.set_window_size(1280, 1000)
    browser.get(gifts)
    assert stock_and_points(browser) == (stock + 1, points + 800)
    assert "all given back" in browser.find_element(By.ID, f"handout-{rid}").text
    shop.rig.settled()  # the other browser tests read HQ: the return is there too
    rows = hq_rows(shop, "SELECT qty, points_returned FROM gift_returns WHERE "
                         "redemption_id = ?", (rid,))
    assert [tuple(r) for r in rows] == [(1, 800)]
