"""Facts: the append-only events every balance is derived from (docs/design.md invariant 1).

An event is created once, where it happened, with a UUIDv7 `event_id`, the outlet that
made it and that outlet's gap-free sequence number. Events are never edited; a
correction is a new event.

`EVENT_TYPES` is the registry of what facts there are: each `EventType` declares, in one
entry, its wire name, its body model per version (a reader must keep accepting every
version listed while outlets in the field still send it; the highest is written) and its
tally: what one such fact adds to its customer (schema.ledger `Tally`; none for a fact
without points or money). `BODIES`, `TYPE_OF`, `CURRENT_VERSION` and `tally_of` are
derived from it, never written by hand. The layers above keep one registry each, keyed by
the same name, for what only they decide: HQ's projection (hq/projection.py `HQ`) and the
outlet's overlay (agent/overlay.py `OUTLET`); tests/schema/test_event_registry.py fails
when one lacks a type. Adding a type: hq/projection.py's docstring has the recipe.
Must never: let a tally depend on anything but the fact and its booking time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from uuid6 import uuid7

from schema.errors import ProtocolError
from schema.ledger import ItemTally, Tally
from schema.money import MAX_AMOUNT

MAX_NOTE = 1024
MAX_REASON = 200
MAX_POINTS = 10**9
DATE = r"^\d{4}-\d{2}-\d{2}$"
HQ_OUTLET = "HQ"
"""The outlet id of head office's own facts (numbered in HQ's own sequence)."""

IdentifierKind = Literal["card", "magstripe", "smartcard", "key", "barcode", "phone", "room"]
IdentifierStatus = Literal["active", "blocked", "lost"]
PaymentMode = Literal["cash", "card", "credit"]
# Every number in a fact is stored as a SQLite integer (64-bit): one beyond that cannot be
# a fact at all, so a batch carrying it is malformed (protocol_error), never a crash.
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


def new_id() -> str:
    return str(uuid7())


def _test_clock_skew() -> timedelta:
    """TEST ONLY: `LOYALTY_TEST_CLOCK_SKEW_S` (seconds, may be negative) sets this process's
    clock that far off, so the end-to-end tests can run an outlet whose clock is years
    wrong (docs/sync.md, "Outlet clocks"). Never set it in production."""
    raw = os.environ.get("LOYALTY_TEST_CLOCK_SKEW_S", "")
    try:
        return timedelta(seconds=float(raw)) if raw else timedelta(0)
    except (ValueError, OverflowError):
        return timedelta(0)


_SKEW = _test_clock_skew()


def now() -> datetime:
    """Now, as an aware UTC datetime: the one clock of this process (facts are stamped by
    it through `utc_now`; an outlet's local date comes from it, agent/outlet.py)."""
    return datetime.now(UTC) + _SKEW


def utc_now() -> str:
    """Now, as UTC ISO 8601 with microseconds and `Z` (the one clock facts are stamped by)."""
    return now().isoformat(timespec="microseconds").replace("+00:00", "Z")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Profile(Body):
    """The editable part of a customer: every field is optional in an update."""

    kind: Literal["person", "organisation"] | None = None
    given_name: str | None = Field(None, max_length=100)
    surname: str | None = Field(None, max_length=100)
    name: str | None = Field(None, max_length=200)
    business_domain: str | None = Field(None, max_length=200)
    contact_person: str | None = Field(None, max_length=200)
    date_of_birth: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    address: str | None = Field(None, max_length=300)
    phone: str | None = Field(None, max_length=40)
    fax: str | None = Field(None, max_length=40)
    email: str | None = Field(None, max_length=200)
    email_consent: bool | None = None
    preferences: str | None = Field(None, max_length=1024)
    room: str | None = Field(None, max_length=20)
    code: str | None = Field(None, max_length=40)
    category: str | None = Field(None, max_length=10)
    promo_category: str | None = Field(None, max_length=20)
    approved_actions: list[str] | None = None
    note: str | None = Field(None, max_length=MAX_NOTE)
    picture: str | None = None  # base64 PNG/JPEG, validated at the edge
    language: str | None = Field(None, max_length=35)  # BCP 47 tag: greetings, announcements


class CustomerRegistered(Body):
    customer_id: str
    card_number: str
    profile: Profile


class CustomerUpdated(Body):
    """Fields changed at one place; HQ's order decides per field (last writer at HQ wins)."""

    customer_id: str
    changes: Profile


class CustomerStatusChanged(Body):
    customer_id: str
    status: Literal["approved", "banned"]
    reason: str = ""


class IdentifierAdded(Body):
    customer_id: str
    kind: IdentifierKind
    value: str
    status: IdentifierStatus = "active"


class IdentifierStatusChanged(Body):
    kind: IdentifierKind
    value: str
    status: IdentifierStatus
    customer_id: str | None = None  # the owner, so the change counts as pending for them


class CustomersMerged(Body):
    """Two profiles of one person made one, at HQ only (docs/backoffice.md, "Merging two
    profiles"): `merged`'s identifiers, points, credit and statistics go to `survivor`,
    and every later fact about `merged` counts for `survivor`. No earlier fact is changed:
    the merge is this fact. The envelope's customer is the survivor."""

    customer_id: str  # the survivor
    merged: str
    reason: str = Field("", max_length=500)


class PinSet(Body):
    customer_id: str
    pin_hash: str


class VisitRecorded(Body):
    customer_id: str
    till_id: str | None = None  # events are dumped without None fields: needs its default
    via: IdentifierKind


class SaleLine(Body):
    sku: str
    name: str
    qty: Int64
    unit_price: Int64
    division: str | None = None
    gross: Int64
    discount: Int64
    net: Int64
    actions: list[str] = []


class Payment(Body):
    mode: PaymentMode
    amount: Int64


class SaleRecorded(Body):
    sale_id: str
    customer_id: str
    till_id: str | None = None  # events are dumped without None fields: needs its default
    currency: str
    lines: list[SaleLine]
    payments: list[Payment]
    total_gross: Int64
    total_discount: Int64
    total_net: Int64
    points_earned: Int64


class GiftRedeemed(Body):
    redemption_id: str
    customer_id: str
    gift_sku: str
    gift_name: str
    qty: Int64
    points_spent: Int64
    till_id: str | None = None


class CreditRepaid(Body):
    """A consolidated invoice (or part of one) paid at the till."""

    payment_id: str
    customer_id: str
    amount: Int64
    invoice_id: str | None = None


class StockMoved(Body):
    """Gift stock received into an outlet (+) or sent away (-); hand-outs are redemptions."""

    gift_sku: str
    qty: Int64
    reason: Literal["receipt", "transfer_in", "transfer_out", "correction"]
    reference: str = ""


STOCK_TRANSFER_KIND = "stock_transfer"  # the kind of change HQ's feed sends an order as


class StockTransferred(Body):
    """HQ's order moving gift stock from one outlet to another (docs/backoffice.md, "Stock
    transfers"). Only HQ makes it (an outlet speaks only for itself: one that sends it is
    flagged); HQ moves both outlets' stock at once, and each of the two outlets applies it
    to its own stock when it pulls the order."""

    gift_sku: str = Field(min_length=1, max_length=100)
    qty: int = Field(ge=1, le=1_000_000)
    from_outlet: str = Field(min_length=1, max_length=40)
    to_outlet: str = Field(min_length=1, max_length=40)
    reason: str = Field("", max_length=500)


# --- head office's own facts (schema/reversal.py and schema/lots.py have their maths) ------


class BalanceAdjusted(Body):
    """Head office's correction. Both amounts are signed and positive means in the
    customer's favour: `points` more points, `credit` minor units less owed on internal
    credit. `corrects` names the fact it corrects, when there is one."""

    adjustment_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    points: int = Field(0, ge=-MAX_POINTS, le=MAX_POINTS)
    credit: int = Field(0, ge=-MAX_AMOUNT, le=MAX_AMOUNT)
    reason: str = Field(min_length=1, max_length=MAX_REASON)
    corrects: str | None = None

    @field_validator("reason")
    @classmethod
    def _said(cls, reason: str) -> str:
        if not reason.strip():
            raise ValueError("say why: a correction needs a reason")
        return reason

    @model_validator(mode="after")
    def _something(self) -> BalanceAdjusted:
        if self.points == 0 and self.credit == 0:
            raise ValueError("a correction changes points or credit: both are 0")
        return self


class ExpiredLot(Body):
    lot_id: str = Field(min_length=1)
    points: int = Field(gt=0, le=MAX_POINTS)
    expired_on: str = Field(pattern=DATE)  # the lot's last valid day


class PointsExpired(Body):
    """Head office's expiry run for one customer on day `on`: the lots and points it
    expires, each never more than the lot still held (schema/lots.py `due`)."""

    expiry_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    on: str = Field(pattern=DATE)
    lots: list[ExpiredLot] = Field(min_length=1)

    @field_validator("lots")
    @classmethod
    def _each_once(cls, lots: list[ExpiredLot]) -> list[ExpiredLot]:
        if len({lot.lot_id for lot in lots}) != len(lots):
            raise ValueError("an expiry names each lot once")
        return lots

    @property
    def points(self) -> int:
        return sum(lot.points for lot in self.lots)


class ReturnedLine(Body):
    """One line of a sale given back: `line` is its index in the sale's `lines`."""

    line: int = Field(ge=0)
    sku: str = Field(min_length=1)
    name: str = ""
    qty: int = Field(gt=0)
    unit_price: int = Field(ge=0)
    gross: int = Field(ge=0)
    discount: int = Field(ge=0)
    net: int = Field(ge=0)


class Refund(Body):
    """Money given back in one payment mode; `withheld` is the part of this mode's share
    kept for points already spent (policy `reduce_refund`)."""

    mode: PaymentMode
    amount: int = Field(ge=0)
    withheld: int = Field(0, ge=0)


class ReturnRecorded(Body):
    """Goods given back against a sale (`kind="void"`: the whole rest of it, at its till);
    schema/reversal.py makes it (`plan_return`, `plan_void`) and says the rules.

    `value` is the net value of the lines (the sum of their `net`); the refunds share it
    out. `points_reversed` leave the balance; `points_withheld` were settled out of the
    refund instead. `closes_sale`: nothing of the sale is left after this return. `home`:
    the outlet returned its own sale (False: a sale it knew only from the receipt's code,
    counted against `floor_returns`). `receipt`: the sale's printed reference.
    `approved_by`: the supervisor who let the balance go below zero, when one had to."""

    return_id: str = Field(min_length=1)
    sale_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    kind: Literal["return", "void"] = "return"
    till_id: str | None = None
    reason: str = Field("", max_length=MAX_REASON)
    receipt: str | None = None
    home: bool = True
    lines: list[ReturnedLine] = Field(min_length=1)
    refunds: list[Refund] = Field(default_factory=list)
    value: int = Field(ge=0)
    points_reversed: int = Field(ge=0)
    points_withheld: int = Field(0, ge=0)
    closes_sale: bool
    approved_by: str | None = Field(None, max_length=MAX_REASON)


class GiftReturned(Body):
    """Gifts given back at the desk against a redemption: back into the outlet's stock, and
    `points_returned` back to the customer (schema/reversal.py `plan_gift_return`)."""

    gift_return_id: str = Field(min_length=1)
    redemption_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    gift_sku: str = Field(min_length=1)
    gift_name: str = ""
    qty: int = Field(gt=0)
    points_returned: int = Field(ge=0)
    till_id: str | None = None
    reason: str = Field("", max_length=MAX_REASON)


# --- what each fact adds to its customer's tally (pure; schema.ledger is the monoid) ---------


def _sale_tally(sale: SaleRecorded, at: str) -> Tally:
    paid = {"cash": 0, "card": 0, "credit": 0}
    for payment in sale.payments:
        paid[payment.mode] += payment.amount
    items: dict[str, ItemTally] = {}
    for line in sale.lines:
        item = ItemTally(line.name, line.qty, line.unit_price)
        items[line.sku] = items[line.sku].combine(item) if line.sku in items else item
    return Tally(
        purchases_total=sale.total_net,
        purchases_count=1,
        items_count=sum(line.qty for line in sale.lines),
        points_earned=sale.points_earned,
        discount_total=sale.total_discount,
        paid_cash=paid["cash"],
        paid_card=paid["card"],
        paid_credit=paid["credit"],
        best_purchase_total=sale.total_net,
        best_purchase_id=sale.sale_id,
        last_purchase_at=at,
        items=items,
    )


def _gift_tally(gift: GiftRedeemed, at: str) -> Tally:
    return Tally(points_used=gift.points_spent, gifts_count=gift.qty, gifts={gift.gift_sku: gift.qty})


def _repaid_tally(repaid: CreditRepaid, at: str) -> Tally:
    return Tally(credit_repaid=repaid.amount)


def _adjusted_tally(adjusted: BalanceAdjusted, at: str) -> Tally:
    """A correction's points count as earned (fewer when negative), its credit as repaid."""
    return Tally(points_earned=adjusted.points, credit_repaid=adjusted.credit)


def _expired_tally(expired: PointsExpired, at: str) -> Tally:
    return Tally(points_expired=expired.points)


def _return_tally(ret: ReturnRecorded, at: str) -> Tally:
    """The sums a return takes off (negative figures). The maxima (most expensive purchase,
    an item's dearest unit price, last purchase) cannot be undone by a sum: an item given
    back adds ("", -qty, 0), which never wins `ItemTally.combine`'s max, and HQ restates
    the maxima from what the customer still holds (schema/reversal.py `restate`)."""
    refunded = {"cash": 0, "card": 0, "credit": 0}
    for refund in ret.refunds:
        refunded[refund.mode] += refund.amount
    items: dict[str, ItemTally] = {}
    for line in ret.lines:
        back = ItemTally("", -line.qty, 0)
        items[line.sku] = items[line.sku].combine(back) if line.sku in items else back
    return Tally(
        purchases_total=-ret.value,
        purchases_count=-1 if ret.closes_sale else 0,
        items_count=-sum(line.qty for line in ret.lines),
        points_earned=-ret.points_reversed,
        discount_total=-sum(line.discount for line in ret.lines),
        paid_cash=-refunded["cash"],
        paid_card=-refunded["card"],
        paid_credit=-refunded["credit"],
        items=items,
    )


def _gift_return_tally(gift: GiftReturned, at: str) -> Tally:
    return Tally(points_used=-gift.points_returned, gifts_count=-gift.qty,
                 gifts={gift.gift_sku: -gift.qty})


# --- the registry ---------------------------------------------------------------------------

B = TypeVar("B", bound=Body)


@dataclass(frozen=True)
class EventType(Generic[B]):
    """One kind of fact, declared once.

    `name` is the wire name (fixed: docs/design.md "Names that are fixed"); `versions` maps
    every body version HQ still accepts to its model, the highest being the one written;
    `tally(body, at)` is what one fact booked at `at` adds to its customer, None when it
    adds nothing (no points, no money, no purchase). `hq_only`: only head office makes
    such facts (a correction, an expiry); one an outlet sends is flagged and ignored at
    HQ, and counts for nothing in a fold (`counts`)."""

    name: str
    versions: Mapping[int, type[B]]
    tally: Callable[[B, str], Tally] | None = None
    hq_only: bool = False


EVENT_TYPES: tuple[EventType[Any], ...] = (
    EventType("customer.registered", {1: CustomerRegistered}),
    EventType("customer.updated", {1: CustomerUpdated}),
    EventType("customer.status_changed", {1: CustomerStatusChanged}),
    EventType("identifier.added", {1: IdentifierAdded}),
    EventType("identifier.status_changed", {1: IdentifierStatusChanged}),
    EventType("pin.set", {1: PinSet}),
    EventType("customers.merged", {1: CustomersMerged}),
    EventType("visit.recorded", {1: VisitRecorded}),
    EventType("sale.recorded", {1: SaleRecorded}, tally=_sale_tally),
    EventType("gift.redeemed", {1: GiftRedeemed}, tally=_gift_tally),
    EventType("credit.repaid", {1: CreditRepaid}, tally=_repaid_tally),
    EventType("stock.moved", {1: StockMoved}),
    EventType("stock.transferred", {1: StockTransferred}),
    EventType("balance.adjusted", {1: BalanceAdjusted}, tally=_adjusted_tally, hq_only=True),
    EventType("points.expired", {1: PointsExpired}, tally=_expired_tally, hq_only=True),
    EventType("return.recorded", {1: ReturnRecorded}, tally=_return_tally),
    EventType("gift.returned", {1: GiftReturned}, tally=_gift_return_tally),
)
EVENT_TYPE: dict[str, EventType[Any]] = {t.name: t for t in EVENT_TYPES}
BODIES: dict[tuple[str, int], type[Body]] = {
    (t.name, version): cls for t in EVENT_TYPES for version, cls in t.versions.items()}
TYPE_OF: dict[type[Body], str] = {cls: name for (name, _v), cls in BODIES.items()}
CURRENT_VERSION: dict[str, int] = {t.name: max(t.versions) for t in EVENT_TYPES}
_TALLY: dict[type[Body], Callable[[Any, str], Tally]] = {
    cls: t.tally for t in EVENT_TYPES if t.tally is not None for cls in t.versions.values()}


def tally_of(body: Body, at: str = "") -> Tally:
    """What one fact, made at time `at`, adds to its customer's tally (the identity for
    facts without money)."""
    tally = _TALLY.get(type(body))
    return Tally() if tally is None else tally(body, at)


class Event(BaseModel):
    """The envelope that travels: who made the fact, where, when, and what it says."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(min_length=36, max_length=36)
    outlet_id: str = Field(min_length=1, max_length=40)
    seq: int = Field(ge=1, le=2**63 - 1)
    type: str
    version: int = Field(ge=1)
    at: str
    customer_id: str | None = None
    body: dict[str, Any]

    def parsed(self) -> Body:
        """The body as its typed model; an unknown type/version is a ProtocolError."""
        cls = BODIES.get((self.type, self.version))
        if cls is None:
            raise ProtocolError(
                f"unknown event type {self.type!r} version {self.version}",
                event_id=self.event_id,
            )
        try:
            return cls.model_validate(self.body)
        except ValidationError as exc:
            raise ProtocolError(
                f"malformed {self.type} body: {exc.errors()[0]['msg']}", event_id=self.event_id
            ) from exc


def make_event(outlet_id: str, seq: int, body: Body, at: str | None = None) -> Event:
    kind = TYPE_OF[type(body)]
    return Event(
        event_id=new_id(),
        outlet_id=outlet_id,
        seq=seq,
        type=kind,
        version=CURRENT_VERSION[kind],
        at=at or utc_now(),
        customer_id=getattr(body, "customer_id", None),
        body=body.model_dump(mode="json", exclude_none=True),
    )


def counts(event: Event) -> bool:
    """Whether HQ applies `event` at all: not a head-office-only fact sent by an outlet
    (HQ flags and ignores those, `EventType.hq_only`)."""
    kind = EVENT_TYPE.get(event.type)
    return kind is None or not kind.hq_only or event.outlet_id == HQ_OUTLET


def fold(events: Iterable[Event]) -> Tally:
    """The tally of a sequence of events, in any order (what HQ holds for them)."""
    total = Tally()
    for event in events:
        if counts(event):
            total = total.combine(tally_of(event.parsed(), event.at))
    return total
