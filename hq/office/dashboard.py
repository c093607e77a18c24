"""The dashboard: the chain's charts for the last 30, 90 or 365 days, for every outlet or
one (web/dashboard.py draws them from the reports; docs/backoffice.md "Dashboard")."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from hq import admin
from hq.office.context import Office
from hq.store import report_source
from schema.roles import Role
from web import dashboard
from web.office import Short


def router(office: Office) -> APIRouter:
    routes = office.router(role=Role.viewer)  # reading only: every back-office role

    @routes.get("/dashboard")
    def charts(request: Request, days: int = 30, outlet: Short = "") -> HTMLResponse:
        board = dashboard.build(report_source(office.chain.db), days, office.clock().date(),
                                outlet or None)
        return office.page(request, "dashboard.html", title="Dashboard", board=board,
                           figures=dashboard.figures_text(board), periods=dashboard.PERIODS,
                           outlets=[o["outlet_id"] for o in admin.outlets(office.chain)])

    return routes
