"""The store manager's pages at the outlet (issue 6; docs/backoffice.md), mounted under
/manager by agent/api.py.

Read-only pages over the local replica: status (is the outlet in sync, what is pending),
customer search and the customer's card, today's sales, gift stock, and the outlet's own
reports (schema/reports.py) with a print stylesheet.

Security (docs/design.md invariant 8): there is no login; instead these pages answer ONLY to a
client on loopback, whatever till token the agent has and whatever address it listens on:
any other client gets 403. The Host header must be a loopback name too, so a web page
elsewhere cannot reach them through DNS rebinding. Nothing here writes, so there are no
forms to forge. Card numbers are always masked to their last 4 digits. Must never: call
HQ, or write to the replica.
"""

# no `from __future__ import annotations`: FastAPI reads the annotations of the handlers
# defined inside app() and needs real objects.
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent import customers, gifts
from agent.status import outlet_status
from schema import reports
from schema.customerstore import display_name
from schema.errors import InvalidRequest, LoyaltyError, NotFound, mask_card
from schema.money import money as format_money
from web import httperrors

if TYPE_CHECKING:
    from agent.outlet import Outlet

HERE = Path(__file__).parent
LOOPBACK_CLIENTS = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
SALES_SHOWN = 500

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "script-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def money(value: Any) -> str:
    """Minor units as 1,234.56 (integers only, never a float)."""
    return "" if value is None or value == "" else format_money(int(value))


def when(value: Any) -> str:
    return str(value)[:19].replace("T", " ") if value else "-"


def report_cell(column: reports.Column, value: Any) -> str:
    return reports.cell(column, value)




def picture_type(raw: bytes) -> str | None:
    if raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if raw.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return None


def is_loopback(request: Request) -> bool:
    client = request.client.host if request.client else ""
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return client in LOOPBACK_CLIENTS and name.lower() in LOOPBACK_HOSTS


def app(outlet: "Outlet") -> FastAPI:
    manager = FastAPI(title=f"Loyalty outlet {outlet.outlet_id}: store manager",
                      docs_url=None, redoc_url=None, openapi_url=None)
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(money=money, when=when, masked=mask_card, cell=report_cell)
    env.globals.update(display_name=display_name, outlet_id=outlet.outlet_id)

    def page(request: Request, template: str, http_status: int = 200,
             **context: Any) -> HTMLResponse:
        html = env.get_template(template).render(base=request.scope.get("root_path", ""),
                                                 path=request.url.path, **context)
        return HTMLResponse(html, status_code=http_status)

    @manager.middleware("http")
    async def loopback_only(request: Request, call_next: Any) -> Response:
        if not is_loopback(request):
            response: Response = HTMLResponse(
                "<!doctype html><title>Forbidden</title><p>The store manager's pages answer "
                "only on this machine (loopback).</p>", status_code=403)
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @manager.exception_handler(LoyaltyError)
    async def refused(request: Request, exc: LoyaltyError) -> HTMLResponse:
        return page(request, "error.html", exc.status, title="Refused", message=exc.message)

    @manager.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> HTMLResponse:
        message = httperrors.describe(exc.errors()[0], names=reports.FORM_NAMES)
        return page(request, "error.html", 422, title="Invalid request", message=message)

    @manager.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        return page(request, "error.html", exc.status_code, title=str(exc.status_code),
                    message=str(exc.detail))

    @manager.get("/static/{name}")
    def static(name: str) -> Response:
        types = {"office.css": "text/css", "office.js": "text/javascript"}
        if name not in types:
            raise NotFound("no such file")
        return Response((HERE / "static" / name).read_bytes(), media_type=types[name],
                        headers={"Cache-Control": "max-age=300"})

    @manager.get("/")
    def status(request: Request) -> HTMLResponse:
        figures = outlet_status(outlet)
        return page(request, "status.html", title="Status", f=figures)

    @manager.get("/customers")
    def search(request: Request, q: Annotated[str, Query(max_length=100)] = "") -> HTMLResponse:
        text = q.strip()
        found: list[dict[str, Any]] = []
        if text:
            by_ident = outlet.db.all(
                "SELECT c.customer_id, c.kind, c.given_name, c.surname, c.name, c.status, "
                "c.category, c.room FROM identifiers i JOIN customers c USING (customer_id) "
                "WHERE i.value = ?", (text,))
            found = [dict(r) for r in by_ident]
            seen = {r["customer_id"] for r in found}
            found += [r for r in customers.search(outlet, text, limit=50)
                      if r["customer_id"] not in seen]
            cards = {r[0]: r[1] for r in outlet.db.all(
                "SELECT customer_id, value FROM identifiers WHERE kind = 'card' AND customer_id "
                f"IN ({','.join('?' for _ in found)}) ORDER BY value",
                [r["customer_id"] for r in found])} if found else {}
            for r in found:
                r["card"] = cards.get(r["customer_id"], "")
        return page(request, "customers.html", title="Customers", q=text, found=found)

    @manager.get("/customers/{customer_id}")
    def card(request: Request, customer_id: str) -> HTMLResponse:
        view = customers.profile(outlet, customer_id)
        sales = [dict(r) for r in outlet.db.all(
            "SELECT sale_id, till_id, at, total_gross, total_discount, total_net, points_earned "
            "FROM sales WHERE customer_id = ? ORDER BY at DESC LIMIT 50", (customer_id,))]
        names = {sku: g.name for sku, g in outlet.programme.gifts.items()}
        return page(request, "customer.html", title=display_name(view) or customer_id,
                    c=view, s=view["statistics"], sales=sales, gift_names=names)

    @manager.get("/customers/{customer_id}/picture")
    def picture(customer_id: str) -> Response:
        row = outlet.db.one("SELECT picture FROM customers WHERE customer_id = ?", (customer_id,))
        raw = None if row is None else row[0]
        kind = picture_type(raw) if raw else None
        if raw is None or kind is None:
            raise NotFound("this customer has no picture")
        return Response(bytes(raw), media_type=kind, headers={"Cache-Control": "private, no-store"})

    @manager.get("/sales")
    def today(request: Request) -> HTMLResponse:
        day = datetime.now(UTC).date().isoformat()
        with outlet.db.read() as conn:
            sales = [dict(r) for r in conn.execute(
                "SELECT s.sale_id, s.till_id, s.at, s.total_gross, s.total_discount, "
                "s.total_net, s.points_earned, s.customer_id, c.kind, c.given_name, c.surname, "
                "c.name FROM sales s LEFT JOIN customers c USING (customer_id) WHERE s.at >= ? "
                "ORDER BY s.at DESC LIMIT ?", (day, SALES_SHOWN))]
            totals = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(total_gross), 0), COALESCE(SUM(total_discount), 0),"
                " COALESCE(SUM(total_net), 0), COALESCE(SUM(points_earned), 0) FROM sales "
                "WHERE at >= ?", (day,)).fetchone()
            payments = dict(conn.execute(
                "SELECT p.mode, SUM(p.amount) FROM payments p JOIN sales s USING (sale_id) "
                "WHERE s.at >= ? GROUP BY p.mode ORDER BY p.mode", (day,)).fetchall())
            lines: dict[str, list[dict[str, Any]]] = {}
            if sales:
                marks = ",".join("?" for _ in sales)
                for r in conn.execute(f"SELECT * FROM sale_lines WHERE sale_id IN ({marks}) "
                                      "ORDER BY sale_id, line_no", [s["sale_id"] for s in sales]):
                    lines.setdefault(r["sale_id"], []).append(dict(r))
        for s in sales:
            s["lines"] = lines.get(s["sale_id"], [])
            s["actions"] = sorted({a for ln in s["lines"] for a in json.loads(ln["actions"] or "[]")})
        return page(request, "sales.html", title="Today's sales", day=day, sales=sales,
                    totals=tuple(totals), payments=payments)

    @manager.get("/gifts")
    def gift_stock(request: Request) -> HTMLResponse:
        return page(request, "gifts.html", title="Gift stock", rows=gifts.stock(outlet))

    @manager.get("/reports")
    def report_index(request: Request) -> HTMLResponse:
        return page(request, "reports.html", title="Reports", names=reports.NAMES)

    Period = Annotated[str, Query(max_length=100)]  # a bad date is the report's to word
    Short = Annotated[str, Query(max_length=100)]

    @manager.get("/reports/{name}")
    def report_view(request: Request, name: str, date_from: Period = "", date_to: Period = "",
                    category: Short = "", customer: Short = "",
                    by: Literal["", "category"] = "") -> HTMLResponse:
        if name not in reports.NAMES:
            raise NotFound(f"no report {name}")
        args = {"date_from": date_from, "date_to": date_to, "category": category,
                "customer": customer, "by": by}
        report, error = None, None
        if name == "receipts" and not customer:
            error = "choose a customer (its id) to see its receipts"
        else:
            conn = reports.connect(outlet.db.path)
            try:
                report = reports.run(conn, name, reports.Filters(
                    date_from=date_from or None, date_to=date_to or None,
                    category=category or None, customer=customer or None, by=by or None),
                    names=reports.FORM_NAMES)
            except InvalidRequest as exc:
                error = exc.message
            finally:
                conn.close()
        categories = sorted(outlet.programme.categories)
        return page(request, "report.html", 200 if error is None else 422,
                    title=report.title if report else name, name=name, report=report,
                    error=error, args=args, categories=categories)

    return manager
