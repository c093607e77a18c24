"""The unsubscribe pages at HQ: where the link in every notice leads (docs/invoices.md).

`GET /unsubscribe/{token}` shows what the link does and a button; `POST` to the same address
withdraws the customer's e-mail consent (`hq.notices.withdraw_consent`: HQ's own
`customer.updated` fact) - also what a mail program's one-click "unsubscribe" sends (RFC
8058). No login: the signed token is the proof. Promises: a token that is not ours, or was
altered, changes nothing and says so; a second POST changes nothing. Must never: show
anything of the customer but a masked address.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from hq import notices
from hq.chain import Chain

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;
line-height:1.5}}button{{font-size:1rem;padding:.5rem 1rem}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""
_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex",
            "Referrer-Policy": "no-referrer"}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(title), body=body), status,
                        headers=_HEADERS)


def masked(address: str | None) -> str:
    """`ziga.novak@example.com` -> `z…@example.com`."""
    user, at, domain = (address or "").rpartition("@")
    return f"{user[:1]}…@{domain}" if at and user else "your address"


def router(chain: Chain) -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    def lookup(token: str) -> tuple[str | None, bool, str | None]:
        with chain.db.read() as conn:
            customer_id = notices.customer_of(conn, token)
            row = conn.execute("SELECT email, email_consent FROM customers WHERE customer_id"
                               " = ?", (customer_id,)).fetchone() if customer_id else None
        if row is None:
            return None, False, None
        return customer_id, bool(row["email_consent"]), row["email"]

    def invalid() -> HTMLResponse:
        return _page("This link does not work",
                     "<p>This unsubscribe link is not valid: check that it was copied whole,"
                     " or use the link in a more recent e-mail from us.</p>", 404)

    @routes.get("/unsubscribe/{token}")
    async def confirm_page(token: str, request: Request) -> HTMLResponse:
        customer_id, consent, email = await run_in_threadpool(lookup, token)
        if customer_id is None:
            return invalid()
        if not consent:
            return _page("You receive no e-mails from us",
                         "<p>There is nothing to do: we send no e-mails to"
                         f" {escape(masked(email))}.</p>")
        return _page("Stop our e-mails?",
                     f"<p>We send invoices and notices to {escape(masked(email))} because you"
                     " agreed to it. After this, invoices come by post.</p>"
                     f'<form method="post" action="{escape(str(request.url.path))}">'
                     '<button type="submit">Stop the e-mails</button></form>')

    @routes.post("/unsubscribe/{token}")
    async def withdraw(token: str) -> HTMLResponse:
        customer_id, _, email = await run_in_threadpool(lookup, token)
        if customer_id is None:
            return invalid()
        await run_in_threadpool(notices.withdraw_consent, chain, customer_id)
        return _page("Done: no more e-mails",
                     f"<p>We send no more e-mails to {escape(masked(email))}. Invoices come by"
                     " post. You can agree to e-mails again at any of our shops.</p>")

    return routes
