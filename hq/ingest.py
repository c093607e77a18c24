"""HQ's side of push: folding outlets' facts into the chain-wide ledger, exactly once.

Promises (docs/design.md invariants 2, 5, 7, 8):
- a batch is checked whole before anything is applied: protocol version, the caller's
  outlet on the batch and on every event, known event types and versions, bodies that
  parse, sequences in order; any failure refuses the batch and changes nothing;
- new events are applied in local sequence order, each with its dedupe row and the
  outlet's `last_seq`, in ONE transaction; an event seen before is `duplicate`; a gap
  stops the batch there (`acked_through` says where to resume);
- pushes that wait at the same time share that transaction (group commit,
  hq/committer.py), each in its own savepoint: a push is answered only once its group
  has committed, so `applied` and `acked_through` still mean durably applied, and a
  refused push refuses no other;
- a fact is never rejected: what looks wrong (overspent points, an unknown customer) is
  applied and `flagged` for review;
- HQ orders by its own sequence (`hq_seq`), never by outlet clocks; a fact is placed in
  periods by its booking time (schema/timing.py: the outlet's stamp when plausible, HQ's
  receive time otherwise, then flagged), the stamp kept as sent in the ledger; each push's
  `sent_at` measures the outlet's clock (hq/clocks.py), in the same transaction.
How each fact projects (for every path: a push, its one-by-one fallback, HQ's own facts)
is hq/projection.py's, one entry per event type; this module decides what is new and in
what order. Must never: apply an event twice, apply part of a refused batch, or let an
outlet speak for another.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence

from hq import clocks, store
from hq.chain import Chain
from hq.projection import HQ_OUTLET, Batch, Envelope, Sums, Verdict
from schema import typedpush
from schema.dialect import dialect_of
from schema.errors import (
    LoyaltyError,
    OutletMismatch,
    ProtocolError,
    SeqReused,
    SyncGap,
)
from schema.events import Body, Event, make_event
from schema.sync import ACCEPTED, EventResult, PushRequest, PushResponse
from schema.timing import Booker
from schema.typedpush import TypedPushRequest

log = logging.getLogger(__name__)
# Pushes are parsed one at a time: parsing holds Python's GIL throughout, so parsing
# several at once only makes all of them ready late, together; one at a time, the first
# is written (which mostly leaves the GIL free) while the next ones are read.
_PARSING = threading.Lock()
# What makes a batched push go event by event (a reused id: the store refused a row)
_BATCH_FAILED: tuple[type[Exception], ...] = (*store.DB_ERRORS, LoyaltyError)


# --- entry points ---------------------------------------------------------------------------


def push(chain: Chain, outlet_id: str, request: PushRequest, *,
         batched: bool = True) -> PushResponse:
    """A push already parsed as `PushRequest` (the modem link, tests); each body is
    validated here. `batched=False` applies one event per batch (the reference the
    batched push is tested against)."""
    bodies = _check(outlet_id, request)
    return _push(chain, outlet_id, request.events, bodies, batched, request.sent_at)


def push_json(chain: Chain, outlet_id: str, raw: bytes) -> PushResponse:
    """A push as it came over HTTP: parsed once, envelopes and typed bodies together.
    Anything that does not parse that way goes the reference way (`PushRequest`, then
    `Event.parsed()` per event), so a refusal is exactly the one it always was."""
    try:
        with _PARSING:
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


# --- one push: dedupe, gap, then the new events, in a group's transaction ----------------


def _push(chain: Chain, outlet_id: str, events: Sequence[Envelope], bodies: Sequence[Body],
          batched: bool, sent_at: str | None) -> PushResponse:
    """Applies the push in the next group commit (hq/committer.py) and answers once that
    is durable: pushes that wait at the same time share one transaction, each in its own
    savepoint, so a refused push changes nothing and refuses no other."""
    received = chain.clock()  # before waiting for the writer: the time it arrived

    def job(conn: sqlite3.Connection, group: Sums) -> tuple[PushResponse, Sums]:
        return _apply_push(chain, conn, group, outlet_id, events, bodies, batched, sent_at,
                           received)

    answer = chain.pushes.run(job, Sums, weight=len(events))
    chain.waiters.notify()
    return answer


def _apply_push(chain: Chain, conn: sqlite3.Connection, group: Sums, outlet_id: str,
                events: Sequence[Envelope], bodies: Sequence[Body], batched: bool,
                sent_at: str | None, received: str) -> tuple[PushResponse, Sums]:
    """One push inside the group's transaction: its answer and what it adds up (`Sums`,
    written by the group once its last push is applied)."""
    results: list[EventResult] = []
    tolerance = chain.clock_tolerance_s
    mine = Sums(group)
    # locked until commit on PostgreSQL: the same outlet's retry, pushed to another HQ
    # process meanwhile, waits here and then finds these events seen (duplicates)
    last, registered = conn.execute("SELECT last_seq, created_at FROM outlets WHERE "
                                    f"outlet_id = ?{dialect_of(conn).locked()}",
                                    (outlet_id,)).fetchone()
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
        verdicts, redated = _apply_new(conn, new, new_bodies, batched, booker, mine)
        results.extend(EventResult(event_id=e.event_id, seq=e.seq, result=v, reason=r)
                       for e, (v, r) in zip(new, verdicts, strict=True))
        last = new[-1].seq
    conn.execute("UPDATE outlets SET last_seq = ?, last_push_at = ? WHERE outlet_id = ?",
                 (last, received, outlet_id))
    offset = clocks.settle(conn, outlet_id, sent_at, received, tolerance, redated)
    return PushResponse(epoch=chain.epoch, acked_through=last, results=results,
                        clock_offset_s=offset,
                        clock_tolerance_s=None if offset is None else tolerance), mine


def _apply_new(conn: sqlite3.Connection, events: Sequence[Envelope], bodies: Sequence[Body],
               batched: bool, booker: Booker, sums: Sums) -> tuple[list[Verdict], int]:
    """Records and applies new events, in order, their sums into `sums`; returns their
    verdicts and how many were booked at HQ's receive time. Batched, the push is one
    `Batch`, inside a savepoint; if it fails (a reused event id, a duplicate sale id...)
    it is undone and the events go one `Batch` each, which gives the exact refusal.
    `batched=False` goes one by one at once (the reference the tests compare with)."""
    if batched:
        conn.execute("SAVEPOINT ingest_batch")
        try:
            done = _project(conn, events, bodies, booker, sums)
        except _BATCH_FAILED as exc:
            if store.retryable(exc):
                raise  # the whole transaction runs again (hq/committer.py)
            log.info("batched ingest failed (%s): applying event by event", exc)
            conn.execute("ROLLBACK TO ingest_batch")
        else:
            conn.execute("RELEASE ingest_batch")
            return done
        conn.execute("RELEASE ingest_batch")
    verdicts: list[Verdict] = []
    redated = 0
    for event, body in zip(events, bodies, strict=True):
        one, late = _project(conn, [event], [body], booker, sums)
        verdicts += one
        redated += late  # 0 or 1
    return verdicts, redated


def _project(conn: sqlite3.Connection, events: Sequence[Envelope], bodies: Sequence[Body],
             booker: Booker, sums: Sums) -> tuple[list[Verdict], int]:
    """`events` as one batch (hq/projection.py), its sums merged into `sums` if it is
    applied whole; their verdicts, and how many were booked at HQ's receive time."""
    batch = Batch(conn, booker.received, events, sums)
    verdicts = []
    redated = 0
    for event, body in zip(events, bodies, strict=True):
        booked, late = booker(event.at)
        verdicts.append(batch.add(event, body, booked, late))
        redated += late is not None
    batch.flush()
    return verdicts, redated


def _seen(conn: sqlite3.Connection, event: Envelope) -> EventResult:
    row = conn.execute("SELECT event_id FROM events WHERE outlet_id = ? AND seq = ?",
                       (event.outlet_id, event.seq)).fetchone()
    if row is None or row[0] != event.event_id:
        raise SeqReused(f"sequence {event.seq} was used by another event: the outlet's database "
                        "went back (restored?); it renumbers its newer facts and pushes again",
                        seq=event.seq)
    return EventResult(event_id=event.event_id, seq=event.seq, result="duplicate")


# --- HQ's own facts -------------------------------------------------------------------------


# HQ's own facts are made one transaction at a time, chain-wide (`store.serialise`)
HQ_FACTS = "hq-facts"


@contextlib.contextmanager
def making_hq_facts(chain: Chain) -> Iterator[sqlite3.Connection]:
    """A write transaction that checks, then records HQ's own facts: it takes HQ's fact
    numbering first, so what it checks (a profile not merged yet, the stock a transfer
    takes, a card nobody holds, an Idempotency-Key not used yet) is what every HQ fact
    committed before it says, and no other HQ process records one until it commits. On
    PostgreSQL (READ COMMITTED, several HQ processes) two operators at once would both
    pass their checks otherwise; SQLite's one writer does this anyway. Nested in a write,
    it joins it (the numbering held from here on)."""
    with chain.db.write() as conn:
        store.serialise(conn, HQ_FACTS)
        yield conn


def record_hq_fact(chain: Chain, conn: sqlite3.Connection, body: Body) -> Event:
    """A fact made at HQ itself (a bank payment, a points correction): numbered in HQ's
    own sequence under outlet id "HQ" and folded like any outlet's fact (a batch of one).
    HQ's sequence stays dense across HQ processes: its next number is read alone. Check
    what the fact depends on inside `making_hq_facts`, not before it."""
    store.serialise(conn, HQ_FACTS)
    seq = int(conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE outlet_id = ?",
                           (HQ_OUTLET,)).fetchone()[0])
    now = chain.clock()
    event = make_event(HQ_OUTLET, seq, body, at=now)  # HQ's own clock: booked as stamped
    batch = Batch(conn, now, [event])
    batch.add(event, body, now, None)
    batch.flush()
    return event


def flags(chain: Chain, open_only: bool = True) -> list[dict[str, object]]:
    where = "WHERE resolved_at IS NULL" if open_only else ""
    return [dict(r) for r in chain.db.all(f"SELECT * FROM flags {where} ORDER BY flag_id")]

