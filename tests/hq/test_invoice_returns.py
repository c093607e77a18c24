"""Consolidated invoices net of returns (docs/invoices.md, "Returns on the invoice"), in
process on a real HQ file, the facts pushed through HQ's own ingest as an outlet sends them.

A return's credit refund is a credit line (negative, naming the sale) on the invoice of the
period the return was booked in; a return of a sale whose invoice is already issued is
carried as a credit to the customer's next invoice, and an issued invoice never changes. An
invoice never goes below zero: what a period's purchases cannot absorb waits for the next
one. The property: over any run of periods, what the invoices bill less the credit still
carried (owed back to the customer, deducted from a later invoice) is exactly the credit
sales minus the credit refunds. On both stores (the property with fewer examples on
PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from invoicekit import pdf_text, with_payee

from agent.programme import default_documents
from hq import credentials, ingest, invoicedoc, invoices
from hq.chain import Chain
from schema.events import (
    Body,
    CustomerRegistered,
    Payment,
    Profile,
    ReturnRecorded,
    SaleLine,
    SaleRecorded,
    make_event,
    new_id,
)
from schema.receiptcode import reference
from schema.reversal import Asked, ReturnsSettings, plan_return
from schema.sync import PushRequest

HQ_ON_BOTH_STORES = True  # tests taking `hq_db` run on SQLite and PostgreSQL (conftest.py)
OUTLET = "LJ-CENTER"
UNIT = 1_000  # 10.00 a unit


class Shop:
    """One customer buying on credit at one outlet, and HQ closing months."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.chain = Chain(db, seed=default_documents())
        with self.chain.db.write() as conn:
            credentials.add_outlet(conn, OUTLET)
            conn.execute("UPDATE outlets SET created_at = '2020-01-01T00:00:00.000000Z'")
        self.seq = 0
        self.customer_id = new_id()
        self.returns: dict[str, list[ReturnRecorded]] = {}
        self.push(CustomerRegistered(
            customer_id=self.customer_id, card_number="2900010000015",
            profile=Profile(kind="person", given_name="Ana", surname="Kos", category="A")),
            "2026-01-01T08:00:00Z")

    def push(self, body: Body, at: str) -> None:
        self.seq += 1
        answer = ingest.push(self.chain, OUTLET, PushRequest(
            outlet_id=OUTLET, events=[make_event(OUTLET, self.seq, body, at)]))
        assert answer.acked_through == self.seq

    def sell(self, qty: int, at: str) -> SaleRecorded:
        net = qty * UNIT
        sale = SaleRecorded(
            sale_id=new_id(), customer_id=self.customer_id, currency="EUR",
            lines=[SaleLine(sku="W", name="Wine", qty=qty, unit_price=UNIT, gross=net,
                            discount=0, net=net)],
            payments=[Payment(mode="credit", amount=net)], total_gross=net, total_discount=0,
            total_net=net, points_earned=0)
        self.push(sale, at)
        return sale

    def give_back(self, sale: SaleRecorded, qty: int, at: str) -> ReturnRecorded:
        earlier = self.returns.setdefault(sale.sale_id, [])
        ret = plan_return(sale, earlier, [Asked("W", qty)], return_id=new_id(),
                          balance=10**6, settings=ReturnsSettings(), reason="changed mind")
        earlier.append(ret)
        self.push(ret, at)
        return ret

    def close(self, first: date, end: date) -> list[dict[str, Any]]:
        return invoices.close_period(self.chain, first, end, end)

    def invoices(self) -> list[dict[str, Any]]:
        return [invoices.invoice(self.chain, i["number"])
                for i in invoices.invoices(self.chain, self.customer_id)]


def refund_credit(ret: ReturnRecorded) -> int:
    return sum(r.amount for r in ret.refunds if r.mode == "credit")


@pytest.fixture
def shop(hq_db: str) -> Iterator[Shop]:
    made = Shop(hq_db)
    yield made
    made.chain.close()


def test_a_return_in_its_sales_period_is_a_credit_line_naming_the_sale_on_that_invoice(
        shop: Shop) -> None:
    sale = shop.sell(10, "2026-10-05T12:00:00Z")
    ret = shop.give_back(sale, 3, "2026-10-10T12:00:00Z")
    assert refund_credit(ret) == 3 * UNIT
    made = shop.close(date(2026, 10, 1), date(2026, 11, 1))
    assert [m["amount"] for m in made] == [7 * UNIT]
    [inv] = shop.invoices()
    assert inv["amount"] == 7 * UNIT
    assert [(i["sale_id"], i["amount"]) for i in inv["items"]] == [(sale.sale_id, 10 * UNIT)]
    assert [(c["return_id"], c["sale_id"], c["amount"], c["at"][:10]) for c in inv["credits"]] \
        == [(ret.return_id, sale.sale_id, -3 * UNIT, "2026-10-10")]


def test_close_invoices_says_how_many_return_credits_each_invoice_deducts(
        shop: Shop, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from loyalty.cli import main

    sale = shop.sell(10, "2026-10-05T12:00:00Z")
    shop.give_back(sale, 3, "2026-10-10T12:00:00Z")
    done = CliRunner().invoke(main, ["hq", "close-invoices", "--db", shop.db,
                                     "--period", "2026-10", "--issued-on", "2026-11-01"])
    assert done.exit_code == 0, done.output
    assert "70.00" in done.output and "(1 credit purchases, 1 return credits)" in done.output


def test_the_invoice_pdf_lists_the_return_credit_by_its_receipt_and_totals_net(
        shop: Shop, tmp_path: Path) -> None:
    sale = shop.sell(10, "2026-10-05T12:00:00Z")
    shop.give_back(sale, 3, "2026-10-10T12:00:00Z")
    [made] = shop.close(date(2026, 10, 1), date(2026, 11, 1))
    with_payee(shop.chain)
    text = " ".join(pdf_text(invoicedoc.render(shop.chain, made["number"]), tmp_path).split())
    for expected in ("Amount EUR 70.00", "Purchases on this invoice (1)",
                     f"2026-10-05 {OUTLET} 100.00", "Purchases 100.00",
                     "Returns credited on this invoice (1)",
                     f"2026-10-10 {OUTLET}, receipt {reference(sale.sale_id)} -30.00",
                     "Total 70.00"):
        assert expected in text, (expected, text)


def test_a_return_after_its_invoice_is_a_credit_on_the_next_and_the_issued_one_never_changes(
        shop: Shop) -> None:
    sale = shop.sell(10, "2026-10-05T12:00:00Z")
    shop.close(date(2026, 10, 1), date(2026, 11, 1))
    [october] = shop.invoices()
    assert october["amount"] == 10 * UNIT and october["credits"] == []

    ret = shop.give_back(sale, 4, "2026-11-03T12:00:00Z")
    later = shop.sell(5, "2026-11-10T12:00:00Z")
    shop.close(date(2026, 11, 1), date(2026, 12, 1))
    again, november = shop.invoices()
    assert again == october  # never edited
    assert november["amount"] == 1 * UNIT
    assert [i["sale_id"] for i in november["items"]] == [later.sale_id]
    assert [(c["return_id"], c["sale_id"], c["amount"]) for c in november["credits"]] == [
        (ret.return_id, sale.sale_id, -4 * UNIT)]


def test_a_credit_bigger_than_the_next_purchases_never_makes_an_invoice_negative_and_waits(
        shop: Shop) -> None:
    sale = shop.sell(10, "2026-10-05T12:00:00Z")
    shop.close(date(2026, 10, 1), date(2026, 11, 1))
    ret = shop.give_back(sale, 10, "2026-11-03T12:00:00Z")  # 100.00 back, all of it
    assert shop.close(date(2026, 11, 1), date(2026, 12, 1)) == []  # nothing to bill
    small = shop.sell(3, "2026-12-02T12:00:00Z")
    [december] = shop.close(date(2026, 12, 1), date(2027, 1, 1))
    assert december["amount"] == 0
    dec = shop.invoices()[-1]
    assert dec["status"] == "paid"  # nothing to pay: it never goes overdue
    assert [(c["return_id"], c["amount"]) for c in dec["credits"]] == [
        (ret.return_id, -3 * UNIT)]
    assert [i["sale_id"] for i in dec["items"]] == [small.sale_id]
    shop.sell(9, "2027-01-02T12:00:00Z")
    january = shop.close(date(2027, 1, 1), date(2027, 2, 1))
    assert [m["amount"] for m in january] == [2 * UNIT]  # 90.00 less the 70.00 left
    jan = shop.invoices()[-1]
    assert [(c["return_id"], c["amount"]) for c in jan["credits"]] == [
        (ret.return_id, -7 * UNIT)]


MONTHS = [date(2026, m, 1) for m in range(1, 13)] + [date(2027, 1, 1)]


PERIODS = st.lists(st.tuples(st.lists(st.integers(1, 6), max_size=3),
                             st.lists(st.tuples(st.integers(0, 50), st.integers(1, 6)),
                                      max_size=3)),
                   min_size=1, max_size=len(MONTHS) - 1)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(months=PERIODS)
def test_invoices_over_periods_bill_credit_sales_less_credit_refunds_and_never_change(
        tmp_path_factory: pytest.TempPathFactory,
        months: list[tuple[list[int], list[tuple[int, int]]]]) -> None:
    invoices_net_of_returns(str(tmp_path_factory.mktemp("inv") / "hq.db"), months)


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(months=PERIODS)
def test_on_postgresql_invoices_over_periods_bill_credit_sales_less_credit_refunds(
        hq_pg_dbs: Callable[[], str], months: list[tuple[list[int], list[tuple[int, int]]]]
        ) -> None:
    invoices_net_of_returns(hq_pg_dbs(), months)


def invoices_net_of_returns(db: str, months: list[tuple[list[int], list[tuple[int, int]]]]
                            ) -> None:
    shop = Shop(db)
    try:
        sold: list[tuple[SaleRecorded, int]] = []  # (sale, units not returned yet)
        sales = refunds = 0
        issued: dict[str, dict[str, Any]] = {}
        for m, (buys, backs) in enumerate(months):
            first, end = MONTHS[m], MONTHS[m + 1]
            for day, qty in enumerate(buys, start=2):
                sale = shop.sell(qty, f"{first.isoformat()}T{8 + day:02d}:00:00Z")
                sold.append((sale, qty))
                sales += qty * UNIT
            for n, (pick, qty) in enumerate(backs):
                open_ = [i for i, (_, left) in enumerate(sold) if left]
                if not open_:
                    break
                i = open_[pick % len(open_)]
                sale, left = sold[i]
                take = min(qty, left)
                ret = shop.give_back(sale, take, f"{first.isoformat()}T{20 + n:02d}:00:00Z")
                sold[i] = (sale, left - take)
                refunds += refund_credit(ret)
            shop.close(first, end)
            every = {i["number"]: i for i in shop.invoices()}
            for number, before in issued.items():
                assert every[number] == before, number  # an issued invoice never changes
            issued = every
            billed = sum(i["amount"] for i in every.values())
            assert all(i["amount"] >= 0 for i in every.values())
            for i in every.values():
                assert i["amount"] == sum(x["amount"] for x in i["items"]) + sum(
                    c["amount"] for c in i["credits"])
            assert billed - invoices.carried_credit(shop.chain, shop.customer_id) == \
                sales - refunds
    finally:
        shop.chain.close()
