"""Master data documents as HQ publishes them and outlets store them.

One document per entity, keyed by its code: categories (discount, points rate, credit
limit, offline floor limits), promotion categories, special actions, division promotions
and gifts; and one `programme` document, the programme's settings (expiry, pending points,
the way back). These models validate master data at every boundary (HQ admin API, sync
pull, the defaults); pricing gets them converted to its own pure types (agent.programme).
`programme_of` reads the settings from a database of either kind (both keep master data
in a `master` table of the same shape).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from schema.lots import ExpiryRule
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

    `expiry`: when points expire (`schema.lots.ExpiryRule`; default `never`). `returns`:
    the way back (`schema.reversal.ReturnsSettings`): the points policy, the return window,
    pending points (points earned become spendable only after the window), the limits on
    returns an outlet cannot check. A chain without this document runs the defaults."""

    expiry: ExpiryRule = ExpiryRule()
    returns: ReturnsSettings = ReturnsSettings()

    @property
    def pending_days(self) -> int:
        """How long a sale's points stay pending (0: spendable at once)."""
        return self.returns.return_window_days if self.returns.pending_points else 0


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


def programme_of(conn: sqlite3.Connection) -> ProgrammeDoc:
    """The programme's settings as stored in this database's master data (the defaults
    without a document)."""
    row = conn.execute("SELECT data FROM master WHERE kind = ? AND key = ?",
                       (PROGRAMME, PROGRAMME)).fetchone()
    return DEFAULT_PROGRAMME if row is None else ProgrammeDoc.model_validate(json.loads(row[0]))
