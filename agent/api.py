"""The till API (docs/till-api.md): what POS programs call on the outlet's agent.

Promises: every endpoint answers from the local replica without waiting for the network
(invariant 3); bodies are validated before anything is written; when the agent listens
beyond loopback every call needs the till token. Must never: call HQ in a request.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import Field

from agent import credit, customers, gifts, identification, manager, sales
from agent.outlet import Outlet
from agent.status import outlet_status
from schema.api import (
    MAX_AMOUNT,
    PIN,
    Cents,
    CustomerIn,
    CustomerPatch,
    IdentifierIn,
    IdentifierStatusIn,
    IdentifyIn,
    QuoteIn,
    RedemptionIn,
    SaleIn,
    Strict,
    bearer,
)
from schema.errors import Unauthorized
from web import apidocs, httperrors

POLL_SLICE_S = 0.5

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


class PinIn(Strict):
    pin: str = Field(pattern=PIN)


class SmartcardIn(Strict):
    reader: str = Field(min_length=1, max_length=100, description="PC/SC reader name substring")
    pin: str | None = Field(None, pattern=PIN)


class InvoicePaymentIn(Strict):
    amount: Cents = Field(gt=0, le=MAX_AMOUNT)
    till_id: str | None = Field(None, max_length=40)


class StockMoveIn(Strict):
    qty: int = Field(ge=-100_000, le=100_000)
    reason: Literal["receipt", "transfer_in", "transfer_out", "correction"]
    reference: str = Field("", max_length=200)


def create_app(outlet: Outlet, till_token: str | None = None,
               extra_status: Callable[[], dict[str, Any]] | None = None) -> FastAPI:
    def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
        if till_token is None:
            return
        given = bearer(authorization, "the till token")
        if not hmac.compare_digest(given.encode(), till_token.encode()):
            raise Unauthorized("this agent needs the till token (Authorization: Bearer ...)")

    app = FastAPI(title=f"Loyalty agent {outlet.outlet_id}", version="1",
                  dependencies=[Depends(authorised)], docs_url=None, redoc_url=None)
    httperrors.install(app)
    apidocs.install(app)  # /docs with Swagger UI from the package: no internet needed
    app.state.outlet = outlet

    @app.get("/v1/status")
    def status() -> dict[str, Any]:
        return {**outlet_status(outlet), **(extra_status() if extra_status else {})}

    @app.post("/v1/customers", status_code=201)
    def register(body: CustomerIn) -> dict[str, str]:
        return customers.register(outlet, body)

    @app.get("/v1/customers")
    def search(q: Annotated[str, Query(min_length=1, max_length=100)]) -> list[dict[str, Any]]:
        return customers.search(outlet, q)

    @app.get("/v1/customers/{customer_id}")
    def customer(customer_id: str) -> dict[str, Any]:
        return customers.profile(outlet, customer_id)

    @app.patch("/v1/customers/{customer_id}")
    def edit(customer_id: str, body: CustomerPatch) -> dict[str, Any]:
        return customers.update(outlet, customer_id, body)

    @app.post("/v1/customers/{customer_id}/identifiers", status_code=201)
    def add_identifier(customer_id: str, body: IdentifierIn) -> dict[str, str]:
        customers.add_identifier(outlet, customer_id, body)
        return {"kind": body.kind, "status": "active"}

    @app.post("/v1/identifiers/status")
    def identifier_status(body: IdentifierStatusIn) -> dict[str, str]:
        customers.set_identifier_status(outlet, body.kind, body.value, body.status)
        return {"kind": body.kind, "status": body.status}

    @app.post("/v1/customers/{customer_id}/pin", status_code=204)
    def set_pin(customer_id: str, body: PinIn) -> Response:
        customers.set_pin(outlet, customer_id, body.pin)
        return Response(status_code=204)

    @app.post("/v1/customers/{customer_id}/smartcard", status_code=201)
    def personalise_smartcard(customer_id: str, body: SmartcardIn) -> dict[str, str]:
        """Writes the customer's club card number (and PIN) onto a blank smart card."""
        from agent.smartcards import personalise

        return personalise(outlet, customer_id, body.reader, body.pin)

    @app.post("/v1/identify")
    def identify(body: IdentifyIn) -> dict[str, Any]:
        return identification.identify(outlet, body.kind, body.value, body.till_id, body.pin)

    @app.post("/v1/quotes", status_code=201)
    def quote(body: QuoteIn) -> dict[str, Any]:
        return sales.quote(outlet, body)

    @app.post("/v1/sales", status_code=201)
    def sell(body: SaleIn, response: Response, key: IdempotencyKey = None) -> dict[str, Any]:
        answer, fresh = sales.sell(outlet, body, key)
        if not fresh:
            response.headers["Idempotent-Replayed"] = "true"
        return answer

    @app.post("/v1/redemptions", status_code=201)
    def redeem(body: RedemptionIn, response: Response,
               key: IdempotencyKey = None) -> dict[str, Any]:
        answer, fresh = gifts.redeem(outlet, body, key)
        if not fresh:
            response.headers["Idempotent-Replayed"] = "true"
        return answer

    @app.get("/v1/customers/{customer_id}/statement")
    def statement(customer_id: str) -> dict[str, Any]:
        """The total card status printout for the customer (receipt-width lines)."""
        return {"receipt_lines": customers.statement(outlet, customer_id)}

    @app.get("/v1/customers/{customer_id}/invoices")
    def customer_invoices(customer_id: str) -> list[dict[str, Any]]:
        return credit.invoices_of(outlet, customer_id)

    @app.post("/v1/invoices/{number}/payments", status_code=201)
    def pay_invoice(number: str, body: InvoicePaymentIn) -> dict[str, Any]:
        return credit.pay(outlet, number, body.amount, body.till_id)

    @app.get("/v1/gifts")
    def gift_stock() -> list[dict[str, Any]]:
        return gifts.stock(outlet)

    @app.post("/v1/gifts/{sku}/stock")
    def move_stock(sku: str, body: StockMoveIn) -> dict[str, Any]:
        left = gifts.move_stock(outlet, sku, body.qty, body.reason, body.reference)
        return {"sku": sku, "stock": left}

    @app.get("/v1/tills/{till_id}/identification", response_model=None)
    async def next_read(till_id: str, request: Request,
                        wait: Annotated[float, Query(ge=0, le=60)] = 0) -> Any:
        # Waits in slices so a POS that hung up is noticed and never handed a read.
        deadline = time.monotonic() + wait
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            read = await outlet.tills.next(till_id, min(remaining, POLL_SLICE_S))
            gone = await request.is_disconnected()
            if read is not None:
                if gone:
                    outlet.tills.give_back(till_id, read)
                    return Response(status_code=204)
                return read
            if gone or remaining <= POLL_SLICE_S:
                return Response(status_code=204)

    async def start_page(request: Request) -> Response:
        # a person who opens the agent's address in a browser wants the manager's pages
        return RedirectResponse(request.scope.get("root_path", "") + "/manager/", 307)

    # a plain route: no till token (a browser has none), not part of the till API
    app.add_route("/", start_page, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount("/manager", manager.app(outlet))  # the manager's pages, loopback only
    return app

