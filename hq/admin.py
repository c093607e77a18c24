"""Head-office operations: outlets, bans, identifiers, profiles, corrections, master data,
views, and the reads of the back office's pages (counts, search, receipts, gift stock, outlet
health...).

Every change bumps the entity in the change log so outlets receive it; bans and blocked
or lost identifiers are urgent (they travel first). Promises: a ban takes effect at every
online outlet with the next long-poll answer; a correction of points or credit is HQ's own
fact (`balance.adjusted`) with its reason, in the chain-wide ledger like a ban. Putting the
programme's settings with an expiry rule but no `since` starts the rule today (HQ's
clock): turning expiry on is never retroactive by surprise. A change that records HQ's own
fact checks what it depends on inside `ingest.making_hq_facts`: two operators at once, on
several HQ processes, act one after the other, the second seeing the first (a merged
profile, a card given, a used Idempotency-Key). Must never: edit a balance (balances are
the fold of facts; a correction is a new fact).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError

from hq import audit, credentials
from hq.audit import Actor
from hq.chain import Chain
from hq.ingest import making_hq_facts, record_hq_fact
from schema import lotstore, pin, salestore, tallystore, timing
from schema import picture as pictures
from schema.customerstore import display_name, identifiers_of, profile_of
from schema.errors import (
    CardInUse,
    Conflict,
    CustomerMerged,
    CustomerUnknown,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    mask_card,
)
from schema.events import (
    BalanceAdjusted,
    CustomersMerged,
    CustomerStatusChanged,
    CustomerUpdated,
    IdentifierAdded,
    IdentifierKind,
    IdentifierStatusChanged,
    PinSet,
    Profile,
    new_id,
)
from schema.lots import ExpiryRule
from schema.masterdata import DOCS, PROGRAMME, AnnouncementDoc, ProgrammeDoc, key_of
from web.barcode import check_digit
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


def set_status(chain: Chain, customer_id: str, status: str, reason: str = "", *,
               by: Actor | None) -> dict[str, Any]:
    """A ban (or its lifting) is HQ's own fact, in the chain-wide ledger with its reason;
    made by staff (`by`: the back office, the admin API, the command line), it is audited
    in the same transaction (before -> after, why, the fact's id)."""
    with making_hq_facts(chain) as conn:
        before = _customer(conn, customer_id)["status"]
        event = record_hq_fact(chain, conn, CustomerStatusChanged(
            customer_id=customer_id, status=status, reason=reason))
        if by is not None:
            audit.record(conn, by, "customer.status", ("customer", customer_id),
                         {"status": before}, {"status": status}, reason,
                         customer_id=customer_id, event_id=event.event_id)
    chain.waiters.notify()
    return customer_view(chain, customer_id)


def adjust(chain: Chain, customer_id: str, points: int = 0, credit: int = 0, reason: str = "",
           corrects: str | None = None, *, by: Actor | None,
           key: str | None = None) -> dict[str, Any]:
    """A correction: `points` more (fewer when negative) and `credit` minor units less
    (more when negative) owed on internal credit, with its reason, as HQ's own fact. It
    reaches every outlet with the customer's next pull, like any change. A correction that
    changes nothing, or has no reason, is `invalid_request` and changes nothing. Made by
    staff (`by`), audited with the balances before -> after in the same transaction. With an
    Idempotency-Key `key`, the same key again answers the first correction and books nothing;
    the same key with another request is `idempotency_conflict` (the admin API's header;
    the back office's form sends its token, so a double submit books once)."""
    digest = hashlib.sha256(json.dumps(
        [customer_id, points, credit, reason, corrects]).encode()).hexdigest()
    try:
        body = BalanceAdjusted(adjustment_id=new_id(), customer_id=customer_id, points=points,
                               credit=credit, reason=reason, corrects=corrects)
    except ValidationError as exc:
        raise InvalidRequest(validation_message(exc.errors())) from None
    with making_hq_facts(chain) as conn:
        if key is not None:
            # another HQ process booking this key now committed first: this sees it
            row = conn.execute("SELECT request_hash, response FROM adjustment_keys WHERE "
                               "idempotency_key = ?", (key,)).fetchone()
            if row is not None:
                if row[0] != digest:
                    raise IdempotencyConflict("this Idempotency-Key was used for another "
                                              "correction: use a new key for a new one")
                return dict(json.loads(row[1]))
        _customer(conn, customer_id)
        before = tallystore.load(conn, customer_id)
        event = record_hq_fact(chain, conn, body)
        tally = tallystore.load(conn, customer_id)
        if by is not None:
            audit.record(conn, by, "customer.adjust", ("customer", customer_id),
                         {"points": before.points_balance,
                          "credit_owed": before.credit_outstanding},
                         {"points": tally.points_balance, "credit_owed": tally.credit_outstanding},
                         reason, customer_id=customer_id, event_id=event.event_id)
        made = {**body.model_dump(), "event_id": event.event_id, "at": event.at,
                "points_balance": tally.points_balance,
                "credit_balance": tally.credit_outstanding}
        if key is not None:
            conn.execute("INSERT INTO adjustment_keys (idempotency_key, request_hash, response,"
                         " at) VALUES (?, ?, ?, ?)", (key, digest, json.dumps(made), event.at))
    chain.waiters.notify()
    return made


def set_identifier_status(chain: Chain, kind: IdentifierKind, value: str, status: str, *,
                          by: Actor | None, reason: str = "") -> None:
    """Blocks an identifier, reports it lost, or makes it active again, as HQ's own
    `identifier.status_changed` fact (urgent for outlets unless active); made by staff
    (`by`), audited with the status before -> after. The same status again records
    nothing (a double click)."""
    if status not in ("active", "blocked", "lost"):
        raise InvalidRequest("status is active, blocked or lost")
    with making_hq_facts(chain) as conn:
        row = conn.execute("SELECT customer_id, status FROM identifiers WHERE kind = ? AND "
                           "value = ?", (kind, value)).fetchone()
        if row is None:
            raise NotFound(f"no such {kind}")
        if row["status"] == status:
            return
        event = record_hq_fact(chain, conn, IdentifierStatusChanged(
            kind=kind, value=value, status=status, customer_id=row["customer_id"]))
        if by is not None:
            audit.record(conn, by, "identifier.status", (kind, _masked(kind, value)),
                         {"status": row["status"]}, {"status": status}, reason,
                         customer_id=row["customer_id"], event_id=event.event_id)
    chain.waiters.notify()


def _new_card_number(value: str) -> str:
    """A replacement card's number as typed, checked: digits only, and a 13-digit one (an
    EAN-13, as the chain's own cards are) with its right check digit (a typo is caught)."""
    card = value.strip().replace(" ", "")
    if not card.isascii() or not card.isdigit() or not 4 <= len(card) <= 40:
        raise InvalidRequest("New card number: type the digits printed on the new card",
                             field="card")
    if len(card) == 13 and check_digit(card[:12]) != card[12]:
        raise InvalidRequest("New card number: the check digit is wrong: type it again",
                             field="card")
    return card


def _not_merged(row: sqlite3.Row) -> None:
    if row["merged_into"]:
        raise CustomerMerged(f"customer {row['customer_id']} was merged into "
                             f"{row['merged_into']}: work on that profile",
                             survivor=row["merged_into"])


def replace_card(chain: Chain, customer_id: str, lost: str, new_card: str, by: Actor,
                 reason: str = "") -> str:
    """Reports the customer's club card `lost` lost and issues the new card `new_card`
    (the reception desk's replace-card, made at HQ): HQ's own `identifier.status_changed`
    (lost, urgent for outlets) and `identifier.added` facts in one transaction, audited as
    one change. Points, credit and history stay the customer's, so the new card has them
    all. A number that already belongs to anyone is `card_in_use` and nothing is
    recorded. The new card's number."""
    card = _new_card_number(new_card)
    with making_hq_facts(chain) as conn:
        _not_merged(_customer(conn, customer_id))
        old = conn.execute("SELECT customer_id, status FROM identifiers WHERE kind = 'card' "
                           "AND value = ?", (lost,)).fetchone()
        if old is None or old["customer_id"] != customer_id:
            raise InvalidRequest("Lost card: choose one of this customer's cards", field="lost")
        owner = conn.execute("SELECT customer_id FROM identifiers WHERE kind = 'card' "
                             "AND value = ?", (card,)).fetchone()
        if owner is not None:
            whose = "this customer" if owner[0] == customer_id else f"customer {owner[0]}"
            raise CardInUse(f"card {mask_card(card)} already belongs to {whose}: take another "
                            "card", field="card")
        if old["status"] != "lost":
            record_hq_fact(chain, conn, IdentifierStatusChanged(
                kind="card", value=lost, status="lost", customer_id=customer_id))
        event = record_hq_fact(chain, conn, IdentifierAdded(
            customer_id=customer_id, kind="card", value=card))
        audit.record(conn, by, "card.replace", ("card", mask_card(card)),
                     {"card": mask_card(lost), "status": old["status"]},
                     {"card": mask_card(card), "lost": mask_card(lost)}, reason,
                     customer_id=customer_id, event_id=event.event_id)
    chain.waiters.notify()
    return card


def set_picture(chain: Chain, customer_id: str, raw: bytes, by: Actor,
                reason: str = "") -> None:
    """Stores the customer's picture (the back office's upload) as HQ's own
    `customer.updated` fact, so it reaches every outlet as a picture set at a till does.
    Checked by schema/picture.py (PNG or JPEG, at most 300x300 and 512 KiB): anything
    else is `invalid_request` and nothing is recorded. Audited by its size, not its bytes."""
    fmt, width, height = pictures.check(raw)
    with making_hq_facts(chain) as conn:
        row = _customer(conn, customer_id)
        had = row["picture"] is not None
        event = record_hq_fact(chain, conn, CustomerUpdated(
            customer_id=customer_id,
            changes=Profile(picture=base64.b64encode(raw).decode())))
        audit.record(conn, by, "customer.picture", ("customer", customer_id),
                     {"picture": "set" if had else None},
                     {"picture": f"{fmt} {width}x{height}, {len(raw)} bytes"}, reason,
                     customer_id=customer_id, event_id=event.event_id)
    chain.waiters.notify()


def merge_preview(chain: Chain, survivor: str, merged: str) -> dict[str, Any]:
    """What merging `merged` into `survivor` would do, without doing it (the back
    office's preview; `merge_customers` checks the same): both customers as
    `customer_view` shows them, `moves` (the identifiers that go to the survivor) and
    `after` (the survivor's points and credit balances, and purchase count, once merged:
    the sums). Refused: the same profile twice (`invalid_request`), an unknown one
    (`customer_unknown`), one merged already (`customer_merged`)."""
    survivor, merged = survivor.strip(), merged.strip()
    if not survivor or not merged or survivor == merged:
        raise InvalidRequest("Merge: choose two different profiles of the same person",
                             field="merged")
    with chain.db.read() as conn:
        for cid in (survivor, merged):
            _not_merged(_customer(conn, cid))
    keep, gone = customer_view(chain, survivor), customer_view(chain, merged)
    return {"survivor": keep, "merged": gone, "moves": gone["identifiers"],
            "after": {"points_balance": keep["points_balance"] + gone["points_balance"],
                      "credit_balance": keep["credit_balance"] + gone["credit_balance"],
                      "purchases_count": keep["statistics"]["purchases_count"]
                      + gone["statistics"]["purchases_count"]}}


def merge_customers(chain: Chain, survivor: str, merged: str, by: Actor,
                    reason: str) -> dict[str, Any]:
    """Merges two profiles of one person: HQ's own `customers.merged` fact (no earlier
    fact is touched), folded by hq/projection.py (`merged`'s identifiers, points, credit
    and statistics go to `survivor`; later facts about `merged` count for `survivor`),
    audited on both customers' trails in the same transaction. A reason is required.
    Refused as `merge_preview` refuses, and nothing is recorded. The survivor's view."""
    survivor, merged = survivor.strip(), merged.strip()
    if not reason.strip():
        raise InvalidRequest("Why: a merge needs its reason (the audit trail keeps it)",
                             field="reason")
    merge_preview(chain, survivor, merged)  # the checks, with the operator's words
    with making_hq_facts(chain) as conn:
        rows = {cid: _customer(conn, cid) for cid in (survivor, merged)}
        for row in rows.values():
            _not_merged(row)  # again, inside the transaction: two operators at once
        before = {cid: tallystore.points_balance(conn, cid) for cid in rows}
        event = record_hq_fact(chain, conn, CustomersMerged(
            customer_id=survivor, merged=merged, reason=reason.strip()))
        audit.record(conn, by, "customer.merge", ("customer", merged),
                     {"merged_into": None, "points": before[merged]},
                     {"merged_into": survivor, "points": 0}, reason,
                     customer_id=merged, event_id=event.event_id)
        audit.record(conn, by, "customer.merge", ("customer", survivor),
                     {"points": before[survivor]},
                     {"merged": merged, "points": tallystore.points_balance(conn, survivor)},
                     reason, customer_id=survivor, event_id=event.event_id)
    chain.waiters.notify()
    return customer_view(chain, survivor)


def _masked(kind: str, value: str) -> str:
    """How the audit trail names an identifier: a card number by its last 4 digits."""
    return mask_card(value) if kind == "card" else value


def add_identifier(chain: Chain, customer_id: str, kind: IdentifierKind, value: str,
                   by: Actor, reason: str = "") -> None:
    """Gives the customer another identifier (a card, a key, a phone...) as HQ's own
    `identifier.added` fact, audited. One that already belongs to a customer is refused
    (Conflict, naming whose) and nothing is recorded: HQ flags such a fact from an
    outlet, but staff at HQ can be told at once."""
    with making_hq_facts(chain) as conn:
        _customer(conn, customer_id)
        owner = conn.execute("SELECT customer_id FROM identifiers WHERE kind = ? AND value = ?",
                             (kind, value)).fetchone()
        if owner is not None:
            whose = "this customer" if owner[0] == customer_id else f"customer {owner[0]}"
            raise Conflict(f"this {kind} already belongs to {whose}", field="value")
        event = record_hq_fact(chain, conn, IdentifierAdded(
            customer_id=customer_id, kind=kind, value=value))
        audit.record(conn, by, "identifier.add", (kind, _masked(kind, value)), None,
                     {"kind": kind, "value": _masked(kind, value), "status": "active"},
                     reason, customer_id=customer_id, event_id=event.event_id)
    chain.waiters.notify()


def reset_pin(chain: Chain, customer_id: str, new_pin: str, by: Actor, reason: str = "") -> None:
    """Sets a new PIN the customer chose (4 to 8 digits; a forgotten one) as HQ's own
    `pin.set` fact: only its hash is recorded and published, the audit row says "set"."""
    try:
        pin_hash = pin.hash_pin(new_pin)
    except pin.PinFormatError as exc:
        raise InvalidRequest(f"New PIN: {exc}", field="pin") from None
    with making_hq_facts(chain) as conn:
        _customer(conn, customer_id)
        event = record_hq_fact(chain, conn, PinSet(customer_id=customer_id, pin_hash=pin_hash))
        audit.record(conn, by, "customer.pin", ("customer", customer_id), None,
                     {"pin": "set"}, reason, customer_id=customer_id, event_id=event.event_id)
    chain.waiters.notify()


def edit_customer(chain: Chain, customer_id: str, changes: dict[str, Any], *,
                  by: Actor | None, reason: str = "") -> dict[str, Any]:
    """Profile and category edits made at HQ: the latest applied at HQ wins, per field.
    Made by staff (`by`), the edit is audited with each changed field before -> after (an
    edit that changes nothing records no fact and no audit row)."""
    category = changes.get("category")
    with making_hq_facts(chain) as conn:
        row = _customer(conn, customer_id)
        if category is not None and conn.execute(
                "SELECT 1 FROM master WHERE kind = 'category' AND key = ?", (category,)).fetchone() is None:
            raise InvalidRequest(f"unknown category {category!r}: choose one of the programme's "
                                 "categories", field="category")
        old = {**profile_of(row), "category": row["category"]}
        if changes.get("picture"):
            pictures.decode(changes["picture"])
        if by is not None:
            changes = {k: v for k, v in changes.items() if old.get(k) != v}
        if changes:
            event = record_hq_fact(chain, conn, CustomerUpdated(
                customer_id=customer_id, changes=Profile.model_validate(changes)))
        if changes and by is not None:
            shown = {k: v for k, v in changes.items() if k != "picture"}
            audit.record(conn, by, "customer.edit", ("customer", customer_id),
                         {k: old.get(k) for k in shown}, shown, reason,
                         customer_id=customer_id, event_id=event.event_id)
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
        merged_from = [r[0] for r in conn.execute(
            "SELECT customer_id FROM customers WHERE merged_into = ? ORDER BY customer_id",
            (customer_id,))]
    return {
        "customer_id": customer_id,
        **profile_of(row),
        "status": row["status"],
        "category": row["category"],
        "origin_outlet": row["origin_outlet"],
        "merged_into": row["merged_into"],
        "merged_from": merged_from,
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


def _valid_master(kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    if kind not in DOCS:
        raise InvalidRequest(f"unknown master data kind {kind!r} (one of {', '.join(DOCS)})")
    # strictly, as JSON (a date-time is ISO text there, `"500"` is not a number)
    valid = DOCS[kind].model_validate_json(json.dumps(doc), strict=True)
    return valid.model_dump(mode="json")


def master_change(chain: Chain, kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    """What putting `doc` would do, without doing it (the back office's preview): `key`,
    `before` (the stored document, None for a new one), `after` and `changes`, the list of
    (field, before, after) that differ. Checked as `put_master` checks it."""
    if kind == PROGRAMME:
        doc = _starting_today(chain, doc)
    after = _valid_master(kind, doc)
    key = key_of(kind, DOCS[kind].model_validate(after))
    before = master_docs(chain, kind).get(key)
    return {"key": key, "before": before, "after": after,
            "changes": audit.changes(before, after)}


def expiry_outlook(chain: Chain, rule: ExpiryRule, today: date, dates: int = 3
                   ) -> dict[str, Any]:
    """What an expiry rule would do to the points held now, unless they are spent first
    (the settings page's preview): `at_once` (points, lots) whose last valid day under the
    rule is already past (expired by the next nightly run: only a `since` set in the past
    does that) and `next`, the first `dates` expiry days after it as (day, points, lots).
    Reads every lot holding points; changes nothing."""
    by_day: dict[date, list[int]] = {}
    with chain.db.read() as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT DISTINCT customer_id FROM customer_lots WHERE points > 0")]
        held = lotstore.load_many(conn, ids)
        for customer_id, lots in held.items():
            last = tallystore.load_last_purchase(conn, customer_id)
            last_day = date.fromisoformat(last[:10]) if last else None
            for lot in lots:
                day = rule.expiry_of(lot, last_day) if lot.points > 0 else None
                if day is not None:
                    counted = by_day.setdefault(day, [0, 0])
                    counted[0] += lot.points
                    counted[1] += 1
    past = [n for day, n in by_day.items() if day < today]
    return {"at_once": (sum(n[0] for n in past), sum(n[1] for n in past)),
            "next": [(day, n[0], n[1]) for day, n in sorted(by_day.items())
                     if day >= today][:dates]}


def put_master(chain: Chain, kind: str, doc: dict[str, Any], *, by: Actor | None,
               reason: str = "") -> str:
    """Stores a master data document (it reaches every outlet as a bumped entity); made
    by staff (`by`: the back office, the admin API, the command line; None only for HQ's
    own scheduled work), audited with the document before -> after in the same
    transaction."""
    if kind == PROGRAMME:
        doc = _starting_today(chain, doc)
    valid = _valid_master(kind, doc)
    with chain.db.write() as conn:
        model = DOCS[kind].model_validate(valid)
        if isinstance(model, AnnouncementDoc):
            _check_audience(conn, model)
        if isinstance(model, ProgrammeDoc):
            _check_programme(model)
        key = key_of(kind, model)
        old = conn.execute("SELECT data FROM master WHERE kind = ? AND key = ?",
                           (kind, key)).fetchone()
        chain.put_master(conn, kind, valid)
        if by is not None:
            audit.record(conn, by, f"{kind}.put", (kind, key),
                         json.loads(old[0]) if old else None, valid, reason)
    chain.waiters.notify()
    return key


def _check_programme(doc: ProgrammeDoc) -> None:
    """Points must outlive their pending time: a rule that dates lots lasts at least 28 days
    a month, and that must be longer than the return window when points are pending, or a
    lot could expire before it can be spent (review 11, finding 10)."""
    rule = doc.expiry
    if doc.pending_days and rule.kind != "never" and 28 * rule.months <= doc.pending_days:
        raise InvalidRequest(
            f"expiry: {rule.months} month(s) may be as short as {28 * rule.months} days, not "
            f"longer than the {doc.pending_days} days points stay pending (return_window_days"
            "): points could expire before they can be spent; give more months, a shorter "
            "window, or turn pending_points off")


def _check_audience(conn: sqlite3.Connection, doc: AnnouncementDoc) -> None:
    """An announcement names a customer or a category HQ knows (a typo would show it to
    nobody, silently)."""
    if doc.customer_id is not None:
        _customer(conn, doc.customer_id)
    if doc.category is not None and conn.execute(
            "SELECT 1 FROM master WHERE kind = 'category' AND key = ?",
            (doc.category,)).fetchone() is None:
        raise InvalidRequest(f"unknown category {doc.category!r}: the announcement was not "
                             "stored")


def _starting_today(chain: Chain, doc: dict[str, Any]) -> dict[str, Any]:
    """The programme's settings with an expiry rule that says no `since` starting today:
    points already held then get the rule's whole life (docs/programme.md)."""
    rule = doc.get("expiry")
    if isinstance(rule, dict) and rule.get("kind", "never") != "never" and "since" not in rule:
        return {**doc, "expiry": {**rule, "since": chain.clock()[:10]}}
    return doc


def delete_master(chain: Chain, kind: str, key: str, *, by: Actor | None,
                  reason: str = "") -> None:
    """Withdraws a master data document at every outlet; made by staff (`by`), audited
    with the document before -> nothing."""
    with chain.db.write() as conn:
        old = conn.execute("SELECT data FROM master WHERE kind = ? AND key = ?",
                           (kind, key)).fetchone()
        if old is None:
            raise NotFound(f"no {kind} {key}")
        conn.execute("DELETE FROM master WHERE kind = ? AND key = ?", (kind, key))
        chain.bump(conn, kind, key)
        if by is not None:
            audit.record(conn, by, f"{kind}.delete", (kind, key), json.loads(old[0]), None,
                         reason)
    chain.waiters.notify()


def register_outlet(chain: Chain, outlet_id: str, by: Actor, reason: str = "") -> tuple[str, int]:
    """Registers an outlet (hq/credentials.py, as `loyalty hq outlet-add`): its token,
    to be shown once, and its card range; audited without the token."""
    with chain.db.write() as conn:
        token, card_range = credentials.add_outlet(conn, outlet_id.strip())
        audit.record(conn, by, "outlet.add", ("outlet", outlet_id.strip()), None,
                     {"card_range": card_range, "token": "set"}, reason)
    return token, card_range


def rotate_outlet_token(chain: Chain, outlet_id: str, by: Actor, reason: str = "") -> str:
    """A new token for an outlet (as `loyalty hq outlet-token`): the old one stops working
    at once; audited without either token."""
    with chain.db.write() as conn:
        token = credentials.rotate_outlet(conn, outlet_id)
        audit.record(conn, by, "outlet.token", ("outlet", outlet_id), {"token": "old"},
                     {"token": "new"}, reason)
    return token


def outlets(chain: Chain) -> list[dict[str, Any]]:
    rows = chain.db.all("SELECT outlet_id, card_range, created_at, last_seq, last_push_at, "
                        "last_pull_at, clock_offset_s, clock_measured_at FROM outlets "
                        "ORDER BY outlet_id")
    return [dict(r) for r in rows]


def resolve_flag(chain: Chain, flag_id: int, note: str = "", *, by: Actor) -> None:
    """Marks an open flag resolved; the note is kept in its detail, after the name of the
    member of staff (`[alice] refunded in cash`), and the change is audited."""
    with chain.db.write() as conn:
        old = conn.execute("SELECT customer_id, detail, resolved_at FROM flags "
                           "WHERE flag_id = ? AND resolved_at IS NULL", (flag_id,)).fetchone()
        if old is None:
            raise NotFound(f"no open flag {flag_id}")
        signed = f"[{by.username}] {note}".strip()
        conn.execute("UPDATE flags SET resolved_at = ?, detail = COALESCE(detail || ' ', '') || ? "
                     "WHERE flag_id = ?", (chain.clock(), signed, flag_id))
        new = conn.execute("SELECT detail, resolved_at FROM flags WHERE flag_id = ?",
                           (flag_id,)).fetchone()
        audit.record(conn, by, "flag.resolve", ("flag", str(flag_id)),
                     {"resolved_at": old["resolved_at"], "detail": old["detail"]},
                     {"resolved_at": new["resolved_at"], "detail": new["detail"]}, note,
                     customer_id=old["customer_id"])


# --- what the back office reads (hq/office/) -----------------------------------------------
# Each page of hq/office/ reads through these: the SQL stays beside the data it reads, and the
# figures are tested in process (tests/hq/test_admin_reads.py).

def counts(chain: Chain) -> dict[str, Any]:
    """The start page's figures, read at one moment: customers, outlets, open flags, and
    `invoices`, the number of invoices in each status but paid ({"unpaid": 3, ...})."""
    with chain.db.read() as conn:
        return {
            "customers": conn.execute("SELECT COUNT(*) FROM customers").fetchone()[0],
            "outlets": conn.execute("SELECT COUNT(*) FROM outlets").fetchone()[0],
            "open_flags": conn.execute(
                "SELECT COUNT(*) FROM flags WHERE resolved_at IS NULL").fetchone()[0],
            "invoices": dict(conn.execute("SELECT status, COUNT(*) FROM invoices "
                                          "WHERE status != 'paid' GROUP BY status").fetchall()),
        }


def _looks_like_identifier(text: str) -> bool:
    """All digits (a card, a phone), or a longer token with a digit and no space."""
    return text.isdigit() or (len(text) > 6 and not any(c.isspace() for c in text)
                              and any(c.isdigit() for c in text))


def find(chain: Chain, text: str, limit: int = 50) -> list[dict[str, Any]]:
    """The customers a person searching for `text` means: when it looks like an identifier
    (a card or phone number...), the owner of an identifier with exactly that value first;
    then those whose name starts with it (`search`). Each with its club `card` number
    (`card_numbers`; "" without one), in full: the caller masks it for display, and the
    survivor it was `merged_into` (None: not merged)."""
    wanted = text.strip()
    if not wanted:
        return []
    found: list[dict[str, Any]] = []
    if _looks_like_identifier(wanted):
        found = [dict(r) for r in chain.db.all(
            "SELECT c.customer_id, c.kind, c.given_name, c.surname, c.name, c.status, "
            "c.category FROM identifiers i JOIN customers c USING (customer_id) "
            "WHERE i.value = ? ORDER BY i.kind", (wanted,))]
    seen = {r["customer_id"] for r in found}
    found += [r for r in search(chain, wanted, limit) if r["customer_id"] not in seen]
    ids = [r["customer_id"] for r in found]
    cards = card_numbers(chain, ids)
    merged = merged_into(chain, ids)
    for r in found:
        r["card"] = cards.get(r["customer_id"], "")
        r["merged_into"] = merged.get(r["customer_id"])
    return found


def merged_into(chain: Chain, customer_ids: list[str]) -> dict[str, str]:
    """The survivor of each of these customers that was merged into another; the others
    are left out."""
    out: dict[str, str] = {}
    for chunk in _chunks(sorted(set(customer_ids))):
        marks = ",".join("?" for _ in chunk)
        for r in chain.db.all(f"SELECT customer_id, merged_into FROM customers WHERE "
                              f"merged_into IS NOT NULL AND customer_id IN ({marks})", chunk):
            out[r[0]] = r[1]
    return out


def _chunks(values: list[str], size: int = 500) -> list[list[str]]:
    """`values` in lists short enough for one `IN (?, ...)` (SQLite's parameter limit)."""
    return [values[start:start + size] for start in range(0, len(values), size)]


def card_numbers(chain: Chain, customer_ids: list[str]) -> dict[str, str]:
    """Each customer's club card number (the last in order when it has several); customers
    without one are left out."""
    out: dict[str, str] = {}
    for chunk in _chunks(sorted(set(customer_ids))):
        marks = ",".join("?" for _ in chunk)
        for r in chain.db.all(f"SELECT customer_id, value FROM identifiers WHERE kind = 'card' "
                              f"AND customer_id IN ({marks}) ORDER BY value", chunk):
            out[r[0]] = r[1]
    return out


def customer_names(chain: Chain, customer_ids: list[str]) -> dict[str, str]:
    """How each customer is addressed (`display_name`); unknown ids are left out."""
    out: dict[str, str] = {}
    for chunk in _chunks(sorted(set(customer_ids))):
        marks = ",".join("?" for _ in chunk)
        for r in chain.db.all(f"SELECT customer_id, kind, given_name, surname, name FROM "
                              f"customers WHERE customer_id IN ({marks})", chunk):
            out[r["customer_id"]] = display_name(r)
    return out


def picture(chain: Chain, customer_id: str) -> bytes | None:
    """The customer's stored picture (PNG or JPEG bytes); None without one or no such customer."""
    row = chain.db.one("SELECT picture FROM customers WHERE customer_id = ?", (customer_id,))
    return None if row is None or row[0] is None else bytes(row[0])


def has_picture(chain: Chain, customer_id: str) -> bool:
    """Whether the customer has a stored picture (without reading it)."""
    row = chain.db.one("SELECT picture IS NOT NULL FROM customers WHERE customer_id = ?",
                       (customer_id,))
    return bool(row and row[0])


# The customer and the profiles merged into it: their receipts and hand-outs are its own
# history (a merge re-points no stored row: hq/projection.py `_merged`).
_HISTORY_OF = ("(customer_id = ? OR customer_id IN "
               "(SELECT customer_id FROM customers WHERE merged_into = ?))")


def receipts(chain: Chain, customer_id: str, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """(how many sales HQ holds for the customer and the profiles merged into it, the
    latest `limit` of them, newest first, each with its `lines` in order), read at one
    moment."""
    with chain.db.read() as conn:
        total = int(conn.execute(f"SELECT COUNT(*) FROM sales WHERE {_HISTORY_OF}",
                                 (customer_id, customer_id)).fetchone()[0])
        sales = [dict(r) for r in conn.execute(
            f"SELECT * FROM sales WHERE {_HISTORY_OF} ORDER BY at DESC, sale_id LIMIT ?",
            (customer_id, customer_id, limit))]
        salestore.attach_lines(conn, sales)
    return total, sales


def handouts(chain: Chain, customer_id: str, limit: int) -> list[dict[str, Any]]:
    """The latest `limit` gift hand-outs of the customer and the profiles merged into it,
    newest first."""
    return [dict(r) for r in chain.db.all(
        f"SELECT * FROM redemptions WHERE {_HISTORY_OF} ORDER BY at DESC LIMIT ?",
        (customer_id, customer_id, limit))]


def master_docs(chain: Chain, kind: str) -> dict[str, dict[str, Any]]:
    """Every master data document of `kind` (gift, category...), by key in key order."""
    return {r[0]: json.loads(r[1]) for r in chain.db.all(
        "SELECT key, data FROM master WHERE kind = ? ORDER BY key", (kind,))}


NO_LONGER_OFFERED = "(no longer offered)"


def gift_stock(chain: Chain) -> dict[str, Any]:
    """Gift stock as the outlets' receipts, transfers and hand-outs have reached HQ:
    `outlets` (the registered ones in order, then any other that holds stock) and `rows`,
    one per gift offered or held anywhere, in SKU order: sku, name, points_cost (None for a
    gift no longer offered), per_outlet (the quantity at each of `outlets`), total."""
    gifts = master_docs(chain, "gift")
    with chain.db.read() as conn:
        outlet_ids = [r[0] for r in conn.execute("SELECT outlet_id FROM outlets ORDER BY 1")]
        held = conn.execute("SELECT outlet_id, gift_sku, qty FROM gift_stock").fetchall()
    stock: dict[str, dict[str, int]] = {}
    for r in held:
        stock.setdefault(r["gift_sku"], {})[r["outlet_id"]] = r["qty"]
        if r["outlet_id"] not in outlet_ids:
            outlet_ids.append(r["outlet_id"])
    rows = [{"sku": sku, "name": gifts.get(sku, {}).get("name", NO_LONGER_OFFERED),
             "points_cost": gifts.get(sku, {}).get("points_cost"),
             "per_outlet": [stock.get(sku, {}).get(o, 0) for o in outlet_ids],
             "total": sum(stock.get(sku, {}).values())} for sku in sorted(set(gifts) | set(stock))]
    return {"outlets": outlet_ids, "rows": rows}


def open_flags_by_outlet(chain: Chain) -> dict[str, int]:
    """How many flags are open per outlet; outlets without one are left out."""
    return {r[0]: int(r[1]) for r in chain.db.all(
        "SELECT outlet_id, COUNT(*) FROM flags WHERE resolved_at IS NULL GROUP BY outlet_id")}


def outlet_health(chain: Chain, now: datetime, stale_after_s: int) -> list[dict[str, Any]]:
    """`outlets` with how HQ last heard from each: `last_seen` (its last push or pull),
    `age_s` (seconds before `now`; None if never), `stale` (never heard from, or longer ago
    than `stale_after_s`), and its clock as HQ last measured it (docs/sync.md, "Outlet
    clocks"): `clock` (in words) and `clock_off` (over the chain's tolerance)."""
    tolerance = chain.clock_tolerance_s
    out = []
    for o in outlets(chain):
        seen = max(filter(None, (o["last_push_at"], o["last_pull_at"])), default=None)
        age = None if seen is None else int((now - datetime.fromisoformat(seen)).total_seconds())
        offset = o["clock_offset_s"]
        clock = {"clock": "not measured", "clock_off": False} if offset is None else {
            "clock": timing.describe_offset(offset, tolerance), "clock_off": abs(offset) > tolerance}
        out.append({**o, "last_seen": seen, "age_s": age,
                    "stale": age is None or age > stale_after_s, **clock})
    return out


def outlets_needing_care_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`outlet_health` rows with those that need someone first: stale ones (longest out of
    touch first, never heard from before all), then clocks off, then the rest by id."""
    def order(r: dict[str, Any]) -> tuple[int, int, str]:
        if r["stale"]:
            return (0, -(r["age_s"] if r["age_s"] is not None else 10**12), r["outlet_id"])
        return (1 if r["clock_off"] else 2, 0, r["outlet_id"])
    return sorted(rows, key=order)
