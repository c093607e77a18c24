"""HQ's side of push: folding outlets' facts into the chain-wide ledger, exactly once.

Promises (docs/design.md invariants 2, 5, 7, 8):
- a batch is checked whole before anything is applied: protocol version, the caller's
  outlet on the batch and on every event, known event types and versions, bodies that
  parse, sequences in order; any failure refuses the batch and changes nothing;
- new events are applied in local sequence order, each with its dedupe row and the
  outlet's `last_seq`, in ONE transaction; an event seen before is `duplicate`; a gap
  stops the batch there (`acked_through` says where to resume);
- a fact is never rejected: what looks wrong (overspent points, an unknown customer) is
  applied and `flagged` for review;
- HQ orders by its own sequence (`hq_seq`), never by outlet clocks; a fact is placed in
  periods by its booking time (schema/timing.py: the outlet's stamp when plausible, HQ's
  receive time otherwise, then flagged), the stamp kept as sent in the ledger; each push's
  `sent_at` measures the outlet's clock (hq/clocks.py), in the same transaction.
Must never: apply an event twice, apply part of a refused batch, or let an outlet speak
for another.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from hq import clocks
from hq.chain import Chain
from schema import tallystore, typedpush
from schema.customerstore import put_identifier, upsert_customer
from schema.errors import (
    Conflict,
    LoyaltyError,
    OutletMismatch,
    ProtocolError,
    SeqReused,
    SyncGap,
)
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
    tally_of,
)
from schema.ledger import Tally
from schema.money import money
from schema.sync import ACCEPTED, EventResult, PushRequest, PushResponse
from schema.timing import Booker
from schema.typedpush import TypedEvent, TypedPushRequest

log = logging.getLogger(__name__)



Verdict = tuple[str, str | None]
Envelope = Event | TypedEvent  # both carry the envelope fields
Bump = Callable[[sqlite3.Connection, str, str, bool], object]  # Chain.bump's shape

APPLIED: Verdict = ("applied", None)
UNKNOWN_CUSTOMER: Verdict = ("flagged", "unknown customer")
OVERSPENT: Verdict = ("flagged", "points overspent: balance below zero")
HQ_OUTLET = "HQ"
STATUS_IGNORED: Verdict = ("flagged", "outlets cannot change a customer's status; ignored")


# --- entry points ---------------------------------------------------------------------------


def push(chain: Chain, outlet_id: str, request: PushRequest, *,
         batched: bool = True) -> PushResponse:
    """A push already parsed as `PushRequest` (the modem link, tests); each body is
    validated here. `batched=False` applies event by event (the reference the batched
    projection is tested against)."""
    bodies = _check(outlet_id, request)
    return _push(chain, outlet_id, request.events, bodies, batched, request.sent_at)


def push_json(chain: Chain, outlet_id: str, raw: bytes) -> PushResponse:
    """A push as it came over HTTP: parsed once, envelopes and typed bodies together.
    Anything that does not parse that way goes the reference way (`PushRequest`, then
    `Event.parsed()` per event), so a refusal is exactly the one it always was."""
    try:
        request = typedpush.parse(raw)
    except ValueError:
        try:
            batch = PushRequest.model_validate_json(raw)
        except ValueError as exc:
            raise ProtocolError(f"malformed push batch: {str(exc).splitlines()[0]}") from exc
        return push(chain, outlet_id, batch)
    _check_envelopes(outlet_id, request)
    return _push(chain, outlet_id, request.events, [e.body for e in request.events], True,
                 request.sent_at)


# --- checks ---------------------------------------------------------------------------------


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


def _check_envelopes(outlet_id: str, request: TypedPushRequest) -> None:
    """`_check` for a typed request: the same checks in the same order (bodies parsed)."""
    if request.protocol not in ACCEPTED:
        raise ProtocolError(f"protocol {request.protocol} not understood (HQ speaks {sorted(ACCEPTED)})")
    if request.outlet_id != outlet_id:
        raise OutletMismatch(f"this token belongs to outlet {outlet_id}", outlet=request.outlet_id)
    previous = 0
    for event in request.events:
        if event.outlet_id != outlet_id:
            raise OutletMismatch(f"event {event.event_id} claims outlet {event.outlet_id}",
                                 outlet=outlet_id)
        if event.seq <= previous:
            raise ProtocolError("events must be in increasing sequence order", seq=event.seq)
        previous = event.seq


def _stored(event: Envelope) -> str:
    if isinstance(event, TypedEvent):
        return event.stored_json()
    return event.model_dump_json()


# --- one push: dedupe, gap, then the new events in one transaction --------------------------


def _push(chain: Chain, outlet_id: str, events: Sequence[Envelope], bodies: Sequence[Body],
          batched: bool, sent_at: str | None) -> PushResponse:
    results: list[EventResult] = []
    received, tolerance = chain.clock(), chain.clock_tolerance_s
    with chain.db.write() as conn:
        last, registered = conn.execute("SELECT last_seq, created_at FROM outlets WHERE "
                                        "outlet_id = ?", (outlet_id,)).fetchone()
        last = int(last)
        # sequences increase (checked), so what HQ has seen is a prefix of the batch...
        first = 0
        while first < len(events) and events[first].seq <= last:
            results.append(_seen(conn, events[first]))
            first += 1
        # ...and what it applies is the contiguous run after it; a gap stops the batch there
        stop = first
        while stop < len(events) and events[stop].seq == last + 1 + (stop - first):
            stop += 1
        if stop == first < len(events) and not results:
            raise SyncGap(f"expected event {last + 1}, got {events[first].seq}: resend from there",
                          outlet=outlet_id, expected=last + 1)
        new, new_bodies = events[first:stop], bodies[first:stop]
        redated = 0
        if new:
            booker = Booker(received, registered, tolerance)
            verdicts, redated = _apply_new(chain, conn, new, new_bodies, batched, booker)
            results.extend(EventResult(event_id=e.event_id, seq=e.seq, result=v, reason=r)
                           for e, (v, r) in zip(new, verdicts, strict=True))
            last = new[-1].seq
        conn.execute("UPDATE outlets SET last_seq = ?, last_push_at = ? WHERE outlet_id = ?",
                     (last, received, outlet_id))
        offset = clocks.settle(conn, outlet_id, sent_at, received, tolerance, redated)
    chain.waiters.notify()
    return PushResponse(epoch=chain.epoch, acked_through=last, results=results,
                        clock_offset_s=offset,
                        clock_tolerance_s=None if offset is None else tolerance)


def _apply_new(chain: Chain, conn: sqlite3.Connection, events: Sequence[Envelope],
               bodies: Sequence[Body], batched: bool,
               booker: Booker) -> tuple[list[Verdict], int]:
    """Records and applies new events, in order; returns their verdicts and how many were
    booked at HQ's receive time. The batched projection is tried first inside a savepoint;
    if it fails (a reused event id, a duplicate sale id...) it is undone and the events go
    one by one, which gives the exact refusal of the reference."""
    if batched:
        conn.execute("SAVEPOINT ingest_batch")
        try:
            done = _apply_batch(conn, events, bodies, booker)
        except (sqlite3.Error, LoyaltyError) as exc:
            log.info("batched ingest failed (%s): applying event by event", exc)
            conn.execute("ROLLBACK TO ingest_batch")
        else:
            conn.execute("RELEASE ingest_batch")
            return done
        conn.execute("RELEASE ingest_batch")
    verdicts = []
    redated = 0
    for event, body in zip(events, bodies, strict=True):
        booked, late = booker(event.at)
        hq_seq = _record(conn, event, _stored(event), booker.received, booked)
        verdict = _apply(chain, conn, event, body, hq_seq, booked)
        final = _timed(verdict, late)
        if final[0] == "flagged":
            _flag(conn, event, hq_seq, final[1] or "", booker.received,
                  review=verdict[0] == "flagged")
        redated += late is not None
        verdicts.append(final)
    return verdicts, redated


def _timed(verdict: Verdict, late: str | None) -> Verdict:
    """The verdict with why the fact's stamp was not used, if it was not: flagged for that
    reason in the ledger; the review is one flag per outlet (hq/clocks.py)."""
    if late is None:
        return verdict
    if verdict[0] == "flagged":
        return "flagged", f"{verdict[1]}; {late}"
    return "flagged", late


def _seen(conn: sqlite3.Connection, event: Envelope) -> EventResult:
    row = conn.execute("SELECT event_id FROM events WHERE outlet_id = ? AND seq = ?",
                       (event.outlet_id, event.seq)).fetchone()
    if row is None or row[0] != event.event_id:
        raise SeqReused(f"sequence {event.seq} was used by another event: the outlet's database "
                        "went back (restored?); it renumbers its newer facts and pushes again",
                        seq=event.seq)
    return EventResult(event_id=event.event_id, seq=event.seq, result="duplicate")


# --- the batched projection -----------------------------------------------------------------


class _Acc:
    """A customer's tally delta over a batch, combined as `Tally.combine` does, mutably."""

    SUMMED = ("purchases_total", "purchases_count", "items_count", "points_earned",
              "points_used", "discount_total", "paid_cash", "paid_card", "paid_credit",
              "credit_repaid", "gifts_count")
    __slots__ = (*SUMMED, "last_purchase_at", "best_purchase_total", "best_purchase_id",
                 "items", "gifts")

    def __init__(self) -> None:
        self.purchases_total = self.purchases_count = self.items_count = 0
        self.points_earned = self.points_used = self.discount_total = 0
        self.paid_cash = self.paid_card = self.paid_credit = 0
        self.credit_repaid = self.gifts_count = 0
        self.last_purchase_at = ""
        self.best_purchase_total = 0
        self.best_purchase_id = ""
        self.items: dict[str, list[Any]] = {}  # sku -> [name, qty, max_unit_price]
        self.gifts: dict[str, int] = {}

    def add_sale(self, sale: SaleRecorded, at: str) -> None:
        """+ tally_of(sale, at), without building it (schema.ledger._sale_tally)."""
        self.purchases_total += sale.total_net
        self.purchases_count += 1
        self.points_earned += sale.points_earned
        self.discount_total += sale.total_discount
        for payment in sale.payments:
            if payment.mode == "cash":
                self.paid_cash += payment.amount
            elif payment.mode == "card":
                self.paid_card += payment.amount
            else:
                self.paid_credit += payment.amount
        items = self.items
        for line in sale.lines:
            self.items_count += line.qty
            item = items.get(line.sku)
            if item is None:
                items[line.sku] = [line.name, line.qty, line.unit_price]
            else:
                item[1] += line.qty
                if (line.unit_price, line.name) > (item[2], item[0]):
                    item[0], item[2] = line.name, line.unit_price
        self.last_purchase_at = max(self.last_purchase_at, at)
        self.best_purchase_total, self.best_purchase_id = max(
            (self.best_purchase_total, self.best_purchase_id), (sale.total_net, sale.sale_id))

    def add(self, delta: Tally) -> None:
        """+ any delta (Tally.combine)."""
        for name in self.SUMMED:
            setattr(self, name, getattr(self, name) + getattr(delta, name))
        self.last_purchase_at = max(self.last_purchase_at, delta.last_purchase_at)
        self.best_purchase_total, self.best_purchase_id = max(
            (self.best_purchase_total, self.best_purchase_id),
            (delta.best_purchase_total, delta.best_purchase_id))
        for sku, t in delta.items.items():
            item = self.items.get(sku)
            if item is None:
                self.items[sku] = [t.name, t.qty, t.max_unit_price]
            else:
                item[1] += t.qty
                item[2], item[0] = max((item[2], item[0]), (t.max_unit_price, t.name))
        for sku, qty in delta.gifts.items():
            self.gifts[sku] = self.gifts.get(sku, 0) + qty


if sorted(_Acc.SUMMED) != sorted(tallystore.SUMMED):  # a new Tally figure must be summed here too
    raise RuntimeError("hq.ingest._Acc is out of step with schema.ledger.Tally")


class _Bumps:
    """Change-log bumps deferred to the end of the batch: each entity once, in the order
    of its last change, with that change's urgency (the batch commits as one, so no pull
    could have seen the earlier ones)."""

    def __init__(self) -> None:
        self.order: dict[tuple[str, str], bool] = {}

    def __call__(self, conn: sqlite3.Connection, kind: str, key: str, urgent: bool = False) -> None:
        self.order.pop((kind, key), None)
        self.order[(kind, key)] = urgent

    def flush(self, conn: sqlite3.Connection) -> None:
        if self.order:
            Chain.bump_many(conn, ((kind, key, urgent) for (kind, key), urgent in self.order.items()))


def _existing(conn: sqlite3.Connection, customer_ids: set[str]) -> set[str]:
    ids = sorted(customer_ids)
    found: set[str] = set()
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        found.update(r[0] for r in conn.execute(
            f"SELECT customer_id FROM customers WHERE customer_id IN ({','.join('?' * len(chunk))})",
            chunk))
    return found


def _apply_batch(conn: sqlite3.Connection, events: Sequence[Envelope],
                 bodies: Sequence[Body], booker: Booker) -> tuple[list[Verdict], int]:
    """Records and applies new events with set-based SQL; the same state and verdicts as
    `_record` + `_apply` + `_flag` event by event (tests/hq/test_ingest_batch.py).

    Facts that change customers and identifiers (registrations, profile, identifiers,
    PINs, invoice payments) are written in order as they come: the events after them read
    what they wrote. What only adds up (events, sales and lines, redemptions, tallies,
    gift stock, the change log, flags) is combined per key in memory and written once per
    batch with executemany: nothing in the batch reads those tables, except the overspent
    check, which follows each redeeming customer's balance in event order in memory."""
    now = booker.received
    redated = 0
    base = int(conn.execute("SELECT COALESCE(MAX(hq_seq), 0) FROM events").fetchone()[0])
    wanted = {e.customer_id or "" for e in events}
    wanted.update(b.customer_id for b in bodies if isinstance(b, CustomerRegistered))
    known = _existing(conn, wanted)
    bump = _Bumps()
    accs: dict[str, _Acc] = {}
    net: dict[str, int] = {}  # points earned - used per customer so far in this batch
    balance0: dict[str, int] = {}  # stored balances of customers who redeem in this batch
    sales: list[tuple[Any, ...]] = []
    lines: list[tuple[Any, ...]] = []
    redemptions: list[tuple[Any, ...]] = []
    stock: dict[tuple[str, str], int] = {}
    rows: list[tuple[Any, ...]] = []
    flags: list[tuple[Any, ...]] = []
    verdicts: list[Verdict] = []

    for k, (event, body) in enumerate(zip(events, bodies, strict=True)):
        hq_seq = base + 1 + k
        customer_id = event.customer_id or ""
        at, late = booker(event.at)
        verdict: Verdict
        if isinstance(body, SaleRecorded):  # the hot path: tally_of + _project_sale inline
            verdict = APPLIED if customer_id in known else UNKNOWN_CUSTOMER
            credit = 0
            for p in body.payments:
                if p.mode == "credit":
                    credit += p.amount
            sales.append((body.sale_id, hq_seq, event.outlet_id, body.customer_id, body.till_id,
                          at, body.total_gross, body.total_discount, body.total_net,
                          body.points_earned, credit))
            sale_id = body.sale_id
            lines += [(sale_id, i, ln.sku, ln.name, ln.division, ln.qty, ln.unit_price,
                       ln.gross, ln.discount, ln.net) for i, ln in enumerate(body.lines)]
            if customer_id:
                acc = accs.get(customer_id)
                if acc is None:
                    acc = accs[customer_id] = _Acc()
                acc.add_sale(body, at)
                net[customer_id] = net.get(customer_id, 0) + body.points_earned
            if customer_id in known:
                bump(conn, "customer", customer_id, False)
        elif isinstance(body, CustomerRegistered):
            verdict = _registered(bump, conn, event, body, at)
            known.add(body.customer_id)
        elif isinstance(body, CustomerStatusChanged):
            verdict = _status(bump, conn, event, body)
        elif isinstance(body, IdentifierStatusChanged):
            verdict = _identifier_status(bump, conn, event, body)
        else:
            is_known = customer_id in known
            verdict = APPLIED if is_known else UNKNOWN_CUSTOMER
            if isinstance(body, CustomerUpdated | IdentifierAdded | PinSet):
                if is_known:
                    verdict = _customer_fact(conn, customer_id, body, verdict)
            elif isinstance(body, GiftRedeemed):
                redemptions.append((body.redemption_id, hq_seq, event.outlet_id, customer_id,
                                    body.gift_sku, body.gift_name, body.qty, body.points_spent,
                                    at))
                key = (event.outlet_id, body.gift_sku)
                stock[key] = stock.get(key, 0) - body.qty
            elif isinstance(body, CreditRepaid) and body.invoice_id:
                via = "bank" if event.outlet_id == HQ_OUTLET else "till"
                verdict = _pay_invoice(bump, conn, body.invoice_id, body.amount, at[:10],
                                       via, None) or verdict
            elif isinstance(body, StockMoved):
                key = (event.outlet_id, body.gift_sku)
                stock[key] = stock.get(key, 0) + body.qty
                verdict = APPLIED
            if not isinstance(body, StockMoved):
                delta = tally_of(body, at)
                if customer_id and delta != Tally():
                    acc = accs.get(customer_id)
                    if acc is None:
                        acc = accs[customer_id] = _Acc()
                    acc.add(delta)
                    now_net = net.get(customer_id, 0) + delta.points_earned - delta.points_used
                    net[customer_id] = now_net
                    if delta.points_used:
                        if customer_id not in balance0:
                            balance0[customer_id] = tallystore.points_balance(conn, customer_id)
                        if balance0[customer_id] + now_net < 0:
                            verdict = OVERSPENT
                if is_known and event.type != "visit.recorded":
                    bump(conn, "customer", customer_id, False)
        final = _timed(verdict, late)
        redated += late is not None
        verdicts.append(final)
        result, reason = final
        rows.append((hq_seq, event.event_id, event.outlet_id, event.seq, event.type,
                     event.version, event.customer_id, event.at, now, _stored(event), result,
                     reason, at))
        if verdict[0] == "flagged":
            flags.append((event.event_id, event.customer_id, event.outlet_id, reason or "", now))

    conn.executemany(
        "INSERT INTO events (hq_seq, event_id, outlet_id, seq, type, version, customer_id, at,"
        " received_at, event, result, reason, booked_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        rows)
    if sales:
        conn.executemany(
            "INSERT INTO sales (sale_id, hq_seq, outlet_id, customer_id, till_id, at,"
            " total_gross, total_discount, total_net, points_earned, paid_credit)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)", sales)
        conn.executemany(
            "INSERT INTO sale_lines (sale_id, line_no, sku, name, division, qty, unit_price,"
            " gross, discount, net) VALUES (?,?,?,?,?,?,?,?,?,?)", lines)
    if redemptions:
        conn.executemany(
            "INSERT INTO redemptions (redemption_id, hq_seq, outlet_id, customer_id, gift_sku,"
            " gift_name, qty, points_spent, at) VALUES (?,?,?,?,?,?,?,?,?)", redemptions)
    if stock:
        conn.executemany(
            "INSERT INTO gift_stock (outlet_id, gift_sku, qty) VALUES (?, ?, ?) "
            "ON CONFLICT (outlet_id, gift_sku) DO UPDATE SET qty = qty + excluded.qty",
            [(outlet, sku, qty) for (outlet, sku), qty in stock.items()])
    if accs:  # in key order: neighbouring upserts land on the same b-tree pages
        columns = tallystore.COLUMNS
        ordered = sorted(accs.items())
        tallystore.add_rows(
            conn,
            [[cid, *(getattr(acc, c) for c in columns)] for cid, acc in ordered],
            [(cid, sku, item[0], item[1], item[2])
             for cid, acc in ordered for sku, item in sorted(acc.items.items())],
            [(cid, sku, qty) for cid, acc in ordered for sku, qty in sorted(acc.gifts.items())])
    bump.flush(conn)
    if flags:
        conn.executemany("INSERT INTO flags (event_id, customer_id, outlet_id, reason, at) "
                         "VALUES (?, ?, ?, ?, ?)", flags)
    return verdicts, redated


# --- one event at a time (the reference; HQ's own facts) ------------------------------------


def _record(conn: sqlite3.Connection, event: Envelope, stored: str, received: str,
            booked: str) -> int:
    """Stores the fact in the chain-wide ledger; returns its HQ sequence."""
    try:
        cur = conn.execute(
            "INSERT INTO events (event_id, outlet_id, seq, type, version, customer_id, at,"
            " received_at, event, result, booked_at) VALUES (?,?,?,?,?,?,?,?,?,'applied',?)",
            (event.event_id, event.outlet_id, event.seq, event.type, event.version,
             event.customer_id, event.at, received, stored, booked))
    except sqlite3.IntegrityError as exc:
        raise ProtocolError(f"event id {event.event_id} was already used") from exc
    return int(cur.lastrowid or 0)


def _flag(conn: sqlite3.Connection, event: Envelope, hq_seq: int, reason: str, at: str,
          review: bool = True) -> None:
    """The fact's ledger row says flagged and why; `review`: a flag of its own too (not for
    a stamp alone: that is the outlet's one clock flag)."""
    conn.execute("UPDATE events SET result = 'flagged', reason = ? WHERE hq_seq = ?",
                 (reason, hq_seq))
    if review:
        conn.execute("INSERT INTO flags (event_id, customer_id, outlet_id, reason, at) "
                     "VALUES (?, ?, ?, ?, ?)",
                     (event.event_id, event.customer_id, event.outlet_id, reason, at))


def _customer_exists(conn: sqlite3.Connection, customer_id: str) -> bool:
    return conn.execute("SELECT 1 FROM customers WHERE customer_id = ?",
                        (customer_id,)).fetchone() is not None


def _apply(chain: Chain, conn: sqlite3.Connection, event: Envelope, body: Body,
           hq_seq: int, at: str) -> Verdict:
    """Folds one fact, booked at `at`, into HQ's state; returns (applied|flagged, reason)."""
    bump = chain.bump
    if isinstance(body, CustomerRegistered):
        return _registered(bump, conn, event, body, at)
    if isinstance(body, CustomerStatusChanged):
        return _status(bump, conn, event, body)
    if isinstance(body, IdentifierStatusChanged):
        return _identifier_status(bump, conn, event, body)
    customer_id = event.customer_id or ""
    known = _customer_exists(conn, customer_id)
    verdict: Verdict = APPLIED if known else UNKNOWN_CUSTOMER
    if isinstance(body, CustomerUpdated | IdentifierAdded | PinSet):
        if known:
            verdict = _customer_fact(conn, customer_id, body, verdict)
    elif isinstance(body, SaleRecorded):
        _project_sale(conn, event, body, hq_seq, at)
    elif isinstance(body, GiftRedeemed):
        conn.execute("INSERT INTO redemptions (redemption_id, hq_seq, outlet_id, customer_id,"
                     " gift_sku, gift_name, qty, points_spent, at) VALUES (?,?,?,?,?,?,?,?,?)",
                     (body.redemption_id, hq_seq, event.outlet_id, customer_id, body.gift_sku,
                      body.gift_name, body.qty, body.points_spent, at))
        _move_stock(conn, event.outlet_id, body.gift_sku, -body.qty)
    elif isinstance(body, CreditRepaid) and body.invoice_id:
        via = "bank" if event.outlet_id == HQ_OUTLET else "till"
        verdict = _pay_invoice(bump, conn, body.invoice_id, body.amount, at[:10], via,
                               None) or verdict
    elif isinstance(body, StockMoved):
        _move_stock(conn, event.outlet_id, body.gift_sku, body.qty)
        return APPLIED
    delta = tally_of(body, at)
    if customer_id and delta != Tally():
        tallystore.add(conn, customer_id, delta)
        if tallystore.points_balance(conn, customer_id) < 0 and delta.points_used:
            verdict = OVERSPENT
    if known and event.type != "visit.recorded":
        bump(conn, "customer", customer_id, False)
    return verdict


def _customer_fact(conn: sqlite3.Connection, customer_id: str,
                   body: CustomerUpdated | IdentifierAdded | PinSet, verdict: Verdict) -> Verdict:
    """A known customer's profile, identifier or PIN, written now."""
    if isinstance(body, CustomerUpdated):
        upsert_customer(conn, customer_id, body.changes.model_dump(exclude_none=True), "")
    elif isinstance(body, IdentifierAdded):
        try:
            put_identifier(conn, customer_id, body.kind, body.value, body.status)
        except Conflict:
            return ("flagged", f"{body.kind} already belongs to another customer")
    else:
        conn.execute("UPDATE customers SET pin_hash = ? WHERE customer_id = ?",
                     (body.pin_hash, customer_id))
    return verdict


def _status(bump: Bump, conn: sqlite3.Connection, event: Envelope,
            body: CustomerStatusChanged) -> Verdict:
    """Bans are HQ's own facts; an outlet cannot change a customer's status."""
    if event.outlet_id != HQ_OUTLET:
        return STATUS_IGNORED
    conn.execute("UPDATE customers SET status = ? WHERE customer_id = ?",
                 (body.status, body.customer_id))
    bump(conn, "customer", body.customer_id, body.status == "banned")
    return APPLIED


def _identifier_status(bump: Bump, conn: sqlite3.Connection, event: Envelope,
                       body: IdentifierStatusChanged) -> Verdict:
    row = conn.execute("SELECT customer_id, status FROM identifiers WHERE kind = ? AND value = ?",
                       (body.kind, body.value)).fetchone()
    if row is None:
        return "flagged", "unknown identifier"
    if body.status == "active" and row[1] != "active" and event.outlet_id != HQ_OUTLET:
        return "flagged", f"an outlet cannot make a {row[1]} {body.kind} active again; ignored"
    conn.execute("UPDATE identifiers SET status = ? WHERE kind = ? AND value = ?",
                 (body.status, body.kind, body.value))
    bump(conn, "customer", row[0], body.status != "active")
    return APPLIED


def _registered(bump: Bump, conn: sqlite3.Connection, event: Envelope,
                body: CustomerRegistered, at: str) -> Verdict:
    if _customer_exists(conn, body.customer_id):
        return "flagged", "customer registered twice"
    upsert_customer(conn, body.customer_id, body.profile.model_dump(exclude_none=True),
                    created_at=at, origin=event.outlet_id)
    verdict: Verdict = APPLIED
    try:
        put_identifier(conn, body.customer_id, "card", body.card_number, "active")
    except Conflict:
        verdict = ("flagged", "card number already issued to another customer")
    bump(conn, "customer", body.customer_id, False)
    return verdict


def _project_sale(conn: sqlite3.Connection, event: Envelope, sale: SaleRecorded,
                  hq_seq: int, at: str) -> None:
    credit = sum(p.amount for p in sale.payments if p.mode == "credit")
    conn.execute(
        "INSERT INTO sales (sale_id, hq_seq, outlet_id, customer_id, till_id, at, total_gross,"
        " total_discount, total_net, points_earned, paid_credit) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (sale.sale_id, hq_seq, event.outlet_id, sale.customer_id, sale.till_id, at,
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




def record_hq_fact(chain: Chain, conn: sqlite3.Connection, body: Body) -> Event:
    """A fact made at HQ itself (a bank payment, a points correction): numbered in HQ's
    own sequence under outlet id "HQ" and folded like any outlet's fact."""
    from schema.events import make_event

    seq = int(conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE outlet_id = ?",
                           (HQ_OUTLET,)).fetchone()[0])
    now = chain.clock()
    event = make_event(HQ_OUTLET, seq, body, at=now)  # HQ's own clock: booked as stamped
    hq_seq = _record(conn, event, event.model_dump_json(), now, now)
    verdict, reason = _apply(chain, conn, event, body, hq_seq, now)
    if verdict == "flagged":
        _flag(conn, event, hq_seq, reason or "", now)
    return event


def _pay_invoice(bump: Bump, conn: sqlite3.Connection, invoice_id: str, amount: int,
                 paid_on: str, via: str, reference: str | None) -> Verdict | None:
    """Records a payment on the invoice; a flag when it pays more than was still owed
    (two tills took the same invoice while offline): the fact stands (HQ never rejects
    one), the invoice shows every payment received, and the excess is for staff to refund,
    never credit to spend (schema.ledger.credit_available)."""
    row = conn.execute("SELECT number, customer_id, amount, paid_amount FROM invoices "
                       "WHERE invoice_id = ?", (invoice_id,)).fetchone()
    if row is None:
        return None
    owed = max(row["amount"] - row["paid_amount"], 0)
    paid = row["paid_amount"] + amount
    conn.execute(
        "UPDATE invoices SET paid_amount = ?, paid_via = ?, bank_reference = COALESCE(?, bank_reference),"
        " paid_on = CASE WHEN ? >= amount THEN ? ELSE paid_on END,"
        " status = CASE WHEN ? >= amount THEN 'paid' ELSE status END WHERE invoice_id = ?",
        (paid, via, reference, paid, paid_on, paid, invoice_id))
    bump(conn, "invoice", invoice_id, False)
    lift_credit_block(bump, conn, row["customer_id"])
    if amount > owed:
        reason = (f"overpayment: invoice {row['number']} had {money(owed)} left to pay, "
                  f"{money(amount)} was taken at the {via}; refund {money(amount - owed)} "
                  "(it is not spendable credit)")
        return ("flagged", reason)
    return None


def lift_credit_block(bump: Bump, conn: sqlite3.Connection, customer_id: str) -> None:
    """Credit comes back once no invoice of the customer is past its term, however it
    was paid (at a till or at the bank)."""
    left = conn.execute("SELECT 1 FROM invoices WHERE customer_id = ? AND status = 'past_term'",
                        (customer_id,)).fetchone()
    if left is None and conn.execute(
            "UPDATE customers SET credit_blocked = 0 WHERE customer_id = ? AND credit_blocked = 1",
            (customer_id,)).rowcount:
        bump(conn, "customer", customer_id, False)


def flags(chain: Chain, open_only: bool = True) -> list[dict[str, object]]:
    where = "WHERE resolved_at IS NULL" if open_only else ""
    return [dict(r) for r in chain.db.all(f"SELECT * FROM flags {where} ORDER BY flag_id")]

