"""The one ledger checker of the tests: a chain's files after the facts, read-only.

`check_files(hq_db, outlet_dbs, ...)` asserts, from HQ's file (or its PostgreSQL database:
`hq_db` a postgresql:// URL, read in one snapshot) and the outlets' files (the processes
may be running or stopped):
1. every outlet event is at HQ exactly once, in the outlet's order, `(outlet, seq)` gap-free
   from 1, and HQ's `last_seq` of the outlet is its count;
2. HQ's tallies are the fold of its events, per customer;
3. with `floor_bound`: the lowest balance HQ ever held (and any in `lowest_seen`) stays above
   minus the sum of the outlets' offline floors (off when HQ was restored from a backup: its
   order of events is then not one history);
4. with `converged`: nothing is pending at any outlet, each has pulled up to HQ's head and
   shows every customer as HQ does (off while the outlets may still be pulling);
5. with a `ledger` (what the tills were answered): every sale and redemption answered 201
   is once at its outlet and once at HQ.
It returns figures for the test's log (`hq_events`, `events_by_outlet`, `customers`, ...).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.defaults import LIMITS
from schema import tallystore
from schema.customerstore import identifiers_of, profile_of
from schema.events import Event, tally_of
from schema.ledger import Tally


@dataclass
class Ledger:
    """What the tills were told: every sale and redemption answered 201, per outlet."""

    sales: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    redemptions: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    cards: dict[str, tuple[str, str]] = field(default_factory=dict)  # card -> (id, category)
    refusals: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to a SQLite file (rows by name), closed after the block."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def hq_reader(hq_db: Path | str) -> Iterator[Any]:
    """HQ's database read-only, on either store: `read_only` for its file; for a
    postgresql:// URL, one read-only snapshot of it (rows read by name likewise)."""
    if isinstance(hq_db, str) and "://" in hq_db:
        from hq.store.postgres import PgStore

        store = PgStore(hq_db, pool_size=1)
        try:
            with store.read() as conn:
                yield conn
        finally:
            store.close()
        return
    with read_only(Path(hq_db)) as conn:
        yield conn


def floor_points() -> dict[str, int]:
    return {limit.category: limit.floor_points for limit in LIMITS}


def check_files(hq_db: Path | str, outlet_dbs: dict[str, Path], ledger: Ledger | None = None,
                lowest_seen: dict[str, int] | None = None, floor_bound: bool = True,
                converged: bool = True) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with hq_reader(hq_db) as hq:
        rows = hq.execute("SELECT hq_seq, event_id, outlet_id, seq, customer_id, event, "
                          "booked_at FROM events ORDER BY hq_seq").fetchall()
        events = [Event.model_validate_json(r["event"]) for r in rows]
        ids = [r["event_id"] for r in rows]
        assert len(ids) == len(set(ids)), "an event is in HQ's ledger twice"
        figures["hq_events"] = len(ids)
        figures["events_by_outlet"] = dict(Counter(r["outlet_id"] for r in rows))
        _exactly_once(hq, rows, outlet_dbs, converged)

        # periods and "last purchase" go by HQ's booking time (docs/sync.md "Outlet clocks")
        by_customer: dict[str, Tally] = defaultdict(Tally)
        for event, row in zip(events, rows, strict=True):
            if event.customer_id:
                by_customer[event.customer_id] = by_customer[event.customer_id].combine(
                    tally_of(event.parsed(), row["booked_at"] or event.at))
        customers = [r[0] for r in hq.execute("SELECT customer_id FROM customers ORDER BY 1")]
        for cid in set(customers) | set(by_customer):
            assert tallystore.load(hq, cid) == by_customer.get(cid, Tally()), \
                f"HQ tally of {cid} is not the fold of its events"
        figures["customers"] = len(customers)
        figures["flags"] = hq.execute("SELECT COUNT(*) FROM flags").fetchone()[0]
        figures["lowest_balance"] = _floor_bound(hq, events, len(outlet_dbs), floor_bound,
                                                 lowest_seen or {})
        if converged:
            _converged(hq, customers, outlet_dbs)
        if ledger is not None:
            figures.update(_told(hq, events, outlet_dbs, ledger))
    return figures


def _exactly_once(hq: sqlite3.Connection, rows: list[sqlite3.Row], outlet_dbs: dict[str, Path],
                  converged: bool) -> None:
    for outlet, path in outlet_dbs.items():
        with read_only(path) as db:
            outbox = [(r[0], r[1]) for r in db.execute(
                "SELECT seq, event_id FROM outbox ORDER BY seq")]
            pending = db.execute("SELECT COUNT(*) FROM outbox WHERE acked = 0").fetchone()[0]
        at_hq = [(r["seq"], r["event_id"]) for r in rows if r["outlet_id"] == outlet]
        assert pending == 0 or not converged, f"{outlet}: {pending} events still pending"
        assert [s for s, _ in outbox] == list(range(1, len(outbox) + 1)), \
            f"{outlet}: local sequence has gaps"
        assert at_hq == outbox, f"{outlet}: HQ holds {len(at_hq)} events, outlet made " \
            f"{len(outbox)}; first difference at " \
            f"{next((a, b) for a, b in zip(at_hq + [None] * 9, outbox + [None] * 9) if a != b)}"
        last_seq = hq.execute("SELECT last_seq FROM outlets WHERE outlet_id = ?",
                              (outlet,)).fetchone()[0]
        assert last_seq == len(outbox), (outlet, last_seq, len(outbox))


def _floor_bound(hq: sqlite3.Connection, events: list[Event], outlets: int, check: bool,
                 lowest_seen: dict[str, int]) -> int:
    floors = floor_points()  # the defaults, and the categories HQ publishes now
    floors.update({key: int(json.loads(data).get("floor_points", 0)) for key, data in hq.execute(
        "SELECT key, data FROM master WHERE kind = 'category'")})
    categories = dict(hq.execute("SELECT customer_id, category FROM customers").fetchall())
    bound = {cid: -outlets * floors[cat] for cid, cat in categories.items()}
    lowest: dict[str, int] = {}
    running: dict[str, Tally] = defaultdict(Tally)
    for event in events:
        cid = event.customer_id
        if not cid:
            continue
        running[cid] = running[cid].combine(tally_of(event.parsed(), event.at))
        lowest[cid] = min(lowest.get(cid, 0), running[cid].points_balance)
    for cid, low in lowest.items() if check else ():
        assert low >= bound[cid], f"{cid} reached {low} at HQ, bound {bound[cid]}"
    for cid, low in lowest_seen.items():
        assert low >= bound[cid], f"{cid} was seen at {low} at HQ, bound {bound[cid]}"
    return min(lowest.values(), default=0)


def _converged(hq: sqlite3.Connection, customers: list[str], outlet_dbs: dict[str, Path]) -> None:
    def view(conn: sqlite3.Connection, cid: str) -> tuple[Any, ...]:
        row = conn.execute("SELECT * FROM customers WHERE customer_id = ?", (cid,)).fetchone()
        return (profile_of(row), row["status"], row["category"], identifiers_of(conn, cid),
                tallystore.load(conn, cid))

    head = hq.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]
    hq_view = {cid: view(hq, cid) for cid in customers}
    for outlet, path in outlet_dbs.items():
        with read_only(path) as db:
            cursor = db.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
            assert cursor is not None and int(cursor[0]) == head, (outlet, cursor, head)
            local = [r[0] for r in db.execute("SELECT customer_id FROM customers ORDER BY 1")]
            assert local == customers, f"{outlet} knows other customers than HQ"
            for cid in customers:
                mine = view(db, cid)
                assert mine == hq_view[cid], f"{outlet} differs from HQ on {cid}:\n" \
                    f"{mine}\n{hq_view[cid]}"


def _told(hq: sqlite3.Connection, events: list[Event], outlet_dbs: dict[str, Path],
          ledger: Ledger) -> dict[str, Any]:
    hq_sales = Counter(r[0] for r in hq.execute("SELECT sale_id FROM sales"))
    hq_reds = Counter(r[0] for r in hq.execute("SELECT redemption_id FROM redemptions"))
    event_sales = Counter(e.body.get("sale_id") for e in events if e.type == "sale.recorded")
    assert all(n == 1 for n in hq_sales.values()), "a sale is at HQ twice"
    assert all(n == 1 for n in event_sales.values()), "a sale event is at HQ twice"
    for outlet, path in outlet_dbs.items():
        with read_only(path) as db:
            local = Counter(r[0] for r in db.execute("SELECT sale_id FROM sales"))
            local_reds = Counter(r[0] for r in db.execute("SELECT redemption_id FROM redemptions"))
            outbox_sales = Counter(json.loads(r[0])["body"]["sale_id"] for r in db.execute(
                "SELECT event FROM outbox WHERE type = 'sale.recorded'"))
        told = ledger.sales[outlet]
        assert len(told) == len(set(told)), f"{outlet} answered one sale twice"
        for sale_id in told:
            assert local[sale_id] == 1 and outbox_sales[sale_id] == 1, (outlet, sale_id)
            assert hq_sales[sale_id] == 1 and event_sales[sale_id] == 1, (outlet, sale_id)
        for red in ledger.redemptions[outlet]:
            assert local_reds[red] == 1 and hq_reds[red] == 1, (outlet, red)
        assert set(local) <= set(hq_sales), f"{outlet} has sales HQ lacks"  # nothing missing
    return {"sales_told": sum(len(v) for v in ledger.sales.values()),
            "redemptions_told": sum(len(v) for v in ledger.redemptions.values()),
            "refusals": dict(ledger.refusals)}
