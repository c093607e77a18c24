"""HQ's HTTP API (docs/sync.md, docs/operations.md): the app, its routers and /office.

`create_app(chain)` builds the service `loyalty hq serve` runs: the sync routes for
outlets (hq/api/sync.py) and the admin routes (customers, master data, invoices, the
chain, bank statements and mail, newsletters:
hq/api/{customers,master,invoices,chain,statements,newsletters}.py), who may call them
(hq/api/auth.py), `/docs`, and the staff back office under /office (hq/office/).

Promises: sync endpoints need an outlet token and act only for that outlet; admin
endpoints need an admin token and refuse outlet tokens; the unsubscribe pages
(hq/unsubscribe.py) need none, the signed link is the proof; every operation publishes its
answer's model and its refusals (`ErrorBody`, with their codes) in `/openapi.json`, and
answers exactly that model's fields; a pull with `wait` long-polls until something changes
or the wait runs out, without holding a worker thread.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from hq import office, unsubscribe
from hq.api import chain as chain_routes
from hq.api import customers, invoices, master, newsletters, snapshots, statements, sync
from hq.chain import Chain
from hq.snapshot import Snapshots
from web import apidocs, httperrors


def create_app(chain: Chain, snapshot_store: Snapshots | None = None) -> FastAPI:
    """`snapshot_store`: the snapshots HQ serves (default: those in its snapshot directory,
    never building one: `loyalty hq serve` passes the scheduled ones)."""
    app = FastAPI(title="Loyalty headquarters", version="1", docs_url=None, redoc_url=None)
    httperrors.install(app, max_body=sync.MAX_PUSH_BYTES)
    apidocs.install(app)  # /docs with Swagger UI from the package: no internet needed

    @app.exception_handler(ValidationError)
    async def invalid_document(_: Request, exc: ValidationError) -> JSONResponse:
        # master data is validated inside the handler (its model depends on the kind): a bad
        # document is the caller's mistake (422), not a crash (500)
        return httperrors.error_response(422, "invalid_request",
                                         httperrors.validation_message(exc.errors()))

    for routes in (sync, customers, master, chain_routes, invoices, statements, newsletters):
        app.include_router(routes.router(chain))
    served = snapshot_store or Snapshots(chain, every=0)
    app.include_router(snapshots.router(chain, served))
    app.include_router(snapshots.admin_router(chain, served))

    async def start_page(request: Request) -> Response:
        # a person who opens HQ's address in a browser wants the back office
        return RedirectResponse(request.scope.get("root_path", "") + "/office/", 307)

    app.add_route("/", start_page, methods=["GET", "HEAD"], include_in_schema=False)
    app.include_router(unsubscribe.router(chain))  # the link in every notice (hq/notices.py)
    app.mount("/office", office.app(chain))  # the staff back office (hq/office/)
    return app
