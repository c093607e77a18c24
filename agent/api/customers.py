"""The desk's customer routes: register, find, read, edit, identifiers, PIN, smart card,
and the card status printout (agent.customers, agent.smartcards).

Reads of one customer (`GET /v1/customers/{id}`, its statement) are `async` and run through
`deps.read`; the search stays in a worker thread (its name match may scan the table), and
so do the writes (each commits with an fsync).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from agent import customers, smartcards
from agent.api.deps import answer, new_router, read, refusals
from agent.outlet import Outlet
from schema.api import (
    CustomerHits,
    CustomerIn,
    CustomerPatch,
    CustomerView,
    IdentifierIn,
    IdentifierState,
    IdentifierStatusIn,
    PinIn,
    Registered,
    SmartcardIn,
    SmartcardIssued,
    Statement,
)
from schema.errors import CardRangeExhausted, Conflict, CustomerUnknown, Forbidden, NotReady
from web.responses import ModelResponse


def router(outlet: Outlet) -> APIRouter:
    routes = new_router()

    @routes.post("/v1/customers", status_code=201, response_model=Registered,
                 responses=refusals(NotReady, CardRangeExhausted, body=True))
    def register(body: CustomerIn) -> ModelResponse:
        """Registers a customer and issues a club card number from this outlet's range."""
        return answer(Registered, customers.register(outlet, body), 201)

    @routes.get("/v1/customers", response_model=CustomerHits, responses=refusals(query=True))
    def search(q: Annotated[str, Query(min_length=1, max_length=100)]) -> ModelResponse:
        return answer(CustomerHits, customers.search(outlet, q))

    @routes.get("/v1/customers/{customer_id}", response_model=CustomerView,
                responses=refusals(CustomerUnknown))
    async def customer(customer_id: str) -> ModelResponse:
        return answer(CustomerView, await read(outlet, customers.profile, outlet, customer_id))

    @routes.patch("/v1/customers/{customer_id}", response_model=CustomerView,
                  responses=refusals(CustomerUnknown, body=True))
    def edit(customer_id: str, body: CustomerPatch) -> ModelResponse:
        return answer(CustomerView, customers.update(outlet, customer_id, body))

    @routes.post("/v1/customers/{customer_id}/identifiers", status_code=201,
                 response_model=IdentifierState,
                 responses=refusals(CustomerUnknown, Conflict, body=True))
    def add_identifier(customer_id: str, body: IdentifierIn) -> ModelResponse:
        customers.add_identifier(outlet, customer_id, body)
        return answer(IdentifierState, {"kind": body.kind, "status": "active"}, 201)

    @routes.post("/v1/identifiers/status", response_model=IdentifierState,
                 responses=refusals(Forbidden, body=True))
    def identifier_status(body: IdentifierStatusIn) -> ModelResponse:
        customers.set_identifier_status(outlet, body.kind, body.value, body.status)
        return answer(IdentifierState, {"kind": body.kind, "status": body.status})

    @routes.post("/v1/customers/{customer_id}/pin", status_code=204,
                 responses=refusals(CustomerUnknown, body=True))
    def set_pin(customer_id: str, body: PinIn) -> Response:
        customers.set_pin(outlet, customer_id, body.pin)
        return Response(status_code=204)

    @routes.post("/v1/customers/{customer_id}/smartcard", status_code=201,
                 response_model=SmartcardIssued,
                 responses=refusals(*smartcards.REFUSALS, body=True))
    def personalise_smartcard(customer_id: str, body: SmartcardIn) -> ModelResponse:
        """Writes the customer's club card number (and PIN) onto a blank smart card."""
        issued = smartcards.personalise(outlet, customer_id, body.reader, body.pin)
        return answer(SmartcardIssued, issued, 201)

    @routes.get("/v1/customers/{customer_id}/statement", response_model=Statement,
                responses=refusals(CustomerUnknown))
    async def statement(customer_id: str) -> ModelResponse:
        """The total card status printout for the customer (receipt-width lines)."""
        lines = await read(outlet, customers.statement, outlet, customer_id)
        return answer(Statement, {"receipt_lines": lines})

    return routes
