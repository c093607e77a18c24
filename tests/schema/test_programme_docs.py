"""The worked examples of docs/programme.md, each run against the code that keeps the rule
(schema/reversal.py, schema/lots.py, schema/receiptcode.py); each `test_docs_worked_example_N`
also checks the doc's `Result:` line."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from schema.errors import AlreadyReversed, SupervisorRequired
from schema.events import (
    BalanceAdjusted,
    CreditRepaid,
    GiftRedeemed,
    Payment,
    PointsExpired,
    SaleLine,
    SaleRecorded,
    tally_of,
)
from schema.ledger import Tally
from schema.lots import (
    Book,
    ExpiryRule,
    Lot,
    apply,
    due,
    earn,
    expiring,
    pending,
    spend,
    spendable,
    take_back,
)
from schema.receiptcode import parse_reference, worst_loss
from schema.reversal import (
    Asked,
    ReturnRecorded,
    ReturnsSettings,
    holding,
    plan_gift_return,
    plan_return,
    plan_void,
    restate,
    tally_delta,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "programme.md"
RICH = 10**9
NEGATIVE = ReturnsSettings()


def doc_result(number: int) -> dict[str, int]:
    """The numbers on the `Result` line of the doc's Example `number`."""
    text = DOCS.read_text(encoding="utf-8")
    section = re.split(r"^### Example ", text, flags=re.MULTILINE)[number]
    assert section.startswith(f"{number}:"), f"example {number} is out of order in the doc"
    found = re.search(r"^Result[^:]*:(.*)$", section, flags=re.MULTILINE)
    assert found, f"example {number} has no Result line"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", found.group(1))}


def ymd(day: date | None) -> int:
    assert day is not None
    return int(day.strftime("%Y%m%d"))


def line(sku: str, qty: int, unit_price: int, discount: int = 0) -> SaleLine:
    gross = qty * unit_price
    return SaleLine(sku=sku, name=sku.title(), qty=qty, unit_price=unit_price, gross=gross,
                    discount=discount, net=gross - discount)


def sale(sale_id: str, lines: list[SaleLine], payments: dict[str, int], points: int) -> SaleRecorded:
    return SaleRecorded(
        sale_id=sale_id, customer_id="C-1", currency="EUR", lines=lines,
        payments=[Payment(mode=m, amount=a) for m, a in payments.items()],  # type: ignore[arg-type]
        total_gross=sum(ln.gross for ln in lines),
        total_discount=sum(ln.discount for ln in lines),
        total_net=sum(ln.net for ln in lines), points_earned=points)


def back(s: SaleRecorded, earlier: list[ReturnRecorded], *asked: tuple[str, int],
         balance: int = RICH, policy: ReturnsSettings = NEGATIVE) -> ReturnRecorded:
    return plan_return(s, earlier, [Asked(sku, qty) for sku, qty in asked],
                       return_id=f"R{len(earlier)}", balance=balance, settings=policy)


BREAD = sale("S-bread", [line("BREAD", 3, 1250, discount=263)], {"cash": 3487}, 52)


def test_every_docs_worked_example_has_a_test() -> None:
    headings = re.findall(r"^### Example (\d+):", DOCS.read_text(encoding="utf-8"),
                          flags=re.MULTILINE)
    tests = sorted(int(n[len("test_docs_worked_example_"):]) for n in globals()
                   if n.startswith("test_docs_worked_example_") and n[-1].isdigit())
    assert [int(n) for n in headings] == tests == list(range(1, len(tests) + 1))


def test_the_docs_sample_reference_is_a_real_one() -> None:
    shown = re.findall(r"`([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z])`",
                       DOCS.read_text(encoding="utf-8"))
    assert shown and all(parse_reference(ref) == ref for ref in shown)


def test_docs_worked_example_1() -> None:
    done: list[ReturnRecorded] = []
    for _ in range(3):
        done.append(back(BREAD, done, ("BREAD", 1)))
    assert [r.lines[0].discount for r in done] == [88, 87, 88]
    assert sum(r.value for r in done) == 3487 and sum(r.points_reversed for r in done) == 52
    assert doc_result(1) == {
        "value_1": done[0].value, "value_2": done[1].value, "value_3": done[2].value,
        "points_1": done[0].points_reversed, "points_2": done[1].points_reversed,
        "points_3": done[2].points_reversed}


def test_docs_worked_example_2() -> None:
    s = sale("S-tv", [line("TV", 1, 6000), line("CABLE", 4, 1000)],
             {"cash": 2000, "card": 5000, "credit": 3000}, 0)
    first = back(s, [], ("TV", 1))
    second = back(s, [first], ("CABLE", 4))
    assert [(x.mode, x.amount) for x in first.refunds] == [("credit", 3000), ("card", 3000)]
    assert [(x.mode, x.amount) for x in second.refunds] == [("card", 2000), ("cash", 2000)]
    assert doc_result(2) == {"first_credit": 3000, "first_card": 3000, "second_card": 2000,
                             "second_cash": 2000}


def test_docs_worked_example_3() -> None:
    negative = back(BREAD, [], ("BREAD", 3), balance=10)
    assert (negative.points_reversed, 10 - negative.points_reversed) == (52, -42)
    assert [x.amount for x in negative.refunds] == [3487]
    reduce = ReturnsSettings(points_policy="reduce_refund", point_value_per_100=100)
    reduced = back(BREAD, [], ("BREAD", 3), balance=10, policy=reduce)
    with pytest.raises(SupervisorRequired) as caught:
        back(BREAD, [], ("BREAD", 3), balance=10, policy=ReturnsSettings(points_policy="supervisor"))
    assert caught.value.context["shortfall"] == 42
    (refund,) = reduced.refunds
    assert refund.mode == "cash" and 10 - reduced.points_reversed == 0
    assert doc_result(3) == {"refund": refund.amount, "withheld": refund.withheld,
                             "points_reversed": reduced.points_reversed,
                             "points_withheld": reduced.points_withheld}


def test_docs_worked_example_4() -> None:
    s = sale("S-ab", [line("A", 2, 500), line("B", 1, 300)], {"card": 1300}, 13)
    first = back(s, [], ("A", 1))
    void = plan_void(s, [first], return_id="V", balance=RICH, settings=NEGATIVE)
    with pytest.raises(AlreadyReversed):
        plan_void(s, [first, void], return_id="V2", balance=RICH, settings=NEGATIVE)
    assert void.kind == "void" and [(x.sku, x.qty) for x in void.lines] == [("A", 1), ("B", 1)]
    assert doc_result(4) == {"return_value": first.value, "return_points": first.points_reversed,
                             "void_value": void.value, "void_points": void.points_reversed}


def test_docs_worked_example_5() -> None:
    big = sale("S-big", [line("TV", 1, 90_000), line("CABLE", 1, 1000)], {"card": 91_000}, 0)
    small = sale("S-small", [line("CABLE", 2, 800)], {"cash": 1600}, 0)
    total = tally_of(big, "2025-06-01T10:00:00Z").combine(tally_of(small, "2025-06-02T10:00:00Z"))
    r = back(big, [], ("TV", 1), ("CABLE", 1))
    total = total.combine(tally_delta(r).tally)
    held = [h for h in (holding(big, "2025-06-01T10:00:00Z", [r]),
                        holding(small, "2025-06-02T10:00:00Z", [])) if h]
    after = restate(total, held)
    assert after.best_purchase_id == "S-small" and "TV" not in after.items
    assert [sku for sku, _ in after.top_expensive()] == ["CABLE"]
    assert doc_result(5) == {"purchases_total": after.purchases_total,
                             "purchases_count": after.purchases_count,
                             "items_count": after.items_count,
                             "best_purchase_total": after.best_purchase_total,
                             "cable_max_unit_price": after.items["CABLE"].max_unit_price}


def test_docs_worked_example_6() -> None:
    mugs = GiftRedeemed(redemption_id="G-1", customer_id="C-1", gift_sku="GIFT-MUG",
                        gift_name="Club mug", qty=3, points_spent=1000)
    first = plan_gift_return(mugs, [], 1, gift_return_id="GR-1")
    second = plan_gift_return(mugs, [first], 2, gift_return_id="GR-2")
    assert doc_result(6) == {"first": first.points_returned, "second": second.points_returned}


def test_docs_worked_example_7() -> None:
    rule = ExpiryRule(kind="end_of_month", months=12)
    lots = earn((), "S-1", 100, date(2025, 1, 15), rule)
    lots = earn(lots, "S-2", 100, date(2025, 2, 20), rule)
    lots = earn(lots, "S-3", 100, date(2025, 3, 10), rule)
    assert [ymd(lot.expires_on) for lot in lots] == [20260131, 20260228, 20260331]
    lots, _ = spend(lots, 180, date(2025, 4, 1), rule)
    left = {lot.lot_id: lot.points for lot in lots}
    lots, taken = take_back(lots, "S-2", 100, date(2025, 4, 2), rule)
    took = {t.lot_id: t.points for t in taken}
    assert doc_result(7) == {"s1_left": left.get("S-1", 0), "s2_left": left.get("S-2", 0) - 20,
                             "s3_left": sum(lot.points for lot in lots if lot.lot_id == "S-3"),
                             "s2_taken": took["S-2"], "s3_taken": took["S-3"],
                             "balance": sum(lot.points for lot in lots)}
    assert left == {"S-2": 20, "S-3": 100}


def test_docs_worked_example_8() -> None:
    rule = ExpiryRule(kind="end_of_month", months=12)
    lots = earn((), "S-1", 100, date(2025, 1, 15), rule)
    assert expiring(lots, date(2025, 12, 1), 60, rule) == []
    shown = expiring(lots, date(2025, 12, 2), 60, rule)
    assert shown == expiring(lots, date(2025, 12, 5), 60, rule)
    assert due(lots, date(2026, 2, 7), rule) == []  # the last day + the 7 days' grace
    (expired,) = due(lots, date(2026, 2, 8), rule)
    turned_on = ExpiryRule(kind="end_of_month", months=12, since=date(2025, 7, 1))
    (old,) = earn((), "S-old", 100, date(2024, 3, 5), ExpiryRule())
    assert doc_result(8) == {"last_day": ymd(lots[0].expires_on), "expiring": shown[0][1],
                             "expired": expired.points,
                             "turned_on_last_day": ymd(turned_on.expiry_of(old))}
    assert "100 points expire on 2026-01-31" in " ".join(DOCS.read_text(encoding="utf-8").split())
    assert shown == [(date(2026, 1, 31), 100)]


def test_docs_worked_example_9() -> None:
    rule = ExpiryRule(kind="inactivity", months=6)
    lots = earn(earn((), "S-1", 10, date(2025, 1, 5), rule), "S-2", 10, date(2025, 3, 10), rule)
    days = {rule.expiry_of(lot, date(2025, 3, 10)) for lot in lots}
    later = {rule.expiry_of(lot, date(2025, 9, 1)) for lot in lots}
    assert len(days) == len(later) == 1
    assert doc_result(9) == {"last_day": ymd(days.pop()), "after_purchase": ymd(later.pop())}


def test_docs_worked_example_10() -> None:
    settings = ReturnsSettings(pending_points=True)
    s = sale("S-p", [line("X", 1, 5000)], {"cash": 5000}, 50)
    rule = ExpiryRule()
    book = apply(Book(), s, date(2025, 6, 1), rule, pending_days=settings.return_window_days)
    (lot,) = book.lots
    on = date(2025, 6, 15)
    assert book.balance == 50
    r = plan_void(s, [], return_id="V", balance=book.balance, settings=settings)
    after = apply(book, r, on, rule)
    assert lot == Lot("S-p", date(2025, 6, 1), 50, spendable_on=date(2025, 7, 1))
    assert doc_result(10) == {"spendable_on": ymd(lot.spendable_on),
                              "pending": pending(book.lots, on),
                              "spendable": spendable(book.lots, on),
                              "balance_after_return": after.balance}


def test_docs_worked_example_11() -> None:
    ten_days = worst_loss(outlets=4, floor_returns=20_000, days=10, window_days=30, cards=3,
                          outlet_floor=50_000)
    assert worst_loss(outlets=4, floor_returns=20_000, days=10).per_card == 80_000
    assert doc_result(11) == {
        "per_card": ten_days.per_card, "per_chain": ten_days.per_chain,
        "per_card_45_days": worst_loss(outlets=4, floor_returns=20_000, days=45).per_card}


def test_docs_worked_example_12() -> None:
    """A correction: fewer points taken in spending order, more a lot of their own."""
    rule = ExpiryRule()
    book = apply(Book(), sale("S-1", [line("X", 1, 6000)], {"credit": 6000}, 60),
                 date(2025, 1, 10), rule)
    book = apply(book, sale("S-2", [line("Y", 1, 4000)], {"cash": 4000}, 40),
                 date(2025, 2, 20), rule)
    facts: list[Any] = [sale("S-1", [line("X", 1, 6000)], {"credit": 6000}, 60),
                        sale("S-2", [line("Y", 1, 4000)], {"cash": 4000}, 40),
                        CreditRepaid(payment_id="P-1", customer_id="C-1", amount=4000)]
    wrong = BalanceAdjusted(adjustment_id="A-1", customer_id="C-1", points=-70, credit=1250,
                            reason="receipt 0042 scanned twice")
    kind = BalanceAdjusted(adjustment_id="A-2", customer_id="C-1", points=25,
                           reason="goodwill")
    book = apply(apply(book, wrong, date(2025, 3, 1), rule), kind, date(2025, 3, 1), rule)
    tally = Tally()
    for fact in [*facts, wrong, kind]:
        tally = tally.combine(tally_of(fact))
    held = {lot.lot_id: lot.points for lot in book.lots}
    assert tally.credit_outstanding == 6000 - 4000 - 1250
    assert doc_result(12) == {"s1_left": held.get("S-1", 0), "s2_left": held["S-2"],
                              "goodwill_lot": held["A-2"], "balance": tally.points_balance,
                              "credit_owed": tally.credit_outstanding,
                              "points_earned": tally.points_earned}
    assert book.balance == tally.points_balance


def test_docs_worked_example_13() -> None:
    """Expiry across a month end, run by head office day by day."""
    rule = ExpiryRule(kind="end_of_month", months=1)
    book = apply(Book(), sale("S-jan", [line("X", 1, 10_000)], {"cash": 10_000}, 100),
                 date(2026, 1, 15), rule)
    book = apply(book, sale("S-feb", [line("Y", 1, 5000)], {"cash": 5000}, 50),
                 date(2026, 2, 3), rule)
    book = apply(book, GiftRedeemed(redemption_id="G-1", customer_id="C-1", gift_sku="MUG",
                                    gift_name="Mug", qty=1, points_spent=30),
                 date(2026, 2, 3), rule)
    expired: dict[str, int] = {}
    for day, name in ((date(2026, 3, 7), "on_0307"), (date(2026, 3, 8), "on_0308"),
                      (date(2026, 3, 8), "again_0308"), (date(2026, 4, 8), "on_0408")):
        found = due(book.lots, day, rule)
        expired[name] = sum(x.points for x in found)
        if found:
            book = apply(book, PointsExpired(expiry_id=name, customer_id="C-1",
                                             on=day.isoformat(), lots=found), day, rule)
        if name == "on_0308":
            assert [(x.lot_id, x.points, x.expired_on) for x in found] == [
                ("S-jan", 70, "2026-02-28")]
    assert doc_result(13) == {**expired, "balance": book.balance,
                              "expired": sum(expired.values())}


def test_docs_worked_example_14() -> None:
    """Pending points at the desk: only what is spendable may be spent."""
    settings = ReturnsSettings(pending_points=True)
    rule = ExpiryRule()
    book = apply(Book(), sale("S-old", [line("X", 1, 3000)], {"cash": 3000}, 30),
                 date(2025, 5, 1), rule, pending_days=settings.return_window_days)
    book = apply(book, sale("S-new", [line("Y", 1, 5000)], {"cash": 5000}, 50),
                 date(2025, 6, 1), rule, pending_days=settings.return_window_days)
    mid, later = date(2025, 6, 15), date(2025, 7, 1)
    assert spendable(book.lots, mid) < 60 <= spendable(book.lots, later)
    assert doc_result(14) == {"balance": book.balance, "spendable_0615": spendable(book.lots, mid),
                              "pending_0615": pending(book.lots, mid),
                              "spendable_0701": spendable(book.lots, later)}
