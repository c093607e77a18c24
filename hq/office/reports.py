"""Reports in the back office: each report of schema/reports.py (docs/reports.md) as a
table with the filters of `loyalty report`, and every report for one period on a page
each, for printing. A bad filter is shown as why, naming the form's field."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from hq import admin
from hq.office.context import Office
from hq.store import report_source
from schema import reports
from schema.errors import NotFound
from schema.roles import Role
from web.office import Grouping, Period, Short, report_or_error


def filters_from(date_from: str, date_to: str, outlet: str, category: str, customer: str,
                 by: str) -> reports.Filters:
    """The form's fields as report filters (an empty field: no filter)."""
    return reports.Filters(date_from=date_from or None, date_to=date_to or None,
                           outlet=outlet or None, category=category or None,
                           customer=customer or None, by=by or None)


def pack_filters(name: str, date_from: str, date_to: str, outlet: str, category: str,
                 by: str) -> reports.Filters:
    """The filters of report `name` in the pack for a period: each takes those it has."""
    by = by if by in reports.GROUPS[name] else ""
    if name == "points-liability":  # a balance is chain-wide, and as of now unless over time
        return (filters_from(date_from, date_to, "", category, "", by) if by in reports.GRAINS
                else filters_from("", "", "", category, "", by))
    if name in ("payment-discipline", "invoice-ageing"):  # an invoice covers every outlet
        return filters_from(date_from, date_to, "", category, "", by)
    if name == "activity":  # as of the end of the period
        return filters_from("", date_to, outlet, category, "", by)
    if name == "gift-handouts":  # one row per hand-out: no grouping
        return filters_from(date_from, date_to, outlet, category, "", "")
    return filters_from(date_from, date_to, outlet, category, "", by)


def router(office: Office) -> APIRouter:
    routes = office.router(role=Role.viewer)
    chain = office.chain

    def choices() -> dict[str, Any]:
        """What the filter form offers: the outlets and the customer categories."""
        return {"outlets": [o["outlet_id"] for o in admin.outlets(chain)],
                "categories": list(admin.master_docs(chain, "category"))}

    @routes.get("/reports")
    def report_index(request: Request) -> HTMLResponse:
        return office.page(request, "reports.html", title="Reports", names=reports.NAMES)

    @routes.get("/reports/print")
    def report_pack(request: Request, date_from: Period = "", date_to: Period = "",
                    outlet: Short = "", category: Short = "",
                    by: Grouping = "") -> HTMLResponse:
        """Every report (but a customer's receipts) for one period, a page each."""
        done = []
        for name in reports.NAMES:
            if name == "receipts":
                continue
            report, error = report_or_error(report_source(chain.db), name, pack_filters(
                name, date_from, date_to, outlet, category, by))
            done.append({"name": name, "report": report, "error": error})
        args = {"date_from": date_from, "date_to": date_to, "outlet": outlet,
                "category": category, "by": by}
        return office.page(request, "report_pack.html", title="Reports", done=done,
                           period=(date_from, date_to), args=args, **choices())

    @routes.get("/reports/{name}")
    def report_view(request: Request, name: str, date_from: Period = "",
                    date_to: Period = "", outlet: Short = "", category: Short = "",
                    customer: Short = "", by: Grouping = "") -> HTMLResponse:
        if name not in reports.NAMES:
            raise NotFound(f"no report {name}")
        f = filters_from(date_from, date_to, outlet, category, customer, by)
        report, error = (None, "choose a customer (its id) to see its receipts") if (
            name == "receipts" and not customer) else report_or_error(report_source(chain.db), name, f)
        return office.page(request, "report.html", 200 if error is None else 422,
                           title=report.title if report else name, name=name, report=report,
                           error=error, args={"date_from": date_from, "date_to": date_to,
                                              "outlet": outlet, "category": category,
                                              "customer": customer, "by": by},
                           **choices())

    return routes
