"""A points and credit correction as an operator makes it (issue 12), in real headless
Chromium over HQ and outlet A as real processes (the session's `shop`): a bad amount is
refused on the form with its code; the preview says "Points: N → N-200"; the confirm
books HQ's fact once even when the browser sends the form twice, the audit trail names
the operator and the reason, and outlet A's till shows the corrected balance after its
pull. Screenshots at 1280 and 800 px under tests/artefacts/web/ (`layout-correction-*`)."""

from __future__ import annotations

from typing import Any

import pytest
from chainkit import until
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from test_backoffice import hq_rows, login, wait
from test_office_layout import WIDTHS, shot_at
from testkit import line
from webkit import PASSWORD, Shop, staff_add

pytestmark = pytest.mark.timeout(240)


def fill(browser: Any, points: str, credit: str, reason: str) -> None:
    for element_id, text in (("c-points", points), ("c-credit", credit),
                             ("c-reason", reason)):
        browser.find_element(By.ID, element_id).clear()
        browser.find_element(By.ID, element_id).send_keys(text)
    browser.find_element(By.ID, "preview-correction").click()


def test_an_operator_corrects_points_once_and_the_outlet_shows_it(
        shop: Shop, browser: Any) -> None:
    staff_add(shop.rig.hq.db, "corin", PASSWORD, role="operator")
    till = shop.a.till
    who = till.register("A", given_name="Rok", surname="Popravek")
    sale = till.sold(who["card_number"], [line("COF", 450, 4, "Coffee")])
    shop.customers["rok"], shop.sales["rok"] = who, [sale]  # the shop's record stays whole
    shop.rig.settled()
    cid = who["customer_id"]

    def hq_points() -> int:
        return int(shop.rig.hq.customer(cid)["points_balance"])

    until(lambda: hq_points() > 0, 15, what="HQ has the sale")
    before = hq_points()
    browser.delete_all_cookies()
    login(browser, shop, "corin", PASSWORD)
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "form.logout")))
    try:
        browser.get(f"{shop.office}/customers/{cid}")
        browser.find_element(By.ID, "correct-customer").click()
        wait(browser, EC.presence_of_element_located((By.ID, "correction-form")))
        fill(browser, "-2", "1,2,3", "typo")
        error = wait(browser, EC.presence_of_element_located((By.ID, "correction-error"))).text
        assert "Credit" in error and "[invalid_request]" in error
        assert browser.find_elements(By.ID, "save-correction") == []
        for width in WIDTHS:
            shot_at(browser, "correction-refused", width)
        browser.set_window_size(1280, 1000)

        fill(browser, "-2", "", "points of a returned coffee booked twice")
        lines = wait(browser, EC.presence_of_element_located((By.ID, "preview-lines"))).text
        assert lines.splitlines() == [f"Points: {before:,} → {before - 2:,}"]
        assert hq_points() == before  # a preview changes nothing
        for width in WIDTHS:
            shot_at(browser, "correction-preview", width)
        browser.set_window_size(1280, 1000)
        # a double click: the form is sent twice before the answer arrives
        browser.execute_script(
            "const f = document.getElementById('correction-form');"
            "const b = document.getElementById('save-correction');"
            "f.action = b.formAction;"
            "const d = new FormData(f);"
            "fetch(f.action, {method: 'POST', body: new URLSearchParams(d)});")
        browser.find_element(By.ID, "save-correction").click()
        wait(browser, EC.presence_of_element_located((By.ID, "done")))
        assert int(browser.find_element(By.ID, "now-points").get_attribute(
            "data-value")) == before - 2
        for width in WIDTHS:
            shot_at(browser, "correction-done", width)
        until(lambda: len(hq_rows(shop, "SELECT 1 FROM audit WHERE staff = 'corin'")) >= 1,
              10, what="the correction is audited")
        rows = hq_rows(shop, "SELECT staff, role, action, reason FROM audit "
                             "WHERE staff = 'corin'")
        assert [tuple(r) for r in rows] == [
            ("corin", "operator", "customer.adjust", "points of a returned coffee booked twice")]
        assert hq_points() == before - 2
        until(lambda: shop.a.balance(cid) == before - 2, 30,
              what="outlet A applies HQ's correction")
    finally:
        browser.delete_all_cookies()
        browser.set_window_size(1280, 1000)
