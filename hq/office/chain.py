"""The chain in the back office: gift stock per outlet, the outlets with their sync health
and clocks, and the flags staff review (with the form that resolves one: operators, the
note keeping the staff member's name, audited). Viewers read."""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from hq import admin, ingest
from hq.audit import Actor
from hq.office.context import Office, see_other
from schema import timing
from schema.roles import Role


def router(office: Office) -> APIRouter:
    routes = office.router(role=Role.viewer)
    chain = office.chain
    Operator = Annotated[Actor, Depends(office.form(Role.operator))]

    @routes.get("/gifts")
    def gift_stock(request: Request, moved: str | None = None) -> HTMLResponse:
        return office.page(request, "gifts.html", title="Gift stock", moved=bool(moved),
                           **admin.gift_stock(chain))

    @routes.get("/outlets")
    def outlets(request: Request) -> HTMLResponse:
        now = office.clock()
        rows = admin.outlets_needing_care_first(
            admin.outlet_health(chain, now, office.stale_after_s))
        open_flags = admin.open_flags_by_outlet(chain)
        for r in rows:
            r["open_flags"] = open_flags.get(r["outlet_id"], 0)
        return office.page(request, "outlets.html", title="Outlets", rows=rows,
                           stale_after_h=round(office.stale_after_s / 3600, 2),
                           now=now.isoformat(),
                           tolerance=timing.describe(chain.clock_tolerance_s))

    @routes.get("/flags")
    def flag_list(request: Request, all: bool = False, done: str | None = None) -> HTMLResponse:
        rows = ingest.flags(chain, open_only=not all)
        names = admin.customer_names(chain, [str(r["customer_id"]) for r in rows
                                             if r["customer_id"]])
        for r in rows:
            r["customer_name"] = names.get(str(r["customer_id"]), "")
        return office.page(request, "flags.html", title="Flags", rows=rows, all=all,
                           done=done if done and done.isdigit() else None)

    @routes.post("/flags/{flag_id}/resolve")
    def resolve_flag(request: Request, flag_id: int, actor: Operator,
                     note: Annotated[str, Form(max_length=500)] = "") -> Response:
        admin.resolve_flag(chain, flag_id, note, by=actor)
        return see_other(request, f"/flags?done={flag_id}")

    return routes
