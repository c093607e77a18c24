"""A stock transfer between outlets as an operator makes it (issue 12), in real headless
Chromium over HQ and outlet A as real processes (the session's `shop`; outlet B is
registered and never syncs): more than HQ knows A holds is refused on the form with its
code; a transfer is previewed ("A: 8 → 5", "B: 0 → 3"), saved as HQ's order, shown on the
gift stock page, audited, and outlet A's own stock drops with its next pull. A viewer is
refused the form. Screenshots at 1280 and 800 px under tests/artefacts/web/
(`layout-stock-transfer-*`, `layout-gift-stock-*`). The gift is the tote bag, which no other
test of the session counts."""

from __future__ import annotations

from typing import Any

import pytest
from chainkit import until
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select
from test_backoffice import hq_rows, login, wait
from test_office_layout import WIDTHS, shot_at
from webkit import PASSWORD, Shop, staff_add

pytestmark = pytest.mark.timeout(240)

TOTE = "GIFT-TOTE"


def at_hq(shop: Shop) -> dict[str, int]:
    return {r[0]: r[1] for r in hq_rows(
        shop, "SELECT outlet_id, qty FROM gift_stock WHERE gift_sku = ?", (TOTE,))}


def at_a(shop: Shop) -> int:
    return next(g["stock"] for g in shop.a.till.get("/v1/gifts").json() if g["sku"] == TOTE)


def fill(browser: Any, qty: str, reason: str) -> None:
    Select(browser.find_element(By.ID, "t-gift")).select_by_value(TOTE)
    Select(browser.find_element(By.ID, "t-from")).select_by_value("A")
    Select(browser.find_element(By.ID, "t-to")).select_by_value("B")
    for element_id, text in (("t-qty", qty), ("t-reason", reason)):
        browser.find_element(By.ID, element_id).clear()
        browser.find_element(By.ID, element_id).send_keys(text)
    browser.find_element(By.ID, "preview-transfer").click()


def test_an_operator_transfers_gift_stock_from_a_to_b_and_a_applies_it(
        shop: Shop, browser: Any) -> None:
    shop.a.stock(TOTE, 3)
    shop.rig.settled()
    until(lambda: at_hq(shop).get("A") == at_a(shop), 20, what="HQ has A's tote bags")
    held, at_b = at_a(shop), at_hq(shop).get("B", 0)
    staff_add(shop.rig.hq.db, "tina", PASSWORD, role="operator")
    browser.delete_all_cookies()
    login(browser, shop, "tina", PASSWORD)
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "form.logout")))
    try:
        browser.get(shop.office + "/gifts")
        browser.find_element(By.ID, "new-transfer").click()
        wait(browser, EC.presence_of_element_located((By.ID, "transfer-form")))
        fill(browser, str(held + 1), "too many")
        error = wait(browser, EC.presence_of_element_located((By.ID, "transfer-error"))).text
        assert "[transfer_exceeds_stock]" in error and f"A holds {held}" in error
        assert browser.find_elements(By.ID, "save-transfer") == []
        for width in WIDTHS:
            shot_at(browser, "stock-transfer-refused", width)
        browser.set_window_size(1280, 1000)

        fill(browser, "3", "B opens its gift corner")
        lines = wait(browser, EC.presence_of_element_located((By.ID, "preview-lines"))).text
        assert lines.splitlines() == [f"A: {held} → {held - 3}", f"B: {at_b} → {at_b + 3}"]
        assert at_hq(shop).get("A") == held  # a preview changes nothing
        for width in WIDTHS:
            shot_at(browser, "stock-transfer-preview", width)
        browser.set_window_size(1280, 1000)
        browser.find_element(By.ID, "save-transfer").click()
        wait(browser, EC.presence_of_element_located((By.ID, "done")))
        cell = browser.find_element(By.CSS_SELECTOR, f"tr[data-sku='{TOTE}'] td[data-outlet='B']")
        assert int(cell.get_attribute("data-value")) == at_b + 3
        for width in WIDTHS:
            shot_at(browser, "gift-stock", width)
        assert at_hq(shop) == {**at_hq(shop), "A": held - 3, "B": at_b + 3}
        [row] = hq_rows(shop, "SELECT staff, role, reason, event_id FROM audit "
                              "WHERE action = 'stock.transfer'")
        assert tuple(row)[:3] == ("tina", "operator", "B opens its gift corner")
        until(lambda: at_a(shop) == held - 3, 30, what="outlet A applies HQ's transfer")
        shop.rig.settled()
        assert at_hq(shop)["A"] == held - 3  # A pushed nothing that counts it again
    finally:
        browser.delete_all_cookies()
        browser.set_window_size(1280, 1000)


def test_a_viewer_is_refused_the_transfer_form(shop: Shop, browser: Any) -> None:
    staff_add(shop.rig.hq.db, "vince", PASSWORD, role="viewer")
    browser.delete_all_cookies()
    login(browser, shop, "vince", PASSWORD)
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "form.logout")))
    try:
        browser.get(shop.office + "/gifts")
        assert browser.find_elements(By.ID, "new-transfer") == []
        browser.get(shop.office + "/programme/transfers")
        assert "needs the operator role" in browser.find_element(By.TAG_NAME, "body").text
    finally:
        browser.delete_all_cookies()
