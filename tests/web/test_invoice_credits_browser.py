"""A return's credit on the consolidated invoice, in the back office in a real headless
Chromium (docs/invoices.md, "Returns on the invoice").

A new customer buys on credit at outlet A's real till and gives part of it back there; HQ
gets both through sync and closes the day: the invoice page shows the purchase, the credit
line (negative, naming the sale's receipt reference) and the net total, and fits a narrow
window. Screenshots at 1280 and 800 px under tests/artefacts/web/.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from agentkit import line
from selenium.webdriver.common.by import By
from test_backoffice import signed_in, value
from test_office_layout import WIDTHS, shot_at
from webkit import Shop, today

pytestmark = pytest.mark.timeout(180)


def test_the_invoice_page_shows_a_returns_credit_line_and_the_net_total(
        shop: Shop, browser: Any) -> None:
    till = shop.a.till
    who = till.register("A", given_name="Cene", surname="Vrnil")
    sale = till.sold(who["card_number"], [line("OIL", 1_500, 4, "Olive oil")], mode="credit")
    answer = till.post("/v1/returns", {"till_id": till.till_id, "sale_id": sale["sale_id"],
                                       "lines": [{"sku": "OIL", "qty": 1}]})
    assert answer.status_code == 201, answer.text
    back = sum(r["amount"] for r in answer.json()["refunds"] if r["mode"] == "credit")
    assert back > 0
    shop.rig.settled()
    day = today()
    made = shop.rig.hq.admin("POST", "/v1/admin/invoices/close", 201, json={
        "period_from": day.isoformat(), "period_to": (day + timedelta(days=1)).isoformat(),
        "issued_on": day.isoformat()})
    [mine] = [m for m in made if m["customer_id"] == who["customer_id"]]
    assert mine["amount"] == sale["total_net"] - back and mine["credits"] == 1

    signed_in(browser, shop)
    browser.get(f"{shop.office}/invoices/{mine['number']}")
    assert value(browser, "invoice-amount") == sale["total_net"] - back
    assert value(browser, "invoice-purchases") == sale["total_net"]
    rows = browser.find_elements(By.CSS_SELECTOR, "#invoice-credits tbody tr")
    assert len(rows) == 1
    assert sale["receipt_reference"] in rows[0].text
    amount = rows[0].find_element(By.CSS_SELECTOR, "td[data-value]")
    assert int(amount.get_attribute("data-value")) == -back
    for width in WIDTHS:
        shot_at(browser, "invoice-with-return-credit", width)
        table = browser.find_element(By.ID, "invoice-credits")
        assert table.rect["x"] + table.rect["width"] <= width, width  # no sideways scrolling
    browser.set_window_size(1280, 1000)
