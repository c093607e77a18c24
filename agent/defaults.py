"""Default master data for a new chain: a programme that runs from the first sale.

Plain data only (no I/O, no clock). Headquarters replaces all of it later. Promise: every
category earns at least 1 point per 1.00 of net spend, so any purchase of 2.00 or more earns
points in every category and a fresh install shows points being earned
(docs/design.md, "Names that are fixed"). Amounts are minor units.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from agent.pricing import Action, Category, PromotionCategory, Rules


@dataclass(frozen=True, slots=True)
class CategoryLimits:
    """Per category: the internal-credit limit and the offline floor limits (docs/design.md invariant 5).

    `floor_points` and `floor_credit` bound how far an outlet may spend a card's points and
    credit beyond what headquarters last confirmed; `floor_returns` how much it may refund
    per card, over the return window, on sales made at other outlets (docs/programme.md,
    "A sale from another outlet").
    """

    category: str
    credit_limit: int
    floor_points: int
    floor_credit: int
    floor_returns: int


@dataclass(frozen=True, slots=True)
class Gift:
    sku: str
    name: str
    points_cost: int
    initial_stock: int


@dataclass(frozen=True, slots=True)
class MasterData:
    rules: Rules
    limits: tuple[CategoryLimits, ...]
    gifts: tuple[Gift, ...]


CATEGORIES = (
    Category("A", "Gold", discount_bp=1000, points_per_100=200),
    Category("B", "Silver", discount_bp=700, points_per_100=150),
    Category("C", "Bronze", discount_bp=500, points_per_100=100),
    Category("D", "Basic", discount_bp=0, points_per_100=100),
)

LIMITS = (
    CategoryLimits("A", credit_limit=500_000, floor_points=2_000, floor_credit=50_000,
                   floor_returns=50_000),
    CategoryLimits("B", credit_limit=200_000, floor_points=1_500, floor_credit=20_000,
                   floor_returns=20_000),
    CategoryLimits("C", credit_limit=50_000, floor_points=1_500, floor_credit=5_000,
                   floor_returns=10_000),
    CategoryLimits("D", credit_limit=0, floor_points=1_500, floor_credit=0,
                   floor_returns=5_000),
)

PROMOTIONS = (
    PromotionCategory("HAPPY", "Happy hour", discount_bp=1000),
    PromotionCategory("DOUBLE", "Double points", discount_bp=0, points_bonus_bp=10_000),
)

SAMPLE_ACTION = Action(
    action_id="WINE-WEEK",
    name="Wine week",
    # A sample window wide enough for a demo on any date; HQ replaces it.
    valid_from=datetime(2020, 1, 1, tzinfo=UTC),
    valid_to=datetime(2100, 1, 1, tzinfo=UTC),
    discount_bp=1500,
    divisions=frozenset({"wine"}),
)

GIFTS = (
    Gift("GIFT-MUG", "Club mug", points_cost=500, initial_stock=20),
    Gift("GIFT-TOTE", "Tote bag", points_cost=800, initial_stock=20),
    Gift("GIFT-COFFEE", "Coffee beans 250 g", points_cost=1_200, initial_stock=10),
    Gift("GIFT-VOUCHER-10", "Voucher 10.00", points_cost=1_500, initial_stock=50),
)


def default_rules() -> MasterData:
    """The master data a new outlet starts with, before headquarters pushes its own."""
    rules = Rules(categories=CATEGORIES, promotions=PROMOTIONS, actions=(SAMPLE_ACTION,))
    return MasterData(rules=rules, limits=LIMITS, gifts=GIFTS)
