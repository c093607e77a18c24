"""HQ's web back office (issue 6; docs/backoffice.md): server-rendered pages for head-office
staff, mounted under /office by hq/api.py, on the back-office base of web/office.py (its
layout, stylesheet, script, report and error templates, security headers, error pages and
signed sessions).

Pages, one router per area (each module's `router(office)`), composed by `app()`:
`login` (log in, log out), `home` (the start page), `dashboard` (the charts), `customers` (search, a customer's card,
the picture), `stock` (gift stock moved between outlets, operators), `invoices` (the list,
one invoice, a bank payment), `statements` (uploading a bank statement, confirming suggested
payments), `newsletters` (composing and sending one, past ones), `reports` (each report,
the pack for printing), `chain` (gift stock, outlets and their sync health, flags),
`staff` (accounts and roles, for administrators), `audit` (the audit trail).
`context.Office` is what a router is given: the chain, the page renderer, the session and
role dependencies, the clock. A page holds no SQL: it reads and writes through hq/ modules
(hq/admin.py, hq/invoices.py, hq/staff.py...), whose reads are tested in process.

Adding an area (a set of pages, docs/backoffice.md "Adding pages"): one new module of
hq/office/ with `router(office: Office) -> APIRouter`, starting from
`office.router(role=Role.viewer)` (every page behind the login and a role; a form that
changes something takes `office.form(Role.operator)`, whose `Actor` the hq/ operation
records in the audit trail); its reads and writes as functions of the hq/ module that owns
the data; its templates in hq/office/templates/ (extending "base.html", with a menu link
there); and its name in AREAS below. tests/web/test_office_routers.py fails on a module left
out of AREAS, on SQL in a page, on a page a stranger can open and on a page or form that
declares no role.

Security (docs/design.md invariant 8: admin operations need an admin credential): every page
but the login form needs a staff session and a role (schema/roles.py), read from the
database on every request. The session cookie is signed (HMAC-SHA256) with
a per-database secret kept in HQ's meta table, HttpOnly, SameSite=Strict, Secure when
served over https, and expires after SESSION_S; logging out bumps the account's session
generation, so every cookie issued before stops working. Every POST form carries a
per-session CSRF token and a cross-origin Origin header is refused. Templates autoescape
everything. Card numbers are masked to their last 4 digits everywhere except on the
customer's own card page. Must never: write anything but through hq/ operations (bank
payments, resolving flags, staff accounts), each audited with who made it, or show a
password, its hash or a token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

# hq/ modules by what they give, never by a name an area module has (`from hq import staff`
# here would shadow hq/office/staff.py: `from hq.office import staff` would find it)
from hq.audit import shown
from hq.chain import Chain
from hq.office import audit as audit_pages
from hq.office import chain as chain_pages
from hq.office import (
    customer_edit,
    customers,
    dashboard,
    home,
    invoices,
    login,
    outlet_admin,
    programme,
    reports,
    stock,
)
from hq.office import newsletters as newsletter_pages
from hq.office import staff as staff_pages
from hq.office import statements as statement_pages
from hq.office.context import Office
from hq.staff import session_gen, session_key
from schema.roles import may
from web.office import Pages, Sessions, environment, install

HERE = Path(__file__).parent
COOKIE = "loyalty_office"
SESSION_S = 8 * 3600
STALE_AFTER_S = 2 * 3600 + 15 * 60  # a modem outlet dials every 2 h by default

AREAS = (login, home, dashboard, customers, customer_edit, programme, stock, outlet_admin,
         invoices, statement_pages, newsletter_pages, reports, chain_pages, staff_pages,
         audit_pages)


def app(chain: Chain, stale_after_s: int = STALE_AFTER_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> FastAPI:
    """The back office as an app of its own, mounted by hq/api.py under /office."""
    office = FastAPI(title="Loyalty HQ back office", docs_url=None, redoc_url=None,
                     openapi_url=None)
    sessions = Sessions(session_key(chain), lambda username: session_gen(chain.db, username),
                        COOKIE, SESSION_S)

    def signed_in_user(request: Request) -> Mapping[str, Any]:
        """What every page knows of who is looking: their name, role, what that role may
        (`may("operator")`: templates show an edit button only then) and the CSRF token."""
        session = getattr(request.state, "session", None)
        held = getattr(request.state, "role", None)
        return {"user": session and session["u"], "csrf": session and sessions.csrf(session),
                "role": held, "may": lambda needed: may(held, needed)}

    env = environment(HERE / "templates", site="Loyalty HQ")
    env.globals.update(audit_value=shown)
    pages = Pages(env, signed_in_user)
    install(office, pages)
    context = Office(chain=chain, pages=pages, sessions=sessions, clock=clock,
                     stale_after_s=stale_after_s)
    for area in AREAS:
        office.include_router(area.router(context))
    return office
