"""Reading receipts from the `sales` and `sale_lines` tables, which the outlet's replica
and HQ's database both keep in this shape (schema/agent_tables.py, schema/hq_tables.py).

Read-only, on the caller's connection (inside its read transaction, so the lines are those
of the same moment as the sales). Must never: write.
"""

from __future__ import annotations

import sqlite3
from typing import Any

CHUNK = 500  # sale ids per query, well under SQLite's parameter limit


def attach_lines(conn: sqlite3.Connection, sales: list[dict[str, Any]]) -> None:
    """Gives each sale of `sales` (dicts with a `sale_id`) its `lines`, in line order, as
    dicts of every `sale_lines` column; [] for a sale without lines."""
    lines: dict[str, list[dict[str, Any]]] = {}
    ids = [s["sale_id"] for s in sales]
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        marks = ",".join("?" for _ in chunk)
        for r in conn.execute(f"SELECT * FROM sale_lines WHERE sale_id IN ({marks}) "
                              "ORDER BY sale_id, line_no", chunk):
            lines.setdefault(r["sale_id"], []).append(dict(r))
    for s in sales:
        s["lines"] = lines.get(s["sale_id"], [])
