"""Who is calling HQ's API: the outlet behind an outlet token, or an administrator.

FastAPI dependencies shared by the routers of hq/api/. Promises: an outlet token speaks
only for its own outlet, and an admin token for no outlet (403 `forbidden`); admin
operations refuse outlet tokens (403) and unknown tokens (401 `unauthorized`), and so does
every operation when no `Authorization: Bearer TOKEN` is sent. `ERRORS` is what any
operation behind one of these may answer; `refusals` adds an operation's own errors to
them for its OpenAPI document.

Who changes something through the admin API is the token's holder: the admin routes'
dependency (`admin_of`) keeps the `Actor` it found for the request (hq/audit.py
`api_actor`), and a handler that changes something passes `actor(request)` to the hq/
operation, which records it in the audit trail in the change's own transaction (as the back
office's forms do with the `Actor` of theirs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request

from hq import credentials
from hq.audit import Actor, api_actor
from hq.chain import Chain
from schema.api import bearer
from schema.errors import Forbidden, LoyaltyError, Unauthorized
from web import httperrors

ERRORS: tuple[type[LoyaltyError], ...] = (Unauthorized, Forbidden)


def outlet_of(chain: Chain) -> Callable[..., str]:
    """The dependency that names the calling outlet (the sync routes)."""

    def outlet(authorization: Annotated[str | None, Header()] = None) -> str:
        return credentials.outlet_for(chain.db, bearer(authorization, "an outlet token"))

    return outlet


def admin_of(chain: Chain) -> Callable[..., None]:
    """The dependency that lets only an administrator through (the admin routes) and keeps
    who it is, the token's holder, for `actor(request)`."""

    def admin_only(request: Request,
                   authorization: Annotated[str | None, Header()] = None) -> None:
        request.state.admin_actor = api_actor(credentials.require_admin(
            chain.db, bearer(authorization, "an admin token")))

    return admin_only


def actor(request: Request) -> Actor:
    """Who is calling an admin route (what an hq/ operation records as having made the
    change). Only under `admin_routes`, whose dependency has run: anything else is a bug."""
    found: Actor = request.state.admin_actor  # AttributeError outside them: a bug
    return found


def refusals(*errors: type[LoyaltyError]) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of an operation behind a token: these, and `ERRORS`."""
    return httperrors.error_responses(*ERRORS, *errors)


def admin_routes(chain: Chain, tag: str) -> APIRouter:
    """A router of admin operations (under /v1/admin, each behind an admin token)."""
    return APIRouter(prefix="/v1/admin", tags=[tag], dependencies=[Depends(admin_of(chain))],
                     route_class=httperrors.JSONBodyRoute)
