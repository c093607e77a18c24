"""The return and expiry settings as an operator changes them (issue 12), in real headless
Chromium over HQ and outlet A as real processes (the session's `shop`): from the programme
page to the settings form, a refused value shown with its code, the preview (each setting
before → after, "nothing expires at once", the days points would expire on), the save,
and outlet A's till applying the programme (its pending-points window) with its next pull.
Screenshots at 1280 and 800 px under tests/artefacts/web/ (`layout-programme-settings-*`).
The test puts the settings back as they were (other tests of the session sell and return)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chainkit import until
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select
from test_backoffice import login, wait
from test_office_layout import WIDTHS, shot_at
from testkit.ledger import read_only
from webkit import PASSWORD, Shop, staff_add

pytestmark = pytest.mark.timeout(240)


def typed(browser: Any, **fields: str) -> None:
    for element_id, text in fields.items():
        browser.find_element(By.ID, element_id).clear()
        browser.find_element(By.ID, element_id).send_keys(text)


def floor_at_a(shop: Shop) -> object:
    """Outlet A's programme document's outlet limit on returns (None: A has no document)."""
    with read_only(shop.a.db) as conn:
        row = conn.execute("SELECT data FROM master WHERE kind = 'programme'").fetchone()
    return None if row is None else json.loads(row[0])["returns"]["outlet_floor_returns"]


def preview(browser: Any) -> None:
    browser.find_element(By.ID, "preview-settings").click()
    wait(browser, EC.presence_of_element_located((By.ID, "settings-form")))


def test_an_operator_previews_expiry_and_saves_a_return_limit_that_reaches_the_outlet(
        shop: Shop, browser: Any) -> None:
    staff_add(shop.rig.hq.db, "setty", PASSWORD, role="operator")
    browser.delete_all_cookies()
    login(browser, shop, "setty", PASSWORD)
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "form.logout")))
    try:
        browser.get(shop.office + "/programme")
        browser.find_element(By.ID, "edit-settings").click()
        wait(browser, EC.presence_of_element_located((By.ID, "settings-form")))
        was = browser.find_element(By.ID, "s-floor").get_attribute("value")
        assert was == "5000.00"
        Select(browser.find_element(By.ID, "s-kind")).select_by_value("end_of_month")
        typed(browser, **{"s-months": "x"})
        preview(browser)
        error = browser.find_element(By.ID, "settings-error").text
        assert "Months: type a whole number" in error and "[invalid_request]" in error
        typed(browser, **{"s-months": "12", "s-reason": "one year of validity"})
        preview(browser)
        outlook = browser.find_element(By.ID, "outlook").text
        assert "Nothing expires at once" in outlook and "would expire on" in outlook
        assert "at the end of the Nth month" in browser.find_element(
            By.ID, "preview-changes").text
        for width in WIDTHS:
            shot_at(browser, "programme-settings-preview", width)
        browser.set_window_size(1280, 1000)

        # what is saved: no expiry (the session's other tests print receipts), a lower limit
        Select(browser.find_element(By.ID, "s-kind")).select_by_value("never")
        typed(browser, **{"s-floor": "4000", "s-reason": "tighter limit on returns"})
        preview(browser)
        assert browser.find_element(By.ID, "preview-changes").text.splitlines()[1:] == [
            "Outlet limit on other outlets' returns 5,000.00 4,000.00"]
        browser.find_element(By.ID, "save-settings").click()
        wait(browser, EC.presence_of_element_located((By.ID, "done")))
        for width in WIDTHS:
            shot_at(browser, "programme-settings-saved", width)
        browser.set_window_size(1280, 1000)
        until(lambda: floor_at_a(shop) == 400_000, 30, what="outlet A applies the settings")
    finally:
        browser.get(shop.office + "/programme/settings")
        typed(browser, **{"s-floor": "5000.00", "s-reason": "back as it was"})
        preview(browser)
        if browser.find_elements(By.ID, "save-settings"):
            browser.find_element(By.ID, "save-settings").click()
        browser.delete_all_cookies()
        browser.set_window_size(1280, 1000)
    until(lambda: floor_at_a(shop) in (None, 500_000), 30, what="outlet A has it back")
