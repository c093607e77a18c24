"""The one place errors become HTTP answers: `{"error": {"code", "message"}}`.

The wire shape of errors, used by both FastAPI apps (agent and HQ). Promises: every refusal has a stable code;
validation failures are `invalid_request` (422) naming the field; an oversized body is
`payload_too_large` (413) and is never parsed; a storage fault (disk full, I/O error,
read-only or damaged database) is `storage_unavailable` (503) saying what to do; an
unexpected failure is `internal_error` (500) with no internals leaked. Must never: echo
secrets or full card numbers.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schema.database import storage_error
from schema.errors import LoyaltyError, PayloadTooLarge, describe

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if extra:
        body["context"] = extra
    return JSONResponse({"error": body}, status_code=status)


def _where(error: dict[str, Any]) -> str:
    return ".".join(str(p) for p in error.get("loc", ()) if p != "body")


def install(app: FastAPI, max_body: int = MAX_BODY) -> None:
    @app.exception_handler(LoyaltyError)
    async def loyalty_error(_: Request, exc: LoyaltyError) -> JSONResponse:
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = _where(first)
        message = f"{where}: {first['msg']}" if where else str(first["msg"])
        return error_response(422, "invalid_request", message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized",
                413: "payload_too_large"}.get(
            exc.status_code, "http_error")
        answer = error_response(exc.status_code, code, str(exc.detail))
        answer.headers.update(exc.headers or {})  # 405's Allow, 401's WWW-Authenticate
        return answer

    @app.exception_handler(ClientDisconnect)
    async def hung_up(request: Request, _: ClientDisconnect) -> Response:
        # the client is gone (a bad line, a till switched off): nobody reads an answer,
        # and it is no failure of ours; one line, no traceback
        log.info("client hung up before its request arrived whole: %s %s", request.method,
                 request.url.path)
        return Response(status_code=400)

    @app.exception_handler(sqlite3.Error)
    async def storage(_: Request, exc: sqlite3.Error) -> JSONResponse:
        fault = storage_error(exc)
        if fault is None:  # wrong SQL, a constraint: a bug
            log.error("unexpected error", exc_info=exc)
            return error_response(500, "internal_error", "unexpected error; see the server log")
        log.warning("storage fault, request refused: %s", describe(fault))
        fault.message += " (nothing of this request was recorded)"
        return JSONResponse({"error": fault.to_dict()}, status_code=fault.status)

    @app.exception_handler(Exception)
    async def crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(500, "internal_error", "unexpected error; see the server log")

    app.add_middleware(BodyLimit, max_body=max_body)


class BodyLimit:
    """Refuses a body over `max_body` bytes before it is parsed: a declared Content-Length
    at once, a chunked body as soon as its streamed bytes pass the limit."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            exc = PayloadTooLarge(f"request body over {self.max_body} bytes")
            await JSONResponse({"error": exc.to_dict()}, status_code=exc.status)(
                scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:  # FastAPI re-raises HTTPException from body reading
                    raise StarletteHTTPException(413, f"request body over {self.max_body} bytes")
            return message

        await self.app(scope, limited, send)
