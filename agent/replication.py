"""The outlet's side of sync: what HQ's answers do to the replica (docs/design.md invariant 4).

Implements `sync.client.Replica`. Promises:
- a pulled page is applied in short slices, each in one transaction with the cursor moved
  to just before the first change it leaves for the next (never past a change not
  applied); a slice's commit does not wait for the disk (a power cut may undo the last
  slices, whole and with their cursor, and they are pulled again; a sale's durable
  commit after them makes them durable too);
- a customer's view = HQ's confirmed state ⊕ this outlet's facts about the customer that
  HQ had not folded in (`seq > incorporated_through`); the confirmed part and its
  `confirmed_through` are kept so the offline floor limits know what is unconfirmed; the
  same for the customer's point lots (agent/points.py `overlay`: HQ's lots with those facts
  applied in order);
- when HQ went back in time (a new epoch, fewer of our events than it acknowledged, or a
  shorter change log than our cursor) every event after what HQ holds is queued again
  with its original id and the replica re-pulls from scratch;
- if HQ holds more of our events than this database has (the outlet's database was
  restored), local numbering continues after HQ's so nothing collides.
Must never: drop a local fact, count one twice, or move the cursor without the page.

The log itself (numbering, acknowledging, renumbering) is agent/outbox.py's, and what a
pending fact puts back over HQ's row is agent/overlay.py's: this module holds no SQL on
the outbox and no switch on event types.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from agent import deskstaff, giftstock, outbox, points
from agent.overlay import OUTLET, paid_towards
from agent.replica import MASTER_KINDS, delete_master, meta_in, put_master, set_meta
from schema import lotstore, tallystore
from schema.customerstore import apply_entities, apply_entity
from schema.events import STOCK_TRANSFER_KIND, Event, tally_of, utc_now
from schema.ledger import Tally
from schema.roles import DESK_ACCOUNT_KIND
from schema.sync import Change, Hello, PullResponse, PushResponse
from sync.client import EpochChanged

if TYPE_CHECKING:
    from agent.outlet import Outlet

log = logging.getLogger(__name__)

BULK_PAGE = 500  # a page this long is part of a bootstrap or a big catch-up
BULK_CACHE_KIB = 131072  # the page cache the replica's connection gets for it
# A pulled page is applied in slices that hold the writer about SLICE_S each (a sale
# waiting for it waits about that long; docs/sync.md, "Sliced pull application"); a
# slice's length follows the pace of the slices before it, within these bounds.
SLICE_S = 0.004
FIRST_SLICE, MIN_SLICE, MAX_SLICE = 64, 8, 2000


def _note_clock(conn: sqlite3.Connection, offset: float | None, tolerance: float | None) -> None:
    """The offset of this outlet's clock that HQ measured (docs/sync.md, "Outlet clocks"),
    for `loyalty status`; `clock_checked_at` is by this outlet's own clock."""
    if offset is None:
        return
    set_meta(conn, "clock_offset_s", offset)
    set_meta(conn, "clock_tolerance_s", tolerance if tolerance is not None else "")
    set_meta(conn, "clock_checked_at", utc_now())


class OutletReplica:
    """`slice_changes`: a fixed slice length for pulled pages (tests); by default each
    slice's length is fitted to hold the writer about SLICE_S."""

    def __init__(self, outlet: Outlet, slice_changes: int | None = None) -> None:
        self.outlet = outlet
        self.outlet_id = outlet.outlet_id
        self.db = outlet.db
        self._cache_raised = False
        self._fixed = slice_changes is not None
        self._slice = slice_changes or FIRST_SLICE  # changes per slice of a pulled page
        self._pace: float | None = None  # seconds per change in a slice, a moving average

    # --- hello ------------------------------------------------------------------------
    def acked_through(self) -> int:
        with self.db.read() as conn:
            return outbox.acked_through(conn)

    def renumber(self, first: int, hq_last_seq: int) -> int:
        """`outbox.renumber` in one transaction: HQ answered `seq_reused` because this
        database was restored from a backup. Returns how many facts moved."""
        with self.db.write() as conn:
            moved = outbox.renumber(conn, first, hq_last_seq)
        if moved:
            log.warning("outlet database went back: %d facts from seq %d renumbered past "
                        "HQ's %d", moved, first, hq_last_seq)
        return moved

    def reconcile(self, hello: Hello, acked_before: int | None = None) -> bool:
        """Compares HQ with what we remember; True if HQ went back in time.

        `acked_before` is what HQ had acknowledged before this hello was asked for (the
        other sync thread may acknowledge more meanwhile, which is no sign of anything):
        an HQ holding less than that lost events and must get them again."""
        with self.db.write() as conn:
            known = meta_in(conn, "hq_epoch")
            cursor = int(meta_in(conn, "cursor", "0") or 0)
            lost_events = acked_before is not None and hello.last_seq < acked_before
            went_back = known is not None and (
                known != hello.epoch or hello.head < cursor or lost_events)
            if went_back:
                requeued = outbox.requeue_after(conn, after=hello.last_seq)
                set_meta(conn, "cursor", 0)
                set_meta(conn, "hq_resets", int(meta_in(conn, "hq_resets", "0") or 0) + 1)
                log.warning("HQ went back in time (epoch %s -> %s): re-sending %d events and "
                            "re-pulling", known, hello.epoch, requeued)
            outbox.raise_floor(conn, hello.last_seq)
            set_meta(conn, "hq_epoch", hello.epoch)
            if meta_in(conn, "card_range") is None:
                set_meta(conn, "card_range", hello.card_range)
            _note_clock(conn, hello.clock_offset_s, hello.clock_tolerance_s)
        return went_back

    @staticmethod
    def _check_epoch(conn: sqlite3.Connection, epoch: str) -> None:
        """Inside the write transaction that uses the answer: a reconcile (the other sync
        thread) between a check and the write would otherwise let an answer of the old HQ
        mark events acknowledged that the restored HQ lacks, or move the reset cursor."""
        known = meta_in(conn, "hq_epoch")
        if known is not None and known != epoch:
            raise EpochChanged("HQ's epoch changed during the exchange")

    # --- push -------------------------------------------------------------------------
    def pending(self, limit: int) -> list[Event]:
        with self.db.read() as conn:
            return outbox.pending(conn, limit)

    def acknowledge(self, response: PushResponse) -> None:
        flagged = [r.model_dump() for r in response.results if r.result == "flagged"]
        with self.db.write() as conn:
            self._check_epoch(conn, response.epoch)
            outbox.mark_acked(conn, response.acked_through, flagged)
            _note_clock(conn, response.clock_offset_s, response.clock_tolerance_s)

    # --- pull -------------------------------------------------------------------------
    def cursor(self) -> int:
        with self.db.read() as conn:
            return int(meta_in(conn, "cursor", "0") or 0)

    def apply(self, page: PullResponse) -> None:
        """Applies the page in slices, each its own short transaction, so a sale never
        waits long for the writer (docs/sync.md, "Sliced pull application"). A slice is
        sized to hold the writer about SLICE_S, from what the slices before it took; it
        commits its changes and the cursor just before the first change it leaves for the
        next slice (the page's own cursor after the last), so the cursor never passes a
        change not applied. Between slices every customer is whole (HQ's state with this
        outlet's pending facts on top: invariant 4); what a slice finds pending is read
        in its own transaction, so a sale made between two slices is folded on top too.
        If the cursor moved under the page (HQ went back and a hello reset it), the rest
        of the page is dropped: the caller pulls again from the cursor it finds."""
        changes = page.changes
        bulk = len(changes) >= BULK_PAGE
        # the cursor once changes[:k] are applied: just before the first change left of
        # the page's range (request cursor, page.cursor]; the urgent changes a page
        # carries first are ahead of that range and never move it
        after = [page.cursor] * (len(changes) + 1)
        for k in range(len(changes) - 1, -1, -1):
            seq = changes[k].seq
            after[k] = min(after[k + 1], seq - 1) if seq <= page.cursor else after[k + 1]
        done = 0
        expected: str | None = None
        while True:
            started = time.perf_counter()
            take = min(len(changes) - done, self._slice)
            with self.db.write(durable=False) as conn:
                self._check_epoch(conn, page.epoch)
                if expected is not None and meta_in(conn, "cursor") != expected:
                    log.info("the cursor moved while a page was applied: pulling again")
                    return
                master_changed = self._apply_slice(conn, changes[done:done + take],
                                                   page.incorporated_through, bulk)
                done += take
                set_meta(conn, "cursor", after[done])
                expected = str(after[done])
            if master_changed:
                self.outlet.reload_programme()
            self._fit_slice(take, time.perf_counter() - started)
            if done == len(changes):
                return
            self._between_slices()

    def _between_slices(self) -> None:
        """A sale (or any reader) waiting for the writer goes first."""
        self.db.let_others_in()

    def _fit_slice(self, took_changes: int, took_s: float) -> None:
        """The next slice's length: what should take SLICE_S at the pace measured so far
        (a moving average: one slice stalled by the disk or the scheduler says little),
        growing at most twice as long at a time."""
        if self._fixed or took_changes < self._slice:
            return  # fixed, or the page's last, shorter slice (it says little)
        pace = took_s / took_changes
        self._pace = pace if self._pace is None else 0.7 * self._pace + 0.3 * pace
        fit = int(SLICE_S / self._pace) if self._pace else MAX_SLICE
        self._slice = max(MIN_SLICE, min(MAX_SLICE, 2 * self._slice, fit))

    def _apply_slice(self, conn: sqlite3.Connection, changes: list[Change], through: int,
                     bulk: bool) -> bool:
        """Customers without local events after `through` (all of them in a bootstrap)
        are written in bulk, a run at a time; anything else (a customer with pending
        events to fold back on top, master data, an invoice, a customer seen twice) ends
        the run and is applied on its own, so the result is that of applying the changes
        one by one, in order. True if master data changed."""
        master_changed = False
        if not self._cache_raised and bulk:
            # a bootstrap-sized pull writes all over the customer tables and their
            # indexes: SQLite's default 2 MB page cache turns that into re-reads
            conn.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
            self._cache_raised = True
        pending = outbox.customers_with_pending(conn, through, (
            c.data["customer_id"] for c in changes if c.kind == "customer" and c.data))
        merges = _merges(conn, changes)
        if merges:  # a merged profile's pending facts count for its survivor
            absorbed = outbox.customers_with_pending(conn, through, merges)
            pending |= absorbed | {merges[m] for m in absorbed}
        run: dict[str, dict[str, Any]] = {}
        for change in changes:
            doc = change.data
            if change.kind == "customer" and doc is not None \
                    and doc["customer_id"] not in pending:
                if doc["customer_id"] in run:
                    _apply_run(conn, list(run.values()), through)
                    run = {}
                run[doc["customer_id"]] = doc
                continue
            _apply_run(conn, list(run.values()), through)
            run = {}
            if change.kind == "customer":
                self._apply_customer(conn, change, through, merges)
            elif change.kind == "invoice":
                _apply_invoice(conn, change, through)
            elif change.kind in MASTER_KINDS:
                self._apply_master(conn, change)
                master_changed = True
            elif change.kind == DESK_ACCOUNT_KIND:
                deskstaff.apply(conn, change.key, change.data)
            elif change.kind == STOCK_TRANSFER_KIND:
                giftstock.apply_transfer(conn, self.outlet_id, change.data)
        _apply_run(conn, list(run.values()), through)
        return master_changed

    def _apply_master(self, conn: sqlite3.Connection, change: Change) -> None:
        set_meta(conn, "master_version", change.seq)
        if change.data is None:
            delete_master(conn, change.kind, change.key)
        else:
            put_master(conn, change.kind, change.key, change.data)

    def _apply_customer(self, conn: sqlite3.Connection, change: Change, through: int,
                        merges: dict[str, str] | None = None) -> None:
        """HQ's row, and on top of it the customer's pending facts (invariant 4). A merged
        profile shows what HQ confirmed only: its pending facts count for its survivor,
        whose tally folds them in too (HQ applies them to the survivor as well)."""
        doc = change.data
        if doc is None:
            return
        customer_id = doc["customer_id"]
        if merges is None:
            merges = _merges(conn, [change])
        apply_entity(conn, doc)
        confirmed = Tally.from_dict(doc["tally"])
        view = confirmed
        own = [] if doc.get("merged_into") else outbox.events_for(conn, customer_id, through)
        pending = [(event, event.parsed()) for event in own]
        for event, body in pending:
            view = view.combine(tally_of(body, event.at))
            OUTLET[event.type].reapply(conn, body)
        if not doc.get("merged_into"):
            for merged in sorted(m for m, survivor in merges.items() if survivor == customer_id):
                for event in outbox.events_for(conn, merged, through):
                    body = event.parsed()
                    view = view.combine(tally_of(body, event.at))
                    pending.append((event, body))
            pending.sort(key=lambda fact: fact[0].event_id)  # UUIDv7: the order they were made
        tallystore.replace(conn, customer_id, view)
        held = points.overlay(self.outlet.programme.settings,
                              lotstore.of_document(doc, confirmed.points_balance), confirmed,
                              pending)
        lotstore.replace_many(conn, [(customer_id, held)])
        conn.execute("UPDATE customers SET confirmed_through = ?, confirmed_tally = ? "
                     "WHERE customer_id = ?",
                     (through, json.dumps(confirmed.to_dict()), customer_id))

    def note_sync(self, error: str | None) -> None:
        with self.db.write() as conn:
            if error is None:
                set_meta(conn, "last_sync_at", utc_now())
                conn.execute("DELETE FROM meta WHERE key = 'last_sync_error'")
            else:
                set_meta(conn, "last_sync_error", f"{utc_now()} {error}"[:500])


def _merges(conn: sqlite3.Connection, changes: list[Change]) -> dict[str, str]:
    """Merged profile -> its survivor, as this page says and the replica holds (a
    profile merged again names its last survivor)."""
    merges = {r[0]: r[1] for r in conn.execute(
        "SELECT customer_id, merged_into FROM customers WHERE merged_into IS NOT NULL")}
    for change in changes:
        if change.kind == "customer" and change.data is not None:
            into = change.data.get("merged_into")
            if into:
                merges[change.data["customer_id"]] = into
            else:
                merges.pop(change.data["customer_id"], None)
    return merges


def _apply_run(conn: sqlite3.Connection, docs: list[dict[str, Any]], through: int) -> None:
    """`_apply_customer` for distinct customers without pending events: their view is what
    HQ confirmed."""
    if not docs:
        return
    extra = []
    tallies: list[tuple[str, Tally | dict[str, Any]]] = []
    held = []
    for doc in docs:
        wire = doc["tally"]
        if wire.get("items") == {} and wire.get("gifts") == {} and list(wire) == _CANONICAL:
            # already Tally.from_dict(wire).to_dict(), key for key: skip the round trip
            text, tally = json.dumps(wire), wire
            balance = wire["points_earned"] - wire["points_used"]
        else:
            confirmed = Tally.from_dict(wire)
            text, tally = json.dumps(confirmed.to_dict()), confirmed
            balance = confirmed.points_balance
        extra.append({"confirmed_through": through, "confirmed_tally": text})
        tallies.append((doc["customer_id"], tally))
        held.append((doc["customer_id"], lotstore.of_document(doc, balance)))
    apply_entities(conn, docs, extra)
    tallystore.replace_many(conn, tallies)
    lotstore.replace_many(conn, held)


_CANONICAL = list(Tally().to_dict())  # the keys of a tally's wire form, in its order


def _apply_invoice(conn: sqlite3.Connection, change: Change, through: int) -> None:
    """HQ's invoice, plus the payments taken here that HQ has not folded in yet (else the
    till would show it unpaid again and take a second payment)."""
    doc = change.data
    if doc is None:
        conn.execute("DELETE FROM invoices WHERE invoice_id = ?", (change.key,))
        return
    pending = paid_towards(doc["invoice_id"], outbox.events_for(conn, doc["customer_id"], through))
    row = dict(doc, paid_amount=doc["paid_amount"] + pending)
    if row["paid_amount"] >= row["amount"]:
        row["status"] = "paid"
    cols = ["invoice_id", "number", "customer_id", "period_from", "period_to", "issued_on",
            "due_on", "amount", "paid_amount", "status"]
    conn.execute(f"INSERT OR REPLACE INTO invoices ({', '.join(cols)}) "
                 f"VALUES ({', '.join('?' for _ in cols)})", [row[c] for c in cols])
