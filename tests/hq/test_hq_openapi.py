"""HQ's `/openapi.json` is a complete contract, and the real answers keep to it exactly.

Every operation names its 2xx answer (a `$ref`, or a 204 with no body) and documents its
refusals as the body actually sent (`ErrorBody`, never FastAPI's `HTTPValidationError`);
admin operations document 401 and 403, the sync ones too. The sync routes send bytes
rendered by the feed and ingest, documented by their models (Hello, PushResponse,
PullResponse). In process (TestClient over a real SQLite file), every operation is called
and its answer has exactly the keys of the schema it publishes, at every depth; the reads
answer what the domain functions say, value for value, as they did before they were typed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "banking"))

from statementkit import Ntry, Tx, camt053

from agent.programme import default_documents
from hq import admin, credentials, ingest, invoices, settings
from hq.api import create_app
from hq.chain import Chain
from schema import adminapi
from schema.adminapi import CustomerView
from schema.events import (
    CustomerRegistered,
    GiftRedeemed,
    Payment,
    Profile,
    SaleLine,
    SaleRecorded,
    make_event,
    utc_now,
)

NOT_JSON = {("get", "/v1/admin/invoices/{number}/pdf"): "application/pdf",
            ("get", "/v1/sync/snapshot/{sha256}"): "application/octet-stream"}
SYNC_MODELS = {("get", "/v1/sync/hello"): "Hello", ("post", "/v1/sync/push"): "PushResponse",
               ("get", "/v1/sync/pull"): "PullResponse"}
ANSWERS = {name for name, value in vars(adminapi).items()
           if isinstance(value, type) and issubclass(value, adminapi.Answer)}
CUSTOMER = "c-0001"
CARD = "2900010000015"
FULL_PROFILE = Profile(
    kind="person", given_name="Ana", surname="Novak", name="Ana Novak s.p.",
    business_domain="retail", contact_person="Ana", date_of_birth="1990-05-01",
    address="Lipa 1", phone="+386 1 234 5678", fax="+386 1 234 5679", email="ana@example.com",
    email_consent=True, preferences="tea", room="12", code="AN-1", category="A",
    promo_category="STAFF", approved_actions=["SPRING"], note="a note", language="sl")


class HQ:
    """HQ's app in process over a real file, with an outlet X and an admin token."""

    def __init__(self, tmp_path: Path) -> None:
        self.chain = Chain(tmp_path / "hq.db", seed=default_documents())
        with self.chain.db.write() as conn:
            outlet_token, _ = credentials.add_outlet(conn, "X")
            admin_token = credentials.add_admin(conn)
            conn.execute("UPDATE outlets SET created_at = '2020-01-01T00:00:00.000000Z'")
        self.http = TestClient(create_app(self.chain))
        self.outlet = {"Authorization": f"Bearer {outlet_token}"}
        self.admin = {"Authorization": f"Bearer {admin_token}"}
        self.doc: dict[str, Any] = self.http.get("/openapi.json").json()
        self.called: set[tuple[str, str]] = set()

    def call(self, method: str, path: str, template: str, status: int = 200,
             **kw: Any) -> Any:
        """Calls an operation (`template` is its path in the document) and checks that the
        answer has exactly the keys its documented schema lists."""
        headers = self.outlet if template.startswith("/v1/sync/") else self.admin
        answer = self.http.request(method, path, headers=headers, **kw)
        assert answer.status_code == status, answer.text
        self.called.add((method.lower(), template))
        responses = self.doc["paths"][template][method.lower()]["responses"]
        if status == 204:
            assert answer.content == b"" and "content" not in responses["204"]
            return None
        if (method.lower(), template) in NOT_JSON:
            assert answer.headers["content-type"] == NOT_JSON[method.lower(), template]
            return answer.content
        assert answer.headers["content-type"] == "application/json"
        body = answer.json()
        exact_keys(self.doc, responses[str(status)]["content"]["application/json"]["schema"],
                   body, f"{method} {template}")
        return body


def resolved(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def exact_keys(doc: dict[str, Any], schema: dict[str, Any] | bool, value: Any,
               where: str) -> None:
    """`value` has every property `schema` requires and none it does not declare, at every
    depth (every admin answer requires all its properties; a sync answer leaves out the
    clock fields when the outlet sent no time, as documented). A free-form value (a master
    data document, an entity in a pull page) is the document's own business."""
    if isinstance(schema, bool) or not schema:
        return
    schema = resolved(doc, schema)
    if "anyOf" in schema:
        branches = [resolved(doc, s) for s in schema["anyOf"]]
        if value is None:
            assert {"type": "null"} in branches, f"{where}: null where the schema has none"
            return
        (schema,) = [s for s in branches if s.get("type") != "null"]
    if isinstance(value, dict):
        properties = schema.get("properties")
        if properties is None:  # a map (gift SKU -> count)
            for key, item in value.items():
                exact_keys(doc, schema.get("additionalProperties", {}), item, f"{where}.{key}")
            return
        extra, missing = set(value) - set(properties), set(schema.get("required", ())) - set(value)
        assert not extra and not missing, \
            f"{where}: sent {sorted(extra)} beyond the schema, left out {sorted(missing)}"
        for key, item in value.items():
            exact_keys(doc, properties[key], item, f"{where}.{key}")
    elif isinstance(value, list):
        assert schema.get("type") == "array", f"{where}: a list where the schema has {schema}"
        for i, item in enumerate(value):
            exact_keys(doc, schema["items"], item, f"{where}[{i}]")


@pytest.fixture
def hq(tmp_path: Path) -> Iterator[HQ]:
    served = HQ(tmp_path)
    yield served
    served.chain.waiters.close()
    served.chain.close()


def credit_sale(sale_id: str, amount: int) -> SaleRecorded:
    line = SaleLine(sku="S", name="Stuff", qty=1, unit_price=amount, gross=amount, discount=0,
                    net=amount)
    return SaleRecorded(sale_id=sale_id, customer_id=CUSTOMER, till_id="T1", currency="EUR",
                        lines=[line], payments=[Payment(mode="credit", amount=amount)],
                        total_gross=amount, total_discount=0, total_net=amount,
                        points_earned=300)


def facts() -> list[dict[str, Any]]:
    """A customer with a full profile, a credit sale, and a redemption that overspends
    (HQ applies it and flags it)."""
    bodies = [CustomerRegistered(customer_id=CUSTOMER, card_number=CARD, profile=FULL_PROFILE),
              credit_sale("sale-1", 1290),
              GiftRedeemed(redemption_id="r-1", customer_id=CUSTOMER, gift_sku="GIFT-MUG",
                           gift_name="Club mug", qty=1, points_spent=500)]
    return [make_event("X", i + 1, body, "2026-09-10T10:00:00Z").model_dump(mode="json")
            for i, body in enumerate(bodies)]


def test_every_operation_names_its_answer_and_documents_its_refusals_as_sent(hq: HQ) -> None:
    operations = [(method, path, op) for path, ops in hq.doc["paths"].items()
                  for method, op in ops.items()]
    assert len(operations) == 33  # merge and replace-card (issue 12), adjustments and points/expire (issue 11)
    assert "HTTPValidationError" not in hq.doc["components"]["schemas"]
    for method, path, op in operations:
        where = f"{method.upper()} {path}"
        statuses = {int(code) for code in op["responses"]}
        ok = [s for s in statuses if s < 300]
        assert len(ok) == 1, where
        answer = op["responses"][str(ok[0])]
        if ok[0] == 204:
            assert "content" not in answer, where
        elif (method, path) in NOT_JSON:
            assert set(answer["content"]) == {NOT_JSON[method, path]}, where
        else:
            schema = answer["content"]["application/json"]["schema"]
            assert set(schema) == {"$ref"}, f"{where} answers {schema}"
            if (method, path) in SYNC_MODELS:
                assert schema["$ref"].endswith("/" + SYNC_MODELS[method, path]), where
        for status in statuses - set(ok):
            error = op["responses"][str(status)]
            assert error["content"]["application/json"]["schema"] == \
                {"$ref": "#/components/schemas/ErrorBody"}, f"{where} {status}"
            assert error["description"].startswith("`"), f"{where} {status}: name the codes"
        assert {401, 403, 422} <= statuses, where
    for name, schema in hq.doc["components"]["schemas"].items():
        if name in ANSWERS:  # every field of an admin answer is always sent
            assert set(schema["required"]) == set(schema["properties"]), name
            assert "additionalProperties" not in schema, f"{name}: fields may be added"
    error_body = hq.doc["components"]["schemas"]["ErrorBody"]
    assert error_body["required"] == ["error"]
    assert set(resolved(hq.doc, error_body["properties"]["error"])["properties"]) == \
        {"code", "message", "context"}


def test_every_answer_has_exactly_the_keys_its_schema_publishes(hq: HQ) -> None:
    # with the outlet's time sent, the clock fields are in the answers too
    hello = hq.call("GET", "/v1/sync/hello", "/v1/sync/hello", params={"sent_at": utc_now()})
    assert hello["outlet_id"] == "X" and "clock_offset_s" in hello
    pushed = hq.call("POST", "/v1/sync/push", "/v1/sync/push", json={
        "protocol": 1, "outlet_id": "X", "events": facts(), "sent_at": utc_now()})
    assert "clock_offset_s" in pushed
    assert [r["result"] for r in pushed["results"]] == ["applied", "applied", "flagged"]
    hq.call("GET", "/v1/sync/pull?cursor=0&wait=0", "/v1/sync/pull")

    customer = f"/v1/admin/customers/{CUSTOMER}"
    template = "/v1/admin/customers/{customer_id}"
    view = hq.call("GET", customer, template)
    assert view["flags"] and view["statistics"]["top_purchased_items"]
    hq.call("GET", "/v1/admin/customers?q=nov", "/v1/admin/customers")
    hq.call("PATCH", customer, template, json={"note": "edited at HQ"})
    hq.call("POST", customer + "/ban", template + "/ban", json={"reason": "fraud"})
    hq.call("POST", customer + "/unban", template + "/unban")
    hq.call("POST", "/v1/admin/identifiers/status", "/v1/admin/identifiers/status",
            json={"kind": "card", "value": CARD, "status": "lost"})
    hq.call("POST", customer + "/replace-card", template + "/replace-card",
            json={"lost": CARD, "card": "2900010000039", "reason": "lost on the bus"})
    twin = CustomerRegistered(customer_id="twin-1", card_number="2900010000046",
                              profile=Profile(kind="person", given_name="Ana", surname="N."))
    hq.call("POST", "/v1/sync/push", "/v1/sync/push", json={
        "protocol": 1, "outlet_id": "X",
        "events": [make_event("X", 4, twin).model_dump(mode="json")]})
    merged = hq.call("POST", customer + "/merge", template + "/merge",
                     json={"merged": "twin-1", "reason": "one person, two sign-ups"})
    assert merged["merged_from"] == ["twin-1"]
    mint = {"code": "M", "name": "Mint", "discount_bp": 500, "points_per_100": 100}
    hq.call("PUT", "/v1/admin/master/category", "/v1/admin/master/{kind}", json=mint)
    hq.call("DELETE", "/v1/admin/master/category/M", "/v1/admin/master/{kind}/{key}", 204)
    hq.call("GET", "/v1/admin/outlets", "/v1/admin/outlets")
    hq.call("GET", "/v1/admin/flags?all=true", "/v1/admin/flags")
    hq.call("POST", "/v1/admin/categories/assign", "/v1/admin/categories/assign",
            json={"today": "2026-09-30"})
    hq.call("POST", customer + "/adjustments", template + "/adjustments", 201,
            json={"points": -20, "credit": 150, "reason": "till error", "corrects": "sale-1"})
    hq.call("POST", "/v1/admin/points/expire", "/v1/admin/points/expire",
            json={"today": "2026-09-30"})
    made = hq.call("POST", "/v1/admin/invoices/close", "/v1/admin/invoices/close", 201,
                   json={"period_from": "2026-09-01", "period_to": "2026-10-01",
                         "issued_on": "2026-10-01"})
    number = made[0]["number"]
    invoice = "/v1/admin/invoices/{number}"
    hq.call("POST", "/v1/admin/invoices/refresh", "/v1/admin/invoices/refresh",
            json={"today": "2026-10-20"})
    hq.call("POST", f"/v1/admin/invoices/{number}/bank-payment", invoice + "/bank-payment",
            json={"amount": 290, "reference": "bank 1"})
    hq.call("GET", f"/v1/admin/invoices/{number}", invoice)
    hq.call("GET", f"/v1/admin/invoices?customer={CUSTOMER}", "/v1/admin/invoices")
    pdf = hq.call("GET", f"/v1/admin/invoices/{number}/pdf", invoice + "/pdf")
    assert pdf.startswith(b"%PDF")
    # what is still owed (10.00), paid by name and amount only: a suggestion to confirm
    statement = camt053(entries=[Ntry("10.00", booking="2026-10-21", acct_svcr_ref="B-1",
                                      txs=[Tx(debtor="Ana Novak")])])
    report = hq.call("POST", "/v1/admin/statements", "/v1/admin/statements",
                     content=statement)
    assert report["counts"]["suggested"] == 1, report
    (waiting,) = hq.call("GET", "/v1/admin/statement-matches", "/v1/admin/statement-matches")
    hq.call("POST", f"/v1/admin/statement-matches/{waiting['entry_id']}/confirm",
            "/v1/admin/statement-matches/{entry_id}/confirm")
    hq.call("GET", f"/v1/admin/mail?customer={CUSTOMER}", "/v1/admin/mail")
    settings.change(hq.chain, {"mail.from": "Club <club@example.com>",
                               "mail.public_url": "https://club.example.com"})
    letter = hq.call("POST", "/v1/admin/newsletters", "/v1/admin/newsletters", 201,
                     json={"subject": "Spring catalogue", "body": "New in spring: ...",
                           "category": "A"})
    assert letter["recipients"] == 1 and letter["decided"] == {"pending": 1}
    hq.call("GET", f"/v1/admin/newsletters/{letter['newsletter_id']}",
            "/v1/admin/newsletters/{newsletter_id}")
    built = hq.call("POST", "/v1/admin/snapshot", "/v1/admin/snapshot", 201)
    assert hq.call("GET", "/v1/sync/snapshot", "/v1/sync/snapshot") == built
    snapshot = hq.call("GET", f"/v1/sync/snapshot/{built['sha256']}",
                       "/v1/sync/snapshot/{sha256}")
    assert len(snapshot) == built["file_bytes"]
    everything = {(m, p) for p, ops in hq.doc["paths"].items() for m in ops}
    assert hq.called == everything


def test_reads_answer_what_the_domain_says_value_for_value(hq: HQ) -> None:
    hq.call("POST", "/v1/sync/push", "/v1/sync/push",
            json={"protocol": 1, "outlet_id": "X", "events": facts()})
    made = hq.call("POST", "/v1/admin/invoices/close", "/v1/admin/invoices/close", 201,
                   json={"period_from": "2026-09-01", "period_to": "2026-10-01",
                         "issued_on": "2026-10-01"})
    number = made[0]["number"]
    same = [
        ("/v1/admin/customers/{customer_id}", f"/v1/admin/customers/{CUSTOMER}",
         admin.customer_view(hq.chain, CUSTOMER)),
        ("/v1/admin/customers", "/v1/admin/customers?q=nov", admin.search(hq.chain, "nov")),
        ("/v1/admin/outlets", "/v1/admin/outlets", admin.outlets(hq.chain)),
        ("/v1/admin/flags", "/v1/admin/flags", ingest.flags(hq.chain)),
        ("/v1/admin/invoices", "/v1/admin/invoices", invoices.invoices(hq.chain)),
        ("/v1/admin/invoices/{number}", f"/v1/admin/invoices/{number}",
         invoices.invoice(hq.chain, number)),
    ]
    for template, path, domain in same:
        assert domain, path
        assert hq.call("GET", path, template) == json.loads(json.dumps(domain)), path


def test_an_organisation_s_unset_profile_fields_are_null_in_hq_s_view(hq: HQ) -> None:
    org = CustomerRegistered(customer_id="org-1", card_number="2900010000022",
                             profile=Profile(kind="organisation", name="Kovina d.o.o."))
    hq.call("POST", "/v1/sync/push", "/v1/sync/push", json={
        "protocol": 1, "outlet_id": "X",
        "events": [make_event("X", 1, org).model_dump(mode="json")]})
    view = hq.call("GET", "/v1/admin/customers/org-1", "/v1/admin/customers/{customer_id}")
    domain = admin.customer_view(hq.chain, "org-1")
    assert {k: v for k, v in view.items() if k in domain} == json.loads(json.dumps(domain))
    assert {k for k, v in view.items() if k not in domain} == \
        {k for k in CustomerView.model_fields if k not in domain}
    assert view["given_name"] is None and view["name"] == "Kovina d.o.o."


def test_hq_s_view_shows_every_stored_profile_field_but_the_picture() -> None:
    assert set(Profile.model_fields) - {"picture"} <= set(CustomerView.model_fields)
    assert "picture" not in CustomerView.model_fields
