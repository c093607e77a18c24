"""Customers and their identifiers at the outlet: register, edit, look up, search, set PINs.

Every change is a fact in the outbox written in the same transaction as its local effect.
Promises: a registered customer gets a club card number from this outlet's range; a
picture is stored only if it is a PNG/JPEG of at most 300x300; a PIN only as a salted
slow hash, and setting one clears its lockout. An identifier is stored the way
agent.identification looks it up (its `normalise`). Checking a PIN is part of identifying
and lives there (`identification.check_pin`), so this module imports identification and
never the other way round. Must never: return or log a PIN or its hash, or give two
customers the same identifier.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from agent import cardnumber, outbox, points, receipts
from agent.identification import normalise
from agent.replica import meta_in, set_meta
from schema import lotstore, picture, pin, tallystore
from schema.api import CustomerIn, CustomerPatch, IdentifierIn
from schema.customerstore import (
    display_name,
    identifiers_of,
    profile_of,
    put_identifier,
    upsert_customer,
)
from schema.errors import CustomerUnknown, Forbidden, InvalidRequest
from schema.events import (
    CustomerRegistered,
    CustomerUpdated,
    IdentifierAdded,
    IdentifierStatusChanged,
    PinSet,
    Profile,
    new_id,
    utc_now,
)
from schema.ledger import credit_available

if TYPE_CHECKING:
    from agent.outlet import Outlet


def register(outlet: Outlet, body: CustomerIn) -> dict[str, str]:
    category = body.category or outlet.default_category()
    outlet.require_category(category, body.promo_category)
    if body.picture:
        picture.decode(body.picture)
    pin_hash = pin.hash_pin(body.pin) if body.pin else None
    profile = Profile(**body.model_dump(exclude={"pin", "category"}), category=category)
    with outlet.db.write() as conn:
        card = _next_card(conn, outlet)
        customer_id = new_id()
        event = outbox.append(conn, outlet.outlet_id, CustomerRegistered(
            customer_id=customer_id, card_number=card, profile=profile))
        upsert_customer(conn, customer_id, profile.model_dump(exclude_none=True),
                        created_at=event.at, origin=outlet.outlet_id)
        put_identifier(conn, customer_id, "card", card, "active")
        if pin_hash:
            outbox.append(conn, outlet.outlet_id, PinSet(customer_id=customer_id, pin_hash=pin_hash))
            conn.execute("UPDATE customers SET pin_hash = ? WHERE customer_id = ?",
                         (pin_hash, customer_id))
    outlet.committed()
    return {"customer_id": customer_id, "card_number": card}


def _next_card(conn: sqlite3.Connection, outlet: Outlet) -> str:
    """The next club card number of this outlet's range, taken (in the caller's transaction)."""
    serial = int(meta_in(conn, "card_serial", "0") or 0) + 1
    card = cardnumber.make(outlet.card_range(conn), serial)
    set_meta(conn, "card_serial", serial)
    return card


def replace_card(outlet: Outlet, customer_id: str, lost: str) -> str:
    """A lost club card reported and a new one issued (the reception desk, docs/desk.md):
    the till API's own calls, `lost` marked lost (`set_identifier_status`) and a new number
    of this outlet's range added (`add_identifier`). The points, credit and history are the
    customer's, so the new card has them all. The new card's number."""
    with outlet.db.read() as conn:
        require_customer(conn, customer_id)
        owner = conn.execute("SELECT customer_id FROM identifiers WHERE kind = 'card' "
                             "AND value = ?", (lost,)).fetchone()
    if owner is None or owner["customer_id"] != customer_id:
        raise InvalidRequest("this card is not one of this customer's cards", kind="card")
    set_identifier_status(outlet, "card", lost, "lost")
    with outlet.db.write() as conn:
        card = _next_card(conn, outlet)
    add_identifier(outlet, customer_id, IdentifierIn(kind="card", value=card))
    return card


def update(outlet: Outlet, customer_id: str, patch: CustomerPatch) -> dict[str, Any]:
    changes = patch.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidRequest("nothing to change")
    if patch.picture:
        picture.decode(patch.picture)
    with outlet.db.write() as conn:
        require_customer(conn, customer_id)
        outbox.append(conn, outlet.outlet_id, CustomerUpdated(
            customer_id=customer_id, changes=Profile(**changes)))
        upsert_customer(conn, customer_id, changes, created_at="")
    outlet.committed()
    return profile(outlet, customer_id)


def _normalised(kind: str, value: str) -> str:
    """The identifier as `identification.resolve` looks it up (phone digits, room upper...)."""
    value = normalise(kind, value)[1]
    if not value:
        raise InvalidRequest(f"this {kind} has nothing to identify by", kind=kind)
    return value


def add_identifier(outlet: Outlet, customer_id: str, ident: IdentifierIn) -> None:
    value = _normalised(ident.kind, ident.value)
    with outlet.db.write() as conn:
        require_customer(conn, customer_id)
        put_identifier(conn, customer_id, ident.kind, value, "active")
        outbox.append(conn, outlet.outlet_id, IdentifierAdded(
            customer_id=customer_id, kind=ident.kind, value=value))
    outlet.committed()


def set_identifier_status(outlet: Outlet, kind: str, value: str, status: str) -> None:
    value = _normalised(kind, value)
    with outlet.db.write() as conn:
        row = conn.execute("SELECT customer_id FROM identifiers WHERE kind = ? AND value = ?",
                           (kind, value)).fetchone()
        if row is None:
            raise InvalidRequest(f"no such {kind}", kind=kind)
        if status == "active" and outlet.is_chain(conn):
            raise Forbidden("in a chain only HQ can make a blocked or lost card active again",
                            kind=kind)
        conn.execute("UPDATE identifiers SET status = ? WHERE kind = ? AND value = ?",
                     (status, kind, value))
        outbox.append(conn, outlet.outlet_id, IdentifierStatusChanged(
            kind=kind, value=value, status=status, customer_id=row["customer_id"]))
    outlet.committed()


def set_pin(outlet: Outlet, customer_id: str, new_pin: str) -> None:
    pin_hash = pin.hash_pin(new_pin)
    with outlet.db.write() as conn:
        require_customer(conn, customer_id)
        outbox.append(conn, outlet.outlet_id, PinSet(customer_id=customer_id, pin_hash=pin_hash))
        conn.execute("UPDATE customers SET pin_hash = ?, pin_failures = 0 WHERE customer_id = ?",
                     (pin_hash, customer_id))
    outlet.committed()


def require_customer(conn: sqlite3.Connection, customer_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM customers WHERE customer_id = ?", (customer_id,)).fetchone()
    if row is None:
        raise CustomerUnknown("no such customer", customer=customer_id)
    return row


def profile(outlet: Outlet, customer_id: str) -> dict[str, Any]:
    with outlet.db.read() as conn:
        row = require_customer(conn, customer_id)
        tally = tallystore.load(conn, customer_id)
        idents = identifiers_of(conn, customer_id)
    limit = outlet.credit_limit(row["category"])
    return {
        "customer_id": customer_id,
        **profile_of(row),
        "status": row["status"],
        "category": row["category"],
        "has_picture": row["picture"] is not None,
        "has_pin": row["pin_hash"] is not None,
        "identifiers": idents,
        "points_balance": tally.points_balance,
        "credit_balance": tally.credit_outstanding,
        "credit_limit": limit,
        "credit_available": credit_available(limit, tally.credit_outstanding),
        "statistics": tally.statistics(),
    }


def search(outlet: Outlet, text: str, limit: int = 20) -> list[dict[str, Any]]:
    """Customers whose surname, given name or organisation name starts with `text`."""
    needle = text.strip().lower()
    if not needle:
        raise InvalidRequest("say what to search for")
    rows = outlet.db.all(
        "SELECT customer_id, kind, given_name, surname, name, status, category, room FROM customers "
        "WHERE search_name >= ? AND search_name < ? OR search_name LIKE ? ORDER BY search_name LIMIT ?",
        (needle, needle + "\uffff", f"% {needle}%", limit))
    return [dict(r) for r in rows]



def statement(outlet: Outlet, customer_id: str) -> list[str]:
    """The card status printout: with the points still pending and those that expire
    within 60 days ("N points expire on DATE"), from this outlet's view of the lots."""
    view = profile(outlet, customer_id)
    card = next((i["value"] for i in view["identifiers"] if i["kind"] == "card"), "")
    invoices = outlet.db.all("SELECT number, status, amount, paid_amount FROM invoices "
                             "WHERE customer_id = ? AND status != 'paid' ORDER BY number",
                             (customer_id,))
    now = utc_now()
    today = points.day_of(now)
    with outlet.db.read() as conn:
        held = lotstore.load(conn, customer_id)
        notice = receipts.points_notice(
            points.notice(conn, outlet.programme.settings, customer_id, held, today),
            points.pending(held, today))
    return receipts.statement(outlet.outlet_id, card, now, display_name(view),
                              view["category"], view["statistics"], view["points_balance"],
                              view["credit_balance"], [dict(i) for i in invoices], notice)


def find(outlet: Outlet, text: str, limit: int = 50) -> list[dict[str, Any]]:
    """The customers a person searching for `text` means: those whose identifier (a card
    number...), phone or room is exactly `text` first, then those found by name (`search`); each
    with its club `card` number (the last in order when it has several, "" without one).
    The caller masks it for display."""
    wanted = text.strip()
    if not wanted:
        return []
    found = [dict(r) for r in outlet.db.all(
        "SELECT c.customer_id, c.kind, c.given_name, c.surname, c.name, c.status, "
        "c.category, c.room FROM customers c WHERE c.customer_id IN (SELECT customer_id FROM "
        "identifiers WHERE value = ?) OR c.phone = ? OR lower(c.room) = lower(?) "
        "ORDER BY c.search_name", (wanted, wanted, wanted))]
    seen = {r["customer_id"] for r in found}
    found += [r for r in search(outlet, wanted, limit=limit) if r["customer_id"] not in seen]
    if found:
        marks = ",".join("?" for _ in found)
        cards = {r[0]: r[1] for r in outlet.db.all(
            "SELECT customer_id, value FROM identifiers WHERE kind = 'card' AND customer_id "
            f"IN ({marks}) ORDER BY value", [r["customer_id"] for r in found])}
        for r in found:
            r["card"] = cards.get(r["customer_id"], "")
    return found


def stored_picture(outlet: Outlet, customer_id: str) -> bytes | None:
    """The customer's stored picture (PNG or JPEG bytes); None without one or no such customer."""
    row = outlet.db.one("SELECT picture FROM customers WHERE customer_id = ?", (customer_id,))
    return None if row is None or row[0] is None else bytes(row[0])
