"""The outlet's store-manager pages in process (agent/manager.py on web/office.py): a real
outlet file with real sales, and FastAPI's TestClient as a browser on loopback (the pages
answer nothing else). The same pages in Chromium over real processes: test_backoffice.py."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from agentkit import line, png
from fastapi.testclient import TestClient

from agent import customers, history, sales
from agent.api import create_app
from agent.outlet import Outlet
from schema.api import CustomerIn, QuoteIn, SaleIn
from schema.errors import mask_card
from schema.events import new_id
from schema.timing import local_day, local_time

LOCAL_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d \((just now|\d+ min ago)\)"


@pytest.fixture
def manager(outlet: Outlet) -> TestClient:
    return TestClient(create_app(outlet), base_url="http://127.0.0.1",
                      client=("127.0.0.1", 50000))


def registered(outlet: Outlet, surname: str, **fields: Any) -> dict[str, str]:
    return customers.register(outlet, CustomerIn(kind="person", given_name="Ana", surname=surname,
                                                 category="A", **fields))


def sold(outlet: Outlet, card: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    quote = sales.quote(outlet, QuoteIn(card=card, lines=lines))  # type: ignore[arg-type]
    answer, _ = sales.sell(outlet, SaleIn(card=card, lines=lines, payments=[  # type: ignore[arg-type]
        {"mode": "cash", "amount": quote["total_net"]}]), new_id())  # type: ignore[list-item]
    return answer


def cell(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', html)
    assert found, element_id
    return found.group(1)


def test_the_status_page_shows_times_as_loyalty_status_does(outlet: Outlet,
                                                            manager: TestClient) -> None:
    ana = registered(outlet, "Novak")
    sold(outlet, ana["card_number"], [line("COF", 450, 2)])
    page = manager.get("/manager/")
    assert page.status_code == 200
    last_sale = outlet.db.scalar("SELECT MAX(at) FROM sales")
    assert local_time(last_sale) in page.text  # as `loyalty status` prints it
    assert re.search(rf"<th>Last sale</th><td>{LOCAL_TIME}</td>", page.text)
    assert cell(page.text, "clock") == "no HQ"  # the clock row of `loyalty status`
    assert last_sale[:19].replace("T", " ") not in page.text  # no UTC seconds any more


def test_todays_sales_are_those_since_local_midnight_with_their_totals(
        outlet: Outlet, manager: TestClient) -> None:
    ana = registered(outlet, "Novak")
    made = [sold(outlet, ana["card_number"], [line("COF", 450, 2)]),
            sold(outlet, ana["card_number"], [line("TEA", 300, 1), line("JAM", 620, 1)])]
    page = manager.get("/manager/sales").text
    assert re.search(r'id="today-count" data-value="2"', page)
    assert f'id="today-net" data-value="{sum(s["total_net"] for s in made)}"' in page
    assert page.count('<table class="list receipt">') == 2
    assert f"Today's sales ({local_day()[0].isoformat()})" in page
    later = history.day_sales(outlet, "9999-01-01T00:00:00.000000Z")
    assert (later.receipts, later.net, later.sales, later.paid_by) == (0, 0, [], {})
    today = history.day_sales(outlet, local_day()[1])
    assert today.receipts == 2 and today.paid_by == {"cash": today.net}
    assert [s["sale_id"] for s in today.sales] == [s["sale_id"] for s in reversed(made)]


def test_today_begins_at_midnight_in_this_machines_time_zone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Pacific/Auckland")  # UTC+13 in December
    time.tzset()
    try:
        day, since = local_day(datetime(2026, 12, 7, 2, 0, tzinfo=UTC))  # 15:00 in Auckland
        assert (day.isoformat(), since) == ("2026-12-07", "2026-12-06T11:00:00.000000Z")
        day, since = local_day(datetime(2026, 12, 7, 12, 0, tzinfo=UTC))  # 01:00 next day
        assert (day.isoformat(), since) == ("2026-12-08", "2026-12-07T11:00:00.000000Z")
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_search_by_card_number_puts_that_customer_first_and_masks_every_card(
        outlet: Outlet, manager: TestClient) -> None:
    ana, bor = registered(outlet, "Novak"), registered(outlet, "Novakova")
    found = customers.find(outlet, bor["card_number"])
    assert [r["customer_id"] for r in found] == [bor["customer_id"]]
    assert found[0]["card"] == bor["card_number"]
    by_name = customers.find(outlet, "nova")
    assert {r["customer_id"]: r["card"] for r in by_name} == {
        ana["customer_id"]: ana["card_number"], bor["customer_id"]: bor["card_number"]}
    assert customers.find(outlet, "  ") == []
    page = manager.get("/manager/customers", params={"q": "nova"}).text
    assert "2 found for" in page
    for who in (ana, bor):
        assert who["card_number"] not in page and mask_card(who["card_number"]) in page


def test_a_picture_is_served_with_its_type_and_a_missing_one_is_an_error_page(
        outlet: Outlet, manager: TestClient) -> None:
    ana = registered(outlet, "Novak", picture=png(40, 30))
    bor = registered(outlet, "Bor")
    shown = manager.get(f"/manager/customers/{ana['customer_id']}/picture")
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
    assert shown.content == customers.stored_picture(outlet, ana["customer_id"])
    missing = manager.get(f"/manager/customers/{bor['customer_id']}/picture")
    assert missing.status_code == 404
    assert 'data-code="not_found"' in missing.text and "has no picture" in missing.text
    assert customers.stored_picture(outlet, "nobody") is None


def test_a_printed_report_names_the_outlet_and_its_filters(outlet: Outlet,
                                                           manager: TestClient) -> None:
    page = manager.get("/manager/reports/turnover",
                       params={"date_from": "2026-01-01", "date_to": "2026-01-31"})
    assert page.status_code == 200
    printed = re.search(r'<p class="printed-filters">([^<]*)</p>', page.text)
    assert printed and printed.group(1) == "Outlet T; date from: 2026-01-01; date to: 2026-01-31"
    assert 'name="outlet"' not in page.text  # an outlet's reports have no outlet filter
    refused = manager.get("/manager/reports/receipts")
    assert refused.status_code == 422 and "choose a customer" in refused.text


def test_another_machine_gets_403_with_the_security_headers(outlet: Outlet) -> None:
    far = TestClient(create_app(outlet), base_url="http://127.0.0.1", client=("10.1.2.3", 5000))
    refused = far.get("/manager/")
    assert refused.status_code == 403
    assert "script-src 'self'" in refused.headers["content-security-policy"]
    assert refused.headers["x-frame-options"] == "DENY"

