"""The programme editor as an operator uses it (issue 12), in real headless Chromium over
HQ and outlet A as real processes (the session's `shop`): an operator creates a special
action sale in the browser, previews it, saves it, and a till's quote at outlet A then
shows it by name on the line it discounts. Screenshots of the programme page and the
preview at 1280 and 800 px under tests/artefacts/web/ (`layout-programme-*`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from chainkit import until
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select
from test_backoffice import hq_rows, login, wait
from test_office_layout import WIDTHS, shot_at
from testkit import line
from webkit import PASSWORD, Shop, staff_add, today

pytestmark = pytest.mark.timeout(240)

NAME = "Coffee week"


def test_an_operator_creates_a_special_action_sale_and_a_till_quote_shows_it(
        shop: Shop, browser: Any) -> None:
    staff_add(shop.rig.hq.db, "otto", PASSWORD, role="operator")
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    login(browser, shop, "otto", PASSWORD)
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "form.logout")))
    try:
        browser.find_element(By.ID, "nav-programme").click()
        browser.find_element(By.ID, "new-action").click()
        day = today()
        typed = {"a-action_id": "COFWEEK", "a-name": NAME, "a-discount": "20",
                 "a-skus": "BEANS", "a-reason": "slow week"}
        for element_id, text in typed.items():
            browser.find_element(By.ID, element_id).send_keys(text)
        for element_id, when in (("a-valid_from", day - timedelta(days=1)),
                                 ("a-valid_to", day + timedelta(days=7))):
            browser.execute_script("arguments[0].value = arguments[1]",
                                   browser.find_element(By.ID, element_id), when.isoformat())
        browser.find_element(By.ID, "preview-action").click()
        wait(browser, EC.presence_of_element_located((By.ID, "preview-changes")))
        preview = browser.find_element(By.ID, "preview").text
        assert "A new special action sale COFWEEK" in preview and NAME in preview
        assert not hq_rows(shop, "SELECT 1 FROM master WHERE kind = 'action' AND key = 'COFWEEK'")
        for width in WIDTHS:
            shot_at(browser, "programme-action-preview", width)
        browser.set_window_size(1280, 1000)
        browser.find_element(By.ID, "save-action").click()
        wait(browser, EC.presence_of_element_located((By.ID, "done")))
        assert "COFWEEK" in browser.find_element(By.ID, "kind-action").text
        for width in WIDTHS:
            shot_at(browser, "programme", width)
        [row] = hq_rows(shop, "SELECT staff, role FROM audit WHERE action = 'action.put' "
                              "AND subject = 'COFWEEK'")
        assert tuple(row) == ("otto", "operator")

        card = shop.customers["bor"]["card_number"]
        basket = [line("BEANS", 450, 2, "Coffee beans")]  # sold by no other test

        def discounted() -> list[str]:
            quoted = shop.a.till.quote(card, basket)["lines"][0]
            return [label for label in quoted["actions"] if NAME in label]

        until(lambda: discounted(), 30, what="outlet A prices beans with the new sale")
        quoted = shop.a.till.quote(card, basket)
        assert quoted["lines"][0]["discount"] > 0
        assert any(NAME in label for label in quoted["lines"][0]["actions"])
    finally:
        browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
        browser.set_window_size(1280, 1000)


def test_a_category_rule_change_previews_who_moves_and_applies(
        shop: Shop, browser: Any) -> None:
    rita = shop.a.till.register("A", given_name="Rita", surname="Rule")
    shop.a.till.sold(rita["card_number"], [line("YACHT", 900_000, 1, "Boat")])  # 9,000.00
    shop.rig.settled()
    staff_add(shop.rig.hq.db, "uma", PASSWORD, role="operator")
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    login(browser, shop, "uma", PASSWORD)
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "form.logout")))
    try:
        browser.get(shop.office + "/programme")
        browser.find_element(By.ID, "new-rule").click()
        Select(browser.find_element(By.ID, "r-category")).select_by_value("B")
        browser.find_element(By.ID, "r-min_turnover").send_keys("8.000,00")
        browser.find_element(By.ID, "r-reason").send_keys("big spenders")
        browser.find_element(By.ID, "preview-rule").click()
        wait(browser, EC.presence_of_element_located((By.ID, "preview-moves")))
        assert browser.find_element(By.ID, "preview-moves").text == \
            "1 customer moves from A to B"
        for width in WIDTHS:
            shot_at(browser, "programme-rule-preview", width)
        browser.set_window_size(1280, 1000)
        assert hq_rows(shop, "SELECT category FROM customers WHERE customer_id = ?",
                       (rita["customer_id"],))[0][0] == "A"  # a preview moves nobody
        browser.find_element(By.ID, "r-apply").click()
        browser.find_element(By.ID, "save-rule").click()
        wait(browser, EC.presence_of_element_located((By.ID, "done")))
        assert hq_rows(shop, "SELECT category FROM customers WHERE customer_id = ?",
                       (rita["customer_id"],))[0][0] == "B"
        until(lambda: shop.a.till.get(f"/v1/customers/{rita['customer_id']}").json()
              .get("category") == "B", 30, what="outlet A has Rita in category B")
    finally:
        browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
        browser.set_window_size(1280, 1000)


def test_the_edit_pages_fit_the_window(shop: Shop, browser: Any) -> None:
    """Screenshots (`layout-customer-edit-*`, `layout-outlets-admin-*`, `layout-category-*`)
    of the customer editor and the category editor as an operator, and of the outlets
    page with its forms as an administrator; nothing is changed."""
    staff_add(shop.rig.hq.db, "vic", PASSWORD, role="operator")
    ana = shop.customers["ana"]["customer_id"]
    try:
        for who, password, pages in (
                ("vic", PASSWORD, {"customer-edit": f"/customers/{ana}/edit",
                                   "category": "/programme/doc/category/edit/A"}),
                ("alice", PASSWORD, {"outlets-admin": "/outlets"})):
            browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
            login(browser, shop, who, password)
            wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "form.logout")))
            for name, path in pages.items():
                browser.get(shop.office + path)
                assert not browser.find_elements(By.CSS_SELECTOR, "p.error")
                for width in WIDTHS:
                    shot_at(browser, name, width)
        assert browser.find_element(By.ID, "add-outlet")
    finally:
        browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
        browser.set_window_size(1280, 1000)
