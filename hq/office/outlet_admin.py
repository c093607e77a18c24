"""Outlets for administrators (docs/backoffice.md, "Registering outlets"): register an
outlet and rotate an outlet's token, through hq/admin.py (hq/credentials.py, as the
command line does), audited without the token.

Promises: a token is shown exactly once, on the answer to the form that made it (never in
a URL, a log or the audit trail; HQ keeps only its hash), with a button that copies it;
the answer is not cached. A refused form (a bad or taken outlet id) says why and changes
nothing.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from hq import admin
from hq.audit import Actor
from hq.office.context import Office
from schema.errors import Conflict, InvalidRequest
from schema.roles import Role

Reason = Annotated[str, Form(max_length=500)]


def router(office: Office) -> APIRouter:
    routes = office.router(role=Role.administrator)
    chain = office.chain
    Administrator = Annotated[Actor, Depends(office.form(Role.administrator))]

    def token_page(request: Request, outlet_id: str, token: str | None, http_status: int = 200,
                   error: str | None = None, card_range: int | None = None,
                   rotated: bool = False) -> HTMLResponse:
        page = office.page(request, "outlet_token.html", http_status, title="Outlet token",
                           outlet_id=outlet_id, token=token, error=error,
                           card_range=card_range, rotated=rotated)
        page.headers["Cache-Control"] = "no-store"
        return page

    @routes.post("/outlets")
    def outlet_add(request: Request, actor: Administrator,
                   outlet_id: Annotated[str, Form(max_length=40)], reason: Reason = ""
                   ) -> HTMLResponse:
        try:
            token, card_range = admin.register_outlet(chain, outlet_id, actor, reason)
        except (InvalidRequest, Conflict) as exc:
            return token_page(request, outlet_id, None, exc.status,
                              f"{exc.message} [{exc.code}]")
        return token_page(request, outlet_id.strip(), token, card_range=card_range)

    @routes.post("/outlets/{outlet_id}/token")
    def outlet_token(request: Request, outlet_id: str, actor: Administrator,
                     reason: Reason = "") -> HTMLResponse:
        try:
            token = admin.rotate_outlet_token(chain, outlet_id, actor, reason)
        except InvalidRequest as exc:
            return token_page(request, outlet_id, None, exc.status,
                              f"{exc.message} [{exc.code}]")
        return token_page(request, outlet_id, token, rotated=True)

    return routes
