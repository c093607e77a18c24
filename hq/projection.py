"""How each fact projects at HQ: one `HQ` entry per event type, one way to apply them.

HQ folds new facts into its state through a `Batch`: `add` each fact in HQ's order, then
`flush` once. Per fact, `add` runs the fact's own projection (`HqEntry.project`: the
sale and its lines, a redemption and its stock, a profile, an identifier, an invoice
payment...), then the step every fact shares: the ledger row and its verdict, the tally
delta its type declares (schema/events.py `EventType.tally`) with the overspent check,
the customer's bump in the change log, the review flag. What changes customers,
identifiers and invoices is written at once (the facts after it read it); what only adds
up (ledger rows, sales and lines, redemptions, gift stock, tallies, the change log,
flags) is combined per key in memory and written with one executemany per table: the rows
by `flush`, the sums (tallies and their items, gift stock, the change log: `Sums`) by
`flush` too or, in a push, once for its whole commit group (hq/committer.py). Nothing in
a push reads those tables, except the overspent check, which follows each redeeming
customer's balance in memory. Point lots (schema/lots.py) are order
dependent: each customer's lots (and, for the facts that need them, what its redemptions
took) are read once when the batch starts, moved fact by fact in memory in HQ's order,
on each fact's booking day under the programme's settings (`programme_of`, read once per
batch), and what changed is written by `flush`. A head-office-only fact
(`EventType.hq_only`: a correction, an expiry) sent by an outlet is flagged and ignored:
nothing of it is applied, as `schema.events.fold` counts it for nothing. The way back: a
return reads its sale and the earlier returns of it (this batch's from memory, earlier
batches' from `sales`, `returns` and the ledger) to audit them (schema/reversal.py
`audit`: flagged, never refused), and `flush` ends by restating every customer a return
touched (`restate`: the most expensive purchase, item prices and last purchase from what
the customer still holds), also when a sale arrives after returns of it made elsewhere.

Why one path. A push is applied as one batch (the fast path); when that fails (a reused
event id, a duplicate sale id) hq/ingest.py undoes it and applies the push one fact per
batch, which gives the exact refusal; a fact made at HQ itself (`record_hq_fact`) is a
batch of one too. The single-event path is a batch of one, not a second projection, so
there is nothing left for the fast path to drift from: both run the same `HqEntry` per
type and the same shared step, and differ only in how many facts one `flush` writes.
tests/hq/test_ingest_batch.py checks that N facts in one batch leave exactly the state
and answers of N batches of one, with hypothesis over every registered type.

Adding an event type (returns, voids, corrections, point expiry are next) is one entry
in each layer's registry, keyed by the wire name:
1. schema/events.py: the body model and its `EventType(name, {1: Body}, tally=...)` in
   `EVENT_TYPES` (the tally: what the fact adds to its customer, or none);
2. here: an `HqEntry(Body, project=..., ...)` in `_ENTRIES`: what HQ writes beyond the
   tally, whether the fact is about its envelope's customer, whether HQ republishes that
   customer, whether it moves the customer's point lots (`lots`: `schema.lots.apply`
   does what it does to them, in HQ's order; `reads_spends` when it needs what earlier
   redemptions took, as a gift given back does);
3. agent/overlay.py: an `OutletEntry(Body, ...)` in `_ENTRIES`: what a pending local fact
   puts back over HQ's older row at the outlet;
4. tests/hq/test_ingest_batch.py: a strategy for the body in `FACTS`.
tests/schema/test_event_registry.py names the layer that lacks the type, and
test_ingest_batch fails until the type has a strategy.

Must never: apply a fact without its ledger row in the same batch, read a table that a
batch only writes at `flush`, or commit (the caller's transaction holds the push).
"""

from __future__ import annotations

import json
import operator
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Generic, TypeVar

from hq import store
from hq.chain import Chain
from schema import lots as lotmath
from schema import lotstore, salestore, tallystore
from schema.bulk import BIGINT, TEXT, insert_rows
from schema.customerstore import put_identifier, upsert_customer
from schema.errors import Conflict, ProtocolError
from schema.events import (
    EVENT_TYPE,
    HQ_OUTLET,
    STOCK_TRANSFER_KIND,
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
from schema.ledger import ItemTally, Tally
from schema.lots import Book, Lot
from schema.masterdata import programme_of
from schema.money import money
from schema.reversal import audit
from schema.typedpush import TypedEvent

Verdict = tuple[str, str | None]
Envelope = Event | TypedEvent  # both carry the envelope fields
Bump = Callable[[sqlite3.Connection, str, str, bool], object]  # Chain.bump's shape

APPLIED: Verdict = ("applied", None)
UNKNOWN_CUSTOMER: Verdict = ("flagged", "unknown customer")
OVERSPENT: Verdict = ("flagged", "points overspent: balance below zero")
RETURN_OVERSPENT: Verdict = ("flagged", ("return took back points already spent elsewhere: "
                                         "balance below zero"))
STATUS_IGNORED: Verdict = ("flagged", "outlets cannot change a customer's status; ignored")
TRANSFER_IGNORED: Verdict = ("flagged", "only HQ orders a stock transfer between outlets; ignored")
MERGE_IGNORED: Verdict = ("flagged", "only head office merges customers; ignored")
NO_TALLY = Tally()

B = TypeVar("B", bound=Body)


# --- the batch: what one push writes --------------------------------------------------------


class Acc:
    """A customer's tally delta over a batch, combined as `Tally.combine` does, mutably."""

    SUMMED = ("purchases_total", "purchases_count", "items_count", "points_earned",
              "points_used", "points_expired", "discount_total", "paid_cash", "paid_card",
              "paid_credit", "credit_repaid", "gifts_count")
    __slots__ = (*SUMMED, "last_purchase_at", "best_purchase_total", "best_purchase_id",
                 "items", "gifts")

    def __init__(self) -> None:
        self.purchases_total = self.purchases_count = self.items_count = 0
        self.points_earned = self.points_used = self.points_expired = self.discount_total = 0
        self.paid_cash = self.paid_card = self.paid_credit = 0
        self.credit_repaid = self.gifts_count = 0
        self.last_purchase_at = ""
        self.best_purchase_total = 0
        self.best_purchase_id = ""
        self.items: dict[str, list[Any]] = {}  # sku -> [name, qty, max_unit_price]
        self.gifts: dict[str, int] = {}

    def add_sale(self, sale: SaleRecorded, at: str) -> None:
        """+ tally_of(sale, at), without building it (the sale's `HqEntry.accumulate`)."""
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

    def merge(self, other: Acc) -> None:
        """+ another accumulator (what `add` of its deltas would have added)."""
        for name in self.SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.last_purchase_at = max(self.last_purchase_at, other.last_purchase_at)
        self.best_purchase_total, self.best_purchase_id = max(
            (self.best_purchase_total, self.best_purchase_id),
            (other.best_purchase_total, other.best_purchase_id))
        items = self.items
        for sku, (name, qty, price) in other.items.items():
            item = items.get(sku)
            if item is None:
                items[sku] = [name, qty, price]
            else:
                item[1] += qty
                item[2], item[0] = max((item[2], item[0]), (price, name))
        for sku, qty in other.gifts.items():
            self.gifts[sku] = self.gifts.get(sku, 0) + qty

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

    def absorb(self, other: Acc) -> None:
        """+ another accumulator (a merged customer's delta so far in the batch)."""
        self.add(Tally(**{name: getattr(other, name) for name in self.SUMMED},
                       last_purchase_at=other.last_purchase_at,
                       best_purchase_total=other.best_purchase_total,
                       best_purchase_id=other.best_purchase_id,
                       items={sku: ItemTally(i[0], i[1], i[2]) for sku, i in other.items.items()},
                       gifts=dict(other.gifts)))


if sorted(Acc.SUMMED) != sorted(tallystore.SUMMED):  # a new Tally figure must be summed here too
    raise RuntimeError("hq.projection.Acc is out of step with schema.ledger.Tally")


class Bumps:
    """Change-log bumps deferred to the flush: each entity once, in the order of its last
    change, with that change's urgency (the batch commits as one, so no pull could have
    seen the earlier ones). Called like `Chain.bump`."""

    def __init__(self) -> None:
        self.order: dict[tuple[str, str], bool] = {}

    def __call__(self, conn: sqlite3.Connection, kind: str, key: str, urgent: bool = False) -> None:
        self.order.pop((kind, key), None)
        self.order[(kind, key)] = urgent

    def merge(self, later: Bumps) -> None:
        """+ the bumps of what came after (each entity at the place of its last change)."""
        order = self.order
        for entity, urgent in later.order.items():
            order.pop(entity, None)
            order[entity] = urgent

    def flush(self, conn: sqlite3.Connection) -> None:
        if self.order:
            Chain.bump_many(conn, ((kind, key, urgent) for (kind, key), urgent in self.order.items()))


class Sums:
    """What facts only add up to, kept in memory and written once: tally deltas per
    customer (with their items and gifts), gift stock moves, change-log bumps. Nothing in
    a push reads those tables except the overspent check, which asks `points` for what is
    kept here (and in `under`, the sums this one will be merged into) but not yet written.

    A `Batch` adds to its own `Sums`; ingest merges a batch's into its push's once the
    batch is applied, and a push's into its commit group's once the push is (each inside
    its savepoint, hq/committer.py): what a refused push added is never written. The
    group writes the sum once, before it commits: one upsert per customer and item for
    the whole group, in key order (docs/sync.md, "Group commit")."""

    def __init__(self, under: Sums | None = None) -> None:
        self.under = under
        self.accs: dict[str, Acc] = {}
        self.stock: dict[tuple[str, str], int] = {}
        self.bump = Bumps()
        # customers a return touched: restated from their holdings once the sums are written
        self.restate: set[str] = set()

    def points(self, customer_id: str) -> int:
        """Points this (and what it sits on) adds to the customer's stored balance."""
        acc = self.accs.get(customer_id)
        mine = 0 if acc is None else acc.points_earned - acc.points_used - acc.points_expired
        return mine if self.under is None else mine + self.under.points(customer_id)

    def last_purchase(self, customer_id: str) -> str:
        """The latest purchase this (and what it sits on) holds for the customer ("": none)."""
        acc = self.accs.get(customer_id)
        mine = "" if acc is None else acc.last_purchase_at or ""
        return mine if self.under is None else max(mine, self.under.last_purchase(customer_id))

    def merge(self, later: Sums) -> None:
        accs = self.accs
        for customer_id, acc in later.accs.items():
            mine = accs.get(customer_id)
            if mine is None:
                accs[customer_id] = acc
            else:
                mine.merge(acc)
        for key, qty in later.stock.items():
            self.stock[key] = self.stock.get(key, 0) + qty
        self.bump.merge(later.bump)
        self.restate |= later.restate

    def flush(self, conn: sqlite3.Connection) -> None:
        # every table in key order: concurrent groups (several HQ processes on PostgreSQL)
        # lock the rows they share in the same order, so they queue instead of deadlocking
        if self.stock:
            insert_rows(conn, "gift_stock", STOCK_COLUMNS,
                        [(outlet, sku, qty) for (outlet, sku), qty in sorted(self.stock.items())],
                        "ON CONFLICT (outlet_id, gift_sku) DO UPDATE SET "
                        "qty = gift_stock.qty + excluded.qty")
        if self.accs:  # in customer order: neighbouring upserts land on the same pages
            ordered = sorted(self.accs.items())
            tallystore.add_rows(
                conn,
                [(cid, *_TALLY_ROW(acc)) for cid, acc in ordered],
                [(cid, sku, *item) for cid, acc in ordered
                 for sku, item in sorted(acc.items.items())],
                [(cid, sku, qty) for cid, acc in ordered for sku, qty in sorted(acc.gifts.items())])
        for customer_id in sorted(self.restate):  # after the tallies they correct
            tallystore.restate(conn, customer_id, salestore.holdings(conn, customer_id))
        self.bump.flush(conn)


_TALLY_ROW = operator.attrgetter(*tallystore.COLUMNS)  # an Acc's figures, in COLUMNS order

# The rows a batch writes: (column, its PostgreSQL type), in the order of its row tuples
# (schema/bulk.py: executemany on SQLite, one statement per table on PostgreSQL).
EVENT_COLUMNS = (("hq_seq", BIGINT), ("event_id", TEXT), ("outlet_id", TEXT), ("seq", BIGINT),
                 ("type", TEXT), ("version", BIGINT), ("customer_id", TEXT), ("at", TEXT),
                 ("received_at", TEXT), ("event", TEXT), ("result", TEXT), ("reason", TEXT),
                 ("booked_at", TEXT))
SALE_COLUMNS = (("sale_id", TEXT), ("hq_seq", BIGINT), ("outlet_id", TEXT),
                ("customer_id", TEXT), ("till_id", TEXT), ("at", TEXT),
                ("total_gross", BIGINT), ("total_discount", BIGINT), ("total_net", BIGINT),
                ("points_earned", BIGINT), ("paid_credit", BIGINT))
LINE_COLUMNS = (("sale_id", TEXT), ("line_no", BIGINT), ("sku", TEXT), ("name", TEXT),
                ("division", TEXT), ("qty", BIGINT), ("unit_price", BIGINT),
                ("gross", BIGINT), ("discount", BIGINT), ("net", BIGINT))
REDEMPTION_COLUMNS = (("redemption_id", TEXT), ("hq_seq", BIGINT), ("outlet_id", TEXT),
                      ("customer_id", TEXT), ("gift_sku", TEXT), ("gift_name", TEXT),
                      ("qty", BIGINT), ("points_spent", BIGINT), ("at", TEXT))
FLAG_COLUMNS = (("event_id", TEXT), ("customer_id", TEXT), ("outlet_id", TEXT),
                ("reason", TEXT), ("at", TEXT))
STOCK_COLUMNS = (("outlet_id", TEXT), ("gift_sku", TEXT), ("qty", BIGINT))


def _reused_id(row: tuple[Any, ...]) -> tuple[str, str]:
    """What a one-fact batch's UNIQUE failure was about: (kind of id, the id) from its
    ledger row (the stored event names its body's id)."""
    body = json.loads(row[9]).get("body", {})
    for kind in ("sale", "redemption", "return", "gift_return"):
        if isinstance(body, dict) and f"{kind}_id" in body:
            return kind.replace("_", " "), str(body[f"{kind}_id"])
    return "event", str(row[1])


def stored(event: Envelope) -> str:
    """The event as the ledger keeps it (`events.event`): as received."""
    if isinstance(event, TypedEvent):
        return event.stored_json()
    return event.model_dump_json()


def _also(verdict: Verdict, more: Verdict) -> Verdict:
    """Both verdicts' reasons: flagged when either is."""
    if more[0] != "flagged":
        return verdict
    if verdict[0] != "flagged":
        return more
    return ("flagged", f"{verdict[1]}; {more[1]}")


def timed(verdict: Verdict, late: str | None) -> Verdict:
    """The verdict with why the fact's stamp was not used, if it was not: flagged for that
    reason in the ledger; the review is one flag per outlet (hq/clocks.py)."""
    if late is None:
        return verdict
    if verdict[0] == "flagged":
        return "flagged", f"{verdict[1]}; {late}"
    return "flagged", late


def _existing(conn: sqlite3.Connection, customer_ids: set[str]) -> dict[str, str | None]:
    """Which of `customer_ids` HQ knows, each with the survivor it was merged into (None:
    not merged)."""
    ids = sorted(customer_ids)
    found: dict[str, str | None] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        marks = ",".join("?" * len(chunk))
        # both from indexes only (the rows are not read)
        found.update((r[0], None) for r in conn.execute(
            f"SELECT customer_id FROM customers WHERE customer_id IN ({marks})", chunk))
        found.update((r[0], r[1]) for r in conn.execute(
            "SELECT customer_id, merged_into FROM customers "
            f"WHERE merged_into IS NOT NULL AND customer_id IN ({marks})", chunk))
    return found


class Batch:
    """New facts folded into HQ's state inside the caller's write transaction: `add` each
    in HQ's order (their `hq_seq` are taken at once for the `events` given, increasing:
    hq.store.ledger_numbers), then `flush` once; add no more facts than were given.

    `under`: the `Sums` this batch's sums go to at `flush` (not yet written: the overspent
    check counts them); without it, `flush` writes them too."""

    def __init__(self, conn: sqlite3.Connection, received: str, events: Iterable[Envelope],
                 under: Sums | None = None) -> None:
        self.conn = conn
        self.received = received  # HQ's receive time: the ledger's received_at, flag times
        self.events = list(events)
        self.numbers = store.ledger_numbers(conn, len(self.events))  # their hq_seq, in order
        existing = _existing(conn, {e.customer_id or "" for e in self.events})
        # a merged customer's facts count for the survivor (docs/design.md, "Merged profiles")
        self.merged = {cid: into for cid, into in existing.items() if into}
        self.known = set(existing) | set(self.merged.values())
        self._looked_up = set(existing)  # customers whose `merged_into` was read
        self.under = under
        self.sums = Sums(under)
        self.bump = self.sums.bump
        self.accs = self.sums.accs
        self.balance0: dict[str, int] = {}  # stored balances of customers who redeem here
        self.rows: list[tuple[Any, ...]] = []
        self.sales: list[tuple[Any, ...]] = []
        self.lines: list[tuple[Any, ...]] = []
        self.redemptions: list[tuple[Any, ...]] = []
        self.flags: list[tuple[Any, ...]] = []
        self.settings = programme_of(conn)
        self.books0, self.last0 = self._books(events)
        self.books = dict(self.books0)
        # the way back (see the module docstring)
        self.returns: list[tuple[Any, ...]] = []
        self.return_lines: list[tuple[Any, ...]] = []
        self.gift_returns: list[tuple[Any, ...]] = []
        self.sold: dict[str, SaleRecorded] = {}  # this batch's sales
        self.returned: dict[str, list[ReturnRecorded]] = {}  # this batch's returns, by sale
        self._waiting: set[str] | None = None  # sales whose returns came first
        self.resolved: list[str] = []  # ... and that came in this batch
        self.restate: set[str] = set()  # customers to restate at the flush

    def _books(self, events: Iterable[Envelope]) -> tuple[dict[str, Book], dict[str, str]]:
        """The stored lots (and the redemptions' allocations, for customers with a fact
        that reads them) of every customer whose lots a fact of the batch moves, and their
        last purchase (the `inactivity` rule's clock)."""
        moving, reading = set(), set()
        for event in events:
            entry = HQ.get(event.type)
            if entry is not None and entry.lots and event.customer_id:
                moving.add(event.customer_id)
                if entry.reads_spends:
                    reading.add(event.customer_id)
        if not moving:
            return {}, {}
        lots = lotstore.load_many(self.conn, moving)
        spends = lotstore.load_spends(self.conn, reading) if reading else {}
        last = {}
        if self.settings.expiry.kind == "inactivity":
            last = {cid: tallystore.load_last_purchase(self.conn, cid) for cid in moving}
        return {cid: Book(held, spends.get(cid, {})) for cid, held in lots.items()}, last

    def add(self, event: Envelope, body: Body, booked: str, late: str | None) -> Verdict:
        """Folds one fact, booked at `booked` (`late`: why its own stamp was not used, if it
        was not); returns its verdict (applied|flagged, reason)."""
        hq_seq = self.numbers[len(self.rows)]
        entry = HQ[event.type]
        customer_id = self.owner(event.customer_id)
        known = customer_id in self.known
        if entry.hq_only and event.outlet_id != HQ_OUTLET:
            why = (f"only head office makes {event.type} facts: outlet {event.outlet_id} "
                   "sent one; ignored")
            return self._record(event, hq_seq, booked, late, ("flagged", why))
        verdict = entry.project(self, event, body, hq_seq, booked) or (
            APPLIED if known or not entry.about_customer else UNKNOWN_CUSTOMER)
        if entry.lots and customer_id:
            self._move_lots(event, customer_id, body, booked)
        if entry.accumulate is not None:
            if customer_id:
                acc = self.accs.get(customer_id) or self._acc(customer_id)
                used = acc.points_used
                entry.accumulate(acc, body, booked)
                if acc.points_used != used:
                    verdict = self._overspent(customer_id, acc, verdict)
        elif entry.tally is not None and customer_id:
            delta = entry.tally(body, booked)
            if delta != NO_TALLY:
                acc = self.accs.get(customer_id) or self._acc(customer_id)
                acc.add(delta)
                if delta.points_used > 0:  # a gift given back never overspends
                    verdict = self._overspent(customer_id, acc, verdict)
                elif delta.points_earned < 0 and self._guards_balance(body):
                    verdict = _also(verdict, self._overspent(customer_id, acc, APPLIED,
                                                             RETURN_OVERSPENT))
        if known and entry.about_customer and entry.bumps_customer:
            self.bump(self.conn, "customer", customer_id, False)
        return self._record(event, hq_seq, booked, late, verdict)

    def _record(self, event: Envelope, hq_seq: int, booked: str, late: str | None,
                 verdict: Verdict) -> Verdict:
        """The fact's ledger row and, when flagged, its flag (every fact has them, even
        one whose content HQ ignores)."""
        final = timed(verdict, late)
        result, reason = final
        self.rows.append((hq_seq, event.event_id, event.outlet_id, event.seq, event.type,
                          event.version, event.customer_id, event.at, self.received,
                          stored(event), result, reason, booked))
        if verdict[0] == "flagged":
            self.flags.append((event.event_id, event.customer_id, event.outlet_id, reason or "",
                               self.received))
        return final

    def owner(self, customer_id: str | None) -> str:
        """Whose state a fact about `customer_id` changes: the survivor of a merged profile,
        else the customer itself ("" for none)."""
        cid = customer_id or ""
        if cid and cid not in self.merged and cid not in self._looked_up:
            self._looked_up.add(cid)  # a customer the batch's facts did not name (a sale's)
            row = self.conn.execute("SELECT merged_into FROM customers WHERE customer_id = ?",
                                    (cid,)).fetchone()
            if row is not None and row[0]:
                self.merged[cid] = row[0]
        return self.merged.get(cid, cid)

    def _move_lots(self, event: Envelope, customer_id: str, body: Body, booked: str) -> None:
        """The customer's lots after the fact, applied on its booking day. A fact that
        cannot move them (a lot earned twice: a sale id used again) is malformed."""
        book = self.books.get(customer_id)
        if book is None:  # not announced to the batch (a caller's own use): read it now
            book = self.books0[customer_id] = Book(lotstore.load(self.conn, customer_id))
        settings = self.settings
        last_purchase = None
        if settings.expiry.kind == "inactivity":
            acc = self.accs.get(customer_id)
            last = max(self.last0.get(customer_id, ""), acc.last_purchase_at if acc else "",
                       "" if self.under is None else self.under.last_purchase(customer_id))
            last_purchase = date.fromisoformat(last[:10]) if last else None
        try:
            self.books[customer_id] = lotmath.apply(
                book, body, date.fromisoformat(booked[:10]), settings.expiry,
                pending_days=settings.pending_days, last_purchase=last_purchase)
        except ValueError as exc:
            raise ProtocolError(f"{event.type} {event.event_id}: {exc}",
                                event_id=event.event_id) from None

    def _acc(self, customer_id: str) -> Acc:
        acc = self.accs[customer_id] = Acc()
        return acc

    def _guards_balance(self, body: Body) -> bool:
        """A return under a policy that keeps balances at or above zero (`reduce_refund`,
        `supervisor`), not approved below it by a supervisor: the outlet let it through
        because its view covered the points, so HQ seeing the balance below zero means
        another outlet spent them meanwhile (review 11, finding 8)."""
        return (isinstance(body, ReturnRecorded) and not body.approved_by
                and self.settings.returns.points_policy != "negative")

    def _overspent(self, customer_id: str, acc: Acc, verdict: Verdict,
                   why: Verdict = OVERSPENT) -> Verdict:
        """For a fact that spent points (or took back points earned): `why` if it left the
        customer's balance (stored, plus the batch so far: `acc`) below zero."""
        if customer_id not in self.balance0:  # stored, plus what is summed but not written
            self.balance0[customer_id] = tallystore.points_balance(self.conn, customer_id) + (
                0 if self.under is None else self.under.points(customer_id))
        held = acc.points_earned - acc.points_used - acc.points_expired
        return why if self.balance0[customer_id] + held < 0 else verdict

    # --- the way back: what a return reads (see the module docstring) -----------------
    def waiting(self) -> set[str]:
        """Sales HQ holds returns of but not the sale itself (read once per batch)."""
        if self._waiting is None:
            self._waiting = {r[0] for r in self.conn.execute(
                "SELECT DISTINCT sale_id FROM returns WHERE sale_known = 0")}
        return self._waiting

    def sale(self, sale_id: str) -> SaleRecorded | None:
        """The sale as recorded: this batch's, or an earlier one's from the ledger."""
        if sale_id in self.sold:
            return self.sold[sale_id]
        row = self.conn.execute("SELECT e.event FROM sales s JOIN events e ON e.hq_seq = "
                                "s.hq_seq WHERE s.sale_id = ?", (sale_id,)).fetchone()
        body = None if row is None else Event.model_validate_json(row[0]).parsed()
        return body if isinstance(body, SaleRecorded) else None

    def returns_of(self, sale_id: str) -> list[ReturnRecorded]:
        """Every return of the sale HQ holds: earlier batches' in HQ's order, then this one's."""
        earlier = [Event.model_validate_json(r[0]).parsed() for r in self.conn.execute(
            "SELECT e.event FROM returns r JOIN events e ON e.hq_seq = r.hq_seq"
            " WHERE r.sale_id = ? ORDER BY r.hq_seq", (sale_id,))]
        return [r for r in earlier if isinstance(r, ReturnRecorded)] + self.returned.get(
            sale_id, [])

    def move_stock(self, outlet_id: str, sku: str, qty: int) -> None:
        stock, key = self.sums.stock, (outlet_id, sku)
        stock[key] = stock.get(key, 0) + qty

    def _write_rows(self, conn: sqlite3.Connection) -> None:
        """The facts' own rows (sales and lines, redemptions, returns, gift returns): a
        reused id fails here."""
        insert_rows(conn, "sales", SALE_COLUMNS, self.sales)
        insert_rows(conn, "sale_lines", LINE_COLUMNS, self.lines)
        insert_rows(conn, "redemptions", REDEMPTION_COLUMNS, self.redemptions)
        if self.returns:
            conn.executemany(
                "INSERT INTO returns (return_id, hq_seq, outlet_id, sale_id, customer_id, kind,"
                " till_id, reason, receipt, home, at, gross, discount, value, refunded,"
                " refund_cash, refund_card, refund_credit, withheld, points_reversed,"
                " points_withheld, closes_sale, approved_by, sale_known)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", self.returns)
            conn.executemany(
                "INSERT INTO return_lines (return_id, line_no, sku, name, qty, unit_price,"
                " gross, discount, net) VALUES (?,?,?,?,?,?,?,?,?)", self.return_lines)
        if self.gift_returns:
            conn.executemany(
                "INSERT INTO gift_returns (gift_return_id, hq_seq, outlet_id, redemption_id,"
                " customer_id, gift_sku, gift_name, qty, points_returned, till_id, reason, at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", self.gift_returns)

    def flush(self) -> None:
        """Writes the batch's rows, and its sums (or merges them into `under`); a reused
        event id, or a sale, redemption or return id another fact already used, is the
        fact's ProtocolError when the batch is one fact (a larger batch fails with the SQL
        error and ingest applies it fact by fact, which names the fact): never a 500."""
        conn = self.conn
        try:
            insert_rows(conn, "events", EVENT_COLUMNS, self.rows)
        except store.INTEGRITY_ERRORS as exc:
            if len(self.rows) != 1:
                raise
            raise ProtocolError(f"event id {self.rows[0][1]} was already used") from exc
        try:
            self._write_rows(conn)
        except store.INTEGRITY_ERRORS as exc:
            if len(self.rows) != 1:
                raise
            kind, the_id = _reused_id(self.rows[0])
            raise ProtocolError(f"{kind} id {the_id} was already used by another fact",
                                event_id=self.rows[0][1]) from exc
        changed = [(cid, self.books0[cid], book) for cid, book in sorted(self.books.items())
                   if book is not self.books0.get(cid)]
        if changed:
            lotstore.write(conn, [(cid, old.lots, new.lots) for cid, old, new in changed])
            lotstore.write_spends(conn, [(cid, old.spends, new.spends)
                                         for cid, old, new in changed])
        if self.resolved:
            conn.executemany("UPDATE returns SET sale_known = 1 WHERE sale_id = ?",
                             [(sale_id,) for sale_id in self.resolved])
        insert_rows(conn, "flags", FLAG_COLUMNS, self.flags)
        self.sums.restate |= self.restate
        if self.under is None:
            self.sums.flush(conn)
        else:
            self.under.merge(self.sums)


# --- the registry ---------------------------------------------------------------------------

def nothing(batch: Batch, event: Envelope, body: Body, hq_seq: int, at: str) -> None:
    """Nothing to write beyond the ledger row and the tally."""


@dataclass(frozen=True)
class HqEntry(Generic[B]):
    """How facts with body `body` project at HQ.

    `project(batch, event, body, hq_seq, booked)` writes what the fact does beyond its
    tally and returns its verdict, or None for the default: applied, or flagged "unknown
    customer" when the fact is `about_customer` and HQ does not know that customer (the
    fact is applied all the same: HQ never rejects one).
    `about_customer`: the fact is about its envelope's customer, who is flagged when
    unknown and, when known, bumped in the change log after it (so outlets get the new
    state) unless `bumps_customer` is False (a fact that changes nothing HQ publishes).
    A fact that is not (a registration, a status, stock) bumps what it changed itself.
    `accumulate(acc, body, booked)`: an optional fast path that adds the type's tally to
    a batch accumulator without building a `Tally`; it must add exactly `EventType.tally`
    (tests/hq/test_ingest_batch.py). The tally itself comes from the type's `EventType`,
    and so does `hq_only`. `lots`: the fact moves its customer's point lots
    (`schema.lots.apply`, in HQ's order); `reads_spends`: to do so it needs what the
    customer's redemptions took (a gift given back)."""

    body: type[B]
    project: Callable[[Batch, Envelope, B, int, str], Verdict | None] = nothing
    about_customer: bool = True
    bumps_customer: bool = True
    accumulate: Callable[[Acc, B, str], None] | None = None
    lots: bool = False
    reads_spends: bool = False
    tally: Callable[[B, str], Tally] | None = field(init=False)
    hq_only: bool = field(init=False)

    def __post_init__(self) -> None:
        kind = EVENT_TYPE[TYPE_OF[self.body]]
        object.__setattr__(self, "tally", kind.tally)
        object.__setattr__(self, "hq_only", kind.hq_only)


def _sale(batch: Batch, event: Envelope, sale: SaleRecorded, hq_seq: int,
          at: str) -> Verdict | None:
    credit = 0
    for p in sale.payments:
        if p.mode == "credit":
            credit += p.amount
    batch.sales.append((sale.sale_id, hq_seq, event.outlet_id, batch.owner(sale.customer_id),
                        sale.till_id,
                        at, sale.total_gross, sale.total_discount, sale.total_net,
                        sale.points_earned, credit))
    sale_id = sale.sale_id
    batch.lines += [(sale_id, i, ln.sku, ln.name, ln.division, ln.qty, ln.unit_price,
                     ln.gross, ln.discount, ln.net) for i, ln in enumerate(sale.lines)]
    batch.sold[sale_id] = sale
    waiting = batch.waiting()
    if waiting and sale_id in waiting:
        return _returned_first(batch, sale)
    return None


def _returned_first(batch: Batch, sale: SaleRecorded) -> Verdict | None:
    """A sale arriving after returns of it (made at outlets that pushed first): its
    customers are restated and the returns audited now."""
    batch.waiting().discard(sale.sale_id)
    batch.resolved.append(sale.sale_id)
    returns = batch.returns_of(sale.sale_id)
    batch.restate.add(batch.owner(sale.customer_id))
    batch.restate.update(batch.owner(r.customer_id) for r in returns)
    reasons = audit(sale, returns) + [_not_its_customer(r, sale) for r in returns
                                      if batch.owner(r.customer_id) != batch.owner(sale.customer_id)]
    return ("flagged", "; ".join(reasons)) if reasons else None


def _not_its_customer(ret: ReturnRecorded, sale: SaleRecorded) -> str:
    return (f"return {ret.return_id} names customer {ret.customer_id}, the sale was made to "
            f"{sale.customer_id}")


def _returned(batch: Batch, event: Envelope, body: ReturnRecorded, hq_seq: int,
              at: str) -> Verdict | None:
    """A return or void: its rows, its customer restated at the flush, and the audit of
    every return of its sale HQ holds (flagged when together they give back more than the
    sale, or do not match it: returns at outlets that could not see each other, or a
    damaged or forged receipt code). A return before its sale waits for it. Returns of one
    sale are folded one transaction at a time (on PostgreSQL, HQ processes at once): each
    audits the ones committed before it."""
    store.serialise(batch.conn, f"sale-returns:{body.sale_id}")
    sale = batch.sale(body.sale_id)
    earlier = batch.returns_of(body.sale_id)
    batch.returned.setdefault(body.sale_id, []).append(body)
    refund = {"cash": 0, "card": 0, "credit": 0}
    for r in body.refunds:
        refund[r.mode] += r.amount
    batch.returns.append((
        body.return_id, hq_seq, event.outlet_id, body.sale_id, body.customer_id, body.kind,
        body.till_id, body.reason, body.receipt, int(body.home), at,
        sum(ln.gross for ln in body.lines), sum(ln.discount for ln in body.lines), body.value,
        sum(refund.values()), refund["cash"], refund["card"], refund["credit"],
        sum(r.withheld for r in body.refunds), body.points_reversed, body.points_withheld,
        int(body.closes_sale), body.approved_by, int(sale is not None)))
    batch.return_lines += [(body.return_id, ln.line, ln.sku, ln.name, ln.qty, ln.unit_price,
                            ln.gross, ln.discount, ln.net) for ln in body.lines]
    batch.restate.add(batch.owner(body.customer_id))
    if sale is None:
        batch.waiting().add(body.sale_id)
        return None
    before = audit(sale, earlier)
    reasons = [r for r in audit(sale, [*earlier, body]) if r not in before]
    if batch.owner(body.customer_id) != batch.owner(sale.customer_id):  # merged: one person
        reasons.append(_not_its_customer(body, sale))
    return ("flagged", "returns: " + "; ".join(reasons)) if reasons else None


def _gift_returned(batch: Batch, event: Envelope, body: GiftReturned, hq_seq: int,
                   at: str) -> None:
    """Gifts given back at the desk: back into that outlet's stock, recorded beside the
    hand-outs (the tax evidence shows the return)."""
    batch.gift_returns.append((body.gift_return_id, hq_seq, event.outlet_id, body.redemption_id,
                               body.customer_id, body.gift_sku, body.gift_name, body.qty,
                               body.points_returned, body.till_id, body.reason, at))
    batch.move_stock(event.outlet_id, body.gift_sku, body.qty)


def _redeemed(batch: Batch, event: Envelope, body: GiftRedeemed, hq_seq: int, at: str) -> None:
    batch.redemptions.append((body.redemption_id, hq_seq, event.outlet_id,
                              batch.owner(event.customer_id),
                              body.gift_sku, body.gift_name, body.qty, body.points_spent, at))
    batch.move_stock(event.outlet_id, body.gift_sku, -body.qty)


def _stock(batch: Batch, event: Envelope, body: StockMoved, hq_seq: int, at: str) -> None:
    batch.move_stock(event.outlet_id, body.gift_sku, body.qty)


def _transferred(batch: Batch, event: Envelope, body: StockTransferred, hq_seq: int,
                 at: str) -> Verdict:
    """HQ's order moves both outlets' stock at HQ and is published to the two of them
    (hq/feed.py renders it for them only); an outlet's claim to order one is flagged."""
    if event.outlet_id != HQ_OUTLET:
        return TRANSFER_IGNORED
    batch.move_stock(body.from_outlet, body.gift_sku, -body.qty)
    batch.move_stock(body.to_outlet, body.gift_sku, body.qty)
    batch.bump(batch.conn, STOCK_TRANSFER_KIND, event.event_id, False)
    return APPLIED


def _registered(batch: Batch, event: Envelope, body: CustomerRegistered, hq_seq: int,
                at: str) -> Verdict:
    conn = batch.conn
    batch.known.add(body.customer_id)
    if conn.execute("SELECT 1 FROM customers WHERE customer_id = ?",
                    (body.customer_id,)).fetchone() is not None:
        return "flagged", "customer registered twice"
    upsert_customer(conn, body.customer_id, body.profile.model_dump(exclude_none=True),
                    created_at=at, origin=event.outlet_id)
    verdict: Verdict = APPLIED
    try:
        put_identifier(conn, body.customer_id, "card", body.card_number, "active")
    except Conflict:
        verdict = ("flagged", "card number already issued to another customer")
    batch.bump(conn, "customer", body.customer_id, False)
    return verdict


def _status(batch: Batch, event: Envelope, body: CustomerStatusChanged, hq_seq: int,
            at: str) -> Verdict:
    """Bans are HQ's own facts; an outlet cannot change a customer's status."""
    if event.outlet_id != HQ_OUTLET:
        return STATUS_IGNORED
    batch.conn.execute("UPDATE customers SET status = ? WHERE customer_id = ?",
                       (body.status, body.customer_id))
    batch.bump(batch.conn, "customer", body.customer_id, body.status == "banned")
    return APPLIED


def _identifier_status(batch: Batch, event: Envelope, body: IdentifierStatusChanged,
                       hq_seq: int, at: str) -> Verdict:
    conn = batch.conn
    row = conn.execute("SELECT customer_id, status FROM identifiers WHERE kind = ? AND value = ?",
                       (body.kind, body.value)).fetchone()
    if row is None:
        return "flagged", "unknown identifier"
    if body.status == "active" and row[1] != "active" and event.outlet_id != HQ_OUTLET:
        return "flagged", f"an outlet cannot make a {row[1]} {body.kind} active again; ignored"
    conn.execute("UPDATE identifiers SET status = ? WHERE kind = ? AND value = ?",
                 (body.status, body.kind, body.value))
    batch.bump(conn, "customer", row[0], body.status != "active")
    return APPLIED


def _merged(batch: Batch, event: Envelope, body: CustomersMerged, hq_seq: int,
            at: str) -> Verdict:
    """Two profiles made one (HQ's own fact only): the merged one's identifiers and tally
    go to the survivor (its stored tally and what this batch added so far), profiles
    merged into it earlier now name the survivor too, and both are republished. A merge
    of an unknown or already merged profile changes nothing and is flagged (hq/admin.py
    refuses it before it is made)."""
    if event.outlet_id != HQ_OUTLET:
        return MERGE_IGNORED
    conn = batch.conn
    survivor, merged = body.customer_id, body.merged
    rows = {r[0]: r[1] for r in conn.execute("SELECT customer_id, merged_into FROM customers "
                                             "WHERE customer_id IN (?, ?)", (survivor, merged))}
    if survivor == merged or len(rows) != 2 or rows[survivor] or rows[merged]:
        return "flagged", "merge of an unknown or already merged profile; ignored"
    conn.execute("UPDATE identifiers SET customer_id = ? WHERE customer_id = ?",
                 (survivor, merged))
    earlier = [r[0] for r in conn.execute("SELECT customer_id FROM customers "
                                          "WHERE merged_into = ?", (merged,))]
    conn.execute("UPDATE customers SET merged_into = ? WHERE customer_id = ? OR merged_into = ?",
                 (survivor, merged, merged))
    acc = batch.accs.get(survivor) or batch._acc(survivor)
    acc.add(tallystore.load(conn, merged))
    tallystore.replace(conn, merged, Tally())
    _merge_lots(batch, survivor, merged)
    pending = batch.accs.pop(merged, None)
    if pending is not None:
        acc.absorb(pending)
    batch.balance0.pop(merged, None)
    batch.known.update((survivor, merged))
    for cid, into in list(batch.merged.items()):
        if into == merged:
            batch.merged[cid] = survivor
    batch.merged[merged] = survivor
    for cid in earlier:  # outlets learn where those profiles' facts go now
        batch.bump(conn, "customer", cid, False)
    batch.bump(conn, "customer", merged, False)
    batch.bump(conn, "customer", survivor, False)
    return APPLIED


def _merge_lots(batch: Batch, survivor: str, merged: str) -> None:
    """The merged profile's point lots, and what its redemptions took, become the
    survivor's (a lot is named by the fact that earned it, so they do not collide; the
    `opening` and deficit lots of both are summed), so the survivor's lots still add up
    to its balance; written by `flush`, like any lots the batch moved."""
    books = []
    for cid in (survivor, merged):
        if cid not in batch.books0:
            batch.books0[cid] = Book(lotstore.load(batch.conn, cid),
                                     lotstore.load_spends(batch.conn, [cid]).get(cid, {}))
        books.append(batch.books.get(cid, batch.books0[cid]))
    held: dict[str, Lot] = {}
    for lot in books[0].lots + books[1].lots:
        same = held.get(lot.lot_id)
        held[lot.lot_id] = lot if same is None else replace(
            same, points=same.points + lot.points, earned_on=min(same.earned_on, lot.earned_on))
    batch.books[survivor] = Book(lotmath.tidy(held.values()),
                                 {**books[0].spends, **books[1].spends})
    batch.books[merged] = Book()


def _profile(batch: Batch, event: Envelope, body: CustomerUpdated, hq_seq: int,
             at: str) -> None:
    """A known customer's profile fields, written now (last writer at HQ wins per field)."""
    customer_id = batch.owner(event.customer_id)
    if customer_id in batch.known:
        upsert_customer(batch.conn, customer_id, body.changes.model_dump(exclude_none=True), "")


def _identifier(batch: Batch, event: Envelope, body: IdentifierAdded, hq_seq: int,
                at: str) -> Verdict | None:
    customer_id = batch.owner(event.customer_id)
    if customer_id in batch.known:
        try:
            put_identifier(batch.conn, customer_id, body.kind, body.value, body.status)
        except Conflict:
            return "flagged", f"{body.kind} already belongs to another customer"
    return None


def _pin(batch: Batch, event: Envelope, body: PinSet, hq_seq: int, at: str) -> None:
    customer_id = batch.owner(event.customer_id)
    if customer_id in batch.known:
        batch.conn.execute("UPDATE customers SET pin_hash = ? WHERE customer_id = ?",
                           (body.pin_hash, customer_id))


def _visit(batch: Batch, event: Envelope, body: VisitRecorded, hq_seq: int, at: str) -> None:
    """The customer's first visit (its booking time) is published, so every outlet's till
    welcomes a customer once (docs/greetings.md); later visits change nothing published."""
    customer_id = batch.owner(event.customer_id)
    if customer_id in batch.known and batch.conn.execute(
            "UPDATE customers SET first_visit_at = ? WHERE customer_id = ? "
            "AND first_visit_at IS NULL", (at, customer_id)).rowcount:
        batch.bump(batch.conn, "customer", customer_id, False)


def _repaid(batch: Batch, event: Envelope, body: CreditRepaid, hq_seq: int,
            at: str) -> Verdict | None:
    if not body.invoice_id:
        return None
    via = "bank" if event.outlet_id == HQ_OUTLET else "till"
    return pay_invoice(batch.bump, batch.conn, body.invoice_id, body.amount, at[:10], via)


def pay_invoice(bump: Bump, conn: sqlite3.Connection, invoice_id: str, amount: int,
                paid_on: str, via: str) -> Verdict | None:
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
        "UPDATE invoices SET paid_amount = ?, paid_via = ?,"
        " paid_on = CASE WHEN ? >= amount THEN ? ELSE paid_on END,"
        " status = CASE WHEN ? >= amount THEN 'paid' ELSE status END WHERE invoice_id = ?",
        (paid, via, paid, paid_on, paid, invoice_id))
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


_ENTRIES = (  # no annotation: each entry is checked against its own body type
    # Customers, their identifiers and status: written at once, in order, and bumped by
    # their projection (a registration or a status is not "about" an existing customer).
    HqEntry(CustomerRegistered, project=_registered, about_customer=False),
    HqEntry(CustomerUpdated, project=_profile),
    HqEntry(CustomerStatusChanged, project=_status, about_customer=False),
    HqEntry(IdentifierAdded, project=_identifier),
    HqEntry(IdentifierStatusChanged, project=_identifier_status, about_customer=False),
    HqEntry(PinSet, project=_pin),
    # A merge moves identifiers and a tally between two customers and bumps both itself.
    HqEntry(CustomersMerged, project=_merged, about_customer=False),
    # A visit changes nothing HQ publishes about the customer but the first one: it bumps
    # the customer itself then.
    HqEntry(VisitRecorded, project=_visit, bumps_customer=False),
    # The hot path: rows for flush, the tally added without building it, a lot earned.
    HqEntry(SaleRecorded, project=_sale, accumulate=Acc.add_sale, lots=True),
    HqEntry(GiftRedeemed, project=_redeemed, lots=True),
    HqEntry(CreditRepaid, project=_repaid),
    # Head office's own (an outlet's is flagged and ignored): the tally and the lots.
    HqEntry(BalanceAdjusted, lots=True),
    HqEntry(PointsExpired, lots=True),
    # The outlet's gift stock, no customer's.
    HqEntry(StockMoved, project=_stock, about_customer=False),
    # HQ's order moving stock between two outlets.
    HqEntry(StockTransferred, project=_transferred, about_customer=False),
    # The way back: rows, audit and the restatement at the flush; the tally (negative
    # figures) is the type's.
    HqEntry(ReturnRecorded, project=_returned, lots=True),
    HqEntry(GiftReturned, project=_gift_returned, lots=True, reads_spends=True),
)
HQ: dict[str, HqEntry[Any]] = {TYPE_OF[entry.body]: entry for entry in _ENTRIES}
