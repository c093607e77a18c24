"""Bodies of the till API (docs/till-api.md): what a POS sends and gets back.

Every request model forbids unknown fields and bounds every size, so bad input is refused
with `invalid_request` before anything is written (invariant 9).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schema.events import MAX_NOTE, IdentifierKind, PaymentMode

MAX_LINES = 500


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CustomerIn(Strict):
    kind: Literal["person", "organisation"]
    given_name: str | None = Field(None, min_length=1, max_length=100)
    surname: str | None = Field(None, min_length=1, max_length=100)
    name: str | None = Field(None, min_length=1, max_length=200)
    business_domain: str | None = Field(None, max_length=200)
    contact_person: str | None = Field(None, max_length=200)
    date_of_birth: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    address: str | None = Field(None, max_length=300)
    phone: str | None = Field(None, max_length=40)
    fax: str | None = Field(None, max_length=40)
    email: str | None = Field(None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")
    email_consent: bool = False
    preferences: str | None = Field(None, max_length=1024)
    room: str | None = Field(None, max_length=20)
    code: str | None = Field(None, max_length=40)
    category: str | None = Field(None, max_length=10)
    promo_category: str | None = Field(None, max_length=20)
    approved_actions: list[str] = Field(default_factory=list, max_length=50)
    note: str | None = Field(None, max_length=MAX_NOTE)
    picture: str | None = Field(None, max_length=800_000, description="base64 PNG/JPEG, <=300x300")
    pin: str | None = Field(None, pattern=r"^\d{4,8}$")

    @model_validator(mode="after")
    def _names_for_kind(self) -> CustomerIn:
        if self.kind == "person" and not (self.given_name and self.surname):
            raise ValueError("a person needs given_name and surname")
        if self.kind == "organisation" and not self.name:
            raise ValueError("an organisation needs name")
        return self


class CustomerPatch(Strict):
    """A profile edit: only the fields sent change."""

    given_name: str | None = Field(None, min_length=1, max_length=100)
    surname: str | None = Field(None, min_length=1, max_length=100)
    name: str | None = Field(None, min_length=1, max_length=200)
    business_domain: str | None = Field(None, max_length=200)
    contact_person: str | None = Field(None, max_length=200)
    date_of_birth: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    address: str | None = Field(None, max_length=300)
    phone: str | None = Field(None, max_length=40)
    fax: str | None = Field(None, max_length=40)
    email: str | None = Field(None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")
    email_consent: bool | None = None
    preferences: str | None = Field(None, max_length=1024)
    room: str | None = Field(None, max_length=20)
    note: str | None = Field(None, max_length=MAX_NOTE)
    picture: str | None = Field(None, max_length=800_000)


class IdentifierIn(Strict):
    kind: IdentifierKind
    value: str = Field(min_length=1, max_length=200)


class IdentifierStatusIn(Strict):
    """A card blocked, lost or found again (in a chain, only HQ re-activates a card)."""

    kind: str = Field(max_length=20)
    value: str = Field(min_length=1, max_length=200)
    status: Literal["active", "blocked", "lost"]


class IdentifyIn(Strict):
    kind: IdentifierKind
    value: str = Field(min_length=1, max_length=200)
    till_id: str | None = Field(None, max_length=40)
    pin: str | None = Field(None, pattern=r"^\d{4,8}$")


class LineIn(Strict):
    sku: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=120)
    qty: int = Field(gt=0, le=100_000)
    unit_price: int = Field(ge=0, le=10**11)
    division: str | None = Field(None, max_length=40)
    promo: str | None = Field(None, max_length=20, description="an item promotion category")


class QuoteIn(Strict):
    card: str = Field(min_length=1, max_length=200)
    lines: list[LineIn] = Field(min_length=1, max_length=MAX_LINES)
    order_promo: str | None = Field(None, max_length=20)
    table: str | None = Field(None, max_length=20, description="a table's promotion category")
    till_id: str | None = Field(None, max_length=40)


class PaymentIn(Strict):
    mode: PaymentMode
    amount: int = Field(ge=0, le=10**12)


class SaleIn(Strict):
    quote_id: str | None = Field(None, min_length=1, max_length=64)
    card: str | None = Field(None, min_length=1, max_length=200)
    lines: list[LineIn] | None = Field(None, min_length=1, max_length=MAX_LINES)
    order_promo: str | None = Field(None, max_length=20)
    table: str | None = Field(None, max_length=20)
    payments: list[PaymentIn] = Field(min_length=1, max_length=10)
    till_id: str | None = Field(None, max_length=40)

    @model_validator(mode="after")
    def _quote_or_basket(self) -> SaleIn:
        if self.quote_id is None and (self.card is None or self.lines is None):
            raise ValueError("send quote_id, or card and lines")
        return self


class RedemptionIn(Strict):
    card: str = Field(min_length=1, max_length=200)
    gift_sku: str = Field(min_length=1, max_length=64)
    qty: int = Field(1, gt=0, le=1000)
    till_id: str | None = Field(None, max_length=40)
