"""Gifts at the desk: the list with this outlet's stock, and stock moves (agent.gifts).

The list is `async` and reads through `deps.read`; a stock move writes a fact and commits,
in a worker thread. Redemptions are the till's (agent/api/till.py).
"""

from __future__ import annotations

from fastapi import APIRouter

from agent import gifts
from agent.api.deps import answer, new_router, read, refusals
from agent.outlet import Outlet
from schema.api import GiftList, StockLevel, StockMoveIn
from schema.errors import GiftUnknown, OutOfStock
from web.responses import ModelResponse


def router(outlet: Outlet) -> APIRouter:
    routes = new_router()

    @routes.get("/v1/gifts", response_model=GiftList, responses=refusals())
    async def gift_stock() -> ModelResponse:
        return answer(GiftList, await read(outlet, gifts.stock, outlet))

    @routes.post("/v1/gifts/{sku}/stock", response_model=StockLevel,
                 responses=refusals(GiftUnknown, OutOfStock, body=True))
    def move_stock(sku: str, body: StockMoveIn) -> ModelResponse:
        left = gifts.move_stock(outlet, sku, body.qty, body.reason, body.reference)
        return answer(StockLevel, {"sku": sku, "stock": left})

    return routes
