"""Identifying a customer from anything they present: card, stripe, chip, key, phone...

Promises: an identifier resolves to exactly one customer or to a clear refusal —
`card_unknown`, `card_banned` (customer banned), `card_blocked`, `card_lost` — never to a
new customer. A PIN, when given, is checked here (`check_pin`): wrong tries are counted and
lock it after `pin.MAX_FAILURES` (agent.customers.set_pin sets a new one and clears the
count). A successful identification at a till records a visit (a fact), when it can:
a storage fault loses the visit, not the answer. Works from the local replica alone. Must never: log a full card number or a PIN.

Below agent.customers: customers stores identifiers through `normalise`, and this module
imports no other service module (only the outbox, cardnumber and pin, and Outlet as a type).
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from agent import cardnumber, outbox
from schema import pin as pins
from schema import tallystore
from schema.customerstore import display_name
from schema.database import storage_error
from schema.errors import (
    CardBanned,
    CardBlocked,
    CardLost,
    CardUnknown,
    PinInvalid,
    PinLocked,
    describe,
    mask_card,
)
from schema.events import VisitRecorded

if TYPE_CHECKING:
    from agent.outlet import Outlet

log = logging.getLogger(__name__)

# A bare "card" value may be any physical card: try the club number first.
CARD_KINDS = ("card", "barcode", "magstripe", "smartcard", "key")


def normalise(kind: str, value: str) -> tuple[str, str]:
    value = value.strip()
    if kind == "phone":
        digits = "".join(c for c in value if c.isdigit())
        return kind, ("+" + digits if value.startswith("+") else digits)
    if kind == "room":
        return kind, value.upper()
    if kind == "smartcard":
        return kind, value.upper().replace(" ", "").replace(":", "")
    return kind, value


def resolve(conn: sqlite3.Connection, kind: str, value: str) -> sqlite3.Row:
    """The customer behind an identifier, refusing unknown, lost, blocked and banned."""
    kind, value = normalise(kind, value)
    kinds = CARD_KINDS if kind == "card" else (kind,)
    ident = None
    for k in kinds:
        ident = conn.execute(
            "SELECT customer_id, status FROM identifiers WHERE kind = ? AND value = ?", (k, value)
        ).fetchone()
        if ident is not None:
            break
    masked = mask_card(value)
    if ident is None:
        hint = " (check digit wrong: re-scan)" if kind == "card" and value.isdigit() and len(
            value) == cardnumber.LENGTH and not cardnumber.is_valid(value) else ""
        raise CardUnknown(f"no customer has this {kind}{hint}", card=masked)
    if ident["status"] == "lost":
        raise CardLost(f"this {kind} was reported lost", card=masked)
    if ident["status"] == "blocked":
        raise CardBlocked(f"this {kind} is blocked", card=masked)
    customer = conn.execute(
        "SELECT * FROM customers WHERE customer_id = ?", (ident["customer_id"],)
    ).fetchone()
    if customer["status"] == "banned":
        raise CardBanned("this customer is banned", card=masked)
    return customer


def check_pin(outlet: Outlet, customer_id: str, given: str) -> None:
    """Verifies a PIN; counts failures and locks after MAX_FAILURES (reset by a new PIN)."""
    row = outlet.db.one("SELECT pin_hash, pin_failures FROM customers WHERE customer_id = ?",
                        (customer_id,))
    if row is None or row["pin_hash"] is None:
        return
    if row["pin_failures"] >= pins.MAX_FAILURES:
        raise PinLocked("PIN locked after repeated failures; set a new PIN at the desk")
    ok = pins.verify(given, row["pin_hash"])
    with outlet.db.write() as conn:
        conn.execute("UPDATE customers SET pin_failures = ? WHERE customer_id = ?",
                     (0 if ok else row["pin_failures"] + 1, customer_id))
    if not ok:
        raise PinInvalid("wrong PIN")


def identify(outlet: Outlet, kind: str, value: str, till_id: str | None = None,
             pin: str | None = None) -> dict[str, Any]:
    with outlet.db.read() as conn:
        customer = resolve(conn, kind, value)
    if pin is not None:
        check_pin(outlet, customer["customer_id"], pin)
    # Durable like every fact: the pusher may send a visit to HQ right after its commit, and
    # one lost locally in a power cut would leave its sequence number to a later fact that
    # HQ then refuses as seq_reused.
    try:
        with outlet.db.write() as conn:
            event = outbox.append(conn, outlet.outlet_id, VisitRecorded(
                customer_id=customer["customer_id"], till_id=till_id, via=kind))
            conn.execute("INSERT INTO visits (seq, customer_id, till_id, via, at) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (event.seq, customer["customer_id"], till_id, kind, event.at))
            balance = tallystore.points_balance(conn, customer["customer_id"])
    except sqlite3.Error as exc:
        # The visit is best-effort: a full or read-only disk must not keep the customer
        # from being recognised (the transaction rolled back whole; nothing half-written).
        fault = storage_error(exc)
        if fault is None:
            raise
        log.warning("visit not recorded (the customer was identified): %s", describe(fault))
        with outlet.db.read() as conn:
            balance = tallystore.points_balance(conn, customer["customer_id"])
    else:
        outlet.committed()
    return {
        "customer_id": customer["customer_id"],
        "display_name": display_name(customer),
        "kind": customer["kind"],
        "status": customer["status"],
        "category": customer["category"],
        "points_balance": balance,
    }
