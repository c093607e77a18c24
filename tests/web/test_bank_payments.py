"""Invoice payments through the real paths (issue 9): the back office's bank-payment form,
HQ's admin API and the till, on HQ and outlet A as real processes.

Money typed by staff is read by schema.money.parse_money (`50,00` is 50.00, not 5,000.00;
`1,234` is refused as ambiguous). A payment larger than what is still owed is refused with
`overpayment` and changes nothing, neither at HQ nor in the credit the outlet offers; part
payments stay allowed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from agentkit import db_state, expect_error, line
from chainkit import ChainRig, until
from webkit import PASSWORD, Shop, staff_add

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    rig = ChainRig(tmp_path_factory.mktemp("payments"))
    try:
        staff_add(rig.hq.db, "alice", PASSWORD)
        rig.start(("A",))
        a = rig.outlets["A"]
        until(lambda: len(a.till.get("/v1/gifts").json()) > 0, 20, what="A has HQ's programme")
        yield Shop(rig, a)
    finally:
        rig.close()


def invoiced(shop: Shop, surname: str, unit_price: int, net: int) -> dict[str, Any]:
    """A category A customer (10 % off, credit limit 5,000.00) with one credit sale of `net`,
    invoiced at HQ and known to outlet A."""
    till = shop.a.till
    who = till.register("A", surname=surname)
    sale = till.sold(who["card_number"], [line("CRED", unit_price)], mode="credit")
    assert sale["total_net"] == net
    shop.rig.settled()
    today = datetime.now(UTC).date()
    made = shop.rig.hq.admin("POST", "/v1/admin/invoices/close", 201, json={
        "period_from": today.isoformat(), "period_to": (today + timedelta(days=1)).isoformat(),
        "issued_on": today.isoformat()})
    invoice = next(m for m in made if m["customer_id"] == who["customer_id"])
    assert invoice["amount"] == net
    until(lambda: till.ok("GET", f"/v1/customers/{who['customer_id']}/invoices"), 20,
          what="A knows the invoice")
    return {**invoice, "card": who["card_number"]}


def hq_state(shop: Shop, invoice: dict[str, Any]) -> dict[str, Any]:
    conn = shop.rig.hq.db_conn()
    try:
        return {
            "invoice": tuple(conn.execute("SELECT status, paid_amount, paid_via, bank_reference "
                                          "FROM invoices WHERE number = ?",
                                          (invoice["number"],)).fetchone()),
            "events": conn.execute("SELECT COUNT(*) FROM events").fetchone()[0],
            "tally": tuple(conn.execute("SELECT * FROM customer_tally WHERE customer_id = ?",
                                        (invoice["customer_id"],)).fetchone()),
            "flags": conn.execute("SELECT COUNT(*) FROM flags").fetchone()[0],
        }
    finally:
        conn.close()


def offered_credit(shop: Shop, customer_id: str) -> tuple[int, int]:
    """(credit owed, credit available) as outlet A's till shows them."""
    view = shop.a.till.ok("GET", f"/v1/customers/{customer_id}")
    return view["credit_balance"], view["credit_available"]


class Office:
    """A signed-in member of staff posting the bank-payment form, as a browser does."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.http = requests.Session()
        answer = self.http.post(shop.office + "/login", data={
            "username": "alice", "password": PASSWORD, "next": "/"}, timeout=10)
        assert answer.status_code == 200 and "logout" in answer.text, answer.text

    def pay(self, number: str, amount: str, reference: str) -> requests.Response:
        page = self.http.get(f"{self.shop.office}/invoices/{number}", timeout=10).text
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        return self.http.post(f"{self.shop.office}/invoices/{number}/bank-payment", data={
            "csrf": csrf, "amount": amount, "reference": reference}, timeout=10,
            allow_redirects=False)


def test_a_comma_typed_in_the_bank_payment_form_is_a_decimal_comma(shop: Shop) -> None:
    invoice = invoiced(shop, "Comma", 8_454, 7_609)  # 84.54 - 10 % = 76.09
    office = Office(shop)
    assert office.pay(invoice["number"], "50,00", "STMT-50").status_code == 303
    state = hq_state(shop, invoice)
    assert state["invoice"][:2] == ("unpaid", 5_000)  # a part payment: 26.09 left

    for typed, said in (("1,234", "ambiguous"), ("26.095", "ambiguous"),
                        ("26,0x", "not an amount"), ("26,10", "overpayment")):
        refused = office.pay(invoice["number"], typed, "STMT-BAD")
        assert refused.status_code in (409, 422), (typed, refused.status_code)
        assert said in refused.text, (typed, refused.text)
        assert hq_state(shop, invoice) == state, typed

    assert office.pay(invoice["number"], " 26,09 ", "STMT-2609").status_code == 303
    assert hq_state(shop, invoice)["invoice"] == ("paid", 7_609, "bank", "STMT-2609")


def test_an_overpayment_at_the_admin_api_is_refused_and_changes_nothing(shop: Shop) -> None:
    invoice = invoiced(shop, "Million", 10_454, 9_409)  # 104.54 - 10 % = 94.09
    customer_id = invoice["customer_id"]
    before, offered = hq_state(shop, invoice), offered_credit(shop, customer_id)
    assert offered == (9_409, 500_000 - 9_409)
    path = f"/v1/admin/invoices/{invoice['number']}/bank-payment"

    answer = shop.rig.hq.admin("POST", path, None, json={"amount": 100_000_000,
                                                         "reference": "STMT-1M"})
    error = expect_error(answer, 409, "overpayment")
    assert "94.09" in error["message"]
    assert hq_state(shop, invoice) == before
    assert shop.rig.hq.customer(customer_id)["credit_balance"] == 9_409

    # a part payment still goes through, and the outlet's offered credit moves by it alone
    shop.rig.hq.admin("POST", path, json={"amount": 1_000, "reference": "STMT-10"})
    until(lambda: offered_credit(shop, customer_id) == (8_409, 500_000 - 8_409), 30,
          what="the part payment reaches A")
    assert offered_credit(shop, customer_id)[1] <= 500_000


def test_an_overpayment_at_the_till_is_refused_and_changes_nothing(shop: Shop) -> None:
    invoice = invoiced(shop, "Till", 2_000, 1_800)
    till, path = shop.a.till, f"/v1/invoices/{invoice['number']}/payments"
    before = db_state(shop.a.db)
    error = expect_error(till.post(path, {"amount": 1_801, "till_id": "T1"}), 409,
                         "overpayment")
    assert "18.00" in error["message"]
    assert db_state(shop.a.db) == before
    assert till.ok("POST", path, 201, json={"amount": 800})["left_to_pay"] == 1_000
    expect_error(till.post(path, {"amount": 1_001}), 409, "overpayment")
    assert till.ok("POST", path, 201, json={"amount": 1_000})["left_to_pay"] == 0
    expect_error(till.post(path, {"amount": 1}), 409, "overpayment")
