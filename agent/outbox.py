"""The outlet's event log: every local fact, in gap-free local sequence, kept for good.

This module is the log's only owner: no other module of the project holds SQL that names
the `outbox` table. tests/agent/test_outbox.py scans the tree for it; its few exceptions are
listed there with their reasons (the DDL in schema/agent_tables.py, bench/till.py's
raw-SQLite floor, bench/modem.py sizing a finished run, reports telling an outlet's file
by the table's existence).

Promises:
- `append` runs inside the caller's write transaction, the one that records the fact's
  local effects, so a fact and its effects commit together or not at all (invariant 2).
  Its number is max+1 taken under SQLite's write lock, so the sequence has no gaps, and it
  is above the seq floor: a number HQ already holds for this outlet is never given again.
- `pending` is what HQ has not acknowledged, oldest first; `mark_acked` marks everything up
  to HQ's `acked_through` and keeps HQ's verdicts; `requeue_after` queues again everything
  past what an HQ that went back in time still holds. Acknowledged rows stay: they are the
  outlet's own record of what it did (`events_for` reads them back for the overlay).
- `renumber` is the one exception to "a fact keeps its number": when this database was
  restored from a backup, HQ holds other facts under some of our numbers, so the pending
  facts from there move past HQ's last, in order, with their event ids unchanged, together
  with every local row that carries their number (`SEQ_CARRIERS`).
- Every function works in the caller's connection and transaction and commits nothing.
Must never: change an event's id or body (a renumbered event's own `seq` excepted), delete,
reorder or renumber an acknowledged fact, or give a number twice.

Why the log belongs to agent/ and not to sync/: every writer is an agent service, and
each appends inside its own write transaction (the sale and its fact are one commit), so
the log sits beside them; renumbering moves agent tables (sales, ledger, visits, returns,
redemptions) that the protocol layer has no business knowing; HQ has no outbox, and HQ's
modem bank uses sync/ with no outlet at all. sync/ reaches the log only through the
`sync.client.Replica` protocol, which agent/replication.py implements by calling this
module, so a sale's path runs one way: agent → sync → HQ, never back into sync.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from agent.replica import meta_in, set_meta
from schema.events import Body, Event, make_event

# Local tables whose rows carry the number of the fact that wrote them.
SEQ_CARRIERS = ("sales", "ledger", "visits", "redemptions", "returns", "gift_returns")
SEQ_FLOOR = "seq_floor"  # meta key: HQ holds this outlet's facts up to here


def append(conn: sqlite3.Connection, outlet_id: str, body: Body, at: str | None = None) -> Event:
    seq = conn.execute(
        "SELECT MAX(COALESCE((SELECT MAX(seq) FROM outbox), 0),"
        " COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?), 0)) + 1",
        (SEQ_FLOOR,),
    ).fetchone()[0]
    event = make_event(outlet_id, seq, body, at)
    conn.execute(
        "INSERT INTO outbox (seq, event_id, type, customer_id, at, event) VALUES (?, ?, ?, ?, ?, ?)",
        (seq, event.event_id, event.type, event.customer_id, event.at, event.model_dump_json()),
    )
    return event


def pending(conn: sqlite3.Connection, limit: int = 500) -> list[Event]:
    """Unacknowledged events, oldest first."""
    rows = conn.execute(
        "SELECT event FROM outbox WHERE acked = 0 ORDER BY seq LIMIT ?", (limit,)
    ).fetchall()
    return [Event.model_validate_json(r[0]) for r in rows]


def pending_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM outbox WHERE acked = 0").fetchone()[0])


def pending_by_type(conn: sqlite3.Connection) -> dict[str, int]:
    """How many unacknowledged events of each type (`sale.recorded`: 3...)."""
    return {str(t): int(n) for t, n in conn.execute(
        "SELECT type, COUNT(*) FROM outbox WHERE acked = 0 GROUP BY type").fetchall()}


def oldest_pending_at(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT MIN(at) FROM outbox WHERE acked = 0").fetchone()
    return None if row is None else row[0]


def acked_through(conn: sqlite3.Connection) -> int:
    """The last fact HQ has acknowledged (0: none yet)."""
    return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox WHERE acked = 1")
               .fetchone()[0])


def mark_acked(
    conn: sqlite3.Connection, through: int, results: Iterable[dict[str, Any]] = ()
) -> int:
    """Marks every event up to `through` acknowledged, keeping HQ's per-event verdicts."""
    for result in results:
        conn.execute(
            "UPDATE outbox SET result = ? WHERE event_id = ?",
            (json.dumps(result), result["event_id"]),
        )
    cur = conn.execute("UPDATE outbox SET acked = 1 WHERE seq <= ? AND acked = 0", (through,))
    return cur.rowcount


def requeue_after(conn: sqlite3.Connection, after: int) -> int:
    """After HQ went back in time (a new epoch): re-send everything past what it holds,
    with the original ids. Returns how many facts are pending again."""
    return conn.execute("UPDATE outbox SET acked = 0 WHERE seq > ?", (after,)).rowcount


def events_for(conn: sqlite3.Connection, customer_id: str, after_seq: int) -> list[Event]:
    """A customer's local facts newer than `after_seq` (what HQ has not yet folded in)."""
    rows = conn.execute(
        "SELECT event FROM outbox WHERE customer_id = ? AND seq > ? ORDER BY seq",
        (customer_id, after_seq),
    ).fetchall()
    return [Event.model_validate_json(r[0]) for r in rows]


def customers_with_pending(conn: sqlite3.Connection, through: int,
                           customer_ids: Iterable[str]) -> set[str]:
    """Those of `customer_ids` with facts after `through` (what `events_for` would give).
    `customer_ids` is not read at all when no fact is that new (a bootstrap)."""
    if conn.execute("SELECT 1 FROM outbox WHERE seq > ? LIMIT 1", (through,)).fetchone() is None:
        return set()
    return {r[0] for r in conn.execute(
        "SELECT DISTINCT customer_id FROM outbox WHERE seq > ? "
        "AND customer_id IN (SELECT value FROM json_each(?))",
        (through, json.dumps(list(customer_ids))))}


def last_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0])


def seq_floor(conn: sqlite3.Connection) -> int:
    """The highest number HQ was last known to hold for this outlet (0: none known)."""
    return int(meta_in(conn, SEQ_FLOOR, "0") or 0)


def raise_floor(conn: sqlite3.Connection, hq_last_seq: int) -> None:
    """HQ holds this outlet's facts up to `hq_last_seq`: if that is past our own last (the
    database was restored from a backup), the next fact is numbered after HQ's."""
    if hq_last_seq > last_seq(conn):
        set_meta(conn, SEQ_FLOOR, hq_last_seq)


def renumber(conn: sqlite3.Connection, first: int, hq_last_seq: int) -> int:
    """Moves the unacknowledged facts numbered from `first` on past `hq_last_seq` (and past
    our own last), in order and keeping their event ids, with every row of `SEQ_CARRIERS`
    numbered from `first` on. For a database restored from a backup: HQ holds other facts
    under those numbers. Returns how many facts moved."""
    count, lowest = conn.execute(
        "SELECT COUNT(*), MIN(seq) FROM outbox WHERE acked = 0 AND seq >= ?", (first,)
    ).fetchone()
    if not count:
        return 0
    # every new number is above every old one, so no row collides on the way
    offset = max(hq_last_seq, last_seq(conn)) + 1 - int(lowest)
    conn.execute(
        "UPDATE outbox SET seq = seq + ?, event = json_set(event, '$.seq', seq + ?)"
        " WHERE acked = 0 AND seq >= ?", (offset, offset, first))
    for table in SEQ_CARRIERS:
        conn.execute(f"UPDATE {table} SET seq = seq + ? WHERE seq >= ?", (offset, first))
    set_meta(conn, SEQ_FLOOR, hq_last_seq)
    return int(count)
