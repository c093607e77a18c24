"""`GET /v1/status`: the outlet's sync state and counts (agent.status), for tills and people.

A plain `def` route, run in a worker thread: its counts scan whole tables (customers,
sales), which on a big replica takes long enough that it must not run on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from agent.api.deps import answer, new_router, refusals
from agent.outlet import Outlet
from agent.status import outlet_status
from schema.api import OutletStatus
from web.responses import ModelResponse


def router(outlet: Outlet, extra: Callable[[], dict[str, Any]] | None = None) -> APIRouter:
    """`extra`: what the running agent adds (its sync loops, its readers as they run)."""
    routes = new_router()

    @routes.get("/v1/status", response_model=OutletStatus, responses=refusals())
    def status() -> ModelResponse:
        return answer(OutletStatus, {**outlet_status(outlet), **(extra() if extra else {})})

    return routes
