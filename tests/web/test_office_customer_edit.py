"""Editing a customer in HQ's back office (hq/office/customer_edit.py), in process: a form
checked as the till API checks a profile shows its refusal on the form and changes
nothing; a saved form is HQ's own fact (it reaches outlets through the change feed) with
one audit row naming the operator, each field before -> after and the reason; a viewer is
refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testkit.office import PASSWORD, csrf_of, signed_in

from agent.programme import default_documents
from hq import admin, credentials, ingest, staff
from hq.chain import Chain
from schema.events import CustomerRegistered, Profile, make_event
from schema.roles import Role
from schema.sync import PushRequest

ANA = "ana-0001"


# HQ's stores (as tests/hq/hqkit.py STORES): PostgreSQL's cluster is a process (slow tier)
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chain]:
    """HQ with customer ANA, operator olga and viewer vera, on each of HQ's stores (shared
    by the other back-office modules that import it)."""
    where = (request.getfixturevalue("hq_pg") if request.param == "postgresql"
             else tmp_path / "hq.db")
    the_chain = Chain(where, seed=default_documents())
    with the_chain.db.write() as conn:
        credentials.add_outlet(conn, "A")
        staff.add(conn, "olga", PASSWORD, role=Role.operator)
        staff.add(conn, "vera", PASSWORD, role=Role.viewer)
    event = make_event("A", 1, CustomerRegistered(
        customer_id=ANA, card_number="2000000000015", profile=Profile(
            kind="person", given_name="Ana", surname="Novak", category="A",
            phone="040 111 222")))
    ingest.push(the_chain, "A", PushRequest(outlet_id="A", events=[event]))
    yield the_chain
    the_chain.close()




def form_of(chain: Chain, **typed: Any) -> dict[str, Any]:
    """The profile form as the edit page fills it for ANA, with `typed` over it."""
    view = admin.customer_view(chain, ANA)
    fields = ("given_name", "surname", "name", "business_domain", "contact_person",
              "date_of_birth", "address", "phone", "fax", "email", "room", "code",
              "preferences", "note", "promo_category", "category")
    return {**{k: view.get(k) or "" for k in fields}, **typed}


def audit_rows(chain: Chain) -> list[dict[str, Any]]:
    return [dict(r) for r in chain.db.all(
        "SELECT * FROM audit WHERE subject_kind = 'customer' ORDER BY audit_id")]


def hq_facts(chain: Chain) -> int:
    return int(chain.db.scalar("SELECT COUNT(*) FROM events WHERE outlet_id = 'HQ'"))


def test_a_profile_edit_is_an_hq_fact_audited_with_before_after_and_reason(
        chain: Chain) -> None:
    client = signed_in(chain, "olga")
    edit = f"/office/customers/{ANA}/edit"
    csrf = csrf_of(client, edit)
    answer = client.post(f"/office/customers/{ANA}/profile", follow_redirects=False, data={
        **form_of(chain, phone="040 999 000", category="B", note="Prefers e-mail"),
        "approved_actions": [], "reason": "asked at the desk", "csrf": csrf})
    assert answer.status_code == 303, answer.text
    view = admin.customer_view(chain, ANA)
    assert (view["phone"], view["category"], view["note"]) == ("040 999 000", "B",
                                                                "Prefers e-mail")
    rows = audit_rows(chain)
    assert len(rows) == 1
    row = rows[0]
    assert (row["staff"], row["action"], row["customer_id"], row["reason"]) == (
        "olga", "customer.edit", ANA, "asked at the desk")
    assert '"phone": "040 111 222"' in row["before"] and '"phone": "040 999 000"' in row["after"]
    assert '"category": "A"' in row["before"] and "given_name" not in row["after"]
    fact = chain.db.one("SELECT type FROM events WHERE event_id = ?", (row["event_id"],))
    assert fact is not None and fact[0] == "customer.updated"
    assert "Prefers e-mail" in client.get(edit).text  # and the page's own trail shows it


@pytest.mark.parametrize(("typed", "says"), [
    ({"email": "not an address"}, "E-mail"),
    ({"date_of_birth": "1990-13-45"}, "Date of birth"),
    ({"given_name": ""}, "Given name"),
    ({"note": "x" * 1_025}, "Note"),
    ({"category": "Z"}, "unknown category"),
])
def test_a_refused_profile_form_says_why_on_the_form_and_changes_nothing(
        chain: Chain, typed: dict[str, str], says: str) -> None:
    client = signed_in(chain, "olga")
    csrf = csrf_of(client, f"/office/customers/{ANA}/edit")
    before, facts = admin.customer_view(chain, ANA), hq_facts(chain)
    answer = client.post(f"/office/customers/{ANA}/profile",
                         data={**form_of(chain, **typed), "csrf": csrf})
    assert answer.status_code == 422
    assert 'id="edit-error"' in answer.text and says in answer.text
    assert "invalid_request" in answer.text
    for value in typed.values():  # what was typed is shown again, to be corrected
        if value and len(value) < 100:
            assert value in answer.text
    assert admin.customer_view(chain, ANA) == before
    assert hq_facts(chain) == facts and audit_rows(chain) == []


def test_an_unchanged_form_records_nothing(chain: Chain) -> None:
    client = signed_in(chain, "olga")
    csrf = csrf_of(client, f"/office/customers/{ANA}/edit")
    facts = hq_facts(chain)
    answer = client.post(f"/office/customers/{ANA}/profile", follow_redirects=False,
                         data={**form_of(chain), "csrf": csrf})
    assert answer.status_code == 303 and answer.headers["location"].endswith("done=same")
    assert hq_facts(chain) == facts and audit_rows(chain) == []


def test_a_ban_needs_a_reason_and_is_audited_with_it(chain: Chain) -> None:
    client = signed_in(chain, "olga")
    csrf = csrf_of(client, f"/office/customers/{ANA}/edit")
    refused = client.post(f"/office/customers/{ANA}/status",
                          data={"status": "banned", "reason": " ", "csrf": csrf})
    assert refused.status_code == 422 and "a ban needs its reason" in refused.text
    assert admin.customer_view(chain, ANA)["status"] == "approved" and audit_rows(chain) == []
    banned = client.post(f"/office/customers/{ANA}/status", follow_redirects=False,
                         data={"status": "banned", "reason": "card fraud", "csrf": csrf})
    assert banned.status_code == 303
    assert admin.customer_view(chain, ANA)["status"] == "banned"
    [row] = audit_rows(chain)
    assert (row["staff"], row["action"], row["reason"]) == ("olga", "customer.status",
                                                            "card fraud")
    assert (row["before"], row["after"]) == ('{"status": "approved"}', '{"status": "banned"}')
    fact = chain.db.one("SELECT type FROM events WHERE event_id = ?", (row["event_id"],))
    assert fact is not None and fact[0] == "customer.status_changed"


def test_a_viewer_gets_no_edit_link_and_is_refused_the_forms(chain: Chain) -> None:
    client = signed_in(chain, "vera")
    card = client.get(f"/office/customers/{ANA}")
    assert card.status_code == 200 and 'id="edit-customer"' not in card.text
    assert client.get(f"/office/customers/{ANA}/edit").status_code == 403
    csrf = csrf_of(client, f"/office/customers/{ANA}")  # the logout form's token
    for path, data in ((f"/office/customers/{ANA}/profile", form_of(chain, phone="1")),
                       (f"/office/customers/{ANA}/status", {"status": "banned",
                                                           "reason": "x"})):
        assert client.post(path, data={**data, "csrf": csrf}).status_code == 403
    assert admin.customer_view(chain, ANA)["phone"] == "040 111 222"
    assert audit_rows(chain) == []


CARD = "2000000000015"


def test_an_identifier_is_added_blocked_and_reported_lost_each_audited(chain: Chain) -> None:
    client = signed_in(chain, "olga")
    csrf = csrf_of(client, f"/office/customers/{ANA}/edit")
    added = client.post(f"/office/customers/{ANA}/identifiers", follow_redirects=False,
                        data={"kind": "key", "value": "KEY-77", "reason": "new key fob",
                              "csrf": csrf})
    assert added.status_code == 303, added.text
    kinds = {(i["kind"], i["value"]): i["status"]
             for i in admin.customer_view(chain, ANA)["identifiers"]}
    assert kinds[("key", "KEY-77")] == "active"
    for status in ("blocked", "lost"):
        changed = client.post(f"/office/customers/{ANA}/identifiers/status",
                              follow_redirects=False, data={
                                  "kind": "card", "value": CARD, "status": status,
                                  "reason": "stolen wallet", "csrf": csrf})
        assert changed.status_code == 303, changed.text
    card = [i for i in admin.customer_view(chain, ANA)["identifiers"] if i["kind"] == "card"]
    assert card[0]["status"] == "lost"
    rows = audit_rows(chain) + [dict(r) for r in chain.db.all(
        "SELECT * FROM audit WHERE subject_kind IN ('key', 'card') ORDER BY audit_id")]
    assert [(r["action"], r["subject"], r["after"]) for r in rows] == [
        ("identifier.add", "KEY-77", '{"kind": "key", "status": "active", "value": "KEY-77"}'),
        ("identifier.status", "****0015", '{"status": "blocked"}'),
        ("identifier.status", "****0015", '{"status": "lost"}')]
    assert all(r["staff"] == "olga" and r["customer_id"] == ANA for r in rows)
    assert CARD not in str(rows)  # the trail names a card by its last 4 digits


def test_an_identifier_of_another_customer_is_refused_and_nothing_changes(
        chain: Chain) -> None:
    client = signed_in(chain, "olga")
    csrf = csrf_of(client, f"/office/customers/{ANA}/edit")
    facts = hq_facts(chain)
    taken = client.post(f"/office/customers/{ANA}/identifiers",
                        data={"kind": "card", "value": CARD, "csrf": csrf})
    assert taken.status_code == 409 and "already belongs to this customer" in taken.text
    unknown_kind = client.post(f"/office/customers/{ANA}/identifiers",
                               data={"kind": "tattoo", "value": "X1", "csrf": csrf})
    assert unknown_kind.status_code == 422 and "Kind: choose one of" in unknown_kind.text
    not_hers = client.post(f"/office/customers/{ANA}/identifiers/status", data={
        "kind": "card", "value": "2999999999994", "status": "lost", "csrf": csrf})
    assert not_hers.status_code == 404
    assert hq_facts(chain) == facts
    assert chain.db.scalar("SELECT COUNT(*) FROM audit WHERE subject_kind != 'staff'") == 0
    assert len(admin.customer_view(chain, ANA)["identifiers"]) == 1


def test_a_pin_reset_is_an_hq_fact_with_only_the_hash_and_is_audited(chain: Chain) -> None:
    from schema import pin

    client = signed_in(chain, "olga")
    csrf = csrf_of(client, f"/office/customers/{ANA}/edit")
    for typed, says in (({"pin": "12", "again": "12"}, "4 to 8 digits"),
                        ({"pin": "4321", "again": "4322"}, "the two differ")):
        refused = client.post(f"/office/customers/{ANA}/pin", data={**typed, "csrf": csrf})
        assert refused.status_code == 422 and says in refused.text
    assert audit_rows(chain) == []
    done = client.post(f"/office/customers/{ANA}/pin", follow_redirects=False,
                       data={"pin": "4321", "again": "4321", "reason": "forgot it",
                             "csrf": csrf})
    assert done.status_code == 303, done.text
    stored = chain.db.scalar("SELECT pin_hash FROM customers WHERE customer_id = ?", (ANA,))
    assert pin.verify("4321", stored) and "4321" not in stored
    [row] = audit_rows(chain)
    assert (row["action"], row["after"], row["reason"]) == ("customer.pin", '{"pin": "set"}',
                                                            "forgot it")
    assert "4321" not in str([dict(r) for r in chain.db.all("SELECT * FROM audit")])
