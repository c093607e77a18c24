"""Persisting tallies (schema.ledger) in the `customer_tally`/`_items`/`_gifts` tables.

Both the agent (the cashier's view) and HQ (the authority) keep tallies in tables of this
shape. `add` applies a delta with SQL upserts so a sale writes only the rows it touches;
`load` reads a whole tally back; `replace` overwrites one (used when HQ confirms a newer
state). Must be called inside the caller's write transaction; never commits.
"""

from __future__ import annotations

import sqlite3
from dataclasses import fields

from schema.ledger import ItemTally, Tally

SUMMED = [
    f.name
    for f in fields(Tally)
    if f.type == "int" and f.name not in ("best_purchase_total",)
]


def add(conn: sqlite3.Connection, customer_id: str, delta: Tally) -> None:
    sets = ", ".join(f"{c} = {c} + excluded.{c}" for c in SUMMED)
    cols = [*SUMMED, "last_purchase_at", "best_purchase_total", "best_purchase_id"]
    conn.execute(
        f"""INSERT INTO customer_tally (customer_id, {", ".join(cols)})
        VALUES (?, {", ".join("?" for _ in cols)})
        ON CONFLICT (customer_id) DO UPDATE SET {sets},
            last_purchase_at = max(last_purchase_at, excluded.last_purchase_at),
            best_purchase_id = CASE WHEN (excluded.best_purchase_total, excluded.best_purchase_id)
                > (best_purchase_total, best_purchase_id)
                THEN excluded.best_purchase_id ELSE best_purchase_id END,
            best_purchase_total = max(best_purchase_total, excluded.best_purchase_total)""",
        [customer_id, *(getattr(delta, c) for c in cols)],
    )
    for sku, item in delta.items.items():
        conn.execute(
            """INSERT INTO customer_items (customer_id, sku, name, qty, max_unit_price)
            VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (customer_id, sku) DO UPDATE SET
                qty = qty + excluded.qty,
                name = CASE WHEN (excluded.max_unit_price, excluded.name) > (max_unit_price, name)
                    THEN excluded.name ELSE name END,
                max_unit_price = max(max_unit_price, excluded.max_unit_price)""",
            (customer_id, sku, item.name, item.qty, item.max_unit_price),
        )
    for sku, qty in delta.gifts.items():
        conn.execute(
            """INSERT INTO customer_gifts (customer_id, sku, qty) VALUES (?, ?, ?)
            ON CONFLICT (customer_id, sku) DO UPDATE SET qty = qty + excluded.qty""",
            (customer_id, sku, qty),
        )


def load(conn: sqlite3.Connection, customer_id: str) -> Tally:
    row = conn.execute(
        "SELECT * FROM customer_tally WHERE customer_id = ?", (customer_id,)
    ).fetchone()
    if row is None:
        return Tally()
    scalars = {k: row[k] for k in row.keys() if k != "customer_id"}
    items = {
        r["sku"]: ItemTally(r["name"], r["qty"], r["max_unit_price"])
        for r in conn.execute(
            "SELECT sku, name, qty, max_unit_price FROM customer_items WHERE customer_id = ?",
            (customer_id,),
        )
    }
    gifts = {
        r["sku"]: r["qty"]
        for r in conn.execute(
            "SELECT sku, qty FROM customer_gifts WHERE customer_id = ?", (customer_id,)
        )
    }
    return Tally(**scalars, items=items, gifts=gifts)


def replace(conn: sqlite3.Connection, customer_id: str, tally: Tally) -> None:
    for table in ("customer_tally", "customer_items", "customer_gifts"):
        conn.execute(f"DELETE FROM {table} WHERE customer_id = ?", (customer_id,))
    add(conn, customer_id, tally)


def points_balance(conn: sqlite3.Connection, customer_id: str) -> int:
    row = conn.execute(
        "SELECT points_earned - points_used FROM customer_tally WHERE customer_id = ?",
        (customer_id,),
    ).fetchone()
    return 0 if row is None else int(row[0])
