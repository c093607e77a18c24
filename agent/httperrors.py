"""The one place errors become HTTP answers: `{"error": {"code", "message"}}`.

Used by both FastAPI apps (agent and HQ). Promises: every refusal has a stable code;
validation failures are `invalid_request` (422) naming the field; an oversized body is
`payload_too_large` (413) and is never parsed; an unexpected failure is `internal_error`
(500) with no internals leaked. Must never: echo secrets or full card numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from schema.errors import LoyaltyError, PayloadTooLarge

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
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
            exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(500, "internal_error", "unexpected error; see the server log")

    @app.middleware("http")
    async def limit_body(request: Request,
                         call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body):
            exc = PayloadTooLarge(f"request body over {max_body} bytes")
            return JSONResponse({"error": exc.to_dict()}, status_code=exc.status)
        return await call_next(request)
