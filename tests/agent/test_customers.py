"""Customers and identifiers at the outlet (agent.customers), on an in-process outlet.

Each change is one fact in the outbox written in the same transaction as its effect; a
refusal writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from agentkit import db_state

from agent import cardnumber, customers, identification
from agent.outlet import Outlet
from schema.api import CustomerIn, CustomerPatch, IdentifierIn
from schema.errors import (
    CardBlocked,
    CardLost,
    CardUnknown,
    Conflict,
    CustomerUnknown,
    InvalidRequest,
)


def person(**fields: Any) -> CustomerIn:
    return CustomerIn(**{"kind": "person", "given_name": "Ana", "surname": "Novak", **fields})


def events(outlet: Outlet) -> list[dict[str, Any]]:
    return [json.loads(r[0]) for r in outlet.db.all("SELECT event FROM outbox ORDER BY seq")]


def test_register_writes_the_customer_its_card_and_one_fact(outlet: Outlet) -> None:
    before = len(events(outlet))
    joined = customers.register(outlet, person(category="B", note="likes jazz"))
    assert cardnumber.is_valid(joined["card_number"])
    new = events(outlet)[before:]
    assert [e["type"] for e in new] == ["customer.registered"]
    assert new[0]["body"]["card_number"] == joined["card_number"]
    assert new[0]["body"]["profile"]["note"] == "likes jazz"
    assert new[0]["customer_id"] == joined["customer_id"]
    profile = customers.profile(outlet, joined["customer_id"])
    assert profile["category"] == "B" and profile["note"] == "likes jazz"
    assert profile["identifiers"] == [
        {"kind": "card", "value": joined["card_number"], "status": "active"}]


def test_register_with_an_unknown_category_writes_nothing(outlet: Outlet) -> None:
    before = db_state(Path(outlet.db.path))
    with pytest.raises(InvalidRequest):
        customers.register(outlet, person(category="Z"))
    with pytest.raises(InvalidRequest):
        customers.register(outlet, person(promo_category="NO-SUCH"))
    assert db_state(Path(outlet.db.path)) == before


def test_card_serials_continue_after_reopening(tmp_path: Path) -> None:
    shop = Outlet(tmp_path / "o.db", "T", card_range=42)
    first = [customers.register(shop, person())["card_number"] for _ in range(3)]
    shop.close()
    shop = Outlet(tmp_path / "o.db")
    later = customers.register(shop, person())["card_number"]
    shop.close()
    assert [cardnumber.parse(c) for c in [*first, later]] == [(42, 1), (42, 2), (42, 3), (42, 4)]


def test_two_outlets_issuing_offline_give_distinct_cards(tmp_path: Path) -> None:
    north = Outlet(tmp_path / "north.db", "NORTH", card_range=1)
    south = Outlet(tmp_path / "south.db", "SOUTH", card_range=2)
    try:
        cards = [customers.register(shop, person())["card_number"]
                 for _ in range(20) for shop in (north, south)]
    finally:
        north.close()
        south.close()
    assert len(set(cards)) == 40
    assert {cardnumber.parse(c)[0] for c in cards} == {1, 2}


def test_update_changes_only_the_fields_sent_and_is_a_fact(outlet: Outlet) -> None:
    joined = customers.register(outlet, person(address="Old street 1", phone="123"))
    cid = joined["customer_id"]
    before = len(events(outlet))
    profile = customers.update(outlet, cid, CustomerPatch(address="New street 2"))
    assert profile["address"] == "New street 2" and profile["phone"] == "123"
    assert profile["given_name"] == "Ana"
    new = events(outlet)[before:]
    assert [e["type"] for e in new] == ["customer.updated"]
    assert new[0]["body"]["changes"] == {"address": "New street 2"}


def test_update_with_nothing_to_change_or_of_nobody_is_refused(outlet: Outlet) -> None:
    cid = customers.register(outlet, person())["customer_id"]
    before = db_state(Path(outlet.db.path))
    with pytest.raises(InvalidRequest):
        customers.update(outlet, cid, CustomerPatch())
    with pytest.raises(CustomerUnknown):
        customers.update(outlet, "no-such-id", CustomerPatch(note="x"))
    assert db_state(Path(outlet.db.path)) == before


@pytest.mark.parametrize("kind, given, presented", [
    ("phone", "+386 (1) 234-5678", "+38612345678"),
    ("phone", "01 234 5678", "012345678"),
    ("smartcard", "04:a2:2b:1c", "04 A2 2B 1C"),
    ("room", " 12a ", "12A"),
    ("barcode", "  BC-1  ", "BC-1"),
])
def test_an_identifier_added_at_the_desk_is_found_as_readers_present_it(
        outlet: Outlet, kind: str, given: str, presented: str) -> None:
    cid = customers.register(outlet, person())["customer_id"]
    customers.add_identifier(outlet, cid, IdentifierIn(kind=kind, value=given))  # type: ignore[arg-type]
    found = identification.identify(outlet, kind, presented)
    assert found["customer_id"] == cid
    added = events(outlet)[-2]
    assert added["type"] == "identifier.added"


def test_an_identifier_that_normalises_to_nothing_is_refused(outlet: Outlet) -> None:
    cid = customers.register(outlet, person())["customer_id"]
    before = db_state(Path(outlet.db.path))
    with pytest.raises(InvalidRequest):
        customers.add_identifier(outlet, cid, IdentifierIn(kind="phone", value="no digits"))
    assert db_state(Path(outlet.db.path)) == before


def test_an_identifier_belongs_to_one_customer(outlet: Outlet) -> None:
    first = customers.register(outlet, person())["customer_id"]
    second = customers.register(outlet, person(given_name="Bor"))["customer_id"]
    customers.add_identifier(outlet, first, IdentifierIn(kind="key", value="K-1"))
    before = db_state(Path(outlet.db.path))
    with pytest.raises(Conflict):
        customers.add_identifier(outlet, second, IdentifierIn(kind="key", value="K-1"))
    assert db_state(Path(outlet.db.path)) == before
    assert identification.identify(outlet, "key", "K-1")["customer_id"] == first


def test_identifier_status_changes_are_facts_and_refuse_the_card(outlet: Outlet) -> None:
    joined = customers.register(outlet, person())
    card = joined["card_number"]
    customers.set_identifier_status(outlet, "card", card, "lost")
    assert events(outlet)[-1]["type"] == "identifier.status_changed"
    assert events(outlet)[-1]["body"] == {"kind": "card", "value": card, "status": "lost",
                                          "customer_id": joined["customer_id"]}
    with pytest.raises(CardLost):
        identification.identify(outlet, "card", card)
    customers.set_identifier_status(outlet, "card", card, "blocked")
    with pytest.raises(CardBlocked):
        identification.identify(outlet, "card", card)
    customers.set_identifier_status(outlet, "card", card, "active")
    assert identification.identify(outlet, "card", card)["customer_id"] == joined["customer_id"]
    before = db_state(Path(outlet.db.path))
    with pytest.raises(InvalidRequest):
        customers.set_identifier_status(outlet, "card", "2999999999994", "lost")
    assert db_state(Path(outlet.db.path)) == before


def test_an_unknown_identifier_never_becomes_a_customer(outlet: Outlet) -> None:
    before = db_state(Path(outlet.db.path))
    for kind in ("card", "magstripe", "phone", "room", "key"):
        with pytest.raises(CardUnknown):
            identification.identify(outlet, kind, "1234567")
    assert db_state(Path(outlet.db.path)) == before


def test_search_finds_by_surname_given_name_and_organisation_name(outlet: Outlet) -> None:
    ana = customers.register(outlet, person(given_name="Ana", surname="Kovač"))["customer_id"]
    bor = customers.register(outlet, person(given_name="Bor", surname="Kovačič"))["customer_id"]
    org = customers.register(outlet, CustomerIn(kind="organisation", name="Kovina d.o.o."))[
        "customer_id"]
    customers.register(outlet, person(given_name="Cene", surname="Zupan"))
    assert {c["customer_id"] for c in customers.search(outlet, "kova")} == {ana, bor}
    assert {c["customer_id"] for c in customers.search(outlet, "KOV")} == {ana, bor, org}
    assert [c["customer_id"] for c in customers.search(outlet, "bor")] == [bor]
    assert customers.search(outlet, "nobody") == []
    with pytest.raises(InvalidRequest):
        customers.search(outlet, "   ")


def test_a_profile_never_shows_the_pin_or_its_hash(outlet: Outlet) -> None:
    cid = customers.register(outlet, person(pin="73915286"))["customer_id"]
    profile = customers.profile(outlet, cid)
    assert profile["has_pin"] is True
    text = json.dumps(profile)
    assert "73915286" not in text and "scrypt" not in text
    assert "73915286" not in json.dumps(events(outlet))
