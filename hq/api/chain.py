"""Admin routes about the chain itself: its outlets and the flags raised on facts.

Promises: read only; `flags` lists the open flags unless `all=true`.
"""

from __future__ import annotations

from fastapi import APIRouter

from hq import admin, ingest
from hq.api import auth
from hq.chain import Chain
from schema.adminapi import Flags, Outlets, answer
from web.responses import ModelResponse


def router(chain: Chain) -> APIRouter:
    routes = auth.admin_routes(chain, "chain")

    @routes.get("/outlets", response_model=Outlets, responses=auth.refusals())
    def outlets() -> ModelResponse:
        return ModelResponse(answer(Outlets, admin.outlets(chain)))

    @routes.get("/flags", response_model=Flags, responses=auth.refusals())
    def flags(all: bool = False) -> ModelResponse:
        return ModelResponse(answer(Flags, ingest.flags(chain, open_only=not all)))

    return routes
