"""Customers in the back office: search (a name's start, or an identifier's exact value)
with masked card numbers, a customer's card (statistics, top-10 lists, identifiers with
full card numbers, picture, the latest receipts and hand-outs, invoices), the picture."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from hq import admin, invoices
from hq.office.context import Office
from schema.customerstore import display_name
from schema.roles import Role
from web.office import picture_answer

RECEIPTS_SHOWN = 50  # on the card; the receipts report has them all


def router(office: Office) -> APIRouter:
    routes = office.router(role=Role.viewer)
    chain = office.chain

    @routes.get("/customers")
    def customer_search(request: Request,
                        q: Annotated[str, Query(max_length=100)] = "") -> HTMLResponse:
        text = q.strip()
        return office.page(request, "customers.html", title="Customers", q=text,
                           found=admin.find(chain, text))

    @routes.get("/customers/{customer_id}")
    def customer_card(request: Request, customer_id: str) -> HTMLResponse:
        view = admin.customer_view(chain, customer_id)
        receipts_total, sales = admin.receipts(chain, customer_id, RECEIPTS_SHOWN)
        return office.page(request, "customer.html", title=display_name(view) or customer_id,
                           c=view, s=view["statistics"],
                           has_picture=admin.has_picture(chain, customer_id), sales=sales,
                           receipts_total=receipts_total,
                           handouts=admin.handouts(chain, customer_id, RECEIPTS_SHOWN),
                           invoices=invoices.invoices(chain, customer_id),
                           gift_names=admin.master_docs(chain, "gift"))

    @routes.get("/customers/{customer_id}/picture")
    def customer_picture(customer_id: str) -> Response:
        return picture_answer(admin.picture(chain, customer_id))

    return routes
