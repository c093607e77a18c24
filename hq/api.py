"""HQ's HTTP API (docs/sync.md): the sync endpoints and the admin endpoints.

Promises: sync endpoints need an outlet token and act only for that outlet; admin
endpoints need an admin token and refuse outlet tokens; a pull with `wait` long-polls
until something changes or the wait runs out, without holding a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hq import admin, categories, credentials, feed, ingest, invoices, snapshotapi, web
from hq.chain import Chain
from hq.snapshot import Snapshots
from schema.api import IdentifierStatusIn
from schema.sync import Hello, PullResponse, PushResponse, answer_json
from web import httperrors

MAX_PUSH_BYTES = 8 * 1024 * 1024
EXTERNAL_CHECK_S = 1.0  # how often a waiting pull looks for changes made by another process


class BanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=500)


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period_from: date
    period_to: date
    issued_on: date


class BankPaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: int = Field(gt=0)
    reference: str = Field(min_length=1, max_length=100)


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    today: date



def create_app(chain: Chain, snapshots: Snapshots | None = None) -> FastAPI:
    """`snapshots`: the ones HQ serves (default: those in its snapshot directory, never
    building one: `loyalty hq serve` passes the scheduled ones)."""
    app = FastAPI(title="Loyalty headquarters", version="1")
    httperrors.install(app, max_body=MAX_PUSH_BYTES)

    @app.exception_handler(ValidationError)
    async def invalid_document(_: Request, exc: ValidationError) -> JSONResponse:
        # master data and profile edits are validated inside the handlers: a bad document
        # is the caller's mistake (422), not a crash (500)
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return httperrors.error_response(422, "invalid_request",
                                         f"{where}: {first['msg']}" if where else first["msg"])

    def outlet(authorization: Annotated[str | None, Header()] = None) -> str:
        return credentials.outlet_for(chain.db, credentials.bearer(authorization))

    def admin_only(authorization: Annotated[str | None, Header()] = None) -> None:
        credentials.require_admin(chain.db, credentials.bearer(authorization))

    Admin = [Depends(admin_only)]

    async def changed_since(cursor: int, woken: asyncio.Future[None], wait: float) -> None:
        """Until this process notifies a change, the change log moves past `cursor`, or
        `wait` runs out. The log is looked at every EXTERNAL_CHECK_S because a `loyalty hq`
        command (ban, unban, close-invoices) writes to the file from another process."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (left := deadline - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(woken), min(left, EXTERNAL_CHECK_S))
            if woken.done() or await run_in_threadpool(
                    chain.db.scalar, "SELECT COALESCE(MAX(seq), 0) > ? FROM changes", (cursor,)):
                return

    @app.get("/v1/sync/hello", response_model=Hello)
    def hello(outlet_id: str = Depends(outlet),
              sent_at: Annotated[str | None, Query(max_length=40)] = None) -> Response:
        # sent_at: the outlet's clock (docs/sync.md, "Outlet clocks")
        answer = feed.hello(chain, outlet_id, sent_at)
        return Response(answer_json(answer), media_type="application/json")

    @app.post("/v1/sync/push", response_model=PushResponse)
    async def push(request: Request, outlet_id: str = Depends(outlet)) -> Response:
        # parsed (once, typed) and applied in a worker thread: a big batch never stalls the
        # event loop and the long polls it serves; the answer is serialised once, here
        raw = await request.body()
        answer = await run_in_threadpool(ingest.push_json, chain, outlet_id, raw)
        return Response(answer_json(answer), media_type="application/json")

    @app.get("/v1/sync/pull", response_model=PullResponse)
    async def pull(outlet_id: str = Depends(outlet), cursor: Annotated[int, Query(ge=0)] = 0,
                   limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
                   wait: Annotated[float, Query(ge=0, le=60)] = 0) -> Response:
        # the page comes rendered as JSON from the feed (a PullResponse), sent as is
        woken = chain.waiters.register() if wait > 0 else None
        page = await run_in_threadpool(feed.pull_json, chain, outlet_id, cursor, limit)
        if page.changes == 0 and woken is not None:
            await changed_since(cursor, woken, wait)
            page = await run_in_threadpool(feed.pull_json, chain, outlet_id, cursor, limit)
        return Response(content=page.body, media_type="application/json")

    @app.post("/v1/admin/customers/{customer_id}/ban", dependencies=Admin)
    def ban(customer_id: str, body: BanIn | None = None) -> dict[str, Any]:
        return admin.set_status(chain, customer_id, "banned", body.reason if body else "")

    @app.post("/v1/admin/customers/{customer_id}/unban", dependencies=Admin)
    def unban(customer_id: str) -> dict[str, Any]:
        return admin.set_status(chain, customer_id, "approved")

    @app.get("/v1/admin/customers/{customer_id}", dependencies=Admin)
    def customer(customer_id: str) -> dict[str, Any]:
        return admin.customer_view(chain, customer_id)

    @app.patch("/v1/admin/customers/{customer_id}", dependencies=Admin)
    def edit(customer_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        from schema.events import Profile

        valid = Profile.model_validate(changes).model_dump(exclude_unset=True)
        return admin.edit_customer(chain, customer_id, valid)

    @app.get("/v1/admin/customers", dependencies=Admin)
    def search(q: Annotated[str, Query(min_length=1, max_length=100)]) -> list[dict[str, Any]]:
        return admin.search(chain, q)

    @app.post("/v1/admin/identifiers/status", dependencies=Admin)
    def identifier_status(body: IdentifierStatusIn) -> dict[str, str]:
        admin.set_identifier_status(chain, body.kind, body.value, body.status)
        return {"status": body.status}

    @app.put("/v1/admin/master/{kind}", dependencies=Admin)
    def put_master(kind: str, doc: dict[str, Any]) -> dict[str, str]:
        return {"kind": kind, "key": admin.put_master(chain, kind, doc)}

    @app.delete("/v1/admin/master/{kind}/{key}", dependencies=Admin, status_code=204)
    def delete_master(kind: str, key: str) -> None:
        admin.delete_master(chain, kind, key)

    @app.get("/v1/admin/outlets", dependencies=Admin)
    def outlets() -> list[dict[str, Any]]:
        return admin.outlets(chain)

    @app.get("/v1/admin/flags", dependencies=Admin)
    def flags(all: bool = False) -> list[dict[str, object]]:
        return ingest.flags(chain, open_only=not all)

    @app.post("/v1/admin/categories/assign", dependencies=Admin)
    def assign_categories(body: RefreshIn) -> dict[str, int]:
        return categories.assign(chain, body.today)

    @app.post("/v1/admin/invoices/close", dependencies=Admin, status_code=201)
    def close_period(body: CloseIn) -> list[dict[str, Any]]:
        return invoices.close_period(chain, body.period_from, body.period_to, body.issued_on)

    @app.post("/v1/admin/invoices/refresh", dependencies=Admin)
    def refresh(body: RefreshIn) -> dict[str, int]:
        return invoices.refresh(chain, body.today)

    @app.get("/v1/admin/invoices", dependencies=Admin)
    def list_invoices(customer: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        return invoices.invoices(chain, customer, status)

    @app.get("/v1/admin/invoices/{number}", dependencies=Admin)
    def get_invoice(number: str) -> dict[str, Any]:
        return invoices.invoice(chain, number)

    @app.post("/v1/admin/invoices/{number}/bank-payment", dependencies=Admin)
    def bank_payment(number: str, body: BankPaymentIn) -> dict[str, Any]:
        return invoices.pay_at_bank(chain, number, body.amount, body.reference)

    # snapshot bootstrap: its endpoints in their own router (hq/snapshotapi.py)
    app.include_router(snapshotapi.router(snapshots or Snapshots(chain, every=0), outlet,
                                          admin_only))
    app.mount("/office", web.app(chain))  # the staff back office (hq/web.py)
    return app
