"""The store manager's pages at the outlet (issue 6; docs/backoffice.md), mounted under
/manager by agent/api.py, on the back-office base of web/office.py (its layout, stylesheet,
script, report and error templates, security headers and error pages).

Read-only pages over the local replica: the dashboard (today's and this week's turnover,
the sync state in words, the outlet's charts drawn from its reports by web/dashboard.py),
status (is the outlet in sync, what is pending), customer search and the customer's card,
today's sales, gift stock, and the outlet's own reports (schema/reports.py) with a print
stylesheet. The queries live with the data they
read (agent/status.py, agent/customers.py, agent/history.py, agent/gifts.py); this module
only turns them into pages. Times are shown as `loyalty status` shows them: this machine's
local time to the minute and how long ago; "today" is this machine's local day and "this
week" runs from its local Monday; charts and reports count UTC days, as at HQ.

Security (docs/design.md invariant 8): there is no login; instead these pages answer ONLY to a
client on loopback, whatever till token the agent has and whatever address it listens on:
any other client gets 403. The Host header must be a loopback name too, so a web page
elsewhere cannot reach them through DNS rebinding. Nothing here writes, so there are no
forms to forge. Card numbers are always masked to their last 4 digits. Must never: call
HQ, or write to the replica.
"""

# no `from __future__ import annotations`: FastAPI reads the annotations of the handlers
# defined inside app() and needs real objects.
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response

from agent import customers, gifts, history
from agent.status import outlet_status, sync_state
from schema import reports
from schema.customerstore import display_name
from schema.errors import NotFound
from schema.timing import local_day, local_week
from web import dashboard
from web.office import (
    Grouping,
    Pages,
    Period,
    Short,
    environment,
    install,
    picture_answer,
    report_or_error,
)

if TYPE_CHECKING:
    from agent.outlet import Outlet

HERE = Path(__file__).parent
LOOPBACK_CLIENTS = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def is_loopback(request: Request) -> bool:
    client = request.client.host if request.client else ""
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return client in LOOPBACK_CLIENTS and name.lower() in LOOPBACK_HOSTS


def app(outlet: "Outlet") -> FastAPI:
    manager = FastAPI(title=f"Loyalty outlet {outlet.outlet_id}: store manager",
                      docs_url=None, redoc_url=None, openapi_url=None)
    site = f"Outlet {outlet.outlet_id}"
    pages = Pages(environment(HERE / "templates", site=site, outlet_id=outlet.outlet_id))
    page = pages.page

    @manager.middleware("http")
    async def loopback_only(request: Request, call_next: Any) -> Response:
        if not is_loopback(request):
            return HTMLResponse(
                "<!doctype html><title>Forbidden</title><p>The store manager's pages answer "
                "only on this machine (loopback).</p>", status_code=403)
        response: Response = await call_next(request)
        return response

    install(manager, pages)  # after loopback_only: its 403 gets the security headers too

    @manager.get("/")
    def status(request: Request) -> HTMLResponse:
        return page(request, "status.html", title="Status", f=outlet_status(outlet))

    @manager.get("/dashboard")
    def charts(request: Request, days: int = 30) -> HTMLResponse:
        now = datetime.now(UTC)
        board = dashboard.build(outlet.db.path, days, now.date())
        day, today_since = local_day(now)
        monday, week_since = local_week(now)
        return page(request, "dashboard.html", title="Dashboard", board=board,
                    figures=dashboard.figures_text(board), periods=dashboard.PERIODS,
                    sync=sync_state(outlet, now), day=day, monday=monday,
                    today=history.day_sales(outlet, today_since, limit=0),
                    week=history.day_sales(outlet, week_since, limit=0))

    @manager.get("/customers")
    def search(request: Request, q: Annotated[str, Query(max_length=100)] = "") -> HTMLResponse:
        text = q.strip()
        return page(request, "customers.html", title="Customers", q=text,
                    found=customers.find(outlet, text))

    @manager.get("/customers/{customer_id}")
    def card(request: Request, customer_id: str) -> HTMLResponse:
        view = customers.profile(outlet, customer_id)
        names = {sku: g.name for sku, g in outlet.programme.gifts.items()}
        return page(request, "customer.html", title=display_name(view) or customer_id,
                    c=view, s=view["statistics"], gift_names=names,
                    sales=history.customer_sales(outlet, customer_id))

    @manager.get("/customers/{customer_id}/picture")
    def picture(customer_id: str) -> Response:
        return picture_answer(customers.stored_picture(outlet, customer_id))

    @manager.get("/sales")
    def today(request: Request) -> HTMLResponse:
        day, since = local_day()
        return page(request, "sales.html", title="Today's sales", day=day,
                    today=history.day_sales(outlet, since))

    @manager.get("/gifts")
    def gift_stock(request: Request) -> HTMLResponse:
        return page(request, "gifts.html", title="Gift stock", rows=gifts.stock(outlet))

    @manager.get("/reports")
    def report_index(request: Request) -> HTMLResponse:
        return page(request, "reports.html", title="Reports", names=reports.NAMES)

    @manager.get("/reports/{name}")
    def report_view(request: Request, name: str, date_from: Period = "", date_to: Period = "",
                    category: Short = "", customer: Short = "", by: Grouping = "") -> HTMLResponse:
        if name not in reports.NAMES:
            raise NotFound(f"no report {name}")
        args = {"date_from": date_from, "date_to": date_to, "category": category,
                "customer": customer, "by": by}
        report: reports.Report | None = None
        error: str | None = "choose a customer (its id) to see its receipts"
        if name != "receipts" or customer:
            report, error = report_or_error(outlet.db.path, name, reports.Filters(
                date_from=date_from or None, date_to=date_to or None, category=category or None,
                customer=customer or None, by=by or None))
        categories = sorted(outlet.programme.categories)
        return page(request, "report.html", 200 if error is None else 422,
                    title=report.title if report else name, name=name, report=report,
                    error=error, args=args, categories=categories, scope=site)

    return manager
