"""The uvicorn runner both services share (web/serving.py).

The till's latency budget (bench/till.py) counts on uvicorn's fast pair: the httptools
parser and the uvloop event loop (both in `uvicorn[standard]`). Left to "auto", uvicorn
falls back to h11 and asyncio without a word when they are missing, and every request
costs more; named, a server that cannot have them refuses to start.
"""

from __future__ import annotations

import asyncio

import requests
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from web import serving


def test_the_server_is_configured_for_httptools_and_uvloop_not_left_to_auto() -> None:
    cfg = serving.config(FastAPI(), "127.0.0.1", serving.free_port())
    assert (cfg.http, cfg.loop) == ("httptools", "uvloop")


def test_a_running_server_parses_with_httptools_on_a_uvloop_loop() -> None:
    app = FastAPI()

    @app.get("/loop")
    async def loop() -> dict[str, str]:
        return {"loop": type(asyncio.get_running_loop()).__module__}

    server = serving.Background(app)
    try:
        assert requests.get(server.url + "/loop", timeout=10).json()["loop"].startswith("uvloop")
        assert issubclass(server.server.config.http_protocol_class, HttpToolsProtocol)
    finally:
        server.stop()
