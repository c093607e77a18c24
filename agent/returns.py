"""Returns and voids at the till, gift returns at the desk, from the local replica alone
(invariant 3; the rules are schema/reversal.py's, docs/programme.md explains them).

Promises:
- A return or void names its sale by `sale_id`, by the receipt reference (this outlet's own
  sales: an indexed prefix of the sale id, schema/receiptcode.py), or by the receipt code
  (any outlet's sale, offline). It is planned against the sale *as recorded* and every
  return of it this outlet has made, so the same receipt returned twice here is refused
  (`return_exceeds_sale`, `already_reversed`), and the points policy decides about points
  already spent (`supervisor_required`).
- A sale this outlet did not make (it knows it only from the code) is returned only with
  the customer's card, and its refund counts against the card category's `floor_returns`
  and the outlet's `outlet_floor_returns` over the return window, from this outlet's own
  rows (`offline_limit_exceeded` beyond): what no outlet can check is bounded in advance.
- The fact, its rows (`returns`, `return_lines` or `gift_returns`), the ledger entries, the
  gift back in stock and the customer's statistics are written in ONE transaction with
  exactly one outbox fact. The same Idempotency-Key returns the first answer, never a
  second return; the same key with another request is `idempotency_conflict`.
- The customer's statistics take the return's sums at once; the maxima a sum cannot undo
  (most expensive purchase, item prices, last purchase) are HQ's to restate, and reach a
  chain outlet with HQ's row. A standalone outlet (no HQ) holds every sale and restates
  them itself.
- A sale older than the programme's return window (its row's time at home, its code's time
  abroad) is refused with `return_window_closed` unless a supervisor approves
  (`approved_by`, recorded in the fact).
- Every refusal changes nothing.
Must never: refund more than the sale's payments, take back more points than it earned,
write a fact for a sale it cannot see (no code, no row), or call HQ.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from agent import identification, outbox, points, receipts
from agent.giftstock import stock_in
from agent.sales import CURRENCY
from schema import events, salestore, tallystore
from schema.api import GiftReturnIn, ReturnIn, VoidIn
from schema.errors import (
    Conflict,
    CustomerUnknown,
    IdempotencyConflict,
    InvalidRequest,
    RedemptionUnknown,
    ReturnWindowClosed,
    SaleUnknown,
)
from schema.events import (
    GiftRedeemed,
    GiftReturned,
    Payment,
    ReturnRecorded,
    SaleLine,
    SaleRecorded,
    new_id,
    tally_of,
)
from schema.receiptcode import (
    CODE_PREFIX,
    check_floor_returns,
    decode,
    reference,
    sale_id_prefix,
)
from schema.reversal import Asked, plan_gift_return, plan_return, plan_void
from schema.timing import canonical, parse

if TYPE_CHECKING:
    from agent.outlet import Outlet


@dataclass(frozen=True)
class Found:
    """The sale a return names, as recorded; `home`: made at this outlet (else known only
    from its receipt code)."""

    sale: SaleRecorded
    home: bool
    at: str
    """When the sale was made: its row's time at home, its receipt code's time abroad."""


def _digest(what: str, target: str, body: BaseModel) -> str:
    canonical_body = json.dumps({"what": what, "target": target,
                                 "body": body.model_dump(mode="json")},
                                sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical_body.encode()).hexdigest()


def _replay(conn: sqlite3.Connection, table: str, key: str | None,
            digest: str) -> dict[str, Any] | None:
    if not key:
        return None
    row = conn.execute(f"SELECT request_hash, response FROM {table} WHERE idempotency_key = ?",
                       (key,)).fetchone()
    if row is None:
        return None
    if row["request_hash"] != digest:
        raise IdempotencyConflict("this Idempotency-Key was used for another return: use a "
                                  "new key for a new return")
    return dict(json.loads(row["response"]))


# --- finding the sale ---------------------------------------------------------------------


def _sale_time(conn: sqlite3.Connection, sale_id: str) -> str:
    row = conn.execute("SELECT at FROM sales WHERE sale_id = ?", (sale_id,)).fetchone()
    return str(row[0])


def _local_sale(conn: sqlite3.Connection, sale_id: str) -> SaleRecorded | None:
    """One of this outlet's sales, rebuilt from its rows exactly as its fact recorded it."""
    row = conn.execute("SELECT * FROM sales WHERE sale_id = ?", (sale_id,)).fetchone()
    if row is None:
        return None
    lines = [SaleLine(sku=r["sku"], name=r["name"], qty=r["qty"], unit_price=r["unit_price"],
                      division=r["division"], gross=r["gross"], discount=r["discount"],
                      net=r["net"], actions=json.loads(r["actions"]))
             for r in conn.execute("SELECT * FROM sale_lines WHERE sale_id = ? ORDER BY line_no",
                                   (sale_id,))]
    payments = [Payment(mode=r["mode"], amount=r["amount"]) for r in conn.execute(
        "SELECT mode, amount FROM payments WHERE sale_id = ? ORDER BY rowid", (sale_id,))]
    return SaleRecorded(sale_id=sale_id, customer_id=row["customer_id"], till_id=row["till_id"],
                        currency=CURRENCY, lines=lines, payments=payments,
                        total_gross=row["total_gross"], total_discount=row["total_discount"],
                        total_net=row["total_net"], points_earned=row["points_earned"])


def _by_reference(conn: sqlite3.Connection, text: str) -> SaleRecorded:
    prefix = sale_id_prefix(text)  # receipt_invalid on a typo
    ids = [r[0] for r in conn.execute("SELECT sale_id FROM sales WHERE sale_id >= ? AND "
                                      "sale_id < ? LIMIT 2", (prefix, prefix + "~"))]
    if not ids:
        raise SaleUnknown(f"receipt {text.strip()[:20]} is not a sale of this outlet: scan the "
                          "receipt's QR code to return a sale made at another outlet")
    if len(ids) > 1:
        raise Conflict("two sales share this receipt reference: name the sale by its sale_id")
    sale = _local_sale(conn, ids[0])
    assert sale is not None
    return sale


def find_sale(outlet: Outlet, conn: sqlite3.Connection, sale_id: str | None,
              receipt: str | None) -> Found:
    """The sale a return names (see the module docstring); `sale_unknown`,
    `receipt_invalid` when there is none to be found."""
    if sale_id is not None:
        sale = _local_sale(conn, sale_id)
        if sale is None:
            raise SaleUnknown(f"sale {sale_id} is not in this outlet's records (made at "
                              "another outlet, or not yet here): scan the receipt's QR code",
                              sale_id=sale_id)
        return Found(sale, True, _sale_time(conn, sale_id))
    text = (receipt or "").strip()
    if not text.upper().startswith(CODE_PREFIX):
        sale = _by_reference(conn, text)
        return Found(sale, True, _sale_time(conn, sale.sale_id))
    data = decode(text)
    if data.outlet_id == outlet.outlet_id:
        mine = _local_sale(conn, data.sale.sale_id)
        if mine is not None:
            return Found(mine, True, _sale_time(conn, mine.sale_id))
    return Found(data.sale, False, data.at)


def _check_window(found: Found, at: str, days: int, approved_by: str | None) -> None:
    """A sale older than the return window comes back only with a supervisor's approval."""
    made = parse(found.at)
    if approved_by is not None or made is None:  # no readable time: the floor bounds it
        return
    if canonical(made) < _window_start(at, days):
        raise ReturnWindowClosed(
            f"this sale was made on {found.at[:10]}, more than {days} days ago (the return "
            "window): a supervisor must approve the return (send it again with approved_by)",
            sale_at=found.at, return_window_days=days)


def _customer(conn: sqlite3.Connection, found: Found, card: str | None) -> sqlite3.Row:
    """The sale's customer; the card, when given (and always for another outlet's sale),
    must be theirs."""
    if card is None and not found.home:
        raise InvalidRequest("card: a return of a sale made at another outlet needs the "
                             "customer's club card")
    customer = conn.execute("SELECT * FROM customers WHERE customer_id = ?",
                            (found.sale.customer_id,)).fetchone()
    if card is not None:
        holder = identification.resolve(conn, "card", card)
        if customer is None or holder["customer_id"] != customer["customer_id"]:
            raise Conflict("this card is not the card the sale was made with: a return goes "
                           "back to the card on the receipt")
    if customer is None:
        raise CustomerUnknown("the sale's customer is not known at this outlet yet: return "
                              "it at the outlet where it was bought")
    return customer


def _card_of(conn: sqlite3.Connection, customer_id: str) -> str:
    row = conn.execute("SELECT value FROM identifiers WHERE customer_id = ? AND kind = 'card' "
                       "ORDER BY value LIMIT 1", (customer_id,)).fetchone()
    return "" if row is None else str(row[0])


def _reference_of(sale_id: str) -> str | None:
    try:
        return reference(sale_id)
    except ValueError:  # not a UUIDv7: a sale with no printed reference
        return None


def _window_start(at: str, days: int) -> str:
    moment = parse(at)
    assert moment is not None  # `events.utc_now()` is always a time
    return canonical(moment - timedelta(days=days))


def _check_abroad(outlet: Outlet, conn: sqlite3.Connection, customer: sqlite3.Row,
                  fact: ReturnRecorded, at: str) -> None:
    """A refund of another outlet's sale stays within the card's and the outlet's bound."""
    settings = outlet.programme.settings.returns
    since = _window_start(at, settings.return_window_days)
    card_total, all_total = conn.execute(
        "SELECT COALESCE(SUM(CASE WHEN customer_id = ? THEN refunded END), 0),"
        " COALESCE(SUM(refunded), 0) FROM returns WHERE home = 0 AND at >= ?",
        (customer["customer_id"], since)).fetchone()
    doc = outlet.programme.categories.get(customer["category"])
    check_floor_returns(int(card_total), sum(r.amount for r in fact.refunds),
                        0 if doc is None else doc.floor_returns,
                        outlet_refunded=int(all_total),
                        outlet_floor=settings.outlet_floor_returns)


def _points_moved(outlet: Outlet, conn: sqlite3.Connection, customer_id: str,
                  fact: ReturnRecorded | GiftReturned, at: str) -> None:
    """What a return or gift return does to the customer's view, in the fact's transaction:
    the point lots move first (agent/points.py `record`, schema/lots.py `apply`: a return
    takes back from its sale's lot first, then in spending order; a gift given back here
    makes a lot of its own until HQ's lots, which know what the redemption took, replace
    the view), then the tally. The points policy in `_reverse` compares with the balance,
    pending points included: they are the customer's, and a return takes back first from
    its own sale's lot, which may well be the pending one. Nothing else here knows about
    points."""
    points.record(conn, outlet.programme.settings, customer_id, fact, at)
    tallystore.add(conn, customer_id, tally_of(fact, at))


# --- returns and voids --------------------------------------------------------------------


def give_back(outlet: Outlet, body: ReturnIn, key: str | None) -> tuple[dict[str, Any], bool]:
    """`POST /v1/returns`: (the return's answer, True if recorded now / False if replayed)."""
    asked = [Asked(ln.sku, ln.qty, ln.line) for ln in body.lines]
    return _reverse(outlet, "return", _digest("return", "", body), key, body.sale_id,
                    body.receipt, body.card, asked, body.till_id, body.reason, body.approved_by)


def void(outlet: Outlet, sale_id: str, body: VoidIn,
         key: str | None) -> tuple[dict[str, Any], bool]:
    """`POST /v1/sales/{sale_id}/void`: the rest of this outlet's sale, given back whole."""
    return _reverse(outlet, "void", _digest("void", sale_id, body), key, sale_id, None, None,
                    None, body.till_id, body.reason, body.approved_by)


def _reverse(outlet: Outlet, kind: str, digest: str, key: str | None, sale_id: str | None,
             receipt: str | None, card: str | None, asked: list[Asked] | None,
             till_id: str | None, reason: str,
             approved_by: str | None) -> tuple[dict[str, Any], bool]:
    with outlet.db.write() as conn:
        replayed = _replay(conn, "returns", key, digest)
        if replayed is not None:
            return replayed, False
        found = find_sale(outlet, conn, sale_id, receipt)
        customer = _customer(conn, found, card)
        customer_id = customer["customer_id"]
        sale = found.sale
        earlier = [ReturnRecorded.model_validate_json(r[0]) for r in conn.execute(
            "SELECT fact FROM returns WHERE sale_id = ? ORDER BY seq", (sale.sale_id,))]
        balance = tallystore.points_balance(conn, customer_id)
        printed = _reference_of(sale.sale_id)
        common: dict[str, Any] = {
            "return_id": new_id(), "balance": balance,
            "settings": outlet.programme.settings.returns, "till_id": till_id,
            "reason": reason, "receipt": printed, "home": found.home,
            "approved_by": approved_by}
        if asked is None:
            fact = plan_void(sale, earlier, **common)
        else:
            fact = plan_return(sale, earlier, asked, **common)
        at = events.utc_now()  # the fact's stamp, so the window it checks is its own
        _check_window(found, at, outlet.programme.settings.returns.return_window_days,
                      approved_by)
        if not found.home:
            _check_abroad(outlet, conn, customer, fact, at)
        event = outbox.append(conn, outlet.outlet_id, fact, at)
        _points_moved(outlet, conn, customer_id, fact, event.at)
        after = tallystore.points_balance(conn, customer_id)
        answer = _answer(outlet, fact, event.at, card or _card_of(conn, customer_id), after)
        _record(conn, fact, event.seq, event.at, key, digest, answer)
        if not outlet.is_chain(conn):  # it holds every sale: it restates as HQ would
            tallystore.restate(conn, customer_id, salestore.holdings(conn, customer_id))
    outlet.committed()
    return answer, True


def _answer(outlet: Outlet, fact: ReturnRecorded, at: str, card: str,
            balance: int) -> dict[str, Any]:
    return {
        "return_id": fact.return_id,
        "kind": fact.kind,
        "sale_id": fact.sale_id,
        "customer_id": fact.customer_id,
        "receipt_reference": fact.receipt,
        "lines": [ln.model_dump() for ln in fact.lines],
        "value": fact.value,
        "refunds": [r.model_dump() for r in fact.refunds],
        "refunded": sum(r.amount for r in fact.refunds),
        "points_reversed": fact.points_reversed,
        "points_withheld": fact.points_withheld,
        "points_balance": balance,
        "closes_sale": fact.closes_sale,
        "receipt_lines": receipts.reversal(
            outlet.outlet_id, card, at, fact.kind, fact.receipt,
            [(ln.name or ln.sku, ln.qty, ln.unit_price, ln.gross, ln.discount)
             for ln in fact.lines],
            [(r.mode, r.amount, r.withheld) for r in fact.refunds],
            fact.points_reversed, fact.points_withheld, balance),
    }


def _record(conn: sqlite3.Connection, fact: ReturnRecorded, seq: int, at: str,
            key: str | None, digest: str, answer: dict[str, Any]) -> None:
    refund = {"cash": 0, "card": 0, "credit": 0}
    for r in fact.refunds:
        refund[r.mode] += r.amount
    refunded = sum(refund.values())
    conn.execute(
        "INSERT INTO returns (return_id, idempotency_key, request_hash, seq, sale_id,"
        " customer_id, kind, till_id, reason, receipt, home, at, gross, discount, value,"
        " refunded, refund_cash, refund_card, refund_credit, withheld, points_reversed,"
        " points_withheld, closes_sale, approved_by, fact, response)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (fact.return_id, key, digest, seq, fact.sale_id, fact.customer_id, fact.kind,
         fact.till_id, fact.reason, fact.receipt, int(fact.home), at,
         sum(ln.gross for ln in fact.lines), sum(ln.discount for ln in fact.lines), fact.value,
         refunded, refund["cash"], refund["card"], refund["credit"],
         sum(r.withheld for r in fact.refunds), fact.points_reversed, fact.points_withheld,
         int(fact.closes_sale), fact.approved_by, fact.model_dump_json(), json.dumps(answer)))
    conn.executemany(
        "INSERT INTO return_lines (return_id, line_no, sku, name, qty, unit_price, gross,"
        " discount, net) VALUES (?,?,?,?,?,?,?,?,?)",
        [(fact.return_id, ln.line, ln.sku, ln.name, ln.qty, ln.unit_price, ln.gross,
          ln.discount, ln.net) for ln in fact.lines])
    entries = [("points_reversed", -fact.points_reversed, 0), ("refund", 0, -refunded)]
    conn.executemany(
        "INSERT INTO ledger (seq, customer_id, kind, points, amount, at) VALUES (?,?,?,?,?,?)",
        [(seq, fact.customer_id, kind, points, amount, at) for kind, points, amount in entries
         if points or amount])


# --- gift returns -------------------------------------------------------------------------


def give_gift_back(outlet: Outlet, redemption_id: str, body: GiftReturnIn,
                   key: str | None) -> tuple[dict[str, Any], bool]:
    """`POST /v1/redemptions/{redemption_id}/return`: (the answer, True if recorded now /
    False if replayed). The gift goes back into this outlet's stock; the points come back."""
    digest = _digest("gift", redemption_id, body)
    with outlet.db.write() as conn:
        replayed = _replay(conn, "gift_returns", key, digest)
        if replayed is not None:
            return replayed, False
        row = conn.execute("SELECT * FROM redemptions WHERE redemption_id = ?",
                           (redemption_id,)).fetchone()
        if row is None:
            raise RedemptionUnknown(f"no hand-out {redemption_id} at this outlet: a gift goes "
                                    "back where it was handed out", redemption_id=redemption_id)
        redemption = GiftRedeemed(redemption_id=redemption_id, customer_id=row["customer_id"],
                                  gift_sku=row["gift_sku"], gift_name=row["gift_name"],
                                  qty=row["qty"], points_spent=row["points_spent"],
                                  till_id=row["till_id"])
        earlier = [GiftReturned(gift_return_id=r["gift_return_id"], redemption_id=redemption_id,
                                customer_id=r["customer_id"], gift_sku=r["gift_sku"],
                                gift_name=r["gift_name"], qty=r["qty"],
                                points_returned=r["points_returned"])
                   for r in conn.execute("SELECT * FROM gift_returns WHERE redemption_id = ? "
                                         "ORDER BY seq", (redemption_id,))]
        fact = plan_gift_return(redemption, earlier, body.qty, gift_return_id=new_id(),
                                till_id=body.till_id, reason=body.reason)
        event = outbox.append(conn, outlet.outlet_id, fact)
        customer_id = fact.customer_id
        conn.execute("INSERT INTO gift_stock (gift_sku, qty) VALUES (?, ?) "
                     "ON CONFLICT (gift_sku) DO UPDATE SET qty = qty + excluded.qty",
                     (fact.gift_sku, fact.qty))
        _points_moved(outlet, conn, customer_id, fact, event.at)
        if fact.points_returned:
            conn.execute("INSERT INTO ledger (seq, customer_id, kind, points, at) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (event.seq, customer_id, "points_returned", fact.points_returned,
                          event.at))
        balance = tallystore.points_balance(conn, customer_id)
        answer = {
            "gift_return_id": fact.gift_return_id,
            "redemption_id": redemption_id,
            "gift_sku": fact.gift_sku,
            "qty": fact.qty,
            "points_returned": fact.points_returned,
            "points_balance": balance,
            "stock": stock_in(conn, fact.gift_sku),
            "receipt_lines": receipts.gift_return(
                outlet.outlet_id, _card_of(conn, customer_id), event.at, fact.gift_name,
                fact.qty, fact.points_returned, balance),
        }
        conn.execute(
            "INSERT INTO gift_returns (gift_return_id, idempotency_key, request_hash, seq,"
            " redemption_id, customer_id, gift_sku, gift_name, qty, points_returned, till_id,"
            " reason, at, response) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (fact.gift_return_id, key, digest, event.seq, redemption_id, customer_id,
             fact.gift_sku, fact.gift_name, fact.qty, fact.points_returned, fact.till_id,
             fact.reason, event.at, json.dumps(answer)))
    outlet.committed()
    return answer, True
