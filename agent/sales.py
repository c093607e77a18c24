"""Quotes and sales at the till, from the local replica alone (invariant 3).

Promises: a quote prices a basket for an identified customer; a sale writes the sale, its
lines, its payments, its ledger entries (points earned, discount given, internal-credit
charge), the customer's statistics and exactly one outbox fact in ONE transaction; its
answer carries the receipt reference and receipt code a return names it by
(schema/receiptcode.py), and its receipt ends with head office's announcements for the
customer marked "print on the receipt" (docs/greetings.md). The
same Idempotency-Key returns the first answer, never a second sale. Refusals
(`card_banned`, `credit_limit_exceeded`, `payment_mismatch`, ...) change nothing.
Must never: sell to a banned customer, let payments differ from the total, or use floats.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent import identification, outbox, points, pricing, receipts
from schema import tallystore
from schema.api import LineIn, QuoteIn, Sale, SaleIn
from schema.errors import (
    Conflict,
    CreditBlocked,
    CreditLimitExceeded,
    IdempotencyConflict,
    InvalidRequest,
    LoyaltyError,
    PaymentMismatch,
)
from schema.events import Payment, SaleLine, SaleRecorded, new_id, tally_of
from schema.ledger import credit_available
from schema.money import money
from schema.receiptcode import encode, reference

if TYPE_CHECKING:
    from agent.outlet import Outlet

CURRENCY = "EUR"


def price(outlet: Outlet, customer: sqlite3.Row, lines: list[LineIn], order_promo: str | None,
          table: str | None) -> pricing.Quote:
    who = pricing.Customer(
        customer_code=customer["code"] or customer["customer_id"],
        category=customer["category"],
        promotion=customer["promo_category"],
        action_codes=frozenset(json.loads(customer["approved_actions"])),
        banned=customer["status"] == "banned",
    )
    basket = [pricing.Line(ln.sku, ln.name, ln.qty, ln.unit_price, ln.division, ln.promo)
              for ln in lines]
    return pricing.price_basket(who, basket, outlet.programme.rules, datetime.now(UTC),
                                order_promo=order_promo, table_promo=table)


def quote_view(priced: pricing.Quote) -> dict[str, Any]:
    return {
        "lines": [
            {"sku": ln.sku, "name": ln.name, "qty": ln.qty, "unit_price": ln.unit_price,
             "division": ln.division, "gross": ln.gross, "discount": ln.discount, "net": ln.net,
             "actions": list(ln.actions)}
            for ln in priced.lines
        ],
        "total_gross": priced.total_gross,
        "total_discount": priced.total_discount,
        "total_net": priced.total_net,
        "points_to_earn": priced.points_to_earn,
        "receipt_lines": list(priced.receipt_lines),
    }


def quote(outlet: Outlet, body: QuoteIn) -> dict[str, Any]:
    with outlet.db.read() as conn:
        customer = identification.resolve(conn, "card", body.card)
    priced = price(outlet, customer, body.lines, body.order_promo, body.table)
    held = outlet.quotes.hold(customer["customer_id"], body.card, priced)
    return {"quote_id": held.quote_id, "customer_id": customer["customer_id"], **quote_view(priced)}


def request_hash(body: SaleIn) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Sold:
    """A sale's answer as the till gets it: the `schema.api.Sale` model serialised once,
    stored with the sale and sent as stored (a replay answers the same bytes); and whether
    the sale was recorded now (False: a replay)."""

    text: str
    fresh: bool

    def answer(self) -> dict[str, Any]:
        return dict(json.loads(self.text))


def _replay(conn: sqlite3.Connection, key: str | None, digest: str) -> Sold | None:
    """The first answer to this Idempotency-Key, as stored; a conflict if the key was used
    for another body."""
    if not key:
        return None
    row = conn.execute("SELECT request_hash, response FROM sales WHERE idempotency_key = ?",
                       (key,)).fetchone()
    if row is None:
        return None
    if row["request_hash"] != digest:
        raise IdempotencyConflict("this Idempotency-Key was used for a different sale")
    return Sold(row["response"], fresh=False)


def sell(outlet: Outlet, body: SaleIn, key: str | None) -> tuple[dict[str, Any], bool]:
    """(the sale's answer, True if it was recorded now / False if replayed)."""
    sold = record(outlet, body, key)
    return sold.answer(), sold.fresh


def record(outlet: Outlet, body: SaleIn, key: str | None) -> Sold:
    """Records the sale (or replays the first one made with `key`).

    The key is checked inside the write transaction, which runs every statement of a sale
    by quote (a sale by card first reads the card, to price its basket outside the write
    lock). A refusal found before the write (the quote is gone, the payments do not add up,
    the card is refused) first asks whether `key` already made a sale: a retry answers as
    the first time, and a key reused for another body is `idempotency_conflict`."""
    digest = request_hash(body)
    try:
        card, expected, priced = _basket(outlet, body)
    except LoyaltyError:
        replayed = _replayed(outlet, key, digest)
        if replayed is not None:
            return replayed
        raise
    with outlet.db.write() as conn:
        replayed = _replay(conn, key, digest)
        if replayed is not None:
            return replayed
        customer = identification.resolve(conn, "card", card)
        if customer["customer_id"] != expected:
            raise Conflict("the card now belongs to another customer: quote again")
        sold = _write(outlet, conn, customer, card, priced, body, key, digest)
    outlet.committed()
    if body.quote_id:
        outlet.quotes.forget(body.quote_id)
    return sold


def _replayed(outlet: Outlet, key: str | None, digest: str) -> Sold | None:
    if not key:
        return None
    with outlet.db.read() as conn:
        return _replay(conn, key, digest)


def _basket(outlet: Outlet, body: SaleIn) -> tuple[str, str, pricing.Quote]:
    """(card, its customer's id, the priced basket) of a sale whose payments add up."""
    if body.quote_id:
        held = outlet.quotes.get(body.quote_id)
        card, expected, priced = held.card, held.customer_id, held.priced
    else:
        if body.card is None or body.lines is None:  # SaleIn checks it; callers may not
            raise InvalidRequest("quote_id: send a quote_id, or card and lines")
        with outlet.db.read() as conn:
            customer = identification.resolve(conn, "card", body.card)
        card, expected = body.card, customer["customer_id"]
        priced = price(outlet, customer, body.lines, body.order_promo, body.table)
    paid = sum(p.amount for p in body.payments)
    if paid != priced.total_net:
        raise PaymentMismatch(f"payments add up to {money(paid)}, the sale is "
                              f"{money(priced.total_net)}",
                              total_net=priced.total_net, paid=paid)
    return card, expected, priced


def _check_credit(outlet: Outlet, conn: sqlite3.Connection, customer: sqlite3.Row,
                  credit: int) -> None:
    if credit == 0:
        return
    if customer["credit_blocked"]:
        raise CreditBlocked("internal credit is blocked: an invoice is past its payment term")
    limit = outlet.credit_limit(customer["category"])
    owed = tallystore.credit_outstanding(conn, customer["customer_id"])
    if credit > credit_available(limit, owed):
        raise CreditLimitExceeded(
            f"internal credit limit {money(limit)}, owed {money(owed)}",
            credit_limit=limit, credit_outstanding=owed)
    outlet.check_offline_credit(conn, customer, credit)


def _write(outlet: Outlet, conn: sqlite3.Connection, customer: sqlite3.Row, card: str,
           priced: pricing.Quote, body: SaleIn, key: str | None, digest: str) -> Sold:
    customer_id = customer["customer_id"]
    credit = sum(p.amount for p in body.payments if p.mode == "credit")
    _check_credit(outlet, conn, customer, credit)
    fact = SaleRecorded(
        sale_id=new_id(), customer_id=customer_id, till_id=body.till_id, currency=CURRENCY,
        lines=[SaleLine(sku=ln.sku, name=ln.name, qty=ln.qty, unit_price=ln.unit_price,
                        division=ln.division, gross=ln.gross, discount=ln.discount, net=ln.net,
                        actions=list(ln.actions)) for ln in priced.lines],
        payments=[Payment(mode=p.mode, amount=p.amount) for p in body.payments],
        total_gross=priced.total_gross, total_discount=priced.total_discount,
        total_net=priced.total_net, points_earned=priced.points_to_earn,
    )
    event = outbox.append(conn, outlet.outlet_id, fact)
    settings = outlet.programme.settings
    held = points.record(conn, settings, customer_id, fact, event.at)
    tallystore.add(conn, customer_id, tally_of(fact, event.at))
    balance = tallystore.points_balance(conn, customer_id)
    today = points.day_of(event.at)
    notice = receipts.points_notice(points.notice(conn, settings, customer_id, held, today),
                                    points.pending(held, today))
    printed = reference(fact.sale_id)
    answer = Sale(
        sale_id=fact.sale_id,
        customer_id=customer_id,
        total_gross=fact.total_gross,
        total_discount=fact.total_discount,
        total_net=fact.total_net,
        points_earned=fact.points_earned,
        points_balance=balance,
        receipt_lines=receipts.sale(outlet.outlet_id, card, event.at, priced.receipt_lines,
                                    fact.points_earned, balance,
                                    [(p.mode, p.amount) for p in fact.payments], notice=notice,
                                    reference=printed,
                                    notes=identification.receipt_notes(outlet, conn, customer)),
        receipt_reference=printed,
        receipt_code=encode(outlet.outlet_id, event.at, fact),
    )
    sold = Sold(answer.model_dump_json(), fresh=True)
    _project(conn, fact, event.seq, event.at, key, digest, sold.text)
    return sold


def _project(conn: sqlite3.Connection, fact: SaleRecorded, seq: int, at: str, key: str | None,
             digest: str, answer: str) -> None:
    conn.execute(
        "INSERT INTO sales (sale_id, idempotency_key, request_hash, seq, customer_id, till_id, at,"
        " total_gross, total_discount, total_net, points_earned, response)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (fact.sale_id, key, digest, seq, fact.customer_id, fact.till_id, at, fact.total_gross,
         fact.total_discount, fact.total_net, fact.points_earned, answer))
    conn.executemany(
        "INSERT INTO sale_lines (sale_id, line_no, sku, name, division, qty, unit_price, gross,"
        " discount, net, actions) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        [(fact.sale_id, i, ln.sku, ln.name, ln.division, ln.qty, ln.unit_price, ln.gross,
          ln.discount, ln.net, json.dumps(ln.actions)) for i, ln in enumerate(fact.lines)])
    conn.executemany("INSERT INTO payments (sale_id, mode, amount) VALUES (?, ?, ?)",
                     [(fact.sale_id, p.mode, p.amount) for p in fact.payments])
    entries = [("points_earned", fact.points_earned, 0), ("discount", 0, fact.total_discount)]
    credit = sum(p.amount for p in fact.payments if p.mode == "credit")
    if credit:
        entries.append(("credit_charge", 0, credit))
    conn.executemany(
        "INSERT INTO ledger (seq, customer_id, kind, points, amount, at) VALUES (?,?,?,?,?,?)",
        [(seq, fact.customer_id, kind, pts, amt, at) for kind, pts, amt in entries])
