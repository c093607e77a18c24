"""Answers serialised in one pass: a pydantic model straight to JSON bytes.

A route declares `response_model=X` for its OpenAPI document and returns
`ModelResponse(x)`: FastAPI then sends the bytes as they are, with no second validation
and no `jsonable_encoder` pass over the answer.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel
from starlette.responses import Response


class ModelResponse(Response):
    media_type = "application/json"

    def __init__(self, model: BaseModel, status_code: int = 200,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(model.model_dump_json(), status_code=status_code, headers=headers)
