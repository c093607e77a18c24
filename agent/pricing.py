"""Basket pricing: discounts, points to earn and receipt lines. Pure: no I/O, no clock.

Contract
--------
`price_basket(customer, lines, rules, at, order_promo=None, table_promo=None)` returns a
`Quote` that promises, for every priced line:

- `gross == qty * unit_price`, `0 <= discount <= gross`, `net == gross - discount`;
- `discount == (gross * discount_bp_applied + 5000) // 10000`: the one rounding rule
  (half up, once per line, integers only), with `discount_bp_applied <= MAX_LINE_DISCOUNT_BP`;
- `actions` names every rule or action that contributed to `discount_bp_applied`;

and for the basket: the totals are the exact sums of the lines, `total_gross ==
total_discount + total_net`, `points_to_earn` is an int >= 0, every receipt line is at most
`RECEIPT_WIDTH` characters, the result does not depend on the order of the lines, and the
same inputs always give the same `Quote`. A banned customer gets no discount and no points.

It must never: read the clock (time is the `at` argument), touch files, databases or the
network, use a float, or mutate its inputs. Bad input raises `PricingError` (code
`invalid_request`) whose message names the offending line or rule.

The combination policy, with worked examples, is in docs/pricing.md. In short: per line, the
best single non-stackable discount among the customer's category, every applicable promotion
category and every applicable non-stackable action; stackable actions add on top; the sum is
capped at MAX_LINE_DISCOUNT_BP. Points are counted per line and floored once per basket.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeGuard

from schema.errors import InvalidRequest

BP_SCALE = 10_000
"""Basis points in a whole: 10,000 bp = 100 %."""

MAX_LINE_DISCOUNT_BP = 5_000
"""No line is ever discounted by more than 50 %, whatever stacks."""

POINTS_RATE_SCALE = 10_000
"""`Category.points_per_100` counts points per this many minor units (100.00 at 2 decimals)."""

MAX_POINTS_PER_100 = 10_000
MAX_POINTS_BONUS_BP = 100_000
MAX_QTY = 1_000_000
MAX_UNIT_PRICE = 10**12
MAX_LINES = 1_000
RECEIPT_WIDTH = 40


class PricingError(InvalidRequest, ValueError):
    """Bad pricing input (a line, a rule, the time). Code `invalid_request`; changes nothing."""


# --- input types ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Category:
    """A customer category (A, B, C, D ...): its discount and its points rate.

    `points_per_100` is the number of points earned per 10,000 minor units of net spend,
    i.e. per 100.00 in a two-decimal currency: 100 = 1 point per 1.00, 150 = 1.5 points.
    """

    code: str
    name: str
    discount_bp: int
    points_per_100: int

    def __post_init__(self) -> None:
        what = f"category {self.code!r}"
        _check_code(self.code, what)
        _check_int(self.discount_bp, f"{what}: discount_bp", 0, BP_SCALE)
        _check_int(self.points_per_100, f"{what}: points_per_100", 0, MAX_POINTS_PER_100)


@dataclass(frozen=True, slots=True)
class PromotionCategory:
    """A promotion category: a discount and/or a points bonus.

    It may come from the customer, the order, the table, the item (a line's `promo`) or the
    division (through `Rules.division_promos`). `points_bonus_bp` raises the points a line
    earns: 10,000 bp = +100 % (double points).
    """

    code: str
    name: str
    discount_bp: int = 0
    points_bonus_bp: int = 0

    def __post_init__(self) -> None:
        what = f"promotion {self.code!r}"
        _check_code(self.code, what)
        _check_int(self.discount_bp, f"{what}: discount_bp", 0, BP_SCALE)
        _check_int(self.points_bonus_bp, f"{what}: points_bonus_bp", 0, MAX_POINTS_BONUS_BP)


@dataclass(frozen=True, slots=True)
class Action:
    """A special action sale, valid from `valid_from` (inclusive) to `valid_to` (exclusive).

    It covers the lines whose sku is in `skus` or whose division is in `divisions`; with
    both empty it covers every line. `categories` and `customer_codes` restrict who may use
    it (empty = everybody); a customer matches `customer_codes` by their customer code or by
    one of their approved special-action codes. A `stackable` action adds to the best other
    discount instead of competing with it.
    """

    action_id: str
    name: str
    valid_from: datetime
    valid_to: datetime
    discount_bp: int
    skus: AbstractSet[str] = frozenset()
    divisions: AbstractSet[str] = frozenset()
    categories: AbstractSet[str] = frozenset()
    customer_codes: AbstractSet[str] = frozenset()
    stackable: bool = False

    def __post_init__(self) -> None:
        what = f"action {self.action_id!r}"
        _check_code(self.action_id, what)
        _check_int(self.discount_bp, f"{what}: discount_bp", 0, BP_SCALE)
        _check_aware(self.valid_from, f"{what}: valid_from")
        _check_aware(self.valid_to, f"{what}: valid_to")
        if not self.valid_from < self.valid_to:
            raise PricingError(f"{what}: valid_from must be before valid_to")
        if not isinstance(self.stackable, bool):
            raise PricingError(f"{what}: stackable must be true or false")
        for name in ("skus", "divisions", "categories", "customer_codes"):
            object.__setattr__(self, name, _frozen_codes(getattr(self, name), f"{what}: {name}"))


@dataclass(frozen=True, slots=True)
class Customer:
    """What pricing needs to know about a customer."""

    customer_code: str
    category: str
    promotion: str | None = None
    action_codes: AbstractSet[str] = frozenset()
    banned: bool = False

    def __post_init__(self) -> None:
        what = f"customer {self.customer_code!r}"
        object.__setattr__(self, "action_codes", _frozen_codes(self.action_codes, what))
        if not isinstance(self.banned, bool):
            raise PricingError(f"{what}: banned must be true or false")


@dataclass(frozen=True, slots=True)
class Line:
    """A basket line as the till sends it. Checked by `price_basket`, which knows its index."""

    sku: str
    name: str
    qty: int
    unit_price: int
    division: str | None = None
    promo: str | None = None


@dataclass(frozen=True)
class Rules:
    """The master data pricing uses. Codes must be unique within each kind."""

    categories: Sequence[Category]
    promotions: Sequence[PromotionCategory] = ()
    actions: Sequence[Action] = ()
    division_promos: Mapping[str, str] = field(default_factory=dict)
    """Division -> promotion category code: every line of that division gets the promotion."""
    currency_decimals: int = 2
    """Only used to print amounts on receipt lines."""
    _categories: dict[str, Category] = field(init=False, repr=False, compare=False)
    _promotions: dict[str, PromotionCategory] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "categories", tuple(self.categories))
        object.__setattr__(self, "promotions", tuple(self.promotions))
        object.__setattr__(self, "actions", tuple(self.actions))
        object.__setattr__(self, "division_promos", dict(self.division_promos))
        _check_int(self.currency_decimals, "currency_decimals", 0, 4)
        object.__setattr__(self, "_categories", _index(self.categories, "category"))
        object.__setattr__(self, "_promotions", _index(self.promotions, "promotion"))
        _index(self.actions, "action")

    def category(self, code: str) -> Category | None:
        return self._categories.get(code)

    def promotion(self, code: str | None) -> PromotionCategory | None:
        return None if code is None else self._promotions.get(code)


# --- output types ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PricedLine:
    sku: str
    name: str
    qty: int
    unit_price: int
    division: str | None
    promo: str | None
    gross: int
    discount: int
    net: int
    discount_bp_applied: int
    actions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Quote:
    lines: tuple[PricedLine, ...]
    total_gross: int
    total_discount: int
    total_net: int
    points_to_earn: int
    receipt_lines: tuple[str, ...]


# --- pricing --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Candidate:
    bp: int
    rank: int  # on equal bp: action (0) before promotion (1) before category (2)
    label: str


def price_basket(
    customer: Customer,
    lines: Sequence[Line],
    rules: Rules,
    at: datetime,
    order_promo: str | None = None,
    table_promo: str | None = None,
) -> Quote:
    """Prices a basket for `customer` at time `at` (see the module docstring)."""
    _check_aware(at, "at")
    _check_basket(lines)
    category = None if customer.banned else _customer_category(customer, rules)
    basket_promos = (customer.promotion, order_promo, table_promo)
    priced: list[PricedLine] = []
    points_scaled = 0
    for line in lines:
        if category is None:
            priced.append(_price_line(line, []))
            continue
        promos = _line_promotions(line, rules, basket_promos)
        priced.append(_price_line(line, _candidates(category, promos, line, customer, rules, at)))
        points_scaled += _line_points_scaled(priced[-1].net, category, promos)
    points = points_scaled // (POINTS_RATE_SCALE * BP_SCALE)
    return _quote(tuple(priced), points, rules.currency_decimals)


def _customer_category(customer: Customer, rules: Rules) -> Category:
    category = rules.category(customer.category)
    if category is None:
        raise PricingError(
            f"customer category {customer.category!r} is not defined",
            category=customer.category,
        )
    return category


def _line_promotions(
    line: Line, rules: Rules, basket_promos: tuple[str | None, ...]
) -> list[PromotionCategory]:
    """The known promotion categories that apply to `line`, each once, in code order.

    Unknown codes give nothing: a till's item or table may name a promotion that HQ has not
    defined (yet), and that must not block the sale.
    """
    division_promo = None if line.division is None else rules.division_promos.get(line.division)
    codes = {*basket_promos, line.promo, division_promo}
    found = (rules.promotion(code) for code in codes)
    return sorted((p for p in found if p is not None), key=lambda p: p.code)


def _candidates(
    category: Category,
    promos: list[PromotionCategory],
    line: Line,
    customer: Customer,
    rules: Rules,
    at: datetime,
) -> list[tuple[_Candidate, bool]]:
    """Every discount on offer for `line`, each with whether it stacks."""
    offers = [(_Candidate(category.discount_bp, 2, f"Category {category.code}"), False)]
    offers += [(_Candidate(p.discount_bp, 1, p.name), False) for p in promos]
    offers += [
        (_Candidate(a.discount_bp, 0, a.name), a.stackable)
        for a in rules.actions
        if _action_applies(a, customer, line, at)
    ]
    return [(c, stacks) for c, stacks in offers if c.bp > 0]


def _action_applies(action: Action, customer: Customer, line: Line, at: datetime) -> bool:
    if not action.valid_from <= at < action.valid_to:
        return False
    if action.categories and customer.category not in action.categories:
        return False
    if action.customer_codes and not (
        customer.customer_code in action.customer_codes
        or customer.action_codes & action.customer_codes
    ):
        return False
    if not action.skus and not action.divisions:
        return True
    return line.sku in action.skus or (line.division is not None and line.division in action.divisions)


def _price_line(line: Line, candidates: list[tuple[_Candidate, bool]]) -> PricedLine:
    chosen = _combine(candidates)
    uncapped = sum(c.bp for c in chosen)
    bp = min(uncapped, MAX_LINE_DISCOUNT_BP)
    labels = [f"{c.label} {format_bp(c.bp)}" for c in chosen]
    if uncapped > bp:
        labels.append(f"Capped at {format_bp(bp)}")
    gross = line.qty * line.unit_price
    discount = apply_bp(gross, bp)
    return PricedLine(
        sku=line.sku,
        name=line.name,
        qty=line.qty,
        unit_price=line.unit_price,
        division=line.division,
        promo=line.promo,
        gross=gross,
        discount=discount,
        net=gross - discount,
        discount_bp_applied=bp,
        actions=tuple(labels),
    )


def _combine(candidates: list[tuple[_Candidate, bool]]) -> list[_Candidate]:
    """The best single non-stackable candidate, then every stackable one (largest first)."""
    singles = sorted((c for c, stacks in candidates if not stacks), key=_preference)
    stacked = sorted((c for c, stacks in candidates if stacks), key=_preference)
    return singles[:1] + stacked


def _preference(candidate: _Candidate) -> tuple[int, int, str]:
    return (-candidate.bp, candidate.rank, candidate.label)


def _line_points_scaled(net: int, category: Category, promos: list[PromotionCategory]) -> int:
    """The line's points times POINTS_RATE_SCALE * BP_SCALE, so the basket floors only once."""
    bonus_bp = max((p.points_bonus_bp for p in promos), default=0)
    return net * category.points_per_100 * (BP_SCALE + bonus_bp)


def apply_bp(amount: int, bp: int) -> int:
    """`amount * bp / 10000` rounded half up: THE rounding rule (amount, bp >= 0)."""
    return (amount * bp + BP_SCALE // 2) // BP_SCALE


# --- receipt --------------------------------------------------------------------------


def _quote(lines: tuple[PricedLine, ...], points: int, decimals: int) -> Quote:
    total_gross = sum(line.gross for line in lines)
    total_discount = sum(line.discount for line in lines)
    total_net = sum(line.net for line in lines)
    receipt = [row for line in lines for row in _line_rows(line, decimals)]
    receipt += _total_rows(total_gross, total_discount, total_net, points, decimals)
    return Quote(lines, total_gross, total_discount, total_net, points, tuple(receipt))


def _line_rows(line: PricedLine, decimals: int) -> list[str]:
    rows = [_text(line.name or line.sku)]
    rows += _row(f"  {line.qty} x {format_amount(line.unit_price, decimals)}",
                 format_amount(line.gross, decimals))
    if line.discount:
        rows += _row("  Discount", format_amount(-line.discount, decimals))
        rows += [_text("    " + label) for label in line.actions]
    return rows


def _total_rows(gross: int, discount: int, net: int, points: int, decimals: int) -> list[str]:
    rows = ["-" * RECEIPT_WIDTH, *_row("Total", format_amount(gross, decimals))]
    if discount:
        rows += _row("Discount", format_amount(-discount, decimals))
    rows += _row("To pay", format_amount(net, decimals))
    rows += _row("Points to earn", str(points))
    return rows


def _row(label: str, amount: str) -> list[str]:
    """`label` left and `amount` right on one row, or on two rows when they do not fit."""
    label = _text(label)
    if len(label) + 1 + len(amount) <= RECEIPT_WIDTH:
        return [label + amount.rjust(RECEIPT_WIDTH - len(label))]
    # The input bounds (MAX_QTY, MAX_UNIT_PRICE, MAX_LINES) keep any amount under the width.
    return [label, amount.rjust(RECEIPT_WIDTH)[-RECEIPT_WIDTH:]]


def _text(value: str) -> str:
    """One printable receipt line: control characters become spaces, cut to the width."""
    if not value.isprintable():
        value = "".join(ch if ch.isprintable() else " " for ch in value)
    return value.rstrip()[:RECEIPT_WIDTH]


def format_amount(minor: int, decimals: int = 2) -> str:
    """12345 -> "123.45" (no float: minor units split by integer division)."""
    sign = "-" if minor < 0 else ""
    if decimals == 0:
        return f"{sign}{abs(minor)}"
    whole, frac = divmod(abs(minor), 10**decimals)
    return f"{sign}{whole}.{frac:0{decimals}d}"


def format_bp(bp: int) -> str:
    """1000 -> "10%", 750 -> "7.5%", 1234 -> "12.34%"."""
    whole, frac = divmod(bp, 100)
    return f"{whole}%" if frac == 0 else f"{whole}.{frac:02d}".rstrip("0") + "%"


# --- validation -----------------------------------------------------------------------


def _check_basket(lines: Sequence[Line]) -> None:
    if not 1 <= len(lines) <= MAX_LINES:
        raise PricingError(f"a basket needs 1 to {MAX_LINES} lines, got {len(lines)}")
    for number, line in enumerate(lines, start=1):
        _check_line(line, number)


def _check_line(line: Line, number: int) -> None:
    if not isinstance(line, Line):
        raise PricingError(f"line {number}: not a basket line", line=number)
    where = f"line {number} (sku {line.sku!r})"
    if not isinstance(line.sku, str) or not line.sku:
        raise PricingError(f"line {number}: sku must be a non-empty string", line=number)
    if not isinstance(line.name, str):
        raise PricingError(f"{where}: name must be a string", line=number, sku=line.sku)
    for attr in ("division", "promo"):
        if getattr(line, attr) is not None and not isinstance(getattr(line, attr), str):
            raise PricingError(f"{where}: {attr} must be a string", line=number, sku=line.sku)
    if not _is_int(line.qty) or not 1 <= line.qty <= MAX_QTY:
        raise PricingError(
            f"{where}: qty must be a whole number from 1 to {MAX_QTY}, got {line.qty!r}",
            line=number, sku=line.sku,
        )
    if not _is_int(line.unit_price) or not 0 <= line.unit_price <= MAX_UNIT_PRICE:
        raise PricingError(
            f"{where}: unit_price must be whole minor units from 0 to {MAX_UNIT_PRICE}, "
            f"got {line.unit_price!r}",
            line=number, sku=line.sku,
        )


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(value: object, what: str, low: int, high: int) -> None:
    if not _is_int(value) or not low <= value <= high:
        raise PricingError(f"{what} must be a whole number from {low} to {high}, got {value!r}")


def _check_code(value: object, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise PricingError(f"{what}: the code must be a non-empty string")


def _check_aware(value: object, what: str) -> None:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise PricingError(f"{what} must be a timezone-aware (UTC) datetime, got {value!r}")


def _frozen_codes(values: Iterable[str], what: str) -> frozenset[str]:
    if isinstance(values, str):
        raise PricingError(f"{what} must be a set of code strings, got the string {values!r}")
    codes = frozenset(values)
    if not all(isinstance(code, str) for code in codes):
        raise PricingError(f"{what} must be a set of code strings, got {values!r}")
    return codes


def _index(items: Iterable[Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in items:
        code = item.action_id if kind == "action" else item.code
        if code in found:
            raise PricingError(f"{kind} code {code!r} is defined twice")
        found[code] = item
    return found
