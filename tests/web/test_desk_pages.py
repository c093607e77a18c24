"""The reception desk in process (agent/desk.py on web/office.py): a real outlet file with a
desk account as HQ's feed stores it (agent/deskstaff.py), and FastAPI's TestClient as the
browser. Who reaches the desk (loopback, or the TLS reverse proxy), signing in offline,
sessions and CSRF, finding a customer by name, card, phone or room and the customer's card."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent import customers, deskstaff, gifts
from agent.api import create_app
from agent.outlet import Outlet
from schema import passwords
from schema.api import CustomerIn
from schema.errors import InvalidRequest, mask_card

PASSWORD = "a long enough password"


def with_clerk(outlet: Outlet, username: str = "clerk", role: str = "desk", gen: int = 1) -> None:
    with outlet.db.write() as conn:
        deskstaff.apply(conn, username, {"username": username, "role": role, "session_gen": gen,
                                         "password_hash": passwords.hash_password(PASSWORD)})


def browser(outlet: Outlet, host: str = "127.0.0.1", client: str = "127.0.0.1",
            headers: dict[str, str] | None = None) -> TestClient:
    return TestClient(create_app(outlet), base_url=f"http://{host}", client=(client, 50000),
                      headers=headers or {})


def signed_in(outlet: Outlet, **how: Any) -> TestClient:
    desk = browser(outlet, **how)
    answer = desk.post("/desk/login", data={"username": "clerk", "password": PASSWORD,
                                            "next": "/"}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return desk


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found
    return found.group(1)


@pytest.fixture
def desk(outlet: Outlet) -> TestClient:
    with_clerk(outlet)
    return signed_in(outlet)


def test_a_desk_clerk_signs_in_offline_and_out_again(outlet: Outlet) -> None:
    with_clerk(outlet)
    desk = browser(outlet)
    first = desk.get("/desk/")
    assert first.url.path == "/desk/login" and 'id="username"' in first.text
    answer = desk.post("/desk/login", data={"username": "clerk", "password": PASSWORD,
                                            "next": "/"}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/desk/"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/desk" in cookie
    home = desk.get("/desk/")
    assert home.status_code == 200 and 'id="who">clerk<' in home.text
    out = desk.post("/desk/logout", data={"csrf": csrf(home.text)}, follow_redirects=False)
    assert out.status_code == 303
    assert desk.get("/desk/").url.path == "/desk/login"


def test_a_wrong_password_or_a_back_office_role_is_refused(outlet: Outlet) -> None:
    with_clerk(outlet)
    desk = browser(outlet)
    wrong = desk.post("/desk/login", data={"username": "clerk", "password": PASSWORD + "x"})
    assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
    assert desk.get("/desk/", follow_redirects=False).status_code == 303
    with_clerk(outlet, "ops", role="operator")  # the feed never stores one: apply drops it
    assert desk.post("/desk/login", data={"username": "ops", "password": PASSWORD}
                     ).status_code == 401


def test_a_new_session_generation_from_hq_ends_the_desk_session(outlet: Outlet) -> None:
    with_clerk(outlet)
    desk = signed_in(outlet)
    assert desk.get("/desk/").status_code == 200
    with_clerk(outlet, gen=2)  # HQ set a new password: the pull brings a new generation
    assert desk.get("/desk/").url.path == "/desk/login"


def test_a_form_without_the_session_csrf_token_or_from_another_site_is_refused(
        desk: TestClient) -> None:
    assert desk.post("/desk/logout", data={"csrf": "0" * 64}).status_code == 403
    token = csrf(desk.get("/desk/").text)
    assert desk.post("/desk/logout", data={"csrf": token},
                     headers={"origin": "http://evil.example"}).status_code == 403
    assert desk.get("/desk/").status_code == 200  # still signed in: nothing happened


@pytest.mark.parametrize(("host", "client", "headers"), [
    ("192.168.1.20:8080", "192.168.1.77", {}),  # a desk PC over plain HTTP on the LAN
    ("192.168.1.20:8080", "192.168.1.77", {"x-forwarded-proto": "https"}),  # forged, not local
    ("rebound.example", "127.0.0.1", {}),  # DNS rebinding from a page on this machine
])
def test_the_desk_refuses_plain_http_from_elsewhere_with_a_page_saying_how(
        outlet: Outlet, host: str, client: str, headers: dict[str, str]) -> None:
    with_clerk(outlet)
    answer = browser(outlet, host, client, headers).post(
        "/desk/login", data={"username": "clerk", "password": PASSWORD})
    assert answer.status_code == 403
    assert "TLS reverse proxy" in answer.text and "docs/desk.md" in answer.text
    assert "set-cookie" not in answer.headers
    assert answer.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("through", ["proxy headers", "uvicorn read them"])
def test_a_desk_pc_reaches_the_desk_through_the_tls_reverse_proxy(outlet: Outlet,
                                                                   through: str) -> None:
    with_clerk(outlet)
    if through == "proxy headers":  # the proxy on this machine, its headers as sent
        desk = browser(outlet, "desk.shop.example", "127.0.0.1", {"x-forwarded-proto": "https"})
    else:  # uvicorn trusted 127.0.0.1's headers: https, from the desk PC's address
        desk = TestClient(create_app(outlet), base_url="https://desk.shop.example",
                          client=("192.168.1.77", 50000))
    answer = desk.post("/desk/login", data={"username": "clerk", "password": PASSWORD},
                       follow_redirects=False)
    assert answer.status_code == 303 and "secure" in answer.headers["set-cookie"].lower()


def test_the_desk_finds_a_customer_by_name_card_phone_or_room_and_shows_the_card(
        outlet: Outlet, desk: TestClient) -> None:
    made = customers.register(outlet, CustomerIn(
        kind="person", given_name="Ana", surname="Lindqvist", category="A",
        phone="+46 70 123 45 67", room="214"))
    card = made["card_number"]
    for q in ("Lindq", card, "+46 70 123 45 67", "214"):
        found = desk.get("/desk/", params={"q": q})
        assert found.status_code == 200 and "Lindqvist" in found.text, q
        results = found.text.split('id="results"', 1)[1]  # the query itself is echoed
        assert card not in results and mask_card(card) in results
    page = desk.get(f"/desk/customers/{made['customer_id']}")
    assert page.status_code == 200 and 'id="customer-name">Ana Lindqvist' in page.text
    assert 'id="points" data-value="0"' in page.text and card not in page.text
    missing = desk.get("/desk/customers/nobody")
    assert missing.status_code == 404 and "<!doctype html>" in missing.text.lower()


def register_form(desk: TestClient, kind: str = "person") -> dict[str, str]:
    html = desk.get("/desk/register", params={"kind": kind}).text
    token = re.search(r'name="token" value="([^"]+)"', html)
    assert token
    return {"csrf": csrf(html), "token": token.group(1), "kind": kind}


def test_registering_a_person_issues_a_card_with_a_printable_barcode_page(
        outlet: Outlet, desk: TestClient) -> None:
    form = register_form(desk) | {"given_name": "Ana", "surname": "Berg", "phone": "0701",
                                  "room": "", "category": "A"}
    answer = desk.post("/desk/register", data=form, follow_redirects=False)
    assert answer.status_code == 303
    customer_id = answer.headers["location"].split("/")[3]
    view = customers.profile(outlet, customer_id)
    number = next(i["value"] for i in view["identifiers"] if i["kind"] == "card")
    assert (view["given_name"], view["surname"], view["phone"]) == ("Ana", "Berg", "0701")
    card = desk.get(answer.headers["location"])
    assert card.status_code == 200 and f'id="card-number">{number}<' in card.text
    assert f'aria-label="Barcode {number}"' in card.text and "<svg" in card.text
    assert 'id="card-name">Ana Berg<' in card.text


def test_a_double_clicked_registration_makes_one_customer(outlet: Outlet,
                                                          desk: TestClient) -> None:
    form = register_form(desk, "organisation") | {"name": "Fjord Hotels AB", "category": "A"}
    first = desk.post("/desk/register", data=form, follow_redirects=False)
    second = desk.post("/desk/register", data=form, follow_redirects=False)
    assert first.headers["location"] == second.headers["location"]
    assert len(customers.find(outlet, "Fjord")) == 1


@pytest.mark.parametrize(("fields", "said"), [
    ({"given_name": "Ana"}, "a person needs given_name and surname"),
    ({"given_name": "Ana", "surname": "Berg", "email": "not-an-email"}, "E-mail"),
    ({"given_name": "Ana", "surname": "Berg", "category": "ZZ"}, "category"),
])
def test_a_bad_registration_is_refused_by_its_field_and_makes_nothing(
        outlet: Outlet, desk: TestClient, fields: dict[str, str], said: str) -> None:
    answer = desk.post("/desk/register", data=register_form(desk) | fields)
    assert answer.status_code in (404, 422) and said in answer.text
    assert outlet.db.one("SELECT count(*) FROM customers")[0] == 0


def rich(outlet: Outlet) -> tuple[str, str]:
    """(customer id, card) of a customer with points from a real sale."""
    from agent import sales
    from schema.api import PaymentIn, QuoteIn, SaleIn
    made = customers.register(outlet, CustomerIn(kind="person", given_name="Rich", surname="Roe",
                                                 category="A"))
    quote = sales.quote(outlet, QuoteIn(card=made["card_number"], lines=[
        {"sku": "X", "name": "X", "qty": 1, "unit_price": 200_000}]))  # type: ignore[list-item]
    sales.sell(outlet, SaleIn(quote_id=quote["quote_id"],
                              payments=[PaymentIn(mode="cash", amount=quote["total_net"])]), None)
    return made["customer_id"], made["card_number"]


def stocked(outlet: Outlet) -> dict[str, int]:
    return {g["sku"]: g["stock"] for g in gifts.stock(outlet)}


def hand_out_form(desk: TestClient, customer_id: str, sku: str) -> dict[str, str]:
    html = desk.get(f"/desk/customers/{customer_id}/gifts").text
    token = re.search(rf'name="token" value="([^"]+-{sku})"', html)
    assert token, html
    return {"csrf": csrf(html), "token": token.group(1), "sku": sku}


def test_a_gift_handed_out_at_the_desk_lowers_stock_and_points_and_prints_both(
        outlet: Outlet, desk: TestClient) -> None:
    customer_id, card = rich(outlet)
    before, points = stocked(outlet), customers.profile(outlet, customer_id)["points_balance"]
    cost = outlet.programme.gifts["GIFT-MUG"].points_cost
    answer = desk.post(f"/desk/customers/{customer_id}/gifts",
                       data=hand_out_form(desk, customer_id, "GIFT-MUG"))
    assert answer.status_code == 201, answer.text
    assert stocked(outlet)["GIFT-MUG"] == before["GIFT-MUG"] - 1
    after = customers.profile(outlet, customer_id)["points_balance"]
    assert after == points - cost
    assert 'id="receipt"' in answer.text and 'id="card-statement"' in answer.text
    assert card not in answer.text  # printouts mask the card like the till's
    statement = desk.get(f"/desk/customers/{customer_id}/statement")
    for line in customers.statement(outlet, customer_id):
        if "T" not in line[:2]:  # the printout's own time line differs by the second
            assert line.strip() in statement.text.replace("&#39;", "'").replace("&amp;", "&")


def test_a_double_clicked_gift_hand_out_makes_one(outlet: Outlet, desk: TestClient) -> None:
    customer_id, _ = rich(outlet)
    before = stocked(outlet)
    form = hand_out_form(desk, customer_id, "GIFT-MUG")
    first = desk.post(f"/desk/customers/{customer_id}/gifts", data=form)
    second = desk.post(f"/desk/customers/{customer_id}/gifts", data=form)
    assert first.status_code == second.status_code == 201
    assert stocked(outlet)["GIFT-MUG"] == before["GIFT-MUG"] - 1
    assert outlet.db.one("SELECT count(*) FROM redemptions")[0] == 1


def test_a_gift_without_enough_points_is_refused_with_a_page_and_changes_nothing(
        outlet: Outlet, desk: TestClient) -> None:
    poor = customers.register(outlet, CustomerIn(kind="person", given_name="P", surname="Oor",
                                                 category="A"))["customer_id"]
    html = desk.get(f"/desk/customers/{poor}/gifts").text
    assert "not enough points" in html
    before = stocked(outlet)
    answer = desk.post(f"/desk/customers/{poor}/gifts", data={
        "csrf": csrf(html), "token": "t" * 20, "sku": "GIFT-MUG"})
    assert answer.status_code == 402 and "insufficient_points" in answer.text
    assert stocked(outlet) == before


def invoiced(outlet: Outlet, amount: int = 12_345) -> tuple[str, str]:
    """(customer id, invoice number): a consolidated invoice as HQ's feed stores it."""
    customer_id = customers.register(outlet, CustomerIn(
        kind="organisation", name="Fjord Hotels AB", category="A"))["customer_id"]
    with outlet.db.write() as conn:
        conn.execute("INSERT INTO invoices (invoice_id, number, customer_id, period_from, "
                     "period_to, issued_on, due_on, amount, paid_amount, status) VALUES "
                     "('inv-1', 'INV-2026-0007', ?, '2026-11-01', '2026-11-30', '2026-12-01', "
                     "'2026-12-15', ?, 0, 'open')", (customer_id, amount))
    return customer_id, "INV-2026-0007"


def pay_form(desk: TestClient, customer_id: str, amount: str) -> dict[str, str]:
    html = desk.get(f"/desk/customers/{customer_id}/invoices").text
    token = re.search(r'name="token" value="([^"]+)"', html)
    assert token, html
    return {"csrf": csrf(html), "token": token.group(1), "amount": amount}


def paid_so_far(outlet: Outlet) -> int:
    return int(outlet.db.one("SELECT paid_amount FROM invoices")[0])


def test_a_part_payment_typed_with_a_comma_is_taken_once_and_the_statement_printed(
        outlet: Outlet, desk: TestClient) -> None:
    customer_id, number = invoiced(outlet)
    form = pay_form(desk, customer_id, "100,50")
    url = f"/desk/customers/{customer_id}/invoices/{number}/payments"
    first = desk.post(url, data=form)
    again = desk.post(url, data=form)  # a double-click
    assert first.status_code == again.status_code == 201, first.text
    assert paid_so_far(outlet) == 10_050
    assert 'id="left">22.95<' in first.text and 'id="card-statement"' in first.text
    assert outlet.db.one("SELECT count(*) FROM outbox WHERE type = 'credit.repaid'")[0] == 1


@pytest.mark.parametrize(("typed", "said"), [
    ("123.46", "overpayment"),
    ("12,3,4", "Amount"),
    ("-5", "Amount"),
    ("0", "Amount"),
    ("", "Amount"),
])
def test_an_overpayment_or_a_bad_amount_is_refused_and_changes_nothing(
        outlet: Outlet, desk: TestClient, typed: str, said: str) -> None:
    customer_id, number = invoiced(outlet)
    answer = desk.post(f"/desk/customers/{customer_id}/invoices/{number}/payments",
                       data=pay_form(desk, customer_id, typed))
    assert answer.status_code in (409, 422) and said in answer.text, answer.text
    assert paid_so_far(outlet) == 0


def test_an_invoice_of_another_customer_is_not_paid_from_this_ones_page(
        outlet: Outlet, desk: TestClient) -> None:
    _, number = invoiced(outlet)
    other = customers.register(outlet, CustomerIn(kind="person", given_name="O", surname="Ther",
                                                  category="A"))["customer_id"]
    answer = desk.post(f"/desk/customers/{other}/invoices/{number}/payments",
                       data={"csrf": csrf(desk.get("/desk/").text), "token": "x" * 20,
                             "amount": "1.00"})
    assert answer.status_code == 404 and paid_so_far(outlet) == 0


def test_a_refusal_at_the_desk_is_a_desk_page(outlet: Outlet, desk: TestClient) -> None:
    answer = desk.get("/desk/customers/nobody")
    assert answer.status_code == 404 and 'href="/desk/register"' in answer.text
    assert "Today's sales" not in answer.text  # not the manager's layout


def test_a_lost_card_is_replaced_once_keeping_points_and_history(outlet: Outlet,
                                                                 desk: TestClient) -> None:
    customer_id, old = rich(outlet)
    points = customers.profile(outlet, customer_id)["points_balance"]
    html = desk.get(f"/desk/customers/{customer_id}").text
    token = re.search(r'name="token" value="([^"]+)"', html)
    assert token and old not in html
    form = {"csrf": csrf(html), "token": token.group(1), "ending": old[-4:]}
    first = desk.post(f"/desk/customers/{customer_id}/replace-card", data=form,
                      follow_redirects=False)
    again = desk.post(f"/desk/customers/{customer_id}/replace-card", data=form,
                      follow_redirects=False)  # a double-click
    assert first.status_code == again.status_code == 303
    view = customers.profile(outlet, customer_id)
    cards = {i["value"]: i["status"] for i in view["identifiers"] if i["kind"] == "card"}
    assert len(cards) == 2 and cards[old] == "lost"
    new = next(v for v, status in cards.items() if status == "active")
    assert view["points_balance"] == points and view["statistics"]["purchases_count"] == 1
    printed = desk.get(first.headers["location"]).text
    assert f'id="card-number">{new}<' in printed
    assert customers.find(outlet, new)[0]["customer_id"] == customer_id


def test_a_card_of_another_customer_is_never_reported_lost(outlet: Outlet) -> None:
    _, card = rich(outlet)
    other = customers.register(outlet, CustomerIn(kind="person", given_name="O", surname="Ther",
                                                  category="A"))["customer_id"]
    with pytest.raises(InvalidRequest):
        customers.replace_card(outlet, other, card)
    assert outlet.db.one("SELECT status FROM identifiers WHERE value = ?", (card,))[0] == "active"


@pytest.mark.parametrize(("fields", "status", "said"), [
    ({"reader": "No Such Reader 9", "pin": "1234"}, 503, "No Such Reader 9"),
    ({"reader": "No Such Reader 9", "pin": "12x"}, 422, "PIN"),
])
def test_a_smart_card_that_cannot_be_written_is_a_refusal_page_and_sets_no_pin(
        outlet: Outlet, desk: TestClient, fields: dict[str, str], status: int, said: str) -> None:
    customer_id, _ = rich(outlet)
    html = desk.get(f"/desk/customers/{customer_id}/smartcard").text
    answer = desk.post(f"/desk/customers/{customer_id}/smartcard",
                       data={"csrf": csrf(html)} | fields)
    assert answer.status_code == status and said in answer.text, answer.text[-800:]
    assert customers.profile(outlet, customer_id)["has_pin"] is False
