"""What a pending local fact puts back over HQ's confirmed state (DESIGN invariant 4).

HQ's row for a customer or an invoice arrives with `incorporated_through`: it holds this
outlet's facts up to that number. The facts after it are pending, and the till must still
see them, so the replica (agent/replication.py) writes HQ's row and then, for each pending
fact of that customer, oldest first:
- folds the fact's tally into the view (`tally_of`, the same for every type, not here);
- `OUTLET[type].reapply(conn, body)`: writes again what the fact did to the customer's row
  or identifiers, which HQ's older row has just overwritten;
- `OUTLET[type].pays(body)`: `(invoice_id, amount)` the fact paid here, added to HQ's
  invoice until HQ has the payment (else the till shows it unpaid and takes it twice).

Every event type name of `schema.events.BODIES` has exactly one entry; an entry with
neither is an explicit "nothing to put back" and says why beside it
(tests/agent/test_outlet_overlay.py fails on a missing or unknown name). Adding an event
type means one entry here.

A fact's first local write stays in its service (agent/sales.py, gifts.py, customers.py,
...): it also writes till-only columns (Idempotency-Key, the stored answer) and has one
writer already. Must never: write the outbox, fold a tally, or be given a fact HQ has
folded in (the caller passes only facts after `incorporated_through`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from schema.customerstore import put_identifier, upsert_customer
from schema.events import (
    TYPE_OF,
    BalanceAdjusted,
    Body,
    CreditRepaid,
    CustomerRegistered,
    CustomersMerged,
    CustomerStatusChanged,
    CustomerUpdated,
    Event,
    GiftRedeemed,
    GiftReturned,
    IdentifierAdded,
    IdentifierStatusChanged,
    PinSet,
    PointsExpired,
    ReturnRecorded,
    SaleRecorded,
    StockMoved,
    StockTransferred,
    VisitRecorded,
)

B = TypeVar("B", bound=Body)


def nothing(conn: sqlite3.Connection, body: Body) -> None:
    """Nothing of the fact outside its tally is overwritten by HQ's row."""


def pays_nothing(body: Body) -> tuple[str | None, int]:
    return None, 0


@dataclass(frozen=True)
class OutletEntry(Generic[B]):
    body: type[B]
    reapply: Callable[[sqlite3.Connection, B], None] = nothing
    pays: Callable[[B], tuple[str | None, int]] = pays_nothing


def _profile(conn: sqlite3.Connection, body: CustomerUpdated) -> None:
    upsert_customer(conn, body.customer_id, body.changes.model_dump(exclude_none=True), "")


def _identifier(conn: sqlite3.Connection, body: IdentifierAdded) -> None:
    put_identifier(conn, body.customer_id, body.kind, body.value, body.status)


def _identifier_status(conn: sqlite3.Connection, body: IdentifierStatusChanged) -> None:
    conn.execute("UPDATE identifiers SET status = ? WHERE kind = ? AND value = ?",
                 (body.status, body.kind, body.value))


def _pin(conn: sqlite3.Connection, body: PinSet) -> None:
    conn.execute("UPDATE customers SET pin_hash = ? WHERE customer_id = ?",
                 (body.pin_hash, body.customer_id))


def _invoice_payment(body: CreditRepaid) -> tuple[str | None, int]:
    return body.invoice_id, body.amount


_ENTRIES = (  # no annotation: each entry is checked against its own body type
    # HQ publishes a customer only once it has folded in the registration.
    OutletEntry(CustomerRegistered),
    OutletEntry(CustomerUpdated, reapply=_profile),
    # Only HQ decides a customer's status (an outlet's claim is flagged, not applied).
    OutletEntry(CustomerStatusChanged),
    OutletEntry(IdentifierAdded, reapply=_identifier),
    OutletEntry(IdentifierStatusChanged, reapply=_identifier_status),
    OutletEntry(PinSet, reapply=_pin),
    # Only HQ merges profiles: an outlet never holds one pending.
    OutletEntry(CustomersMerged),
    # Visits, sales and redemptions reach the customer only through the tally; their own
    # rows (visits, sales, redemptions, ledger) are local and HQ's rows never touch them.
    OutletEntry(VisitRecorded),
    OutletEntry(SaleRecorded),
    OutletEntry(GiftRedeemed),
    OutletEntry(CreditRepaid, pays=_invoice_payment),  # the tally part is folded too
    # The outlet's own gift stock, no customer's: nothing HQ sends overwrites it.
    OutletEntry(StockMoved),
    # HQ's own order (never in an outlet's outbox): applied when pulled (agent/giftstock.py).
    OutletEntry(StockTransferred),
    # Head office's own facts: an outlet never has one pending (HQ's row carries them).
    OutletEntry(BalanceAdjusted),
    OutletEntry(PointsExpired),
    # Returns, voids and gift returns, like sales and redemptions: the tally (negative
    # figures) and their own local rows (returns, gift_returns, gift stock), which HQ's
    # rows never touch. The maxima a return changes stay as they were until HQ's restated
    # row comes back (docs/programme.md, "Statistics after a return").
    OutletEntry(ReturnRecorded),
    OutletEntry(GiftReturned),
)
OUTLET: dict[str, OutletEntry[Any]] = {TYPE_OF[entry.body]: entry for entry in _ENTRIES}


def paid_towards(invoice_id: str, events: Iterable[Event]) -> int:
    """What `events` (pending facts, from the outbox) paid towards `invoice_id` here."""
    total = 0
    for event in events:
        paid_to, amount = OUTLET[event.type].pays(event.parsed())
        if paid_to == invoice_id:
            total += amount
    return total
