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

from schema.bulk import BIGINT, TEXT, insert_rows
from schema.dialect import Dialect, dialect_of
from schema.ledger import ItemTally, Tally

SUMMED = [
    f.name
    for f in fields(Tally)
    if f.type == "int" and f.name not in ("best_purchase_total",)
]


def add(conn: sqlite3.Connection, customer_id: str, delta: Tally) -> None:
    dialect = dialect_of(conn)
    conn.execute(_one_row("customer_tally", TALLY_COLUMNS, _tally_conflict(dialect)),
                 [customer_id, *(getattr(delta, c) for c in COLUMNS)])
    for sku, item in delta.items.items():
        conn.execute(_one_row("customer_items", ITEM_COLUMNS, _item_conflict(dialect)),
                     (customer_id, sku, item.name, item.qty, item.max_unit_price))
    for sku, qty in delta.gifts.items():
        conn.execute(_one_row("customer_gifts", GIFT_COLUMNS, GIFT_CONFLICT),
                     (customer_id, sku, qty))


# the scalar columns `add_rows` takes after customer_id, in this order
COLUMNS = [*SUMMED, "last_purchase_at", "best_purchase_total", "best_purchase_id"]
# (column, its PostgreSQL type) of each table, for schema/bulk.py
TALLY_COLUMNS = (("customer_id", TEXT),
                 *((c, TEXT if c in ("last_purchase_at", "best_purchase_id") else BIGINT)
                   for c in COLUMNS))
ITEM_COLUMNS = (("customer_id", TEXT), ("sku", TEXT), ("name", TEXT), ("qty", BIGINT),
                ("max_unit_price", BIGINT))
GIFT_COLUMNS = (("customer_id", TEXT), ("sku", TEXT), ("qty", BIGINT))
GIFT_CONFLICT = ("ON CONFLICT (customer_id, sku) DO UPDATE SET "
                 "qty = customer_gifts.qty + excluded.qty")


@functools.cache
def _one_row(table: str, columns: tuple[tuple[str, str], ...], conflict: str) -> str:
    return (f"INSERT INTO {table} ({', '.join(c for c, _ in columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)}) {conflict}")


@functools.cache
def _tally_conflict(dialect: Dialect) -> str:
    """The tally row's upsert; the stored row's columns are named with their table (in an
    upsert PostgreSQL finds a bare name ambiguous), the larger of two by the dialect."""
    greatest = dialect.greatest
    old = "customer_tally"
    sets = ", ".join(f"{c} = {old}.{c} + excluded.{c}" for c in SUMMED)
    return f"""ON CONFLICT (customer_id) DO UPDATE SET {sets},
            last_purchase_at = {greatest(f"{old}.last_purchase_at", "excluded.last_purchase_at")},
            best_purchase_id = CASE WHEN (excluded.best_purchase_total, excluded.best_purchase_id)
                > ({old}.best_purchase_total, {old}.best_purchase_id)
                THEN excluded.best_purchase_id ELSE {old}.best_purchase_id END,
            best_purchase_total = {greatest(f"{old}.best_purchase_total",
                                            "excluded.best_purchase_total")}"""


@functools.cache
def _item_conflict(dialect: Dialect) -> str:
    greatest = dialect.greatest
    old = "customer_items"
    return f"""ON CONFLICT (customer_id, sku) DO UPDATE SET
            qty = {old}.qty + excluded.qty,
            name = CASE WHEN (excluded.max_unit_price, excluded.name)
                > ({old}.max_unit_price, {old}.name) THEN excluded.name ELSE {old}.name END,
            max_unit_price = {greatest(f"{old}.max_unit_price", "excluded.max_unit_price")}"""


def add_rows(conn: sqlite3.Connection, tallies: Sequence[Sequence[object]],
             items: Sequence[tuple[str, str, str, int, int]],
             gifts: Sequence[tuple[str, str, int]]) -> None:
    """`add` for many customers at once (schema/bulk.py: executemany on SQLite, one
    statement per table on PostgreSQL; same upserts): `tallies` rows are (customer_id,
    *COLUMNS), `items` (customer_id, sku, name, qty, max_unit_price), `gifts` (customer_id,
    sku, qty). At most one row per key in each list, so each upsert sees the stored state
    (combine the deltas first: Tally is a commutative monoid)."""
    dialect = dialect_of(conn)
    insert_rows(conn, "customer_tally", TALLY_COLUMNS, tallies, _tally_conflict(dialect))
    insert_rows(conn, "customer_items", ITEM_COLUMNS, items, _item_conflict(dialect))
    insert_rows(conn, "customer_gifts", GIFT_COLUMNS, gifts, GIFT_CONFLICT)


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
