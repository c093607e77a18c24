"""The one till client of the tests: a POS talking to an agent's till API.

`Till(url, till_id, token=None, session=None)` speaks over any requests-like session: a
`requests.Session` (the default) for a real agent process on loopback, or FastAPI's
`TestClient` for an app in this process (pass `url="http://testserver"`). It only uses
`session.request(method, url, **kw)`, `session.headers`, `status_code`, `content`, `text`
and `json()`, which both kinds of answer have. `line` and `expect_error` build and check
the bodies the till API's contract names.
"""

from __future__ import annotations

from typing import Any

import requests


class Till:
    """A POS on one till of an outlet; `ok` asserts the status and returns the JSON body."""

    def __init__(self, url: str, till_id: str = "T1", token: str | None = None,
                 session: Any = None) -> None:
        self.url = url
        self.till_id = till_id
        self.http: Any = session if session is not None else requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, **kw: Any) -> Any:
        if isinstance(self.http, requests.Session):  # a TestClient takes no timeout
            kw.setdefault("timeout", 15)
        return self.http.request(method, self.url + path, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json=json, **kw)

    def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        answer = self.request(method, path, **kw)
        assert answer.status_code == status, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    # --- the calls most tests make ------------------------------------------------------
    def register(self, category: str | None = "A", **fields: Any) -> dict[str, str]:
        body = {"kind": "person", "given_name": "Test", "surname": "Customer", **fields}
        if category is not None:
            body["category"] = category
        return self.ok("POST", "/v1/customers", 201, json=body)

    def quote(self, card: str, lines: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return self.ok("POST", "/v1/quotes", 201, json={"card": card, "lines": lines, **extra})

    def sell(self, card: str, lines: list[dict[str, Any]], payments: list[dict[str, Any]] | None
             = None, key: str | None = None, mode: str = "cash") -> Any:
        """A sale by card + lines; by default paid in full in `mode` (priced by a quote)."""
        if payments is None:
            total = self.quote(card, lines)["total_net"]
            payments = [{"mode": mode, "amount": total}]
        headers = {"Idempotency-Key": key} if key else {}
        return self.post("/v1/sales", {"card": card, "lines": lines, "payments": payments,
                                       "till_id": self.till_id}, headers=headers)

    def sold(self, card: str, lines: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
        answer = self.sell(card, lines, **kw)
        assert answer.status_code == 201, answer.text
        return answer.json()


def line(sku: str, unit_price: int, qty: int = 1, name: str | None = None,
         division: str | None = None) -> dict[str, Any]:
    """One basket line as the till API takes it."""
    out: dict[str, Any] = {"sku": sku, "name": name or f"Item {sku}", "qty": qty,
                           "unit_price": unit_price}
    if division:
        out["division"] = division
    return out


def expect_error(answer: Any, status: int, code: str) -> dict[str, Any]:
    """Asserts the contract's error shape `{"error": {"code", "message"}}` and returns it."""
    assert answer.status_code == status, f"wanted {status} {code}, got {answer.status_code} {answer.text}"
    body = answer.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
    assert body["error"]["message"], body
    assert body["error"]["code"] == code, body
    return body["error"]
