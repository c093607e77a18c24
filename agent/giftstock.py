"""Gift stock at this outlet: how many of each gift are on the shelf, and moving it as a fact.

Promises: `receive` writes the stock move's fact (`stock.moved`) and its local effect in the
caller's transaction, or refuses with `out_of_stock`; stock never goes below zero through
this outlet's own moves. `apply_transfer` applies HQ's stock transfer order (HQ's fact, not
this outlet's: nothing is written to the outbox) once per order, when it is pulled; it moves
the stock as HQ ordered even below zero (HQ checked the sender's stock as far as it had
heard; a hand-out since then shows as a shortfall, at HQ too, for head office to correct).

Why a module of its own: the stock is needed by the gift desk (agent.gifts: stock moves and
redemptions) and by agent.programme, which receives the sample gifts' opening stock when it
seeds a fresh replica. Both sit on it; it works on a connection and imports no service
module and no `Outlet`, so the programme an `Outlet` loads never reaches back to a service.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from agent import outbox
from schema.errors import OutOfStock
from schema.events import StockMoved, utc_now


def receive(conn: sqlite3.Connection, outlet_id: str, sku: str, qty: int, reason: str,
            reference: str = "") -> None:
    """Moves `qty` (negative: out) of a gift's stock at this outlet, as a fact."""
    have = stock_in(conn, sku)
    if have + qty < 0:
        raise OutOfStock(f"only {have} in stock", gift=sku)
    outbox.append(conn, outlet_id, StockMoved(gift_sku=sku, qty=qty, reason=reason,
                                              reference=reference))
    conn.execute("INSERT INTO gift_stock (gift_sku, qty) VALUES (?, ?) "
                 "ON CONFLICT (gift_sku) DO UPDATE SET qty = qty + excluded.qty", (sku, qty))


def stock_in(conn: sqlite3.Connection, sku: str) -> int:
    row = conn.execute("SELECT qty FROM gift_stock WHERE gift_sku = ?", (sku,)).fetchone()
    return 0 if row is None else int(row[0])


def apply_transfer(conn: sqlite3.Connection, outlet_id: str, order: dict[str, Any] | None
                   ) -> None:
    """HQ's transfer order (hq/feed.py `_transfer`), pulled: this outlet's stock moves out
    (it is the sender) or in (the receiver), once per `transfer_id`; an order for other
    outlets (None) changes nothing."""
    if order is None or outlet_id not in (order["from_outlet"], order["to_outlet"]):
        return
    qty = int(order["qty"]) * (-1 if order["from_outlet"] == outlet_id else 1)
    if conn.execute("INSERT INTO stock_transfers (transfer_id, gift_sku, qty, applied_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (transfer_id) DO NOTHING",
                    (order["transfer_id"], order["gift_sku"], qty, utc_now())).rowcount == 0:
        return
    conn.execute("INSERT INTO gift_stock (gift_sku, qty) VALUES (?, ?) "
                 "ON CONFLICT (gift_sku) DO UPDATE SET qty = qty + excluded.qty",
                 (order["gift_sku"], qty))
