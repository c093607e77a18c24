"""The till's routes: identify, quote, sell, redeem, and the long poll for card reads
(agent.identification, agent.sales, agent.gifts, agent.tills).

A quote only reads (the replica for the card, then pricing in memory): it is `async` and
reads through `deps.read`, so the hot path identify, quote, sale takes one thread-pool hop
fewer. Identify, sell and redeem write a fact and commit (an fsync): worker threads. The
long poll waits on the event loop and touches no storage.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from agent import gifts, identification, sales
from agent.api.deps import IdempotencyKey, answer, new_router, read, refusals, serialised
from agent.outlet import Outlet
from schema.api import (
    IdentificationRead,
    Identified,
    IdentifyIn,
    Quote,
    QuoteIn,
    Redemption,
    RedemptionIn,
    Sale,
    SaleIn,
)
from schema.errors import (
    CardBanned,
    CardBlocked,
    CardLost,
    CardUnknown,
    Conflict,
    CreditBlocked,
    CreditLimitExceeded,
    GiftUnknown,
    IdempotencyConflict,
    InsufficientPoints,
    OfflineLimitExceeded,
    OutOfStock,
    PaymentMismatch,
    PinInvalid,
    PinLocked,
    QuoteUnknown,
)
from web.responses import ModelResponse

POLL_SLICE_S = 0.5

# how identification.resolve refuses a card: every till call that takes one
CARD = (CardUnknown, CardBanned, CardBlocked, CardLost)


def router(outlet: Outlet) -> APIRouter:
    routes = new_router()

    @routes.post("/v1/identify", response_model=Identified,
                 responses=refusals(*CARD, PinInvalid, PinLocked, body=True))
    def identify(body: IdentifyIn) -> ModelResponse:
        return answer(Identified, identification.identify(
            outlet, body.kind, body.value, body.till_id, body.pin))

    @routes.post("/v1/quotes", status_code=201, response_model=Quote,
                 responses=refusals(*CARD, body=True))
    async def quote(body: QuoteIn) -> ModelResponse:
        return answer(Quote, await read(outlet, sales.quote, outlet, body), 201)

    @routes.post("/v1/sales", status_code=201, response_model=Sale, responses=refusals(
        *CARD, QuoteUnknown, PaymentMismatch, CreditLimitExceeded, CreditBlocked,
        OfflineLimitExceeded, IdempotencyConflict, Conflict, body=True))
    def sell(body: SaleIn, key: IdempotencyKey = None) -> Response:
        sold = sales.record(outlet, body, key)  # the Sale model, serialised once and stored
        return serialised(sold.text, 201, replayed=not sold.fresh)

    @routes.post("/v1/redemptions", status_code=201, response_model=Redemption,
                 responses=refusals(*CARD, GiftUnknown, InsufficientPoints,
                                    OfflineLimitExceeded, OutOfStock, IdempotencyConflict,
                                    body=True))
    def redeem(body: RedemptionIn, key: IdempotencyKey = None) -> ModelResponse:
        handed, fresh = gifts.redeem(outlet, body, key)
        return answer(Redemption, handed, 201, replayed=not fresh)

    @routes.get("/v1/tills/{till_id}/identification", response_model=IdentificationRead,
                responses={204: {"description": "nothing was read within `wait` seconds"},
                           **refusals(query=True, storage=False)})
    async def next_read(till_id: str, request: Request,
                        wait: Annotated[float, Query(ge=0, le=60)] = 0) -> Response:
        """The next card read at a reader bound to this till, waiting up to `wait` seconds;
        204 (no body) when there was none."""
        # Waits in slices so a POS that hung up is noticed and never handed a read.
        deadline = time.monotonic() + wait
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            got = await outlet.tills.next(till_id, min(remaining, POLL_SLICE_S))
            gone = await request.is_disconnected()
            if got is not None:
                if gone:
                    outlet.tills.give_back(till_id, got)
                    return Response(status_code=204)
                return answer(IdentificationRead, got)
            if gone or remaining <= POLL_SLICE_S:
                return Response(status_code=204)

    return routes
