"""Newsletters in the back office, for operators (docs/invoices.md, "Newsletters"): compose
a plain-text message, choose the segment (category, outlet of registration, active in the
last N days), preview how many consenting customers it will reach, send it, and see past
newsletters with how many of their messages are queued, sent, failed or not mailed.

Sending calls what `loyalty hq newsletter` and the admin API call, `hq.newsletters.send`:
it records the newsletter and its recipients, audited with the operator; HQ's mail run
renders and sends the messages later, never the request. The compose page gives every
newsletter its id when it is drawn (a hidden field the preview and the send form carry),
so the same form sent twice - a double click, a reload - records one newsletter and mails
each customer once."""

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from hq import admin, newsletters
from hq.audit import Actor
from hq.office.context import Office, see_other
from schema.errors import Conflict, InvalidRequest, MailNotConfigured
from schema.events import new_id
from schema.roles import Role

Subject = Annotated[str, Form(max_length=newsletters.MAX_SUBJECT + 10)]
Body = Annotated[str, Form(max_length=newsletters.MAX_BODY + 10_000)]
Code = Annotated[str, Form(max_length=60)]
Days = Annotated[str, Form(max_length=10)]
FIELDS = ("newsletter_id", "subject", "body", "category", "outlet", "active_days")


def days_of(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit():
        raise InvalidRequest(f"active_days: a whole number of days, not {text!r}")
    return int(text)


def described(segment: dict[str, Any]) -> str:
    """A segment in words, as the page and the list of past newsletters show it."""
    parts = []
    if segment.get("category"):
        parts.append(f"category {segment['category']}")
    if segment.get("outlet"):
        parts.append(f"registered at {segment['outlet']}")
    if segment.get("active_days"):
        parts.append(f"active in the last {segment['active_days']} days")
    return ", ".join(parts) or "every customer"


def counts(letter: dict[str, Any]) -> dict[str, int]:
    """Where a newsletter's messages are: still to go (to render or in the queue), sent,
    failed, and not mailed (consent withdrawn or address lost since it was sent)."""
    decided, mail = letter["decided"], letter["mail"]
    return {"recipients": letter["recipients"],
            "queued": decided.get("pending", 0) + mail.get("queued", 0) + mail.get("sending", 0),
            "sent": mail.get("sent", 0), "failed": mail.get("failed", 0),
            "skipped": decided.get("no_consent", 0) + decided.get("no_address", 0)}


def router(office: Office) -> APIRouter:
    routes = office.router(role=Role.operator)
    chain = office.chain
    Operator = Annotated[Actor, Depends(office.form(Role.operator))]

    def page(request: Request, http_status: int = 200, *, form: dict[str, str] | None = None,
             reach: int | None = None, error: str | None = None,
             sent: str | None = None) -> HTMLResponse:
        form = form or {"newsletter_id": new_id()}
        past = newsletters.listing(chain)
        done = next((p for p in past if p["newsletter_id"] == sent), None)
        return office.page(
            request, "newsletters.html", http_status, title="Newsletters", form=form,
            reach=reach, error=error, done=done, past=past, counts=counts,
            described=described, mail_ready=newsletters.mail_ready(chain),
            categories=admin.master_docs(chain, "category"),
            outlets=[o["outlet_id"] for o in admin.outlets(chain)],
            segment=described({"category": form.get("category"), "outlet": form.get("outlet"),
                               "active_days": form.get("active_days")}))

    def typed(newsletter_id: str, subject: str, body: str, category: str, outlet: str,
              active_days: str) -> dict[str, str]:
        # a browser sends a textarea's lines ending in CR LF: the message keeps plain LF
        return {"newsletter_id": newsletter_id.strip(), "subject": subject,
                "body": body.replace("\r\n", "\n"), "category": category.strip(),
                "outlet": outlet.strip(), "active_days": active_days.strip()}

    def segment(form: dict[str, str]) -> dict[str, Any]:
        return {"category": form["category"] or None, "outlet": form["outlet"] or None,
                "active_days": days_of(form["active_days"]),
                "newsletter_id": form["newsletter_id"] or None}

    @routes.get("/newsletters")
    def newsletter_page(request: Request,
                        sent: Annotated[str, Query(max_length=60)] = "") -> HTMLResponse:
        return page(request, sent=sent or None)

    @routes.post("/newsletters/preview")
    def newsletter_preview(request: Request, _: Operator, subject: Subject, body: Body,
                           newsletter_id: Code = "", category: Code = "", outlet: Code = "",
                           active_days: Days = "") -> Response:
        form = typed(newsletter_id, subject, body, category, outlet, active_days)
        try:
            reach = newsletters.preview(chain, form["subject"], form["body"], **segment(form))
        except InvalidRequest as exc:
            return page(request, exc.status, form=form, error=f"{exc.message} [{exc.code}]")
        return page(request, form=form, reach=reach)

    @routes.post("/newsletters")
    def newsletter_send(request: Request, actor: Operator, subject: Subject, body: Body,
                        newsletter_id: Code = "", category: Code = "", outlet: Code = "",
                        active_days: Days = "") -> Response:
        form = typed(newsletter_id, subject, body, category, outlet, active_days)
        try:
            letter = newsletters.send(chain, form["subject"], form["body"], **segment(form),
                                      by=actor)
        except Conflict as exc:  # this form's newsletter was sent with another text
            form["newsletter_id"] = new_id()  # what was typed becomes a new newsletter
            return page(request, exc.status, form=form,
                        error="this form's newsletter was sent already, with another text "
                              f"or segment [{exc.code}]: the form below is now a new "
                              "newsletter; preview it, then send it")
        except (InvalidRequest, MailNotConfigured) as exc:
            return page(request, exc.status, form=form, error=f"{exc.message} [{exc.code}]")
        return see_other(request, f"/newsletters?sent={quote(letter['newsletter_id'])}")

    return routes
