"""Internal credit at the till: consolidated invoices paid at the reception desk.

Promises: a payment is a `credit.repaid` fact naming the invoice, written with its local
effects (the invoice's paid amount, the customer's outstanding credit) in one
transaction; HQ marks the invoice paid when the fact arrives. Refuses a payment above
what is still owed (`overpayment`, schema.ledger.refuse_overpayment). Must never: take a payment for an invoice this outlet does not know.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent import outbox
from schema import tallystore
from schema.errors import NotFound
from schema.events import CreditRepaid, new_id, tally_of
from schema.ledger import refuse_overpayment

if TYPE_CHECKING:
    from agent.outlet import Outlet


def invoices_of(outlet: Outlet, customer_id: str) -> list[dict[str, Any]]:
    rows = outlet.db.all("SELECT * FROM invoices WHERE customer_id = ? ORDER BY issued_on",
                         (customer_id,))
    return [dict(r) for r in rows]


def pay(outlet: Outlet, number: str, amount: int, till_id: str | None) -> dict[str, Any]:
    with outlet.db.write() as conn:
        row = conn.execute("SELECT * FROM invoices WHERE number = ?", (number,)).fetchone()
        if row is None:
            raise NotFound(f"no invoice {number} at this outlet (not yet synced?)")
        owed = row["amount"] - row["paid_amount"]
        refuse_overpayment(number, owed, amount)
        fact = CreditRepaid(payment_id=new_id(), customer_id=row["customer_id"], amount=amount,
                            invoice_id=row["invoice_id"])
        event = outbox.append(conn, outlet.outlet_id, fact)
        paid = row["paid_amount"] + amount
        conn.execute("UPDATE invoices SET paid_amount = ?, status = CASE WHEN ? >= amount "
                     "THEN 'paid' ELSE status END WHERE invoice_id = ?",
                     (paid, paid, row["invoice_id"]))
        tallystore.add(conn, row["customer_id"], tally_of(fact, event.at))
        conn.execute("INSERT INTO ledger (seq, customer_id, kind, amount, at) VALUES (?,?,?,?,?)",
                     (event.seq, row["customer_id"], "credit_repaid", amount, event.at))
    outlet.committed()
    return {"number": number, "paid": amount, "left_to_pay": owed - amount,
            "till_id": till_id, "payment_id": fact.payment_id}
