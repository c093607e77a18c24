"""Bodies of the till API (docs/till-api.md): what a POS sends and gets back.

Every request model forbids unknown fields and bounds every size, so bad input is refused
with `invalid_request` before anything is written (invariant 9). Request models are STRICT:
a JSON value is taken only as the type the field has (`"1290"` is not an amount, `0` is not
false, `0` is not a date), so what a caller sends is what it meant. Amounts are `Cents`
(integer minor units), dates are `Day` (a real calendar date within `FIRST_DAY..LAST_DAY`),
a date of birth is `BirthDate`. The messages of these types, and of every pattern here
(`PATTERN_MEANING`), say what is expected; web.httperrors words the rest. The answers
(after the requests) are the till API's published answer schemas, each field a name of
today's contract.
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
    RootModel,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schema.errors import Unauthorized
from schema.events import MAX_NOTE, IdentifierKind, IdentifierStatus, PaymentMode
from schema.language import LanguageTag
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
# 300x300 pixels, schema/picture.py). Checked here so that no service stores what it cannot
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
    language: LanguageTag | None = Field(
        None, description="the customer's language (BCP 47: en, de, sl, de-AT...): "
                          "greetings and announcements are given in it (docs/greetings.md)")


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


class ReturnLineIn(Strict):
    sku: str = Field(min_length=1, max_length=64)
    qty: int = Field(gt=0, le=100_000)
    line: int | None = Field(None, ge=0, lt=MAX_LINES, description=(
        "the line's number on the sale (from 0), when the sku is on several lines"))


RECEIPT_TEXT = 4100  # a receipt code is at most 4,000 characters (schema/receiptcode.py)


class ReturnIn(Strict):
    """`POST /v1/returns`: goods given back against a sale named by its `sale_id` or by its
    `receipt` (the printed reference, or the receipt code scanned from its QR code)."""

    sale_id: str | None = Field(None, min_length=1, max_length=64)
    receipt: str | None = Field(None, min_length=1, max_length=RECEIPT_TEXT, description=(
        "the receipt reference printed on the sale's receipt (e.g. 068A-3CP3-TJNW-M), or "
        "the receipt code read from its QR code (LR1:...)"))
    card: str | None = Field(None, min_length=1, max_length=200, description=(
        "the customer's club card: needed for a sale made at another outlet"))
    lines: list[ReturnLineIn] = Field(min_length=1, max_length=MAX_LINES)
    till_id: str | None = Field(None, max_length=40)
    reason: str = Field("", max_length=200)
    approved_by: str | None = Field(None, min_length=1, max_length=200, description=(
        "the supervisor who approves taking back points already spent"))

    @model_validator(mode="after")
    def _one_sale(self) -> ReturnIn:
        if (self.sale_id is None) == (self.receipt is None):
            raise ValueError("name the sale: send sale_id or receipt (not both)")
        return self


class VoidIn(Strict):
    """`POST /v1/sales/{sale_id}/void`: the sale cancelled at its till, with a reason."""

    till_id: str = Field(min_length=1, max_length=40)
    reason: str = Field(min_length=1, max_length=200)
    approved_by: str | None = Field(None, min_length=1, max_length=200)


class GiftReturnIn(Strict):
    """`POST /v1/redemptions/{redemption_id}/return`: gifts given back at the desk."""

    qty: int = Field(1, gt=0, le=1000)
    till_id: str | None = Field(None, max_length=40)
    reason: str = Field("", max_length=200)


class PinIn(Strict):
    pin: str = Field(pattern=PIN)


class SmartcardIn(Strict):
    reader: str = Field(min_length=1, max_length=100, description="PC/SC reader name substring")
    pin: str | None = Field(None, pattern=PIN)


class InvoicePaymentIn(Strict):
    amount: Cents = Field(gt=0, le=MAX_AMOUNT)
    till_id: str | None = Field(None, max_length=40)


class StockMoveIn(Strict):
    qty: int = Field(ge=-100_000, le=100_000)
    reason: Literal["receipt", "transfer_in", "transfer_out", "correction"]
    reference: str = Field("", max_length=200)


# --- answers --------------------------------------------------------------------------------
# What the till API answers, as its OpenAPI document publishes it (docs/till-api.md). The
# field names are the contract: they are today's keys, in today's order. A field without a
# default is always in the answer (`null` where its type allows); a field with a default is
# left out when it does not apply (a profile field never set, the modem's figures without a
# modem). The agent builds these from its services' dicts and answers them with
# `exclude_unset` (web.responses), so an absent key stays absent. Answers allow extra keys:
# tests/agent/test_till_openapi.py fails on any key an answer has that is not declared here.


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class ReaderHealth(Answer):
    """One card reader as the agent runs it."""

    name: str
    kind: str
    till: str | None
    port: str | None = Field(None, description="serial readers")
    reader: str | None = Field(None, description="PC/SC: the reader name it watches")
    readers: list[str] | None = Field(None, description="PC/SC: the readers seen")
    state: str
    last_error: str | None
    last_read_at: str | None
    reads: int
    errors: int


class Counts(Answer):
    customers: int
    sales: int
    redemptions: int
    events: int


class OutletStatus(Answer):
    """`GET /v1/status`: sync state and counts (the same figures as `loyalty status --json`)."""

    outlet_id: str | None
    pending_events: int = Field(description="local facts HQ has not acknowledged yet")
    oldest_pending_at: str | None
    queue_stuck: bool
    last_sync_at: str | None
    last_sync_error: str | None
    cursor: int
    hq_epoch: str | None
    link: str = Field(description="router, modem or none")
    last_sale_at: str | None
    counts: Counts
    readers: list[ReaderHealth]
    clock_offset_s: float | None
    clock_checked_at: str | None
    clock: str
    next_dial_at: str | None = Field(None, description="modem link only")
    last_session: dict[str, Any] | None = Field(None, description="modem link only")
    sync_loop: dict[str, str] | None = Field(None, description="when it syncs with HQ: "
                                             "the push and pull loops' state")


class Registered(Answer):
    """`POST /v1/customers`: the new customer and the club card number issued."""

    customer_id: str
    card_number: str


class CustomerHit(Answer):
    customer_id: str
    kind: str
    given_name: str | None
    surname: str | None
    name: str | None
    status: str
    category: str
    room: str | None


class CustomerHits(RootModel[list[CustomerHit]]):
    """`GET /v1/customers?q=`: at most 20, by name."""


class IdentifierView(Answer):
    kind: str
    value: str
    status: str


class Purchase(Answer):
    sale_id: str
    total: int


class PricedItem(Answer):
    sku: str
    name: str
    unit_price: int


class BoughtItem(Answer):
    sku: str
    name: str
    qty: int


class Statistics(Answer):
    """docs/till-api.md, `GET /v1/customers/{customer_id}`."""

    total_purchases: int
    purchases_count: int
    total_points_earned: int
    points_balance: int
    total_points_used: int
    total_points_expired: int = Field(description="points expired under the programme's "
                                      "expiry rule (docs/programme.md)")
    total_discount: int
    paid_by_mode: dict[str, int]
    credit_outstanding: dict[str, int]
    last_purchase_at: str | None
    items_bought: int
    average_item_value: int
    most_expensive_purchase: Purchase | None
    top_expensive_items: list[PricedItem]
    top_purchased_items: list[BoughtItem]
    gifts_collected: int
    gifts: dict[str, int]


class CustomerView(Answer):
    """A customer as the desk sees it: every profile field that is set (never the PIN or the
    picture's bytes), status, identifiers, balances and statistics."""

    customer_id: str
    kind: Literal["person", "organisation"] | None = None
    given_name: str | None = None
    surname: str | None = None
    name: str | None = None
    business_domain: str | None = None
    contact_person: str | None = None
    date_of_birth: str | None = None
    address: str | None = None
    phone: str | None = None
    fax: str | None = None
    email: str | None = None
    email_consent: bool | None = None
    preferences: str | None = None
    room: str | None = None
    code: str | None = None
    category: str
    promo_category: str | None = None
    approved_actions: list[str]
    note: str | None = None
    language: str | None = None
    status: str
    has_picture: bool
    has_pin: bool
    identifiers: list[IdentifierView]
    points_balance: int
    credit_balance: int = Field(description="internal credit owed")
    credit_limit: int
    credit_available: int
    statistics: Statistics


class IdentifierState(Answer):
    kind: IdentifierKind
    status: IdentifierStatus


class SmartcardIssued(Answer):
    customer_id: str
    card_number: str = Field(description="masked: the last 4 digits")
    reader: str


class GiftNudge(Answer):
    """The gift a `gift` greeting is about: reached when `points_missing` is 0."""

    sku: str
    name: str
    points_cost: int
    points_missing: int


class Greeting(Answer):
    """One thing the cashier should say or show (docs/greetings.md): `birthday`, `welcome`
    (a first visit), `gift` (the gift the points reach, or how many are missing) or
    `announcement` (set by head office), with its text in `language`."""

    kind: Literal["birthday", "welcome", "gift", "announcement"]
    text: str
    language: str
    print_on_receipt: bool = Field(description="the sale receipt prints it too")
    announcement_id: str | None = Field(None, description="announcements only")
    gift: GiftNudge | None = Field(None, description="gift nudges only")


class Identified(Answer):
    """`POST /v1/identify`: who presented the card (a visit is recorded), and what to say."""

    customer_id: str
    display_name: str
    kind: str
    status: str
    category: str
    points_balance: int
    language: str = Field(description="the language the greetings are in")
    greetings: list[Greeting] = Field(description="in the order to say them; may be empty")


class QuotedLine(Answer):
    sku: str
    name: str
    qty: int
    unit_price: int
    division: str | None
    gross: int
    discount: int
    net: int
    actions: list[str] = Field(description="the rules that gave the discount")


class Quote(Answer):
    """`POST /v1/quotes`: the basket priced for this customer, held 15 minutes."""

    quote_id: str
    customer_id: str
    lines: list[QuotedLine]
    total_gross: int
    total_discount: int
    total_net: int
    points_to_earn: int
    receipt_lines: list[str]


class Sale(Answer):
    """`POST /v1/sales`: the recorded sale and its receipt."""

    sale_id: str
    customer_id: str
    total_gross: int
    total_discount: int
    total_net: int
    points_earned: int
    points_balance: int = Field(description="after the sale")
    receipt_lines: list[str]
    receipt_reference: str | None = Field(None, description=(
        "the reference printed on the receipt (and as its barcode): a return names the sale "
        "by it"))
    receipt_code: str | None = Field(None, description=(
        "the text of the receipt's QR code: the sale as recorded, so any outlet can take a "
        "return of it offline; null for a sale too big for a code"))


class Redemption(Answer):
    """`POST /v1/redemptions`: the gift handed out and its receipt."""

    redemption_id: str
    gift_sku: str
    qty: int
    points_spent: int
    points_balance: int
    receipt_lines: list[str]


class RefundView(Answer):
    mode: str
    amount: int = Field(description="money given back in this mode")
    withheld: int = Field(description="this mode's share kept for points already spent")


class ReturnedItem(Answer):
    line: int = Field(description="the line's number on the sale (from 0)")
    sku: str
    name: str
    qty: int
    unit_price: int
    gross: int
    discount: int
    net: int = Field(description="what these units paid: the value given back")


class Reversal(Answer):
    """`POST /v1/returns` and `POST /v1/sales/{sale_id}/void`: what came back, the money
    refunded per payment mode and the points taken back (docs/programme.md)."""

    return_id: str
    kind: Literal["return", "void"]
    sale_id: str
    customer_id: str
    receipt_reference: str | None
    lines: list[ReturnedItem]
    value: int = Field(description="the net value of the lines given back")
    refunds: list[RefundView]
    refunded: int = Field(description="the money given back, every mode together")
    points_reversed: int
    points_withheld: int = Field(description="points settled out of the refund instead")
    points_balance: int = Field(description="after the return")
    closes_sale: bool = Field(description="nothing of the sale is left to return")
    receipt_lines: list[str]


class GiftReturn(Answer):
    """`POST /v1/redemptions/{redemption_id}/return`: the gifts back in stock, the points
    back on the card."""

    gift_return_id: str
    redemption_id: str
    gift_sku: str
    qty: int
    points_returned: int
    points_balance: int
    stock: int = Field(description="this outlet's stock of the gift after the return")
    receipt_lines: list[str]


class Statement(Answer):
    """The total card status printout (receipt-width lines)."""

    receipt_lines: list[str]


class Invoice(Answer):
    """A consolidated invoice as this outlet last received it from HQ."""

    invoice_id: str
    number: str
    customer_id: str
    period_from: str
    period_to: str
    issued_on: str
    due_on: str
    amount: int
    paid_amount: int
    status: str


class Invoices(RootModel[list[Invoice]]):
    """A customer's invoices, oldest first."""


class InvoicePayment(Answer):
    number: str
    paid: int
    left_to_pay: int
    till_id: str | None
    payment_id: str


class GiftStock(Answer):
    sku: str
    name: str
    points_cost: int
    stock: int


class GiftList(RootModel[list[GiftStock]]):
    """The programme's gifts and this outlet's stock of each."""


class StockLevel(Answer):
    sku: str
    stock: int


class ReadRefusal(Answer):
    """Why a read identified nobody: a refusal of `POST /v1/identify`, or `read_error` (the
    card could not be read; `reason` says why)."""

    code: str
    reason: str | None = None
    message: str
    context: dict[str, Any] | None = None


class IdentificationRead(Answer):
    """A card read at a reader bound to the till: pass `kind` and `value` to
    `POST /v1/identify`. The agent has already tried: `customer` or `error`."""

    kind: str | None = None
    value: str | None = None
    reader: str | None = None
    till_id: str | None = None
    read_at: str | None = None
    detected_monotonic: float | None = None
    customer: Identified | None = None
    error: ReadRefusal | None = None
