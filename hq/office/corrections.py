"""A points or credit correction in the back office (docs/backoffice.md, "Corrections";
issue 12): on a customer, an operator types the points and/or the credit to correct
(signed), the reason, sees what it will do ("Points: 1,200 → 1,000"), then confirms.

Promises: the save is `hq.admin.adjust`, the very call of the admin API's
`POST /v1/admin/customers/{id}/adjustments` and of `loyalty hq adjust` (one code path: HQ's
own fact, reaching outlets with the next pull, audited with the balances before -> after
and the reason). Money is read by schema.money.parse_money, the one parser. A
preview changes nothing and hands the form a token (a new adjustment id) that the save
books under: a double submit, or a reload of the answer, books once. A refused form shows
why with its stable code and what was typed, and changes nothing. Operators only.
"""

# no `from __future__ import annotations`: FastAPI reads the route annotations (Annotated
# with Depends/Form) and needs real objects.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from hq import admin
from hq.audit import Actor
from hq.office.context import Office, see_other
from schema.customerstore import display_name
from schema.errors import InvalidRequest, LoyaltyError
from schema.events import new_id
from schema.money import parse_money
from schema.roles import Role
from web.office import money

Text = Annotated[str, Form(max_length=40)]
Reason = Annotated[str, Form(max_length=500)]


def points_input(text: str) -> int:
    """Points typed by a person: a whole number, `-` for fewer (`-200`, `+150`, `1 200`)."""
    value = text.strip().replace(" ", "").replace("\u00a0", "")
    if not value:
        return 0
    digits = value[1:] if value[0] in "+-" else value
    if not digits.isascii() or not digits.isdigit():
        raise InvalidRequest("Points: type a whole number such as 200, or -200 for fewer",
                             field="points")
    return -int(digits) if value[0] == "-" else int(digits)


def credit_input(text: str) -> int:
    """Credit typed by a person in minor units (signed, 0 when empty), through the one
    money parser: positive means less owed, `-` more."""
    value = text.strip().lstrip("+")
    return parse_money(value, field="Credit", negative=True) if value else 0


def preview(view: dict[str, Any], points: int, credit: int, reason: str) -> list[str]:
    """What the correction will do to the customer's balances, one line per balance it
    changes ("Points: 1,200 → 1,000"); InvalidRequest when it changes nothing or says
    no reason (the same refusals as hq.admin.adjust)."""
    if points == 0 and credit == 0:
        raise InvalidRequest("Type the points and/or the credit to correct: a correction "
                             "that changes nothing is not booked", field="points")
    if not reason.strip():
        raise InvalidRequest("Why: say why the balance is corrected (it is kept in the "
                             "audit trail)", field="reason")
    lines = []
    if points:
        before = int(view["points_balance"])
        lines.append(f"Points: {before:,} → {before + points:,}")
    if credit:
        owed = int(view["credit_balance"])
        lines.append(f"Credit owed: {money(owed)} → {money(owed - credit)}")
    return lines


def router(office: Office) -> APIRouter:
    routes = office.router(role=Role.operator)
    chain = office.chain
    Operator = Annotated[Actor, Depends(office.form(Role.operator))]

    def page(request: Request, customer_id: str, form: dict[str, Any], http_status: int = 200,
             error: str | None = None, lines: list[str] | None = None,
             token: str = "", done: bool = False) -> HTMLResponse:
        view = admin.customer_view(chain, customer_id)
        return office.page(request, "correction.html", http_status,
                           title=f"Correction: {display_name(view) or customer_id}", c=view,
                           f=form, error=error, lines=lines, token=token,
                           done=done)

    @routes.get("/customers/{customer_id}/correction")
    def correction_form(request: Request, customer_id: str, done: str = "") -> HTMLResponse:
        return page(request, customer_id, {}, done=bool(done))

    @routes.post("/customers/{customer_id}/correction/preview")
    def correction_preview(request: Request, customer_id: str, actor: Operator,
                           points: Text = "", credit: Text = "",
                           reason: Reason = "") -> Response:
        form = {"points": points, "credit": credit, "reason": reason}
        try:
            lines = preview(admin.customer_view(chain, customer_id), points_input(points),
                            credit_input(credit), reason)
        except LoyaltyError as exc:
            return page(request, customer_id, form, exc.status, f"{exc.message} [{exc.code}]")
        return page(request, customer_id, form, lines=lines, token=new_id())

    @routes.post("/customers/{customer_id}/correction")
    def correction_save(request: Request, customer_id: str, actor: Operator,
                        points: Text = "", credit: Text = "", reason: Reason = "",
                        token: Annotated[str, Form(max_length=64)] = "") -> Response:
        form = {"points": points, "credit": credit, "reason": reason}
        try:
            if not token:
                raise InvalidRequest("Preview the correction first, then confirm it")
            made = admin.adjust(chain, customer_id, points_input(points),
                                credit_input(credit), reason, by=actor,
                                key=f"office:{token}")
        except LoyaltyError as exc:
            return page(request, customer_id, form, exc.status, f"{exc.message} [{exc.code}]")
        return see_other(request, f"/customers/{customer_id}/correction?done={made['event_id']}")

    return routes
