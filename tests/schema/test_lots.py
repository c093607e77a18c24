"""Points as dated lots (schema/lots.py): earning, spending oldest-expiring first, taking a
return's points back, giving a gift's points back, corrections, expiry and pending points,
and the fold of real fact bodies into a `Book` beside the Tally."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schema.errors import AlreadyReversed, SupervisorRequired
from schema.events import ExpiredLot, GiftRedeemed, Payment, SaleLine, SaleRecorded, tally_of
from schema.ledger import Tally
from schema.lots import (
    DEFICIT,
    Book,
    ExpiryRule,
    Lot,
    add_months,
    adjust,
    apply,
    balance,
    due,
    earn,
    end_of_month_after,
    expire,
    expiring,
    give_back,
    pending,
    spend,
    spendable,
    take_back,
)
from schema.reversal import (
    Asked,
    BalanceAdjusted,
    PointsExpired,
    ReturnRecorded,
    ReturnsSettings,
    plan_gift_return,
    plan_return,
    plan_void,
    returned_qty,
    tally_delta,
)

NEVER = ExpiryRule()
YEAR = ExpiryRule(kind="end_of_month", months=12, grace_days=0)
IDLE = ExpiryRule(kind="inactivity", months=6)
D = date(2025, 1, 15)


def lots_of(*spec: tuple[str, int, date | None]) -> tuple[Lot, ...]:
    found: tuple[Lot, ...] = ()
    for n, (lot_id, points, expires) in enumerate(spec):
        found = (*found, Lot(lot_id, D + timedelta(days=n), points, expires_on=expires))
    return found


def points_of(lots: tuple[Lot, ...]) -> dict[str, int]:
    return {lot.lot_id: lot.points for lot in lots}


# --- dates ----------------------------------------------------------------------------


@pytest.mark.parametrize(("earned", "months", "expires"), [
    (date(2025, 1, 15), 12, date(2026, 1, 31)), (date(2025, 1, 31), 1, date(2025, 2, 28)),
    (date(2024, 1, 1), 1, date(2024, 2, 29)), (date(2025, 12, 5), 0, date(2025, 12, 31)),
    (date(2025, 11, 30), 3, date(2026, 2, 28))])
def test_end_of_the_nth_month_after_the_month_earned(earned: date, months: int,
                                                     expires: date) -> None:
    assert end_of_month_after(earned, months) == expires


@pytest.mark.parametrize(("start", "months", "end"), [
    (date(2025, 3, 10), 6, date(2025, 9, 10)), (date(2025, 8, 31), 6, date(2026, 2, 28)),
    (date(2024, 2, 29), 12, date(2025, 2, 28))])
def test_add_months_keeps_the_day_or_the_months_last(start: date, months: int, end: date) -> None:
    assert add_months(start, months) == end


def test_a_rule_that_expires_needs_months() -> None:
    with pytest.raises(ValidationError):
        ExpiryRule(kind="end_of_month")
    with pytest.raises(ValidationError):
        ExpiryRule(kind="sometimes")  # type: ignore[arg-type]


def test_the_end_of_month_rule_fixes_a_lots_date_when_it_is_earned() -> None:
    (lot,) = earn((), "S-1", 100, D, YEAR)
    assert lot.expires_on == date(2026, 1, 31)
    assert YEAR.expiry_of(lot) == date(2026, 1, 31)
    assert NEVER.expiry_of(lot) == date(2026, 1, 31)  # a lot keeps the date it was given


def test_turning_expiry_on_is_not_retroactive() -> None:
    (old,) = earn((), "S-old", 100, date(2024, 3, 5), NEVER)
    assert old.expires_on is None
    rule = ExpiryRule(kind="end_of_month", months=12, since=date(2025, 7, 1))
    assert rule.expiry_of(old) == date(2026, 7, 31)


def test_inactivity_expires_every_lot_months_after_the_last_purchase() -> None:
    lots = earn(earn((), "S-1", 10, date(2025, 1, 5), IDLE), "S-2", 10, date(2025, 3, 10), IDLE)
    assert all(lot.expires_on is None for lot in lots)
    assert {IDLE.expiry_of(lot, date(2025, 3, 10)) for lot in lots} == {date(2025, 9, 10)}
    assert {IDLE.expiry_of(lot, date(2025, 9, 1)) for lot in lots} == {date(2026, 3, 1)}
    # a lot earned after the last purchase (a correction) starts its own clock
    late = Lot("A-1", date(2025, 5, 1), 5)
    assert IDLE.expiry_of(late, date(2025, 3, 10)) == date(2025, 11, 1)


# --- earning and spending -------------------------------------------------------------


def test_spending_takes_the_oldest_expiring_lot_first() -> None:
    lots = lots_of(("late", 100, date(2026, 6, 30)), ("soon", 100, date(2026, 1, 31)),
                   ("never", 100, None))
    after, taken = spend(lots, 150, D, NEVER)  # under `never`, a lot without a date keeps none
    assert points_of(after) == {"late": 50, "never": 100}
    assert [(t.lot_id, t.points) for t in taken] == [("soon", 100), ("late", 50)]


def test_spending_beyond_the_lots_leaves_a_deficit_that_the_next_earning_repays() -> None:
    after, taken = spend(lots_of(("a", 30, None)), 50, D, NEVER)
    assert points_of(after) == {DEFICIT: -20} and balance(after) == -20
    assert [(t.lot_id, t.points) for t in taken] == [("a", 30), (DEFICIT, 20)]
    repaid = earn(after, "S-9", 50, D, NEVER)
    assert points_of(repaid) == {"S-9": 30}


def test_pending_points_are_spent_only_after_the_spendable_ones() -> None:
    lots = earn(earn((), "S-1", 100, D, NEVER), "S-2", 100, D, NEVER, pending_days=30)
    assert spendable(lots, D) == 100 and pending(lots, D) == 100
    assert spendable(lots, D + timedelta(days=30)) == 200
    after, taken = spend(lots, 150, D, NEVER)
    assert [(t.lot_id, t.points) for t in taken] == [("S-1", 100), ("S-2", 50)]
    assert balance(after) == 50


# --- the way back ---------------------------------------------------------------------


def test_a_return_takes_back_from_its_sales_lot_first() -> None:
    lots = lots_of(("S-1", 100, date(2026, 1, 31)), ("S-2", 100, date(2026, 2, 28)))
    after, taken = take_back(lots, "S-2", 60, D, YEAR)
    assert points_of(after) == {"S-1": 100, "S-2": 40}
    assert [(t.lot_id, t.points) for t in taken] == [("S-2", 60)]


def test_a_return_from_a_partly_spent_lot_takes_the_rest_in_spending_order() -> None:
    lots = lots_of(("S-1", 100, date(2026, 1, 31)), ("S-2", 100, date(2026, 2, 28)),
                   ("S-3", 100, date(2026, 3, 31)))
    lots, _ = spend(lots, 180, D, YEAR)  # S-1 all, S-2 80
    after, taken = take_back(lots, "S-2", 100, D, YEAR)
    assert [(t.lot_id, t.points) for t in taken] == [("S-2", 20), ("S-3", 80)]
    assert points_of(after) == {"S-3": 20}


def test_a_return_beyond_every_lot_leaves_a_deficit() -> None:
    after, _ = take_back(lots_of(("S-1", 10, None)), "S-1", 25, D, NEVER)
    assert points_of(after) == {DEFICIT: -15}


def test_a_gift_return_puts_points_back_into_the_lots_they_came_from() -> None:
    lots = lots_of(("S-1", 100, date(2026, 1, 31)), ("S-2", 100, date(2026, 2, 28)))
    spent, taken = spend(lots, 150, D, YEAR)
    back, left = give_back(spent, taken, 100, "GR-1", D, YEAR)
    assert points_of(back) == {"S-1": 100, "S-2": 50}
    assert [(t.lot_id, t.points) for t in left] == [("S-2", 50)]
    again, left = give_back(back, left, 50, "GR-2", D, YEAR)
    assert again == lots and left == ()


def test_a_gift_return_repays_a_deficit_first_and_keeps_the_rest_in_a_new_lot() -> None:
    lots = earn((), "S-1", 30, D, NEVER)
    spent, taken = spend(lots, 50, D, NEVER)  # 30 from S-1, 20 into the deficit
    spent = earn(spent, "S-2", 20, D, NEVER)  # repays the deficit
    back, left = give_back(spent, taken, 50, "GR-1", D, NEVER)
    assert points_of(back) == {"S-1": 30, "GR-1": 20} and left == ()


def test_a_gift_return_without_its_redemptions_lots_makes_a_new_lot() -> None:
    back, _ = give_back((), (), 40, "GR-1", D, YEAR)
    assert back == (Lot("GR-1", D, 40, expires_on=date(2026, 1, 31)),)


def test_corrections_add_a_lot_or_take_in_spending_order() -> None:
    lots = adjust(lots_of(("S-1", 10, None)), "A-1", 25, D + timedelta(days=10), NEVER)
    assert points_of(lots) == {"S-1": 10, "A-1": 25}
    lots = adjust(lots, "A-2", -30, D, NEVER)
    assert points_of(lots) == {"A-1": 5}


# --- expiry ---------------------------------------------------------------------------


def test_due_names_what_remains_of_each_lot_past_its_last_day() -> None:
    lots = lots_of(("S-1", 100, date(2026, 1, 31)), ("S-2", 40, date(2026, 1, 31)),
                   ("S-3", 100, date(2026, 2, 28)))
    lots, _ = spend(lots, 60, D, YEAR)
    assert due(lots, date(2026, 1, 31), YEAR) == []
    found = due(lots, date(2026, 2, 1), YEAR)
    assert [(x.lot_id, x.points, x.expired_on) for x in found] == [
        ("S-1", 40, "2026-01-31"), ("S-2", 40, "2026-01-31")]
    assert points_of(expire(lots, found)) == {"S-3": 100}


def test_an_expiry_of_more_than_a_lot_holds_is_refused() -> None:
    with pytest.raises(ValueError, match="S-1"):
        expire(lots_of(("S-1", 10, None)), [ExpiredLot(lot_id="S-1", points=11,
                                                       expired_on="2026-01-31")])


def test_a_deficit_never_expires() -> None:
    lots, _ = spend((), 10, D, YEAR)
    assert due(lots, date(2100, 1, 1), YEAR) == []


def test_expiring_groups_what_expires_within_the_days_by_date() -> None:
    lots = lots_of(("S-1", 100, date(2026, 1, 31)), ("S-2", 40, date(2026, 1, 31)),
                   ("S-3", 100, date(2026, 3, 31)), ("S-4", 7, None))
    assert expiring(lots, date(2026, 1, 1), 60, NEVER) == [(date(2026, 1, 31), 140)]
    assert expiring(lots, date(2026, 2, 1), 60, NEVER) == [(date(2026, 3, 31), 100)]


# --- the Book: facts folded into lots -----------------------------------------------


def a_sale(sale_id: str, net: int, points: int) -> SaleRecorded:
    return SaleRecorded(
        sale_id=sale_id, customer_id="C", currency="EUR",
        lines=[SaleLine(sku="X", name="X", qty=1, unit_price=net, gross=net, discount=0,
                        net=net)],
        payments=[Payment(mode="cash", amount=net)], total_gross=net, total_discount=0,
        total_net=net, points_earned=points)


def test_the_book_folds_sales_redemptions_returns_corrections_and_expiry() -> None:
    s1, s2 = a_sale("S-1", 10_000, 100), a_sale("S-2", 5_000, 50)
    book = apply(apply(Book(), s1, D, YEAR), s2, D + timedelta(days=40), YEAR)
    mug = GiftRedeemed(redemption_id="G-1", customer_id="C", gift_sku="MUG", gift_name="Mug",
                       qty=1, points_spent=120)
    book = apply(book, mug, D + timedelta(days=41), YEAR)
    assert points_of(book.lots) == {"S-2": 30}
    book = apply(book, plan_gift_return(mug, [], 1, gift_return_id="GR-1"), D, YEAR)
    assert points_of(book.lots) == {"S-1": 100, "S-2": 50} and book.spends == {}
    book = apply(book, BalanceAdjusted(adjustment_id="A-1", customer_id="C", points=5,
                                       reason="goodwill"), D + timedelta(days=40), YEAR)
    found = due(book.lots, date(2026, 2, 1), YEAR)
    book = apply(book, PointsExpired(expiry_id="E", customer_id="C", on="2026-02-01",
                                     lots=found), date(2026, 2, 1), YEAR)
    assert points_of(book.lots) == {"S-2": 50, "A-1": 5} and book.balance == 55


# --- properties -----------------------------------------------------------------------

RULES = st.sampled_from([NEVER, YEAR, IDLE, ExpiryRule(kind="end_of_month", months=1),
                         ExpiryRule(kind="end_of_month", months=2, since=date(2025, 3, 1))])
POLICIES = st.sampled_from([ReturnsSettings(), ReturnsSettings(points_policy="supervisor"),
                            ReturnsSettings(points_policy="reduce_refund",
                                            point_value_per_100=10)])


def spending_key(rule: ExpiryRule, lot: Lot) -> tuple[date, date, str]:
    return (rule.expiry_of(lot) or date.max, lot.earned_on, lot.lot_id)


@settings(max_examples=250, deadline=None)
@given(RULES, POLICIES, st.integers(0, 30), st.lists(st.tuples(
    st.sampled_from(["sale", "return", "void", "redeem", "gift_back", "adjust", "expire"]),
    st.integers(0, 400), st.integers(0, 40)), max_size=40))
def test_any_interleaving_keeps_the_book_and_the_tally_in_step(
        rule: ExpiryRule, policy: ReturnsSettings, pending_days: int,
        steps: list[tuple[str, int, int]]) -> None:
    book, tally = Book(), Tally()
    sales: dict[str, SaleRecorded] = {}
    returns: dict[str, list[ReturnRecorded]] = {}
    redemptions: dict[str, GiftRedeemed] = {}
    day = date(2025, 1, 1)
    for n, (what, amount, days) in enumerate(steps):
        day += timedelta(days=days)
        before = book.balance
        fact: object = None
        if what == "sale":
            fact = a_sale(f"S{n}", amount * 100 + 1, amount)
            sales[fact.sale_id] = fact
            returns[fact.sale_id] = []
        elif what in ("return", "void") and sales:
            s = sales[sorted(sales)[amount % len(sales)]]
            left = s.lines[0].qty - returned_qty(s, returns[s.sale_id])[0]
            try:
                if what == "void":
                    fact = plan_void(s, returns[s.sale_id], return_id=f"R{n}",
                                     balance=book.balance, settings=policy)
                elif left:
                    fact = plan_return(s, returns[s.sale_id], [Asked("X", 1)],
                                       return_id=f"R{n}", balance=book.balance,
                                       settings=policy)
            except (AlreadyReversed, SupervisorRequired):  # refused: nothing recorded
                continue
            if isinstance(fact, ReturnRecorded):
                returns[s.sale_id].append(fact)
                if policy.points_policy != "negative":
                    assert before - fact.points_reversed >= min(before, 0)
        elif what == "redeem" and 0 < amount <= spendable(book.lots, day):
            fact = GiftRedeemed(redemption_id=f"G{n}", customer_id="C", gift_sku="MUG",
                                gift_name="Mug", qty=1, points_spent=amount)
            redemptions[fact.redemption_id] = fact
        elif what == "gift_back" and redemptions:
            rid = sorted(redemptions)[amount % len(redemptions)]
            fact = plan_gift_return(redemptions.pop(rid), [], 1, gift_return_id=f"GR{n}")
        elif what == "adjust" and amount != 200:
            fact = BalanceAdjusted(adjustment_id=f"A{n}", customer_id="C",
                                   points=amount - 200, reason="correction")
        elif what == "expire":
            found = due(book.lots, day, rule)
            for x in found:
                held = {lot.lot_id: lot.points for lot in book.lots}[x.lot_id]
                assert 0 < x.points <= held
            if found:
                fact = PointsExpired(expiry_id=f"E{n}", customer_id="C",
                                     on=day.isoformat(), lots=found)
        if fact is None:
            continue
        lots_before = book.lots
        book = apply(book, fact, day, rule, pending_days=pending_days)  # type: ignore[arg-type]
        if isinstance(fact, (SaleRecorded, GiftRedeemed)):
            tally = tally.combine(tally_of(fact))
        else:
            tally = tally.combine(tally_delta(fact).tally)  # type: ignore[arg-type]
        assert book.balance == sum(lot.points for lot in book.lots)
        assert book.balance == tally.points_balance
        assert sum(1 for lot in book.lots if lot.lot_id == DEFICIT) <= 1
        if any(lot.points < 0 for lot in book.lots):
            assert all(lot.points <= 0 for lot in book.lots)  # a deficit means nothing is left
        if isinstance(fact, GiftRedeemed):
            taken = [t for t in book.spends[fact.redemption_id] if t.lot_id != DEFICIT]
            usable = [lot for lot in lots_before if lot.points > 0
                      and (lot.spendable_on is None or lot.spendable_on <= day)]
            # oldest-expiring first: what was left untouched expires no sooner than the
            # last lot the spend reached
            if taken:
                last = next(lot for lot in usable if lot.lot_id == taken[-1].lot_id)
                untouched = [lot for lot in usable
                             if lot.lot_id not in {t.lot_id for t in taken}]
                assert all(spending_key(rule, lot) > spending_key(rule, last)
                           for lot in untouched)
                assert all(t.points == lot.points for t in taken[:-1]
                           for lot in usable if lot.lot_id == t.lot_id)


@settings(max_examples=250, deadline=None)
@given(RULES, st.integers(0, 30), st.lists(st.tuples(st.sampled_from(["earn", "spend", "adj"]),
                                                     st.integers(1, 300)), max_size=12),
       st.integers(0, 500), st.integers(1, 5))
def test_a_full_return_with_nothing_spent_in_between_puts_the_lots_back(
        rule: ExpiryRule, pending_days: int, history: list[tuple[str, int]], points: int,
        units: int) -> None:
    book = Book()
    day = date(2025, 1, 1)
    for n, (what, amount) in enumerate(history):
        day += timedelta(days=7)
        if what == "earn":
            book = apply(book, a_sale(f"H{n}", amount * 100, amount), day, rule)
        elif what == "spend":
            book = apply(book, GiftRedeemed(redemption_id=f"G{n}", customer_id="C",
                                            gift_sku="MUG", gift_name="Mug", qty=1,
                                            points_spent=amount), day, rule)
        else:
            book = apply(book, BalanceAdjusted(adjustment_id=f"A{n}", customer_id="C",
                                               points=amount - 150 or 1, reason="r"), day, rule)
    s = SaleRecorded(sale_id="S", customer_id="C", currency="EUR",
                     lines=[SaleLine(sku="X", name="X", qty=units, unit_price=999,
                                     gross=999 * units, discount=0, net=999 * units)],
                     payments=[Payment(mode="card", amount=999 * units)],
                     total_gross=999 * units, total_discount=0, total_net=999 * units,
                     points_earned=points)
    after_sale = apply(book, s, day, rule, pending_days=pending_days)
    done: list[ReturnRecorded] = []
    for n in range(units):
        done.append(plan_return(s, done, [Asked("X", 1)], return_id=f"R{n}",
                                balance=after_sale.balance, settings=ReturnsSettings()))
        after_sale = apply(after_sale, done[-1], day + timedelta(days=n), rule)
    assert after_sale == book
