"""JSON answers serialised once, from the pydantic model the route publishes.

A route declares `response_model=X` for its OpenAPI document and returns `ModelResponse(x)`:
FastAPI hands a returned `Response` on as it is, so the answer is not validated against the
model and encoded a second time. Promises: the body is `model.model_dump_json()` (compact,
UTF-8, the model's field order) with `Content-Type: application/json`; the headers given
(`Idempotent-Replayed: true` on a replayed answer) are sent as they are. With
`exclude_unset`, a model validated from a dict answers exactly the keys the dict had (an
optional key that was absent stays absent, it does not come back as `null`).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel
from starlette.responses import Response


class ModelResponse(Response):
    media_type = "application/json"

    def __init__(self, model: BaseModel, status_code: int = 200,
                 headers: Mapping[str, str] | None = None, *, exclude_unset: bool = False) -> None:
        super().__init__(model.model_dump_json(exclude_unset=exclude_unset), status_code,
                         headers)
