"""HQ's web back office (issue 6; docs/backoffice.md): server-rendered pages for head-office
staff, mounted under /office by hq/api.py, on the back-office base of web/office.py (its
layout, stylesheet, script, report and error templates, security headers, error pages and
signed sessions).

Pages: customer search and the customer's card (statistics, top-10 lists, picture,
receipts, invoices), invoices (one with its items and a bank-payment form), the reports of
schema/reports.py with a print stylesheet, gift stock per outlet, outlets and their sync
health, open flags.

Security (docs/design.md invariant 8: admin operations need an admin credential): every page
but the login form needs a staff session. The session cookie is signed (HMAC-SHA256) with
a per-database secret kept in HQ's meta table, HttpOnly, SameSite=Strict, Secure when
served over https, and expires after SESSION_S; logging out bumps the account's session
generation, so every cookie issued before stops working. Every POST form carries a
per-session CSRF token and a cross-origin Origin header is refused. Templates autoescape
everything. Card numbers are masked to their last 4 digits everywhere except on the
customer's own card page. Must never: write anything but through hq/ operations (bank
payments, resolving flags), or show a password or token.
"""

# no `from __future__ import annotations`: FastAPI resolves the dependency aliases defined
# inside app() (Staff, Posted...) from the annotations, which must be real objects.
import json
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hq import admin, ingest, invoices, staff
from hq.chain import Chain
from schema import reports, timing
from schema.customerstore import display_name
from schema.errors import InvalidRequest, NotFound, Overpayment
from web.office import (
    Grouping,
    Pages,
    Period,
    Sessions,
    Short,
    checked_form,
    environment,
    install,
    money_input,
    picture_answer,
    report_or_error,
    safe_next,
    same_origin,
)

HERE = Path(__file__).parent
COOKIE = "loyalty_office"
SESSION_S = 8 * 3600
STALE_AFTER_S = 2 * 3600 + 15 * 60  # a modem outlet dials every 2 h by default
RECEIPTS_SHOWN = 50


def session_key(chain: Chain) -> bytes:
    """The key that signs staff sessions: made once per database, kept in `meta.web_secret`
    (so sessions survive a restart of HQ, and a copied cookie opens no other HQ)."""
    with chain.db.write() as conn:
        secret = chain.meta(conn, "web_secret")
        if secret is None:
            secret = secrets.token_hex(32)
            chain.set_meta(conn, "web_secret", secret)
    return bytes.fromhex(secret)


# --- the application -------------------------------------------------------------------------
def app(chain: Chain, stale_after_s: int = STALE_AFTER_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> FastAPI:
    """The back office as an app of its own, mounted by hq/api.py under /office."""
    office = FastAPI(title="Loyalty HQ back office", docs_url=None, redoc_url=None,
                     openapi_url=None)
    sessions = Sessions(session_key(chain), lambda username: staff.session_gen(chain.db, username),
                        COOKIE, SESSION_S)

    def signed_in_user(request: Request) -> Mapping[str, Any]:
        session = getattr(request.state, "session", None)
        return {"user": session and session["u"], "csrf": session and sessions.csrf(session)}

    pages = Pages(environment(HERE / "templates", site="Loyalty HQ"), signed_in_user)
    page = pages.page  # page(request, template, http_status=200, **the template's variables)
    install(office, pages)

    Staff = Annotated[dict[str, Any], Depends(sessions.signed_in)]
    Posted = Annotated[dict[str, Any], Depends(checked_form(sessions))]

    # login ---------------------------------------------------------------------------------
    @office.get("/login")
    def login_form(request: Request, next: str | None = None) -> HTMLResponse:
        return page(request, "login.html", title="Log in", next=safe_next(next), error=None)

    @office.post("/login")
    def login(request: Request, username: Annotated[str, Form(max_length=64)],
              password: Annotated[str, Form(max_length=staff.MAX_PASSWORD)],
              next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
        same_origin(request)
        target = safe_next(next)
        if sessions.throttled(username):
            return page(request, "login.html", 429, title="Log in", next=target,
                        error="Too many failed attempts: wait a few minutes.")
        generation = staff.authenticate(chain.db, username, password)
        if generation is None:
            sessions.failed(username)
            return page(request, "login.html", 401, title="Log in", next=target,
                        error="Wrong username or password.")
        sessions.succeeded(username)
        base = request.scope.get("root_path", "")
        target = target if target.startswith(base + "/") else base + target
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, sessions.issue(username, generation), max_age=SESSION_S,
                            path=base or "/", httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    @office.post("/logout")
    def logout(request: Request, session: Posted) -> Response:
        with chain.db.write() as conn:
            staff.end_sessions(conn, session["u"])
        base = request.scope.get("root_path", "")
        response = RedirectResponse(f"{base}/login", status_code=303)
        response.delete_cookie(COOKIE, path=base or "/", httponly=True, samesite="strict")
        return response

    # home ----------------------------------------------------------------------------------
    @office.get("/")
    def home(request: Request, _: Staff) -> HTMLResponse:
        with chain.db.read() as conn:
            counts = {
                "customers": conn.execute("SELECT COUNT(*) FROM customers").fetchone()[0],
                "open_flags": conn.execute(
                    "SELECT COUNT(*) FROM flags WHERE resolved_at IS NULL").fetchone()[0],
                "outlets": conn.execute("SELECT COUNT(*) FROM outlets").fetchone()[0],
            }
            by_status = dict(conn.execute(
                "SELECT status, COUNT(*) FROM invoices WHERE status != 'paid' GROUP BY status"))
        health = outlet_health()
        return page(request, "home.html", title="Back office", counts=counts,
                    invoices=by_status, stale=[o for o in health if o["stale"]])

    # customers -----------------------------------------------------------------------------
    @office.get("/customers")
    def customer_search(request: Request, _: Staff,
                        q: Annotated[str, Query(max_length=100)] = "") -> HTMLResponse:
        found: list[dict[str, Any]] = []
        text = q.strip()
        if text:
            if text.isdigit() or len(text) > 6 and not any(c.isspace() for c in text) and \
                    any(c.isdigit() for c in text):
                with chain.db.read() as conn:
                    ids = [r[0] for r in conn.execute(
                        "SELECT customer_id FROM identifiers WHERE value = ?", (text,))]
                for customer_id in ids:
                    found += [dict(r) for r in chain.db.all(
                        "SELECT customer_id, kind, given_name, surname, name, status, category "
                        "FROM customers WHERE customer_id = ?", (customer_id,))]
            found += [r for r in admin.search(chain, text)
                      if r["customer_id"] not in {f["customer_id"] for f in found}]
            cards = card_numbers([r["customer_id"] for r in found])
            for r in found:
                r["card"] = cards.get(r["customer_id"], "")
        return page(request, "customers.html", title="Customers", q=text, found=found)

    def card_numbers(customer_ids: list[str]) -> dict[str, str]:
        if not customer_ids:
            return {}
        marks = ",".join("?" for _ in customer_ids)
        rows = chain.db.all(f"SELECT customer_id, value FROM identifiers WHERE kind = 'card' "
                            f"AND customer_id IN ({marks}) ORDER BY value", customer_ids)
        return {r[0]: r[1] for r in rows}

    @office.get("/customers/{customer_id}")
    def customer_card(request: Request, customer_id: str, _: Staff) -> HTMLResponse:
        view = admin.customer_view(chain, customer_id)
        with chain.db.read() as conn:
            has_picture = conn.execute("SELECT picture IS NOT NULL FROM customers WHERE "
                                       "customer_id = ?", (customer_id,)).fetchone()[0]
            receipts_total = conn.execute("SELECT COUNT(*) FROM sales WHERE customer_id = ?",
                                          (customer_id,)).fetchone()[0]
            sales = [dict(r) for r in conn.execute(
                "SELECT * FROM sales WHERE customer_id = ? ORDER BY at DESC, sale_id LIMIT ?",
                (customer_id, RECEIPTS_SHOWN))]
            lines: dict[str, list[dict[str, Any]]] = {}
            if sales:
                marks = ",".join("?" for _ in sales)
                for r in conn.execute(
                        f"SELECT * FROM sale_lines WHERE sale_id IN ({marks}) "
                        "ORDER BY sale_id, line_no", [s["sale_id"] for s in sales]):
                    lines.setdefault(r["sale_id"], []).append(dict(r))
            handouts = [dict(r) for r in conn.execute(
                "SELECT * FROM redemptions WHERE customer_id = ? ORDER BY at DESC LIMIT ?",
                (customer_id, RECEIPTS_SHOWN))]
        for s in sales:
            s["lines"] = lines.get(s["sale_id"], [])
        return page(request, "customer.html", title=display_name(view) or customer_id,
                    c=view, s=view["statistics"], has_picture=has_picture, sales=sales,
                    receipts_total=receipts_total, handouts=handouts,
                    invoices=invoices.invoices(chain, customer_id), gift_names=gift_names())

    @office.get("/customers/{customer_id}/picture")
    def customer_picture(customer_id: str, _: Staff) -> Response:
        row = chain.db.one("SELECT picture FROM customers WHERE customer_id = ?", (customer_id,))
        return picture_answer(None if row is None else row[0])

    def gift_names() -> dict[str, dict[str, Any]]:
        return {r[0]: json.loads(r[1]) for r in chain.db.all(
            "SELECT key, data FROM master WHERE kind = 'gift' ORDER BY key")}

    # invoices ------------------------------------------------------------------------------
    @office.get("/invoices")
    def invoice_list(request: Request, _: Staff,
                     status: Annotated[str, Query(pattern=r"^(|unpaid|paid|overdue|past_term)$")] = "",
                     customer: Annotated[str, Query(max_length=100)] = "") -> HTMLResponse:
        rows = invoices.invoices(chain, customer or None, status or None)
        names = customer_names([r["customer_id"] for r in rows])
        for r in rows:
            r["customer_name"] = names.get(r["customer_id"], "")
        total = sum(r["amount"] for r in rows)
        outstanding = sum(r["amount"] - r["paid_amount"] for r in rows if r["status"] != "paid")
        return page(request, "invoices.html", title="Invoices", rows=rows, status=status,
                    customer=customer, total=total, outstanding=outstanding)

    def customer_names(customer_ids: list[str]) -> dict[str, str]:
        wanted = sorted(set(customer_ids))
        out: dict[str, str] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" for _ in chunk)
            for r in chain.db.all(f"SELECT customer_id, kind, given_name, surname, name FROM "
                                  f"customers WHERE customer_id IN ({marks})", chunk):
                out[r["customer_id"]] = display_name(r)
        return out

    def invoice_page(request: Request, number: str, status: int = 200,
                     error: str | None = None, done: str | None = None) -> HTMLResponse:
        doc = invoices.invoice(chain, number)
        doc["customer_name"] = customer_names([doc["customer_id"]]).get(doc["customer_id"], "")
        left = max(doc["amount"] - doc["paid_amount"], 0)
        return page(request, "invoice.html", status, title=f"Invoice {number}", inv=doc,
                    left=left, error=error, done=done)

    @office.get("/invoices/{number}")
    def invoice_view(request: Request, number: str, _: Staff,
                     done: str | None = None) -> HTMLResponse:
        return invoice_page(request, number, done="paid" if done == "paid" else None)

    @office.post("/invoices/{number}/bank-payment")
    def bank_payment(request: Request, number: str, _: Posted,
                     amount: Annotated[str, Form(max_length=20)],
                     reference: Annotated[str, Form(max_length=100)]) -> Response:
        try:
            invoices.pay_at_bank(chain, number, money_input(amount, "amount"), reference)
        except (InvalidRequest, Overpayment) as exc:
            return invoice_page(request, number, exc.status, error=f"{exc.message} [{exc.code}]")
        base = request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/invoices/{quote(number)}?done=paid", status_code=303)

    # reports -------------------------------------------------------------------------------
    @office.get("/reports")
    def report_index(request: Request, _: Staff) -> HTMLResponse:
        return page(request, "reports.html", title="Reports", names=reports.NAMES)

    def filters_from(date_from: str, date_to: str, outlet: str, category: str, customer: str,
                     by: str) -> reports.Filters:
        return reports.Filters(date_from=date_from or None, date_to=date_to or None,
                               outlet=outlet or None, category=category or None,
                               customer=customer or None, by=by or None)

    def choices() -> dict[str, Any]:
        return {"outlets": [r[0] for r in chain.db.all(
                    "SELECT outlet_id FROM outlets ORDER BY outlet_id")],
                "categories": [r[0] for r in chain.db.all(
                    "SELECT key FROM master WHERE kind = 'category' ORDER BY key")]}

    def run_report(name: str, f: reports.Filters) -> tuple[reports.Report | None, str | None]:
        return report_or_error(chain.db.path, name, f)

    @office.get("/reports/print")
    def report_pack(request: Request, _: Staff, date_from: Period = "", date_to: Period = "",
                    outlet: Short = "", category: Short = "",
                    by: Grouping = "") -> HTMLResponse:
        """Every report (but a customer's receipts) for one period, a page each."""
        done = []
        for name in reports.NAMES:
            if name == "receipts":
                continue
            f = filters_from(date_from, date_to, outlet, category, "", by)
            if name == "points-liability":
                f = filters_from("", "", "", category, "", by)
            elif name == "payment-discipline":
                f = filters_from(date_from, date_to, "", category, "", by)
            elif name == "gift-handouts":  # single hand-outs: no grouping
                f = filters_from(date_from, date_to, outlet, category, "", "")
            report, error = run_report(name, f)
            done.append({"name": name, "report": report, "error": error})
        args = {"date_from": date_from, "date_to": date_to, "outlet": outlet,
                "category": category, "by": by}
        return page(request, "report_pack.html", title="Reports", done=done,
                    period=(date_from, date_to), args=args, **choices())

    @office.get("/reports/{name}")
    def report_view(request: Request, name: str, _: Staff, date_from: Period = "",
                    date_to: Period = "", outlet: Short = "", category: Short = "",
                    customer: Short = "",
                    by: Grouping = "") -> HTMLResponse:
        if name not in reports.NAMES:
            raise NotFound(f"no report {name}")
        f = filters_from(date_from, date_to, outlet, category, customer, by)
        report, error = (None, "choose a customer (its id) to see its receipts") if (
            name == "receipts" and not customer) else run_report(name, f)
        return page(request, "report.html", 200 if error is None else 422,
                    title=report.title if report else name, name=name, report=report,
                    error=error, args={"date_from": date_from, "date_to": date_to,
                                       "outlet": outlet, "category": category,
                                       "customer": customer, "by": by},
                    **choices())

    # gift stock ----------------------------------------------------------------------------
    @office.get("/gifts")
    def gift_stock(request: Request, _: Staff) -> HTMLResponse:
        gifts = gift_names()
        outlets = [r[0] for r in chain.db.all("SELECT outlet_id FROM outlets ORDER BY 1")]
        stock: dict[str, dict[str, int]] = {}
        for r in chain.db.all("SELECT outlet_id, gift_sku, qty FROM gift_stock"):
            stock.setdefault(r["gift_sku"], {})[r["outlet_id"]] = r["qty"]
            if r["outlet_id"] not in outlets:
                outlets.append(r["outlet_id"])
        skus = sorted(set(gifts) | set(stock))
        rows = [{"sku": sku, "name": gifts.get(sku, {}).get("name", "(no longer offered)"),
                 "points_cost": gifts.get(sku, {}).get("points_cost"),
                 "per_outlet": [stock.get(sku, {}).get(o, 0) for o in outlets],
                 "total": sum(stock.get(sku, {}).values())} for sku in skus]
        return page(request, "gifts.html", title="Gift stock", rows=rows, outlets=outlets)

    # outlets and flags ---------------------------------------------------------------------
    def outlet_health() -> list[dict[str, Any]]:
        now = clock()
        out = []
        for o in admin.outlets(chain):
            seen = max(filter(None, (o["last_push_at"], o["last_pull_at"])), default=None)
            age = None
            if seen:
                at = datetime.fromisoformat(seen)
                age = int((now - at).total_seconds())
            out.append({**o, "last_seen": seen, "age_s": age,
                        "stale": age is None or age > stale_after_s, **clock_of(o)})
        return out

    def clock_of(o: dict[str, Any]) -> dict[str, Any]:
        """The outlet's clock as HQ last measured it (docs/sync.md, "Outlet clocks")."""
        offset, tolerance = o["clock_offset_s"], chain.clock_tolerance_s
        if offset is None:
            return {"clock": "not measured", "clock_off": False}
        return {"clock": timing.describe_offset(offset, tolerance),
                "clock_off": abs(offset) > tolerance}

    @office.get("/outlets")
    def outlets(request: Request, _: Staff) -> HTMLResponse:
        rows = outlet_health()
        open_flags = {r[0]: int(r[1]) for r in chain.db.all(
            "SELECT outlet_id, COUNT(*) FROM flags WHERE resolved_at IS NULL GROUP BY outlet_id")}
        for r in rows:
            r["open_flags"] = open_flags.get(r["outlet_id"], 0)
        return page(request, "outlets.html", title="Outlets", rows=rows,
                    stale_after_h=round(stale_after_s / 3600, 2), now=clock().isoformat(),
                    tolerance=timing.describe(chain.clock_tolerance_s))

    @office.get("/flags")
    def flag_list(request: Request, _: Staff,
                  all: bool = False, done: str | None = None) -> HTMLResponse:
        rows = ingest.flags(chain, open_only=not all)
        names = customer_names([str(r["customer_id"]) for r in rows if r["customer_id"]])
        for r in rows:
            r["customer_name"] = names.get(str(r["customer_id"]), "")
        return page(request, "flags.html", title="Flags", rows=rows, all=all,
                    done=done if done and done.isdigit() else None)

    @office.post("/flags/{flag_id}/resolve")
    def resolve_flag(request: Request, flag_id: int, session: Posted,
                     note: Annotated[str, Form(max_length=500)] = "") -> Response:
        admin.resolve_flag(chain, flag_id, f"[{session['u']}] {note}".strip())
        base = request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/flags?done={flag_id}", status_code=303)

    return office
