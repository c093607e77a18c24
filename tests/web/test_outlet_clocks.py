"""Outlet clocks in the back office, in a real headless Chromium (issue 9, item 2).

Outlet C joins the shop's chain and pushes, as a current outlet whose clock says 2031
does, a customer and a credit sale stamped by that clock, then a sale whose time is not a
time. The outlets page shows C's clock offset marked bad, the flags page one flag for it,
and no page shows the bad stamps: the customer's card, the receipts report, the flags.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from selenium.webdriver.common.by import By
from test_backoffice import signed_in
from webkit import Shop, shot, today

from schema.events import (
    CustomerRegistered,
    Payment,
    Profile,
    SaleLine,
    SaleRecorded,
    make_event,
    new_id,
)

pytestmark = pytest.mark.timeout(180)

AHEAD = timedelta(days=5 * 365 + 1)


def clock() -> str:
    moment = datetime.now(UTC) + AHEAD
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def bought(customer_id: str, net: int, mode: str) -> SaleRecorded:
    return SaleRecorded(
        sale_id=new_id(), customer_id=customer_id, till_id="T1", currency="EUR",
        lines=[SaleLine(sku="OIL", name="Olive oil", qty=1, unit_price=net, gross=net,
                        discount=0, net=net)],
        payments=[Payment(mode=mode, amount=net)],  # type: ignore[arg-type]
        total_gross=net, total_discount=0, total_net=net, points_earned=net // 100)


def test_the_outlets_page_shows_a_clock_years_off_and_no_page_shows_a_bad_stamp(
        shop: Shop, browser: Any) -> None:
    shop.rig.register("C")
    who = CustomerRegistered(customer_id=new_id(), card_number="2900990000019", profile=Profile(
        kind="person", given_name="Clock", surname="Skew", category="A"))
    events = [make_event("C", 1, who, at=clock()),
              make_event("C", 2, bought(who.customer_id, 3_000, "credit"), at=clock()),
              make_event("C", 3, bought(who.customer_id, 1_000, "cash"), at="not-a-time")]
    answer = requests.post(shop.hq_url + "/v1/sync/push", timeout=30, json={
        "protocol": 1, "outlet_id": "C", "sent_at": clock(),
        "events": [e.model_dump(mode="json") for e in events]},
        headers={"Authorization": f"Bearer {shop.rig.tokens['C']}"})
    assert answer.status_code == 200, answer.text
    assert [r["result"] for r in answer.json()["results"]] == ["flagged"] * 3

    signed_in(browser, shop)
    browser.get(shop.office + "/outlets")
    row = browser.find_element(By.CSS_SELECTOR, "tr[data-outlet='C']")
    cell = row.find_element(By.CSS_SELECTOR, ".clock")
    assert "5.0 years ahead of HQ" in cell.text and cell.find_elements(By.CSS_SELECTOR, "b.bad")
    assert float(cell.get_attribute("data-offset")) > 4 * 365 * 86400
    a = browser.find_element(By.CSS_SELECTOR, "tr[data-outlet='A'] .clock")
    assert "in step with HQ" in a.text  # the real agent A sends its (right) clock
    shot(browser, "hq-outlets-clock")

    browser.get(shop.office + "/flags")
    mine = [r for r in browser.find_elements(By.CSS_SELECTOR, "#flags tbody tr")
            if "years ahead of HQ" in r.text]
    assert len(mine) == 1 and "3 facts" in mine[0].text
    shot(browser, "hq-flags-clock")
    pages = {"flags": browser.page_source}
    browser.get(f"{shop.office}/customers/{who.customer_id}")
    pages["customer"] = browser.page_source
    assert today().isoformat() in pages["customer"]
    shot(browser, "hq-customer-clock")
    browser.get(f"{shop.office}/reports/receipts?customer={who.customer_id}")
    pages["receipts"] = browser.page_source
    assert len(browser.find_elements(By.CSS_SELECTOR, "#report tbody tr")) == 2
    browser.get(f"{shop.office}/outlets")
    pages["outlets"] = browser.page_source
    for name, html in pages.items():
        assert "not-a-time" not in html, name
        assert not re.search(r"20[34]\d-\d\d-\d\d", html), name
