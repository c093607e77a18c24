"""Gift stock transfers between outlets, ordered at HQ (docs/backoffice.md, "Stock
transfers"): an operator moves some of a gift's stock from one outlet to another.

Why HQ's own fact: an outlet speaks only for itself (docs/design.md), so head office's
order cannot be written as the two outlets' `stock.moved` facts; it is one HQ fact,
`stock.transferred` (schema/events.py), numbered in HQ's own sequence. HQ's projection
(hq/projection.py) moves both outlets' stock at HQ in the same transaction, and the order
reaches the two outlets like master data (hq/feed.py renders it for them only), where each
applies it to its own stock once (agent/giftstock.py `apply_transfer`). No outlet pushes
anything back for it, so HQ never counts it twice.

`preview` says what the order would do ("NORTH: 12 → 7", "SOUTH: 3 → 8") and changes
nothing; `transfer` records it with its audit row (who, each outlet's stock before ->
after, why) in one transaction, its checks made under HQ's fact numbering
(`ingest.making_hq_facts`): two transfers ordered at once never take the same stock twice. Both check the same: a known gift, two different registered
outlets, a whole quantity of at least 1, a reason (InvalidRequest naming the field), and
no more than HQ knows the sender holds (TransferExceedsStock): what the sender's facts have
told HQ so far; a hand-out HQ has not heard of yet may take the outlet below zero when it
applies the order, which HQ then shows too, for an operator to correct.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from hq import audit
from hq.audit import Actor
from hq.chain import Chain
from hq.ingest import making_hq_facts, record_hq_fact
from schema.errors import InvalidRequest, TransferExceedsStock
from schema.events import StockTransferred

MAX_QTY = 1_000_000


def _order(conn: sqlite3.Connection, sku: str, sender: str, receiver: str, qty: int,
           reason: str) -> tuple[StockTransferred, dict[str, int]]:
    """The order, checked, and each outlet's stock as HQ holds it now."""
    sku, sender, receiver = sku.strip(), sender.strip(), receiver.strip()
    if conn.execute("SELECT 1 FROM master WHERE kind = 'gift' AND key = ?",
                    (sku,)).fetchone() is None:
        raise InvalidRequest(f"Gift: {sku or '(none)'} is not in the gift catalogue",
                             field="gift_sku")
    outlets = {r[0] for r in conn.execute("SELECT outlet_id FROM outlets")}
    for name, outlet in (("from_outlet", sender), ("to_outlet", receiver)):
        if outlet not in outlets:
            raise InvalidRequest(f"{'From' if name == 'from_outlet' else 'To'}: "
                                 f"{outlet or '(none)'} is not a registered outlet", field=name)
    if sender == receiver:
        raise InvalidRequest("To: choose another outlet than the one the stock leaves",
                             field="to_outlet")
    if isinstance(qty, bool) or not 1 <= qty <= MAX_QTY:
        raise InvalidRequest(f"Quantity: a whole number from 1 to {MAX_QTY:,}", field="qty")
    if not reason.strip():
        raise InvalidRequest("Reason: say why the stock moves (it is kept in the audit trail)",
                             field="reason")
    held = {outlet: _held(conn, outlet, sku) for outlet in (sender, receiver)}
    if qty > held[sender]:
        raise TransferExceedsStock(
            f"{sender} holds {held[sender]} of {sku} as far as HQ has heard: transfer at most "
            f"{max(held[sender], 0)}, or wait for {sender}'s next sync", gift=sku,
            outlet=sender)
    return StockTransferred(gift_sku=sku, qty=qty, from_outlet=sender, to_outlet=receiver,
                            reason=reason.strip()), held


def _held(conn: sqlite3.Connection, outlet_id: str, sku: str) -> int:
    row = conn.execute("SELECT qty FROM gift_stock WHERE outlet_id = ? AND gift_sku = ?",
                       (outlet_id, sku)).fetchone()
    return 0 if row is None else int(row[0])


def _after(order: StockTransferred, held: dict[str, int]) -> dict[str, int]:
    return {order.from_outlet: held[order.from_outlet] - order.qty,
            order.to_outlet: held[order.to_outlet] + order.qty}


def preview(chain: Chain, sku: str, sender: str, receiver: str, qty: int,
            reason: str = "(preview)") -> dict[str, Any]:
    """What the order would do, without doing it: `before` and `after` (each outlet's stock
    as HQ holds it), `lines` in words ("NORTH: 12 → 7"), the checked `order`."""
    with chain.db.read() as conn:
        order, held = _order(conn, sku, sender, receiver, qty, reason)
    after = _after(order, held)
    return {"order": order, "before": held, "after": after,
            "lines": [f"{outlet}: {held[outlet]} → {after[outlet]}" for outlet in held]}


def transfer(chain: Chain, sku: str, sender: str, receiver: str, qty: int, *, reason: str,
             by: Actor) -> str:
    """Records the order as HQ's fact with its audit row; the fact's id (the transfer's)."""
    with making_hq_facts(chain) as conn:  # two operators at once: the second sees the first
        order, held = _order(conn, sku, sender, receiver, qty, reason)
        event = record_hq_fact(chain, conn, order)
        audit.record(conn, by, "stock.transfer", ("gift", order.gift_sku), held,
                     _after(order, held), order.reason, event_id=event.event_id)
    chain.waiters.notify()
    return event.event_id
