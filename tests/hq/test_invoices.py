"""Consolidated invoices: period boundaries, payment at the till and at the bank, overdue
and past-term moves on a controlled clock, and the credit block reaching the till."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from hqkit import ON_POSTGRES, STORES, at_once
from invoicekit import Buyer, make_hq

from agent import credit, customers, sales
from agent.outlet import Outlet
from agent.programme import default_documents
from agent.replication import OutletReplica
from hq import credentials, ingest, invoices
from hq.api import create_app
from hq.audit import COMMAND_LINE
from hq.chain import Chain
from schema.api import CustomerIn, PaymentIn, QuoteIn, SaleIn
from schema.errors import CreditBlocked
from schema.events import CustomerRegistered, Payment, Profile, SaleLine, SaleRecorded, make_event
from schema.sync import PushRequest
from sync.client import run_once
from sync.router import RouterTransport
from web.serving import Background


@pytest.fixture(params=STORES)
def chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chain]:
    """HQ on each store (hqkit.STORES): a SQLite file, or a PostgreSQL database."""
    where = (request.getfixturevalue("hq_pg") if request.param == "postgresql"
             else tmp_path / "hq.db")
    the_chain = Chain(where, seed=default_documents())
    with the_chain.db.write() as conn:
        credentials.add_outlet(conn, "X")
        # its facts are dated years back: the outlet has traded since 2020 (before that
        # HQ would book them at receipt, docs/sync.md "Outlet clocks")
        conn.execute("UPDATE outlets SET created_at = '2020-01-01T00:00:00.000000Z'")
    yield the_chain
    the_chain.close()


def credit_sale(seq: int, customer_id: str, at: str, amount: int) -> SaleRecorded:
    line = SaleLine(sku="S", name="Stuff", qty=1, unit_price=amount, gross=amount, discount=0,
                    net=amount)
    return SaleRecorded(sale_id=f"sale-{seq}", customer_id=customer_id, till_id="T1",
                        currency="EUR", lines=[line], payments=[Payment(mode="credit", amount=amount)],
                        total_gross=amount, total_discount=0, total_net=amount, points_earned=0)


def push_facts(chain: Chain, facts: list[tuple[object, str]]) -> None:
    events = [make_event("X", i + 1, body, at) for i, (body, at) in enumerate(facts)]  # type: ignore[arg-type]
    ingest.push(chain, "X", PushRequest(outlet_id="X", events=events))


CUSTOMER = "c-0001"


def registered() -> tuple[CustomerRegistered, str]:
    profile = Profile(kind="person", given_name="Ana", surname="Novak", category="A")
    return CustomerRegistered(customer_id=CUSTOMER, card_number="2900010000015",
                              profile=profile), "2026-09-01T10:00:00Z"


def test_invoice_covers_only_its_period_and_closing_twice_adds_nothing(chain: Chain) -> None:
    push_facts(chain, [
        registered(),
        (credit_sale(2, CUSTOMER, "", 1000), "2026-09-30T23:59:59.999999Z"),
        (credit_sale(3, CUSTOMER, "", 2500), "2026-10-01T00:00:00Z"),
        (credit_sale(4, CUSTOMER, "", 700), "2026-10-31T23:59:59Z"),
        (credit_sale(5, CUSTOMER, "", 900), "2026-11-01T00:00:00Z"),
    ])
    september = invoices.close_period(chain, date(2026, 9, 1), date(2026, 10, 1), date(2026, 10, 1))
    assert [m["amount"] for m in september] == [1000]
    made = invoices.close_period(chain, date(2026, 10, 1), date(2026, 11, 1), date(2026, 11, 1))
    assert [(m["amount"], m["items"]) for m in made] == [(3200, 2)]
    again = invoices.close_period(chain, date(2026, 10, 1), date(2026, 11, 1), date(2026, 11, 1))
    assert again == []
    october = invoices.invoice(chain, made[0]["number"])
    assert [i["sale_id"] for i in october["items"]] == ["sale-3", "sale-4"]
    assert october["amount"] == sum(i["amount"] for i in october["items"])
    assert october["due_on"] == "2026-11-15" and october["status"] == "unpaid"


def test_a_credit_sale_arriving_after_the_close_gets_a_supplementary_invoice(chain: Chain) -> None:
    push_facts(chain, [registered(), (credit_sale(2, CUSTOMER, "", 1200), "2026-10-05T09:00:00Z")])
    first = invoices.close_period(chain, date(2026, 10, 1), date(2026, 11, 1), date(2026, 11, 1))
    late = make_event("X", 3, credit_sale(3, CUSTOMER, "", 800), "2026-10-31T22:00:00Z")
    ingest.push(chain, "X", PushRequest(outlet_id="X", events=[late]))
    second = invoices.close_period(chain, date(2026, 10, 1), date(2026, 11, 1), date(2026, 11, 3))
    assert [m["amount"] for m in first] == [1200] and [m["amount"] for m in second] == [800]
    assert first[0]["number"] != second[0]["number"]
    total = chain.db.scalar("SELECT SUM(amount) FROM invoices WHERE customer_id = ?", (CUSTOMER,))
    assert total == 2000


def test_a_credit_sale_months_late_is_billed_at_the_next_close(chain: Chain) -> None:
    push_facts(chain, [registered(), (credit_sale(2, CUSTOMER, "", 1500), "2026-10-20T09:00:00Z")])
    invoices.close_period(chain, date(2026, 10, 1), date(2026, 11, 1), date(2026, 11, 1))
    late = make_event("X", 3, credit_sale(3, CUSTOMER, "", 400), "2026-05-02T12:00:00Z")
    ingest.push(chain, "X", PushRequest(outlet_id="X", events=[late]))
    december = invoices.close_period(chain, date(2026, 11, 1), date(2026, 12, 1), date(2026, 12, 1))
    assert [(m["amount"], m["items"]) for m in december] == [(400, 1)]
    items = invoices.invoice(chain, december[0]["number"])["items"]
    assert [i["at"][:10] for i in items] == ["2026-05-02"]


def test_invoice_moves_overdue_then_past_term_and_credit_is_blocked_until_paid(chain: Chain) -> None:
    push_facts(chain, [registered(), (credit_sale(2, CUSTOMER, "", 5000), "2026-10-10T12:00:00Z")])
    number = invoices.close_period(chain, date(2026, 10, 1), date(2026, 11, 1),
                                   date(2026, 11, 1))[0]["number"]
    assert invoices.refresh(chain, date(2026, 11, 15)) == {"overdue": 0, "past_term": 0}
    assert invoices.refresh(chain, date(2026, 11, 16)) == {"overdue": 1, "past_term": 0}
    assert invoices.invoice(chain, number)["status"] == "overdue"
    assert invoices.refresh(chain, date(2026, 12, 15)) == {"overdue": 0, "past_term": 0}
    assert invoices.refresh(chain, date(2026, 12, 16)) == {"overdue": 0, "past_term": 1}
    blocked = chain.db.scalar("SELECT credit_blocked FROM customers WHERE customer_id = ?", (CUSTOMER,))
    assert blocked == 1
    partial = invoices.pay_at_bank(chain, number, 2000, "STMT-17/3", by=COMMAND_LINE)
    assert partial["status"] == "past_term" and partial["paid_amount"] == 2000
    paid = invoices.pay_at_bank(chain, number, 3000, "STMT-17/4", by=COMMAND_LINE)
    assert paid["status"] == "paid" and paid["paid_via"] == "bank"
    assert paid["bank_reference"] == "STMT-17/4" and paid["paid_on"] is not None
    assert chain.db.scalar("SELECT credit_blocked FROM customers WHERE customer_id = ?",
                           (CUSTOMER,)) == 0
    view = chain.db.one("SELECT paid_credit, credit_repaid FROM customer_tally WHERE customer_id = ?",
                        (CUSTOMER,))
    assert (view["paid_credit"], view["credit_repaid"]) == (5000, 5000)


@pytest.mark.parametrize("chain", [ON_POSTGRES], indirect=True)
def test_one_invoice_stamped_paid_at_the_bank_twice_at_once_is_paid_once(chain: Chain) -> None:
    """Two HQ processes (PostgreSQL, READ COMMITTED; hqkit.at_once) stamp the same bank
    payment of the whole invoice: one is recorded, the other is an overpayment."""
    push_facts(chain, [registered(), (credit_sale(2, CUSTOMER, "", 5000), "2026-10-10T12:00:00Z")])
    number = invoices.close_period(chain, date(2026, 10, 1), date(2026, 11, 1),
                                   date(2026, 11, 1))[0]["number"]
    done = at_once(chain, *[lambda: invoices.pay_at_bank(chain, number, 5000, "STMT-1",
                                                         by=COMMAND_LINE)] * 2)
    assert sorted(type(d).__name__ for d in done) == ["Overpayment", "dict"], done
    assert invoices.invoice(chain, number)["paid_amount"] == 5000
    assert chain.db.scalar("SELECT COUNT(*) FROM events WHERE type = 'credit.repaid'") == 1


def test_invoice_paid_at_the_till_is_marked_paid_at_hq_and_a_block_reaches_the_till(
        chain: Chain, tmp_path: Path) -> None:
    with chain.db.write() as conn:
        token, _ = credentials.add_outlet(conn, "SHOP")
    server = Background(create_app(chain), on_exit=chain.waiters.close)
    outlet = Outlet(tmp_path / "shop.db", "SHOP", chain=True)
    replica, link = OutletReplica(outlet), RouterTransport(server.url, token)
    try:
        run_once(replica, link)
        joined = customers.register(
            outlet, CustomerIn(kind="person", given_name="Ana", surname="Novak", category="A"))
        card = joined["card_number"]
        lines = [{"sku": "S", "name": "Stuff", "qty": 1, "unit_price": 10000}]
        quote = sales.quote(outlet, QuoteIn(
            card=card, lines=lines))
        sales.sell(outlet, SaleIn(quote_id=quote["quote_id"], payments=[
            PaymentIn(mode="credit", amount=quote["total_net"])]), "k1")
        run_once(replica, link)
        sold_at = chain.db.scalar("SELECT at FROM sales")
        day = date.fromisoformat(sold_at[:10])
        made = invoices.close_period(chain, day, date.fromordinal(day.toordinal() + 1), day)
        assert made[0]["amount"] == quote["total_net"]
        run_once(replica, link)
        local = credit.invoices_of(outlet, joined["customer_id"])
        assert [(i["number"], i["status"]) for i in local] == [(made[0]["number"], "unpaid")]

        answer = credit.pay(outlet, made[0]["number"], quote["total_net"], "T1")
        assert answer["left_to_pay"] == 0
        run_once(replica, link)
        at_hq = invoices.invoice(chain, made[0]["number"])
        assert (at_hq["status"], at_hq["paid_via"]) == ("paid", "till")

        # A second credit sale, invoiced and left unpaid past its term: the till refuses credit.
        quote2 = sales.quote(outlet, QuoteIn(
            card=card, lines=lines))
        sales.sell(outlet, SaleIn(quote_id=quote2["quote_id"], payments=[
            PaymentIn(mode="credit", amount=quote2["total_net"])]), "k2")
        run_once(replica, link)
        invoices.close_period(chain, day, date.fromordinal(day.toordinal() + 1), day)
        invoices.refresh(chain, date.fromordinal(day.toordinal() + 60))
        run_once(replica, link)
        quote3 = sales.quote(outlet, QuoteIn(
            card=card, lines=lines))
        with pytest.raises(CreditBlocked):
            sales.sell(outlet, SaleIn(quote_id=quote3["quote_id"], payments=[
                PaymentIn(mode="credit", amount=quote3["total_net"])]), "k3")
        cash, _ = sales.sell(outlet, SaleIn(quote_id=quote3["quote_id"], payments=[
            PaymentIn(mode="cash", amount=quote3["total_net"])]), "k4")
        assert cash["total_net"] == quote3["total_net"]
    finally:
        link.close()
        server.stop()
        outlet.close()


def test_a_till_payment_hq_has_not_seen_survives_a_pull_and_is_not_taken_twice(
        chain: Chain, tmp_path: Path) -> None:
    from schema.errors import Overpayment
    from sync.client import PassReport, greet, pull_new

    with chain.db.write() as conn:
        token, _ = credentials.add_outlet(conn, "DESK")
    server = Background(create_app(chain), on_exit=chain.waiters.close)
    outlet = Outlet(tmp_path / "desk.db", "DESK", chain=True)
    replica, link = OutletReplica(outlet), RouterTransport(server.url, token)
    try:
        run_once(replica, link)
        card = customers.register(outlet, CustomerIn(kind="person", given_name="A", surname="B",
                                                     category="A"))["card_number"]
        quote = sales.quote(outlet, QuoteIn(card=card, lines=[
            {"sku": "S", "name": "S", "qty": 1, "unit_price": 8000}]))  # type: ignore[list-item]
        sales.sell(outlet, SaleIn(quote_id=quote["quote_id"], payments=[
            PaymentIn(mode="credit", amount=quote["total_net"])]), "k")
        run_once(replica, link)
        day = date.fromisoformat(chain.db.scalar("SELECT at FROM sales")[:10])
        number = invoices.close_period(chain, day, date.fromordinal(day.toordinal() + 1),
                                       day)[0]["number"]
        run_once(replica, link)
        credit.pay(outlet, number, quote["total_net"], "T1")  # not pushed yet
        invoices.refresh(chain, date.fromordinal(day.toordinal() + 20))  # HQ: overdue
        greet(replica, link)
        pull_new(replica, link, PassReport())
        local = outlet.db.one("SELECT status, paid_amount FROM invoices WHERE number = ?", (number,))
        assert (local["status"], local["paid_amount"]) == ("paid", quote["total_net"])
        with pytest.raises(Overpayment):
            credit.pay(outlet, number, 100, "T1")
        run_once(replica, link)
        assert invoices.invoice(chain, number)["status"] == "paid"
    finally:
        link.close()
        server.stop()
        outlet.close()


def test_an_invoice_paid_at_two_tills_offline_is_flagged_at_hq_and_never_spendable_credit(
        chain: Chain, tmp_path: Path) -> None:
    """HQ never rejects a fact: the second full payment is applied and flagged with the
    amount to refund, and no outlet offers more credit than the category's limit."""
    from agent.customers import profile

    with chain.db.write() as conn:
        tokens = {o: credentials.add_outlet(conn, o)[0] for o in ("EAST", "WEST")}
    server = Background(create_app(chain), on_exit=chain.waiters.close)
    outlets = {o: Outlet(tmp_path / f"{o}.db", o, chain=True) for o in tokens}
    links = {o: (OutletReplica(outlets[o]), RouterTransport(server.url, tokens[o]))
             for o in tokens}
    try:
        for replica, link in links.values():
            run_once(replica, link)
        east, west = outlets["EAST"], outlets["WEST"]
        joined = customers.register(east, CustomerIn(kind="person", given_name="Ana",
                                                     surname="Twice", category="A"))
        quote = sales.quote(east, QuoteIn(card=joined["card_number"], lines=[
            {"sku": "S", "name": "S", "qty": 1, "unit_price": 8000}]))  # type: ignore[list-item]
        owed = quote["total_net"]
        sales.sell(east, SaleIn(quote_id=quote["quote_id"], payments=[
            PaymentIn(mode="credit", amount=owed)]), "k")
        run_once(*links["EAST"])
        day = date.fromisoformat(chain.db.scalar("SELECT at FROM sales")[:10])
        number = invoices.close_period(chain, day, date.fromordinal(day.toordinal() + 1),
                                       day)[0]["number"]
        for replica, link in links.values():
            run_once(replica, link)
        limit = profile(east, joined["customer_id"])["credit_limit"]

        credit.pay(east, number, owed, "T1")  # both desks take the whole invoice, offline
        credit.pay(west, number, owed, "T1")
        run_once(*links["EAST"])
        run_once(*links["WEST"])
        for replica, link in links.values():
            run_once(replica, link)

        flags = [f for f in ingest.flags(chain) if f["customer_id"] == joined["customer_id"]]
        assert [f["outlet_id"] for f in flags] == ["WEST"]
        assert f"overpayment: invoice {number}" in str(flags[0]["reason"])
        assert f"refund {owed // 100}.{owed % 100:02d}" in str(flags[0]["reason"])
        at_hq = invoices.invoice(chain, number)
        assert (at_hq["status"], at_hq["paid_amount"]) == ("paid", 2 * owed)
        for outlet in (east, west):
            view = profile(outlet, joined["customer_id"])
            assert view["credit_balance"] == -owed  # the chain owes the customer a refund...
            assert view["credit_available"] == limit  # ...which is not credit to spend
    finally:
        for _, link in links.values():
            link.close()
        server.stop()
        for outlet in outlets.values():
            outlet.close()


def test_credit_refusals_at_the_till_show_money_as_money(chain: Chain, tmp_path: Path) -> None:
    """Category A: credit limit 5,000.00, offline floor 500.00 of unconfirmed credit."""
    from schema.errors import CreditLimitExceeded, OfflineLimitExceeded

    with chain.db.write() as conn:
        token, _ = credentials.add_outlet(conn, "DESK")
    server = Background(create_app(chain), on_exit=chain.waiters.close)
    outlet = Outlet(tmp_path / "desk.db", "DESK", chain=True)
    replica, link = OutletReplica(outlet), RouterTransport(server.url, token)
    try:
        run_once(replica, link)
        card = customers.register(outlet, CustomerIn(kind="person", given_name="A", surname="B",
                                                     category="A"))["card_number"]
        run_once(replica, link)

        def credit_sale(unit_price: int) -> None:
            quote = sales.quote(outlet, QuoteIn(card=card, lines=[
                {"sku": "S", "name": "S", "qty": 1, "unit_price": unit_price}]))  # type: ignore[list-item]
            sales.sell(outlet, SaleIn(quote_id=quote["quote_id"], payments=[
                PaymentIn(mode="credit", amount=quote["total_net"])]), None)

        with pytest.raises(OfflineLimitExceeded) as offline:
            credit_sale(60_000)  # 540.00 after 10 % off
        assert offline.value.message.startswith("540.00 of internal credit not yet confirmed "
                                                "by HQ; this card's offline limit is 500.00")
        with pytest.raises(CreditLimitExceeded) as over:
            credit_sale(600_000)  # 5,400.00
        assert over.value.message == "internal credit limit 5,000.00, owed 0.00"
    finally:
        link.close()
        server.stop()
        outlet.close()


@pytest.mark.slow  # a PostgreSQL cluster is a process
def test_two_hq_processes_closing_at_once_invoice_each_sale_once_with_numbers_never_given_twice(
        tmp_path: Path, hq_pg: str) -> None:
    buyers = [Buyer("Ana", f"Novak {n}", sales=(1000 + n,)) for n in range(12)]
    first, _ = make_hq(tmp_path / "hq.db", buyers, url=hq_pg, close=False)
    second = Chain(hq_pg)  # another HQ process on the same database
    start, made, failed = threading.Barrier(2), [], []

    def close(chain: Chain) -> None:
        start.wait()
        try:
            made.extend(invoices.close_period(chain, date(2026, 10, 1), date(2026, 11, 1),
                                              date(2026, 11, 1)))
        except Exception as error:  # noqa: BLE001 - the test reports it
            failed.append(error)

    try:
        closing = [threading.Thread(target=close, args=(c,)) for c in (first, second)]
        for thread in closing:
            thread.start()
        for thread in closing:
            thread.join(timeout=60)
        assert failed == []
        numbers = sorted(m["number"] for m in made)
        assert numbers == [f"2026-{n:06d}" for n in range(1, 13)]
        assert sorted(m["customer_id"] for m in made) == sorted(b.customer_id for b in buyers)
        assert first.db.scalar("SELECT COUNT(*) FROM invoice_items") == 12
        later = invoices.close_period(second, date(2026, 10, 1), date(2026, 11, 1),
                                      date(2026, 11, 1))
        assert later == []
    finally:
        second.close()
        first.close()


@pytest.mark.slow  # a PostgreSQL cluster is a process
def test_a_chain_moved_onto_postgresql_numbers_its_next_invoice_after_the_files_last(
        tmp_path: Path, hq_pg: str) -> None:
    from invoicekit import OUTLET

    from hq.store.migrate import migrate

    buyer = Buyer("Ana", "Novak", sales=(1000,))
    on_file, numbers = make_hq(tmp_path / "hq.db", [buyer])
    assert list(numbers.values()) == ["2026-000001"]
    on_file.close()
    migrate(tmp_path / "hq.db", hq_pg)
    chain = Chain(hq_pg)
    try:
        late = make_event(OUTLET, 3, credit_sale(9, buyer.customer_id, "", 700),
                          "2026-10-30T12:00:00Z")
        ingest.push(chain, OUTLET, PushRequest(outlet_id=OUTLET, events=[late]))
        made = invoices.close_period(chain, date(2026, 10, 1), date(2026, 11, 1),
                                     date(2026, 11, 3))
        assert [(m["number"], m["amount"]) for m in made] == [("2026-000002", 700)]
    finally:
        chain.close()
