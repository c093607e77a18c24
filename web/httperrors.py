"""The one place errors become HTTP answers: `{"error": {"code", "message"}}`.

The wire shape of errors, used by both FastAPI apps (agent and HQ). Promises: every refusal has a stable code;
validation failures are `invalid_request` (422) naming the field and saying what is expected
(`lines.0.unit_price: expected an integer amount in cents, got a string`), including a body
that is not UTF-8, not JSON (with its line and column) or sent without
`Content-Type: application/json`; an oversized body is `payload_too_large` (413) and is never
parsed; a storage fault (disk full, I/O error, read-only or damaged database) is
`storage_unavailable` (503) saying what to do; an unexpected failure is `internal_error`
(500) with no internals leaked. Must never:
echo secrets or full card numbers (a validation message names the type sent, never the value).

The same shape is what the OpenAPI documents publish: `ErrorBody` for every 4xx/5xx, with
the codes each status carries (`error_responses`), and never FastAPI's own 422
`HTTPValidationError` (`{"detail": [...]}`), which no route of ours ever answers: `install`
makes each one FastAPI adds the real `invalid_request`, or drops it where no input can be
invalid.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schema import errors
from schema.api import PATTERN_MEANING, json_kind
from schema.database import storage_error
from schema.errors import InvalidRequest, LoyaltyError, PayloadTooLarge

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


class ErrorDetail(BaseModel):
    """What was refused and why."""

    code: str = Field(description="stable snake_case code to branch on")
    message: str = Field(description="for people: what is wrong and what to do")
    context: dict[str, Any] | None = Field(
        None, description="safe details (card numbers masked, amounts in minor units)")


class ErrorBody(BaseModel):
    """Every refusal: a 4xx/5xx status with this body."""

    error: ErrorDetail


def error_responses(*errors: type[LoyaltyError],
                    invalid: bool = True) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each status its refusals answer, as `ErrorBody`, with
    their codes (named in the description, one example each).

    Always `500 internal_error` (an unexpected failure); `422 invalid_request` unless the
    route takes no body and no query (`invalid=False`: a path parameter is any text). The
    422 declared here is also what keeps FastAPI from adding its `HTTPValidationError`."""
    by_status: dict[int, dict[str, type[LoyaltyError]]] = defaultdict(dict)
    for error in (LoyaltyError, *((InvalidRequest,) if invalid else ()), *errors):
        by_status[error.status].setdefault(error.code, error)
    return {status: {"model": ErrorBody, **_documented(codes)}
            for status, codes in sorted(by_status.items())}


def _documented(codes: Mapping[str, type[LoyaltyError]]) -> dict[str, Any]:
    """An OpenAPI response but its schema: the codes, one example each."""
    examples = {code: {"summary": _summary(error),
                       "value": {"error": {"code": code, "message": _summary(error)}}}
                for code, error in sorted(codes.items())}
    return {"description": ", ".join(f"`{code}`" for code in sorted(codes)),
            "content": {"application/json": {"examples": examples}}}


def _summary(error: type[LoyaltyError]) -> str:
    """An error's own docstring, first paragraph, as one line (else its code in words)."""
    if error is LoyaltyError:
        return "an unexpected failure: nothing is leaked, see the server log"
    first = (error.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(first.split()) or error.code.replace("_", " ")


REF = "#/components/schemas/"
_GUESSED_422 = {"$ref": REF + "HTTPValidationError"}


def _real_422s(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """`app.openapi` with FastAPI's own 422 (`HTTPValidationError`, a shape no route of
    ours answers) made the real one: `ErrorBody` with `invalid_request`, on an operation
    whose input can be invalid, and dropped where none can (FastAPI adds it to every route
    with a parameter, also to a path parameter of plain text, which every value fits)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for methods in document.get("paths", {}).values():
            for operation in methods.values():
                answers = operation.get("responses", {})
                guessed = answers.get("422", {}).get("content", {}).get("application/json", {})
                if guessed.get("schema") != _GUESSED_422:
                    continue
                if _can_be_invalid(operation):
                    answers["422"] = _documented({"invalid_request": InvalidRequest})
                    answers["422"]["content"]["application/json"]["schema"] = {
                        "$ref": REF + "ErrorBody"}
                    _add_error_body(schemas)
                else:
                    del answers["422"]
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        return document

    return openapi


def _can_be_invalid(operation: Mapping[str, Any]) -> bool:
    """A body, a required query or header, or a parameter of any type but plain text."""
    if "requestBody" in operation:
        return True
    for parameter in operation.get("parameters", ()):
        schema = {k: v for k, v in parameter.get("schema", {}).items()
                  if k not in ("title", "description")}
        plain = schema in ({"type": "string"},
                           {"anyOf": [{"type": "string"}, {"type": "null"}]})
        if not plain or (parameter.get("required") and parameter["in"] != "path"):
            return True
    return False


def _add_error_body(schemas: dict[str, Any]) -> None:
    schema = ErrorBody.model_json_schema(ref_template=REF + "{model}")
    schemas.update(schema.pop("$defs", {}))
    schemas.setdefault("ErrorBody", schema)


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if extra:
        body["context"] = extra
    return JSONResponse({"error": body}, status_code=status)


# --- validation: what was wrong, where, and what is expected --------------------------------
SEND_JSON = "send it as JSON with the header Content-Type: application/json"


def _where(error: Mapping[str, Any], names: Mapping[str, str] | None = None) -> str:
    parts = [str(p) for p in error.get("loc", ()) if p != "body"]
    if names is not None:  # a web form: its fields by their labels
        parts = [names.get(p, p) for p in parts if p not in ("query", "path")]
    return ".".join(parts)


def _expected(error: Mapping[str, Any]) -> str:
    """What one pydantic error means, in words: "expected ..., got <the JSON type>"."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    got = json_kind(value)
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected an integer, got {got}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got}"
    if kind in ("string_type", "string_sub_type"):
        return f"expected a string, got {got}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a JSON object, got {got}"
    if kind in ("list_type", "tuple_type"):
        return f"expected a list, got {got}"
    if kind in ("literal_error", "enum"):
        return f"expected {ctx.get('expected', 'one of the listed values')}, got {got}"
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown field (not part of this request)"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"expected at least {n} characters"
    if kind == "string_too_long":
        return f"expected at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"expected at most {ctx.get('max_length')} item(s)"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return f"expected {PATTERN_MEANING.get(pattern, 'text of the documented form')}"
    bounds = {"greater_than": ("more than", "gt"), "greater_than_equal": ("at least", "ge"),
              "less_than": ("less than", "lt"), "less_than_equal": ("at most", "le")}
    if kind in bounds:
        words, key = bounds[kind]
        return f"expected a number {words} {ctx.get(key)}"
    if kind == "value_error":  # a model's own rule: its message says it all
        return str(ctx.get("error") or error["msg"]).removeprefix("Value error, ")
    return str(error["msg"])


def describe(error: Mapping[str, Any], names: Mapping[str, str] | None = None) -> str:
    """One validation error as a message: `where: what is expected`; `names` calls the
    fields of a web form by their labels."""
    loc = tuple(error.get("loc", ()))
    if loc[:1] == ("body",) and error["type"] == "json_invalid":
        return "body is not valid JSON: " + str((error.get("ctx") or {}).get("error", ""))
    if loc == ("body",) and isinstance(error.get("input"), bytes | bytearray):
        return f"the body is not taken as JSON: {SEND_JSON}"
    if loc == ("body",) and error["type"] == "missing":
        return f"this request needs a body: {SEND_JSON}"
    where = _where(error, names) or ("body" if loc == ("body",) else "")
    return f"{where}: {_expected(error)}" if where else _expected(error)


def validation_message(errors: Sequence[Mapping[str, Any]]) -> str:
    """The message of an `invalid_request` for these errors: the first one, described."""
    return describe(errors[0]) if errors else "invalid request"


def _json_position(exc: RequestValidationError) -> RequestValidationError:
    """FastAPI reports a JSON syntax error at a bare character offset: say line and column."""
    errors = list(exc.errors())
    first = dict(errors[0]) if errors else {}
    loc = tuple(first.get("loc", ()))
    if first.get("type") != "json_invalid" or len(loc) != 2 or not isinstance(loc[1], int):
        return exc
    doc, pos = exc.body if isinstance(exc.body, str) else "", loc[1]
    line = doc.count("\n", 0, pos) + 1
    column = pos - doc.rfind("\n", 0, pos)
    reason = (first.get("ctx") or {}).get("error", "malformed")
    first["loc"], first["ctx"] = ("body",), {"error": f"{reason} (line {line}, column {column})"}
    return RequestValidationError([first, *errors[1:]], body=exc.body)


class JSONBodyRoute(APIRoute):
    """A route whose JSON body must be UTF-8: FastAPI would answer a body in another
    encoding with a bare 400 `There was an error parsing the body`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def checked(request: Request) -> Response:
            body = await request.body()  # kept by the request: the handler reads it again
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RequestValidationError([{
                    "type": "utf8_invalid", "loc": ("body",), "input": None, "ctx": {},
                    "msg": f"must be UTF-8 encoded JSON (byte {exc.start} is not UTF-8)"}],
                ) from None
            return await handler(request)

        return checked


def install(app: FastAPI, max_body: int = MAX_BODY) -> None:
    # routes declared after this call check that a JSON body is UTF-8
    app.router.route_class = JSONBodyRoute
    app.openapi = _real_422s(app)  # type: ignore[method-assign]

    @app.exception_handler(LoyaltyError)
    async def loyalty_error(_: Request, exc: LoyaltyError) -> JSONResponse:
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request",
                              validation_message(_json_position(exc).errors()))

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
        log.warning("storage fault, request refused: %s", errors.describe(fault))
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
