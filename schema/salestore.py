"""Reading receipts from the `sales` and `sale_lines` tables (and their returns from
`returns` and `return_lines`), which the outlet's replica and HQ's database both keep in
this shape (schema/agent_tables.py, schema/hq_tables.py).

Read-only, on the caller's connection (inside its read transaction, so the lines are those
of the same moment as the sales). Must never: write.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from schema.reversal import HeldLine, Holding, held

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


# the customer (first ?) and every profile merged into it (second ?)
OWNED = "(SELECT ? UNION ALL SELECT customer_id FROM customers WHERE merged_into = ?)"


def holdings(conn: sqlite3.Connection, customer_id: str) -> list[Holding]:
    """What the customer still holds of each of their sales in this database: the sale less
    the returns of it made by the same customer (schema/reversal.py `held`). A profile's
    sales and returns include those of the profiles merged into it (`merged_into`)."""
    sold: dict[str, tuple[str, int, list[HeldLine]]] = {}
    for r in conn.execute(
            "SELECT s.sale_id, s.at, s.total_net, l.sku, l.name, l.unit_price, l.qty FROM sales s"
            f" JOIN sale_lines l ON l.sale_id = s.sale_id WHERE s.customer_id IN {OWNED}"
            " ORDER BY s.sale_id, l.line_no", (customer_id, customer_id)):
        sold.setdefault(r[0], (r[1], r[2], []))[2].append(HeldLine(r[3], r[4], r[5], r[6]))
    if not sold:
        return []
    value = dict(conn.execute("SELECT sale_id, SUM(value) FROM returns WHERE customer_id IN"
                              f" {OWNED} GROUP BY sale_id", (customer_id, customer_id)).fetchall())
    returned: dict[str, list[tuple[int, str, int]]] = {}
    for r in conn.execute("SELECT r.sale_id, l.line_no, l.sku, l.qty FROM returns r"
                          " JOIN return_lines l ON l.return_id = r.return_id"
                          f" WHERE r.customer_id IN {OWNED}", (customer_id, customer_id)):
        returned.setdefault(r[0], []).append((r[1], r[2], r[3]))
    found = (held(sale_id, at, net, lines, returned.get(sale_id, ()), value.get(sale_id, 0))
             for sale_id, (at, net, lines) in sold.items())
    return [h for h in found if h is not None]
