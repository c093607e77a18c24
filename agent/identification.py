"""Identifying a customer from anything they present: card, stripe, chip, key, phone...

Promises: an identifier resolves to exactly one customer or to a clear refusal —
`card_unknown`, `card_banned` (customer banned), `card_blocked`, `card_lost` — never to a
new customer. A PIN, when given, is checked here (`check_pin`): wrong tries are counted and
lock it after `pin.MAX_FAILURES` (agent.customers.set_pin sets a new one and clears the
count). A successful identification at a till records a visit (a fact), when it can:
a storage fault loses the visit, not the answer. The answer says what the cashier should
say or show (`answer`, `greet`: schema/greetings.py's rules over this outlet's replica and
local date): a birthday, a welcome on the first visit (none known at HQ, none here), the
gift nudge, head office's announcements; the desk gets the same from `answer`. Works from
the local replica alone. Must never: log a full card number or a PIN, or fail an
identification for a greeting (a stored document it cannot read is skipped and logged).

Below agent.customers: customers stores identifiers through `normalise`, and this module
imports no other service module (only the outbox, cardnumber and pin, and Outlet as a type).
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from agent import cardnumber, outbox
from schema import greetings, tallystore
from schema import pin as pins
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
from schema.masterdata import AnnouncementDoc, GreetingsDoc

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


def first_visit(conn: sqlite3.Connection, customer: sqlite3.Row) -> bool:
    """No visit of the customer known: none at HQ (as last pulled), none at this outlet."""
    return customer["first_visit_at"] is None and conn.execute(
        "SELECT 1 FROM visits WHERE customer_id = ? LIMIT 1",
        (customer["customer_id"],)).fetchone() is None


def _settings(conn: sqlite3.Connection) -> GreetingsDoc | None:
    row = conn.execute("SELECT data FROM master WHERE kind = 'greetings' AND key = 'chain'"
                       ).fetchone()
    if row is None:
        return None
    try:
        return GreetingsDoc.model_validate_json(row[0])
    except ValidationError as exc:
        log.warning("greeting settings unreadable, defaults used: %s", exc.errors()[0]["msg"])
        return None


def _announcements(conn: sqlite3.Connection, customer_id: str) -> list[AnnouncementDoc]:
    """The customer's own announcements and those for everybody or a category (the
    index on the audience finds both without reading the others)."""
    docs = []
    for key, data in conn.execute(
            "SELECT key, data FROM master WHERE kind = 'announcement' AND "
            "json_extract(data, '$.customer_id') = ? UNION ALL "
            "SELECT key, data FROM master WHERE kind = 'announcement' AND "
            "json_extract(data, '$.customer_id') IS NULL", (customer_id,)):
        try:
            docs.append(AnnouncementDoc.model_validate_json(data))
        except ValidationError as exc:
            log.warning("announcement %s unreadable, not shown: %s", key, exc.errors()[0]["msg"])
    return docs


def _who(customer: sqlite3.Row, balance: int, first: bool) -> greetings.Customer:
    name = (customer["given_name"] if customer["kind"] == "person" else None) or \
        display_name(customer)
    return greetings.Customer(
        customer_id=customer["customer_id"], kind=customer["kind"], name=name,
        category=customer["category"], date_of_birth=customer["date_of_birth"],
        language=customer["language"], points_balance=balance, first_visit=first)


def greet(outlet: Outlet, conn: sqlite3.Connection, customer: sqlite3.Row, balance: int,
          first: bool = False) -> tuple[str, list[greetings.Message]]:
    """(language, messages) for `customer` with `balance` points at this outlet today."""
    return greetings.compose(_who(customer, balance, first), outlet.today(), _settings(conn),
                             outlet.programme.gifts.values(),
                             _announcements(conn, customer["customer_id"]))


def receipt_notes(outlet: Outlet, conn: sqlite3.Connection, customer: sqlite3.Row) -> list[str]:
    """What the sale receipt prints for `customer` today: the announcements marked
    `print_on_receipt`, in the customer's language."""
    settings = _settings(conn)
    shown = greetings.announcements(_announcements(conn, customer["customer_id"]),
                                    _who(customer, 0, False), outlet.today(),
                                    settings.language if settings else None)
    return greetings.receipt_notes(shown)


def answer(outlet: Outlet, conn: sqlite3.Connection, customer: sqlite3.Row, balance: int,
           first: bool = False) -> dict[str, Any]:
    """The identify answer for `customer` (`Identified`, schema/api.py): who it is, the
    balance, and what to say (the desk calls this too, with `first` False)."""
    language, messages = greet(outlet, conn, customer, balance, first)
    return {
        "customer_id": customer["customer_id"],
        "display_name": display_name(customer),
        "kind": customer["kind"],
        "status": customer["status"],
        "category": customer["category"],
        "points_balance": balance,
        "language": language,
        "greetings": [m.to_dict() for m in messages],
    }


def identify(outlet: Outlet, kind: str, value: str, till_id: str | None = None,
             pin: str | None = None) -> dict[str, Any]:
    with outlet.db.read() as conn:
        customer = resolve(conn, kind, value)
        first = first_visit(conn, customer)
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
            said = answer(outlet, conn, customer, balance, first)
    except sqlite3.Error as exc:
        # The visit is best-effort: a full or read-only disk must not keep the customer
        # from being recognised (the transaction rolled back whole; nothing half-written).
        fault = storage_error(exc)
        if fault is None:
            raise
        log.warning("visit not recorded (the customer was identified): %s", describe(fault))
        with outlet.db.read() as conn:
            balance = tallystore.points_balance(conn, customer["customer_id"])
            said = answer(outlet, conn, customer, balance, first)
    else:
        outlet.committed()
    return said
