"""The error responses web.httperrors puts in an app's OpenAPI document (both services).

FastAPI adds its own 422 `HTTPValidationError` (`{"detail": [...]}`) to every route with a
parameter; no route of ours answers that shape. `install` makes each one the real
`ErrorBody` with `invalid_request` where the input can be invalid, and drops it where no
value can fail (a path parameter of plain text). Checked in process on a small app.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Header, Query
from pydantic import BaseModel

from schema.errors import CardUnknown, NotFound
from web import httperrors

REF = "#/components/schemas/"


class Body(BaseModel):
    n: int


def document() -> dict[str, Any]:
    app = FastAPI()
    httperrors.install(app)

    @app.post("/body")
    def with_body(body: Body) -> None: ...

    @app.get("/text/{key}")
    def plain_path(key: str, token: Annotated[str | None, Header()] = None) -> None: ...

    @app.get("/number/{key}")
    def typed_path(key: int) -> None: ...

    @app.get("/search")
    def required_query(q: Annotated[str, Query()]) -> None: ...

    @app.get("/declared/{key}", responses=httperrors.error_responses(CardUnknown, NotFound,
                                                                      invalid=False))
    def declared(key: str) -> None: ...

    return app.openapi()


def test_fastapis_guessed_422_becomes_the_real_error_body_or_goes() -> None:
    doc = document()
    paths = doc["paths"]
    for path, method in [("/body", "post"), ("/number/{key}", "get"), ("/search", "get")]:
        answer = paths[path][method]["responses"]["422"]["content"]["application/json"]
        assert answer["schema"] == {"$ref": REF + "ErrorBody"}, path
        assert list(answer["examples"]) == ["invalid_request"]
    assert "422" not in paths["/text/{key}"]["get"]["responses"]
    assert "422" not in paths["/declared/{key}"]["get"]["responses"]
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["ErrorBody"]["properties"]["error"] == {"$ref": REF + "ErrorDetail"}


def test_declared_refusals_list_their_codes_under_their_status() -> None:
    answers = document()["paths"]["/declared/{key}"]["get"]["responses"]
    assert sorted(answers) == ["200", "404", "500"]
    assert list(answers["404"]["content"]["application/json"]["examples"]) == [
        "card_unknown", "not_found"]
    assert answers["404"]["description"] == "`card_unknown`, `not_found`"
    assert list(answers["500"]["content"]["application/json"]["examples"]) == ["internal_error"]
