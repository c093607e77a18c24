"""Admin routes for consolidated invoices: close a period, move invoices along on a given
day, list and read them, record a payment made at the bank (hq/invoices.py).

The PDF document of an invoice (hq/invoicedoc.py) is served as it would be printed.

Promises: dates are the caller's (HQ never reads its wall clock here); a payment larger
than what is owed is 409 `overpayment` and records nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hq import invoicedoc, invoices
from hq.api import auth
from hq.chain import Chain
from schema.adminapi import (
    BankPaymentIn,
    CloseIn,
    Invoices,
    InvoicesMade,
    InvoicesMoved,
    InvoiceView,
    RefreshIn,
    answer,
)
from schema.errors import NotFound, Overpayment
from web.responses import ModelResponse


def router(chain: Chain) -> APIRouter:
    routes = auth.admin_routes(chain, "invoices")

    @routes.post("/invoices/close", status_code=201, response_model=InvoicesMade,
                 responses=auth.refusals())
    def close_period(body: CloseIn) -> ModelResponse:
        made = invoices.close_period(chain, body.period_from, body.period_to, body.issued_on)
        return ModelResponse(answer(InvoicesMade, made), status_code=201)

    @routes.post("/invoices/refresh", response_model=InvoicesMoved, responses=auth.refusals())
    def refresh(body: RefreshIn) -> ModelResponse:
        return ModelResponse(answer(InvoicesMoved, invoices.refresh(chain, body.today)))

    @routes.get("/invoices", response_model=Invoices, responses=auth.refusals())
    def list_invoices(customer: str | None = None, status: str | None = None) -> ModelResponse:
        return ModelResponse(answer(Invoices, invoices.invoices(chain, customer, status)))

    @routes.get("/invoices/{number}", response_model=InvoiceView,
                responses=auth.refusals(NotFound))
    def get_invoice(number: str) -> ModelResponse:
        return ModelResponse(answer(InvoiceView, invoices.invoice(chain, number)))

    @routes.post("/invoices/{number}/bank-payment", response_model=InvoiceView,
                 responses=auth.refusals(NotFound, Overpayment))
    def bank_payment(number: str, body: BankPaymentIn, request: Request) -> ModelResponse:
        paid = invoices.pay_at_bank(chain, number, body.amount, body.reference,
                                    by=auth.actor(request))
        return ModelResponse(answer(InvoiceView, paid))

    @routes.get("/invoices/{number}/pdf", response_class=Response,
                responses={200: {"content": {"application/pdf": {}},
                                 "description": "the invoice as a PDF document"},
                           **auth.refusals(NotFound)})
    def invoice_pdf(number: str) -> Response:
        return Response(invoicedoc.render(chain, number), media_type="application/pdf",
                        headers={"Content-Disposition":
                                 f'inline; filename="invoice-{number}.pdf"'})

    return routes
