"""The per-customer Tally (schema.ledger) is a commutative monoid, each event type's declared
tally (schema.events `tally_of`) adds what the fact says, and its SQL store
(schema.tallystore) adds exactly what `combine` adds."""

from __future__ import annotations

import json
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from schema import tallystore
from schema.agent_tables import migrations
from schema.database import Database
from schema.events import (
    BalanceAdjusted,
    CreditRepaid,
    Event,
    ExpiredLot,
    GiftRedeemed,
    Payment,
    PointsExpired,
    SaleLine,
    SaleRecorded,
    VisitRecorded,
    fold,
    make_event,
    tally_of,
)
from schema.ledger import ItemTally, Tally

small = st.integers(0, 10**9)
names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
                min_size=1, max_size=12)
skus = st.sampled_from([f"SKU-{i}" for i in range(15)])
stamps = st.one_of(st.just(""), st.datetimes().map(lambda d: d.isoformat() + "Z"))
ids = st.uuids().map(str)

item_tallies = st.builds(ItemTally, name=names, qty=st.integers(1, 1000), max_unit_price=small)
tallies = st.builds(
    Tally,
    purchases_total=small, purchases_count=small, items_count=small, points_earned=small,
    points_used=small, points_expired=small, discount_total=small, paid_cash=small, paid_card=small,
    paid_credit=small, credit_repaid=small, gifts_count=small, last_purchase_at=stamps,
    best_purchase_total=small, best_purchase_id=st.one_of(st.just(""), ids),
    items=st.dictionaries(skus, item_tallies, max_size=6),
    gifts=st.dictionaries(st.sampled_from(["GIFT-MUG", "GIFT-TOTE"]), st.integers(1, 9)),
)


@st.composite
def sale_lines(draw: st.DrawFn) -> SaleLine:
    qty, price = draw(st.integers(1, 50)), draw(st.integers(0, 100_000))
    gross = qty * price
    discount = draw(st.integers(0, gross))
    return SaleLine(sku=draw(skus), name=draw(names), qty=qty, unit_price=price, gross=gross,
                    discount=discount, net=gross - discount)


@st.composite
def sales(draw: st.DrawFn) -> SaleRecorded:
    lines = draw(st.lists(sale_lines(), min_size=1, max_size=6))
    net = sum(ln.net for ln in lines)
    cash = draw(st.integers(0, net))
    card = draw(st.integers(0, net - cash))
    payments = [Payment(mode=m, amount=a) for m, a in
                (("cash", cash), ("card", card), ("credit", net - cash - card)) if a]
    return SaleRecorded(
        sale_id=draw(ids), customer_id="C", till_id=draw(st.sampled_from(["T1", None])),
        currency="EUR", lines=lines,
        payments=payments or [Payment(mode="cash", amount=0)],
        total_gross=sum(ln.gross for ln in lines), total_discount=sum(ln.discount for ln in lines),
        total_net=net, points_earned=draw(st.integers(0, 10_000)))


redemptions = st.builds(GiftRedeemed, redemption_id=ids, customer_id=st.just("C"),
                        gift_sku=st.sampled_from(["GIFT-MUG", "GIFT-TOTE"]), gift_name=names,
                        qty=st.integers(1, 5), points_spent=st.integers(1, 5000))
repayments = st.builds(CreditRepaid, payment_id=ids, customer_id=st.just("C"),
                       amount=st.integers(1, 10**6))
visits = st.builds(VisitRecorded, customer_id=st.just("C"),
                   till_id=st.sampled_from(["T1", None]), via=st.sampled_from(["card", "phone"]))
adjustments = st.builds(
    lambda aid, points, credit: BalanceAdjusted(adjustment_id=aid, customer_id="C",
                                                points=points, credit=credit or 1,
                                                reason="correction"),
    ids, st.integers(-5000, 5000), st.integers(-10**6, 10**6))
expiries = st.builds(
    lambda eid, points: PointsExpired(expiry_id=eid, customer_id="C", on="2026-02-01", lots=[
        ExpiredLot(lot_id=f"S-{i}", points=p, expired_on="2026-01-31")
        for i, p in enumerate(points)]),
    ids, st.lists(st.integers(1, 5000), min_size=1, max_size=3))
bodies = st.one_of(sales(), redemptions, repayments, visits, adjustments, expiries)


@given(bodies, stamps)
def test_every_fact_reads_back_from_its_wire_form(body: object, at: str) -> None:
    """What the outbox stores (and HQ receives) parses back to the same fact, even with
    optional fields left out (a sale without a till)."""
    event = make_event("T", 1, body, at or None)  # type: ignore[arg-type]
    again = Event.model_validate_json(event.model_dump_json())
    assert again == event
    assert again.parsed() == body


@given(tallies, tallies, tallies)
def test_combine_is_associative(a: Tally, b: Tally, c: Tally) -> None:
    assert a.combine(b).combine(c) == a.combine(b.combine(c))


@given(tallies, tallies)
def test_combine_is_commutative(a: Tally, b: Tally) -> None:
    assert a.combine(b) == b.combine(a)


@given(tallies)
def test_the_empty_tally_is_the_identity(a: Tally) -> None:
    assert Tally().combine(a) == a == a.combine(Tally())


@given(st.lists(st.tuples(bodies, stamps), max_size=12), st.randoms())
def test_folding_events_does_not_depend_on_their_order(facts: list[tuple[object, str]],
                                                       rnd: object) -> None:
    events = [make_event("T", n + 1, body, at or "2025-01-01T00:00:00Z")  # type: ignore[arg-type]
              for n, (body, at) in enumerate(facts)]
    shuffled = list(events)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert fold(events) == fold(shuffled) == fold(reversed(events))


@given(tallies)
def test_to_dict_and_from_dict_round_trip_through_json(a: Tally) -> None:
    wire = json.loads(json.dumps(a.to_dict()))
    assert Tally.from_dict(wire) == a


@given(sales(), stamps)
def test_the_tally_of_a_sale_has_the_sales_numbers(sale: SaleRecorded, at: str) -> None:
    t = tally_of(sale, at)
    assert t.purchases_total == sale.total_net and t.purchases_count == 1
    assert t.items_count == sum(ln.qty for ln in sale.lines)
    assert t.points_earned == sale.points_earned and t.points_used == 0
    assert t.discount_total == sale.total_discount
    for mode, paid in (("cash", t.paid_cash), ("card", t.paid_card), ("credit", t.paid_credit)):
        assert paid == sum(p.amount for p in sale.payments if p.mode == mode)
    assert t.credit_outstanding == t.paid_credit
    assert (t.best_purchase_total, t.best_purchase_id) == (sale.total_net, sale.sale_id)
    assert t.last_purchase_at == at
    assert set(t.items) == {ln.sku for ln in sale.lines}
    for sku, item in t.items.items():
        mine = [ln for ln in sale.lines if ln.sku == sku]
        assert item.qty == sum(ln.qty for ln in mine)
        assert item.max_unit_price == max(ln.unit_price for ln in mine)


@given(redemptions, repayments)
def test_redemptions_use_points_and_repayments_reduce_credit(gift: GiftRedeemed,
                                                             paid: CreditRepaid) -> None:
    t = tally_of(gift).combine(tally_of(paid))
    assert t.points_used == gift.points_spent and t.gifts_count == gift.qty
    assert t.gifts == {gift.gift_sku: gift.qty}
    assert t.credit_repaid == paid.amount and t.credit_outstanding == -paid.amount
    assert tally_of(VisitRecorded(customer_id="C", till_id=None, via="card")) == Tally()


@given(st.lists(bodies, max_size=10))
def test_points_balance_is_earned_minus_used_minus_expired(facts: list[object]) -> None:
    """A correction's points count as earned (negative ones too), its credit as repaid; an
    expiry's points are a figure of their own, off the balance."""
    total = Tally()
    for body in facts:
        total = total.combine(tally_of(body))  # type: ignore[arg-type]
    earned = sum(b.points_earned for b in facts if isinstance(b, SaleRecorded)) + sum(
        b.points for b in facts if isinstance(b, BalanceAdjusted))
    used = sum(b.points_spent for b in facts if isinstance(b, GiftRedeemed))
    expired = sum(b.points for b in facts if isinstance(b, PointsExpired))
    repaid = sum(b.amount for b in facts if isinstance(b, CreditRepaid)) + sum(
        b.credit for b in facts if isinstance(b, BalanceAdjusted))
    assert (total.points_earned, total.points_used, total.points_expired) == (earned, used,
                                                                              expired)
    assert total.points_balance == earned - used - expired
    assert total.credit_repaid == repaid
    stats = total.statistics()
    assert stats["points_balance"] == earned - used - expired
    assert stats["total_points_expired"] == expired


@given(small, st.integers(1, 10**6))
def test_average_item_value_rounds_half_up(total: int, items: int) -> None:
    t = Tally(purchases_total=total, items_count=items)
    assert t.average_item_value == int(Fraction(total, items) + Fraction(1, 2))


def test_average_item_value_examples() -> None:
    assert Tally(purchases_total=5, items_count=2).average_item_value == 3  # 2.5 -> 3
    assert Tally(purchases_total=7, items_count=3).average_item_value == 2  # 2.33 -> 2
    assert Tally(purchases_total=5, items_count=3).average_item_value == 2  # 1.67 -> 2
    assert Tally().average_item_value == 0


@given(tallies)
def test_statistics_top_lists_are_at_most_10_and_sorted(a: Tally) -> None:
    stats = a.statistics()
    expensive, purchased = stats["top_expensive_items"], stats["top_purchased_items"]
    assert len(expensive) == min(10, len(a.items)) == len(purchased)
    prices = [i["unit_price"] for i in expensive]
    assert prices == sorted(prices, reverse=True)
    qtys = [i["qty"] for i in purchased]
    assert qtys == sorted(qtys, reverse=True)
    for item in purchased:
        assert a.items[item["sku"]].qty == item["qty"]


@settings(max_examples=60, deadline=None)
@given(st.lists(tallies, min_size=1, max_size=5))
def test_the_sql_tally_store_adds_what_combine_adds(deltas: list[Tally]) -> None:
    db = Database(":memory:", migrations)
    try:
        expected = Tally()
        with db.write() as conn:
            for delta in deltas:
                tallystore.add(conn, "C", delta)
                expected = expected.combine(delta)
            assert tallystore.load(conn, "C") == expected
            assert tallystore.points_balance(conn, "C") == expected.points_balance
            tallystore.replace(conn, "C", deltas[0])
            assert tallystore.load(conn, "C") == deltas[0]
            assert tallystore.load(conn, "nobody") == Tally()
    finally:
        db.close()
