"""The audit trail in the back office (docs/backoffice.md, "The audit trail"): every change
staff made, newest first, each with who, when (UTC), what it was done to, the customer it
concerns, every field before → after, why, and the HQ fact it recorded; filtered by
customer (its id or a club card number), member of staff, action and period, and printable
(the filters used are printed above the table). Every role of the back office may read it:
it is what a viewer (an auditor) is for."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from hq import admin, audit
from hq.office.context import Office
from schema.errors import CustomerUnknown, InvalidRequest, mask_card
from schema.roles import Role
from web.office import Period, Short

Name = Annotated[str, Query(max_length=100)]


def router(office: Office) -> APIRouter:
    routes = office.router(role=Role.viewer)
    chain = office.chain

    @routes.get("/audit")
    def audit_trail(request: Request, customer: Name = "", staff: Name = "", action: Short = "",
                    date_from: Period = "", date_to: Period = "") -> HTMLResponse:
        args = {"customer": customer.strip(), "staff": staff, "action": action,
                "date_from": date_from, "date_to": date_to}
        rows, error, customer_id, name = [], None, None, ""
        try:
            if args["customer"]:
                customer_id = admin.resolve_customer(chain, args["customer"])
                name = admin.customer_names(chain, [customer_id]).get(customer_id, "")
            rows = audit.search(chain, audit.Search(
                customer_id=customer_id, staff=staff or None, action=action or None,
                date_from=date_from or None, date_to=date_to or None))
        except CustomerUnknown:
            typed = args["customer"]
            error = ("Customer: no customer with the id or club card number "
                     f"{mask_card(typed) if typed.isdigit() else typed}")
        except InvalidRequest as exc:
            error = exc.message
        names = admin.customer_names(chain, [r["customer_id"] for r in rows if r["customer_id"]])
        typed = args["customer"]
        printed = {"customer": name or (mask_card(typed) if typed.isdigit() else typed),
                   "staff": staff, "action": action,
                   "from": date_from, "to": date_to}
        return office.page(request, "audit.html", 200 if error is None else 422,
                           title="Audit trail", rows=rows, args=args, error=error,
                           names=names, printed=printed, shown_limit=audit.SHOWN,
                           **audit.choices(chain))

    return routes
