"""The back-office base: what HQ's office (hq/office/) and the outlet's manager pages
(agent/manager.py) both stand on (docs/backoffice.md).

- `environment(folder, **globals)`: Jinja2 with autoescape, the app's own templates first
  and then the shared ones of web/templates (`_layout.html`, the page with a `nav` block;
  `_report.html`, a report's table and filters; `report.html`; `error.html`), and the
  shared filters: `money` (minor units as 1,234.56), `when` (a UTC time to the second),
  `local` (a UTC time in this machine's zone, as `loyalty status` shows it), `masked`
  (a card number's last 4 digits), `cell` (a report cell).
- `Pages(env, context)`: renders a template into an HTML answer, with `base` (the mount
  path), `path` and what `context(request)` adds (HQ: the signed-in user and the CSRF token).
- `install(app, pages)`: strict security headers on every answer, errors as pages
  (a refusal, a bad form field named by its label, an HTTP error, a needed login as a
  redirect to `{base}/login?next=...`), and `GET /static/{name}` for the one stylesheet and
  the one script of web/static.
- `Sessions`: signed session cookies, CSRF tokens and the login throttle, for any app that
  has staff accounts: the app gives the signing key and how to read an account's session
  generation. `same_origin`, `check_form` (a form's origin and CSRF token),
  `checked_form(sessions)` (the dependency of a POST form needing a session only),
  `safe_next` (the login's `next`, never another site).
- `picture_type`/`picture_answer`: a customer's picture with its real type; `money_input`:
  an amount a person typed, read by schema.money.parse_money (the only money parser).
- Reports: `Period`/`Short`/`Grouping`, the query parameters of a report page, and
  `report_or_error`, a report of schema/reports.py over a database file or why not.

Must never: show a card number but masked (templates choose `masked`), accept a form
without its CSRF token or from another origin, redirect outside the app, or render
anything unescaped.
"""

# no `from __future__ import annotations`: FastAPI reads the annotations of the dependency
# made inside checked_form() and needs real objects.
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import ChoiceLoader, Environment, FileSystemLoader
from starlette.exceptions import HTTPException as StarletteHTTPException

from schema import reports
from schema.customerstore import display_name
from schema.errors import InvalidRequest, LoyaltyError, NotFound, mask_card
from schema.money import money as format_money
from schema.money import parse_money
from schema.passwords import Throttle
from schema.timing import local_time
from web import httperrors

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
ASSETS = {"office.css": "text/css; charset=utf-8", "office.js": "text/javascript; charset=utf-8"}

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "script-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

SESSION_S = 8 * 3600


# --- templates -------------------------------------------------------------------------------
def money(value: Any) -> str:
    """Minor units as 1,234.56 (integers only, never a float)."""
    return "" if value is None or value == "" else format_money(int(value))


def when(value: Any) -> str:
    """An ISO 8601 UTC time as 'YYYY-MM-DD HH:MM:SS' (UTC)."""
    if not value:
        return "-"
    return str(value)[:19].replace("T", " ")


def local(value: Any) -> str:
    """A UTC time in this machine's zone: 'YYYY-MM-DD HH:MM (3 min ago)'."""
    return local_time(str(value) if value else None) or "-"


def environment(folder: Path, **globals: Any) -> Environment:
    """Templates from `folder` first, then web/templates; the shared filters; `globals`."""
    env = Environment(loader=ChoiceLoader([FileSystemLoader(folder), FileSystemLoader(TEMPLATES)]),
                      autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(money=money, when=when, local=local, masked=mask_card, cell=reports.cell)
    env.globals.update(display_name=display_name, **globals)
    return env


class Pages:
    """Renders the app's templates as HTML answers."""

    def __init__(self, env: Environment,
                 context: Callable[[Request], Mapping[str, Any]] = lambda _: {}) -> None:
        self.env = env
        self.context = context

    def page(self, request: Request, template: str, http_status: int = 200,
             **variables: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(
            base=request.scope.get("root_path", ""), path=request.url.path,
            **self.context(request), **variables)
        return HTMLResponse(html, status_code=http_status)


# --- the app's plumbing ----------------------------------------------------------------------
class LoginNeeded(Exception):
    """Raised by `Sessions.signed_in`: the page needs a session; answered by a redirect."""


def install(app: FastAPI, pages: Pages,
            labels: Mapping[str, str] = reports.FORM_NAMES) -> None:
    """Security headers, errors as pages (form fields named by `labels`), the static route.

    Call it after the app's own middleware, so the headers are on that middleware's
    answers too."""
    page = pages.page

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(LoginNeeded)
    async def to_login(request: Request, _: LoginNeeded) -> Response:
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        base = request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/login?next={quote(wanted)}", status_code=303)

    @app.exception_handler(LoyaltyError)
    async def refused(request: Request, exc: LoyaltyError) -> HTMLResponse:
        return page(request, "error.html", exc.status, title="Refused", message=exc.message,
                    code=exc.code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> HTMLResponse:
        message = httperrors.describe(exc.errors()[0], names=labels)
        return page(request, "error.html", 422, title="Invalid request", message=message,
                    code="invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        return page(request, "error.html", exc.status_code, title=str(exc.status_code),
                    message=str(exc.detail), code="http_error")

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in ASSETS:
            raise NotFound("no such file")
        return Response((STATIC / name).read_bytes(), media_type=ASSETS[name],
                        headers={"Cache-Control": "max-age=300"})


def picture_type(raw: bytes) -> str | None:
    """The media type of a stored picture (PNG or JPEG), None for anything else."""
    if raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if raw.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return None


def picture_answer(raw: bytes | None) -> Response:
    """A customer's stored picture with its real type, never cached; NotFound without one."""
    kind = picture_type(raw) if raw else None
    if raw is None or kind is None:
        raise NotFound("this customer has no picture")
    return Response(bytes(raw), media_type=kind, headers={"Cache-Control": "private, no-store"})


def money_input(text: str, field: str) -> int:
    """Minor units of an amount typed into the form field `field` (its label in the
    refusal); schema.money.parse_money reads it: one parser for every amount people type."""
    return parse_money(text, field=field)


# --- reports -------------------------------------------------------------------------------
Period = Annotated[str, Query(max_length=100)]  # a date: a bad one is the report's to word
Short = Annotated[str, Query(max_length=100)]  # an outlet, a category, a customer id
Grouping = Literal["", "category", "day", "week", "month"]


def report_or_error(database: str | Path | Any, name: str,
                    filters: reports.Filters) -> tuple[reports.Report | None, str | None]:
    """(the report, None), or (None, why not) when a filter is wrong, naming the form's
    fields (`From: enter a date as YYYY-MM-DD ...`). Reads its own connection to the file
    (or a snapshot of HQ's store: `reports.reading`)."""
    with reports.reading(database) as conn:
        try:
            return reports.run(conn, name, filters, names=reports.FORM_NAMES), None
        except InvalidRequest as exc:
            return None, exc.message


# --- sessions ------------------------------------------------------------------------------
class Sessions:
    """Signed session cookies: base64url(JSON {u, g, s, e}) + '.' + HMAC-SHA256 (hex).

    `key` signs them (keep it secret and stable: a new key ends every session);
    `generation(username)` is the account's current session generation (None: no such
    account), so bumping it ends every session issued before. The cookie is called
    `cookie` and lasts `ttl_s`."""

    def __init__(self, key: bytes, generation: Callable[[str], int | None],
                 cookie: str, ttl_s: int = SESSION_S) -> None:
        self.key = key
        self.generation = generation
        self.cookie = cookie
        self.ttl_s = ttl_s
        self.throttle = Throttle()

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self.key, payload, hashlib.sha256).hexdigest()

    def issue(self, username: str, generation: int) -> str:
        body = json.dumps({"u": username, "g": generation, "s": secrets.token_hex(16),
                           "e": int(time.time()) + self.ttl_s}, separators=(",", ":")).encode()
        encoded = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return f"{encoded}.{self._sign(encoded.encode())}"

    def read(self, cookie: str | None) -> dict[str, Any] | None:
        """The session of a valid, unexpired cookie whose account still has that session
        generation; None otherwise."""
        if not cookie or "." not in cookie or len(cookie) > 1000:
            return None
        encoded, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature.encode(), self._sign(encoded.encode()).encode()):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
            username, generation, expires = str(data["u"]), int(data["g"]), int(data["e"])
            str(data["s"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires < time.time() or self.generation(username) != generation:
            return None
        return dict(data)

    def csrf(self, session: Mapping[str, Any]) -> str:
        return self._sign(f"csrf|{session['s']}".encode())

    def signed_in(self, request: Request) -> dict[str, Any]:
        """The dependency of every page behind the login: the session, kept on
        `request.state.session` for the page; LoginNeeded without a valid one."""
        session = self.read(request.cookies.get(self.cookie))
        if session is None:
            raise LoginNeeded()
        request.state.session = session
        return session

    # login throttling (in memory, per username: schema.passwords.Throttle)
    def throttled(self, username: str) -> bool:
        return self.throttle.throttled(username)

    def failed(self, username: str) -> None:
        self.throttle.failed(username)

    def succeeded(self, username: str) -> None:
        self.throttle.succeeded(username)


def same_origin(request: Request) -> None:
    """Refuses (403) a form posted from another site (its Origin header names another host)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise StarletteHTTPException(403, "cross-origin form refused")


def check_form(request: Request, sessions: Sessions, session: Mapping[str, Any],
               csrf: str) -> None:
    """Refuses (403) a form posted from another site or without the session's CSRF token."""
    same_origin(request)
    if not hmac.compare_digest(csrf.encode(), sessions.csrf(session).encode()):
        raise StarletteHTTPException(403, "this form has expired: reload the page and "
                                          "try again")


def checked_form(sessions: Sessions) -> Callable[..., dict[str, Any]]:
    """The dependency of a POST form: signed in, same origin, and its `csrf` field is the
    session's token; the session."""

    def checked(request: Request,
                session: Annotated[dict[str, Any], Depends(sessions.signed_in)],
                csrf: Annotated[str, Form(max_length=200)] = "") -> dict[str, Any]:
        check_form(request, sessions, session, csrf)
        return session

    return checked


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path inside the app, never another site (an open
    redirect); "/" otherwise."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"
