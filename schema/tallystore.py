"""Persisting tallies (schema.ledger) in the `customer_tally`/`_items`/`_gifts` tables.

Both the agent (the cashier's view) and HQ (the authority) keep tallies in tables of this
shape. `add` applies a delta with SQL upserts so a sale writes only the rows it touches;
`load` reads a whole tally back (`points_balance` and `credit_outstanding` read one figure,
for the till's path); `replace` overwrites one (used when HQ confirms a newer state). Must
be called inside the caller's write transaction; never commits.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from schema.dialect import Dialect, dialect_of
from schema.ledger import ItemTally, Tally

SUMMED = [
    f.name
    for f in fields(Tally)
    if f.type == "int" and f.name not in ("best_purchase_total",)
]


def add(conn: sqlite3.Connection, customer_id: str, delta: Tally) -> None:
    cols = [*SUMMED, "last_purchase_at", "best_purchase_total", "best_purchase_id"]
    conn.execute(_tally_upsert(dialect_of(conn)), [customer_id, *(getattr(delta, c) for c in cols)])
    for sku, item in delta.items.items():
        conn.execute(_item_upsert(dialect_of(conn)),
                     (customer_id, sku, item.name, item.qty, item.max_unit_price))
    for sku, qty in delta.gifts.items():
        conn.execute(_GIFT_UPSERT, (customer_id, sku, qty))


@functools.cache
def _tally_upsert(dialect: Dialect) -> str:
    """The tally row's upsert; the stored row's columns are named with their table (in an
    upsert PostgreSQL finds a bare name ambiguous), the larger of two by the dialect."""
    greatest = dialect.greatest
    old = "customer_tally"
    sets = ", ".join(f"{c} = {old}.{c} + excluded.{c}" for c in SUMMED)
    return f"""INSERT INTO customer_tally (customer_id, {", ".join(COLUMNS)})
        VALUES (?, {", ".join("?" for _ in COLUMNS)})
        ON CONFLICT (customer_id) DO UPDATE SET {sets},
            last_purchase_at = {greatest(f"{old}.last_purchase_at", "excluded.last_purchase_at")},
            best_purchase_id = CASE WHEN (excluded.best_purchase_total, excluded.best_purchase_id)
                > ({old}.best_purchase_total, {old}.best_purchase_id)
                THEN excluded.best_purchase_id ELSE {old}.best_purchase_id END,
            best_purchase_total = {greatest(f"{old}.best_purchase_total",
                                            "excluded.best_purchase_total")}"""


@functools.cache
def _item_upsert(dialect: Dialect) -> str:
    greatest = dialect.greatest
    old = "customer_items"
    return f"""INSERT INTO customer_items (customer_id, sku, name, qty, max_unit_price)
        VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (customer_id, sku) DO UPDATE SET
            qty = {old}.qty + excluded.qty,
            name = CASE WHEN (excluded.max_unit_price, excluded.name)
                > ({old}.max_unit_price, {old}.name) THEN excluded.name ELSE {old}.name END,
            max_unit_price = {greatest(f"{old}.max_unit_price", "excluded.max_unit_price")}"""


_GIFT_UPSERT = """INSERT INTO customer_gifts (customer_id, sku, qty) VALUES (?, ?, ?)
    ON CONFLICT (customer_id, sku) DO UPDATE SET qty = customer_gifts.qty + excluded.qty"""


# the scalar columns `add_rows` takes after customer_id, in this order
COLUMNS = [*SUMMED, "last_purchase_at", "best_purchase_total", "best_purchase_id"]


def add_rows(conn: sqlite3.Connection, tallies: Sequence[Sequence[object]],
             items: Sequence[tuple[str, str, str, int, int]],
             gifts: Sequence[tuple[str, str, int]]) -> None:
    """`add` for many customers at once (executemany, same upserts): `tallies` rows are
    (customer_id, *COLUMNS), `items` (customer_id, sku, name, qty, max_unit_price), `gifts`
    (customer_id, sku, qty). At most one row per key in each list, so each upsert sees
    the stored state (combine the deltas first: Tally is a commutative monoid)."""
    conn.executemany(_tally_upsert(dialect_of(conn)), tallies)
    conn.executemany(_item_upsert(dialect_of(conn)), items)
    conn.executemany(_GIFT_UPSERT, gifts)


def load(conn: sqlite3.Connection, customer_id: str) -> Tally:
    row = conn.execute(
        "SELECT * FROM customer_tally WHERE customer_id = ?", (customer_id,)
    ).fetchone()
    if row is None:
        return Tally()
    scalars = dict(row)  # a Row maps its column names to values
    del scalars["customer_id"]
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


def replace_many(conn: sqlite3.Connection,
                 tallies: Sequence[tuple[str, Tally | Mapping[str, Any]]]) -> None:
    """`replace` for DISTINCT customers, one statement per table for all of them. A tally
    may come as its wire form (`Tally.to_dict()`) with no items and no gifts."""
    if not tallies:
        return
    ids = json.dumps([customer_id for customer_id, _ in tallies])
    for table in ("customer_tally", "customer_items", "customer_gifts"):
        conn.execute(f"DELETE FROM {table} WHERE customer_id IN (SELECT value FROM json_each(?))",
                     (ids,))
    # on emptied rows `add` is a plain insert of the tally's values
    cols = [*SUMMED, "last_purchase_at", "best_purchase_total", "best_purchase_id"]
    conn.executemany(
        f"INSERT INTO customer_tally (customer_id, {', '.join(cols)}) "
        f"VALUES (?, {', '.join('?' for _ in cols)})",
        [[customer_id, *(getattr(tally, c) for c in cols)] if isinstance(tally, Tally)
         else [customer_id, *(tally[c] for c in cols)] for customer_id, tally in tallies])
    full = [(customer_id, tally) for customer_id, tally in tallies if isinstance(tally, Tally)]
    if len(full) < len(tallies) and any(t.get("items") or t.get("gifts") for _, t in tallies
                                        if not isinstance(t, Tally)):
        raise ValueError("a tally in wire form with items or gifts")
    items = [(customer_id, sku, item.name, item.qty, item.max_unit_price)
             for customer_id, tally in full for sku, item in tally.items.items()]
    if items:
        conn.executemany("INSERT INTO customer_items (customer_id, sku, name, qty, max_unit_price) "
                         "VALUES (?, ?, ?, ?, ?)", items)
    gifts = [(customer_id, sku, qty) for customer_id, tally in full
             for sku, qty in tally.gifts.items()]
    if gifts:
        conn.executemany("INSERT INTO customer_gifts (customer_id, sku, qty) VALUES (?, ?, ?)",
                         gifts)


def points_balance(conn: sqlite3.Connection, customer_id: str) -> int:
    row = conn.execute(
        "SELECT points_earned - points_used FROM customer_tally WHERE customer_id = ?",
        (customer_id,),
    ).fetchone()
    return 0 if row is None else int(row[0])


def credit_outstanding(conn: sqlite3.Connection, customer_id: str) -> int:
    """`load(...).credit_outstanding` without reading the customer's item history (a credit
    sale checks it on the till's path, and a regular's history only grows)."""
    row = conn.execute(
        "SELECT paid_credit - credit_repaid FROM customer_tally WHERE customer_id = ?",
        (customer_id,),
    ).fetchone()
    return 0 if row is None else int(row[0])
