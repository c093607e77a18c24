"""Consolidated invoices for cards used as internal credit (issue 6).

At the end of each period (APScheduler at HQ; `close_period` with explicit dates), every
customer with credit purchases in the period gets ONE invoice listing them, with a number,
issue date, amount, payment term and the period. Payments are facts: at a till (an
outlet's `credit.repaid` with the invoice id) or at the bank (an operator with the
statement reference, recorded as HQ's own fact). `refresh` moves invoices along
unpaid -> overdue (due date passed) -> past_term (grace passed too) on the date it is
given (a controlled clock in tests), and blocks credit for customers past term when the
policy says so; the block travels to every till. Every invoice answer carries its
`payment_reference`, the ISO 11649 RF reference made from its number
(`banking.creditorref.for_invoice`: derived, so it is the same wherever it is shown), and
`record_bank_payment` is the one way a bank payment is stamped: the back office's form, the
admin API and a statement import (hq/statements.py) all go through it.
Returns (docs/invoices.md, "Returns on the invoice"): the internal credit a return or void
refunded is a credit line on the customer's invoice, naming the return and its sale,
deducted from the invoice of the close that first sees it: the period it was booked in
(with its sale, when the sale is billed in the same period), or, when the sale's invoice
is already issued, the next invoice. A credit waits for a close where the customer has
purchases to bill, and for its sale to have reached HQ. An invoice never goes below zero:
what a close's purchases cannot absorb stays carried, in return order, to the next one;
an invoice the credits bring to zero is issued paid.
Promises: a credit sale is on exactly one invoice; every credit refunded is deducted once,
in total, over the invoices (`carried_credit` is what is not deducted yet), so the
invoices less what is carried are the credit sales less the credit refunds; an invoice's
amount is the sum of its items less its credits, never below zero; closing a period
invoices every credit sale dated before the period's end that is on no invoice yet, so a
sale that reached HQ late (an outlet offline over a period's end, however long) is billed
at the next close, dated as it was made; closing the same period twice adds nothing new
except such late arrivals. Must never: edit an issued invoice's amount or lines, or read
the wall clock itself.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from banking import creditorref
from hq import audit
from hq.audit import Actor
from hq.chain import Chain
from hq.ingest import HQ_FACTS, record_hq_fact
from hq.store import serialise, take
from schema.dialect import dialect_of
from schema.errors import InvalidRequest, NotFound
from schema.events import CreditRepaid, new_id
from schema.ledger import refuse_overpayment
from schema.money import money
from schema.receiptcode import reference

FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9000, 12, 31)
# Invoices are in the currency the tills sell in (agent/sales.py CURRENCY): one setting for
# both once a chain outside the euro area comes.
CURRENCY = "EUR"


def payment_reference(number: str) -> str:
    """The RF creditor reference printed on invoice `number` (`RF462026000123`)."""
    return creditorref.for_invoice(number)


def business_day(value: date, field: str) -> date:
    """`value` when it is a day HQ can compute periods, terms and windows from; dates at
    the ends of the calendar (0001-01-01 minus a grace period overflows) are the caller's
    mistake: `invalid_request` naming the field (docs/backoffice.md)."""
    if not FIRST_DAY <= value <= LAST_DAY:
        raise InvalidRequest(f"{field}: {value.isoformat()} is out of range: give a date "
                             f"from {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}")
    return value


@dataclass(frozen=True)
class Policy:
    term_days: int = 14
    grace_days: int = 30
    block_credit_past_term: bool = True


def close_period(chain: Chain, period_from: date, period_to: date, issued_on: date,
                 policy: Policy = Policy()) -> list[dict[str, Any]]:
    """Invoices every credit purchase before `period_to` that is on no invoice yet (those
    of the period, and any earlier ones that arrived late)."""
    business_day(period_from, "period_from")
    business_day(period_to, "period_to")
    business_day(issued_on, "issued_on")
    if period_to <= period_from:
        raise InvalidRequest("a period ends after it starts")
    end = period_to.isoformat()
    made = []
    with chain.db.write() as conn:
        serialise(conn, "invoice-close")  # another HQ process closing: after it, not beside
        rows = conn.execute(
            "SELECT s.customer_id, s.sale_id, s.outlet_id, s.at, s.paid_credit FROM sales s "
            "LEFT JOIN invoice_items i ON i.sale_id = s.sale_id "
            "WHERE s.paid_credit > 0 AND s.at < ? AND i.sale_id IS NULL "
            "ORDER BY s.customer_id, s.at", (end,)).fetchall()
        by_customer: dict[str, list[sqlite3.Row]] = {}
        for row in rows:
            by_customer.setdefault(row["customer_id"], []).append(row)
        credits = _credits_left(conn, end, set(by_customer))
        for customer_id, items in by_customer.items():
            made.append(_issue(chain, conn, customer_id, items, credits.get(customer_id, []),
                               period_from, period_to, issued_on, policy))
    chain.waiters.notify()
    return made


_CREDITS_LEFT = """
    SELECT rt.return_id, rt.customer_id, rt.sale_id, rt.outlet_id, rt.at,
           rt.refund_credit - COALESCE((SELECT SUM(c.amount) FROM invoice_credits c
                                        WHERE c.return_id = rt.return_id), 0) AS left
    FROM returns rt
    WHERE rt.refund_credit > 0 AND rt.sale_known = 1 AND rt.at < ? {who}
    ORDER BY rt.customer_id, rt.at, rt.return_id"""


def _credits_left(conn: sqlite3.Connection, end: str,
                  customers: set[str]) -> dict[str, list[tuple[sqlite3.Row, int]]]:
    """Per customer among `customers`: the return credits booked before `end` not yet
    deducted in full, oldest first, with what is left of each."""
    found: dict[str, list[tuple[sqlite3.Row, int]]] = {}
    if not customers:
        return found
    ids = sorted(customers)
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        who = f"AND rt.customer_id IN ({', '.join('?' for _ in chunk)})"
        for row in conn.execute(_CREDITS_LEFT.format(who=who), (end, *chunk)):
            if row["left"] > 0:
                found.setdefault(row["customer_id"], []).append((row, int(row["left"])))
    return found


def carried_credit(chain: Chain, customer_id: str) -> int:
    """The return credits of `customer_id` no invoice has deducted yet (minor units): they
    wait for the customer's next invoice."""
    with chain.db.read() as conn:
        rows = conn.execute(_CREDITS_LEFT.format(who="AND rt.customer_id = ?"),
                            ("9999-12-31T23:59:59Z", customer_id)).fetchall()
    return sum(max(int(r["left"]), 0) for r in rows)


def _issue(chain: Chain, conn: sqlite3.Connection, customer_id: str, items: list[sqlite3.Row],
           credits: list[tuple[sqlite3.Row, int]], period_from: date, period_to: date,
           issued_on: date, policy: Policy) -> dict[str, Any]:
    year = issued_on.year
    number = f"{year}-{_next_in_year(conn, year):06d}"
    invoice_id = new_id()
    amount = sum(r["paid_credit"] for r in items)
    deducted = []  # oldest return first, never below zero (the rest waits)
    for row, left in credits:
        take = min(left, amount)
        if take <= 0:
            break
        deducted.append((invoice_id, row["return_id"], row["sale_id"], row["outlet_id"],
                         row["at"], take))
        amount -= take
    due_on = issued_on + timedelta(days=policy.term_days)
    conn.execute(
        "INSERT INTO invoices (invoice_id, number, customer_id, period_from, period_to, issued_on,"
        " due_on, amount, status, paid_on, paid_via) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (invoice_id, number, customer_id, period_from.isoformat(), period_to.isoformat(),
         issued_on.isoformat(), due_on.isoformat(), amount,
         *(("paid", issued_on.isoformat(), "returns") if amount == 0 else ("unpaid", None, None))))
    conn.executemany("INSERT INTO invoice_items (invoice_id, sale_id, outlet_id, at, amount) "
                     "VALUES (?,?,?,?,?)",
                     [(invoice_id, r["sale_id"], r["outlet_id"], r["at"], r["paid_credit"])
                      for r in items])
    conn.executemany("INSERT INTO invoice_credits (invoice_id, return_id, sale_id, outlet_id, at,"
                     " amount) VALUES (?,?,?,?,?,?)", deducted)
    chain.bump(conn, "invoice", invoice_id)
    return {"invoice_id": invoice_id, "number": number, "customer_id": customer_id,
            "amount": amount, "due_on": due_on.isoformat(), "items": len(items),
            "credits": len(deducted)}


def _next_in_year(conn: Any, year: int) -> int:
    """The next invoice number of `year` (1, 2, ...), inside the caller's write transaction.
    SQLite: how many the year has, plus one (one writer: nothing commits in between).
    PostgreSQL: the year's counter row (`invoices-YYYY`, started at the year's count the
    first time), taken and so locked until the transaction ends: two HQ processes closing
    at once never give one number twice, never fail on the unique number (never MAX()+1)."""
    if dialect_of(conn).postgres:
        conn.execute("INSERT INTO counters (name, value) SELECT ?, COUNT(*) FROM invoices "
                     "WHERE number LIKE ? ON CONFLICT (name) DO NOTHING",
                     (f"invoices-{year}", f"{year}-%"))
        return take(conn, f"invoices-{year}")
    return int(conn.execute("SELECT COUNT(*) FROM invoices WHERE number LIKE ?",
                            (f"{year}-%",)).fetchone()[0]) + 1


def pay_at_bank(chain: Chain, number: str, amount: int, reference: str, *,
                by: Actor) -> dict[str, Any]:
    """A payment received at the bank, stamped by hand by `by` (the back office, the admin
    API), and audited with the invoice before and after."""
    with chain.db.write() as conn:
        record_bank_payment(chain, conn, number, amount, reference, by=by)
    chain.waiters.notify()
    return invoice(chain, number)


def _payment_state(conn: sqlite3.Connection, number: str) -> dict[str, Any]:
    """What a bank payment changes on an invoice, as the audit trail records it."""
    row = conn.execute("SELECT status, paid_amount, bank_reference FROM invoices "
                       "WHERE number = ?", (number,)).fetchone()
    return {"status": row["status"], "paid_amount": row["paid_amount"],
            "bank_reference": row["bank_reference"]}


def record_bank_payment(chain: Chain, conn: sqlite3.Connection, number: str, amount: int,
                        reference: str, by: Actor | None = None, how: str = "") -> str:
    """Stamps `amount` paid at the bank on invoice `number` with the statement `reference`,
    inside the caller's write transaction: HQ's own `credit.repaid` fact, folded at once.
    A part payment is fine; more than is still owed is `overpayment` and changes nothing.
    With `by` (who stamps it by hand), the change is audited in the same transaction,
    naming the fact's event id; `how` (a statement import, a confirmed suggestion) is added
    to the audit row's reason. Returns the payment's id (the fact's `payment_id`)."""
    if amount <= 0:
        raise InvalidRequest("a payment is a positive amount")
    if not reference.strip():
        raise InvalidRequest("a bank payment needs the bank statement reference")
    serialise(conn, HQ_FACTS)  # what is owed, read after any payment another HQ process made
    row = conn.execute("SELECT invoice_id, customer_id, amount, paid_amount FROM invoices "
                       "WHERE number = ?", (number,)).fetchone()
    if row is None:
        raise NotFound(f"no invoice {number}")
    refuse_overpayment(number, row["amount"] - row["paid_amount"], amount)
    before = _payment_state(conn, number)
    payment_id = new_id()
    event = record_hq_fact(chain, conn, CreditRepaid(
        payment_id=payment_id, customer_id=row["customer_id"], amount=amount,
        invoice_id=row["invoice_id"]))
    conn.execute("UPDATE invoices SET bank_reference = ? WHERE invoice_id = ?",
                 (reference.strip(), row["invoice_id"]))
    if by is not None:
        audit.record(conn, by, "invoice.bank_payment", ("invoice", number), before,
                     _payment_state(conn, number),
                     f"paid {money(amount)} at the bank, statement {reference.strip()}"
                     + (f"; {how}" if how else ""),
                     customer_id=row["customer_id"], event_id=event.event_id)
    return payment_id


def refresh(chain: Chain, today: date, policy: Policy = Policy()) -> dict[str, int]:
    """Moves unpaid invoices to overdue / past_term as of `today`; blocks credit past term."""
    business_day(today, "today")
    overdue_from = today.isoformat()
    past_term_from = (today - timedelta(days=policy.grace_days)).isoformat()
    moved = {"overdue": 0, "past_term": 0}
    with chain.db.write() as conn:
        for status, before in (("past_term", past_term_from), ("overdue", overdue_from)):
            rows = conn.execute(
                "SELECT invoice_id, customer_id FROM invoices WHERE status IN ('unpaid', 'overdue')"
                " AND status != ? AND due_on < ?", (status, before)).fetchall()
            for row in rows:
                conn.execute("UPDATE invoices SET status = ? WHERE invoice_id = ?",
                             (status, row["invoice_id"]))
                chain.bump(conn, "invoice", row["invoice_id"])
                moved[status] += 1
                if status == "past_term" and policy.block_credit_past_term:
                    conn.execute("UPDATE customers SET credit_blocked = 1 WHERE customer_id = ?",
                                 (row["customer_id"],))
                    chain.bump(conn, "customer", row["customer_id"], urgent=True)
    chain.waiters.notify()
    return moved


def invoice(chain: Chain, number: str) -> dict[str, Any]:
    with chain.db.read() as conn:
        row = conn.execute("SELECT * FROM invoices WHERE number = ?", (number,)).fetchone()
        if row is None:
            raise NotFound(f"no invoice {number}")
        items = conn.execute("SELECT sale_id, outlet_id, at, amount FROM invoice_items "
                             "WHERE invoice_id = ? ORDER BY at", (row["invoice_id"],)).fetchall()
        credits = conn.execute(
            "SELECT return_id, sale_id, outlet_id, at, -amount AS amount FROM invoice_credits "
            "WHERE invoice_id = ? ORDER BY at, return_id", (row["invoice_id"],)).fetchall()
    return {**_answer(row), "items": [dict(i) for i in items],
            "credits": [{**dict(c), "receipt_reference": reference(c["sale_id"])}
                        for c in credits]}


def _answer(row: sqlite3.Row) -> dict[str, Any]:
    return {**dict(row), "payment_reference": payment_reference(row["number"])}


def invoices(chain: Chain, customer_id: str | None = None,
             status: str | None = None) -> list[dict[str, Any]]:
    where = [("customer_id = ?", customer_id), ("status = ?", status)]
    chosen = [(clause, value) for clause, value in where if value]
    sql = " AND ".join(["1 = 1", *(clause for clause, _ in chosen)])
    rows = chain.db.all(f"SELECT * FROM invoices WHERE {sql} ORDER BY number",
                        [value for _, value in chosen])
    return [_answer(r) for r in rows]


def document(conn: sqlite3.Connection, invoice_id: str) -> dict[str, Any] | None:
    """The invoice as outlets receive it (so a till can take its payment)."""
    row = conn.execute("SELECT invoice_id, number, customer_id, period_from, period_to, issued_on,"
                       " due_on, amount, paid_amount, status FROM invoices WHERE invoice_id = ?",
                       (invoice_id,)).fetchone()
    return None if row is None else dict(row)
