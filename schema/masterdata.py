"""Master data documents as HQ publishes them and outlets store them.

One document per entity, keyed by its code: categories (discount, points rate, credit
limit, offline floor limits), promotion categories, special actions, division promotions
and gifts; and one `programme` document, the programme's settings (the way back). These
models validate master data at every boundary (HQ admin API, sync pull, the defaults);
pricing gets them converted to its own pure types (agent.programme).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from schema.reversal import ReturnsSettings

CODE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"


class Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CategoryDoc(Doc):
    code: str = Field(pattern=CODE)
    name: str = Field(min_length=1, max_length=80)
    discount_bp: int = Field(ge=0, le=10_000)
    points_per_100: int = Field(ge=0, le=10_000, description="points per 100.00 of net spend")
    credit_limit: int = Field(0, ge=0)
    floor_points: int = Field(0, ge=0, description="points an outlet may spend unconfirmed")
    floor_credit: int = Field(0, ge=0, description="credit an outlet may charge unconfirmed")
    floor_returns: int = Field(0, ge=0, description=(
        "what one outlet may refund per card, over the return window, on sales made at "
        "other outlets (known only from the receipt's code); 0: none"))


class PromoCategoryDoc(Doc):
    code: str = Field(pattern=CODE)
    name: str = Field(min_length=1, max_length=80)
    discount_bp: int = Field(0, ge=0, le=10_000)
    points_bonus_bp: int = Field(0, ge=0, le=100_000)


class ActionDoc(Doc):
    action_id: str = Field(pattern=CODE)
    name: str = Field(min_length=1, max_length=80)
    valid_from: datetime
    valid_to: datetime
    discount_bp: int = Field(ge=0, le=10_000)
    skus: list[str] = []
    divisions: list[str] = []
    categories: list[str] = []
    customer_codes: list[str] = []
    stackable: bool = False


class DivisionPromoDoc(Doc):
    division: str = Field(pattern=CODE)
    promo: str = Field(pattern=CODE)


class CategoryRuleDoc(Doc):
    """Issuer rule: a customer whose net purchases over the last `window_days` reach
    `min_turnover` belongs to `category` (the highest threshold met wins)."""

    category: str = Field(pattern=CODE)
    min_turnover: int = Field(ge=0)
    window_days: int = Field(365, ge=1, le=3660)


class GiftDoc(Doc):
    sku: str = Field(pattern=CODE)
    name: str = Field(min_length=1, max_length=80)
    points_cost: int = Field(gt=0)


class ProgrammeDoc(Doc):
    """The programme's settings: one document, key `programme` (docs/programme.md).

    `returns`: the way back (`schema.reversal.ReturnsSettings`): the points policy, the
    return window, pending points, the limits on returns an outlet cannot check. A chain
    without this document runs the defaults."""

    returns: ReturnsSettings = ReturnsSettings()


PROGRAMME = "programme"  # the kind and the key of the one programme document
DEFAULT_PROGRAMME = ProgrammeDoc()


DOCS: dict[str, type[Doc]] = {
    "category": CategoryDoc,
    "promo_category": PromoCategoryDoc,
    "action": ActionDoc,
    "division_promo": DivisionPromoDoc,
    "gift": GiftDoc,
    "category_rule": CategoryRuleDoc,
    PROGRAMME: ProgrammeDoc,
}


def key_of(kind: str, doc: Doc) -> str:
    if kind == PROGRAMME:
        return PROGRAMME
    field = {"category": "code", "promo_category": "code", "action": "action_id",
             "division_promo": "division", "gift": "sku", "category_rule": "category"}[kind]
    return str(getattr(doc, field))
