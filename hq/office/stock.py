"""Stock transfers in the back office (docs/backoffice.md, "Stock transfers"): an operator
picks a gift, the outlet it leaves and the one it goes to, the quantity and why; the preview
says what each outlet will hold ("NORTH: 12 → 7"); the save records HQ's order
(hq/transfers.py: HQ's own fact, audited) and the gift stock page shows the result.

Promises: the form is checked as hq/transfers.py checks an order (a refused one shows why,
with its stable code, and what was typed, and changes nothing); a preview changes nothing;
only operators (and administrators) see the form or send it.
"""

# no `from __future__ import annotations`: FastAPI reads the route annotations (Annotated
# with Depends/Form) and needs real objects.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from hq import admin, transfers
from hq.audit import Actor
from hq.office.context import Office, see_other
from schema.errors import InvalidRequest, LoyaltyError
from schema.roles import Role

Text = Annotated[str, Form(max_length=100)]
Reason = Annotated[str, Form(max_length=500)]


def _qty(text: str) -> int:
    """A quantity typed by a person: a whole number (InvalidRequest naming the field)."""
    value = text.strip()
    if not value.isdigit():
        raise InvalidRequest("Quantity: type a whole number such as 5", field="qty")
    return int(value)


def router(office: Office) -> APIRouter:
    routes = office.router(role=Role.operator)
    chain = office.chain
    Operator = Annotated[Actor, Depends(office.form(Role.operator))]

    def page(request: Request, form: dict[str, Any], http_status: int = 200,
             error: str | None = None, preview: dict[str, Any] | None = None) -> HTMLResponse:
        stock = admin.gift_stock(chain)
        return office.page(request, "transfer.html", http_status, title="Stock transfer",
                           f=form, error=error, preview=preview, stock=stock,
                           gifts=admin.master_docs(chain, "gift"))

    def checked(form: dict[str, Any]) -> dict[str, Any]:
        return transfers.preview(chain, form["gift_sku"], form["from_outlet"],
                                 form["to_outlet"], _qty(form["qty"]),
                                 form["reason"] or "")

    @routes.get("/programme/transfers")
    def transfer_form(request: Request, gift: str = "") -> HTMLResponse:
        return page(request, {"gift_sku": gift[:100]})

    @routes.post("/programme/transfers/preview")
    def transfer_preview(request: Request, actor: Operator, gift_sku: Text = "",
                         from_outlet: Text = "", to_outlet: Text = "", qty: Text = "",
                         reason: Reason = "") -> Response:
        form = {"gift_sku": gift_sku, "from_outlet": from_outlet, "to_outlet": to_outlet,
                "qty": qty, "reason": reason}
        try:
            preview = checked(form)
        except LoyaltyError as exc:
            return page(request, form, exc.status, f"{exc.message} [{exc.code}]")
        return page(request, form, preview=preview)

    @routes.post("/programme/transfers")
    def transfer_save(request: Request, actor: Operator, gift_sku: Text = "",
                      from_outlet: Text = "", to_outlet: Text = "", qty: Text = "",
                      reason: Reason = "") -> Response:
        form = {"gift_sku": gift_sku, "from_outlet": from_outlet, "to_outlet": to_outlet,
                "qty": qty, "reason": reason}
        try:
            transfers.transfer(chain, gift_sku, from_outlet, to_outlet, _qty(qty),
                               reason=reason, by=actor)
        except LoyaltyError as exc:
            return page(request, form, exc.status, f"{exc.message} [{exc.code}]")
        return see_other(request, f"/gifts?moved={gift_sku.strip()}")

    return routes
