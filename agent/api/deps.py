"""What the till API's routers share: the till token, their documented refusals, their
answers, and reads that skip the thread pool.

Promises: every route answers through `answer` (one pass: validated into the model its
OpenAPI document publishes, serialised once, `Idempotent-Replayed: true` on a replay), or
through `serialised` when the service built that model and serialised it itself (a sale);
and documents its refusals through `refusals` (the real error body, each status with its codes,
plus what every till route can answer). `read` runs a read-only service call on the event
loop when the replica's connection is free at that moment (no thread-pool hop: a read of a
few indexed rows), and in a worker thread when a write holds it, so the loop (and the long
polls it serves) never waits for a commit or for another process's write lock.

A module of its own, not the package's `__init__`: the routers import it, and `__init__`
imports the routers.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

from fastapi import APIRouter, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.models import HTTPBearer
from fastapi.security.base import SecurityBase
from pydantic import BaseModel

from agent.outlet import Outlet
from schema.api import bearer
from schema.errors import LoyaltyError, PayloadTooLarge, StorageUnavailable, Unauthorized
from web import httperrors
from web.responses import ModelResponse

P = ParamSpec("P")
T = TypeVar("T")

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
REPLAYED = {"Idempotent-Replayed": "true"}

# every route that touches the replica can meet a storage fault (disk full, I/O error)
STORAGE: tuple[type[LoyaltyError], ...] = (StorageUnavailable,)


class TillToken(SecurityBase):
    """The till token, checked on every till route when the agent has one (docs/till-api.md,
    "Authentication"), and published in the OpenAPI document as a bearer scheme. No I/O:
    it runs on the event loop."""

    def __init__(self, token: str) -> None:
        self.model = HTTPBearer(description="the till token (`loyalty agent serve "
                                            "--till-token`); Authorization: Bearer TOKEN")
        self.scheme_name = "TillToken"
        self._token = token.encode()

    async def __call__(self, request: Request) -> None:
        given = bearer(request.headers.get("authorization"), "the till token")
        if not hmac.compare_digest(given.encode(), self._token):
            raise Unauthorized("this agent needs the till token (Authorization: Bearer ...)")


def new_router() -> APIRouter:
    """A router whose JSON bodies must be UTF-8, like the app's own routes."""
    return APIRouter(route_class=httperrors.JSONBodyRoute)


def refusals(*errors: type[LoyaltyError], body: bool = False, query: bool = False,
             storage: bool = True) -> dict[int | str, dict[str, Any]]:
    """A till route's `responses=`: its own refusals, plus `unauthorized` (an agent with a
    till token), the storage faults (unless it touches no storage), `payload_too_large` for
    a body and `invalid_request` for a body or a query."""
    common = (Unauthorized, *(STORAGE if storage else ()), *((PayloadTooLarge,) if body else ()))
    return httperrors.error_responses(*common, *errors, invalid=body or query)


def answer(model: type[BaseModel], data: Any, status: int = 200, *,
           replayed: bool = False) -> ModelResponse:
    """A service's answer as the route publishes it: exactly the keys it has."""
    return ModelResponse(model.model_validate(data), status, REPLAYED if replayed else None,
                         exclude_unset=True)


def serialised(text: str, status: int = 200, *, replayed: bool = False) -> Response:
    """An answer its service already serialised from the route's model (a sale's, kept as
    it was sent for the sale's replays): sent as it is, not decoded and encoded again."""
    return Response(text, status, REPLAYED if replayed else None, media_type="application/json")


async def read(outlet: Outlet, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`call(*args)`, which must only read, on the loop if the replica is free right now,
    else in a worker thread."""
    with outlet.db.read_now() as conn:
        if conn is not None:
            return call(*args, **kwargs)
    return await run_in_threadpool(call, *args, **kwargs)
