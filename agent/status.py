"""The store manager's view of an outlet: sync state, pending facts, counts, errors.

Read-only. Promises: the same figures for `GET /v1/status` and `loyalty status --json`,
the contract's names (`outlet_id`, `pending_events`, `last_sync_at`, `last_sync_error`,
`cursor`) always present, times stored and answered as UTC ISO 8601. `local_time` (owned by
schema/timing.py, shared with the manager's pages) is how a person is shown one of them: the
machine's local time to the minute and how long ago.
Must never: write to the replica.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent import outbox
from schema import timing
from schema.database import Database
from schema.timing import local_time  # noqa: F401  (the name the CLI's status table imports)

if TYPE_CHECKING:
    from agent.outlet import Outlet

STUCK_AFTER_S = 300


def replica_status(db: Database) -> dict[str, Any]:
    with db.read() as conn:
        meta = {r["key"]: r["value"] for r in conn.execute("SELECT key, value FROM meta")}
        pending = outbox.pending_count(conn)
        oldest = outbox.oldest_pending_at(conn)
        counts = {
            "customers": conn.execute("SELECT COUNT(*) FROM customers").fetchone()[0],
            "sales": conn.execute("SELECT COUNT(*) FROM sales").fetchone()[0],
            "redemptions": conn.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0],
            "events": outbox.last_seq(conn),
        }
        last_sale = conn.execute("SELECT MAX(at) FROM sales").fetchone()[0]
    stuck = False
    if oldest:
        age = (datetime.now(UTC) - datetime.fromisoformat(oldest))
        stuck = age.total_seconds() > STUCK_AFTER_S and meta.get("chain") is not None
    return {
        "outlet_id": meta.get("outlet_id"),
        "pending_events": pending,
        "oldest_pending_at": oldest,
        "queue_stuck": stuck,
        "last_sync_at": meta.get("last_sync_at"),
        "last_sync_error": meta.get("last_sync_error"),
        "cursor": int(meta.get("cursor", 0)),
        "hq_epoch": meta.get("hq_epoch"),
        "link": meta.get("link", "router" if meta.get("chain") else "none"),
        "last_sale_at": last_sale,
        "counts": counts,
        "readers": json.loads(meta.get("readers_health", "[]")),
        **_clock(meta),
        **_modem(meta),
    }


def _clock(meta: dict[str, str]) -> dict[str, Any]:
    """This outlet's clock as HQ last measured it (docs/sync.md, "Outlet clocks")."""
    offset = float(meta["clock_offset_s"]) if meta.get("clock_offset_s") else None
    tolerance = float(meta["clock_tolerance_s"]) if meta.get("clock_tolerance_s") else None
    return {"clock_offset_s": offset, "clock_checked_at": meta.get("clock_checked_at"),
            "clock": ("no HQ" if meta.get("chain") is None else "not measured by HQ yet")
            if offset is None else timing.describe_offset(offset, tolerance)}


def _modem(meta: dict[str, str]) -> dict[str, Any]:
    if meta.get("link") != "modem":
        return {}
    session = json.loads(meta["last_session"]) if meta.get("last_session") else None
    return {"next_dial_at": meta.get("next_dial_at") or None, "last_session": session}


def outlet_status(outlet: Outlet) -> dict[str, Any]:
    return replica_status(outlet.db)
