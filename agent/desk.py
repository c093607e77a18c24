"""The outlet's reception desk (issue 12; docs/desk.md), mounted under /desk by agent/api,
on the back-office base of web/office.py (its layout, stylesheet, errors as pages,
security headers, signed sessions and CSRF).

Staff sign in with a desk account: HQ's master data replicated to the outlet and checked
here with no network (agent/deskstaff.py `DeskLogins`), so the desk works offline. A
session cookie (HttpOnly, SameSite=Strict, limited to /desk, Secure behind TLS) is signed
with a key made when the agent starts: restarting the agent signs everyone out, and HQ's
new password or a disabled account ends the sessions once the outlet has pulled it (the
account's session generation). Every form carries the session's CSRF token and must come
from the desk's own origin.

Where the desk answers (docs/desk.md, "Reaching the desk"): only to a client on loopback,
which is either a browser on the agent's own machine (Host a loopback name, plain HTTP),
or a TLS reverse proxy on that machine that a desk PC on the outlet's LAN reaches over
https (it says so with `X-Forwarded-Proto: https`). Any other client is refused with a page
that says how to reach the desk. Passwords therefore never cross the LAN in clear, and a
web page elsewhere cannot reach the desk through DNS rebinding without a session cookie.

Pages: sign in / out, find a customer (name, card, phone, room) and the customer's card;
register a person or an organisation and print the club card (its EAN-13 barcode drawn by
web/barcode.py); hand out a gift (POST /v1/redemptions' call, agent/gifts.py `redeem`,
the form token its Idempotency-Key) with its receipt and the card-status printout
(GET /v1/customers/{id}/statement's lines); take a gift back (a hand-out of this outlet
listed on the gift page; POST /v1/redemptions/{id}/return's call, agent/returns.py
`give_gift_back`, the form token its Idempotency-Key: stock back up, points back) with its
receipt; take a consolidated-invoice payment (POST
/v1/invoices/{number}/payments' call, agent/credit.py `pay`; the amount typed read by
web/office.py `money_input`; overpayment refused) and print the card statement; report a
card lost and issue a replacement keeping the balance and history (agent/customers.py
`replace_card`: the till API's identifier status change and identifier added); write the
club card number (and a PIN) onto a blank smart card in a PC/SC reader of the agent's
machine (agent/smartcards.py `personalise`, POST /v1/customers/{id}/smartcard's call).

A form that makes something carries a one-time form token: a second submission of the
same form (a double-click, a reload) answers with what the first made and makes nothing
more (`FormTokens`; in memory, like the sessions).

What the desk changes goes through the same domain calls as the till API (agent/customers.py,
agent/gifts.py, agent/credit.py): one code path. Card numbers are shown masked except on
pages printed for the customer. Must never: call HQ, hold or log a password.
"""

# no `from __future__ import annotations`: FastAPI reads the annotations of the handlers
# defined inside app() and needs real objects.
import json
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import ChoiceLoader, DictLoader
from markupsafe import Markup
from pydantic import BaseModel, ValidationError

from agent import credit, customers, gifts, history, returns, smartcards
from agent.deskstaff import DeskLogins
from schema import passwords
from schema.api import CustomerIn, GiftReturnIn, RedemptionIn, SmartcardIn
from schema.customerstore import display_name
from schema.errors import InvalidRequest, LoginFailed, LoginLocked, NotFound
from web.barcode import ean13_svg
from web.httperrors import describe
from web.office import (
    Pages,
    Sessions,
    checked_form,
    environment,
    install,
    money_input,
    picture_answer,
    safe_next,
    same_origin,
)

if TYPE_CHECKING:
    from agent.outlet import Outlet

HERE = Path(__file__).parent
T = TypeVar("T", bound=BaseModel)
COOKIE = "loyalty_desk"
FORM_TOKENS = 10_000  # the form tokens remembered (double-clicks), the oldest forgotten first
LABELS = {"kind": "Kind", "given_name": "Given name", "surname": "Surname",
          "name": "Organisation", "phone": "Phone", "email": "E-mail", "room": "Room",
          "category": "Category", "amount": "Amount", "qty": "Quantity", "sku": "Gift",
          "token": "Form token", "username": "Username", "password": "Password",
          "reader": "Reader", "pin": "PIN"}
LOOPBACK_CLIENTS = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
REFUSED = ("<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Reception desk: "
           "not here</title><h1>The reception desk is not reachable this way</h1><p>Open it on "
           "the agent's own machine (http://127.0.0.1:PORT/desk/), or from a desk PC on the "
           "outlet's network through the TLS reverse proxy the outlet runs on the agent's "
           "machine (https://…/desk/). Plain HTTP from another machine is refused so that "
           "passwords never cross the network in clear: see docs/desk.md, \"Reaching the "
           "desk\".</p></html>")


def reachable(request: Request) -> bool:
    """A browser on this machine, or the TLS reverse proxy on this machine (docs/desk.md).

    uvicorn trusts a proxy's X-Forwarded-* headers only from 127.0.0.1 (its default
    `forwarded_allow_ips`) and then shows the request as https from the desk PC's address:
    so https means "through the proxy here"; a proxy whose headers uvicorn did not read
    still connects from loopback and says https itself."""
    if request.url.scheme == "https":
        return True
    client = request.client.host if request.client else ""
    if client not in LOOPBACK_CLIENTS:
        return False
    if request.headers.get("x-forwarded-proto", "").lower() == "https":
        return True
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name.lower() in LOOPBACK_HOSTS


def secure(request: Request) -> bool:
    return request.url.scheme == "https" \
        or request.headers.get("x-forwarded-proto", "").lower() == "https"


class FormTokens:
    """What each one-time form token made (a customer id...), so a form sent twice makes one
    thing. In memory: the desk's sessions end when the agent restarts anyway."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.made: dict[str, str] = {}

    def once(self, token: str, make: Callable[[], str]) -> str:
        """`make()`'s answer for the first use of `token`; the same answer after."""
        if len(token) < 16:
            raise InvalidRequest("this form has no token: reload the page and try again")
        with self.lock:  # one at a time: the second click waits for the first's answer
            if token not in self.made:
                if len(self.made) >= FORM_TOKENS:
                    del self.made[next(iter(self.made))]
                self.made[token] = make()
            return self.made[token]


def club_card(view: dict[str, Any]) -> str:
    """The customer's active club card number (the newest); NotFound without one."""
    cards = [i["value"] for i in view["identifiers"]
             if i["kind"] == "card" and i["status"] == "active"]
    if not cards:
        raise NotFound("this customer has no active club card")
    return str(cards[-1])


def validated(model: type[T], fields: dict[str, str]) -> T:
    """A form as the till API's body `model` (empty fields left out): the same checks; a
    refusal naming the form's field otherwise."""
    try:
        return model.model_validate({k: v.strip() for k, v in fields.items() if v.strip()})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidRequest(describe(first, names=LABELS) if first.get("loc")
                             else str(first.get("msg", "")).removeprefix("Value error, ")
                             ) from None


def app(outlet: "Outlet") -> FastAPI:
    desk = FastAPI(title=f"Loyalty outlet {outlet.outlet_id}: reception desk",
                   docs_url=None, redoc_url=None, openapi_url=None)
    logins = DeskLogins(outlet.db)
    sessions = Sessions(secrets.token_bytes(32), logins.session_gen, COOKIE)
    site = f"Desk · outlet {outlet.outlet_id}"

    def context(request: Request) -> dict[str, Any]:
        session = getattr(request.state, "session", None)
        if session is None:
            return {"user": None, "csrf": ""}
        return {"user": session["u"], "csrf": sessions.csrf(session)}

    env = environment(HERE / "templates", site=site, outlet_id=outlet.outlet_id)
    # the shared pages (error.html) extend "base.html": at the desk that is the desk's layout
    env.loader = ChoiceLoader([DictLoader({"base.html": '{% extends "desk_base.html" %}'}),
                               env.loader])  # type: ignore[list-item]
    pages = Pages(env, context)
    page = pages.page
    signed_in = Depends(sessions.signed_in)
    form = Depends(checked_form(sessions))

    @desk.middleware("http")
    async def reachable_only(request: Request, call_next: Any) -> Response:
        if not reachable(request):
            return HTMLResponse(REFUSED, status_code=403)
        response: Response = await call_next(request)
        return response

    install(desk, pages, LABELS)  # after reachable_only: its 403 gets the security headers too

    def mount(request: Request) -> str:
        return str(request.scope.get("root_path", ""))

    @desk.get("/login")
    def login_form(request: Request, next: str | None = None) -> HTMLResponse:
        return page(request, "desk_login.html", title="Sign in", next=safe_next(next),
                    error=None)

    @desk.post("/login")
    def login(request: Request, username: Annotated[str, Form(max_length=64)],
              password: Annotated[str, Form(max_length=passwords.MAX_PASSWORD)],
              next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
        same_origin(request)
        target = safe_next(next)
        try:
            account = logins.sign_in(username, password)
        except (LoginFailed, LoginLocked) as exc:
            words = "Too many failed attempts: wait a few minutes." \
                if isinstance(exc, LoginLocked) else "Wrong username or password."
            return page(request, "desk_login.html", exc.status, title="Sign in", next=target,
                        error=words)
        base = mount(request)
        target = target if target.startswith(base + "/") else base + target
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, sessions.issue(account.username, account.session_gen),
                            max_age=sessions.ttl_s, path=base or "/", httponly=True,
                            samesite="strict", secure=secure(request))
        return response

    @desk.post("/logout")
    def logout(request: Request, session: Annotated[dict[str, Any], form]) -> Response:
        response = RedirectResponse(mount(request) + "/login", status_code=303)
        response.delete_cookie(COOKIE, path=mount(request) or "/", httponly=True,
                               samesite="strict")
        return response

    @desk.get("/")
    def home(request: Request, session: Annotated[dict[str, Any], signed_in],
             q: Annotated[str, Query(max_length=100)] = "") -> HTMLResponse:
        text = q.strip()
        return page(request, "desk_home.html", title="Find a customer", q=text,
                    found=customers.find(outlet, text))

    @desk.get("/customers/{customer_id}")
    def card(request: Request, customer_id: str,
             session: Annotated[dict[str, Any], signed_in]) -> HTMLResponse:
        view = customers.profile(outlet, customer_id)
        return page(request, "desk_customer.html", title=display_name(view) or customer_id,
                    c=view, sales=history.customer_sales(outlet, customer_id),
                    token=secrets.token_urlsafe(24))

    made = FormTokens()
    Field = Annotated[str, Form(max_length=300)]

    @desk.get("/register")
    def register_form(request: Request, session: Annotated[dict[str, Any], signed_in],
                      kind: str = "person") -> HTMLResponse:
        return page(request, "desk_register.html", title="Register a customer",
                    kind="organisation" if kind == "organisation" else "person",
                    categories=sorted(outlet.programme.categories),
                    default=outlet.default_category(), token=secrets.token_urlsafe(24))

    @desk.post("/register")
    def register(request: Request, session: Annotated[dict[str, Any], form],
                 token: Annotated[str, Form(max_length=100)], kind: Field = "person",
                 given_name: Field = "", surname: Field = "", name: Field = "",
                 phone: Field = "", email: Field = "", room: Field = "",
                 category: Field = "") -> Response:
        body = validated(CustomerIn, {"kind": kind, "given_name": given_name, "surname": surname,
                             "name": name, "phone": phone, "email": email, "room": room,
                             "category": category})
        customer_id = made.once(token, lambda: customers.register(outlet, body)["customer_id"])
        return RedirectResponse(f"{mount(request)}/customers/{customer_id}/card",
                                status_code=303)

    @desk.get("/customers/{customer_id}/card")
    def printable_card(request: Request, customer_id: str,
                       session: Annotated[dict[str, Any], signed_in]) -> HTMLResponse:
        view = customers.profile(outlet, customer_id)
        number = club_card(view)
        return page(request, "desk_card.html", title=display_name(view) or customer_id,
                    c=view, number=number, barcode=Markup(ean13_svg(number)))

    @desk.get("/customers/{customer_id}/gifts")
    def gift_catalogue(request: Request, customer_id: str,
                       session: Annotated[dict[str, Any], signed_in]) -> HTMLResponse:
        view = customers.profile(outlet, customer_id)
        return page(request, "desk_gifts.html", title=f"Gifts for {display_name(view)}",
                    c=view, rows=gifts.stock(outlet), token=secrets.token_urlsafe(24),
                    handouts=gifts.handouts(outlet, customer_id))

    @desk.post("/customers/{customer_id}/gifts/return")
    def take_back(request: Request, customer_id: str,
                  session: Annotated[dict[str, Any], form],
                  token: Annotated[str, Form(min_length=16, max_length=100)],
                  redemption_id: Annotated[str, Form(min_length=1, max_length=64)],
                  qty: Annotated[int, Form(gt=0, le=1000)] = 1,
                  reason: Annotated[str, Form(max_length=200)] = "") -> HTMLResponse:
        view = customers.profile(outlet, customer_id)
        if redemption_id not in {h["redemption_id"] for h in gifts.handouts(
                outlet, customer_id, limit=1000)}:
            raise NotFound("no such hand-out of this customer at this outlet: a gift goes "
                           "back where it was handed out")
        body = GiftReturnIn(qty=qty, till_id="desk", reason=reason.strip())
        # the form token is the Idempotency-Key of POST /v1/redemptions/{id}/return: a
        # double-click replays the first return's answer
        done, _ = returns.give_gift_back(outlet, redemption_id, body, f"desk-{token}")
        return page(request, "desk_receipt.html", 201, title="Gift taken back", c=view,
                    receipt=done["receipt_lines"],
                    statement=customers.statement(outlet, customer_id))

    @desk.post("/customers/{customer_id}/gifts")
    def hand_out(request: Request, customer_id: str,
                 session: Annotated[dict[str, Any], form],
                 token: Annotated[str, Form(min_length=16, max_length=100)],
                 sku: Annotated[str, Form(min_length=1, max_length=64)],
                 qty: Annotated[int, Form(gt=0, le=1000)] = 1) -> HTMLResponse:
        view = customers.profile(outlet, customer_id)
        body = RedemptionIn(card=club_card(view), gift_sku=sku, qty=qty, till_id="desk")
        # the form token is the Idempotency-Key of POST /v1/redemptions: a double-click
        # replays the first hand-out's answer
        handed, _ = gifts.redeem(outlet, body, f"desk-{token}")
        return page(request, "desk_receipt.html", 201, title="Gift handed out", c=view,
                    receipt=handed["receipt_lines"],
                    statement=customers.statement(outlet, customer_id))

    @desk.get("/customers/{customer_id}/statement")
    def statement(request: Request, customer_id: str,
                  session: Annotated[dict[str, Any], signed_in]) -> HTMLResponse:
        view = customers.profile(outlet, customer_id)
        return page(request, "desk_receipt.html", title="Card statement", c=view,
                    receipt=None, statement=customers.statement(outlet, customer_id))

    @desk.get("/customers/{customer_id}/invoices")
    def invoices(request: Request, customer_id: str,
                 session: Annotated[dict[str, Any], signed_in]) -> HTMLResponse:
        view = customers.profile(outlet, customer_id)
        return page(request, "desk_invoices.html", title=f"Invoices of {display_name(view)}",
                    c=view, rows=credit.invoices_of(outlet, customer_id),
                    token=secrets.token_urlsafe(24))

    @desk.post("/customers/{customer_id}/invoices/{number}/payments")
    def pay(request: Request, customer_id: str, number: str,
            session: Annotated[dict[str, Any], form],
            token: Annotated[str, Form(min_length=16, max_length=100)],
            amount: Annotated[str, Form(max_length=40)]) -> HTMLResponse:
        view = customers.profile(outlet, customer_id)
        if number not in {i["number"] for i in credit.invoices_of(outlet, customer_id)}:
            raise NotFound(f"no invoice {number} of this customer at this outlet")
        minor = money_input(amount, "Amount")
        if minor <= 0:
            raise InvalidRequest("Amount: enter what the customer pays, more than 0")
        paid = json.loads(made.once(token, lambda: json.dumps(
            credit.pay(outlet, number, minor, "desk"))))
        return page(request, "desk_receipt.html", 201, title="Payment taken", c=view,
                    paid=paid, receipt=None,
                    statement=customers.statement(outlet, customer_id))

    @desk.post("/customers/{customer_id}/replace-card")
    def replace_card(request: Request, customer_id: str,
                     session: Annotated[dict[str, Any], form],
                     token: Annotated[str, Form(min_length=16, max_length=100)],
                     ending: Annotated[str, Form(min_length=4, max_length=4)]) -> Response:
        view = customers.profile(outlet, customer_id)

        def replaced() -> str:
            cards = [i["value"] for i in view["identifiers"] if i["kind"] == "card"
                     and i["status"] == "active" and i["value"].endswith(ending)]
            if len(cards) != 1:
                raise InvalidRequest("no active club card of this customer ends so: reload "
                                     "the customer's card and try again", kind="card")
            return customers.replace_card(outlet, customer_id, cards[0])

        made.once(token, replaced)
        return RedirectResponse(f"{mount(request)}/customers/{customer_id}/card",
                                status_code=303)

    @desk.get("/customers/{customer_id}/smartcard")
    def smartcard_form(request: Request, customer_id: str,
                       session: Annotated[dict[str, Any], signed_in]) -> HTMLResponse:
        view = customers.profile(outlet, customer_id)
        return page(request, "desk_smartcard.html", title="Personalise a smart card", c=view,
                    done=None)

    @desk.post("/customers/{customer_id}/smartcard")
    def smartcard(request: Request, customer_id: str,
                  session: Annotated[dict[str, Any], form],
                  reader: Annotated[str, Form(min_length=1, max_length=100)],
                  pin: Annotated[str, Form(max_length=12)] = "") -> HTMLResponse:
        view = customers.profile(outlet, customer_id)
        body = validated(SmartcardIn, {"reader": reader, "pin": pin})  # the till API's checks
        done = smartcards.personalise(outlet, customer_id, body.reader, body.pin)
        return page(request, "desk_smartcard.html", 201, title="Smart card written", c=view,
                    done=done)

    @desk.get("/customers/{customer_id}/picture")
    def picture(customer_id: str, session: Annotated[dict[str, Any], signed_in]) -> Response:
        return picture_answer(customers.stored_picture(outlet, customer_id))

    return desk
