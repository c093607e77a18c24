"""The outlet's side of sync: what HQ's answers do to the replica (docs/design.md invariant 4).

Implements `sync.client.Replica`. Promises:
- a pulled page and its cursor are applied in one transaction;
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
from typing import TYPE_CHECKING, Any

from agent import deskstaff, outbox, points
from agent.overlay import OUTLET, paid_towards
from agent.replica import MASTER_KINDS, delete_master, meta_in, put_master, set_meta
from schema import lotstore, tallystore
from schema.customerstore import apply_entities, apply_entity
from schema.events import Event, tally_of, utc_now
from schema.ledger import Tally
from schema.roles import DESK_ACCOUNT_KIND
from schema.sync import Change, Hello, PullResponse, PushResponse
from sync.client import EpochChanged

if TYPE_CHECKING:
    from agent.outlet import Outlet

log = logging.getLogger(__name__)

BULK_PAGE = 500  # a page this long is part of a bootstrap or a big catch-up
BULK_CACHE_KIB = 131072  # the page cache the replica's connection gets for it


def _note_clock(conn: sqlite3.Connection, offset: float | None, tolerance: float | None) -> None:
    """The offset of this outlet's clock that HQ measured (docs/sync.md, "Outlet clocks"),
    for `loyalty status`; `clock_checked_at` is by this outlet's own clock."""
    if offset is None:
        return
    set_meta(conn, "clock_offset_s", offset)
    set_meta(conn, "clock_tolerance_s", tolerance if tolerance is not None else "")
    set_meta(conn, "clock_checked_at", utc_now())


class OutletReplica:
    def __init__(self, outlet: Outlet) -> None:
        self.outlet = outlet
        self.outlet_id = outlet.outlet_id
        self.db = outlet.db
        self._cache_raised = False

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
        """Customers without local events after `incorporated_through` (all of them in a
        bootstrap) are written in bulk, a run at a time; anything else (a customer with
        pending events to fold back on top, master data, an invoice, a customer seen twice)
        ends the run and is applied on its own, so the result is that of applying the page
        change by change, in order."""
        master_changed = False
        through = page.incorporated_through
        with self.db.write() as conn:
            self._check_epoch(conn, page.epoch)
            if not self._cache_raised and len(page.changes) >= BULK_PAGE:
                # a bootstrap-sized pull writes all over the customer tables and their
                # indexes: SQLite's default 2 MB page cache turns that into re-reads
                conn.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
                self._cache_raised = True
            pending = outbox.customers_with_pending(conn, through, (
                c.data["customer_id"] for c in page.changes if c.kind == "customer" and c.data))
            run: dict[str, dict[str, Any]] = {}
            for change in page.changes:
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
                    self._apply_customer(conn, change, through)
                elif change.kind == "invoice":
                    _apply_invoice(conn, change, page.incorporated_through)
                elif change.kind in MASTER_KINDS:
                    self._apply_master(conn, change)
                    master_changed = True
                elif change.kind == DESK_ACCOUNT_KIND:
                    deskstaff.apply(conn, change.key, change.data)
            _apply_run(conn, list(run.values()), through)
            set_meta(conn, "cursor", page.cursor)
        if master_changed:
            self.outlet.reload_programme()

    def _apply_master(self, conn: sqlite3.Connection, change: Change) -> None:
        set_meta(conn, "master_version", change.seq)
        if change.data is None:
            delete_master(conn, change.kind, change.key)
        else:
            put_master(conn, change.kind, change.key, change.data)

    def _apply_customer(self, conn: sqlite3.Connection, change: Change, through: int) -> None:
        doc = change.data
        if doc is None:
            return
        customer_id = doc["customer_id"]
        apply_entity(conn, doc)
        confirmed = Tally.from_dict(doc["tally"])
        view = confirmed
        pending = [(event, event.parsed()) for event in outbox.events_for(conn, customer_id,
                                                                            through)]
        for event, body in pending:
            view = view.combine(tally_of(body, event.at))
            OUTLET[event.type].reapply(conn, body)
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
