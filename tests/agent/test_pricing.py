"""Unit tests for agent/pricing.py and agent/defaults.py, and the worked examples of
docs/pricing.md (each `test_docs_worked_example_N` also checks the doc's `Result:` line)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.defaults import default_rules
from agent.pricing import (
    MAX_LINE_DISCOUNT_BP,
    RECEIPT_WIDTH,
    Action,
    Category,
    Customer,
    Line,
    PricingError,
    PromotionCategory,
    Quote,
    Rules,
    apply_bp,
    format_amount,
    format_bp,
    price_basket,
)

AT = datetime(2025, 6, 1, 12, tzinfo=UTC)
FAR_PAST = datetime(2000, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "pricing.md"

CATEGORIES = (
    Category("A", "Gold", discount_bp=1000, points_per_100=200),
    Category("B", "Silver", discount_bp=500, points_per_100=150),
    Category("D", "Basic", discount_bp=0, points_per_100=100),
)
PROMOTIONS = (
    PromotionCategory("P8", "Eight off", discount_bp=800),
    PromotionCategory("P12", "Twelve off", discount_bp=1200),
    PromotionCategory("X2", "Double points", points_bonus_bp=10_000),
    PromotionCategory("X3", "Triple points", points_bonus_bp=20_000),
)


def action(name: str = "Deal", bp: int = 1500, /, **kw: object) -> Action:
    fields: dict[str, object] = {"valid_from": FAR_PAST, "valid_to": FAR_FUTURE}
    fields.update(kw)
    return Action(action_id=name.upper(), name=name, discount_bp=bp, **fields)  # type: ignore[arg-type]


def rules(*actions: Action, **kw: object) -> Rules:
    return Rules(categories=CATEGORIES, promotions=PROMOTIONS, actions=actions, **kw)  # type: ignore[arg-type]


def customer(category: str = "B", **kw: object) -> Customer:
    return Customer(customer_code=kw.pop("code", "C-1"), category=category, **kw)  # type: ignore[arg-type]


def line(sku: str = "SKU-1", qty: int = 1, price: int = 10_000, **kw: object) -> Line:
    return Line(sku=sku, name=kw.pop("name", sku.title()), qty=qty, unit_price=price, **kw)  # type: ignore[arg-type]


def one(quote: Quote) -> tuple[int, tuple[str, ...]]:
    """The discount and the action names of a one-line quote."""
    assert len(quote.lines) == 1
    return quote.lines[0].discount, quote.lines[0].actions


# --- category discount and rounding ---------------------------------------------------


def test_category_discount_applies_to_every_line() -> None:
    quote = price_basket(customer("A"), [line("X", price=1000), line("Y", price=3000)], rules(), AT)
    assert [pl.discount for pl in quote.lines] == [100, 300]
    assert all(pl.actions == ("Category A 10%",) for pl in quote.lines)


def test_zero_category_discount_gives_no_discount_and_no_name() -> None:
    assert one(price_basket(customer("D"), [line()], rules(), AT)) == (0, ())


def test_line_amounts_are_gross_discount_and_net() -> None:
    pl = price_basket(customer("B"), [line(qty=3, price=1250)], rules(), AT).lines[0]
    assert (pl.gross, pl.discount, pl.net, pl.discount_bp_applied) == (3750, 188, 3562, 500)


@pytest.mark.parametrize(
    ("gross", "bp", "expected"),
    [(5, 1000, 1), (15, 1000, 2), (25, 1000, 3), (14, 1000, 1), (16, 1000, 2), (1, 5000, 1),
     (3, 5000, 2), (0, 5000, 0), (10_000, 1, 1), (4_999, 1, 0), (5_000, 1, 1)],
)
def test_apply_bp_rounds_half_up(gross: int, bp: int, expected: int) -> None:
    assert apply_bp(gross, bp) == expected


def test_discount_of_exactly_half_a_cent_rounds_up() -> None:
    # 0.05 at 10 % is 0.5 cent: the customer gets the cent.
    assert one(price_basket(customer("A"), [line(price=5)], rules(), AT))[0] == 1


def test_discount_just_under_half_a_cent_rounds_down() -> None:
    assert one(price_basket(customer("A"), [line(price=4)], rules(), AT))[0] == 0


def test_rounding_is_per_line_not_per_unit() -> None:
    # 3 x 0.05 at 10 % = 0.015 -> 2 cents on the line (per unit it would be 3 x 1 = 3).
    assert one(price_basket(customer("A"), [line(qty=3, price=5)], rules(), AT))[0] == 2


# --- action windows and restrictions ----------------------------------------------------


WINDOW = {"valid_from": datetime(2025, 6, 1, tzinfo=UTC), "valid_to": datetime(2025, 6, 8, tzinfo=UTC)}


@pytest.mark.parametrize(
    "at", [datetime(2025, 5, 31, 23, 59, 59, 999_999, tzinfo=UTC), datetime(2025, 6, 8, tzinfo=UTC)]
)
def test_action_outside_its_window_gives_nothing(at: datetime) -> None:
    quote = price_basket(customer("D"), [line()], rules(action("Summer", **WINDOW)), at)
    assert one(quote) == (0, ())


@pytest.mark.parametrize(
    "at", [datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 7, 23, 59, 59, 999_999, tzinfo=UTC)]
)
def test_action_inside_its_window_applies(at: datetime) -> None:
    quote = price_basket(customer("D"), [line()], rules(action("Summer", **WINDOW)), at)
    assert one(quote) == (1500, ("Summer 15%",))


def test_action_window_compares_instants_not_wall_clocks() -> None:
    # 01:30 at UTC+02:00 is 23:30 UTC the day before the window opens.
    plus_two = timezone(timedelta(hours=2))
    at = datetime(2025, 6, 1, 1, 30, tzinfo=plus_two)
    assert one(price_basket(customer("D"), [line()], rules(action("Summer", **WINDOW)), at))[0] == 0


def test_action_restricted_to_categories_skips_other_categories() -> None:
    deal = action(categories={"A"})
    assert one(price_basket(customer("B"), [line()], rules(deal), AT)) == (500, ("Category B 5%",))
    assert one(price_basket(customer("A"), [line()], rules(deal), AT)) == (1500, ("Deal 15%",))


def test_action_restricted_to_customer_codes_admits_that_customer_code() -> None:
    deal = action(customer_codes={"C-7"})
    assert one(price_basket(customer("D", code="C-7"), [line()], rules(deal), AT))[0] == 1500


def test_action_restricted_to_customer_codes_admits_an_approved_action_code() -> None:
    deal = action(customer_codes={"STAFF"})
    quote = price_basket(customer("D", action_codes={"VIP", "STAFF"}), [line()], rules(deal), AT)
    assert one(quote)[0] == 1500


def test_action_restricted_to_customer_codes_refuses_everybody_else() -> None:
    deal = action(customer_codes={"STAFF", "C-7"})
    quote = price_basket(customer("D", code="C-8", action_codes={"VIP"}), [line()], rules(deal), AT)
    assert one(quote) == (0, ())


def test_action_needs_both_category_and_customer_code_when_both_are_set() -> None:
    deal = action(categories={"A"}, customer_codes={"STAFF"})
    staff_b = customer("B", action_codes={"STAFF"})
    assert one(price_basket(staff_b, [line()], rules(deal), AT))[1] == ("Category B 5%",)


def test_action_on_skus_covers_only_those_skus() -> None:
    deal = action(skus={"WINE-1"})
    quote = price_basket(customer("D"), [line("WINE-1"), line("BREAD-1")], rules(deal), AT)
    assert [pl.discount for pl in quote.lines] == [1500, 0]


def test_action_on_divisions_covers_only_those_divisions() -> None:
    deal = action(divisions={"wine"})
    lines = [line("A1", division="wine"), line("A2", division="bakery"), line("A3")]
    quote = price_basket(customer("D"), lines, rules(deal), AT)
    assert [pl.discount for pl in quote.lines] == [1500, 0, 0]


def test_action_on_skus_and_divisions_covers_either() -> None:
    deal = action(skus={"S1"}, divisions={"wine"})
    lines = [line("S1"), line("S2", division="wine"), line("S3", division="bakery")]
    assert [pl.discount for pl in price_basket(customer("D"), lines, rules(deal), AT).lines] == [
        1500, 1500, 0
    ]


def test_action_without_skus_or_divisions_covers_every_line() -> None:
    quote = price_basket(customer("D"), [line("S1"), line("S2", division="x")], rules(action()), AT)
    assert [pl.discount for pl in quote.lines] == [1500, 1500]


# --- promotion categories from every source ---------------------------------------------


@pytest.mark.parametrize("source", ["customer", "order", "table", "item", "division"])
def test_promotion_category_applies_from_each_source(source: str) -> None:
    who = customer("B", promotion="P12" if source == "customer" else None)
    item = line(division="bar", promo="P12" if source == "item" else None)
    basket_rules = rules(division_promos={"bar": "P12"} if source == "division" else {})
    quote = price_basket(
        who, [item], basket_rules, AT,
        order_promo="P12" if source == "order" else None,
        table_promo="P12" if source == "table" else None,
    )
    assert one(quote) == (1200, ("Twelve off 12%",))


def test_item_promotion_applies_only_to_its_own_line() -> None:
    quote = price_basket(customer("D"), [line("S1", promo="P8"), line("S2")], rules(), AT)
    assert [pl.discount for pl in quote.lines] == [800, 0]


def test_division_promotion_applies_only_to_lines_of_that_division() -> None:
    basket_rules = rules(division_promos={"bar": "P8"})
    lines = [line("S1", division="bar"), line("S2", division="kitchen")]
    assert [pl.discount for pl in price_basket(customer("D"), lines, basket_rules, AT).lines] == [
        800, 0
    ]


def test_unknown_promotion_code_gives_nothing_and_does_not_block() -> None:
    quote = price_basket(
        customer("D", promotion="NOPE"), [line(promo="NOPE2", division="z")],
        rules(division_promos={"z": "NOPE3"}), AT, order_promo="NOPE4", table_promo="NOPE5",
    )
    assert one(quote) == (0, ())


# --- combination: best of, stacking, cap ------------------------------------------------


def test_best_single_discount_wins_and_only_it_is_named() -> None:
    quote = price_basket(
        customer("A", promotion="P8"), [line(division="wine")], rules(action("Wine", 1100)),
        AT, order_promo="P12",
    )
    assert one(quote) == (1200, ("Twelve off 12%",))


def test_category_wins_when_it_is_the_best() -> None:
    quote = price_basket(customer("A"), [line()], rules(action("Small", 300)), AT, order_promo="P8")
    assert one(quote) == (1000, ("Category A 10%",))


def test_non_stackable_actions_compete_with_each_other() -> None:
    quote = price_basket(customer("D"), [line()], rules(action("Low", 700), action("High", 900)), AT)
    assert one(quote) == (900, ("High 9%",))


def test_on_equal_rates_an_action_beats_a_promotion_which_beats_the_category() -> None:
    promo_tie = price_basket(customer("B"), [line()], rules(), AT, order_promo="P8")
    assert one(promo_tie)[1] == ("Eight off 8%",)
    ten = Rules(categories=CATEGORIES, promotions=(PromotionCategory("T", "Ten", 1000),),
                actions=(action("Deal", 1000),))
    assert one(price_basket(customer("A"), [line()], ten, AT, order_promo="T"))[1] == ("Deal 10%",)
    no_action = Rules(categories=CATEGORIES, promotions=(PromotionCategory("T", "Ten", 1000),))
    assert one(price_basket(customer("A"), [line()], no_action, AT, order_promo="T"))[1] == ("Ten 10%",)


def test_stackable_action_adds_to_the_best_discount() -> None:
    quote = price_basket(customer("A"), [line()], rules(action("Extra", 300, stackable=True)), AT)
    assert one(quote) == (1300, ("Category A 10%", "Extra 3%"))
    assert quote.lines[0].discount_bp_applied == 1300


def test_stackable_action_alone_still_applies() -> None:
    quote = price_basket(customer("D"), [line()], rules(action("Extra", 300, stackable=True)), AT)
    assert one(quote) == (300, ("Extra 3%",))


def test_several_stackable_actions_all_add_largest_first() -> None:
    deals = rules(action("Small", 200, stackable=True), action("Big", 900, stackable=True))
    assert one(price_basket(customer("B"), [line()], deals, AT)) == (
        1600, ("Category B 5%", "Big 9%", "Small 2%")
    )


def test_stacked_discount_is_capped_and_the_cap_is_named() -> None:
    deals = rules(action("Clearance", 4500, stackable=True))
    pl = price_basket(customer("A"), [line(price=2000)], deals, AT).lines[0]
    assert pl.discount_bp_applied == MAX_LINE_DISCOUNT_BP == 5000
    assert (pl.discount, pl.net) == (1000, 1000)
    assert pl.actions == ("Category A 10%", "Clearance 45%", "Capped at 50%")


def test_a_single_discount_above_the_cap_is_capped_too() -> None:
    pl = price_basket(customer("D"), [line(price=999)], rules(action("Huge", 9000)), AT).lines[0]
    assert (pl.discount_bp_applied, pl.discount, pl.actions[-1]) == (5000, 500, "Capped at 50%")


def test_discount_exactly_at_the_cap_is_not_marked_capped() -> None:
    deals = rules(action("Clearance", 4000, stackable=True))
    assert one(price_basket(customer("A"), [line()], deals, AT))[1] == (
        "Category A 10%", "Clearance 40%"
    )


# --- points -----------------------------------------------------------------------------


def test_points_are_earned_on_net_spend_at_the_category_rate() -> None:
    # A: 10 % off 100.00 -> net 90.00 at 2 points per 1.00 = 180.
    assert price_basket(customer("A"), [line(price=10_000)], rules(), AT).points_to_earn == 180


def test_points_round_down() -> None:
    # B: 1.5 points per 1.00 on net 1.99 - 5 % = 1.89 -> 2.835 -> 2.
    assert price_basket(customer("B"), [line(price=199)], rules(), AT).points_to_earn == 2


def test_points_bonus_multiplies_the_points_of_its_line() -> None:
    quote = price_basket(customer("D"), [line("S1", promo="X2"), line("S2")], rules(), AT)
    assert quote.points_to_earn == 200 + 100


def test_points_bonus_takes_the_largest_not_the_sum() -> None:
    quote = price_basket(customer("D", promotion="X2"), [line(promo="X3")], rules(), AT)
    assert quote.points_to_earn == 300


def test_points_are_floored_once_per_basket() -> None:
    lines = [line("S1", price=75, promo="X2"), line("S2", price=75)]
    assert price_basket(customer("D"), lines, rules(), AT).points_to_earn == 2


def test_points_bonus_from_the_order_applies_to_every_line() -> None:
    lines = [line("S1", price=100), line("S2", price=100)]
    assert price_basket(customer("D"), lines, rules(), AT, order_promo="X2").points_to_earn == 4


# --- banned customers -------------------------------------------------------------------


def test_banned_customer_pays_full_price_and_earns_no_points() -> None:
    who = customer("A", promotion="P12", banned=True, action_codes={"STAFF"})
    quote = price_basket(who, [line(promo="X3", division="wine"), line("S2", qty=2)],
                         rules(action("Deal", stackable=True)), AT, order_promo="P8", table_promo="X2")
    assert [(pl.discount, pl.actions, pl.discount_bp_applied) for pl in quote.lines] == [
        (0, (), 0), (0, (), 0)
    ]
    assert (quote.total_discount, quote.total_net, quote.points_to_earn) == (0, 30_000, 0)


def test_banned_customer_with_an_unknown_category_is_still_priced_at_full() -> None:
    assert price_basket(customer("Z", banned=True), [line()], rules(), AT).total_net == 10_000


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize("qty", [0, -1, 1.5, 2.0, True, "3", None, 1_000_001])
def test_bad_quantity_is_refused_naming_the_line(qty: object) -> None:
    with pytest.raises(PricingError, match=r"line 2 \(sku 'BAD'\): qty") as caught:
        price_basket(customer(), [line("OK"), line("BAD", qty=qty)], rules(), AT)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_request"
    assert isinstance(caught.value, ValueError)
    assert caught.value.context == {"line": 2, "sku": "BAD"}


@pytest.mark.parametrize("price", [-1, 9.99, False, "100", 10**12 + 1])
def test_bad_unit_price_is_refused_naming_the_line(price: object) -> None:
    with pytest.raises(PricingError, match=r"line 1 \(sku 'BAD'\): unit_price"):
        price_basket(customer(), [line("BAD", price=price)], rules(), AT)  # type: ignore[arg-type]


def test_free_item_is_accepted() -> None:
    assert price_basket(customer("A"), [line(price=0)], rules(), AT).total_net == 0


@pytest.mark.parametrize("bad", [{"sku": ""}, {"name": None}, {"division": 7}, {"promo": 7}])
def test_malformed_line_field_is_refused(bad: dict[str, object]) -> None:
    fields: dict[str, object] = {"sku": "S", "name": "N", "qty": 1, "unit_price": 1}
    fields.update(bad)
    with pytest.raises(PricingError, match="line 1"):
        price_basket(customer(), [Line(**fields)], rules(), AT)  # type: ignore[arg-type]


def test_empty_basket_is_refused() -> None:
    with pytest.raises(PricingError, match="1 to 1000 lines"):
        price_basket(customer(), [], rules(), AT)


def test_naive_time_is_refused() -> None:
    with pytest.raises(PricingError, match="timezone-aware"):
        price_basket(customer(), [line()], rules(), datetime(2025, 6, 1, 12))


def test_unknown_customer_category_is_refused() -> None:
    with pytest.raises(PricingError, match="category 'Z' is not defined"):
        price_basket(customer("Z"), [line()], rules(), AT)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Category("A", "A", discount_bp=10_001, points_per_100=1),
        lambda: Category("A", "A", discount_bp=-1, points_per_100=1),
        lambda: Category("A", "A", discount_bp=100, points_per_100=1.5),  # type: ignore[arg-type]
        lambda: Category("", "A", discount_bp=100, points_per_100=1),
        lambda: PromotionCategory("P", "P", discount_bp=0.5),  # type: ignore[arg-type]
        lambda: PromotionCategory("P", "P", points_bonus_bp=-1),
        lambda: action("Deal", 20_000),
        lambda: action(valid_from=FAR_FUTURE, valid_to=FAR_PAST),
        lambda: action(valid_from=AT, valid_to=AT),
        lambda: action(valid_from=datetime(2025, 1, 1)),
        lambda: action(skus="WINE-1"),
        lambda: action(stackable="yes"),
        lambda: Customer("C", "A", action_codes="STAFF"),  # type: ignore[arg-type]
        lambda: Customer("C", "A", banned=1),  # type: ignore[arg-type]
        lambda: Rules(categories=CATEGORIES + (Category("A", "Again", 0, 1),)),
        lambda: Rules(categories=CATEGORIES, actions=(action(), action())),
        lambda: Rules(categories=CATEGORIES, currency_decimals=-1),
    ],
)
def test_bad_master_data_is_refused_when_built(build: object) -> None:
    with pytest.raises(PricingError):
        build()  # type: ignore[operator]


def test_action_sets_accept_any_iterable_and_are_frozen() -> None:
    deal = action(skus=["A", "B"], divisions={"x"})
    assert deal.skus == frozenset({"A", "B"}) and isinstance(deal.divisions, frozenset)


# --- receipt lines ----------------------------------------------------------------------


def test_receipt_shows_each_line_its_discount_names_totals_and_points() -> None:
    quote = price_basket(customer("A"), [line("S1", qty=2, price=1250, name="Cake")],
                         rules(action("Extra", 300, stackable=True)), AT)
    assert quote.receipt_lines == (
        "Cake",
        "  2 x 12.50                        25.00",
        "  Discount                         -3.25",
        "    Category A 10%",
        "    Extra 3%",
        "-" * 40,
        "Total                              25.00",
        "Discount                           -3.25",
        "To pay                             21.75",
        "Points to earn                        43",
    )


def test_receipt_without_discount_has_no_discount_rows() -> None:
    rows = price_basket(customer("D"), [line(name="Tea", price=150)], rules(), AT).receipt_lines
    assert not any("Discount" in row for row in rows)
    assert rows[-1] == "Points to earn                         1"


def test_receipt_lines_fit_the_printer_with_long_names_and_amounts() -> None:
    long_name = "An extremely long product name that never fits on a receipt"
    quote = price_basket(
        customer("A"), [line(name=long_name, qty=1_000_000, price=10**12)],
        rules(action("A very long special action sale name indeed", 1000, stackable=True)), AT,
    )
    assert all(len(row) <= RECEIPT_WIDTH for row in quote.receipt_lines)
    assert quote.receipt_lines[0] == long_name[:RECEIPT_WIDTH]
    # "qty x unit price" and the gross do not fit on one row: the gross gets its own.
    assert quote.receipt_lines[1:3] == (
        "  1000000 x 10000000000.00", "10000000000000000.00".rjust(RECEIPT_WIDTH)
    )
    assert "    A very long special action sale name" in quote.receipt_lines


def test_receipt_replaces_control_characters_in_names() -> None:
    rows = price_basket(customer("D"), [line(name="Bad\nname\x1b[2J")], rules(), AT).receipt_lines
    assert rows[0] == "Bad name [2J"
    assert all(row.isprintable() for row in rows)


def test_receipt_uses_the_currency_decimals() -> None:
    yen = Rules(categories=CATEGORIES, currency_decimals=0)
    rows = price_basket(customer("D"), [line(price=1500)], yen, AT).receipt_lines
    assert rows[1].endswith(" 1500") and "To pay" in rows[-2] and rows[-2].endswith(" 1500")


@pytest.mark.parametrize(
    ("minor", "decimals", "text"),
    [(0, 2, "0.00"), (5, 2, "0.05"), (12345, 2, "123.45"), (-263, 2, "-2.63"), (-5, 2, "-0.05"),
     (1500, 0, "1500"), (1234, 3, "1.234")],
)
def test_format_amount(minor: int, decimals: int, text: str) -> None:
    assert format_amount(minor, decimals) == text


@pytest.mark.parametrize(("bp", "text"), [(1000, "10%"), (750, "7.5%"), (1234, "12.34%"),
                                          (5, "0.05%"), (10_000, "100%"), (1010, "10.1%")])
def test_format_bp(bp: int, text: str) -> None:
    assert format_bp(bp) == text


# --- default master data ----------------------------------------------------------------


def test_every_default_category_earns_points_on_a_small_purchase() -> None:
    data = default_rules()
    for category in data.rules.categories:
        assert category.points_per_100 >= 100, category.code  # at least 1 point per 1.00 net
        quote = price_basket(Customer("C", category.code), [line(price=200)], data.rules, AT)
        assert quote.points_to_earn >= 1, category.code


def test_default_categories_are_a_to_d_with_limits_for_each() -> None:
    data = default_rules()
    codes = [c.code for c in data.rules.categories]
    assert codes == ["A", "B", "C", "D"]
    assert [limit.category for limit in data.limits] == codes
    assert all(limit.credit_limit >= 0 and limit.floor_points > 0 for limit in data.limits)
    assert all(limit.floor_credit <= limit.credit_limit for limit in data.limits)


def test_default_discounts_and_points_decrease_from_a_to_d() -> None:
    cats = default_rules().rules.categories
    assert [c.discount_bp for c in cats] == sorted((c.discount_bp for c in cats), reverse=True)
    assert [c.points_per_100 for c in cats] == sorted((c.points_per_100 for c in cats), reverse=True)


def test_default_gifts_have_unique_skus_costs_and_stock() -> None:
    gifts = default_rules().gifts
    assert len(gifts) >= 3 and len({g.sku for g in gifts}) == len(gifts)
    assert all(g.points_cost > 0 and g.initial_stock > 0 and g.name for g in gifts)


def test_default_promotions_and_sample_action_work() -> None:
    data = default_rules()
    assert len(data.rules.promotions) == 2 and len(data.rules.actions) == 1
    wine = price_basket(Customer("C", "D"), [line(division="wine")], data.rules, AT)
    assert one(wine) == (1500, ("Wine week 15%",))


# --- worked examples of docs/pricing.md ---------------------------------------------------

DEFAULTS = default_rules().rules


def doc_result(number: int) -> dict[str, int]:
    """The numbers on the `Result` line of the doc's Example `number`."""
    text = DOCS.read_text(encoding="utf-8")
    section = re.split(r"^### Example ", text, flags=re.MULTILINE)[number]
    assert section.startswith(f"{number}:"), f"example {number} is out of order in the doc"
    found = re.search(r"^Result[^:]*:(.*)$", section, flags=re.MULTILINE)
    assert found, f"example {number} has no Result line"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", found.group(1))}


def totals(quote: Quote) -> dict[str, int]:
    return {
        "total_gross": quote.total_gross,
        "total_discount": quote.total_discount,
        "total_net": quote.total_net,
        "points_to_earn": quote.points_to_earn,
    }


def lines_of(quote: Quote) -> list[tuple[int, int, int, tuple[str, ...]]]:
    return [(pl.gross, pl.discount, pl.net, pl.actions) for pl in quote.lines]


def test_every_docs_worked_example_has_a_test() -> None:
    headings = re.findall(r"^### Example (\d+):", DOCS.read_text(encoding="utf-8"), flags=re.MULTILINE)
    tests = sorted(int(n[len("test_docs_worked_example_"):]) for n in globals()
                   if n.startswith("test_docs_worked_example_") and n[-1].isdigit())
    assert [int(n) for n in headings] == tests == list(range(1, len(tests) + 1))


def test_docs_worked_example_1() -> None:
    quote = price_basket(Customer("C-1", "B"), [Line("BREAD", "Bread", 3, 1250)], DEFAULTS, AT)
    assert lines_of(quote) == [(3750, 263, 3487, ("Category B 7%",))]
    assert totals(quote) == doc_result(1) == {
        "total_gross": 3750, "total_discount": 263, "total_net": 3487, "points_to_earn": 52
    }


def test_docs_worked_example_2() -> None:
    basket = [Line("MERLOT", "Merlot 0.75 l", 2, 990, division="wine"),
              Line("ESPRESSO", "Espresso", 1, 220, division="coffee")]
    quote = price_basket(Customer("C-2", "C"), basket, DEFAULTS, AT, table_promo="HAPPY")
    assert lines_of(quote) == [(1980, 297, 1683, ("Wine week 15%",)),
                               (220, 22, 198, ("Happy hour 10%",))]
    assert totals(quote) == doc_result(2) == {
        "total_gross": 2200, "total_discount": 319, "total_net": 1881, "points_to_earn": 18
    }
    receipt = re.search(r"```text\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert receipt and tuple(receipt.group(1).splitlines()) == quote.receipt_lines


def test_docs_worked_example_3() -> None:
    extra = Rules(categories=DEFAULTS.categories, promotions=DEFAULTS.promotions,
                  actions=(*DEFAULTS.actions,
                           action("Clearance", 4500, skus={"TOASTER-1"}, stackable=True),
                           action("Kitchen days", 500, divisions={"kitchen"}, stackable=True)))
    basket = [Line("TOASTER-1", "Toaster", 1, 2000, division="kitchen"),
              Line("KETTLE-1", "Kettle", 1, 3000, division="kitchen")]
    quote = price_basket(Customer("C-3", "A"), basket, extra, AT)
    assert lines_of(quote) == [
        (2000, 1000, 1000, ("Category A 10%", "Clearance 45%", "Kitchen days 5%", "Capped at 50%")),
        (3000, 450, 2550, ("Category A 10%", "Kitchen days 5%")),
    ]
    assert totals(quote) == doc_result(3) == {
        "total_gross": 5000, "total_discount": 1450, "total_net": 3550, "points_to_earn": 71
    }


def test_docs_worked_example_4() -> None:
    summer = action("Summer sale", 2000, skus={"ICE-CREAM"}, **WINDOW)
    extra = Rules(categories=DEFAULTS.categories, actions=(*DEFAULTS.actions, summer))
    basket = [Line("ICE-CREAM", "Ice cream", 1, 400)]

    def at(text: str) -> Quote:
        return price_basket(Customer("C-4", "D"), basket, extra, datetime.fromisoformat(text))

    table = {
        "2025-05-31T23:59:59+00:00": (0, 400, 4, ()),
        "2025-06-01T00:00:00+00:00": (80, 320, 3, ("Summer sale 20%",)),
        "2025-06-07T23:59:59+00:00": (80, 320, 3, ("Summer sale 20%",)),
        "2025-06-08T00:00:00+00:00": (0, 400, 4, ()),
    }
    for when, expected in table.items():
        quote = at(when)
        pl = quote.lines[0]
        assert (pl.discount, pl.net, quote.points_to_earn, pl.actions) == expected, when
    assert totals(at("2025-06-01T00:00:00+00:00")) == doc_result(4) == {
        "total_gross": 400, "total_discount": 80, "total_net": 320, "points_to_earn": 3
    }


def test_docs_worked_example_5() -> None:
    basket = [Line("COOKIE", "Cookie", 1, 75, promo="DOUBLE"), Line("TEA", "Tea", 1, 75)]
    quote = price_basket(Customer("C-5", "D"), basket, DEFAULTS, AT)
    assert lines_of(quote) == [(75, 0, 75, ()), (75, 0, 75, ())]
    assert totals(quote) == doc_result(5) == {
        "total_gross": 150, "total_discount": 0, "total_net": 150, "points_to_earn": 2
    }


def test_docs_worked_example_6() -> None:
    staff = action("Staff evening", 2500, customer_codes={"STAFF"})
    extra = Rules(categories=DEFAULTS.categories, actions=(*DEFAULTS.actions, staff))
    basket = [Line("DINNER", "Dinner", 1, 1000)]
    with_code = price_basket(Customer("C-6", "C", action_codes={"STAFF"}), basket, extra, AT)
    without = price_basket(Customer("C-7", "C"), basket, extra, AT)
    assert lines_of(with_code) == [(1000, 250, 750, ("Staff evening 25%",))]
    assert lines_of(without) == [(1000, 50, 950, ("Category C 5%",))]
    assert without.points_to_earn == 9
    assert totals(with_code) == doc_result(6) == {
        "total_gross": 1000, "total_discount": 250, "total_net": 750, "points_to_earn": 7
    }


def test_docs_worked_example_7() -> None:
    basket = [Line("MERLOT", "Merlot 0.75 l", 2, 990, division="wine")]
    banned = Customer("C-8", "A", banned=True)
    quote = price_basket(banned, basket, DEFAULTS, AT, table_promo="HAPPY")
    assert lines_of(quote) == [(1980, 0, 1980, ())]
    assert totals(quote) == doc_result(7) == {
        "total_gross": 1980, "total_discount": 0, "total_net": 1980, "points_to_earn": 0
    }
