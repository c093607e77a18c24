"""Admin routes about customers: view, search, edit (a picture too), ban and unban,
corrections of points and credit, identifier status, a lost card replaced, two profiles
merged, category assignment, point expiry.

Promises: every change is HQ's own fact or a bumped entity (hq/admin.py), so it reaches
every outlet; a ban travels first. An edit at HQ is checked as the till checks a profile
(`AdminProfileIn` is built on `ProfileIn`); a correction needs an amount and a reason
(`AdjustmentIn`), and is answered 201 with the fact it made.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request

from hq import admin, categories, expiry
from hq.api import auth
from hq.chain import Chain
from schema.adminapi import (
    Adjustment,
    AdjustmentIn,
    AdminProfileIn,
    BanIn,
    CategoriesAssigned,
    CustomersFound,
    CustomerView,
    ExpireIn,
    ExpiryRun,
    IdentifierStatusSet,
    MergeIn,
    RefreshIn,
    ReplaceCardIn,
    answer,
)
from schema.api import IdentifierStatusIn
from schema.errors import (
    CardInUse,
    CustomerMerged,
    CustomerUnknown,
    IdempotencyConflict,
    NotFound,
)
from web.responses import ModelResponse

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def router(chain: Chain) -> APIRouter:
    routes = auth.admin_routes(chain, "customers")

    @routes.post("/customers/{customer_id}/ban", response_model=CustomerView,
                 responses=auth.refusals(CustomerUnknown))
    def ban(request: Request, customer_id: str, body: BanIn | None = None) -> ModelResponse:
        view = admin.set_status(chain, customer_id, "banned", body.reason if body else "",
                                by=auth.actor(request))
        return ModelResponse(answer(CustomerView, view))

    @routes.post("/customers/{customer_id}/unban", response_model=CustomerView,
                 responses=auth.refusals(CustomerUnknown))
    def unban(customer_id: str, request: Request) -> ModelResponse:
        view = admin.set_status(chain, customer_id, "approved", by=auth.actor(request))
        return ModelResponse(answer(CustomerView, view))

    @routes.post("/customers/{customer_id}/adjustments", status_code=201,
                 response_model=Adjustment,
                 responses=auth.refusals(CustomerUnknown, IdempotencyConflict))
    def adjust(customer_id: str, body: AdjustmentIn, request: Request,
               key: IdempotencyKey = None) -> ModelResponse:
        made = admin.adjust(chain, customer_id, body.points, body.credit, body.reason,
                            body.corrects, by=auth.actor(request), key=key)
        return ModelResponse(answer(Adjustment, made), status_code=201)

    @routes.get("/customers/{customer_id}", response_model=CustomerView,
                responses=auth.refusals(CustomerUnknown))
    def customer(customer_id: str) -> ModelResponse:
        return ModelResponse(answer(CustomerView, admin.customer_view(chain, customer_id)))

    @routes.patch("/customers/{customer_id}", response_model=CustomerView,
                  responses=auth.refusals(CustomerUnknown))
    def edit(customer_id: str, changes: AdminProfileIn, request: Request) -> ModelResponse:
        view = admin.edit_customer(chain, customer_id, changes.model_dump(exclude_unset=True),
                                  by=auth.actor(request))
        return ModelResponse(answer(CustomerView, view))

    @routes.post("/customers/{customer_id}/merge", response_model=CustomerView,
                 responses=auth.refusals(CustomerUnknown, CustomerMerged))
    def merge(customer_id: str, body: MergeIn, request: Request) -> ModelResponse:
        view = admin.merge_customers(chain, customer_id, body.merged, by=auth.actor(request),
                                     reason=body.reason)
        return ModelResponse(answer(CustomerView, view))

    @routes.post("/customers/{customer_id}/replace-card", response_model=CustomerView,
                 responses=auth.refusals(CustomerUnknown, CustomerMerged, CardInUse))
    def replace_card(customer_id: str, body: ReplaceCardIn, request: Request) -> ModelResponse:
        admin.replace_card(chain, customer_id, body.lost, body.card, by=auth.actor(request),
                           reason=body.reason)
        return ModelResponse(answer(CustomerView, admin.customer_view(chain, customer_id)))

    @routes.get("/customers", response_model=CustomersFound, responses=auth.refusals())
    def search(q: Annotated[str, Query(min_length=1, max_length=100)]) -> ModelResponse:
        return ModelResponse(answer(CustomersFound, admin.search(chain, q)))

    @routes.post("/identifiers/status", response_model=IdentifierStatusSet,
                 responses=auth.refusals(NotFound))
    def identifier_status(body: IdentifierStatusIn, request: Request) -> ModelResponse:
        admin.set_identifier_status(chain, body.kind, body.value, body.status,
                                    by=auth.actor(request))
        return ModelResponse(IdentifierStatusSet(status=body.status))

    @routes.post("/categories/assign", response_model=CategoriesAssigned,
                 responses=auth.refusals())
    def assign_categories(body: RefreshIn) -> ModelResponse:
        assigned = categories.assign(chain, body.today)
        return ModelResponse(answer(CategoriesAssigned, assigned))

    @routes.post("/points/expire", response_model=ExpiryRun, responses=auth.refusals())
    def expire_points(body: ExpireIn) -> ModelResponse:
        return ModelResponse(answer(ExpiryRun, expiry.run(chain, body.today)))

    return routes
