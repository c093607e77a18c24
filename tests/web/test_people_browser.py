"""The customer forms of issue 12 as an operator uses them, in real headless Chromium over
HQ and outlet A as real processes (the session's `shop`): a picture uploaded (and a too
large one refused on the form), then two profiles of one person merged after the preview;
outlet A's till then identifies the duplicate's card as the survivor, with both balances.
Screenshots at 1280 and 800 px under tests/artefacts/web/ (`layout-people-*`)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from chainkit import until
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from test_backoffice import hq_rows, login, wait
from test_office_layout import WIDTHS, shot_at
from testkit import line
from webkit import PASSWORD, Shop, staff_add

pytestmark = pytest.mark.timeout(240)


def picture_file(folder: Path, name: str, width: int, height: int) -> Path:
    path = folder / name
    image = Image.new("RGB", (width, height), (240, 240, 240))
    for x in range(width):  # a diagonal band, so the screenshot shows it is the picture
        for y in range(max(0, x - 20), min(height, x + 20)):
            image.putpixel((x, y), (30, 90, 170))
    out = io.BytesIO()
    image.save(out, format="PNG")
    path.write_bytes(out.getvalue())
    return path


def test_an_operator_uploads_a_picture_and_merges_two_profiles_that_reach_the_till(
        shop: Shop, browser: Any, tmp_path: Path) -> None:
    staff_add(shop.rig.hq.db, "petra", PASSWORD, role="operator")
    till = shop.a.till
    keep = till.register("A", given_name="Mila", surname="Dvojnik", email="mila@example.com")
    dup = till.register("A", given_name="Mila", surname="Dvojnik", phone="040 555 111")
    till.sold(keep["card_number"], [line("COF", 450, 2, "Coffee")])
    till.sold(dup["card_number"], [line("TEA", 300, 3, "Tea")])
    shop.rig.settled()
    kept, gone = keep["customer_id"], dup["customer_id"]

    def hq_points(cid: str) -> int:
        return int(shop.rig.hq.customer(cid)["points_balance"])

    until(lambda: hq_points(kept) > 0 and hq_points(gone) > 0, 15, what="HQ has both sales")
    both = hq_points(kept) + hq_points(gone)

    browser.delete_all_cookies()
    login(browser, shop, "petra", PASSWORD)
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "form.logout")))
    try:
        browser.get(f"{shop.office}/customers/{kept}/edit")
        # a picture over 300x300 is refused on the form, nothing stored
        browser.find_element(By.ID, "picture-file").send_keys(
            str(picture_file(tmp_path, "big.png", 400, 300)))
        browser.find_element(By.ID, "save-picture").click()
        wait(browser, EC.presence_of_element_located((By.ID, "edit-error")))
        error = browser.find_element(By.ID, "edit-error").text
        assert "400x300" in error and "[invalid_request]" in error
        assert hq_rows(shop, "SELECT picture FROM customers WHERE customer_id = ?",
                       (kept,))[0][0] is None
        # a 300x300 one is saved and shown
        browser.find_element(By.ID, "picture-file").send_keys(
            str(picture_file(tmp_path, "mila.png", 300, 300)))
        browser.find_element(By.ID, "picture-reason").send_keys("photo taken at the desk")
        browser.find_element(By.ID, "save-picture").click()
        wait(browser, EC.presence_of_element_located((By.ID, "done")))
        assert browser.find_element(By.ID, "current-picture").get_attribute("naturalWidth") \
            == "300"
        for width in WIDTHS:
            shot_at(browser, "people-edit", width)
        browser.set_window_size(1280, 1000)

        # the merge: the duplicate by its card, the preview, then the confirmation
        browser.find_element(By.ID, "duplicate").send_keys(dup["card_number"])
        browser.find_element(By.ID, "merge-preview").click()
        wait(browser, EC.presence_of_element_located((By.ID, "merge-preview-table")))
        after = browser.find_element(By.ID, "after-points")
        assert int(after.get_attribute("data-value")) == both
        assert dup["card_number"] in browser.find_element(By.ID, "moves").text
        for width in WIDTHS:
            shot_at(browser, "people-merge-preview", width)
        browser.set_window_size(1280, 1000)
        browser.find_element(By.ID, "merge-reason").send_keys("one person, two sign-ups")
        browser.find_element(By.ID, "merge").click()
        wait(browser, EC.presence_of_element_located((By.ID, "done")))
        assert "Profiles merged" in browser.find_element(By.ID, "done").text

        browser.get(f"{shop.office}/customers/{kept}")
        assert gone in browser.find_element(By.ID, "merged-from").text
        assert int(browser.find_element(By.ID, "stat-points_balance").get_attribute(
            "data-value")) == both
        for width in WIDTHS:
            shot_at(browser, "people-customer", width)
        browser.set_window_size(1280, 1000)
        browser.get(f"{shop.office}/customers/{gone}")
        assert kept in browser.find_element(By.ID, "merged-into").text
        for width in WIDTHS:
            shot_at(browser, "people-merged", width)

        audited = {tuple(r) for r in hq_rows(
            shop, "SELECT staff, action, customer_id FROM audit WHERE staff = 'petra'")}
        assert audited == {("petra", "customer.picture", kept), ("petra", "customer.merge", kept),
                           ("petra", "customer.merge", gone)}

        # outlet A: the duplicate's card is the survivor's now, with both balances
        def owner() -> str | None:
            answer = shop.a.identify(dup["card_number"])
            return answer.json()["customer_id"] if answer.status_code == 200 else None

        until(lambda: owner() == kept, 15, what="A resolves the old card to the survivor")
        until(lambda: shop.a.balance(kept) == both, 15, what="A shows the summed balance")
        until(lambda: shop.a.till.ok("GET", f"/v1/customers/{kept}")["has_picture"], 15,
              what="A has the picture")
    finally:
        browser.delete_all_cookies()
        browser.set_window_size(1280, 1000)
