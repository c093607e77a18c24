"""The outlet's outbox: every local fact, in gap-free local sequence, awaiting HQ.

`append` is called inside the same write transaction that records the fact's local
effects, so a fact and its outbox row commit together or not at all (invariant 2). The
sequence is gap-free because it is taken as max+1 under SQLite's write lock. Rows are
marked acknowledged when HQ reports `acked_through`; they are never deleted here (they
are the outlet's own event log). Must never: renumber, edit or drop an event.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from schema.events import Body, Event, make_event


def append(conn: sqlite3.Connection, outlet_id: str, body: Body, at: str | None = None) -> Event:
    # seq_floor: HQ holds events numbered past this database's (it was restored).
    seq = conn.execute(
        "SELECT MAX(COALESCE((SELECT MAX(seq) FROM outbox), 0),"
        " COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'seq_floor'), 0)) + 1"
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


def oldest_pending_at(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT MIN(at) FROM outbox WHERE acked = 0").fetchone()
    return None if row is None else row[0]


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


def mark_all_unacked(conn: sqlite3.Connection, after: int) -> int:
    """After HQ went back in time (a new epoch): re-send everything past what it holds."""
    return conn.execute("UPDATE outbox SET acked = 0 WHERE seq > ?", (after,)).rowcount


def events_for(conn: sqlite3.Connection, customer_id: str, after_seq: int) -> list[Event]:
    """A customer's local facts newer than `after_seq` (what HQ has not yet folded in)."""
    rows = conn.execute(
        "SELECT event FROM outbox WHERE customer_id = ? AND seq > ? ORDER BY seq",
        (customer_id, after_seq),
    ).fetchall()
    return [Event.model_validate_json(r[0]) for r in rows]


def last_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0])
