"""The till API of docs/till-api.md, against the agent `loyalty agent serve` builds.

The agent answers in this process (tests/conftest.py `agent`: the same app, a TestClient
instead of uvicorn, a real SQLite file); the tests parametrized with TIERS run again
against a real agent process over HTTP (the slow tier). Every refusal is checked for its
status, its stable code, the contract's error shape, and that it changed nothing in the
agent's SQLite file (outbox and affected tables).
"""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import pytest
from agentkit import (
    LOYALTY,
    AnyAgent,
    Till,
    connect,
    db_state,
    expect_error,
    line,
    set_customer_status,
)
from testkit.inprocess import TIERS

CONTRACT_PATHS = {
    "/v1/status": "get",
    "/v1/customers": "post",
    "/v1/customers/{customer_id}": "get",
    "/v1/identify": "post",
    "/v1/quotes": "post",
    "/v1/sales": "post",
    "/v1/redemptions": "post",
    "/v1/tills/{till_id}/identification": "get",
}


def ean13_ok(number: str) -> bool:
    """EAN-13 check, written here independently of agent.cardnumber."""
    if len(number) != 13 or not number.isdigit():
        return False
    digits = [int(c) for c in number]
    weighted = sum(d * (1 if i % 2 == 0 else 3) for i, d in enumerate(digits[:12]))
    return (weighted + digits[12]) % 10 == 0


def outbox_events(agent: AnyAgent, type_: str | None = None) -> list[dict[str, Any]]:
    conn = connect(agent.db)
    try:
        rows = conn.execute("SELECT event FROM outbox ORDER BY seq").fetchall()
    finally:
        conn.close()
    events = [json.loads(r[0]) for r in rows]
    return [e for e in events if type_ is None or e["type"] == type_]


def sale_rows(agent: AnyAgent, sale_id: str) -> int:
    conn = connect(agent.db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM sales WHERE sale_id = ?",
                                (sale_id,)).fetchone()[0])
    finally:
        conn.close()


def earn_points(till: Till, card: str, at_least: int) -> None:
    """Buys until the card has `at_least` points (category A earns 2 points per 1.00)."""
    while True:
        sale = till.sold(card, [line(f"EARN-{uuid.uuid4().hex[:8]}", 100_000)])
        if sale["points_balance"] >= at_least:
            return


# --- discovery ---------------------------------------------------------------------------

def test_openapi_document_lists_every_contract_path(till: Till) -> None:
    doc = till.ok("GET", "/openapi.json")
    for path, method in CONTRACT_PATHS.items():
        assert path in doc["paths"], path
        assert method in doc["paths"][path], (path, method)


def test_status_has_the_contract_fields(till: Till) -> None:
    status = till.ok("GET", "/v1/status")
    for key in ("outlet_id", "pending_events", "last_sync_at", "last_sync_error", "cursor"):
        assert key in status
    assert status["outlet_id"] == "T"
    assert isinstance(status["pending_events"], int) and status["pending_events"] >= 0


def test_status_pending_events_counts_new_facts(till: Till) -> None:
    before = till.ok("GET", "/v1/status")["pending_events"]
    card = till.register()["card_number"]
    till.sold(card, [line("P-1", 1000)])
    # registration + sale are two facts, each pending until HQ has it
    assert till.ok("GET", "/v1/status")["pending_events"] == before + 2


def test_unknown_path_and_wrong_method_have_the_error_shape(till: Till) -> None:
    expect_error(till.get("/v1/nothing-here"), 404, "not_found")
    wrong = till.request("DELETE", "/v1/sales")
    expect_error(wrong, 405, "method_not_allowed")
    assert wrong.headers.get("Allow") == "POST", dict(wrong.headers)  # what would do


# --- customers -------------------------------------------------------------------------

def test_register_person_returns_customer_id_and_valid_ean13_card(
        till: Till, agent: AnyAgent) -> None:
    joined = till.ok("POST", "/v1/customers", 201, json={
        "kind": "person", "given_name": "Ana", "surname": "Novak", "address": "Main 1",
        "phone": "+386 1 111", "email": "ana@example.com", "email_consent": True,
        "date_of_birth": "1990-02-03", "room": "12a", "preferences": "vegetarian"})
    assert set(joined) >= {"customer_id", "card_number"}
    assert ean13_ok(joined["card_number"]), joined["card_number"]
    profile = till.ok("GET", f"/v1/customers/{joined['customer_id']}")
    assert profile["given_name"] == "Ana" and profile["surname"] == "Novak"
    assert profile["email_consent"] is True and profile["date_of_birth"] == "1990-02-03"
    assert profile["status"] == "approved"
    assert profile["category"] == "D"  # the default: the lowest category
    assert {"kind": "card", "value": joined["card_number"], "status": "active"} in profile[
        "identifiers"]
    registered = [e for e in outbox_events(agent, "customer.registered")
                  if e["body"]["customer_id"] == joined["customer_id"]]
    assert len(registered) == 1


def test_register_organisation(till: Till) -> None:
    joined = till.ok("POST", "/v1/customers", 201, json={
        "kind": "organisation", "name": "Hotel Lipa", "business_domain": "hospitality",
        "contact_person": "Marko", "category": "B", "note": "invoice monthly"})
    assert ean13_ok(joined["card_number"])
    profile = till.ok("GET", f"/v1/customers/{joined['customer_id']}")
    assert profile["kind"] == "organisation" and profile["name"] == "Hotel Lipa"
    assert profile["business_domain"] == "hospitality" and profile["contact_person"] == "Marko"
    assert profile["category"] == "B"
    who = till.ok("POST", "/v1/identify", json={"kind": "card", "value": joined["card_number"]})
    assert who["display_name"] == "Hotel Lipa"


def test_card_numbers_of_successive_registrations_are_distinct(till: Till) -> None:
    cards = {till.register()["card_number"] for _ in range(5)}
    assert len(cards) == 5 and all(ean13_ok(c) for c in cards)


def test_unknown_customer_id_is_customer_unknown(till: Till) -> None:
    expect_error(till.get(f"/v1/customers/{uuid.uuid4()}"), 404, "customer_unknown")


def test_search_finds_customers_by_surname(till: Till) -> None:
    surname = f"Zz{uuid.uuid4().hex[:6]}"
    joined = till.register(surname=surname)
    found = till.ok("GET", "/v1/customers", params={"q": surname.lower()[:5]})
    assert joined["customer_id"] in [c["customer_id"] for c in found]


@pytest.mark.parametrize("body, why", [
    ({"kind": "person", "given_name": "A"}, "a person without surname"),
    ({"kind": "organisation", "business_domain": "x"}, "an organisation without name"),
    ({"given_name": "A", "surname": "B"}, "no kind"),
    ({"kind": "alien", "given_name": "A", "surname": "B"}, "unknown kind"),
    ({"kind": "person", "given_name": "A", "surname": "B", "shoe_size": 44}, "unknown field"),
    ({"kind": "person", "given_name": "A", "surname": "B", "note": "x" * 1025}, "note too long"),
    ({"kind": "person", "given_name": "A", "surname": "B", "category": "Z"}, "unknown category"),
    ({"kind": "person", "given_name": "A", "surname": "B", "email": "no-at-sign"}, "bad e-mail"),
    ({"kind": "person", "given_name": "A", "surname": "B", "pin": "12"}, "short PIN"),
])
def test_bad_registration_is_invalid_request_and_changes_nothing(
        till: Till, agent: AnyAgent, body: dict[str, Any], why: str) -> None:
    before = db_state(agent.db)
    expect_error(till.post("/v1/customers", body), 422, "invalid_request")
    assert db_state(agent.db) == before, why


def test_note_of_1024_characters_is_kept_and_1025_refused_on_edit(
        till: Till, agent: AnyAgent) -> None:
    joined = till.register(note="n" * 1024)
    cid = joined["customer_id"]
    assert till.ok("GET", f"/v1/customers/{cid}")["note"] == "n" * 1024
    before = db_state(agent.db)
    expect_error(till.request("PATCH", f"/v1/customers/{cid}", json={"note": "m" * 1025}),
                 422, "invalid_request")
    assert db_state(agent.db) == before
    edited = till.ok("PATCH", f"/v1/customers/{cid}", json={"note": "short"})
    assert edited["note"] == "short"


# --- identification --------------------------------------------------------------------

def test_identify_by_card_records_a_visit(till: Till, agent: AnyAgent) -> None:
    joined = till.register(given_name="Vida", surname="Visit", category="C")
    before = db_state(agent.db)
    who = till.ok("POST", "/v1/identify",
                  json={"kind": "card", "value": joined["card_number"], "till_id": "T1"})
    assert who == {**who, "customer_id": joined["customer_id"], "display_name": "Vida Visit",
                   "status": "approved", "category": "C", "points_balance": 0}
    after = db_state(agent.db)
    assert after["visits"] == before["visits"] + 1
    assert after["outbox"] == before["outbox"] + 1
    visit = outbox_events(agent)[-1]
    assert visit["type"] == "visit.recorded"
    assert visit["body"] == {"customer_id": joined["customer_id"], "till_id": "T1", "via": "card"}


def unique_identifier(kind: str) -> tuple[str, str]:
    """(value as stored at the desk, the same value as a reader or caller ID presents it)."""
    n = uuid.uuid4().int
    if kind == "magstripe":
        track = f";{n % 10**16:016d}=2512101?"
        return track, track
    if kind == "phone":
        digits = f"{n % 10**7:07d}"
        return f"+386 1 {digits[:3]} {digits[3:]}", f"+386-1-{digits}"
    if kind == "smartcard":
        uid = f"{n % 16**8:08x}"
        return ":".join(uid[i:i + 2] for i in range(0, 8, 2)), uid.upper()
    if kind == "room":
        return f"{n % 1000}a", f"{n % 1000}A"
    value = f"{kind.upper()}-{n % 10**9}"
    return value, value


@pytest.mark.parametrize("kind", ["magstripe", "barcode", "phone", "smartcard", "key", "room"])
def test_identify_by_an_added_identifier(till: Till, agent: AnyAgent,
                                         kind: str) -> None:
    joined = till.register()
    stored, presented = unique_identifier(kind)
    till.ok("POST", f"/v1/customers/{joined['customer_id']}/identifiers", 201,
            json={"kind": kind, "value": stored})
    before = db_state(agent.db)
    who = till.ok("POST", "/v1/identify", json={"kind": kind, "value": presented, "till_id": "T1"})
    assert who["customer_id"] == joined["customer_id"]
    assert db_state(agent.db)["visits"] == before["visits"] + 1


def test_a_bare_card_value_also_finds_a_magstripe_card(till: Till) -> None:
    joined = till.register()
    track = f";{uuid.uuid4().int % 10**16:016d}=2601?"
    till.ok("POST", f"/v1/customers/{joined['customer_id']}/identifiers", 201,
            json={"kind": "magstripe", "value": track})
    who = till.ok("POST", "/v1/identify", json={"kind": "card", "value": track})
    assert who["customer_id"] == joined["customer_id"]
    # ... and a sale can name the customer by that card too
    sale = till.sold(track, [line("MS-1", 500)])
    assert sale["customer_id"] == joined["customer_id"]


def test_an_identifier_of_another_customer_is_a_conflict(till: Till,
                                                         agent: AnyAgent) -> None:
    first, second = till.register(), till.register()
    value = f"BC-{uuid.uuid4().hex}"
    till.ok("POST", f"/v1/customers/{first['customer_id']}/identifiers", 201,
            json={"kind": "barcode", "value": value})
    before = db_state(agent.db)
    expect_error(till.post(f"/v1/customers/{second['customer_id']}/identifiers",
                           {"kind": "barcode", "value": value}), 409, "conflict")
    assert db_state(agent.db) == before


def test_unknown_card_is_card_unknown_and_never_creates_a_customer(
        till: Till, agent: AnyAgent) -> None:
    before = db_state(agent.db)
    for value in ("2999999999994", "not-a-card", "0000"):
        error = expect_error(till.post("/v1/identify", {"kind": "card", "value": value}),
                             404, "card_unknown")
        assert value not in json.dumps(error) or len(value) <= 4
    expect_error(till.post("/v1/quotes", {"card": "2999999999994", "lines": [line("X", 1)]}),
                 404, "card_unknown")
    expect_error(till.post("/v1/sales", {"card": "2999999999994", "lines": [line("X", 100)],
                                         "payments": [{"mode": "cash", "amount": 100}]}),
                 404, "card_unknown")
    assert db_state(agent.db) == before


def test_card_with_a_wrong_check_digit_is_unknown(till: Till) -> None:
    card = till.register()["card_number"]
    wrong = card[:12] + str((int(card[12]) + 1) % 10)
    error = expect_error(till.post("/v1/identify", {"kind": "card", "value": wrong}),
                         404, "card_unknown")
    assert card not in error["message"] and wrong not in json.dumps(error)


# --- quotes ----------------------------------------------------------------------------

def test_quote_lines_and_totals_add_up(till: Till) -> None:
    card = till.register(category="B")["card_number"]
    lines = [line("W-1", 1290, 2, "Merlot", "wine"), line("B-1", 450), line("C-1", 2399, 3)]
    quote = till.quote(card, lines)
    assert quote["quote_id"] and len(quote["lines"]) == 3
    for asked, priced in zip(lines, quote["lines"], strict=True):
        assert priced["sku"] == asked["sku"] and priced["qty"] == asked["qty"]
        assert priced["gross"] == asked["qty"] * asked["unit_price"]
        assert 0 <= priced["discount"] <= priced["gross"]
        assert priced["net"] == priced["gross"] - priced["discount"]
        assert priced["actions"] if priced["discount"] else True
    assert quote["total_gross"] == sum(ln["gross"] for ln in quote["lines"])
    assert quote["total_discount"] == sum(ln["discount"] for ln in quote["lines"])
    assert quote["total_net"] == sum(ln["net"] for ln in quote["lines"])
    assert quote["total_gross"] == quote["total_discount"] + quote["total_net"]
    assert isinstance(quote["points_to_earn"], int) and quote["points_to_earn"] > 0
    assert all(isinstance(x, str) and len(x) <= 40 for x in quote["receipt_lines"])
    assert all(card not in x for x in quote["receipt_lines"])
    # category B (7 %) and the wine week action (15 %) are named where they apply
    assert any("wine" in a.lower() for a in quote["lines"][0]["actions"])


def test_quote_changes_nothing(till: Till, agent: AnyAgent) -> None:
    card = till.register()["card_number"]
    before = db_state(agent.db)
    till.quote(card, [line("Q-1", 1000)])
    assert db_state(agent.db) == before


# --- sales -----------------------------------------------------------------------------

def assert_receipt(lines: list[str], card: str) -> None:
    assert lines, "a receipt has lines"
    for text in lines:
        assert isinstance(text, str) and len(text) <= 40, text
        assert card not in text, text
    assert any(card[-4:] in text and "*" in text for text in lines), lines


@pytest.mark.parametrize("agent", TIERS, indirect=True)
def test_sale_by_quote_id_sells_what_was_quoted(till: Till, agent: AnyAgent) -> None:
    joined = till.register(category="A")
    card = joined["card_number"]
    quote = till.quote(card, [line("S-1", 2500, 2), line("S-2", 999, 1, "Wine", "wine")])
    before = db_state(agent.db)
    sale = till.ok("POST", "/v1/sales", 201, headers={"Idempotency-Key": str(uuid.uuid4())},
                   json={"quote_id": quote["quote_id"], "till_id": "T1",
                         "payments": [{"mode": "card", "amount": quote["total_net"]}]})
    assert sale["total_net"] == quote["total_net"]
    assert sale["points_earned"] == quote["points_to_earn"]
    assert sale["points_balance"] == quote["points_to_earn"]
    assert_receipt(sale["receipt_lines"], card)
    assert any(str(sale["points_earned"]) in x and "earned" in x.lower()
               for x in sale["receipt_lines"])
    after = db_state(agent.db)
    assert after["sales"] == before["sales"] + 1
    assert after["sale_lines"] == before["sale_lines"] + 2
    assert after["outbox"] == before["outbox"] + 1
    event = outbox_events(agent)[-1]
    assert event["type"] == "sale.recorded" and event["body"]["sale_id"] == sale["sale_id"]
    assert event["body"]["total_net"] == quote["total_net"]


def test_sale_by_card_and_lines(till: Till) -> None:
    joined = till.register(category="C")
    card = joined["card_number"]
    lines = [line("L-1", 1000, 3)]
    quote = till.quote(card, lines)
    sale = till.ok("POST", "/v1/sales", 201, json={
        "card": card, "lines": lines, "till_id": "T2",
        "payments": [{"mode": "cash", "amount": 1000}, {"mode": "card",
                                                        "amount": quote["total_net"] - 1000}]})
    assert sale["total_net"] == quote["total_net"] == 3000 - quote["total_discount"]
    assert sale["customer_id"] == joined["customer_id"]
    assert_receipt(sale["receipt_lines"], card)
    profile = till.ok("GET", f"/v1/customers/{joined['customer_id']}")
    assert profile["points_balance"] == sale["points_balance"] == sale["points_earned"] > 0


def test_quote_id_unknown_is_refused(till: Till, agent: AnyAgent) -> None:
    before = db_state(agent.db)
    expect_error(till.post("/v1/sales", {"quote_id": "no-such-quote", "payments": [
        {"mode": "cash", "amount": 1}]}), 404, "quote_unknown")
    assert db_state(agent.db) == before


@pytest.mark.parametrize("quote_id", ["", "   ", "\t"])
def test_an_empty_quote_id_without_lines_is_invalid_request_naming_the_field(
        till: Till, agent: AnyAgent, quote_id: str) -> None:
    card = till.register()["card_number"]
    before = db_state(agent.db)
    for body in ({"quote_id": quote_id, "payments": [{"mode": "cash", "amount": 100}]},
                 {"quote_id": quote_id, "card": card,
                  "payments": [{"mode": "cash", "amount": 100}]}):
        error = expect_error(till.post("/v1/sales", body), 422, "invalid_request")
        assert "quote_id" in error["message"], error
    assert db_state(agent.db) == before


def test_idempotency_key_returns_the_same_sale_once(till: Till,
                                                     agent: AnyAgent) -> None:
    card = till.register()["card_number"]
    key = f"pos-{uuid.uuid4()}"
    lines = [line("I-1", 1234, 2)]
    first = till.sell(card, lines, key=key)
    assert first.status_code == 201, first.text
    before = db_state(agent.db)
    again = till.sell(card, lines, key=key)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    assert db_state(agent.db) == before
    sale_id = first.json()["sale_id"]
    assert sale_rows(agent, sale_id) == 1
    events = [e for e in outbox_events(agent, "sale.recorded")
              if e["body"]["sale_id"] == sale_id]
    assert len(events) == 1


@pytest.mark.parametrize("agent", TIERS, indirect=True)
def test_the_same_key_sent_concurrently_makes_one_sale(till: Till, agent: AnyAgent) -> None:
    card = till.register()["card_number"]
    lines = [line("CC-1", 777)]
    total = till.quote(card, lines)["total_net"]
    key = f"race-{uuid.uuid4()}"
    before = db_state(agent.db)
    answers: list[Any] = []

    def post() -> None:  # each thread its own connection
        answers.append(agent.till().post("/v1/sales", headers={"Idempotency-Key": key},
                                         json={"card": card, "lines": lines,
                                               "payments": [{"mode": "cash", "amount": total}]}))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [201] * 6
    assert len({a.json()["sale_id"] for a in answers}) == 1
    after = db_state(agent.db)
    assert after["sales"] == before["sales"] + 1 and after["outbox"] == before["outbox"] + 1


def test_idempotency_key_with_a_different_body_is_a_conflict(
        till: Till, agent: AnyAgent) -> None:
    card = till.register()["card_number"]
    key = f"pos-{uuid.uuid4()}"
    first = till.sold(card, [line("K-1", 1000)], key=key)
    before = db_state(agent.db)
    expect_error(till.sell(card, [line("K-1", 1000, 2)], key=key), 409, "idempotency_conflict")
    assert db_state(agent.db) == before
    assert sale_rows(agent, first["sale_id"]) == 1


def test_payments_not_adding_up_are_payment_mismatch(till: Till,
                                                     agent: AnyAgent) -> None:
    card = till.register()["card_number"]
    lines = [line("M-1", 1000)]
    total = till.quote(card, lines)["total_net"]
    before = db_state(agent.db)
    for paid in (total - 1, total + 1, 0):
        error = expect_error(till.sell(card, lines, payments=[{"mode": "cash", "amount": paid}],
                                       key=str(uuid.uuid4())), 422, "payment_mismatch")
        # money as money, as on the receipt (not cents without a unit)
        assert error["message"] == (f"payments add up to {paid // 100}.{paid % 100:02d}, "
                                    f"the sale is {total // 100}.{total % 100:02d}"), error
        assert error["context"] == {"total_net": total, "paid": paid}
    assert db_state(agent.db) == before


def test_credit_in_category_d_is_refused_and_nothing_written(
        till: Till, agent: AnyAgent) -> None:
    joined = till.register(category="D")
    card = joined["card_number"]
    lines = [line("CR-1", 1000)]
    before = db_state(agent.db)
    error = expect_error(till.sell(card, lines, mode="credit", key=str(uuid.uuid4())),
                         402, "credit_limit_exceeded")
    assert card not in json.dumps(error)
    assert db_state(agent.db) == before
    assert till.ok("GET", f"/v1/customers/{joined['customer_id']}")["credit_balance"] == 0


def test_credit_in_category_a_is_allowed_up_to_its_limit(
        till: Till, agent: AnyAgent) -> None:
    joined = till.register(category="A")
    card, cid = joined["card_number"], joined["customer_id"]
    profile = till.ok("GET", f"/v1/customers/{cid}")
    assert profile["credit_limit"] == 500_000
    big = till.sold(card, [line("CR-BIG", 500_000)], mode="credit")  # 450,000.. after 10 %
    assert big["total_net"] <= 500_000
    owed = big["total_net"]
    assert till.ok("GET", f"/v1/customers/{cid}")["credit_balance"] == owed
    over = [line("CR-OVER", 2 * (500_000 - owed))]  # nets well over what is left
    before = db_state(agent.db)
    expect_error(till.sell(card, over, mode="credit"), 402, "credit_limit_exceeded")
    # part credit beyond the limit, the rest cash: still refused
    total = till.quote(card, over)["total_net"]
    rest = 500_000 - owed
    expect_error(till.sell(card, over, payments=[
        {"mode": "credit", "amount": rest + 1}, {"mode": "cash", "amount": total - rest - 1}]),
        402, "credit_limit_exceeded")
    assert db_state(agent.db) == before
    # exactly up to the limit is fine
    till.sold(card, over, payments=[
        {"mode": "credit", "amount": rest}, {"mode": "cash", "amount": total - rest}])
    profile = till.ok("GET", f"/v1/customers/{cid}")
    assert profile["credit_balance"] == 500_000 and profile["credit_available"] == 0
    expect_error(till.sell(card, [line("CR-ONE", 100)], mode="credit"), 402,
                 "credit_limit_exceeded")


# --- statistics ------------------------------------------------------------------------

def half_up(value: Fraction) -> int:
    return int((value * 2 + 1) // 2)


def test_customer_statistics_match_the_sales_made(till: Till,
                                                  agent: AnyAgent) -> None:
    joined = till.register(category="A", given_name="Stat", surname="Istic")
    card, cid = joined["card_number"], joined["customer_id"]
    # 14 distinct SKUs with distinct prices, some bought in several sales
    prices = {f"SKU-{i:02d}": 1000 + 137 * i for i in range(14)}
    qtys = {sku: 1 + (i * 5) % 7 for i, sku in enumerate(prices)}
    baskets = [
        [line(s, prices[s], qtys[s], f"Name {s}") for s in list(prices)[:6]],
        [line(s, prices[s], qtys[s], f"Name {s}") for s in list(prices)[6:]],
        [line("SKU-00", prices["SKU-00"], 4, "Name SKU-00"),
         line("SKU-13", prices["SKU-13"], 1, "Name SKU-13", "wine")],
        [line("BIG", 90_000, 1, "Big one")],
    ]
    payments_modes = ["cash", "card", "credit", "card"]
    sales = []
    for basket, mode in zip(baskets, payments_modes, strict=True):
        sales.append(till.sold(card, basket, mode=mode, key=str(uuid.uuid4())))
    earned = sum(s["points_earned"] for s in sales)
    gift = till.ok("POST", "/v1/redemptions", 201, json={
        "card": card, "gift_sku": "GIFT-MUG", "qty": 2, "till_id": "T1"})
    assert gift["points_spent"] == 1000

    profile = till.ok("GET", f"/v1/customers/{cid}")
    stats = profile["statistics"]
    total_net = sum(s["total_net"] for s in sales)
    bought: dict[str, int] = {}
    for basket in baskets:
        for ln in basket:
            bought[ln["sku"]] = bought.get(ln["sku"], 0) + ln["qty"]
    unit = {**prices, "BIG": 90_000}
    items = sum(bought.values())
    credit = sales[2]["total_net"]
    best = max(sales, key=lambda s: s["total_net"])

    assert stats["total_purchases"] == total_net
    assert stats["purchases_count"] == 4
    assert stats["total_points_earned"] == earned > 0
    assert stats["total_points_used"] == 1000
    assert stats["points_balance"] == profile["points_balance"] == earned - 1000
    assert gift["points_balance"] == earned - 1000
    assert stats["total_discount"] == sum(s["total_discount"] for s in sales) > 0
    assert stats["paid_by_mode"] == {"cash": sales[0]["total_net"],
                                     "card": sales[1]["total_net"] + sales[3]["total_net"],
                                     "credit": credit}
    assert stats["credit_outstanding"] == {"credit": credit}
    assert profile["credit_balance"] == credit
    assert stats["items_bought"] == items
    assert stats["average_item_value"] == half_up(Fraction(total_net, items))
    assert stats["most_expensive_purchase"] == {"sale_id": best["sale_id"],
                                                "total": best["total_net"]}
    top_price = sorted(unit, key=lambda s: (-unit[s], s))[:10]
    assert [i["sku"] for i in stats["top_expensive_items"]] == top_price
    assert [i["unit_price"] for i in stats["top_expensive_items"]] == [unit[s] for s in top_price]
    top_qty = sorted(bought, key=lambda s: (-bought[s], s))[:10]
    assert [i["sku"] for i in stats["top_purchased_items"]] == top_qty
    assert [i["qty"] for i in stats["top_purchased_items"]] == [bought[s] for s in top_qty]
    assert stats["top_purchased_items"][0]["name"] == f"Name {top_qty[0]}"
    assert stats["gifts_collected"] == 2 and stats["gifts"] == {"GIFT-MUG": 2}

    conn = connect(agent.db)
    try:
        last_at = conn.execute("SELECT at FROM sales WHERE sale_id = ?",
                               (sales[-1]["sale_id"],)).fetchone()[0]
    finally:
        conn.close()
    assert stats["last_purchase_at"] == last_at
    when = datetime.fromisoformat(last_at)
    assert when.tzinfo is not None and when.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs((datetime.now(UTC) - when).total_seconds()) < 60


# --- gifts -----------------------------------------------------------------------------

def test_redemption_takes_points_and_stock_together(till: Till,
                                                   agent: AnyAgent) -> None:
    joined = till.register(category="A")
    card = joined["card_number"]
    earn_points(till, card, 800)
    balance = till.ok("GET", f"/v1/customers/{joined['customer_id']}")["points_balance"]
    stock = {g["sku"]: g for g in till.ok("GET", "/v1/gifts")}
    before = db_state(agent.db)
    key = str(uuid.uuid4())
    first = till.post("/v1/redemptions", headers={"Idempotency-Key": key},
                      json={"card": card, "gift_sku": "GIFT-TOTE", "qty": 1, "till_id": "T1"})
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    gift = first.json()
    assert gift["points_spent"] == stock["GIFT-TOTE"]["points_cost"] == 800
    assert gift["points_balance"] == balance - 800
    assert_receipt(gift["receipt_lines"], card)
    assert any("800" in x for x in gift["receipt_lines"])
    after = db_state(agent.db)
    assert after["gift_stock"]["GIFT-TOTE"] == before["gift_stock"]["GIFT-TOTE"] - 1
    assert after["redemptions"] == before["redemptions"] + 1
    assert after["outbox"] == before["outbox"] + 1
    assert outbox_events(agent)[-1]["type"] == "gift.redeemed"
    # the same key again hands out nothing more, and says it is a replay, as a sale does
    again = till.post("/v1/redemptions", headers={"Idempotency-Key": key},
                      json={"card": card, "gift_sku": "GIFT-TOTE", "qty": 1, "till_id": "T1"})
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == gift
    assert db_state(agent.db) == after


def test_redemption_with_insufficient_points_changes_nothing(
        till: Till, agent: AnyAgent) -> None:
    card = till.register(category="D")["card_number"]
    till.sold(card, [line("IP-1", 10_000)])  # about 100 points
    before = db_state(agent.db)
    error = expect_error(till.post("/v1/redemptions", {"card": card, "gift_sku": "GIFT-MUG"}),
                         402, "insufficient_points")
    assert error["context"]["points_needed"] == 500
    assert db_state(agent.db) == before


def test_redemption_of_an_unknown_gift_is_gift_unknown(till: Till,
                                                       agent: AnyAgent) -> None:
    card = till.register()["card_number"]
    before = db_state(agent.db)
    expect_error(till.post("/v1/redemptions", {"card": card, "gift_sku": "NO-SUCH-GIFT"}),
                 404, "gift_unknown")
    assert db_state(agent.db) == before


def test_redemption_is_refused_out_of_stock_once_stock_runs_out(
        till: Till, agent: AnyAgent) -> None:
    sku = "GIFT-COFFEE"
    have = {g["sku"]: g["stock"] for g in till.ok("GET", "/v1/gifts")}[sku]
    assert have >= 1
    moved = till.ok("POST", f"/v1/gifts/{sku}/stock",
                    json={"qty": -(have - 1), "reason": "transfer_out", "reference": "test"}) \
        if have > 1 else {"stock": 1}
    assert moved["stock"] == 1
    # stock never goes below zero by a move either
    expect_error(till.post(f"/v1/gifts/{sku}/stock", {"qty": -2, "reason": "correction"}),
                 409, "out_of_stock")
    card = till.register(category="A")["card_number"]
    earn_points(till, card, 2500)
    till.ok("POST", "/v1/redemptions", 201, json={"card": card, "gift_sku": sku})
    before = db_state(agent.db)
    assert before["gift_stock"][sku] == 0
    expect_error(till.post("/v1/redemptions", {"card": card, "gift_sku": sku}), 409,
                 "out_of_stock")
    assert db_state(agent.db) == before
    # receiving stock makes it available again
    till.ok("POST", f"/v1/gifts/{sku}/stock", json={"qty": 5, "reason": "receipt"})
    till.ok("POST", "/v1/redemptions", 201, json={"card": card, "gift_sku": sku})


# --- refusals by status ----------------------------------------------------------------

@pytest.mark.parametrize("status, code", [("blocked", "card_blocked"), ("lost", "card_lost")])
def test_blocked_or_lost_card_is_refused_at_identify_and_sale(
        till: Till, agent: AnyAgent, status: str, code: str) -> None:
    joined = till.register(category="A")
    card = joined["card_number"]
    earn_points(till, card, 500)
    lines = [line("BL-1", 1000)]
    quote = till.quote(card, lines)  # taken before the card was reported
    till.ok("POST", "/v1/identifiers/status",
            json={"kind": "card", "value": card, "status": status})
    before = db_state(agent.db)
    expect_error(till.post("/v1/identify", {"kind": "card", "value": card}), 403, code)
    expect_error(till.post("/v1/quotes", {"card": card, "lines": lines}), 403, code)
    expect_error(till.post("/v1/sales", {"card": card, "lines": lines, "payments": [
        {"mode": "cash", "amount": quote["total_net"]}]}), 403, code)
    expect_error(till.post("/v1/sales", {"quote_id": quote["quote_id"], "payments": [
        {"mode": "cash", "amount": quote["total_net"]}]}), 403, code)
    expect_error(till.post("/v1/redemptions", {"card": card, "gift_sku": "GIFT-MUG"}), 403, code)
    assert db_state(agent.db) == before
    # found again, the card works again
    till.ok("POST", "/v1/identifiers/status",
            json={"kind": "card", "value": card, "status": "active"})
    till.ok("POST", "/v1/identify", json={"kind": "card", "value": card})


def test_banned_customer_is_refused_at_identify_and_sale(till: Till,
                                                         agent: AnyAgent) -> None:
    joined = till.register(category="A")
    card, cid = joined["card_number"], joined["customer_id"]
    earn_points(till, card, 500)
    barcode = f"BAN-{uuid.uuid4().hex[:8]}"
    till.ok("POST", f"/v1/customers/{cid}/identifiers", 201,
            json={"kind": "barcode", "value": barcode})
    lines = [line("BAN-1", 1000)]
    quote = till.quote(card, lines)
    set_customer_status(agent.db, cid, "banned")  # as HQ's replica update will
    before = db_state(agent.db)
    for kind, value in (("card", card), ("barcode", barcode)):
        expect_error(till.post("/v1/identify", {"kind": kind, "value": value}), 403,
                     "card_banned")
    expect_error(till.post("/v1/quotes", {"card": card, "lines": lines}), 403, "card_banned")
    expect_error(till.post("/v1/sales", {"card": card, "lines": lines, "payments": [
        {"mode": "cash", "amount": quote["total_net"]}]}), 403, "card_banned")
    expect_error(till.post("/v1/sales", {"quote_id": quote["quote_id"], "payments": [
        {"mode": "cash", "amount": quote["total_net"]}]}), 403, "card_banned")
    expect_error(till.post("/v1/redemptions", {"card": card, "gift_sku": "GIFT-MUG"}), 403,
                 "card_banned")
    assert db_state(agent.db) == before
    assert till.ok("GET", f"/v1/customers/{cid}")["status"] == "banned"


# --- bad input -------------------------------------------------------------------------

GOOD_LINE = {"sku": "G-1", "name": "Good", "qty": 1, "unit_price": 100}


@pytest.mark.parametrize("bad_line, why", [
    ({**GOOD_LINE, "qty": 0}, "zero quantity"),
    ({**GOOD_LINE, "qty": -1}, "negative quantity"),
    ({**GOOD_LINE, "unit_price": -1}, "negative price"),
    ({**GOOD_LINE, "unit_price": 1.5}, "a float price"),
    ({k: v for k, v in GOOD_LINE.items() if k != "sku"}, "missing sku"),
    ({k: v for k, v in GOOD_LINE.items() if k != "unit_price"}, "missing price"),
    ({**GOOD_LINE, "colour": "red"}, "unknown field"),
    ({**GOOD_LINE, "sku": ""}, "empty sku"),
])
def test_bad_lines_are_invalid_request_and_change_nothing(
        till: Till, agent: AnyAgent, bad_line: dict[str, Any], why: str) -> None:
    card = till.register()["card_number"]
    before = db_state(agent.db)
    expect_error(till.post("/v1/quotes", {"card": card, "lines": [bad_line]}), 422,
                 "invalid_request")
    expect_error(till.post("/v1/sales", {"card": card, "lines": [GOOD_LINE, bad_line],
                                         "payments": [{"mode": "cash", "amount": 100}]},
                           headers={"Idempotency-Key": str(uuid.uuid4())}),
                 422, "invalid_request")
    assert db_state(agent.db) == before, why


@pytest.mark.parametrize("path, body", [
    ("/v1/identify", {"kind": "card"}),
    ("/v1/identify", {"kind": "fingerprint", "value": "x"}),
    ("/v1/identify", {"kind": "card", "value": "x", "extra": 1}),
    ("/v1/quotes", {"card": "2900010000015"}),
    ("/v1/quotes", {"card": "2900010000015", "lines": []}),
    ("/v1/sales", {"card": "2900010000015", "lines": [GOOD_LINE]}),
    ("/v1/sales", {"payments": [{"mode": "cash", "amount": 100}]}),
    ("/v1/sales", {"card": "2900010000015", "lines": [GOOD_LINE],
                   "payments": [{"mode": "cheque", "amount": 100}]}),
    ("/v1/sales", {"card": "2900010000015", "lines": [GOOD_LINE],
                   "payments": [{"mode": "cash", "amount": -100}]}),
    ("/v1/redemptions", {"gift_sku": "GIFT-MUG"}),
    ("/v1/redemptions", {"card": "2900010000015", "gift_sku": "GIFT-MUG", "qty": 0}),
    ("/v1/redemptions", {"card": "2900010000015", "gift_sku": "GIFT-MUG", "qty": -1}),
    ("/v1/customers", {}),
])
def test_missing_or_wrong_fields_are_invalid_request(till: Till, agent: AnyAgent,
                                                      path: str, body: dict[str, Any]) -> None:
    before = db_state(agent.db)
    expect_error(till.post(path, body), 422, "invalid_request")
    assert db_state(agent.db) == before


def test_a_body_that_is_not_json_is_invalid_request_saying_where(till: Till) -> None:
    answer = till.post("/v1/identify", data=b'{"kind": "card",\n "value": }', headers={
        "Content-Type": "application/json"})
    message = expect_error(answer, 422, "invalid_request")["message"]
    assert message.startswith("body is not valid JSON: "), message
    assert "line 2, column 11" in message, message
    assert not message.split(":")[0].strip().isdigit(), message  # no bare character offset


# --- strict input: what is sent is what is meant (no coercion) ------------------------------

def test_a_body_that_is_not_utf8_is_invalid_request_saying_so(
        till: Till, agent: AnyAgent) -> None:
    before = db_state(agent.db)
    answer = till.post("/v1/customers", data='{"kind": "person", "given_name": "Zoë", '
                       '"surname": "B"}'.encode("latin-1"),
                       headers={"Content-Type": "application/json"})
    message = expect_error(answer, 422, "invalid_request")["message"]
    assert "UTF-8" in message and "JSON" in message, message
    assert db_state(agent.db) == before


def test_a_body_without_content_type_says_to_send_one(till: Till,
                                                      agent: AnyAgent) -> None:
    before = db_state(agent.db)
    body = json.dumps({"kind": "person", "given_name": "A", "surname": "B"}).encode()
    answer = till.request("POST", "/v1/customers", data=body)  # no Content-Type at all
    assert "content-type" not in {k.lower() for k in answer.request.headers}
    message = expect_error(answer, 422, "invalid_request")["message"]
    assert "Content-Type: application/json" in message, message
    message = expect_error(till.request("POST", "/v1/customers", data=body, headers={
        "Content-Type": "text/plain"}), 422, "invalid_request")["message"]
    assert "Content-Type: application/json" in message, message
    assert db_state(agent.db) == before


@pytest.mark.parametrize("body, message", [
    ({"date_of_birth": "0000-99-99"}, "date_of_birth: 0000-99-99 is not a date"),
    ({"date_of_birth": "2023-02-29"}, "date_of_birth: 2023-02-29 is not a date"),
    ({"date_of_birth": "1850-01-01"}, "date_of_birth: expected a date of birth between "),
    ({"date_of_birth": "2999-01-01"}, "date_of_birth: expected a date of birth between "),
    ({"date_of_birth": "1.5.1990"}, "date_of_birth: expected a date as YYYY-MM-DD"),
    ({"date_of_birth": 19900501}, "date_of_birth: expected a date as YYYY-MM-DD, got an integer"),
    ({"email_consent": 0}, "email_consent: expected true or false, got an integer"),
    ({"email_consent": "yes"}, "email_consent: expected true or false, got a string"),
    ({"given_name": 7}, "given_name: expected a string, got an integer"),
    ({"pin": "12"}, "pin: expected 4 to 8 digits"),
    ({"email": "no-at-sign"}, "email: expected an e-mail address"),
])
def test_registration_fields_are_taken_strictly_with_a_message_naming_the_field(
        till: Till, agent: AnyAgent, body: dict[str, Any], message: str) -> None:
    before = db_state(agent.db)
    person = {"kind": "person", "given_name": "Strict", "surname": "Input", "category": "A"}
    error = expect_error(till.post("/v1/customers", {**person, **body}), 422, "invalid_request")
    assert error["message"].startswith(message), error
    assert db_state(agent.db) == before
    cid = till.register()["customer_id"]
    before = db_state(agent.db)
    if "pin" not in body:  # a PIN is not edited by PATCH
        error = expect_error(till.request("PATCH", f"/v1/customers/{cid}", json=body), 422,
                             "invalid_request")
        assert error["message"].startswith(message), error
    assert db_state(agent.db) == before


def test_a_real_date_of_birth_is_kept(till: Till) -> None:
    cid = till.register(date_of_birth="1990-05-01", email_consent=True)["customer_id"]
    assert till.ok("GET", f"/v1/customers/{cid}")["date_of_birth"] == "1990-05-01"


@pytest.mark.parametrize("path, body, message", [
    ("/v1/quotes", {"lines": [{**GOOD_LINE, "unit_price": "1290"}]},
     "lines.0.unit_price: expected an integer amount in cents, got a string"),
    ("/v1/quotes", {"lines": [GOOD_LINE, {**GOOD_LINE, "unit_price": 12.9}]},
     "lines.1.unit_price: expected an integer amount in cents, got a number with a fraction"),
    ("/v1/quotes", {"lines": [{**GOOD_LINE, "unit_price": True}]},
     "lines.0.unit_price: expected an integer amount in cents, got true or false"),
    ("/v1/quotes", {"lines": [{**GOOD_LINE, "qty": "2"}]},
     "lines.0.qty: expected an integer, got a string"),
    ("/v1/sales", {"lines": [GOOD_LINE], "payments": [{"mode": "cash", "amount": "100"}]},
     "payments.0.amount: expected an integer amount in cents, got a string"),
    ("/v1/sales", {"quote_id": "", "payments": [{"mode": "cash", "amount": 100}]},
     "quote_id: must not be empty"),
    ("/v1/sales", {"quote_id": "   ", "payments": [{"mode": "cash", "amount": 100}]},
     "quote_id: must not be empty"),
    ("/v1/redemptions", {"gift_sku": "GIFT-MUG", "qty": "1"},
     "qty: expected an integer, got a string"),
    ("/v1/identify", {"kind": "", "value": "x"}, "kind: expected 'card', 'magstripe'"),
    ("/v1/identify", {"kind": "card", "value": 2900010000015},
     "value: expected a string, got an integer"),
    ("/v1/identify", {"kind": "card", "value": "x", "extra": 1},
     "extra: unknown field"),
    ("/v1/identify", ["card", "x"], "body: expected a JSON object, got a list"),
])
def test_selling_fields_are_taken_strictly_with_a_message_naming_the_field(
        till: Till, agent: AnyAgent, path: str, body: Any, message: str) -> None:
    if isinstance(body, dict) and path != "/v1/identify" and "quote_id" not in body:
        body = {"card": till.register()["card_number"], **body}
    before = db_state(agent.db)
    error = expect_error(till.post(path, body), 422, "invalid_request")
    assert error["message"].startswith(message), error
    assert db_state(agent.db) == before


def test_an_identifier_status_of_an_empty_kind_names_the_kinds(
        till: Till, agent: AnyAgent) -> None:
    before = db_state(agent.db)
    error = expect_error(till.post("/v1/identifiers/status", {
        "kind": "", "value": "2900010000015", "status": "lost"}), 422, "invalid_request")
    assert error["message"].startswith("kind: expected 'card', 'magstripe'"), error
    assert "no such" not in error["message"]
    assert db_state(agent.db) == before


@pytest.mark.parametrize("agent", TIERS, indirect=True)
def test_a_body_over_1_mib_is_payload_too_large(till: Till, agent: AnyAgent) -> None:
    before = db_state(agent.db)
    huge = {"kind": "person", "given_name": "A", "surname": "B", "note": "x" * (1 << 20)}
    expect_error(till.post("/v1/customers", huge), 413, "payload_too_large")

    def chunks() -> Any:  # no Content-Length: the body streams in chunks
        yield b'{"kind": "person", "given_name": "A", "surname": "B", "note": "'
        for _ in range(12):
            yield b"y" * 100_000
        yield b'"}'

    expect_error(till.post("/v1/customers", data=chunks(), headers={
        "Content-Type": "application/json"}), 413, "payload_too_large")
    assert db_state(agent.db) == before
    # a small chunked body is fine
    small = till.post("/v1/customers", data=iter([json.dumps(
        {"kind": "person", "given_name": "C", "surname": "D"}).encode()]),
        headers={"Content-Type": "application/json"})
    assert small.status_code == 201, small.text


# --- tills -----------------------------------------------------------------------------

def test_till_identification_poll_with_nothing_read_is_204(till: Till) -> None:
    answer = till.get("/v1/tills/T1/identification", params={"wait": 0.2})
    assert answer.status_code == 204 and answer.content == b""
    expect_error(till.get("/v1/tills/T1/identification", params={"wait": -1}), 422,
                 "invalid_request")


# --- till token and listening address --------------------------------------------------

@pytest.mark.parametrize("tier", TIERS)
def test_till_token_is_required_when_configured(tier: str, request: pytest.FixtureRequest) -> None:
    start = request.getfixturevalue("make_agent" if tier == "in process" else "start_agent")
    agent = start(host="127.0.0.1", till_token="till-secret-123")
    bare = agent.till(token="")
    expect_error(bare.get("/v1/status"), 401, "unauthorized")
    expect_error(bare.post("/v1/customers", {"kind": "person", "given_name": "A",
                                             "surname": "B"}), 401, "unauthorized")
    expect_error(agent.till(token="wrong-token").get("/v1/status"), 401, "unauthorized")
    # the token alone, without the Bearer scheme, is refused too
    expect_error(bare.get("/v1/status", headers={"Authorization": "till-secret-123"}), 401,
                 "unauthorized")
    expect_error(bare.post("/v1/customers", {"kind": "person", "given_name": "A",
                                             "surname": "B"},
                           headers={"Authorization": "till-secret-123"}), 401, "unauthorized")
    assert db_state(agent.db)["customers"] == 0
    good = agent.till(token="till-secret-123")
    assert good.ok("GET", "/v1/status")["outlet_id"] == "T"
    good.register()


def test_listening_beyond_loopback_without_a_till_token_is_refused(tmp_path: Any) -> None:
    done = subprocess.run([str(LOYALTY), "agent", "serve", "--db", str(tmp_path / "o.db"),
                           "--outlet", "T", "--host", "0.0.0.0", "--port", "1"],
                          check=False, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "error [config_error]:" in done.stderr
    assert "till" in done.stderr.lower()
