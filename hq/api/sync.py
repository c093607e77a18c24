"""The sync routes (docs/sync.md): hello, push and pull, for outlets with their token.

Promises: each acts only for the outlet its token names; answers are rendered once by the
feed and ingest (`answer_json`, `pull_json`) and sent as those bytes, documented by their
models (Hello, PushResponse, PullResponse); a big push is parsed and applied in a worker
thread, so it never stalls the event loop; a pull with `wait` long-polls until something
changes or the wait runs out, without holding a worker thread; a push cut off by the line
is one warning naming the outlet (it is sent again), not a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from hq import feed, ingest
from hq.api import auth
from hq.chain import Chain
from schema.errors import OutletMismatch, PayloadTooLarge, ProtocolError, SeqReused, SyncGap
from schema.sync import Hello, PullResponse, PushResponse, answer_json
from web import httperrors

log = logging.getLogger(__name__)

MAX_PUSH_BYTES = 8 * 1024 * 1024
EXTERNAL_CHECK_S = 1.0  # how often a waiting pull looks for changes made by another process
MAX_CURSOR = 2**63 - 1  # SQLite's largest integer: a cursor beyond it is no cursor


def router(chain: Chain) -> APIRouter:
    routes = APIRouter(prefix="/v1/sync", tags=["sync"], route_class=httperrors.JSONBodyRoute)
    outlet = auth.outlet_of(chain)

    async def changed_since(cursor: int, woken: asyncio.Future[None], wait: float) -> None:
        """Until this process notifies a change, the change log moves past `cursor`, or
        `wait` runs out. The log is looked at every EXTERNAL_CHECK_S because a `loyalty hq`
        command (ban, unban, close-invoices) writes to the file from another process."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (left := deadline - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(woken), min(left, EXTERNAL_CHECK_S))
            if woken.done() or await run_in_threadpool(
                    chain.db.scalar, "SELECT COALESCE(MAX(seq), 0) > ? FROM changes", (cursor,)):
                return

    @routes.get("/hello", response_model=Hello, responses=auth.refusals())
    def hello(outlet_id: str = Depends(outlet),
              sent_at: Annotated[str | None, Query(max_length=40)] = None) -> Response:
        # sent_at: the outlet's clock (docs/sync.md, "Outlet clocks")
        answer = feed.hello(chain, outlet_id, sent_at)
        return Response(answer_json(answer), media_type="application/json")

    @routes.post("/push", response_model=PushResponse, responses=auth.refusals(
        ProtocolError, OutletMismatch, SyncGap, SeqReused, PayloadTooLarge))
    async def push(request: Request, outlet_id: str = Depends(outlet)) -> Response:
        # parsed (once, typed) and applied in a worker thread: a big batch never stalls the
        # event loop and the long polls it serves; the answer is serialised once, here
        try:
            raw = await request.body()
        except ClientDisconnect:  # a dropped line: the outlet sends it all again later
            log.warning("outlet %s hung up in the middle of a push; nothing of it was applied "
                        "(it pushes again when its line is back)", outlet_id)
            return Response(status_code=400)
        answer = await run_in_threadpool(ingest.push_json, chain, outlet_id, raw)
        return Response(answer_json(answer), media_type="application/json")

    @routes.get("/pull", response_model=PullResponse,
                responses=auth.refusals())
    async def pull(outlet_id: str = Depends(outlet), cursor: Annotated[int, Query(ge=0, le=MAX_CURSOR)] = 0,
                   limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
                   wait: Annotated[float, Query(ge=0, le=60)] = 0) -> Response:
        # the page comes rendered as JSON from the feed (a PullResponse), sent as is
        woken = chain.waiters.register() if wait > 0 else None
        page = await run_in_threadpool(feed.pull_json, chain, outlet_id, cursor, limit)
        if page.changes == 0 and woken is not None:
            await changed_since(cursor, woken, wait)
            page = await run_in_threadpool(feed.pull_json, chain, outlet_id, cursor, limit)
        return Response(content=page.body, media_type="application/json")

    return routes
