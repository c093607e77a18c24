"""The back office's start page: counts of customers and outlets, outlets out of touch,
open flags, invoices not paid by status, and a customer search box."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from hq import admin
from hq.office.context import Office
from schema.roles import Role


def router(office: Office) -> APIRouter:
    routes = office.router(role=Role.viewer)

    @routes.get("/")
    def home(request: Request) -> HTMLResponse:
        counts = admin.counts(office.chain)
        health = admin.outlet_health(office.chain, office.clock(), office.stale_after_s)
        return office.page(request, "home.html", title="Back office", counts=counts,
                           invoices=counts["invoices"], stale=[o for o in health if o["stale"]])

    return routes
