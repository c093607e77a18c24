"""Head-office operations: outlets, bans, identifiers, profiles, corrections, master data,
views.

Every change bumps the entity in the change log so outlets receive it; bans and blocked
or lost identifiers are urgent (they travel first). Promises: a ban takes effect at every
online outlet with the next long-poll answer; a correction of points or credit is HQ's own
fact (`balance.adjusted`) with its reason, in the chain-wide ledger like a ban. Putting the
programme's settings with an expiry rule but no `since` starts the rule today (HQ's
clock): turning expiry on is never retroactive by surprise. Must never: edit a balance
(balances are the fold of facts; a correction is a new fact).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from pydantic import ValidationError

from hq.chain import Chain
from hq.ingest import record_hq_fact
from schema import tallystore
from schema.customerstore import identifiers_of, profile_of
from schema.errors import CustomerUnknown, InvalidRequest, NotFound, mask_card
from schema.events import (
    BalanceAdjusted,
    CustomerStatusChanged,
    CustomerUpdated,
    Profile,
    new_id,
)
from schema.masterdata import DOCS, PROGRAMME
from web.httperrors import validation_message


def _customer(conn: sqlite3.Connection, customer_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM customers WHERE customer_id = ?", (customer_id,)).fetchone()
    if row is None:
        raise CustomerUnknown("no such customer at HQ", customer=customer_id)
    return row


def resolve_customer(chain: Chain, text: str) -> str:
    """The id of the customer named by `text`: a customer id, or one of the customer's
    club card numbers (what an operator has at hand)."""
    value = text.strip()
    with chain.db.read() as conn:
        if conn.execute("SELECT 1 FROM customers WHERE customer_id = ?", (value,)).fetchone():
            return value
        row = conn.execute("SELECT customer_id FROM identifiers WHERE kind = 'card' AND value = ?",
                           (value,)).fetchone()
    if row is None:
        shown = mask_card(value) if value.isdigit() else value
        raise CustomerUnknown(f"HQ has no customer with the id or club card number {shown}: "
                              "check it, or search with GET /v1/admin/customers?q=NAME")
    return str(row[0])


def set_status(chain: Chain, customer_id: str, status: str, reason: str = "") -> dict[str, Any]:
    """A ban (or its lifting) is HQ's own fact, in the chain-wide ledger with its reason."""
    with chain.db.write() as conn:
        _customer(conn, customer_id)
        record_hq_fact(chain, conn, CustomerStatusChanged(
            customer_id=customer_id, status=status, reason=reason))
    chain.waiters.notify()
    return customer_view(chain, customer_id)


def adjust(chain: Chain, customer_id: str, points: int = 0, credit: int = 0, reason: str = "",
           corrects: str | None = None) -> dict[str, Any]:
    """A correction: `points` more (fewer when negative) and `credit` minor units less
    (more when negative) owed on internal credit, with its reason, as HQ's own fact. It
    reaches every outlet with the customer's next pull, like any change. A correction that
    changes nothing, or has no reason, is `invalid_request` and changes nothing."""
    try:
        body = BalanceAdjusted(adjustment_id=new_id(), customer_id=customer_id, points=points,
                               credit=credit, reason=reason, corrects=corrects)
    except ValidationError as exc:
        raise InvalidRequest(validation_message(exc.errors())) from None
    with chain.db.write() as conn:
        _customer(conn, customer_id)
        event = record_hq_fact(chain, conn, body)
        tally = tallystore.load(conn, customer_id)
    chain.waiters.notify()
    return {**body.model_dump(), "event_id": event.event_id, "at": event.at,
            "points_balance": tally.points_balance, "credit_balance": tally.credit_outstanding}


def set_identifier_status(chain: Chain, kind: str, value: str, status: str) -> None:
    if status not in ("active", "blocked", "lost"):
        raise InvalidRequest("status is active, blocked or lost")
    with chain.db.write() as conn:
        row = conn.execute("SELECT customer_id FROM identifiers WHERE kind = ? AND value = ?",
                           (kind, value)).fetchone()
        if row is None:
            raise NotFound(f"no such {kind}")
        conn.execute("UPDATE identifiers SET status = ? WHERE kind = ? AND value = ?",
                     (status, kind, value))
        chain.bump(conn, "customer", row[0], urgent=status != "active")
    chain.waiters.notify()


def edit_customer(chain: Chain, customer_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Profile and category edits made at HQ: the latest applied at HQ wins, per field."""
    category = changes.get("category")
    with chain.db.write() as conn:
        _customer(conn, customer_id)
        if category is not None and conn.execute(
                "SELECT 1 FROM master WHERE kind = 'category' AND key = ?", (category,)).fetchone() is None:
            raise InvalidRequest(f"unknown category {category!r}")
        record_hq_fact(chain, conn, CustomerUpdated(
            customer_id=customer_id, changes=Profile.model_validate(changes)))
    chain.waiters.notify()
    return customer_view(chain, customer_id)


def customer_view(chain: Chain, customer_id: str) -> dict[str, Any]:
    with chain.db.read() as conn:
        row = _customer(conn, customer_id)
        tally = tallystore.load(conn, customer_id)
        idents = identifiers_of(conn, customer_id)
        open_flags = [dict(r) for r in conn.execute(
            "SELECT flag_id, reason, outlet_id, at FROM flags WHERE customer_id = ? "
            "AND resolved_at IS NULL ORDER BY flag_id", (customer_id,))]
    return {
        "customer_id": customer_id,
        **profile_of(row),
        "status": row["status"],
        "category": row["category"],
        "origin_outlet": row["origin_outlet"],
        "identifiers": idents,
        "points_balance": tally.points_balance,
        "credit_balance": tally.credit_outstanding,
        "statistics": tally.statistics(),
        "flags": open_flags,
    }


def search(chain: Chain, text: str, limit: int = 50) -> list[dict[str, Any]]:
    needle = text.strip().lower()
    rows = chain.db.all(
        "SELECT customer_id, kind, given_name, surname, name, status, category FROM customers "
        "WHERE search_name >= ? AND search_name < ? ORDER BY search_name LIMIT ?",
        (needle, needle + "\uffff", limit))
    return [dict(r) for r in rows]


def put_master(chain: Chain, kind: str, doc: dict[str, Any]) -> str:
    if kind not in DOCS:
        raise InvalidRequest(f"unknown master data kind {kind!r} (one of {', '.join(DOCS)})")
    if kind == PROGRAMME:
        doc = _starting_today(chain, doc)
    with chain.db.write() as conn:
        # strictly, as JSON (a date-time is ISO text there, `"500"` is not a number)
        valid = DOCS[kind].model_validate_json(json.dumps(doc), strict=True)
        key = chain.put_master(conn, kind, valid.model_dump(mode="json"))
    chain.waiters.notify()
    return key


def _starting_today(chain: Chain, doc: dict[str, Any]) -> dict[str, Any]:
    """The programme's settings with an expiry rule that says no `since` starting today:
    points already held then get the rule's whole life (docs/programme.md)."""
    rule = doc.get("expiry")
    if isinstance(rule, dict) and rule.get("kind", "never") != "never" and "since" not in rule:
        return {**doc, "expiry": {**rule, "since": chain.clock()[:10]}}
    return doc


def delete_master(chain: Chain, kind: str, key: str) -> None:
    with chain.db.write() as conn:
        if conn.execute("DELETE FROM master WHERE kind = ? AND key = ?", (kind, key)).rowcount == 0:
            raise NotFound(f"no {kind} {key}")
        chain.bump(conn, kind, key)
    chain.waiters.notify()


def outlets(chain: Chain) -> list[dict[str, Any]]:
    rows = chain.db.all("SELECT outlet_id, card_range, created_at, last_seq, last_push_at, "
                        "last_pull_at, clock_offset_s, clock_measured_at FROM outlets "
                        "ORDER BY outlet_id")
    return [dict(r) for r in rows]


def resolve_flag(chain: Chain, flag_id: int, note: str = "") -> None:
    from schema.events import utc_now

    with chain.db.write() as conn:
        if conn.execute("UPDATE flags SET resolved_at = ?, detail = COALESCE(detail || ' ', '') || ? "
                        "WHERE flag_id = ? AND resolved_at IS NULL",
                        (utc_now(), note, flag_id)).rowcount == 0:
            raise NotFound(f"no open flag {flag_id}")
