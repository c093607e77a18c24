"""Master data documents as HQ publishes them and outlets store them.

One document per entity, keyed by its code: categories (discount, points rate, credit
limit, offline floor limits), promotion categories, special actions, division promotions,
gifts, category rules, the chain's greeting settings and head office's announcements
(docs/greetings.md); and one `programme` document, the programme's settings (expiry, pending
points, the way back). These models validate master data at every boundary (HQ admin API,
sync pull, the defaults); pricing gets them converted to its own pure types
(agent.programme). `programme_of` reads the settings from a database of either kind (both
keep master data in a `master` table of the same shape).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from schema.language import ENGLISH, LanguageTag
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


class GreetingsDoc(Doc):
    """The chain's greeting settings: one document, key `chain` (docs/greetings.md).
    `language`: the chain's default language, for customers without one (or with one that
    has no text); `birthday`: greet on the day, in the (Monday to Sunday) week of it, or
    not at all; `welcome` and `gift_nudge` switch those greetings."""

    scope: Literal["chain"] = "chain"
    language: LanguageTag = ENGLISH
    birthday: Literal["day", "week", "off"] = "day"
    welcome: bool = True
    gift_nudge: bool = True


MAX_ANNOUNCEMENT = 500


def _one_text(text: str) -> str:
    text = text.strip()
    if any(ord(c) < 32 and c != "\n" for c in text):
        raise ValueError("an announcement's text has no control characters but line breaks")
    return text


AnnouncementText = Annotated[str, Field(min_length=1, max_length=MAX_ANNOUNCEMENT),
                             AfterValidator(_one_text)]


class AnnouncementDoc(Doc):
    """A message head office wants shown (and, with `print_on_receipt`, printed on the sale
    receipt) when a customer is identified: to one customer, to a category, or chain-wide
    (neither given). Valid from `valid_from` to `valid_to`, both days included, in each
    outlet's local date. `texts`: the message per language (docs/greetings.md)."""

    announcement_id: str = Field(pattern=CODE)
    texts: dict[LanguageTag, AnnouncementText] = Field(min_length=1, max_length=20)
    customer_id: str | None = Field(None, min_length=1, max_length=64)
    category: str | None = Field(None, pattern=CODE)
    valid_from: date
    valid_to: date
    print_on_receipt: bool = False

    @model_validator(mode="after")
    def _window_and_audience(self) -> AnnouncementDoc:
        if self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        if self.customer_id is not None and self.category is not None:
            raise ValueError("an announcement is for one customer or for a category, not both")
        return self


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
    "greetings": GreetingsDoc,
    "announcement": AnnouncementDoc,
    PROGRAMME: ProgrammeDoc,
}


def key_of(kind: str, doc: Doc) -> str:
    if kind == PROGRAMME:
        return PROGRAMME
    field = {"category": "code", "promo_category": "code", "action": "action_id",
             "division_promo": "division", "gift": "sku", "category_rule": "category",
             "greetings": "scope", "announcement": "announcement_id"}[kind]
    return str(getattr(doc, field))


def programme_of(conn: sqlite3.Connection) -> ProgrammeDoc:
    """The programme's settings as stored in this database's master data (the defaults
    without a document)."""
    row = conn.execute("SELECT data FROM master WHERE kind = ? AND key = ?",
                       (PROGRAMME, PROGRAMME)).fetchone()
    return DEFAULT_PROGRAMME if row is None else ProgrammeDoc.model_validate(json.loads(row[0]))
