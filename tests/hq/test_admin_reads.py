"""What HQ's back office reads (hq/admin.py), in process on a real SQLite file.

The chain is made the way it is in production: outlets registered, facts pushed by outlet
A through `ingest.push` (customers, an extra phone identifier, sales, a gift hand-out,
stock received), an invoice closed, a flag raised by a fact for a customer HQ does not know.
Every figure the pages show is checked against what was pushed.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hqkit import STORES

from agent.programme import default_documents
from hq import admin, credentials, ingest, invoices
from hq.audit import COMMAND_LINE
from hq.chain import Chain
from schema.events import (
    Body,
    CustomerRegistered,
    GiftRedeemed,
    IdentifierAdded,
    Payment,
    PaymentMode,
    Profile,
    SaleLine,
    SaleRecorded,
    StockMoved,
    make_event,
    new_id,
)
from schema.sync import PushRequest

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
ANA_CARD, ANA_PHONE, BOR_CARD = "2900000000011", "38640123456", "2900000000028"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def line(sku: str, qty: int, unit_price: int) -> SaleLine:
    return SaleLine(sku=sku, name=f"Item {sku}", qty=qty, unit_price=unit_price,
                    gross=qty * unit_price, discount=0, net=qty * unit_price)


def sale(customer_id: str, lines: list[SaleLine], mode: PaymentMode = "cash") -> SaleRecorded:
    net = sum(x.net for x in lines)
    return SaleRecorded(sale_id=new_id(), customer_id=customer_id, till_id="T1", currency="EUR",
                        lines=lines, payments=[Payment(mode=mode, amount=net)],
                        total_gross=net, total_discount=0, total_net=net, points_earned=net // 100)


def push(chain: Chain, outlet_id: str, *bodies: Body, sent_at: str | None = None) -> None:
    first = int(chain.db.scalar("SELECT last_seq FROM outlets WHERE outlet_id = ?", (outlet_id,)))
    events = [make_event(outlet_id, first + 1 + i, body) for i, body in enumerate(bodies)]
    ingest.push(chain, outlet_id, PushRequest(outlet_id=outlet_id, events=events,
                                              sent_at=sent_at))


@pytest.fixture(params=STORES)
def chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chain]:
    """Outlets A and B; ana (a person with a picture, a card and a phone) with three
    sales (one on credit, invoiced) and a mug handed out at A; bor (an organisation) with
    a card and no sales; one open flag at A (a sale for a customer HQ does not know). On
    each store (hqkit.STORES)."""
    the_chain = Chain(request.getfixturevalue("hq_pg") if request.param == "postgresql"
                      else tmp_path / "hq.db", seed=default_documents())
    with the_chain.db.write() as conn:
        credentials.add_outlet(conn, "A")
        credentials.add_outlet(conn, "B")
    ana, bor = "ana-0001", "bor-0001"
    push(the_chain, "A",
         CustomerRegistered(customer_id=ana, card_number=ANA_CARD, profile=Profile(
             kind="person", given_name="Ana", surname="Novak", category="A",
             email="ana@example.org", picture=base64.b64encode(PNG).decode())),
         IdentifierAdded(customer_id=ana, kind="phone", value=ANA_PHONE),
         CustomerRegistered(customer_id=bor, card_number=BOR_CARD, profile=Profile(
             kind="organisation", name="Bor Trading", category="B")),
         StockMoved(gift_sku="GIFT-MUG", qty=5, reason="receipt"),
         StockMoved(gift_sku="GIFT-RETIRED", qty=2, reason="receipt"),
         sale(ana, [line("OIL", 2, 650), line("BREAD", 1, 210)]),
         sale(ana, [line("WINE", 1, 1_500)], mode="credit"),
         sale(ana, [line("OIL", 1, 650)]),
         GiftRedeemed(redemption_id=new_id(), customer_id=ana, gift_sku="GIFT-MUG",
                      gift_name="Club mug", qty=1, points_spent=0),
         sale("nobody-0001", [line("OIL", 1, 650)]))
    today = datetime.now(UTC).date()
    invoices.close_period(the_chain, today - timedelta(days=1), today + timedelta(days=1), today)
    yield the_chain
    the_chain.close()


def test_counts_are_the_start_pages_figures_and_follow_the_chain(chain: Chain) -> None:
    assert admin.counts(chain) == {"customers": 2, "outlets": 2, "open_flags": 1,
                                   "invoices": {"unpaid": 1}}
    flag = ingest.flags(chain)[0]
    admin.resolve_flag(chain, int(str(flag["flag_id"])), "checked", by=COMMAND_LINE)
    (invoice,) = invoices.invoices(chain)
    invoices.pay_at_bank(chain, invoice["number"], invoice["amount"], "STMT-1", by=COMMAND_LINE)
    assert admin.counts(chain) == {"customers": 2, "outlets": 2, "open_flags": 0, "invoices": {}}


def test_find_takes_a_card_a_phone_or_the_start_of_a_name(chain: Chain) -> None:
    by_card = admin.find(chain, f" {ANA_CARD} ")
    assert [(r["customer_id"], r["card"]) for r in by_card] == [("ana-0001", ANA_CARD)]
    assert by_card[0]["surname"] == "Novak" and by_card[0]["status"] == "approved"
    assert [r["customer_id"] for r in admin.find(chain, ANA_PHONE)] == ["ana-0001"]
    assert [r["customer_id"] for r in admin.find(chain, "nov")] == ["ana-0001"]
    assert [(r["customer_id"], r["card"]) for r in admin.find(chain, "Bor")] == [
        ("bor-0001", BOR_CARD)]
    assert admin.find(chain, "") == admin.find(chain, "   ") == []
    assert admin.find(chain, "2900000000099") == admin.find(chain, "zorman") == []


def test_card_numbers_and_names_are_read_for_many_customers_at_once(chain: Chain) -> None:
    many = [f"missing-{i}" for i in range(1_200)] + ["bor-0001", "ana-0001", "ana-0001"]
    assert admin.card_numbers(chain, many) == {"ana-0001": ANA_CARD, "bor-0001": BOR_CARD}
    assert admin.customer_names(chain, many) == {"ana-0001": "Ana Novak",
                                                 "bor-0001": "Bor Trading"}
    assert admin.card_numbers(chain, []) == admin.customer_names(chain, []) == {}


def test_receipts_are_the_latest_sales_with_their_lines_and_the_count_of_all(
        chain: Chain) -> None:
    total, latest = admin.receipts(chain, "ana-0001", limit=2)
    assert total == 3 and len(latest) == 2
    assert [s["total_net"] for s in latest] == [650, 1_500]  # newest first
    assert [(x["line_no"], x["sku"], x["qty"]) for x in latest[1]["lines"]] == [(0, "WINE", 1)]
    total, every = admin.receipts(chain, "ana-0001", limit=50)
    assert total == 3 and [[x["sku"] for x in s["lines"]] for s in every][-1] == ["OIL", "BREAD"]
    assert admin.receipts(chain, "bor-0001", limit=50) == (0, [])
    (mug,) = admin.handouts(chain, "ana-0001", limit=50)
    assert (mug["gift_sku"], mug["gift_name"], mug["qty"], mug["outlet_id"]) == (
        "GIFT-MUG", "Club mug", 1, "A")
    assert admin.handouts(chain, "bor-0001", limit=50) == []


def test_the_picture_is_the_stored_bytes_and_absent_without_one(chain: Chain) -> None:
    assert admin.picture(chain, "ana-0001") == PNG and admin.has_picture(chain, "ana-0001")
    assert admin.picture(chain, "bor-0001") is None and not admin.has_picture(chain, "bor-0001")
    assert admin.picture(chain, "nobody") is None and not admin.has_picture(chain, "nobody")


def test_master_documents_are_read_by_kind(chain: Chain) -> None:
    gifts = admin.master_docs(chain, "gift")
    assert gifts["GIFT-MUG"] == {"sku": "GIFT-MUG", "name": "Club mug", "points_cost": 500}
    assert list(gifts) == sorted(gifts)
    assert list(admin.master_docs(chain, "category")) == ["A", "B", "C", "D"]
    assert admin.master_docs(chain, "no-such-kind") == {}


def test_gift_stock_is_per_gift_and_outlet_with_gifts_no_longer_offered(chain: Chain) -> None:
    stock = admin.gift_stock(chain)
    assert stock["outlets"] == ["A", "B"]
    rows = {r["sku"]: r for r in stock["rows"]}
    assert set(rows) == set(admin.master_docs(chain, "gift")) | {"GIFT-RETIRED"}
    assert list(rows) == sorted(rows)
    assert rows["GIFT-MUG"] == {"sku": "GIFT-MUG", "name": "Club mug", "points_cost": 500,
                                "per_outlet": [4, 0], "total": 4}  # 5 received, 1 handed out
    assert rows["GIFT-RETIRED"] == {"sku": "GIFT-RETIRED", "name": "(no longer offered)",
                                    "points_cost": None, "per_outlet": [2, 0], "total": 2}
    assert rows["GIFT-TOTE"]["per_outlet"] == [0, 0] and rows["GIFT-TOTE"]["total"] == 0


def test_open_flags_are_counted_per_outlet(chain: Chain) -> None:
    assert admin.open_flags_by_outlet(chain) == {"A": 1}
    flag = ingest.flags(chain)[0]
    admin.resolve_flag(chain, int(str(flag["flag_id"])), by=COMMAND_LINE)
    assert admin.open_flags_by_outlet(chain) == {}


def test_outlet_health_says_how_long_ago_each_outlet_was_heard_and_how_its_clock_is(
        chain: Chain) -> None:
    pushed = datetime.fromisoformat(admin.outlets(chain)[0]["last_push_at"])
    health = {o["outlet_id"]: o for o in admin.outlet_health(chain, pushed + timedelta(
        seconds=90), stale_after_s=3_600)}
    a, b = health["A"], health["B"]
    assert (a["age_s"], a["stale"], a["last_seen"]) == (90, False, a["last_push_at"])
    assert (b["age_s"], b["stale"], b["last_seen"]) == (None, True, None)  # never synced
    assert (a["clock"], a["clock_off"]) == ("not measured", False)
    assert a["card_range"] == 1 and a["last_seq"] == 10
    later = admin.outlet_health(chain, pushed + timedelta(seconds=3_601), stale_after_s=3_600)
    assert [o["stale"] for o in later] == [True, True]

    ahead = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    push(chain, "B", StockMoved(gift_sku="GIFT-MUG", qty=1, reason="receipt"), sent_at=ahead)
    b = next(o for o in admin.outlet_health(chain, NOW, 3_600) if o["outlet_id"] == "B")
    assert b["clock_off"] and "ahead of HQ" in b["clock"]
    assert admin.open_flags_by_outlet(chain) == {"A": 1, "B": 1}  # the clock's flag


def test_the_reads_of_an_empty_chain_are_empty(tmp_path: Path) -> None:
    empty = Chain(tmp_path / "empty.db")
    try:
        assert admin.counts(empty) == {"customers": 0, "outlets": 0, "open_flags": 0,
                                       "invoices": {}}
        assert admin.gift_stock(empty) == {"outlets": [], "rows": []}
        assert admin.outlet_health(empty, NOW, 60) == []
        assert admin.open_flags_by_outlet(empty) == {}
        assert admin.receipts(empty, "x", limit=5) == (0, [])
    finally:
        empty.close()

