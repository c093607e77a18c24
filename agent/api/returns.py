"""The way back: returns and voids at the till, gift returns at the desk (agent.returns).

Each writes a fact and commits (an fsync): a plain `def` route, run in a worker thread.
Every route takes an optional `Idempotency-Key` like a sale: the same key and body answer
the first return again (`Idempotent-Replayed: true`), never a second one.
"""

from __future__ import annotations

from fastapi import APIRouter

from agent import returns
from agent.api.deps import IdempotencyKey, answer, new_router, refusals
from agent.api.till import CARD
from agent.outlet import Outlet
from schema.api import GiftReturn, GiftReturnIn, ReturnIn, Reversal, VoidIn
from schema.errors import (
    AlreadyReversed,
    Conflict,
    CustomerUnknown,
    IdempotencyConflict,
    OfflineLimitExceeded,
    ReceiptInvalid,
    RedemptionUnknown,
    ReturnExceedsSale,
    SaleUnknown,
    SupervisorRequired,
)
from web.responses import ModelResponse


def router(outlet: Outlet) -> APIRouter:
    routes = new_router()

    @routes.post("/v1/returns", status_code=201, response_model=Reversal, responses=refusals(
        *CARD, SaleUnknown, CustomerUnknown, ReceiptInvalid, ReturnExceedsSale,
        SupervisorRequired, OfflineLimitExceeded, IdempotencyConflict, Conflict, body=True))
    def give_back(body: ReturnIn, key: IdempotencyKey = None) -> ModelResponse:
        """Goods given back against a sale named by `sale_id` or `receipt` (its printed
        reference, or its QR code's text for a sale made at another outlet): the refund
        over the sale's payment modes, the points taken back (docs/programme.md)."""
        done, fresh = returns.give_back(outlet, body, key)
        return answer(Reversal, done, 201, replayed=not fresh)

    @routes.post("/v1/sales/{sale_id}/void", status_code=201, response_model=Reversal,
                 responses=refusals(SaleUnknown, AlreadyReversed, SupervisorRequired,
                                    IdempotencyConflict, body=True))
    def void(sale_id: str, body: VoidIn, key: IdempotencyKey = None) -> ModelResponse:
        """Cancels one of this outlet's sales: a return of every line still held, recorded
        as a void with its till and reason (a reversal fact, never an edit)."""
        done, fresh = returns.void(outlet, sale_id, body, key)
        return answer(Reversal, done, 201, replayed=not fresh)

    @routes.post("/v1/redemptions/{redemption_id}/return", status_code=201,
                 response_model=GiftReturn,
                 responses=refusals(RedemptionUnknown, ReturnExceedsSale, IdempotencyConflict,
                                    body=True))
    def give_gift_back(redemption_id: str, body: GiftReturnIn,
                       key: IdempotencyKey = None) -> ModelResponse:
        """Gifts of a hand-out given back at the desk: back into this outlet's stock, their
        points back on the card (the hand-out evidence shows the return)."""
        done, fresh = returns.give_gift_back(outlet, redemption_id, body, key)
        return answer(GiftReturn, done, 201, replayed=not fresh)

    return routes
