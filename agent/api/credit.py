"""Internal credit at the desk: a customer's invoices and paying one (agent.credit).

The invoice list is `async` and reads through `deps.read`; a payment writes a fact and
commits, in a worker thread.
"""

from __future__ import annotations

from fastapi import APIRouter

from agent import credit
from agent.api.deps import answer, new_router, read, refusals
from agent.outlet import Outlet
from schema.api import InvoicePayment, InvoicePaymentIn, Invoices
from schema.errors import NotFound, Overpayment
from web.responses import ModelResponse


def router(outlet: Outlet) -> APIRouter:
    routes = new_router()

    @routes.get("/v1/customers/{customer_id}/invoices", response_model=Invoices,
                responses=refusals())
    async def customer_invoices(customer_id: str) -> ModelResponse:
        """The customer's consolidated invoices as this outlet last received them from HQ
        (none for a customer this outlet does not know)."""
        return answer(Invoices, await read(outlet, credit.invoices_of, outlet, customer_id))

    @routes.post("/v1/invoices/{number}/payments", status_code=201,
                 response_model=InvoicePayment,
                 responses=refusals(NotFound, Overpayment, body=True))
    def pay_invoice(number: str, body: InvoicePaymentIn) -> ModelResponse:
        paid = credit.pay(outlet, number, body.amount, body.till_id)
        return answer(InvoicePayment, paid, 201)

    return routes
