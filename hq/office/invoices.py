"""Invoices in the back office: the list (filtered by status or customer, with the total
and what is outstanding), one invoice with its credit purchases, and the form that records
a payment at the bank (`hq.invoices.pay_at_bank`: typed amounts read by
schema.money.parse_money, an overpayment refused; operators, audited). Viewers read."""

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from hq import admin, invoices
from hq.audit import Actor
from hq.office.context import Office, see_other
from schema.errors import InvalidRequest, Overpayment
from schema.roles import Role
from web.office import money_input

Status = Annotated[str, Query(pattern=r"^(|unpaid|paid|overdue|past_term)$")]


def router(office: Office) -> APIRouter:
    routes = office.router(role=Role.viewer)
    chain = office.chain
    Operator = Annotated[Actor, Depends(office.form(Role.operator))]

    @routes.get("/invoices")
    def invoice_list(request: Request, status: Status = "",
                     customer: Annotated[str, Query(max_length=100)] = "") -> HTMLResponse:
        rows = invoices.invoices(chain, customer or None, status or None)
        names = admin.customer_names(chain, [r["customer_id"] for r in rows])
        for r in rows:
            r["customer_name"] = names.get(r["customer_id"], "")
        total = sum(r["amount"] for r in rows)
        outstanding = sum(r["amount"] - r["paid_amount"] for r in rows if r["status"] != "paid")
        return office.page(request, "invoices.html", title="Invoices", rows=rows,
                           status=status, customer=customer, total=total,
                           outstanding=outstanding)

    def invoice_page(request: Request, number: str, http_status: int = 200,
                     error: str | None = None, done: str | None = None) -> HTMLResponse:
        doc = invoices.invoice(chain, number)
        doc["customer_name"] = admin.customer_names(chain, [doc["customer_id"]]).get(
            doc["customer_id"], "")
        left = max(doc["amount"] - doc["paid_amount"], 0)
        return office.page(request, "invoice.html", http_status, title=f"Invoice {number}",
                           inv=doc, left=left, error=error, done=done)

    @routes.get("/invoices/{number}")
    def invoice_view(request: Request, number: str, done: str | None = None) -> HTMLResponse:
        return invoice_page(request, number, done="paid" if done == "paid" else None)

    @routes.post("/invoices/{number}/bank-payment")
    def bank_payment(request: Request, number: str, actor: Operator,
                     amount: Annotated[str, Form(max_length=20)],
                     reference: Annotated[str, Form(max_length=100)]) -> Response:
        try:
            invoices.pay_at_bank(chain, number, money_input(amount, "amount"), reference,
                                 by=actor)
        except (InvalidRequest, Overpayment) as exc:
            return invoice_page(request, number, exc.status, error=f"{exc.message} [{exc.code}]")
        return see_other(request, f"/invoices/{quote(number)}?done=paid")

    return routes
