"""Admin routes for master data: a document put or withdrawn (docs/operations.md).

Promises: a document is checked strictly against the model of its kind before it is
stored (a bad one is 422 `invalid_request`, nothing changes; an announcement for a customer
HQ does not know is 404 `customer_unknown`); every change reaches every outlet through the
change log and is in the audit trail as made by the admin token's holder.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from hq import admin
from hq.api import auth
from hq.chain import Chain
from schema.adminapi import MasterPut
from schema.errors import CustomerUnknown, NotFound
from web.responses import ModelResponse


def router(chain: Chain) -> APIRouter:
    routes = auth.admin_routes(chain, "master data")

    @routes.put("/master/{kind}", response_model=MasterPut,
                responses=auth.refusals(CustomerUnknown))
    def put_master(kind: str, doc: dict[str, Any], request: Request) -> ModelResponse:
        # the document's model depends on its kind: validated in admin.put_master
        key = admin.put_master(chain, kind, doc, by=auth.actor(request))
        return ModelResponse(MasterPut(kind=kind, key=key))

    @routes.delete("/master/{kind}/{key}", status_code=204, responses=auth.refusals(NotFound))
    def delete_master(kind: str, key: str, request: Request) -> None:
        admin.delete_master(chain, kind, key, by=auth.actor(request))

    return routes
