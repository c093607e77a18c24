"""The till API (docs/till-api.md): what POS programs call on the outlet's agent.

Promises: every endpoint answers from the local replica without waiting for the network
(invariant 3); bodies are validated before anything is written; when the agent has a till
token every call needs it. `/openapi.json` is the complete contract: each operation
publishes its answer's schema (schema.api) and each refusal it can answer, as the real
error body with its codes (tests/agent/test_till_openapi.py). Must never: call HQ in a
request.

The routes live in per-area routers (status, customers, till, returns, credit, gifts),
which share agent.api.deps; this module only assembles the app: the token, the error
rendering, the documentation pages, the manager's pages and the reception desk
(agent/desk.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import RedirectResponse

from agent import desk, manager
from agent.api import credit, customers, gifts, returns, status, till
from agent.api.deps import TillToken
from agent.outlet import Outlet
from web import apidocs, httperrors


def create_app(outlet: Outlet, till_token: str | None = None,
               extra_status: Callable[[], dict[str, Any]] | None = None) -> FastAPI:
    token = [Depends(TillToken(till_token))] if till_token is not None else []
    app = FastAPI(title=f"Loyalty agent {outlet.outlet_id}", version="1", dependencies=token,
                  docs_url=None, redoc_url=None)
    httperrors.install(app)
    apidocs.install(app)  # /docs with Swagger UI from the package: no internet needed
    app.state.outlet = outlet
    # The till's hot path (identify, quote, sell, the long poll) first: a request is matched
    # against the routes in this order, and each route passed costs it (bench/till.py).
    for routes in (till.router(outlet), status.router(outlet, extra_status),
                   customers.router(outlet), returns.router(outlet), credit.router(outlet),
                   gifts.router(outlet)):
        app.include_router(routes)

    async def start_page(request: Request) -> Response:
        # a person who opens the agent's address in a browser wants the manager's pages
        return RedirectResponse(request.scope.get("root_path", "") + "/manager/", 307)

    # a plain route: no till token (a browser has none), not part of the till API
    app.add_route("/", start_page, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount("/manager", manager.app(outlet))  # the manager's pages, loopback only
    app.mount("/desk", desk.app(outlet))  # the reception desk: sign-in, loopback or TLS proxy
    return app
