"""The maths of the way back (schema/reversal.py): returns, voids, gift returns, the points
policy, the statistics deltas and their restatement. Pure: no database, no clock.

The worked examples of docs/programme.md are checked in tests/schema/test_programme_docs.py."""

from __future__ import annotations

from collections.abc import Sequence
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schema.errors import AlreadyReversed, InvalidRequest, ReturnExceedsSale, SupervisorRequired
from schema.events import (
    Body,
    ExpiredLot,
    GiftRedeemed,
    Payment,
    SaleLine,
    SaleRecorded,
    tally_of,
)
from schema.ledger import ItemTally, Tally
from schema.reversal import (
    BODIES,
    REFUND_ORDER,
    Asked,
    BalanceAdjusted,
    GiftReturned,
    PointsExpired,
    ReturnRecorded,
    ReturnsSettings,
    audit,
    holding,
    plan_gift_return,
    plan_return,
    plan_void,
    restate,
    returned_qty,
    settle,
    share,
    tally_delta,
)

NEGATIVE = ReturnsSettings()
SUPERVISOR = ReturnsSettings(points_policy="supervisor")
REDUCE = ReturnsSettings(points_policy="reduce_refund", point_value_per_100=100)
RICH = 10**9  # a balance that covers any points a test takes back


def line(sku: str, qty: int, unit_price: int, discount: int = 0, name: str = "") -> SaleLine:
    gross = qty * unit_price
    return SaleLine(sku=sku, name=name or sku.title(), qty=qty, unit_price=unit_price,
                    gross=gross, discount=discount, net=gross - discount)


def sale(lines: Sequence[SaleLine], payments: dict[str, int] | None = None, points: int = 0,
         sale_id: str = "S-1") -> SaleRecorded:
    total_net = sum(ln.net for ln in lines)
    paid = payments if payments is not None else {"cash": total_net}
    return SaleRecorded(
        sale_id=sale_id, customer_id="C-1", till_id="T1", currency="EUR", lines=list(lines),
        payments=[Payment(mode=m, amount=a) for m, a in paid.items()],  # type: ignore[arg-type]
        total_gross=sum(ln.gross for ln in lines), total_discount=sum(ln.discount for ln in lines),
        total_net=total_net, points_earned=points)


def ret(s: SaleRecorded, earlier: Sequence[ReturnRecorded], *asked: tuple[str, int],
        balance: int = RICH, policy: ReturnsSettings = NEGATIVE, n: int = 0,
        approved: bool = False) -> ReturnRecorded:
    return plan_return(s, earlier, [Asked(sku, qty) for sku, qty in asked],
                       return_id=f"R-{len(earlier)}-{n}", balance=balance, settings=policy,
                       till_id="T1", approved=approved)


def refunds(r: ReturnRecorded) -> dict[str, int]:
    return {x.mode: x.amount for x in r.refunds}


BREAD = sale([line("BREAD", 3, 1250, discount=263)], points=52)


# --- the value of what comes back -------------------------------------------------------


@pytest.mark.parametrize(("amount", "part", "whole", "expected"),
                         [(3487, 1, 3, 1162), (3487, 2, 3, 2325), (3487, 3, 3, 3487),
                          (5, 1, 2, 3), (0, 1, 4, 0), (7, 0, 3, 0)])
def test_share_is_the_cumulative_part_rounded_half_up(amount: int, part: int, whole: int,
                                                      expected: int) -> None:
    assert share(amount, part, whole) == expected


def test_partial_returns_refund_the_net_in_cumulative_shares_and_the_last_is_exact() -> None:
    first = ret(BREAD, [], ("BREAD", 1))
    second = ret(BREAD, [first], ("BREAD", 1))
    third = ret(BREAD, [first, second], ("BREAD", 1))
    assert [r.value for r in (first, second, third)] == [1162, 1163, 1162]
    assert [r.lines[0].discount for r in (first, second, third)] == [88, 87, 88]
    assert sum(r.value for r in (first, second, third)) == BREAD.total_net
    assert [r.closes_sale for r in (first, second, third)] == [False, False, True]


def test_returning_in_pieces_refunds_what_one_return_of_the_same_units_refunds() -> None:
    s = sale([line("A", 7, 333, discount=100), line("B", 5, 999, discount=7)], points=40)
    one = ret(s, [], ("A", 4), ("B", 3))
    pieces: list[ReturnRecorded] = []
    for sku, qty in (("A", 1), ("B", 2), ("A", 3), ("B", 1)):
        pieces.append(ret(s, pieces, (sku, qty)))
    assert sum(r.value for r in pieces) == one.value
    assert sum(r.points_reversed for r in pieces) == one.points_reversed


def test_a_return_names_the_sale_its_lines_and_what_each_line_gives_back() -> None:
    r = ret(BREAD, [], ("BREAD", 2))
    assert r.sale_id == BREAD.sale_id and r.customer_id == "C-1" and r.kind == "return"
    assert [(x.line, x.sku, x.qty, x.gross, x.discount, x.net) for x in r.lines] == [
        (0, "BREAD", 2, 2500, 175, 2325)]


def test_a_sku_on_several_lines_is_taken_in_line_order() -> None:
    s = sale([line("TEA", 2, 100), line("TEA", 3, 90)])
    r = ret(s, [], ("TEA", 4))
    assert [(x.line, x.qty) for x in r.lines] == [(0, 2), (1, 2)]
    assert returned_qty(s, [r]) == [2, 2]


def test_a_line_may_be_named_by_its_number() -> None:
    s = sale([line("TEA", 2, 100), line("TEA", 3, 90)])
    r = plan_return(s, [], [Asked("TEA", 1, line=1)], return_id="R", balance=RICH,
                    settings=NEGATIVE)
    assert [(x.line, x.net) for x in r.lines] == [(1, 90)]


# --- refusals ---------------------------------------------------------------------------


def test_returning_more_than_was_sold_is_refused_naming_the_sku() -> None:
    with pytest.raises(ReturnExceedsSale) as caught:
        ret(BREAD, [], ("BREAD", 4))
    assert caught.value.context == {"sku": "BREAD", "sold": 3, "returned": 0, "asked": 4}
    assert "BREAD" in caught.value.message


def test_returning_more_than_what_is_left_after_earlier_returns_is_refused() -> None:
    first = ret(BREAD, [], ("BREAD", 2))
    with pytest.raises(ReturnExceedsSale) as caught:
        ret(BREAD, [first], ("BREAD", 2))
    assert caught.value.code == "return_exceeds_sale"
    assert caught.value.context["returned"] == 2


def test_returning_an_item_the_sale_did_not_have_is_refused() -> None:
    with pytest.raises(ReturnExceedsSale) as caught:
        ret(BREAD, [], ("MILK", 1))
    assert caught.value.context["sold"] == 0


@pytest.mark.parametrize("asked", [[], [Asked("BREAD", 0)], [Asked("BREAD", -1)],
                                   [Asked("BREAD", 1, line=5)], [Asked("MILK", 1, line=0)]])
def test_a_malformed_return_is_an_invalid_request(asked: list[Asked]) -> None:
    with pytest.raises(InvalidRequest):
        plan_return(BREAD, [], asked, return_id="R", balance=RICH, settings=NEGATIVE)


def test_a_return_of_another_sale_among_the_earlier_ones_is_an_invalid_request() -> None:
    other = ret(sale([line("BREAD", 3, 1250)], sale_id="S-2"), [], ("BREAD", 1))
    with pytest.raises(InvalidRequest):
        ret(BREAD, [other], ("BREAD", 1))


def test_a_sale_whose_figures_do_not_add_up_is_an_invalid_request() -> None:
    bad = BREAD.model_copy(update={"total_net": BREAD.total_net + 1})
    with pytest.raises(InvalidRequest):
        ret(bad, [], ("BREAD", 1))


# --- voids ------------------------------------------------------------------------------


def test_a_void_returns_every_line_left_and_says_void() -> None:
    s = sale([line("A", 2, 500), line("B", 1, 300)], payments={"card": 1300}, points=13)
    v = plan_void(s, [], return_id="V", balance=RICH, settings=NEGATIVE, till_id="T1",
                  reason="wrong customer")
    assert v.kind == "void" and v.reason == "wrong customer" and v.closes_sale
    assert v.value == 1300 and refunds(v) == {"card": 1300} and v.points_reversed == 13


def test_a_void_after_a_partial_return_returns_the_rest() -> None:
    first = ret(BREAD, [], ("BREAD", 1))
    v = plan_void(BREAD, [first], return_id="V", balance=RICH, settings=NEGATIVE)
    assert [(x.qty, x.net) for x in v.lines] == [(2, 2325)]
    assert first.value + v.value == BREAD.total_net
    assert first.points_reversed + v.points_reversed == BREAD.points_earned


def test_a_void_of_a_voided_or_fully_returned_sale_is_already_reversed() -> None:
    v = plan_void(BREAD, [], return_id="V", balance=RICH, settings=NEGATIVE)
    with pytest.raises(AlreadyReversed):
        plan_void(BREAD, [v], return_id="V2", balance=RICH, settings=NEGATIVE)
    full = ret(BREAD, [], ("BREAD", 3))
    with pytest.raises(AlreadyReversed) as caught:
        plan_void(BREAD, [full], return_id="V3", balance=RICH, settings=NEGATIVE)
    assert caught.value.code == "already_reversed"


def test_a_return_of_a_voided_sale_exceeds_the_sale() -> None:
    v = plan_void(BREAD, [], return_id="V", balance=RICH, settings=NEGATIVE)
    with pytest.raises(ReturnExceedsSale):
        ret(BREAD, [v], ("BREAD", 1))


# --- the refund over the payment modes ----------------------------------------------------


def test_the_refund_goes_to_credit_first_then_card_then_cash() -> None:
    assert REFUND_ORDER == ("credit", "card", "cash")
    s = sale([line("TV", 1, 6000), line("CABLE", 4, 1000)],
             payments={"cash": 2000, "card": 5000, "credit": 3000})
    first = ret(s, [], ("TV", 1))
    assert refunds(first) == {"credit": 3000, "card": 3000}
    second = ret(s, [first], ("CABLE", 4))
    assert refunds(second) == {"card": 2000, "cash": 2000}


def test_a_full_return_refunds_exactly_what_each_mode_paid() -> None:
    s = sale([line("A", 3, 333, discount=1)], payments={"cash": 500, "card": 300, "credit": 198})
    r = ret(s, [], ("A", 3))
    assert refunds(r) == {"cash": 500, "card": 300, "credit": 198}


# --- points ----------------------------------------------------------------------------


def test_points_are_taken_back_on_net_value_rounded_up_and_exact_on_the_last_unit() -> None:
    first = ret(BREAD, [], ("BREAD", 1))
    second = ret(BREAD, [first], ("BREAD", 1))
    third = ret(BREAD, [first, second], ("BREAD", 1))
    # 52 x 1162 / 3487 = 17.33 -> 18; cumulative 52 x 2325 / 3487 = 34.67 -> 35; then 52.
    assert [r.points_reversed for r in (first, second, third)] == [18, 17, 17]


def test_a_sale_that_earned_nothing_takes_nothing_back() -> None:
    r = ret(sale([line("A", 2, 100)], points=0), [], ("A", 1))
    assert r.points_reversed == 0 and r.points_withheld == 0


def test_negative_policy_takes_every_point_back_even_below_zero() -> None:
    r = ret(BREAD, [], ("BREAD", 3), balance=10)
    assert r.points_reversed == 52 and r.points_withheld == 0 and refunds(r) == {"cash": 3487}


def test_supervisor_policy_refuses_when_the_balance_cannot_cover_the_points() -> None:
    with pytest.raises(SupervisorRequired) as caught:
        ret(BREAD, [], ("BREAD", 3), balance=10, policy=SUPERVISOR)
    assert caught.value.code == "supervisor_required"
    assert caught.value.context == {"points_due": 52, "points_balance": 10, "shortfall": 42}


def test_supervisor_policy_lets_a_covered_return_through() -> None:
    r = ret(BREAD, [], ("BREAD", 3), balance=52, policy=SUPERVISOR)
    assert r.points_reversed == 52


def test_a_supervisors_approval_lets_the_balance_go_negative() -> None:
    r = ret(BREAD, [], ("BREAD", 3), balance=10, policy=SUPERVISOR, approved=True)
    assert r.points_reversed == 52


def test_reduce_refund_policy_keeps_the_points_value_from_the_cash_refund() -> None:
    r = ret(BREAD, [], ("BREAD", 3), balance=10, policy=REDUCE)
    # 42 points short at 1.00 per 100 points: 0.42 kept, rounded up, from the cash refund.
    assert (r.points_reversed, r.points_withheld) == (10, 42)
    assert [(x.mode, x.amount, x.withheld) for x in r.refunds] == [("cash", 3445, 42)]


def test_reduce_refund_keeps_from_cash_then_card_then_credit() -> None:
    s = sale([line("A", 1, 1000)], payments={"cash": 10, "card": 20, "credit": 970}, points=100)
    r = ret(s, [], ("A", 1), balance=0,
            policy=ReturnsSettings(points_policy="reduce_refund", point_value_per_100=50))
    assert [(x.mode, x.amount, x.withheld) for x in r.refunds] == [
        ("credit", 950, 20), ("card", 0, 20), ("cash", 0, 10)]


def test_reduce_refund_goes_to_a_supervisor_when_the_refund_cannot_cover_the_points() -> None:
    s = sale([line("A", 1, 100)], points=500)
    with pytest.raises(SupervisorRequired):
        ret(s, [], ("A", 1), balance=0, policy=REDUCE)


def test_a_negative_balance_counts_as_nothing_available() -> None:
    with pytest.raises(SupervisorRequired) as caught:
        ret(BREAD, [], ("BREAD", 1), balance=-40, policy=SUPERVISOR)
    assert caught.value.context["shortfall"] == 18


def test_withheld_points_count_as_settled_so_later_returns_do_not_take_them_again() -> None:
    first = ret(BREAD, [], ("BREAD", 2), balance=0, policy=REDUCE)
    assert first.points_reversed + first.points_withheld == 35
    last = ret(BREAD, [first], ("BREAD", 1), balance=RICH, policy=REDUCE)
    assert last.points_reversed == 17


def test_reduce_refund_needs_a_point_value() -> None:
    with pytest.raises(ValidationError):
        ReturnsSettings(points_policy="reduce_refund")


# --- gift returns -----------------------------------------------------------------------


MUGS = GiftRedeemed(redemption_id="G-1", customer_id="C-1", gift_sku="GIFT-MUG",
                    gift_name="Club mug", qty=3, points_spent=1000)


def test_gift_returns_give_points_back_rounded_down_and_exact_on_the_last() -> None:
    first = plan_gift_return(MUGS, [], 1, gift_return_id="GR-1")
    second = plan_gift_return(MUGS, [first], 2, gift_return_id="GR-2")
    assert (first.points_returned, second.points_returned) == (333, 667)
    assert first.redemption_id == "G-1" and first.gift_sku == "GIFT-MUG"


def test_returning_more_gifts_than_were_handed_out_is_refused() -> None:
    first = plan_gift_return(MUGS, [], 2, gift_return_id="GR-1")
    with pytest.raises(ReturnExceedsSale):
        plan_gift_return(MUGS, [first], 2, gift_return_id="GR-2")


# --- bodies ---------------------------------------------------------------------------


def test_every_new_body_is_version_1_and_names_what_it_reverses() -> None:
    assert {name for name, _version in BODIES} == {
        "return.recorded", "gift.returned", "balance.adjusted", "points.expired"}
    assert all(version == 1 for _name, version in BODIES)
    assert "sale_id" in ReturnRecorded.model_fields
    assert "redemption_id" in GiftReturned.model_fields
    assert "corrects" in BalanceAdjusted.model_fields
    assert "lot_id" in ExpiredLot.model_fields


@pytest.mark.parametrize("fields", [{"points": 0, "credit": 0}, {"points": 5, "reason": " "},
                                    {"points": 10**10}])
def test_an_adjustment_without_an_amount_or_a_reason_is_refused(fields: dict[str, object]) -> None:
    data: dict[str, object] = {"adjustment_id": "A", "customer_id": "C", "reason": "goodwill"}
    with pytest.raises(ValidationError):
        BalanceAdjusted(**{**data, **fields})  # type: ignore[arg-type]


def test_an_expiry_names_each_lot_once() -> None:
    lot = ExpiredLot(lot_id="S-1", points=5, expired_on="2026-01-31")
    with pytest.raises(ValidationError):
        PointsExpired(expiry_id="E", customer_id="C", on="2026-02-01", lots=[lot, lot])
    assert PointsExpired(expiry_id="E", customer_id="C", on="2026-02-01", lots=[lot]).points == 5


def test_bodies_round_trip_through_json() -> None:
    r = ret(BREAD, [], ("BREAD", 1))
    assert ReturnRecorded.model_validate_json(r.model_dump_json()) == r


# --- statistics -------------------------------------------------------------------------


def test_a_return_delta_takes_back_value_items_discount_payments_and_points() -> None:
    r = ret(BREAD, [], ("BREAD", 1))
    d = tally_delta(r)
    assert (d.tally.purchases_total, d.tally.items_count, d.tally.discount_total,
            d.tally.paid_cash, d.tally.points_earned, d.tally.purchases_count) == (
        -1162, -1, -88, -1162, -18, 0)
    assert d.tally.items["BREAD"].qty == -1 and d.restate == BREAD.sale_id


def test_the_return_that_empties_a_sale_takes_the_purchase_off_the_count() -> None:
    v = plan_void(BREAD, [], return_id="V", balance=RICH, settings=NEGATIVE)
    assert tally_delta(v).tally.purchases_count == -1


def test_gift_return_adjustment_and_expiry_deltas() -> None:
    gr = plan_gift_return(MUGS, [], 1, gift_return_id="GR-1")
    assert tally_delta(gr).tally == Tally(points_used=-333, gifts_count=-1,
                                          gifts={"GIFT-MUG": -1})
    adj = BalanceAdjusted(adjustment_id="A", customer_id="C", points=-20, credit=500,
                          reason="double entry")
    assert tally_delta(adj).tally == Tally(points_earned=-20, credit_repaid=500)
    exp = PointsExpired(expiry_id="E", customer_id="C", on="2026-02-01",
                        lots=[ExpiredLot(lot_id="S-1", points=7, expired_on="2026-01-31")])
    assert tally_delta(exp).tally == Tally(points_expired=7)


def test_restate_recomputes_best_purchase_last_purchase_and_item_prices_from_holdings() -> None:
    big = sale([line("TV", 1, 90_000), line("CABLE", 1, 1000)], payments={"card": 91_000},
               sale_id="S-big")
    small = sale([line("CABLE", 2, 800)], sale_id="S-small")
    before = tally_of(big, "2025-06-01T10:00:00Z").combine(tally_of(small, "2025-06-02T10:00:00Z"))
    assert before.best_purchase_id == "S-big" and before.items["CABLE"].max_unit_price == 1000
    r = ret(big, [], ("TV", 1), ("CABLE", 1))
    after = restate(before.combine(tally_delta(r).tally),
                    [h for h in (holding(big, "2025-06-01T10:00:00Z", [r]),
                                 holding(small, "2025-06-02T10:00:00Z", [])) if h])
    assert (after.best_purchase_id, after.best_purchase_total) == ("S-small", 1600)
    assert "TV" not in after.items and after.items["CABLE"].max_unit_price == 800
    assert after.items["CABLE"].qty == 2 and after.purchases_count == 1
    assert after.last_purchase_at == "2025-06-02T10:00:00Z"


def test_a_partly_returned_sale_is_held_at_what_is_left() -> None:
    r = ret(BREAD, [], ("BREAD", 1))
    held = holding(BREAD, "2025-06-01T10:00:00Z", [r])
    assert held is not None and held.net == BREAD.total_net - r.value
    assert [(x.sku, x.qty) for x in held.lines] == [("BREAD", 2)]
    assert holding(BREAD, "t", [ret(BREAD, [], ("BREAD", 3))]) is None


def test_audit_flags_what_two_outlets_returned_twice() -> None:
    at_a = ret(BREAD, [], ("BREAD", 3), n=1)
    at_b = ret(BREAD, [], ("BREAD", 2), n=2)  # another outlet, offline, did not know
    assert audit(BREAD, [at_a]) == []
    reasons = audit(BREAD, [at_a, at_b])
    assert any("line 0" in reason for reason in reasons)
    assert any("cash" in reason for reason in reasons)
    assert any("points" in reason for reason in reasons)


# --- properties -----------------------------------------------------------------------


@st.composite
def sales(draw: st.DrawFn) -> SaleRecorded:
    lines = []
    for i in range(draw(st.integers(1, 4))):
        qty = draw(st.integers(1, 6))
        price = draw(st.integers(0, 20_000))
        discount = draw(st.integers(0, qty * price // 2))
        lines.append(line(draw(st.sampled_from(["A", "B", "C"])), qty, price, discount,
                          name=f"Item {i}"))
    total = sum(ln.net for ln in lines)
    cash = draw(st.integers(0, total))
    card = draw(st.integers(0, total - cash))
    points = draw(st.integers(0, total // 50 + 3))
    return sale(lines, {"cash": cash, "card": card, "credit": total - cash - card}, points)


policies = st.sampled_from([NEGATIVE, SUPERVISOR, REDUCE,
                            ReturnsSettings(points_policy="reduce_refund", point_value_per_100=7)])


@st.composite
def return_plans(draw: st.DrawFn) -> tuple[SaleRecorded, list[ReturnRecorded], ReturnsSettings,
                                           list[int]]:
    s = draw(sales())
    policy = draw(policies)
    done: list[ReturnRecorded] = []
    balances = []
    for n in range(draw(st.integers(1, 6))):
        left = [ln.qty - q for ln, q in zip(s.lines, returned_qty(s, done), strict=True)]
        open_lines = [i for i, q in enumerate(left) if q > 0]
        if not open_lines:
            break
        i = draw(st.sampled_from(open_lines))
        balance = draw(st.integers(-50, 300))
        try:
            done.append(plan_return(s, done, [Asked(s.lines[i].sku, draw(st.integers(1, left[i])),
                                                    line=i)],
                                    return_id=f"R{n}", balance=balance, settings=policy))
        except SupervisorRequired:
            continue
        balances.append(balance)
    return s, done, policy, balances


def paid_by_mode(s: SaleRecorded) -> dict[str, int]:
    paid = {"cash": 0, "card": 0, "credit": 0}
    for p in s.payments:
        paid[p.mode] += p.amount
    return paid


@settings(max_examples=300, deadline=None)
@given(return_plans())
def test_refunds_never_exceed_what_each_mode_paid(plan: tuple[SaleRecorded, list[ReturnRecorded],
                                                              ReturnsSettings, list[int]]) -> None:
    s, done, _policy, _balances = plan
    given_back = {"cash": 0, "card": 0, "credit": 0}
    for r in done:
        for x in r.refunds:
            given_back[x.mode] += x.amount + x.withheld
            assert x.amount >= 0 and x.withheld >= 0
        assert sum(x.amount + x.withheld for x in r.refunds) == r.value
    paid = paid_by_mode(s)
    assert all(given_back[m] <= paid[m] for m in paid)
    assert audit(s, done) == []


@settings(max_examples=300, deadline=None)
@given(return_plans())
def test_points_never_exceed_what_the_sale_earned_nor_go_below_the_policys_bound(
        plan: tuple[SaleRecorded, list[ReturnRecorded], ReturnsSettings, list[int]]) -> None:
    s, done, policy, balances = plan
    assert sum(r.points_reversed + r.points_withheld for r in done) <= s.points_earned
    for r, balance in zip(done, balances, strict=True):
        after = balance - r.points_reversed
        if policy.points_policy == "negative":
            assert after >= balance - s.points_earned
        else:
            assert after >= min(balance, 0)
    if done and done[-1].closes_sale:
        assert sum(r.points_reversed + r.points_withheld for r in done) == s.points_earned
        assert sum(r.value for r in done) == s.total_net


@settings(max_examples=200, deadline=None)
@given(sales())
def test_a_full_return_refunds_exactly_the_payments_and_takes_back_exactly_the_points(
        s: SaleRecorded) -> None:
    v = plan_void(s, [], return_id="V", balance=RICH, settings=NEGATIVE)
    paid = {m: a for m, a in paid_by_mode(s).items() if a}
    assert {x.mode: x.amount for x in v.refunds} == paid
    assert v.points_reversed == s.points_earned and v.value == s.total_net


@settings(max_examples=200, deadline=None)
@given(sales(), st.lists(st.integers(0, 3), min_size=1, max_size=4))
def test_a_full_return_puts_the_statistics_back_where_they_were(s: SaleRecorded,
                                                               order: list[int]) -> None:
    before_sale = sale([line("OLD", 2, 700)], sale_id="S-0")
    before = tally_of(before_sale, "2025-01-01T00:00:00Z")
    held_before = [holding(before_sale, "2025-01-01T00:00:00Z", [])]
    done: list[ReturnRecorded] = []
    for n, i in enumerate(order):
        left = [ln.qty - q for ln, q in zip(s.lines, returned_qty(s, done), strict=True)]
        if i < len(s.lines) and left[i]:
            done.append(plan_return(s, done, [Asked(s.lines[i].sku, left[i], line=i)],
                                    return_id=f"R{n}", balance=RICH, settings=NEGATIVE))
    if not done or not done[-1].closes_sale:
        done.append(plan_void(s, done, return_id="V", balance=RICH, settings=NEGATIVE))
    total = before.combine(tally_of(s, "2025-06-01T00:00:00Z"))
    for r in done:
        total = total.combine(tally_delta(r).tally)
    held = [h for h in (*held_before, holding(s, "2025-06-01T00:00:00Z", done)) if h]
    assert restate(total, held) == restate(before, [h for h in held_before if h])
    assert restate(before, [h for h in held_before if h]) == before


def test_audit_reports_a_return_that_does_not_match_the_sale_instead_of_raising() -> None:
    # what a forged or mismatched receipt code produces: HQ flags it, never rejects it
    forged_sale = sale([line("BREAD", 3, 2500), line("CAKE", 1, 900)], sale_id=BREAD.sale_id)
    forged = ret(forged_sale, [], ("BREAD", 1), ("CAKE", 1))
    other = ret(sale([line("BREAD", 3, 1250)], sale_id="S-9"), [], ("BREAD", 1))
    reasons = audit(BREAD, [forged, other])
    assert any("unit price 2500" in reason and "1250" in reason for reason in reasons)
    assert any("line 1" in reason and "CAKE" in reason for reason in reasons)
    assert any("S-9" in reason for reason in reasons)


# --- HQ's tally: the sum, restated when a return arrives ----------------------------------


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[Body, str]]:
    """A customer's sales and returns in some arrival order, with the returns planned
    against the sales as an outlet would (and sometimes arriving before their sale, as a
    return made elsewhere reaches HQ first), plus a return of a sale HQ never gets."""
    skus = st.sampled_from(["A", "B", "C"])
    facts: list[tuple[Body, str]] = []
    for n in range(draw(st.integers(1, 3))):
        lines = [line(draw(skus), draw(st.integers(1, 3)), draw(st.sampled_from([100, 250, 900])),
                      name=draw(st.sampled_from(["x", "y"])))
                 for _ in range(draw(st.integers(1, 3)))]
        s = sale(lines, points=draw(st.integers(0, 60)), sale_id=f"S-{n}")
        at = f"2025-06-0{n + 1}T10:00:00Z"
        facts.append((s, at))
        done: list[ReturnRecorded] = []
        for k in range(draw(st.integers(0, 3))):
            left = [ln.qty - q for ln, q in zip(s.lines, returned_qty(s, done), strict=True)]
            open_lines = [i for i, q in enumerate(left) if q > 0]
            if not open_lines:
                break
            i = draw(st.sampled_from(open_lines))
            done.append(plan_return(s, done, [Asked(s.lines[i].sku, draw(st.integers(1, left[i])),
                                                    line=i)],
                                    return_id=f"R-{n}-{k}", balance=RICH, settings=NEGATIVE))
            facts.append((done[-1], at))
    if draw(st.booleans()):  # a sale HQ never gets: its return's count has no sale to offset
        ghost = sale([line(draw(skus), 2, 400)], sale_id="S-ghost")
        facts.append((plan_return(ghost, [], [Asked(ghost.lines[0].sku, 1)], return_id="R-g",
                                  balance=RICH, settings=NEGATIVE), "2025-06-09T10:00:00Z"))
    return draw(st.permutations(facts))


def restated_as_they_arrive(facts: Sequence[tuple[Body, str]]) -> Tally:
    """What HQ's projection does: add each fact's tally; restate the customer from the sales
    and returns it holds so far when a return arrives, or a sale whose returns came first."""
    total, seen = Tally(), []
    for body, at in facts:
        seen.append((body, at))
        total = total.combine(tally_of(body, at))
        if isinstance(body, ReturnRecorded) or (isinstance(body, SaleRecorded) and any(
                isinstance(b, ReturnRecorded) and b.sale_id == body.sale_id for b, _ in seen)):
            sales_ = [(b, a) for b, a in seen if isinstance(b, SaleRecorded)]
            returns = [b for b, _ in seen if isinstance(b, ReturnRecorded)]
            total = restate(total, [h for b, a in sales_ if (h := holding(b, a, returns))])
    return total


@settings(max_examples=300, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_settle_is_the_same_in_any_order_and_restating_as_returns_arrive_changes_nothing(
        facts: list[tuple[Body, str]], rng: Random) -> None:
    shuffled = list(facts)
    rng.shuffle(shuffled)
    assert settle(facts) == settle(shuffled)
    assert restated_as_they_arrive(facts) == settle(facts)
    assert restated_as_they_arrive(shuffled) == settle(facts)


def test_a_return_that_reaches_hq_before_its_sale_keeps_its_count_until_the_sale_comes() -> None:
    r = ret(BREAD, [], ("BREAD", 1))
    early = settle([(r, "t")])
    assert early.items["BREAD"] == ItemTally("", -1, 0) and early.items_count == -1
    both = settle([(r, "t"), (BREAD, "2025-06-01T10:00:00Z")])
    assert both.items["BREAD"] == ItemTally("Bread", 2, 1250)
    assert both.best_purchase_total == BREAD.total_net - r.value
    assert [i["sku"] for i in both.statistics()["top_purchased_items"]] == ["BREAD"]
    assert early.statistics()["top_purchased_items"] == []


def test_an_honest_return_split_across_two_outlets_is_not_flagged_for_rounding_alone() -> None:
    """Review 11 finding 4: each outlet rounds its own part (value half up, points up), so
    two halves may refund a cent and take a point more than the sale: not fraud."""
    ln = SaleLine(sku="a", name="", qty=2, unit_price=5, gross=10, discount=5, net=5)
    sale = SaleRecorded(sale_id="s", customer_id="c", till_id="t", currency="EUR", lines=[ln],
                        payments=[Payment(mode="cash", amount=5)], total_gross=10,
                        total_discount=5, total_net=5, points_earned=3)
    rules = ReturnsSettings()
    home = plan_return(sale, [], [Asked("a", 1)], return_id="rA", balance=100, settings=rules,
                       home=True)
    abroad = plan_return(sale, [], [Asked("a", 1)], return_id="rB", balance=100,
                         settings=rules, home=False)
    assert audit(sale, [home, abroad]) == []
    again = plan_return(sale, [], [Asked("a", 1)], return_id="rC", balance=100, settings=rules,
                        home=False)
    assert audit(sale, [home, abroad, again])  # a unit returned twice is still flagged
