"""Gifts at the reception desk: stock per outlet and redemptions for points.

Promises: a redemption takes the points and the stock in one transaction together with
its fact (which is the hand-out's tax evidence), or refuses with `insufficient_points`,
`out_of_stock`, `gift_unknown`; stock moves (receipts, transfers) are facts too. Must
never: let stock go below zero, or hand out a gift twice for one Idempotency-Key.

The stock itself (the count and a move as a fact) is agent.giftstock's, which the programme
also uses for a fresh outlet's opening stock; this module adds the desk's rules on top.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from agent import identification, outbox, points, receipts
from agent.giftstock import receive, stock_in
from schema import lotstore, tallystore
from schema.api import RedemptionIn
from schema.errors import (
    GiftUnknown,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidRequest,
    OutOfStock,
)
from schema.events import GiftRedeemed, new_id, tally_of, utc_now

if TYPE_CHECKING:
    from agent.outlet import Outlet


def move_stock(outlet: Outlet, sku: str, qty: int, reason: str, reference: str = "") -> int:
    if sku not in outlet.programme.gifts:
        raise GiftUnknown("no such gift", gift=sku)
    if qty == 0:
        raise InvalidRequest("a stock move needs a non-zero quantity")
    if (reason in ("receipt", "transfer_in") and qty < 0) or (reason == "transfer_out" and qty > 0):
        raise InvalidRequest(f"a {reason} moves stock {'in' if reason != 'transfer_out' else 'out'}:"
                             f" give qty {'> 0' if reason != 'transfer_out' else '< 0'}")
    with outlet.db.write() as conn:
        receive(conn, outlet.outlet_id, sku, qty, reason, reference)
        left = stock_in(conn, sku)
    outlet.committed()
    return left


def stock(outlet: Outlet) -> list[dict[str, Any]]:
    rows = {r["gift_sku"]: r["qty"] for r in outlet.db.all("SELECT * FROM gift_stock")}
    return [{"sku": g.sku, "name": g.name, "points_cost": g.points_cost, "stock": rows.get(g.sku, 0)}
            for g in outlet.programme.gifts.values()]


def redeem(outlet: Outlet, body: RedemptionIn, idempotency_key: str | None
           ) -> tuple[dict[str, Any], bool]:
    """(the hand-out's answer, True if it was recorded now / False if replayed for the
    same Idempotency-Key), like `agent.sales.sell`."""
    gift = outlet.programme.gifts.get(body.gift_sku)
    if gift is None:
        raise GiftUnknown("no such gift", gift=body.gift_sku)
    cost = gift.points_cost * body.qty
    digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    with outlet.db.write() as conn:
        if idempotency_key:
            done = conn.execute("SELECT request_hash, response FROM redemptions "
                                "WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
            if done is not None:
                if done["request_hash"] not in (None, digest):
                    raise IdempotencyConflict("this Idempotency-Key was used for another redemption")
                return json.loads(done["response"]), False
        customer = identification.resolve(conn, "card", body.card)
        customer_id = customer["customer_id"]
        balance = tallystore.points_balance(conn, customer_id)
        if balance < cost:
            raise InsufficientPoints(f"needs {cost} points, the card has {balance}",
                                     points_needed=cost, points_balance=balance)
        waiting = points.pending(lotstore.load(conn, customer_id), points.day_of(utc_now()))
        if balance - waiting < cost:
            raise InsufficientPoints(
                f"needs {cost} points, the card has {balance} of which {waiting} are pending "
                "(spendable once the return window of their sale is over): "
                f"{balance - waiting} may be spent now",
                points_needed=cost, points_balance=balance, points_pending=waiting)
        outlet.check_offline_points(conn, customer, cost)
        have = stock_in(conn, gift.sku)
        if have < body.qty:
            raise OutOfStock(f"{gift.name}: {have} left", gift=gift.sku)
        fact = GiftRedeemed(redemption_id=new_id(), customer_id=customer_id, gift_sku=gift.sku,
                            gift_name=gift.name, qty=body.qty, points_spent=cost,
                            till_id=body.till_id)
        event = outbox.append(conn, outlet.outlet_id, fact)
        conn.execute("UPDATE gift_stock SET qty = qty - ? WHERE gift_sku = ?", (body.qty, gift.sku))
        settings = outlet.programme.settings
        held = points.record(conn, settings, customer_id, fact, event.at)
        tallystore.add(conn, customer_id, tally_of(fact, event.at))
        today = points.day_of(event.at)
        notice = receipts.points_notice(points.notice(conn, settings, customer_id, held, today),
                                        points.pending(held, today))
        conn.execute("INSERT INTO ledger (seq, customer_id, kind, points, at) VALUES (?, ?, ?, ?, ?)",
                     (event.seq, customer_id, "points_spent", -cost, event.at))
        new_balance = balance - cost
        answer = {
            "redemption_id": fact.redemption_id,
            "gift_sku": gift.sku,
            "qty": body.qty,
            "points_spent": cost,
            "points_balance": new_balance,
            "receipt_lines": receipts.redemption(outlet.outlet_id, body.card, gift.name, body.qty,
                                                 cost, new_balance, event.at, notice),
        }
        conn.execute(
            "INSERT INTO redemptions (redemption_id, idempotency_key, seq, customer_id, gift_sku, "
            "gift_name, qty, points_spent, till_id, at, response, request_hash)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (fact.redemption_id, idempotency_key, event.seq, customer_id, gift.sku, gift.name,
             body.qty, cost, body.till_id, event.at, json.dumps(answer), digest))
    outlet.committed()
    return answer, True
