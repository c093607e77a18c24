"""Admin routes about the chain itself: its outlets, the flags raised on facts, and how
HQ's pushes were grouped into commits.

Promises: read only; `flags` lists the open flags unless `all=true`; `push-groups` counts
since this HQ process started (a restart starts from zero).
"""

from __future__ import annotations

from fastapi import APIRouter

from hq import admin, ingest
from hq.api import auth
from hq.chain import Chain
from schema.adminapi import Flags, Outlets, PushGroups, answer
from web.responses import ModelResponse


def router(chain: Chain) -> APIRouter:
    routes = auth.admin_routes(chain, "chain")

    @routes.get("/outlets", response_model=Outlets, responses=auth.refusals())
    def outlets() -> ModelResponse:
        return ModelResponse(answer(Outlets, admin.outlets(chain)))

    @routes.get("/flags", response_model=Flags, responses=auth.refusals())
    def flags(all: bool = False) -> ModelResponse:
        return ModelResponse(answer(Flags, ingest.flags(chain, open_only=not all)))

    @routes.get("/push-groups", response_model=PushGroups, responses=auth.refusals())
    def push_groups() -> ModelResponse:
        pushes = chain.pushes
        return ModelResponse(PushGroups(groups=pushes.groups, pushes=pushes.jobs,
                                        largest=pushes.largest))

    return routes
