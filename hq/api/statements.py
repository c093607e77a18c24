"""Admin routes for bank statements and HQ's mail (hq/statements.py, hq/mailqueue.py).

A statement file is posted as it came from the bank (its bytes are the body, any content
type) and answered with the same report `loyalty hq import-statement` prints; suggested
matches wait for a clerk to confirm one. The mail listing shows what HQ queued, sent or
could not send, per customer.

Promises: importing the same statement again changes nothing; a confirmation stamps a
payment exactly as the bank-payment form does. Must never: send mail from a request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from hq import admin, mailqueue, statements
from hq.api import auth
from hq.chain import Chain
from schema.adminapi import ConfirmMatchIn, MailMessages, answer
from schema.errors import Conflict, CustomerUnknown, InvalidStatement, NotFound, Overpayment
from web.responses import ModelResponse

MAX_ID = 2**63 - 1  # SQLite's largest integer


def router(chain: Chain) -> APIRouter:
    routes = auth.admin_routes(chain, "statements")

    @routes.post("/statements", response_model=statements.StatementReport,
                 responses=auth.refusals(InvalidStatement))
    async def import_statement(request: Request) -> ModelResponse:
        # the file's bytes as the body, read as `loyalty hq import-statement` reads the file
        data = await request.body()
        by = auth.actor(request)
        report = await run_in_threadpool(lambda: statements.import_statement(chain, data, by))
        return ModelResponse(report)

    @routes.get("/statement-matches", response_model=statements.StatementMatches,
                responses=auth.refusals())
    def statement_matches() -> ModelResponse:
        return ModelResponse(statements.StatementMatches(statements.suggestions(chain)))

    @routes.post("/statement-matches/{entry_id}/confirm", response_model=statements.ReportEntry,
                 responses=auth.refusals(NotFound, Conflict, Overpayment))
    def confirm_match(request: Request, entry_id: Annotated[int, Path(ge=1, le=MAX_ID)],
                      body: ConfirmMatchIn | None = None) -> ModelResponse:
        return ModelResponse(statements.confirm(chain, entry_id, body.invoice if body else None,
                                                by=auth.actor(request)))

    @routes.get("/mail", response_model=MailMessages, responses=auth.refusals(CustomerUnknown))
    def mail(customer: Annotated[str | None, Query(max_length=100)] = None) -> ModelResponse:
        who = admin.resolve_customer(chain, customer) if customer else None
        return ModelResponse(answer(MailMessages, mailqueue.listing(chain, who)))

    return routes
