"""Bodies and answers of HQ's admin API (`/v1/admin/...`, docs/operations.md, "Admin API").

Request bodies are `Strict` like the till API's (schema/api.py): unknown fields refused,
sizes bounded, a JSON value taken only as the type the field has. A customer edit at HQ
(`AdminProfileIn`) is the till's `ProfileIn` plus what only HQ may change (kind,
classification), so the two check a profile field the same way.

Answers are `Answer` models: what each endpoint sends, field names as they have always
been (they are the contract). Validating an answer refuses a field the model does not
declare, so a new column or key cannot leave the API unseen (the tests call every
endpoint); the published schema still allows more properties, as clients must expect
fields to be added (never renamed). Values come from HQ's own tables, so types are as
stored (lenient text), not the strict input types. Amounts are integer minor units (cents),
times UTC ISO 8601 text, dates `YYYY-MM-DD` text.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

from schema.api import MAX_AMOUNT, Cents, Day, ProfileIn, Strict
from schema.events import MAX_POINTS, MAX_REASON, IdentifierStatus
from schema.masterdata import CODE
from schema.money import MAX_AMOUNT as MAX_CORRECTION

# --- request bodies ---------------------------------------------------------------------


class AdminProfileIn(ProfileIn):
    """A profile or classification edit made at HQ: any field of the stored profile
    (`schema.events.Profile`) except the picture's size check, which is the agent's."""

    kind: Literal["person", "organisation"] | None = None
    code: str | None = Field(None, max_length=40)
    category: str | None = Field(None, max_length=10)
    promo_category: str | None = Field(None, max_length=20)
    approved_actions: list[str] | None = Field(None, max_length=50)


class BanIn(Strict):
    reason: str = Field("", max_length=500)


class MergeIn(Strict):
    """Merge the profile `merged` into the one in the path (docs/backoffice.md, "Merging
    two profiles"); the reason is required."""

    merged: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=500)


class ReplaceCardIn(Strict):
    """Report the club card `lost` lost and issue the card `card` in its place."""

    lost: str = Field(min_length=1, max_length=40)
    card: str = Field(min_length=1, max_length=40)
    reason: str = Field("", max_length=500)


class CloseIn(Strict):
    period_from: Day
    period_to: Day
    issued_on: Day


class BankPaymentIn(Strict):
    amount: Cents = Field(gt=0, le=MAX_AMOUNT)
    reference: str = Field(min_length=1, max_length=100)


class RefreshIn(Strict):
    today: Day


class AdjustmentIn(Strict):
    """A correction by head office (`POST /v1/admin/customers/{id}/adjustments`): signed,
    positive in the customer's favour. `points` more (or fewer) points; `credit` minor
    units less (or more, when negative) owed on internal credit. A reason is required;
    `corrects` may name the fact (an event id, a sale id...) it corrects."""

    points: int = Field(0, ge=-MAX_POINTS, le=MAX_POINTS)
    credit: Cents = Field(0, ge=-MAX_CORRECTION, le=MAX_CORRECTION)
    reason: str = Field(min_length=1, max_length=MAX_REASON)
    corrects: str | None = Field(None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _something(self) -> AdjustmentIn:
        if self.points == 0 and self.credit == 0:
            raise ValueError("a correction changes points or credit: give points and/or "
                             "credit (signed integers, not both 0)")
        return self


class ExpireIn(Strict):
    """`POST /v1/admin/points/expire`: run the expiry as of `today` (what HQ's schedule
    does every night)."""

    today: Day


# --- answers ----------------------------------------------------------------------------


def _open(schema: dict[str, Any]) -> None:
    schema.pop("additionalProperties", None)  # fields may be added: clients must allow more


class Answer(BaseModel):
    """An answer of the admin API: exactly these fields (see the module docstring). Every
    field is sent, so the published schema lists each as required."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_open,
                              json_schema_serialization_defaults_required=True)


Model = TypeVar("Model", bound=BaseModel)


def answer(model: type[Model], data: Any) -> Model:
    """What HQ found, as the answer `model`. Data that does not fit is HQ's own defect: a
    `RuntimeError` (500 `internal_error`, logged), never a `ValidationError`, which the API
    would report as the caller's 422."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RuntimeError(f"HQ's answer does not fit {model.__name__}: {exc}") from None


class IdentifierView(Answer):
    kind: str
    value: str
    status: str


class CustomerFlag(Answer):
    """An open flag on the customer (a fact HQ applied but wants a person to look at)."""

    flag_id: int
    reason: str
    outlet_id: str | None
    at: str


class PaidByMode(Answer):
    cash: int
    card: int
    credit: int


class CreditOutstanding(Answer):
    credit: int


class Purchase(Answer):
    sale_id: str
    total: int


class ItemPrice(Answer):
    sku: str
    name: str
    unit_price: int


class ItemCount(Answer):
    sku: str
    name: str
    qty: int


class Statistics(Answer):
    """The customer's figures, the fold of every fact about them (`Tally.statistics`)."""

    total_purchases: int
    purchases_count: int
    total_points_earned: int
    points_balance: int
    total_points_used: int
    total_points_expired: int
    total_discount: int
    paid_by_mode: PaidByMode
    credit_outstanding: CreditOutstanding
    last_purchase_at: str | None
    items_bought: int
    average_item_value: int
    most_expensive_purchase: Purchase | None
    top_expensive_items: list[ItemPrice]
    top_purchased_items: list[ItemCount]
    gifts_collected: int
    gifts: dict[str, int] = Field(description="gift SKU -> how many collected")


class CustomerView(Answer):
    """HQ's view of a customer: the stored profile (a field never set is null), status,
    identifiers, balances, statistics and open flags. The profile fields are those of
    `schema.events.Profile` but the picture (GET /office/customers/{id}/picture)."""

    customer_id: str
    kind: str
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
    status: str = Field(description="approved or banned")
    origin_outlet: str | None
    merged_into: str | None = Field(
        None, description="the profile this one was merged into (its cards, points and "
                          "history are there); null when not merged")
    merged_from: list[str] = Field(
        default_factory=list, description="the profiles merged into this one")
    identifiers: list[IdentifierView]
    points_balance: int
    credit_balance: int = Field(description="credit purchases not yet repaid, in cents")
    statistics: Statistics
    flags: list[CustomerFlag]


class CustomerFound(Answer):
    customer_id: str
    kind: str
    given_name: str | None
    surname: str | None
    name: str | None
    status: str
    category: str


class CustomersFound(RootModel[list[CustomerFound]]):
    """Customers whose name starts with the text searched, by name (at most 50)."""


class IdentifierStatusSet(Answer):
    status: IdentifierStatus


class MasterPut(Answer):
    kind: str
    key: str = Field(description="the document's key within its kind")


class OutletView(Answer):
    outlet_id: str
    card_range: int
    created_at: str
    last_seq: int = Field(description="the outlet's highest event sequence HQ holds")
    last_push_at: str | None
    last_pull_at: str | None
    clock_offset_s: float | None = Field(description="the outlet's clock minus HQ's, seconds")
    clock_measured_at: str | None


class Outlets(RootModel[list[OutletView]]):
    """Every registered outlet, by id."""


class Flag(Answer):
    flag_id: int
    event_id: str | None
    customer_id: str | None
    outlet_id: str | None
    reason: str
    detail: str | None
    at: str
    resolved_at: str | None


class Flags(RootModel[list[Flag]]):
    """Flags by id: the open ones, or every one with `all=true`."""


class Adjustment(Answer):
    """A correction recorded: HQ's fact `balance.adjusted` (its `event_id` in the ledger),
    and the customer's balances after it."""

    adjustment_id: str
    event_id: str
    customer_id: str
    points: int
    credit: int
    reason: str
    corrects: str | None
    at: str
    points_balance: int
    credit_balance: int = Field(description="credit purchases not yet repaid, in cents")


class ExpiryRun(Answer):
    """What an expiry run did: per customer with points past their last valid day, one
    `points.expired` fact naming the lots."""

    on: str = Field(description="the day it ran as of, YYYY-MM-DD")
    customers: int
    lots: int
    points: int


class CategoriesAssigned(Answer):
    changed: int
    checked: int


class InvoicesMoved(Answer):
    """How many invoices became overdue, and past their term (grace period passed too)."""

    overdue: int
    past_term: int


class InvoiceMade(Answer):
    invoice_id: str
    number: str
    customer_id: str
    amount: int
    due_on: str
    items: int = Field(description="how many credit sales it lists")
    credits: int = Field(description="how many return credits it deducts")


class InvoicesMade(RootModel[list[InvoiceMade]]):
    """The invoices this close made (none when there was nothing left to invoice)."""


class Invoice(Answer):
    invoice_id: str
    number: str
    customer_id: str
    period_from: str
    period_to: str
    issued_on: str
    due_on: str
    amount: int
    paid_amount: int
    status: str = Field(description="unpaid, overdue, past_term or paid")
    paid_on: str | None
    paid_via: str | None
    bank_reference: str | None
    payment_reference: str = Field(
        description="the ISO 11649 RF creditor reference a customer pays this invoice with")


class Invoices(RootModel[list[Invoice]]):
    """Invoices by number."""


class InvoiceItem(Answer):
    sale_id: str
    outlet_id: str
    at: str
    amount: int


class InvoiceCredit(Answer):
    """A return's credit refund deducted on the invoice (docs/invoices.md, "Returns on the
    invoice"): `amount` is negative."""

    return_id: str
    sale_id: str = Field(description="the sale the return gave back from")
    receipt_reference: str = Field(description="that sale's printed receipt reference")
    outlet_id: str
    at: str
    amount: int


class InvoiceView(Invoice):
    items: list[InvoiceItem]
    credits: list[InvoiceCredit]


class ConfirmMatchIn(Strict):
    """A clerk's confirmation of a suggested statement match."""

    invoice: str | None = Field(None, min_length=1, max_length=40,
                                description="the invoice, when several were suggested")


class MailMessage(Answer):
    """One message HQ queued for a customer (hq/mailqueue.py), without its bytes."""

    mail_id: int
    message_id: str
    customer_id: str | None
    kind: str
    about: str
    recipient: str
    subject: str
    status: str = Field(description="queued, sending, sent or failed")
    attempts: int
    queued_at: str
    next_attempt_at: str
    sent_at: str | None
    last_error: str | None


class MailMessages(RootModel[list[MailMessage]]):
    """The latest messages, newest first."""


class NewsletterIn(Strict):
    """A newsletter (or catalogue) to the consenting customers of a segment: a category,
    the outlet they registered at, active in the last N days (any combination; none: every
    consenting customer). docs/invoices.md, "Newsletters"."""

    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=100_000, description="the text, as it is sent")
    category: str | None = Field(None, pattern=CODE)
    outlet: str | None = Field(None, min_length=1, max_length=40,
                               description="the outlet the customers registered at")
    active_days: int | None = Field(None, ge=1, le=3660,
                                    description="registered, visited, bought, took a gift or "
                                                "paid in the last N days")
    newsletter_id: str | None = Field(None, pattern=CODE,
                                      description="sending the same id again adds nobody "
                                                  "who has it [a new id]")


class Newsletter(Answer):
    """A newsletter, its segment, and where its messages are."""

    newsletter_id: str
    subject: str
    category: str | None
    outlet: str | None
    active_days: int | None
    created_at: str
    recipients: int = Field(description="consenting customers of the segment when it was sent")
    decided: dict[str, int] = Field(description="recipients by outcome: pending (not yet "
                                                "rendered), mailed, no_consent, no_address")
    mail: dict[str, int] = Field(description="its messages by status: queued, sending, sent, "
                                             "failed")
