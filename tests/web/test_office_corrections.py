"""A points or credit correction in HQ's back office (hq/office/corrections.py), in
process: the preview says what it will do and changes nothing; the confirm is the admin
API's own call (hq.admin.adjust: HQ's fact, audited before -> after with the reason); a
double submit of the same preview books once; a refused form shows its code and changes
nothing; a viewer is refused."""

from __future__ import annotations

import re

import test_office_customer_edit as edit_tests
from fastapi.testclient import TestClient
from test_office_customer_edit import ANA, audit_rows, csrf_of, hq_facts, signed_in

from hq import admin
from hq.audit import Actor
from hq.chain import Chain

chain = edit_tests.chain  # the fixture: a chain with customer ANA, operator olga, viewer vera
PAGE = f"/office/customers/{ANA}/correction"


def previewed(client: TestClient, **typed: str) -> tuple[str, str]:
    """(the preview page's text, its token) for the form `typed`."""
    csrf = csrf_of(client, PAGE)
    answer = client.post(PAGE + "/preview", data={"csrf": csrf, **typed})
    found = re.search(r'name="token" value="([^"]+)"', answer.text)
    return answer.text, found.group(1) if found else ""


def test_a_correction_previews_then_books_once_even_when_submitted_twice(chain: Chain) -> None:
    admin.adjust(chain, ANA, 1200, 0, "opening balance", by=None)
    facts = hq_facts(chain)
    client = signed_in(chain, "olga")
    assert 'id="correct-customer"' in client.get(f"/office/customers/{ANA}").text
    text, token = previewed(client, points="-200", credit="-12,50", reason="double booked sale")
    assert "Points: 1,200 → 1,000" in text and "Credit owed: 0.00 → 12.50" in text
    assert token and hq_facts(chain) == facts  # a preview changes nothing
    csrf = csrf_of(client, PAGE)
    form = {"csrf": csrf, "points": "-200", "credit": "-12,50", "reason": "double booked sale",
            "token": token}
    for _ in range(2):  # the double click
        answer = client.post(PAGE, data=form, follow_redirects=False)
        assert answer.status_code == 303, answer.text
    view = admin.customer_view(chain, ANA)
    assert (view["points_balance"], view["credit_balance"]) == (1000, 1250)
    assert hq_facts(chain) == facts + 1
    [row] = [r for r in audit_rows(chain) if r["action"] == "customer.adjust"]
    assert (row["staff"], row["role"], row["reason"]) == ("olga", "operator",
                                                          "double booked sale")
    assert '"points": 1200' in row["before"] and '"points": 1000' in row["after"]


def test_the_same_form_token_books_once_through_the_domain_call(chain: Chain) -> None:
    by = Actor("olga", "operator")
    first = admin.adjust(chain, ANA, 300, 0, "goodwill", by=by, key="office:form-1")
    again = admin.adjust(chain, ANA, 300, 0, "goodwill", by=by, key="office:form-1")
    assert again["event_id"] == first["event_id"] and again["points_balance"] == 300
    assert admin.customer_view(chain, ANA)["points_balance"] == 300


def test_a_refused_correction_shows_why_and_changes_nothing(chain: Chain) -> None:
    facts = hq_facts(chain)
    client = signed_in(chain, "olga")
    for typed, says in (({"points": "12a", "reason": "x"}, "Points: type a whole number"),
                        ({"credit": "1.2.3", "reason": "x"}, "Credit:"),
                        ({"points": "0", "reason": "x"}, "changes nothing"),
                        ({"points": "50", "reason": " "}, "Why:")):
        text, token = previewed(client, **typed)
        assert says in text and "[invalid_request]" in text and token == "", typed
    csrf = csrf_of(client, PAGE)
    answer = client.post(PAGE, data={"csrf": csrf, "points": "50", "reason": "no preview"})
    assert answer.status_code == 422 and "Preview the correction first" in answer.text
    assert hq_facts(chain) == facts and audit_rows(chain) == []


def test_a_viewer_is_refused_the_correction_form(chain: Chain) -> None:
    client = signed_in(chain, "vera")
    assert 'id="correct-customer"' not in client.get(f"/office/customers/{ANA}").text
    answer = client.get(PAGE)
    assert answer.status_code == 403 and "needs the operator role" in answer.text
