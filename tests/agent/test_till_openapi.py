"""The till API's `/openapi.json` is a complete contract (docs/till-api.md, issue 10).

POS integrators generate their clients from this document, so it must say what every
operation really answers: a named schema for each success, the real error body
(`{"error": {"code", "message", "context"?}}`, never FastAPI's `{"detail": [...]}`) for each
refusal, and which codes each status carries. Checked here in process (FastAPI's TestClient
on a real SQLite file): the document's shape, then every route's real answers, successes
and refusals, against the schema the document gives for that status — no undeclared key,
no required key missing, and each refusal's code listed for its status.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentkit import png
from fastapi.testclient import TestClient
from httpx import Response

from agent.api import create_app
from agent.outlet import Outlet
from agent.replica import set_meta
from agent.replication import OutletReplica
from schema.sync import Change, PullResponse

REF = "#/components/schemas/"
OPERATIONS = 22
# Personalising a smart card needs a PC/SC reader with a blank card (tests/hardware); here
# only its refusal (no reader: 503 device_error) is exercised.
NO_SUCCESS_HERE = {("post", "/v1/customers/{customer_id}/smartcard")}

EVERY_PROFILE_FIELD = {
    "kind": "person", "given_name": "Ana", "surname": "Novak", "name": "Ana's cellar",
    "business_domain": "wine", "contact_person": "Marko", "date_of_birth": "1980-02-29",
    "address": "Main street 1",
    "phone": "+386 1 234 5678", "fax": "+386 1 234 5679", "email": "ana@example.com",
    "email_consent": True, "preferences": "red wine", "room": "101", "code": "ANA-1",
    "category": "A", "promo_category": "HAPPY", "approved_actions": ["WINE-WEEK"],
    "note": "pays monthly", "picture": png(10, 10), "pin": "1234", "language": "sl",
}


class Contract:
    """The app's OpenAPI document and the answers seen, checked against it as they come."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.doc: dict[str, Any] = client.get("/openapi.json").json()
        self.seen: set[tuple[str, str, int]] = set()

    def schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.doc["components"]["schemas"][schema["$ref"].removeprefix(REF)]
        return schema

    def problems(self, schema: dict[str, Any], value: Any, where: str) -> list[str]:
        """Where `value` has a key the schema does not declare, or lacks a required one."""
        schema = self.schema(schema)
        if "anyOf" in schema:
            options = [self.schema(s) for s in schema["anyOf"]]
            if value is None and {"type": "null"} in options:
                return []
            options = [s for s in options if s != {"type": "null"}]
            found = [self.problems(s, value, where) for s in options]
            return min(found, key=len)
        if "properties" in schema:
            if not isinstance(value, dict):
                return [f"{where}: expected an object, got {type(value).__name__}"]
            declared, required = set(schema["properties"]), set(schema.get("required", ()))
            found = [f"{where}.{k}: not declared" for k in sorted(set(value) - declared)]
            found += [f"{where}.{k}: required but missing" for k in sorted(required - set(value))]
            for key in set(value) & declared:
                found += self.problems(schema["properties"][key], value[key], f"{where}.{key}")
            return found
        if schema.get("type") == "array" and isinstance(value, list):
            return [p for i, item in enumerate(value)
                    for p in self.problems(schema.get("items", {}), item, f"{where}[{i}]")]
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and isinstance(value, dict):
            return [p for k, v in value.items() for p in self.problems(extra, v, f"{where}.{k}")]
        return []

    def call(self, method: str, template: str, status: int, json: Any = None,
             headers: dict[str, str] | None = None, **path: str) -> Any:
        """Calls one operation; the answer must have `status` and match the document."""
        url = template.format(**path)
        answer: Response = self.client.request(method, url, json=json, headers=headers)
        return self.check(method, template, status, answer)

    def check(self, method: str, template: str, status: int, answer: Response) -> Any:
        assert answer.status_code == status, (method, template, answer.text)
        operation = self.doc["paths"][template][method]
        documented = operation["responses"].get(str(status))
        assert documented is not None, f"{method} {template} answered {status}, undocumented"
        self.seen.add((method, template, status))
        if status == 204:
            assert answer.content == b"" and "content" not in documented
            return None
        body = answer.json()
        schema = documented["content"]["application/json"]["schema"]
        problems = self.problems(schema, body, "answer")
        assert not problems, f"{method} {template} {status}: {problems}"
        if status >= 400:
            codes = documented["content"]["application/json"].get("examples", {})
            assert body["error"]["code"] in codes, (
                f"{method} {template}: {status} {body['error']['code']} is not among the "
                f"documented codes {sorted(codes)}")
        return body


@pytest.fixture
def outlet(tmp_path: Path) -> Iterator[Outlet]:
    shop = Outlet(tmp_path / "outlet.db", "T")
    yield shop
    shop.close()


@pytest.fixture
def contract(outlet: Outlet) -> Iterator[Contract]:
    with TestClient(create_app(outlet)) as client:
        yield Contract(client)


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def test_every_operation_publishes_a_named_answer_and_only_the_real_error_body(
        contract: Contract) -> None:
    doc = contract.doc
    assert len(list(operations(doc))) == OPERATIONS
    for method, path, operation in operations(doc):
        name = f"{method.upper()} {path}"
        successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        assert successes, f"{name}: no success documented"
        for status, response in successes.items():
            if status == "204":
                assert "content" not in response, f"{name}: a 204 has no body"
                continue
            schema = response["content"]["application/json"]["schema"]
            named = schema.get("items", schema) if schema.get("type") == "array" else schema
            assert set(named) == {"$ref"}, f"{name} {status}: answer is not a named schema"
        refusals = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
        assert {"401", "500"} <= set(refusals), f"{name}: 401/500 not documented"
        for status, response in refusals.items():
            content = response["content"]["application/json"]
            assert content["schema"] == {"$ref": REF + "ErrorBody"}, f"{name} {status}"
            assert content["examples"], f"{name} {status}: no code documented"
            for code, example in content["examples"].items():
                assert example["value"]["error"]["code"] == code
                assert code in response["description"], f"{name} {status} {code}"
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert set(schemas["ErrorBody"]["properties"]) == {"error"}
    assert set(schemas["ErrorDetail"]["properties"]) == {"code", "message", "context"}
    assert set(schemas["ErrorDetail"]["required"]) == {"code", "message"}


def test_an_operation_with_input_documents_invalid_request_and_one_without_does_not(
        contract: Contract) -> None:
    ops = {(m, p): o for m, p, o in operations(contract.doc)}
    for (method, path), operation in ops.items():
        # a path parameter is any text, so only a body or a query can be invalid
        takes_input = "requestBody" in operation or any(
            p["in"] == "query" for p in operation.get("parameters", ()))
        assert ("422" in operation["responses"]) == takes_input, f"{method} {path}"


def test_the_long_poll_documents_a_read_and_an_empty_204(contract: Contract) -> None:
    answers = contract.doc["paths"]["/v1/tills/{till_id}/identification"]["get"]["responses"]
    assert answers["200"]["content"]["application/json"]["schema"] == {
        "$ref": REF + "IdentificationRead"}
    assert "content" not in answers["204"]


def test_a_till_token_is_published_as_a_bearer_scheme(outlet: Outlet) -> None:
    with TestClient(create_app(outlet, till_token="secret")) as client:
        doc = client.get("/openapi.json").json()
        scheme = doc["components"]["securitySchemes"]["TillToken"]
        assert scheme == {"type": "http", "scheme": "bearer",
                          "description": scheme["description"]}
        assert all(op["security"] == [{"TillToken": []}] for _, _, op in operations(doc))
        contract = Contract(client)
        contract.check("get", "/v1/status", 401, client.get("/v1/status"))
        contract.check("get", "/v1/status", 401, client.get(
            "/v1/status", headers={"Authorization": "secret"}))
        assert client.get("/v1/status", headers={"Authorization": "bearer secret"}).is_success


def test_every_answer_of_every_route_is_exactly_what_the_document_declares(
        outlet: Outlet, contract: Contract) -> None:
    c = contract
    status = c.call("get", "/v1/status", 200)
    assert status["outlet_id"] == "T"

    # desk: register with every field, find, read, edit
    ana = c.call("post", "/v1/customers", 201, EVERY_PROFILE_FIELD)
    cid, card = ana["customer_id"], ana["card_number"]
    view = c.call("get", "/v1/customers/{customer_id}", 200, customer_id=cid)
    declared = c.schema(c.doc["paths"]["/v1/customers/{customer_id}"]["get"]["responses"]
                        ["200"]["content"]["application/json"]["schema"])
    assert set(view) == set(declared["properties"]), "a full profile shows every field"
    found = c.check("get", "/v1/customers", 200, c.client.get("/v1/customers",
                                                             params={"q": "nov"}))
    assert [f["customer_id"] for f in found] == [cid]
    c.call("patch", "/v1/customers/{customer_id}", 200, {"room": "102"}, customer_id=cid)
    c.call("post", "/v1/customers/{customer_id}/identifiers", 201,
           {"kind": "phone", "value": "+386 40 111 222"}, customer_id=cid)
    c.call("post", "/v1/identifiers/status", 200,
           {"kind": "phone", "value": "+38640111222", "status": "lost"})
    c.call("post", "/v1/customers/{customer_id}/pin", 204, {"pin": "4321"}, customer_id=cid)
    c.call("post", "/v1/customers/{customer_id}/smartcard", 503, {"reader": "no such reader"},
           customer_id=cid)

    # till: identify, quote, sell (and the replay), redeem (and the replay)
    c.call("post", "/v1/identify", 200, {"kind": "card", "value": card, "till_id": "T1",
                                         "pin": "4321"})
    basket = [{"sku": "W-1", "name": "Merlot", "qty": 2, "unit_price": 1290,
               "division": "wine"}, {"sku": "B-1", "name": "Bread", "qty": 1,
                                     "unit_price": 450, "promo": "HAPPY"}]
    quote = c.call("post", "/v1/quotes", 201, {"card": card, "lines": basket, "till_id": "T1"})
    sale = {"quote_id": quote["quote_id"], "till_id": "T1",
            "payments": [{"mode": "card", "amount": quote["total_net"] - 100},
                         {"mode": "credit", "amount": 100}]}
    key = {"Idempotency-Key": "sale-1"}
    first = c.call("post", "/v1/sales", 201, sale, headers=key)
    again = c.client.post("/v1/sales", json=sale, headers=key)
    assert c.check("post", "/v1/sales", 201, again) == first
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in c.client.post("/v1/sales", json={
        "card": card, "lines": basket[1:], "payments": [
            {"mode": "cash", "amount": quote["lines"][1]["net"]}]}).headers
    big = [{"sku": "X", "name": "Case", "qty": 1, "unit_price": 1_000_000}]
    c.call("post", "/v1/sales", 201, {"card": card, "lines": big, "payments": [
        {"mode": "cash", "amount": c.call("post", "/v1/quotes", 201, {
            "card": card, "lines": big})["total_net"]}]})
    gift = {"card": card, "gift_sku": "GIFT-MUG", "qty": 1, "till_id": "T1"}
    handed = c.call("post", "/v1/redemptions", 201, gift, headers={"Idempotency-Key": "r-1"})
    replay = c.client.post("/v1/redemptions", json=gift, headers={"Idempotency-Key": "r-1"})
    assert c.check("post", "/v1/redemptions", 201, replay) == handed
    assert replay.headers["Idempotent-Replayed"] == "true"

    # the way back: a return by receipt reference (and its replay), a void, a gift return
    back = {"receipt": first["receipt_reference"], "lines": [{"sku": "W-1", "qty": 1}],
            "till_id": "T1", "reason": "corked"}
    done = c.call("post", "/v1/returns", 201, back, headers={"Idempotency-Key": "ret-1"})
    again = c.client.post("/v1/returns", json=back, headers={"Idempotency-Key": "ret-1"})
    assert c.check("post", "/v1/returns", 201, again) == done
    c.call("post", "/v1/sales/{sale_id}/void", 201, {"till_id": "T1", "reason": "wrong card"},
           sale_id=first["sale_id"])
    c.call("post", "/v1/redemptions/{redemption_id}/return", 201, {"qty": 1},
           redemption_id=handed["redemption_id"])

    # credit: an invoice as HQ sends it, then paid at the desk
    OutletReplica(outlet).apply(PullResponse(epoch="E", cursor=1, head=1, incorporated_through=0,
                                             more=False, changes=[Change(
        kind="invoice", key="INV-ID", seq=1, data={
            "invoice_id": "INV-ID", "number": "2026-0001", "customer_id": cid,
            "period_from": "2026-01-01", "period_to": "2026-01-31", "issued_on": "2026-02-01",
            "due_on": "2026-02-15", "amount": 100, "paid_amount": 0, "status": "open"})]))
    invoices = c.call("get", "/v1/customers/{customer_id}/invoices", 200, customer_id=cid)
    assert [i["number"] for i in invoices] == ["2026-0001"]
    c.call("get", "/v1/customers/{customer_id}/statement", 200, customer_id=cid)
    c.call("post", "/v1/invoices/{number}/payments", 201, {"amount": 40, "till_id": "T1"},
           number="2026-0001")

    # gifts
    c.call("get", "/v1/gifts", 200)
    c.call("post", "/v1/gifts/{sku}/stock", 200, {"qty": 5, "reason": "receipt"},
           sku="GIFT-MUG")

    # a card read handed to its till, and the empty poll
    outlet.tills.publish("T1", {"kind": "card", "value": card, "reader": "R1", "till_id": "T1",
                                "read_at": "2026-01-01T00:00:00+00:00",
                                "detected_monotonic": 1.0, "customer": {
                                    "customer_id": cid, "display_name": "Ana Novak",
                                    "kind": "person", "status": "approved", "category": "A",
                                    "points_balance": 1, "language": "sl", "greetings": [
                                        {"kind": "welcome", "text": "Dobrodošli v klubu, Ana!",
                                         "language": "sl", "print_on_receipt": False},
                                        {"kind": "gift", "text": "...", "language": "sl",
                                         "print_on_receipt": False, "gift": {
                                             "sku": "GIFT-MUG", "name": "Club mug",
                                             "points_cost": 500, "points_missing": 499}},
                                        {"kind": "announcement", "text": "...",
                                         "language": "sl", "print_on_receipt": True,
                                         "announcement_id": "A-1"}]}})
    outlet.tills.publish("T2", {"reader": "R2", "till_id": "T2", "error": {
        "code": "read_error", "reason": "bad_lrc", "message": "read the card again"}})
    for till in ("T1", "T2"):
        c.call("get", "/v1/tills/{till_id}/identification", 200, till_id=till)
    c.call("get", "/v1/tills/{till_id}/identification", 204, till_id="T1")

    successes = {(m, p) for m, p, s in c.seen if s < 300}
    missing = {(m, p) for m, p, _ in operations(c.doc)} - successes - NO_SUCCESS_HERE
    assert not missing, f"no success exercised for {sorted(missing)}"


def test_every_refusal_is_the_documented_error_body_with_a_listed_code(
        outlet: Outlet, contract: Contract) -> None:
    c = contract
    ana = c.call("post", "/v1/customers", 201, {"kind": "person", "given_name": "Ana",
                                                "surname": "Novak", "category": "D",
                                                "pin": "1234"})
    cid, card = ana["customer_id"], ana["card_number"]
    line = [{"sku": "S", "name": "Soap", "qty": 1, "unit_price": 300}]
    bodies: dict[tuple[str, str], Any] = {
        ("post", "/v1/customers"): {}, ("patch", "/v1/customers/{customer_id}"): {"x": 1},
        ("post", "/v1/customers/{customer_id}/identifiers"): {},
        ("post", "/v1/identifiers/status"): {}, ("post", "/v1/customers/{customer_id}/pin"): {},
        ("post", "/v1/customers/{customer_id}/smartcard"): {}, ("post", "/v1/identify"): {},
        ("post", "/v1/quotes"): {}, ("post", "/v1/sales"): {}, ("post", "/v1/redemptions"): {},
        ("post", "/v1/invoices/{number}/payments"): {}, ("post", "/v1/gifts/{sku}/stock"): {},
        ("post", "/v1/returns"): {}, ("post", "/v1/sales/{sale_id}/void"): {},
        ("post", "/v1/redemptions/{redemption_id}/return"): {"qty": 0},
    }
    for (method, path), body in bodies.items():
        c.call(method, path, 422, body, customer_id=cid, number="N", sku="GIFT-MUG",
               sale_id="S", redemption_id="R")
    c.check("get", "/v1/customers", 422, c.client.get("/v1/customers"))
    c.check("get", "/v1/tills/{till_id}/identification", 422,
            c.client.get("/v1/tills/T1/identification", params={"wait": 61}))

    for method, path in [("get", "/v1/customers/{customer_id}"),
                         ("patch", "/v1/customers/{customer_id}"),
                         ("post", "/v1/customers/{customer_id}/identifiers"),
                         ("post", "/v1/customers/{customer_id}/pin"),
                         ("get", "/v1/customers/{customer_id}/statement")]:
        body = {"kind": "phone", "value": "1"} if "identifiers" in path else (
            {"pin": "1111"} if "pin" in path else {"room": "1"})
        c.call(method, path, 404, body, customer_id="nobody")
    unknown = "2900019999990"
    c.call("post", "/v1/identify", 404, {"kind": "card", "value": unknown})
    c.call("post", "/v1/quotes", 404, {"card": unknown, "lines": line})
    c.call("post", "/v1/sales", 404, {"card": unknown, "lines": line,
                                      "payments": [{"mode": "cash", "amount": 300}]})
    c.call("post", "/v1/sales", 404, {"quote_id": "gone",
                                      "payments": [{"mode": "cash", "amount": 300}]})
    c.call("post", "/v1/redemptions", 404, {"card": unknown, "gift_sku": "GIFT-MUG"})
    c.call("post", "/v1/redemptions", 404, {"card": card, "gift_sku": "NO-GIFT"})
    c.call("post", "/v1/gifts/{sku}/stock", 404, {"qty": 1, "reason": "receipt"}, sku="NO-GIFT")
    c.call("post", "/v1/invoices/{number}/payments", 404, {"amount": 1}, number="NO-INVOICE")
    c.call("post", "/v1/returns", 404, {"sale_id": "gone", "lines": [{"sku": "S", "qty": 1}]})
    c.call("post", "/v1/sales/{sale_id}/void", 404, {"till_id": "T1", "reason": "x"},
           sale_id="gone")
    c.call("post", "/v1/redemptions/{redemption_id}/return", 404, {}, redemption_id="gone")

    c.call("post", "/v1/identify", 401, {"kind": "card", "value": card, "pin": "9999"})
    for _ in range(2):
        c.call("post", "/v1/identify", 401, {"kind": "card", "value": card, "pin": "9999"})
    c.call("post", "/v1/identify", 403, {"kind": "card", "value": card, "pin": "1234"})
    c.call("post", "/v1/sales", 422, {"card": card, "lines": line,
                                      "payments": [{"mode": "cash", "amount": 299}]})
    c.call("post", "/v1/sales", 402, {"card": card, "lines": line,
                                      "payments": [{"mode": "credit", "amount": 300}]})
    c.call("post", "/v1/redemptions", 402, {"card": card, "gift_sku": "GIFT-MUG"})
    key = {"Idempotency-Key": "k"}
    c.call("post", "/v1/sales", 201, {"card": card, "lines": line,
                                      "payments": [{"mode": "cash", "amount": 300}]}, headers=key)
    sold = c.call("post", "/v1/sales", 409, {"card": card, "lines": line * 2,
                                             "payments": [{"mode": "cash", "amount": 600}]},
                  headers=key)
    assert sold["error"]["code"] == "idempotency_conflict"
    sale_id = c.client.post("/v1/sales", json={"card": card, "lines": line, "payments": [
        {"mode": "cash", "amount": 300}]}, headers=key).json()["sale_id"]
    c.call("post", "/v1/returns", 409, {"sale_id": sale_id, "lines": [{"sku": "S", "qty": 2}]})
    c.call("post", "/v1/sales/{sale_id}/void", 201, {"till_id": "T1", "reason": "x"},
           sale_id=sale_id)
    c.call("post", "/v1/sales/{sale_id}/void", 409, {"till_id": "T1", "reason": "x"},
           sale_id=sale_id)
    big = [{"sku": "B", "name": "Barrel", "qty": 1, "unit_price": 60_000}]
    c.call("post", "/v1/sales", 201, {"card": card, "lines": big,
                                      "payments": [{"mode": "cash", "amount": 60_000}]})
    c.call("post", "/v1/redemptions/{redemption_id}/return", 409, {"qty": 2},
           redemption_id=c.call("post", "/v1/redemptions", 201, {
               "card": card, "gift_sku": "GIFT-MUG"})["redemption_id"])
    c.call("post", "/v1/gifts/{sku}/stock", 409, {"qty": -1000, "reason": "correction"},
           sku="GIFT-MUG")
    c.call("post", "/v1/customers/{customer_id}/identifiers", 409,
           {"kind": "card", "value": card}, customer_id=c.call(
               "post", "/v1/customers", 201, {"kind": "organisation", "name": "Acme"})[
                   "customer_id"])
    c.call("post", "/v1/identifiers/status", 200, {"kind": "card", "value": card,
                                                   "status": "blocked"})
    c.call("post", "/v1/identify", 403, {"kind": "card", "value": card})
    c.call("post", "/v1/quotes", 403, {"card": card, "lines": line})
    c.call("post", "/v1/redemptions", 403, {"card": card, "gift_sku": "GIFT-MUG"})

    refused = {(m, p) for m, p, s in c.seen if s >= 400}
    assert len(refused) == OPERATIONS - 3, "all but status, gifts and invoices refuse"


def test_the_document_lists_the_codes_each_domain_call_can_refuse_with(
        contract: Contract) -> None:
    def codes(method: str, path: str) -> dict[str, set[str]]:
        answers = contract.doc["paths"][path][method]["responses"]
        return {s: set(r["content"]["application/json"]["examples"])
                for s, r in answers.items() if s[0] in "45"}

    sales = codes("post", "/v1/sales")
    assert sales["404"] >= {"card_unknown", "quote_unknown"}
    assert sales["403"] >= {"card_banned", "card_blocked", "card_lost", "credit_blocked"}
    assert sales["402"] >= {"credit_limit_exceeded", "offline_limit_exceeded"}
    assert sales["409"] >= {"idempotency_conflict", "conflict"}
    assert sales["422"] >= {"invalid_request", "payment_mismatch"}
    assert sales["413"] == {"payload_too_large"}
    redemption = codes("post", "/v1/redemptions")
    assert redemption["402"] >= {"insufficient_points", "offline_limit_exceeded"}
    assert redemption["409"] >= {"out_of_stock", "idempotency_conflict"}
    identify = codes("post", "/v1/identify")
    assert identify["401"] >= {"unauthorized", "pin_invalid"}
    assert identify["403"] >= {"pin_locked", "card_banned"}
    assert codes("post", "/v1/customers/{customer_id}/smartcard")["503"] >= {"device_error"}
    assert "413" not in codes("get", "/v1/status")
    for method, path, _ in operations(contract.doc):
        assert re.fullmatch(r"/v1/[a-z{}_/]+", path)
        assert "internal_error" in codes(method, path)["500"], f"{method} {path}"


def test_the_status_of_a_modem_outlet_with_readers_is_what_the_document_declares(
        tmp_path: Path) -> None:
    """The keys only some outlets have: a modem's figures, readers, the sync loops."""
    shop = Outlet(tmp_path / "modem.db", "M", chain=True)
    reader = {"name": "R1", "kind": "magstripe", "till": "T1", "port": "/dev/ttyS0",
              "state": "ok", "last_error": None, "last_read_at": None, "reads": 2, "errors": 0}
    with shop.db.write() as conn:
        for key, value in {"link": "modem", "next_dial_at": "2026-01-01T10:00:00Z",
                           "last_session": '{"result": "ok"}', "clock_offset_s": "1.5",
                           "clock_tolerance_s": "300"}.items():
            set_meta(conn, key, value)
    extra = {"sync_loop": {"push": "ok", "pull": "ok"}, "readers": [reader]}
    try:
        with TestClient(create_app(shop, extra_status=lambda: extra)) as client:
            contract = Contract(client)
            status = contract.call("get", "/v1/status", 200)
            declared = contract.schema(contract.doc["components"]["schemas"]["OutletStatus"])
            assert set(status) == set(declared["properties"])
            assert status["readers"] == [reader] and status["last_session"] == {"result": "ok"}
    finally:
        shop.close()
