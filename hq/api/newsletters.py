"""Admin routes for newsletters (hq/newsletters.py, docs/invoices.md "Newsletters").

Promises: a newsletter is recorded with its recipients, the consenting customers of its
segment, and answered with their count; the mail run renders and sends it, never this
request; the same `newsletter_id` again adds nobody who has it. Must never: send mail from
a request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from hq import newsletters
from hq.api import auth
from hq.chain import Chain
from schema.adminapi import Newsletter, NewsletterIn, answer
from schema.errors import Conflict, MailNotConfigured, NotFound
from web.responses import ModelResponse


def router(chain: Chain) -> APIRouter:
    routes = auth.admin_routes(chain, "newsletters")

    @routes.post("/newsletters", status_code=201, response_model=Newsletter,
                 responses=auth.refusals(MailNotConfigured, Conflict))
    def send(request: Request, body: NewsletterIn) -> ModelResponse:
        sent = newsletters.send(chain, body.subject, body.body, category=body.category,
                                outlet=body.outlet, active_days=body.active_days,
                                newsletter_id=body.newsletter_id, by=auth.actor(request))
        return ModelResponse(answer(Newsletter, sent), 201)

    @routes.get("/newsletters/{newsletter_id}", response_model=Newsletter,
                responses=auth.refusals(NotFound))
    def show(newsletter_id: Annotated[str, Path(max_length=40)]) -> ModelResponse:
        return ModelResponse(answer(Newsletter, newsletters.summary(chain, newsletter_id)))

    return routes
