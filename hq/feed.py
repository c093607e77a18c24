"""HQ's side of pull: pages of the compacted change log, rendered from current state.

Promises: entities come in HQ sequence order after the cursor, each as its latest state
(so a bootstrap costs the chain's current size, not its history); urgent changes (bans,
blocked or lost cards) ride at the head of every page until the cursor passes them;
`incorporated_through` and every entity in the page are read in ONE read transaction, so
the page reflects exactly the outlet's events up to it (invariant 4). Outlets see master
data and customers only, never other outlets' tokens, stock or flags.
Must never: write, except the outlet's last-pull time after the page is read.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from hq.chain import Chain
from schema import tallystore
from schema.customerstore import entity
from schema.events import utc_now
from schema.sync import MAX_PAGE, Change, Hello, PullResponse

URGENT_PER_PAGE = 200


def render(conn: sqlite3.Connection, kind: str, key: str) -> dict[str, Any] | None:
    if kind == "customer":
        row = conn.execute("SELECT * FROM customers WHERE customer_id = ?", (key,)).fetchone()
        if row is None:
            return None
        return entity(conn, row, tallystore.load(conn, key).to_dict())
    if kind == "invoice":
        from hq.invoices import document

        return document(conn, key)
    row = conn.execute("SELECT data FROM master WHERE kind = ? AND key = ?", (kind, key)).fetchone()
    return None if row is None else json.loads(row[0])


def hello(chain: Chain, outlet_id: str) -> Hello:
    """What HQ holds of this outlet and how far its change log goes (first in every pass)."""
    with chain.db.read() as conn:
        row = conn.execute("SELECT last_seq, card_range FROM outlets WHERE outlet_id = ?",
                           (outlet_id,)).fetchone()
        head = chain.head(conn)
    return Hello(outlet_id=outlet_id, epoch=chain.epoch, last_seq=row["last_seq"], head=head,
                 card_range=row["card_range"])


def pull(chain: Chain, outlet_id: str, cursor: int, limit: int = 1000) -> PullResponse:
    limit = max(1, min(limit, MAX_PAGE))
    with chain.db.read() as conn:
        conn.execute("BEGIN")
        try:
            page = _page(chain, conn, outlet_id, cursor, limit)
        finally:
            conn.execute("COMMIT")
    with chain.db.write() as conn:
        conn.execute("UPDATE outlets SET last_pull_at = ? WHERE outlet_id = ?", (utc_now(), outlet_id))
    return page


def _page(chain: Chain, conn: sqlite3.Connection, outlet_id: str, cursor: int,
          limit: int) -> PullResponse:
    incorporated = int(conn.execute("SELECT last_seq FROM outlets WHERE outlet_id = ?",
                                    (outlet_id,)).fetchone()[0])
    head = chain.head(conn)
    rows = conn.execute("SELECT kind, key, seq FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
                        (cursor, limit)).fetchall()
    new_cursor = rows[-1]["seq"] if rows else max(cursor, 0)
    urgent = conn.execute(
        "SELECT kind, key, seq FROM changes WHERE urgent = 1 AND seq > ? ORDER BY seq LIMIT ?",
        (new_cursor, URGENT_PER_PAGE)).fetchall()
    changes = [Change(kind=r["kind"], key=r["key"], seq=r["seq"],
                      data=render(conn, r["kind"], r["key"])) for r in [*urgent, *rows]]
    return PullResponse(epoch=chain.epoch, cursor=new_cursor, head=head,
                        incorporated_through=incorporated, more=new_cursor < head,
                        changes=changes)
