"""The store manager's view of an outlet: sync state, pending facts, counts, errors.

Read-only. Promises: the same figures for `GET /v1/status` and `loyalty status --json`,
the contract's names (`outlet_id`, `pending_events`, `last_sync_at`, `last_sync_error`,
`cursor`) always present, times stored and answered as UTC ISO 8601. `render_status` is the
same figures as text for a person (`loyalty status`, the demo): each time through `local_time`
(owned by schema/timing.py, shared with the manager's pages), the machine's local time to the
minute and how long ago. The figures and their rendering live together, so a new figure is
one edit here; the rendering is plain text (no CLI framework), for any caller.
`sync_state` says the same figures in a store manager's words ("In sync with head
office, last contact 2 minutes ago.").
Must never: write to the replica.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent import outbox
from schema import timing
from schema.database import Database
from schema.timing import local_time

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


def describe_call(session: dict[str, Any] | None) -> str:
    """The modem link's last call, for a person."""
    if not session:
        return "none yet"
    return (f"{session['result']} at {local_time(session['ended_at'])}, "
            f"{session.get('bytes_sent', 0)} B sent, {session.get('bytes_received', 0)} B received"
            + (f", {session['connect_bps']} bit/s" if session.get("connect_bps") else ""))


def render_status(figures: dict[str, Any], verbose: bool = False) -> str:
    """The status as a table of (label, value) rows for a store manager: times local and
    readable. `verbose` adds what an engineer needs (cursor, epoch, the stored times)."""
    counts = figures.get("counts", {})
    rows = [
        ("Outlet", figures["outlet_id"]),
        ("Link", figures.get("link")),
        ("Pending events", figures["pending_events"]),
        ("Oldest pending", local_time(figures.get("oldest_pending_at")) or "-"),
        ("Queue stuck", "YES - check the link to HQ" if figures.get("queue_stuck") else "no"),
        ("Last sync", local_time(figures.get("last_sync_at")) or "never"),
        ("Last sync error", figures.get("last_sync_error") or "-"),
        ("Clock", figures.get("clock") or "-"),
        ("Last sale", local_time(figures.get("last_sale_at")) or "-"),
        ("Customers", counts.get("customers", 0)),
        ("Sales", counts.get("sales", 0)),
        ("Redemptions", counts.get("redemptions", 0)),
    ]
    if "next_dial_at" in figures:
        rows.append(("Next dial", local_time(figures["next_dial_at"]) or "not scheduled"))
        rows.append(("Last call", describe_call(figures.get("last_session"))))
    for reader in figures.get("readers", []):
        rows.append((f"Reader {reader.get('name')}", f"{reader.get('state')} "
                     f"{reader.get('last_error') or ''}".strip()))
    if verbose:
        rows.append(("Cursor", figures["cursor"]))
        rows.append(("HQ epoch", figures.get("hq_epoch") or "-"))
        rows += [(key, value or "-") for key, value in figures.items() if key.endswith("_at")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


# --- the sync state in words (the store manager's dashboard) -----------------------------------
# what each kind of fact is called when it waits to be sent: (one, several)
WAITING_NAMES = {"sale.recorded": ("sale", "sales"),
                 "customer.registered": ("registration", "registrations"),
                 "customer.updated": ("customer change", "customer changes"),
                 "gift.redeemed": ("gift hand-out", "gift hand-outs"),
                 "credit.repaid": ("credit payment", "credit payments"),
                 "stock.moved": ("stock movement", "stock movements"),
                 "visit.recorded": ("visit", "visits")}


@dataclass(frozen=True)
class SyncState:
    level: str  # ok | waiting | attention | alone
    words: str


def sync_state(outlet: Outlet, now: datetime | None = None) -> SyncState:
    """`describe_sync` over this outlet's replica, now."""
    figures = outlet_status(outlet)
    with outlet.db.read() as conn:
        waiting = outbox.pending_by_type(conn)
    return describe_sync(figures, waiting, now or datetime.now(UTC))


def describe_sync(figures: dict[str, Any], waiting: dict[str, int], now: datetime) -> SyncState:
    """The sync state as a store manager reads it: in sync and when HQ was last reached;
    what is waiting to be sent (by kind: "3 sales and 1 registration") and for how long;
    what to do when it has waited too long (check the network, or the modem and the phone
    line); the last error. `figures` are `replica_status`'s, `waiting` counts the pending
    events per type. Pure: `now` is given."""
    link = figures.get("link")
    if link == "none":
        return SyncState("alone", "This outlet works on its own: it is not connected to head "
                                  "office.")
    last = _seconds_since(figures.get("last_sync_at"), now)
    contact = ("last contact just now" if last is not None and last < 60 else
               f"last contact {timing.spoken(last)} ago" if last is not None else
               "no contact with head office yet")
    pending = int(figures.get("pending_events") or 0)
    if not pending:
        if last is None:
            return SyncState("waiting", "Not in contact with head office yet; nothing is "
                                        "waiting to be sent.")
        return SyncState("ok", f"In sync with head office, {contact}.")
    what = _waiting_words(waiting, pending)
    error = figures.get("last_sync_error")
    if error and error[:4].isdigit() and " " in error:  # "2026-03-02T11:59:00Z reason"
        error = error.split(" ", 1)[1]
    tail = f" Last error: {error.rstrip('.')}." if error else ""
    age = _seconds_since(figures.get("oldest_pending_at"), now) or 0.0
    next_dial = _seconds_since(figures.get("next_dial_at"), now)
    if link == "modem" and next_dial is not None and next_dial < 0 and not error:
        at = datetime.fromisoformat(str(figures["next_dial_at"])).astimezone()
        return SyncState("waiting", f"{what} waiting for the next call to head office at "
                                    f"{at:%H:%M}; {contact}.")
    if age > STUCK_AFTER_S:
        todo = "check the modem and the phone line" if link == "modem" else "check the network"
        return SyncState("attention", f"{what} waiting to be sent for {timing.spoken(age)}: "
                                      f"{todo}. {contact.capitalize()}.{tail}")
    return SyncState("ok", f"{what} being sent to head office; {contact}.{tail}")


def _waiting_words(waiting: dict[str, int], pending: int) -> str:
    counted: dict[tuple[str, str], int] = {}
    for kind, n in waiting.items():
        name = WAITING_NAMES.get(kind, ("other change", "other changes"))
        counted[name] = counted.get(name, 0) + n
    if not counted:  # the figures and the counts were read apart: say what the figures say
        counted[("change", "changes")] = pending
    parts = [f"{n} {one if n == 1 else many}"
             for (one, many), n in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _seconds_since(value: Any, now: datetime) -> float | None:
    """Seconds from a stored UTC time to `now` (negative: still to come); None without one."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (now - at).total_seconds()
