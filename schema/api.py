"""Bodies of the till API (docs/till-api.md): what a POS sends and gets back.

Every request model forbids unknown fields and bounds every size, so bad input is refused
with `invalid_request` before anything is written (invariant 9). Request models are STRICT:
a JSON value is taken only as the type the field has (`"1290"` is not an amount, `0` is not
false, `0` is not a date), so what a caller sends is what it meant. Amounts are `Cents`
(integer minor units), dates are `Day` (a real calendar date within `FIRST_DAY..LAST_DAY`),
a date of birth is `BirthDate`. The messages of these types, and of every pattern here
(`PATTERN_MEANING`), say what is expected; web.httperrors words the rest.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schema.errors import Unauthorized
from schema.events import MAX_NOTE, IdentifierKind, IdentifierStatus, PaymentMode
from schema.masterdata import CODE

MAX_LINES = 500
MAX_AMOUNT = 10**12

PIN = r"^\d{4,8}$"
EMAIL = r"^[^@\s]+@[^@\s]+$"
# What each pattern of a request means, for the messages of web.httperrors (a person
# reads the message: it never shows the regex itself)
PATTERN_MEANING = {
    PIN: "4 to 8 digits",
    EMAIL: "an e-mail address such as name@example.com",
    CODE: "a code of 1 to 40 letters, digits, '_', '.' or '-' (starting with a letter or digit)",
}

# Business dates (a day to refresh invoices for, an invoice period) lie within these: far
# enough for any real use, near enough that date arithmetic never overflows.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2999, 12, 31)
FIRST_BIRTH_DAY = date(1900, 1, 1)
_DAY_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")


def json_kind(value: Any) -> str:
    """How a JSON value is called in a message ("got a string"): never the value itself,
    which may be a card number or a secret."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "an integer" if value.is_integer() else "a number with a fraction"
    if isinstance(value, str):
        return "an empty string" if value == "" else "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, bytes | bytearray):
        return "a body that is not JSON"
    return type(value).__name__


def _cents(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("money_type", "expected an integer amount in cents, got {got}",
                                  {"got": json_kind(value)})
    return value


def _calendar_day(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value  # from Python callers
    if not isinstance(value, str) or not _DAY_TEXT.fullmatch(value):
        raise PydanticCustomError("day_type", "expected a date as YYYY-MM-DD, got {got}",
                                  {"got": json_kind(value)})
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("day_value", "{text} is not a date on the calendar "
                                  "(expected YYYY-MM-DD)", {"text": value}) from None


def _day(value: Any) -> date:
    day = _calendar_day(value)
    if not FIRST_DAY <= day <= LAST_DAY:
        raise PydanticCustomError("day_range", "expected a date between {first} and {last}",
                                  {"first": FIRST_DAY.isoformat(), "last": LAST_DAY.isoformat()})
    return day


def _birth_date(value: Any) -> str:
    day = _calendar_day(value)
    today = datetime.now(UTC).date()
    if not FIRST_BIRTH_DAY <= day <= today:
        raise PydanticCustomError("birth_date_range", "expected a date of birth between {first} "
                                  "and today", {"first": FIRST_BIRTH_DAY.isoformat()})
    return day.isoformat()


# An amount of money in minor units (cents): an integer, never text, a float or a boolean.
Cents = Annotated[int, BeforeValidator(_cents)]
# A business date sent as "YYYY-MM-DD": a real calendar day within FIRST_DAY..LAST_DAY.
Day = Annotated[date, BeforeValidator(_day)]
# A date of birth "YYYY-MM-DD" (kept as that text): a real day from 1900 to today.
BirthDate = Annotated[str, BeforeValidator(_birth_date),
                      WithJsonSchema({"type": "string", "format": "date"})]


def bearer(authorization: str | None, needs: str = "a token") -> str:
    """The token of an `Authorization: Bearer TOKEN` header (the scheme's name in any case,
    RFC 7235); anything else is `unauthorized`, saying what to send."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(f"this needs {needs}: send Authorization: Bearer TOKEN")
    return token.strip()


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


def _picture(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError("picture_base64", "must be base64-encoded PNG or JPEG") from None
    return value


# A customer's picture as sent: base64 text (the agent checks it is a PNG or JPEG of at most
# 300x300 pixels, agent/picture.py). Checked here so that no service stores what it cannot
# decode.
Picture = Annotated[str, Field(max_length=800_000, description="base64 PNG/JPEG, <=300x300"),
                    AfterValidator(_picture)]


class ProfileIn(Strict):
    """The profile fields a till may edit, with their checks: the one declaration of them
    for input. A profile edit at the till (`CustomerPatch`), a registration (`CustomerIn`)
    and an edit at HQ (`schema.adminapi.AdminProfileIn`) are built on it, so a check added
    here holds everywhere. The stored shape is `schema.events.Profile` (lenient: HQ never
    refuses a fact already made); it has every field of every input built on this."""

    given_name: str | None = Field(None, min_length=1, max_length=100)
    surname: str | None = Field(None, min_length=1, max_length=100)
    name: str | None = Field(None, min_length=1, max_length=200)
    business_domain: str | None = Field(None, max_length=200)
    contact_person: str | None = Field(None, max_length=200)
    date_of_birth: BirthDate | None = None
    address: str | None = Field(None, max_length=300)
    phone: str | None = Field(None, max_length=40)
    fax: str | None = Field(None, max_length=40)
    email: str | None = Field(None, max_length=200, pattern=EMAIL)
    email_consent: bool | None = None
    preferences: str | None = Field(None, max_length=1024)
    room: str | None = Field(None, max_length=20)
    note: str | None = Field(None, max_length=MAX_NOTE)
    picture: Picture | None = None


class CustomerIn(ProfileIn):
    """A registration at the till: the profile, the customer's kind and classification, and
    an optional PIN."""

    kind: Literal["person", "organisation"]
    email_consent: bool = False
    code: str | None = Field(None, max_length=40)
    category: str | None = Field(None, max_length=10)
    promo_category: str | None = Field(None, max_length=20)
    approved_actions: list[str] = Field(default_factory=list, max_length=50)
    pin: str | None = Field(None, pattern=PIN)

    @model_validator(mode="after")
    def _names_for_kind(self) -> CustomerIn:
        if self.kind == "person" and not (self.given_name and self.surname):
            raise ValueError("a person needs given_name and surname")
        if self.kind == "organisation" and not self.name:
            raise ValueError("an organisation needs name")
        return self


class CustomerPatch(ProfileIn):
    """A profile edit at the till: only the fields sent change."""


class IdentifierIn(Strict):
    kind: IdentifierKind
    value: str = Field(min_length=1, max_length=200)


class IdentifierStatusIn(Strict):
    """A card blocked, lost or found again (in a chain, only HQ re-activates a card)."""

    kind: IdentifierKind
    value: str = Field(min_length=1, max_length=200)
    status: IdentifierStatus


class IdentifyIn(Strict):
    kind: IdentifierKind
    value: str = Field(min_length=1, max_length=200)
    till_id: str | None = Field(None, max_length=40)
    pin: str | None = Field(None, pattern=PIN)


class LineIn(Strict):
    sku: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=120)
    qty: int = Field(gt=0, le=100_000)
    unit_price: Cents = Field(ge=0, le=10**11)
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
    amount: Cents = Field(ge=0, le=MAX_AMOUNT)


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
