"""Bad input at HQ's admin API: a clear `invalid_request` naming the field and what is
expected, and NOTHING changed (invariant 9). Request bodies are taken strictly: a date is
"YYYY-MM-DD" text, an amount an integer number of cents, a flag true or false.

One HQ per module (tests/hq/conftest.py `hq`, in this process); each test compares HQ's
file before and after.
"""

from __future__ import annotations

from typing import Any

import pytest
from agentkit import expect_error
from hqkit import AnyHQ, HQClient, registered, snapshot

HQ_ON_BOTH_STORES = True  # the tests using `hq` also against HQ on PostgreSQL


def refused(hq: AnyHQ, method: str, path: str, message: str, **kw: Any) -> None:
    before = snapshot(hq)
    customers = hq.rows("SELECT * FROM customers ORDER BY customer_id")
    master = hq.rows("SELECT * FROM master ORDER BY kind, key")
    error = expect_error(hq.admin(method, path, None, **kw), 422, "invalid_request")
    assert error["message"].startswith(message), error
    assert snapshot(hq) == before
    assert hq.rows("SELECT * FROM customers ORDER BY customer_id") == customers
    assert hq.rows("SELECT * FROM master ORDER BY kind, key") == master


@pytest.fixture(scope="module")
def customer_id(hq: AnyHQ) -> str:
    client = HQClient(hq, "B", hq.tokens["B"])
    who = registered("Strict")
    client.pushed(client.events(who))
    return who.customer_id


@pytest.mark.parametrize("path, body, message", [
    ("/v1/admin/invoices/refresh", {"today": 0},
     "today: expected a date as YYYY-MM-DD, got an integer"),
    ("/v1/admin/invoices/refresh", {"today": "0001-01-01"},
     "today: expected a date between 1970-01-01 and 2999-12-31"),
    ("/v1/admin/invoices/refresh", {"today": "2026-02-30"},
     "today: 2026-02-30 is not a date on the calendar"),
    ("/v1/admin/invoices/refresh", {"today": "2026-05-01T00:00:00"},
     "today: expected a date as YYYY-MM-DD, got a string"),
    ("/v1/admin/categories/assign", {"today": 20260501},
     "today: expected a date as YYYY-MM-DD, got an integer"),
    ("/v1/admin/invoices/close", {"period_from": "2026-05-01", "period_to": 0,
                                  "issued_on": "2026-06-01"},
     "period_to: expected a date as YYYY-MM-DD, got an integer"),
    ("/v1/admin/identifiers/status", {"kind": "", "value": "2900010000015", "status": "lost"},
     "kind: expected 'card', 'magstripe'"),
    ("/v1/admin/invoices/X-1/bank-payment", {"amount": "1290", "reference": "bank 1"},
     "amount: expected an integer amount in cents, got a string"),
    ("/v1/admin/invoices/X-1/bank-payment", {"amount": 12.5, "reference": "bank 1"},
     "amount: expected an integer amount in cents, got a number with a fraction"),
])
def test_admin_bodies_are_taken_strictly_and_change_nothing(
        hq: AnyHQ, path: str, body: dict[str, Any], message: str) -> None:
    refused(hq, "POST", path, message, json=body)


@pytest.mark.parametrize("changes, message", [
    ({"email_consent": 0}, "email_consent: expected true or false, got an integer"),
    ({"date_of_birth": "0000-99-99"}, "date_of_birth: 0000-99-99 is not a date on the calendar"),
    ({"date_of_birth": "1850-01-01"}, "date_of_birth: expected a date of birth between"),
    ({"category": 3}, "category: expected a string, got an integer"),
    ({"shoe_size": 44}, "shoe_size: unknown field"),
    # the till's profile checks hold at HQ too (one ProfileIn)
    ({"email": "ana(at)example.com"}, "email: expected an e-mail address"),
    ({"given_name": ""}, "given_name: must not be empty"),
    ({"picture": "abc"}, "picture: must be base64-encoded PNG or JPEG"),
    ({"picture": "@@not base64@@"}, "picture: must be base64-encoded PNG or JPEG"),
])
def test_a_customer_edit_at_hq_is_taken_strictly_and_changes_nothing(
        hq: AnyHQ, customer_id: str, changes: dict[str, Any], message: str) -> None:
    refused(hq, "PATCH", f"/v1/admin/customers/{customer_id}", message, json=changes)
    edited = hq.admin("PATCH", f"/v1/admin/customers/{customer_id}",
                      json={"date_of_birth": "1990-05-01", "email_consent": True})
    assert (edited["date_of_birth"], edited["email_consent"]) == ("1990-05-01", 1)


def test_master_data_is_taken_strictly(hq: AnyHQ) -> None:
    gift = {"sku": "GIFT-STRICT", "name": "Strict mug", "points_cost": "500"}
    refused(hq, "PUT", "/v1/admin/master/gift", "points_cost: expected an integer, got a string",
            json=gift)
    refused(hq, "PUT", "/v1/admin/master/gift", "sku: expected a code of 1 to 40",
            json={**gift, "sku": "no spaces", "points_cost": 500})
    assert hq.admin("PUT", "/v1/admin/master/gift", json={**gift, "points_cost": 500}) == \
        {"kind": "gift", "key": "GIFT-STRICT"}
    action = {"action_id": "STRICT", "name": "Strict days", "discount_bp": 500,
              "valid_from": "2026-01-01T00:00:00Z", "valid_to": "2026-12-31T00:00:00Z"}
    assert hq.admin("PUT", "/v1/admin/master/action", json=action)["key"] == "STRICT"


def test_a_body_that_is_not_utf8_or_not_json_says_so(hq: AnyHQ) -> None:
    path = "/v1/admin/invoices/refresh"
    json_type = {"Content-Type": "application/json"}
    refused(hq, "POST", path, "body: must be UTF-8 encoded JSON",
            data='{"today": "2026-05-01", "x": "é"}'.encode("latin-1"), headers=json_type)
    refused(hq, "POST", path, "body is not valid JSON: ", data=b'{"today": }', headers=json_type)
    refused(hq, "POST", path, "the body is not taken as JSON: send it as JSON with the header "
            "Content-Type: application/json", data=b'{"today": "2026-05-01"}')


def test_a_token_without_the_bearer_scheme_is_refused(hq: AnyHQ) -> None:
    answer = hq.session().get(hq.url + "/v1/admin/outlets", timeout=10,
                              headers={"Authorization": hq.admin_token})
    assert "Bearer" in expect_error(answer, 401, "unauthorized")["message"]


@pytest.mark.parametrize("path, body, field", [
    ("/v1/admin/invoices/refresh", {"today": "0001-01-01"}, "today"),
    ("/v1/admin/invoices/refresh", {"today": "9999-12-31"}, "today"),
    ("/v1/admin/categories/assign", {"today": "0001-01-01"}, "today"),
    ("/v1/admin/categories/assign", {"today": "9999-12-31"}, "today"),
    ("/v1/admin/invoices/close", {"period_from": "2026-12-01", "period_to": "2027-01-01",
                                  "issued_on": "9999-12-31"}, "issued_on"),
    ("/v1/admin/invoices/close", {"period_from": "0001-01-01", "period_to": "2026-01-01",
                                  "issued_on": "2026-01-01"}, "period_from"),
])
def test_a_date_at_the_end_of_the_calendar_is_invalid_request_naming_the_field(
        hq: AnyHQ, path: str, body: dict[str, Any], field: str) -> None:
    before = snapshot(hq)
    error = expect_error(hq.admin("POST", path, None, json=body), 422, "invalid_request")
    assert error["message"].startswith(f"{field}: "), error
    assert snapshot(hq) == before
