"""The programme in HQ's back office (hq/office/programme.py), in process: a special action
sale typed into the form is previewed (each field before -> after) without changing
anything, then saved through hq.admin.put_master as master data that reaches outlets,
with one audit row; a refused form says why on the form and changes nothing; a viewer
sees the programme but is refused the editor."""

from __future__ import annotations

from typing import Any

import test_office_customer_edit as edits
from fastapi.testclient import TestClient
from test_office_customer_edit import csrf_of, signed_in

from hq import admin
from hq.chain import Chain
from hq.office import programme

chain = edits.chain  # the same HQ: the default programme, outlet A, olga and vera

SALE = {"action_id": "XMAS", "name": "Christmas oil", "valid_from": "2026-12-01",
        "valid_to": "2026-12-31", "discount": "12.5", "skus": "OIL, WINE", "divisions": "",
        "customer_codes": "", "reason": "season"}


def master_rows(chain: Chain) -> list[Any]:
    return [tuple(r) for r in chain.db.all("SELECT kind, key, data FROM master ORDER BY 1, 2")]


def action_audit(chain: Chain) -> list[dict[str, Any]]:
    return [dict(r) for r in chain.db.all(
        "SELECT * FROM audit WHERE action = 'action.put' ORDER BY audit_id")]


def test_a_special_action_sale_is_previewed_then_saved_as_master_data_and_audited(
        chain: Chain) -> None:
    client = signed_in(chain, "olga")
    csrf = csrf_of(client, "/office/programme/actions/new")
    before, head = master_rows(chain), chain.db.scalar("SELECT COALESCE(MAX(seq), 0) FROM changes")
    shown = client.post("/office/programme/actions/preview",
                        data={**SALE, "categories": ["A"], "csrf": csrf})
    assert shown.status_code == 200, shown.text
    assert 'id="preview-changes"' in shown.text and "A new special action sale" in shown.text
    assert "Christmas oil" in shown.text and "12.5 %" in shown.text
    assert master_rows(chain) == before and action_audit(chain) == []  # a preview changes nothing
    saved = client.post("/office/programme/actions", follow_redirects=False,
                        data={**SALE, "categories": ["A"], "csrf": csrf})
    assert saved.status_code == 303, saved.text
    doc = admin.master_docs(chain, "action")["XMAS"]
    assert (doc["name"], doc["discount_bp"], doc["skus"], doc["categories"]) == (
        "Christmas oil", 1_250, ["OIL", "WINE"], ["A"])
    assert doc["valid_to"].startswith("2026-12-31T23:59:59")
    assert chain.db.scalar("SELECT COUNT(*) FROM changes WHERE kind = 'action' AND key = 'XMAS' "
                           "AND seq > ?", (head,)) == 1  # outlets receive it
    [row] = action_audit(chain)
    assert (row["staff"], row["subject"], row["before"], row["reason"]) == (
        "olga", "XMAS", None, "season")
    again = client.post("/office/programme/actions/preview",
                        data={**SALE, "discount": "15", "categories": ["A"], "csrf": csrf})
    assert "Changes special action sale" in again.text and "15 %" in again.text
    edit = client.get("/office/programme/actions/XMAS")
    assert 'id="a-discount" value="12.5"' in edit.text


def test_a_discount_is_shown_as_the_percentage_typed() -> None:
    assert [programme.percent(bp) for bp in (2_000, 1_250, 1_000, 5, 0, 10_000)] == [
        "20", "12.5", "10", "0.05", "0", "100"]


def test_a_refused_action_form_says_why_and_changes_nothing(chain: Chain) -> None:
    client = signed_in(chain, "olga")
    csrf = csrf_of(client, "/office/programme/actions/new")
    before = master_rows(chain)
    for typed, says in (({"discount": "abc"}, "Discount %: type a percentage"),
                        ({"discount": "120"}, "Discount %"),
                        ({"action_id": "bad code!"}, "Code"),
                        ({"valid_to": ""}, "Valid to")):
        answer = client.post("/office/programme/actions",
                             data={**SALE, **typed, "csrf": csrf})
        assert answer.status_code == 422, typed
        assert 'id="action-error"' in answer.text and says in answer.text
        assert "Christmas oil" in answer.text  # what was typed is kept
    assert master_rows(chain) == before and action_audit(chain) == []


def test_a_viewer_reads_the_programme_and_is_refused_the_editor(chain: Chain) -> None:
    client: TestClient = signed_in(chain, "vera")
    page = client.get("/office/programme")
    assert page.status_code == 200 and 'id="kind-category"' in page.text
    assert 'id="new-action"' not in page.text
    assert client.get("/office/programme/actions/new").status_code == 403
    csrf = csrf_of(client, "/office/programme")
    for path in ("/office/programme/actions/preview", "/office/programme/actions"):
        assert client.post(path, data={**SALE, "csrf": csrf}).status_code == 403
    assert "XMAS" not in admin.master_docs(chain, "action")


def two_customers_spend(chain: Chain) -> None:
    """ANA (category A) and two more customers of category B, each with 500.00 of sales."""
    from hq import ingest
    from schema.events import (
        CustomerRegistered,
        Payment,
        Profile,
        SaleLine,
        SaleRecorded,
        make_event,
        new_id,
    )
    from schema.sync import PushRequest

    bodies: list[Any] = []
    for n, who in enumerate(("bor-0001", "cene-0001", ANA)):
        if who != ANA:
            bodies.append(CustomerRegistered(customer_id=who, card_number=f"20000000001{n}9",
                                             profile=Profile(kind="person", given_name=who,
                                                             surname="B", category="B")))
        bodies.append(SaleRecorded(
            sale_id=new_id(), customer_id=who, currency="EUR",
            lines=[SaleLine(sku="X", name="X", qty=1, unit_price=50_000, gross=50_000,
                            discount=0, net=50_000)],
            payments=[Payment(mode="cash", amount=50_000)], total_gross=50_000,
            total_discount=0, total_net=50_000, points_earned=0))
    events = [make_event("A", 2 + i, body) for i, body in enumerate(bodies)]
    ingest.push(chain, "A", PushRequest(outlet_id="A", events=events))


ANA = edits.ANA
RULE = {"category": "A", "min_turnover": "400,00", "window_days": "365", "reason": "loyal"}


def test_a_category_rule_is_previewed_with_who_moves_and_saved_and_applied(
        chain: Chain) -> None:
    two_customers_spend(chain)
    client = signed_in(chain, "olga")
    csrf = csrf_of(client, "/office/programme/rules/new")
    facts = chain.db.scalar("SELECT COUNT(*) FROM events WHERE outlet_id = 'HQ'")
    shown = client.post("/office/programme/rules/preview", data={**RULE, "csrf": csrf})
    assert shown.status_code == 200, shown.text
    assert "<b>2</b> customers move from B to A" in shown.text
    assert "400.00" in shown.text  # the threshold shown as money
    assert chain.db.scalar("SELECT COUNT(*) FROM events WHERE outlet_id = 'HQ'") == facts
    assert admin.master_docs(chain, "category_rule") == {}
    saved = client.post("/office/programme/rules", follow_redirects=False,
                        data={**RULE, "apply": "on", "csrf": csrf})
    assert saved.status_code == 303, saved.text
    assert admin.master_docs(chain, "category_rule")["A"]["min_turnover"] == 40_000
    assert admin.customer_view(chain, "bor-0001")["category"] == "A"
    [row] = [dict(r) for r in chain.db.all("SELECT * FROM audit WHERE action = "
                                           "'category_rule.put'")]
    assert (row["staff"], row["reason"]) == ("olga", "loyal")
    again = client.post("/office/programme/rules/preview", data={**RULE, "csrf": csrf})
    assert "No customer changes category" in again.text


def test_a_refused_category_rule_says_why_and_changes_nothing(chain: Chain) -> None:
    client = signed_in(chain, "olga")
    csrf = csrf_of(client, "/office/programme/rules/new")
    for typed, says in (({"min_turnover": "lots"}, "Minimum turnover"),
                        ({"min_turnover": "-5"}, "Minimum turnover"),
                        ({"window_days": "0"}, "Window (days)"),
                        ({"window_days": "a year"}, "Window (days)"),
                        ({"category": "Z"}, "Category")):
        answer = client.post("/office/programme/rules", data={**RULE, **typed, "csrf": csrf})
        assert answer.status_code == 422, typed
        assert 'id="rule-error"' in answer.text and says in answer.text
    assert admin.master_docs(chain, "category_rule") == {}
    assert chain.db.scalar("SELECT COUNT(*) FROM audit WHERE action LIKE 'category_rule%'") == 0


def test_a_category_edit_shows_money_and_percentages_before_after_and_saves_audited(
        chain: Chain) -> None:
    client = signed_in(chain, "olga")
    form = client.get("/office/programme/doc/category/edit/B")
    assert form.status_code == 200
    assert 'id="d-credit_limit" value="2000.00"' in form.text  # 200,000 minor units
    assert 'id="d-floor_returns" value="200.00"' in form.text  # returns of other outlets' sales
    assert 'id="d-discount_bp" value="7"' in form.text
    csrf = csrf_of(client, "/office/programme/doc/category/edit/B")
    typed = {"code": "B", "name": "Silver", "discount_bp": "8.5", "points_per_100": "150",
             "credit_limit": "2.500,00", "floor_points": "1500", "floor_credit": "200,00",
             "floor_returns": "150,00", "reason": "competition", "csrf": csrf}
    before = admin.master_docs(chain, "category")["B"]
    shown = client.post("/office/programme/doc/category/preview", data=typed)
    assert "Changes category" in shown.text and "2,000.00" in shown.text \
        and "2,500.00" in shown.text and "8.5 %" in shown.text
    assert admin.master_docs(chain, "category")["B"] == before
    saved = client.post("/office/programme/doc/category/save", data=typed,
                        follow_redirects=False)
    assert saved.status_code == 303, saved.text
    after = admin.master_docs(chain, "category")["B"]
    assert (after["discount_bp"], after["credit_limit"], after["floor_credit"],
            after["floor_returns"]) == (850, 250_000, 20_000, 15_000)
    [row] = [dict(r) for r in chain.db.all("SELECT * FROM audit WHERE action = 'category.put'")]
    assert (row["staff"], row["subject"], row["reason"]) == ("olga", "B", "competition")


def test_a_gift_points_value_is_checked_and_a_refusal_changes_nothing(chain: Chain) -> None:
    client = signed_in(chain, "olga")
    csrf = csrf_of(client, "/office/programme/doc/gift/new")
    before = master_rows(chain)
    for typed, says in (({"points_cost": "0"}, "Points value"),
                        ({"points_cost": "many"}, "Points value: type a whole number"),
                        ({"sku": "bad sku!"}, "SKU")):
        answer = client.post("/office/programme/doc/gift/save", data={
            "sku": "GIFT-PEN", "name": "Pen", "points_cost": "300", **typed, "csrf": csrf})
        assert answer.status_code == 422 and says in answer.text, typed
    assert master_rows(chain) == before
    saved = client.post("/office/programme/doc/gift/save", follow_redirects=False, data={
        "sku": "GIFT-PEN", "name": "Pen", "points_cost": "300", "csrf": csrf})
    assert saved.status_code == 303
    assert admin.master_docs(chain, "gift")["GIFT-PEN"]["points_cost"] == 300
    assert client.get("/office/programme/doc/staff/new").status_code == 404
