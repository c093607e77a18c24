"""HQ's side of push: folding outlets' facts into the chain-wide ledger, exactly once.

Promises (DESIGN.md invariants 2, 5, 7, 8):
- a batch is checked whole before anything is applied: protocol version, the caller's
  outlet on the batch and on every event, known event types and versions, bodies that
  parse, sequences in order; any failure refuses the batch and changes nothing;
- new events are applied in local sequence order, each with its dedupe row and the
  outlet's `last_seq`, in ONE transaction; an event seen before is `duplicate`; a gap
  stops the batch there (`acked_through` says where to resume);
- a fact is never rejected: what looks wrong (overspent points, an unknown customer) is
  applied and `flagged` for review;
- HQ orders by its own sequence (`hq_seq`), never by outlet clocks.
Must never: apply an event twice, apply part of a refused batch, or let an outlet speak
for another.
"""

from __future__ import annotations

import sqlite3

from hq.chain import Chain
from schema import tallystore
from schema.customerstore import put_identifier, upsert_customer
from schema.errors import Conflict, OutletMismatch, ProtocolError
from schema.events import (
    Body,
    CreditRepaid,
    CustomerRegistered,
    CustomerStatusChanged,
    CustomerUpdated,
    Event,
    GiftRedeemed,
    IdentifierAdded,
    IdentifierStatusChanged,
    PinSet,
    SaleRecorded,
    StockMoved,
    utc_now,
)
from schema.ledger import Tally, tally_of
from schema.sync import ACCEPTED, EventResult, PushRequest, PushResponse


class SyncGap(Conflict):
    code = "sync_gap"


class SeqReused(Conflict):
    code = "seq_reused"


Verdict = tuple[str, str | None]


def push(chain: Chain, outlet_id: str, request: PushRequest) -> PushResponse:
    bodies = _check(outlet_id, request)
    results: list[EventResult] = []
    with chain.db.write() as conn:
        last = int(conn.execute("SELECT last_seq FROM outlets WHERE outlet_id = ?",
                                (outlet_id,)).fetchone()[0])
        for event, body in zip(request.events, bodies, strict=True):
            if event.seq <= last:
                results.append(_seen(conn, event))
                continue
            if event.seq != last + 1:
                if not results:
                    raise SyncGap(f"expected event {last + 1}, got {event.seq}: resend from there",
                                  outlet=outlet_id, expected=last + 1)
                break
            hq_seq = _record(conn, event)
            verdict, reason = _apply(chain, conn, event, body, hq_seq)
            if verdict == "flagged":
                _flag(conn, event, hq_seq, reason or "")
            results.append(EventResult(event_id=event.event_id, seq=event.seq,
                                       result=verdict, reason=reason))
            last = event.seq
        conn.execute("UPDATE outlets SET last_seq = ?, last_push_at = ? WHERE outlet_id = ?",
                     (last, utc_now(), outlet_id))
    chain.waiters.notify()
    return PushResponse(epoch=chain.epoch, acked_through=last, results=results)


def _check(outlet_id: str, request: PushRequest) -> list[Body]:
    if request.protocol not in ACCEPTED:
        raise ProtocolError(f"protocol {request.protocol} not understood (HQ speaks {sorted(ACCEPTED)})")
    if request.outlet_id != outlet_id:
        raise OutletMismatch(f"this token belongs to outlet {outlet_id}", outlet=request.outlet_id)
    previous = 0
    bodies = []
    for event in request.events:
        if event.outlet_id != outlet_id:
            raise OutletMismatch(f"event {event.event_id} claims outlet {event.outlet_id}",
                                 outlet=outlet_id)
        if event.seq <= previous:
            raise ProtocolError("events must be in increasing sequence order", seq=event.seq)
        previous = event.seq
        bodies.append(event.parsed())
    return bodies


def _seen(conn: sqlite3.Connection, event: Event) -> EventResult:
    row = conn.execute("SELECT event_id FROM events WHERE outlet_id = ? AND seq = ?",
                       (event.outlet_id, event.seq)).fetchone()
    if row is None or row[0] != event.event_id:
        raise SeqReused(f"sequence {event.seq} was used by another event: was the outlet's "
                        "database replaced? (see docs/sync.md, outlet restore)", seq=event.seq)
    return EventResult(event_id=event.event_id, seq=event.seq, result="duplicate")


def _record(conn: sqlite3.Connection, event: Event) -> int:
    """Stores the fact in the chain-wide ledger; returns its HQ sequence."""
    try:
        cur = conn.execute(
            "INSERT INTO events (event_id, outlet_id, seq, type, version, customer_id, at,"
            " received_at, event, result) VALUES (?,?,?,?,?,?,?,?,?,'applied')",
            (event.event_id, event.outlet_id, event.seq, event.type, event.version,
             event.customer_id, event.at, utc_now(), event.model_dump_json()))
    except sqlite3.IntegrityError as exc:
        raise ProtocolError(f"event id {event.event_id} was already used") from exc
    return int(cur.lastrowid or 0)


def _flag(conn: sqlite3.Connection, event: Event, hq_seq: int, reason: str) -> None:
    conn.execute("UPDATE events SET result = 'flagged', reason = ? WHERE hq_seq = ?",
                 (reason, hq_seq))
    conn.execute("INSERT INTO flags (event_id, customer_id, outlet_id, reason, at) "
                 "VALUES (?, ?, ?, ?, ?)",
                 (event.event_id, event.customer_id, event.outlet_id, reason, utc_now()))


def _customer_exists(conn: sqlite3.Connection, customer_id: str) -> bool:
    return conn.execute("SELECT 1 FROM customers WHERE customer_id = ?",
                        (customer_id,)).fetchone() is not None


def _apply(chain: Chain, conn: sqlite3.Connection, event: Event, body: Body,
           hq_seq: int) -> Verdict:
    """Folds one fact into HQ's state; returns (applied|flagged, reason)."""
    if isinstance(body, CustomerRegistered):
        return _registered(chain, conn, event, body)
    if isinstance(body, CustomerStatusChanged):
        return "flagged", "outlets cannot change a customer's status; ignored"
    if isinstance(body, IdentifierStatusChanged):
        row = conn.execute("SELECT customer_id FROM identifiers WHERE kind = ? AND value = ?",
                           (body.kind, body.value)).fetchone()
        if row is None:
            return "flagged", "unknown identifier"
        conn.execute("UPDATE identifiers SET status = ? WHERE kind = ? AND value = ?",
                     (body.status, body.kind, body.value))
        chain.bump(conn, "customer", row[0], urgent=body.status != "active")
        return "applied", None
    customer_id = event.customer_id or ""
    known = _customer_exists(conn, customer_id)
    verdict: Verdict = ("applied", None) if known else ("flagged", "unknown customer")
    if isinstance(body, CustomerUpdated) and known:
        upsert_customer(conn, customer_id, body.changes.model_dump(exclude_none=True), "")
    elif isinstance(body, IdentifierAdded) and known:
        try:
            put_identifier(conn, customer_id, body.kind, body.value, body.status)
        except Conflict:
            verdict = ("flagged", f"{body.kind} already belongs to another customer")
    elif isinstance(body, PinSet) and known:
        conn.execute("UPDATE customers SET pin_hash = ? WHERE customer_id = ?",
                     (body.pin_hash, customer_id))
    elif isinstance(body, SaleRecorded):
        _project_sale(conn, event, body, hq_seq)
    elif isinstance(body, GiftRedeemed):
        conn.execute("INSERT INTO redemptions (redemption_id, hq_seq, outlet_id, customer_id,"
                     " gift_sku, gift_name, qty, points_spent, at) VALUES (?,?,?,?,?,?,?,?,?)",
                     (body.redemption_id, hq_seq, event.outlet_id, customer_id, body.gift_sku,
                      body.gift_name, body.qty, body.points_spent, event.at))
        _move_stock(conn, event.outlet_id, body.gift_sku, -body.qty)
    elif isinstance(body, CreditRepaid) and body.invoice_id:
        via = "bank" if event.outlet_id == HQ_OUTLET else "till"
        _pay_invoice(chain, conn, body.invoice_id, body.amount, event.at[:10], via, None)
    elif isinstance(body, StockMoved):
        _move_stock(conn, event.outlet_id, body.gift_sku, body.qty)
        return "applied", None
    delta = tally_of(body, event.at)
    if customer_id and delta != Tally():
        tallystore.add(conn, customer_id, delta)
        if tallystore.points_balance(conn, customer_id) < 0 and delta.points_used:
            verdict = ("flagged", "points overspent: balance below zero")
    if known and event.type != "visit.recorded":
        chain.bump(conn, "customer", customer_id)
    return verdict


def _registered(chain: Chain, conn: sqlite3.Connection, event: Event,
                body: CustomerRegistered) -> Verdict:
    if _customer_exists(conn, body.customer_id):
        return "flagged", "customer registered twice"
    upsert_customer(conn, body.customer_id, body.profile.model_dump(exclude_none=True),
                    created_at=event.at, origin=event.outlet_id)
    verdict: Verdict = ("applied", None)
    try:
        put_identifier(conn, body.customer_id, "card", body.card_number, "active")
    except Conflict:
        verdict = ("flagged", "card number already issued to another customer")
    chain.bump(conn, "customer", body.customer_id)
    return verdict


def _project_sale(conn: sqlite3.Connection, event: Event, sale: SaleRecorded,
                  hq_seq: int) -> None:
    credit = sum(p.amount for p in sale.payments if p.mode == "credit")
    conn.execute(
        "INSERT INTO sales (sale_id, hq_seq, outlet_id, customer_id, till_id, at, total_gross,"
        " total_discount, total_net, points_earned, paid_credit) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (sale.sale_id, hq_seq, event.outlet_id, sale.customer_id, sale.till_id, event.at,
         sale.total_gross, sale.total_discount, sale.total_net, sale.points_earned, credit))
    conn.executemany(
        "INSERT INTO sale_lines (sale_id, line_no, sku, name, division, qty, unit_price, gross,"
        " discount, net) VALUES (?,?,?,?,?,?,?,?,?,?)",
        [(sale.sale_id, i, ln.sku, ln.name, ln.division, ln.qty, ln.unit_price, ln.gross,
          ln.discount, ln.net) for i, ln in enumerate(sale.lines)])


def _move_stock(conn: sqlite3.Connection, outlet_id: str, sku: str, qty: int) -> None:
    conn.execute("INSERT INTO gift_stock (outlet_id, gift_sku, qty) VALUES (?, ?, ?) "
                 "ON CONFLICT (outlet_id, gift_sku) DO UPDATE SET qty = qty + excluded.qty",
                 (outlet_id, sku, qty))


HQ_OUTLET = "HQ"


def record_hq_fact(chain: Chain, conn: sqlite3.Connection, body: Body) -> Event:
    """A fact made at HQ itself (a bank payment, a points correction): numbered in HQ's
    own sequence under outlet id "HQ" and folded like any outlet's fact."""
    from schema.events import make_event

    seq = int(conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE outlet_id = ?",
                           (HQ_OUTLET,)).fetchone()[0])
    event = make_event(HQ_OUTLET, seq, body)
    hq_seq = _record(conn, event)
    verdict, reason = _apply(chain, conn, event, body, hq_seq)
    if verdict == "flagged":
        _flag(conn, event, hq_seq, reason or "")
    return event


def _pay_invoice(chain: Chain, conn: sqlite3.Connection, invoice_id: str, amount: int,
                 paid_on: str, via: str, reference: str | None) -> None:
    row = conn.execute("SELECT amount, paid_amount FROM invoices WHERE invoice_id = ?",
                       (invoice_id,)).fetchone()
    if row is None:
        return
    paid = row["paid_amount"] + amount
    conn.execute(
        "UPDATE invoices SET paid_amount = ?, paid_via = ?, bank_reference = COALESCE(?, bank_reference),"
        " paid_on = CASE WHEN ? >= amount THEN ? ELSE paid_on END,"
        " status = CASE WHEN ? >= amount THEN 'paid' ELSE status END WHERE invoice_id = ?",
        (paid, via, reference, paid, paid_on, paid, invoice_id))
    chain.bump(conn, "invoice", invoice_id)


def flags(chain: Chain, open_only: bool = True) -> list[dict[str, object]]:
    where = "WHERE resolved_at IS NULL" if open_only else ""
    return [dict(r) for r in chain.db.all(f"SELECT * FROM flags {where} ORDER BY flag_id")]

