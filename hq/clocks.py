"""HQ's watch over outlet clocks (docs/sync.md, "Outlet clocks").

Every hello and push of a current outlet carries its clock (`sent_at`); HQ compares it with
its own at receipt and keeps, per outlet, the offset (outlet minus HQ, seconds) and when it
was measured. Facts whose stamp HQ could not use (schema/timing.py: not a time, after HQ
received them, before the outlet existed) are booked at HQ's receive time and counted here.

Promises: at most ONE open flag per outlet about its time (`outlets.clock_flag_id`),
raised when the measured offset is over the tolerance or a fact had to be re-dated, its
reason kept current (the offset, how many facts were re-dated since it opened); it is
resolved by HQ itself once a measurement shows the clock back within the tolerance and no
fact of that exchange was re-dated. An operator may resolve it earlier; the next problem
then opens a new one. Runs inside the caller's transaction. Must never: reject or rewrite
a fact, or read the wall clock itself (the caller passes HQ's receive time).
"""

from __future__ import annotations

import sqlite3

from schema import timing


def settle(conn: sqlite3.Connection, outlet_id: str, sent_at: str | None, received: str,
           tolerance_s: float, redated: int = 0) -> float | None:
    """Records the offset measured from `sent_at` (if the outlet sent its time) and the
    facts of this exchange booked at receive time; raises, updates or resolves the
    outlet's flag. Returns the offset, None when nothing was measured."""
    offset = timing.offset_s(sent_at, received)
    row = conn.execute("SELECT clock_offset_s, clock_flag_id, clock_redated FROM outlets "
                       "WHERE outlet_id = ?", (outlet_id,)).fetchone()
    if row is None:  # HQ's own facts
        return offset
    if offset is not None:
        conn.execute("UPDATE outlets SET clock_offset_s = ?, clock_measured_at = ? "
                     "WHERE outlet_id = ?", (offset, received, outlet_id))
    latest = offset if offset is not None else row[0]
    off = latest is not None and abs(latest) > tolerance_s
    flag_id = _open_flag(conn, row[1])
    if (offset is not None and off) or redated:
        count = (row[2] if flag_id is not None else 0) + redated
        reason = _reason(latest if off else None, tolerance_s, count)
        if flag_id is None:
            flag_id = int(conn.execute(  # RETURNING: both stores (no lastrowid on PostgreSQL)
                "INSERT INTO flags (outlet_id, reason, at) VALUES (?, ?, ?) RETURNING flag_id",
                (outlet_id, reason, received)).fetchone()[0])
        else:
            conn.execute("UPDATE flags SET reason = ? WHERE flag_id = ?", (reason, flag_id))
        conn.execute("UPDATE outlets SET clock_flag_id = ?, clock_redated = ? "
                     "WHERE outlet_id = ?", (flag_id, count, outlet_id))
    elif offset is not None and flag_id is not None:
        conn.execute("UPDATE flags SET resolved_at = ?, detail = COALESCE(detail || ' ', '') || ?"
                     " WHERE flag_id = ?",
                     (received, f"[HQ] clock {timing.describe_offset(offset, tolerance_s)}",
                      flag_id))
        conn.execute("UPDATE outlets SET clock_flag_id = NULL, clock_redated = 0 "
                     "WHERE outlet_id = ?", (outlet_id,))
    return offset


def _open_flag(conn: sqlite3.Connection, flag_id: int | None) -> int | None:
    if flag_id is None:
        return None
    row = conn.execute("SELECT resolved_at FROM flags WHERE flag_id = ?", (flag_id,)).fetchone()
    return flag_id if row is not None and row[0] is None else None


def _reason(offset: float | None, tolerance_s: float, redated: int) -> str:
    parts = []
    if offset is not None:
        parts.append(f"outlet clock {timing.describe_offset(offset, tolerance_s)}")
    if redated:
        facts = "1 fact" if redated == 1 else f"{redated} facts"
        parts.append(f"{facts} stamped implausibly booked at HQ's receive time (kept as sent "
                     "in the ledger)")
    return "; ".join(parts)
