"""Property tests (hypothesis) for agent/pricing.py: what holds for every basket and rule set."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.pricing import (
    BP_SCALE,
    MAX_LINE_DISCOUNT_BP,
    RECEIPT_WIDTH,
    Action,
    Category,
    Customer,
    Line,
    PromotionCategory,
    Quote,
    Rules,
    price_basket,
)

BASE = datetime(2025, 6, 1, tzinfo=UTC)
CODES = ["A", "B", "C", "D"]
PROMO_CODES = ["P1", "P2", "P3", "MISSING"]
SKUS = ["S1", "S2", "S3", "S4"]
DIVISIONS = ["wine", "bar", "kitchen"]
bps = st.integers(0, BP_SCALE)
hours = st.integers(-48, 48)


@st.composite
def categories(draw: st.DrawFn) -> tuple[Category, ...]:
    return tuple(
        Category(code, f"Cat {code}", draw(bps), draw(st.integers(0, 10_000))) for code in CODES
    )


@st.composite
def promotions(draw: st.DrawFn) -> tuple[PromotionCategory, ...]:
    codes = draw(st.lists(st.sampled_from(PROMO_CODES[:3]), unique=True))
    return tuple(
        PromotionCategory(code, f"Promo {code}", draw(bps), draw(st.integers(0, 100_000)))
        for code in codes
    )


@st.composite
def actions(draw: st.DrawFn) -> tuple[Action, ...]:
    found = []
    for number in range(draw(st.integers(0, 4))):
        start = BASE + timedelta(hours=draw(hours))
        found.append(Action(
            action_id=f"ACT{number}",
            name=f"Action {number}",
            valid_from=start,
            valid_to=start + timedelta(hours=draw(st.integers(1, 96))),
            discount_bp=draw(bps),
            skus=draw(st.frozensets(st.sampled_from(SKUS))),
            divisions=draw(st.frozensets(st.sampled_from(DIVISIONS))),
            categories=draw(st.frozensets(st.sampled_from(CODES))),
            customer_codes=draw(st.frozensets(st.sampled_from(["C-1", "STAFF", "VIP"]))),
            stackable=draw(st.booleans()),
        ))
    return tuple(found)


@st.composite
def rule_sets(draw: st.DrawFn) -> Rules:
    division_promos = draw(st.dictionaries(st.sampled_from(DIVISIONS), st.sampled_from(PROMO_CODES)))
    return Rules(
        categories=draw(categories()),
        promotions=draw(promotions()),
        actions=draw(actions()),
        division_promos=division_promos,
    )


maybe_promo = st.none() | st.sampled_from(PROMO_CODES)

customers = st.builds(
    Customer,
    customer_code=st.sampled_from(["C-1", "C-2"]),
    category=st.sampled_from(CODES),
    promotion=maybe_promo,
    action_codes=st.frozensets(st.sampled_from(["STAFF", "VIP", "OTHER"])),
    banned=st.booleans(),
)

lines = st.builds(
    Line,
    sku=st.sampled_from(SKUS),
    name=st.text(max_size=60),
    qty=st.integers(1, 1_000_000),
    unit_price=st.integers(0, 10**12) | st.integers(0, 10_000),
    division=st.none() | st.sampled_from(DIVISIONS),
    promo=maybe_promo,
)

baskets = st.lists(lines, min_size=1, max_size=12)
times = st.builds(lambda h, m: BASE + timedelta(hours=h, minutes=m), hours, st.integers(0, 59))


def price(customer: Customer, basket: list[Line], rules: Rules, at: datetime,
          order: str | None, table: str | None) -> Quote:
    return price_basket(customer, basket, rules, at, order_promo=order, table_promo=table)


common = given(customers, baskets, rule_sets(), times, maybe_promo, maybe_promo)


@common
def test_a_discount_never_exceeds_its_line(
    customer: Customer, basket: list[Line], rules: Rules, at: datetime, order: Any, table: Any
) -> None:
    for pl in price(customer, basket, rules, at, order, table).lines:
        assert pl.gross == pl.qty * pl.unit_price
        assert 0 <= pl.discount <= pl.gross
        assert pl.net == pl.gross - pl.discount
        assert 0 <= pl.discount_bp_applied <= MAX_LINE_DISCOUNT_BP


@common
def test_each_discount_follows_the_one_rounding_rule_and_names_its_rules(
    customer: Customer, basket: list[Line], rules: Rules, at: datetime, order: Any, table: Any
) -> None:
    for pl in price(customer, basket, rules, at, order, table).lines:
        assert pl.discount == (pl.gross * pl.discount_bp_applied + 5000) // 10000
        assert bool(pl.actions) == (pl.discount_bp_applied > 0)


@common
def test_totals_are_the_sums_of_the_lines(
    customer: Customer, basket: list[Line], rules: Rules, at: datetime, order: Any, table: Any
) -> None:
    quote = price(customer, basket, rules, at, order, table)
    assert quote.total_gross == sum(pl.gross for pl in quote.lines)
    assert quote.total_discount == sum(pl.discount for pl in quote.lines)
    assert quote.total_net == sum(pl.net for pl in quote.lines)
    assert quote.total_gross == quote.total_discount + quote.total_net
    assert quote.points_to_earn >= 0


@given(customers, baskets, rule_sets(), times, maybe_promo, maybe_promo, st.randoms())
def test_line_order_does_not_change_the_result(
    customer: Customer, basket: list[Line], rules: Rules, at: datetime, order: Any, table: Any,
    random: Any,
) -> None:
    permutation = list(range(len(basket)))
    random.shuffle(permutation)
    first = price(customer, basket, rules, at, order, table)
    shuffled = price(customer, [basket[i] for i in permutation], rules, at, order, table)
    assert list(shuffled.lines) == [first.lines[i] for i in permutation]
    assert (shuffled.total_gross, shuffled.total_discount, shuffled.total_net) == (
        first.total_gross, first.total_discount, first.total_net
    )
    assert shuffled.points_to_earn == first.points_to_earn


@given(customers, baskets, rule_sets(), times, maybe_promo, maybe_promo, st.randoms())
def test_rule_order_does_not_change_the_result(
    customer: Customer, basket: list[Line], rules: Rules, at: datetime, order: Any, table: Any,
    random: Any,
) -> None:
    reordered = Rules(
        categories=random.sample(list(rules.categories), len(rules.categories)),
        promotions=random.sample(list(rules.promotions), len(rules.promotions)),
        actions=random.sample(list(rules.actions), len(rules.actions)),
        division_promos=rules.division_promos,
    )
    assert price(customer, basket, rules, at, order, table) == price(
        customer, basket, reordered, at, order, table
    )


@common
def test_a_banned_customer_gets_nothing(
    customer: Customer, basket: list[Line], rules: Rules, at: datetime, order: Any, table: Any
) -> None:
    banned = dataclasses.replace(customer, banned=True)
    quote = price(banned, basket, rules, at, order, table)
    assert quote.total_discount == 0 and quote.points_to_earn == 0
    assert quote.total_net == quote.total_gross
    assert all(pl.discount == 0 and pl.actions == () for pl in quote.lines)


@common
def test_no_float_appears_anywhere_in_a_quote(
    customer: Customer, basket: list[Line], rules: Rules, at: datetime, order: Any, table: Any
) -> None:
    quote = price(customer, basket, rules, at, order, table)
    for value in _leaves(quote):
        assert not isinstance(value, float)
    for pl in quote.lines:
        for name in ("qty", "unit_price", "gross", "discount", "net", "discount_bp_applied"):
            assert type(getattr(pl, name)) is int
    for name in ("total_gross", "total_discount", "total_net", "points_to_earn"):
        assert type(getattr(quote, name)) is int


@common
def test_pricing_is_deterministic(
    customer: Customer, basket: list[Line], rules: Rules, at: datetime, order: Any, table: Any
) -> None:
    assert price(customer, basket, rules, at, order, table) == price(
        customer, list(basket), rules, at, order, table
    )


@common
def test_receipt_lines_fit_the_printer(
    customer: Customer, basket: list[Line], rules: Rules, at: datetime, order: Any, table: Any
) -> None:
    quote = price(customer, basket, rules, at, order, table)
    assert all(len(row) <= RECEIPT_WIDTH and row.isprintable() for row in quote.receipt_lines)
    assert quote.receipt_lines[-1].split()[-1] == str(quote.points_to_earn)


@settings(max_examples=50)
@common
def test_a_line_is_priced_the_same_alone_or_in_a_basket(
    customer: Customer, basket: list[Line], rules: Rules, at: datetime, order: Any, table: Any
) -> None:
    quote = price(customer, basket, rules, at, order, table)
    for item, pl in zip(basket, quote.lines):
        assert price(customer, [item], rules, at, order, table).lines[0] == pl


def _leaves(value: object) -> list[object]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [leaf for f in dataclasses.fields(value) for leaf in _leaves(getattr(value, f.name))]
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]
