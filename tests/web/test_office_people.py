"""The customer forms of issue 12 in HQ's back office (hq/office/customer_edit.py), in
process: a picture upload, a lost card replaced, two profiles merged after a preview.
Each saved form is HQ's own fact with its audit row; each refused one is shown again with
its stable code and changes nothing; a viewer is refused every one."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image
from test_office_customer_edit import ANA, chain, csrf_of, signed_in

from hq import admin, ingest
from hq.chain import Chain
from schema.events import CustomerRegistered, Payment, Profile, SaleLine, SaleRecorded, make_event
from schema.sync import PushRequest

__all__ = ["chain"]  # the fixture, shared with the profile form's tests

ANA_CARD = "2000000000015"
TWIN = "ana-0002"  # the same person, signed up again
TWIN_CARD = "2900010000022"
NEW_CARD = "2900010000046"


def png(width: int, height: int, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 200)).save(out, format=fmt)
    return out.getvalue()


def state(chain: Chain) -> dict[str, Any]:
    # through the store (either one), in an order that does not depend on the store's
    return {t: sorted((tuple(r) for r in chain.db.all(f"SELECT * FROM {t}")), key=repr)
            for t in ("events", "customers", "identifiers", "customer_tally", "audit")}


def add_twin(chain: Chain) -> None:
    """TWIN registered at outlet A with a sale of 40 points; ANA has a sale of 60."""
    line = SaleLine(sku="COF", name="Coffee", qty=1, unit_price=900, gross=900, discount=0,
                    net=900)
    bodies = [CustomerRegistered(customer_id=TWIN, card_number=TWIN_CARD, profile=Profile(
                  kind="person", given_name="Ana", surname="Novak", category="A")),
              *(SaleRecorded(sale_id=f"s-{cid}", customer_id=cid, currency="EUR", lines=[line],
                             payments=[Payment(mode="cash", amount=900)], total_gross=900,
                             total_discount=0, total_net=900, points_earned=points)
                for cid, points in ((ANA, 60), (TWIN, 40)))]
    ingest.push(chain, "A", PushRequest(outlet_id="A", events=[
        make_event("A", 2 + i, body) for i, body in enumerate(bodies)]))


def test_an_uploaded_picture_is_saved_shown_and_audited(chain: Chain) -> None:
    client = signed_in(chain, "olga")
    csrf = csrf_of(client, f"/office/customers/{ANA}/edit")
    raw = png(240, 300, "JPEG")
    answer = client.post(f"/office/customers/{ANA}/picture", follow_redirects=False,
                         data={"csrf": csrf, "reason": "new photo"},
                         files={"picture": ("ana.jpg", raw, "image/jpeg")})
    assert answer.status_code == 303, answer.text
    assert admin.picture(chain, ANA) == raw
    page = client.get(f"/office/customers/{ANA}/edit?done=picture").text
    assert 'id="current-picture"' in page and "Picture saved" in page
    shown = client.get(f"/office/customers/{ANA}/picture")
    assert (shown.status_code, shown.headers["content-type"], shown.content) == (
        200, "image/jpeg", raw)
    row = chain.db.one("SELECT staff, action, reason, after FROM audit "
                       "WHERE customer_id IS NOT NULL")
    assert row is not None and tuple(row)[:3] == ("olga", "customer.picture", "new photo")


@pytest.mark.parametrize(("raw", "says"), [
    (png(301, 200), "301x200"),
    (png(20, 20, "GIF"), "PNG or JPEG only"),
    (b"%PDF-1.4 not a picture", "not a readable PNG or JPEG"),
])
def test_a_picture_too_large_or_not_an_image_is_refused_on_the_form(
        chain: Chain, raw: bytes, says: str) -> None:
    client = signed_in(chain, "olga")
    csrf = csrf_of(client, f"/office/customers/{ANA}/edit")
    before = state(chain)
    answer = client.post(f"/office/customers/{ANA}/picture", data={"csrf": csrf},
                         files={"picture": ("me.png", raw, "image/png")})
    assert answer.status_code == 422
    assert 'id="edit-error"' in answer.text and says in answer.text
    assert "[invalid_request]" in answer.text
    assert state(chain) == before


def test_a_lost_card_is_replaced_from_the_form_and_a_used_number_is_refused(
        chain: Chain) -> None:
    add_twin(chain)
    client = signed_in(chain, "olga")
    csrf = csrf_of(client, f"/office/customers/{ANA}/edit")
    before = state(chain)
    refused = client.post(f"/office/customers/{ANA}/replace-card", data={
        "csrf": csrf, "lost": ANA_CARD, "card": TWIN_CARD, "reason": "lost"})
    assert refused.status_code == 409 and "[card_in_use]" in refused.text
    assert "****0022" in refused.text and state(chain) == before
    answer = client.post(f"/office/customers/{ANA}/replace-card", follow_redirects=False,
                         data={"csrf": csrf, "lost": ANA_CARD, "card": NEW_CARD,
                               "reason": "lost on the bus"})
    assert answer.status_code == 303, answer.text
    view = admin.customer_view(chain, ANA)
    assert {(i["value"], i["status"]) for i in view["identifiers"]} == {
        (ANA_CARD, "lost"), (NEW_CARD, "active")}
    assert view["points_balance"] == 60
    row = chain.db.one("SELECT action, reason FROM audit WHERE customer_id IS NOT NULL")
    assert row is not None and tuple(row) == ("card.replace", "lost on the bus")


def test_a_merge_is_previewed_then_confirmed_with_a_reason(chain: Chain) -> None:
    add_twin(chain)
    client = signed_in(chain, "olga")
    preview = client.get(f"/office/customers/{ANA}/merge", params={"duplicate": TWIN_CARD})
    assert preview.status_code == 200, preview.text
    assert 'id="after-points" data-value="100"' in preview.text  # 60 + 40
    assert TWIN_CARD in preview.text and 'id="merge-confirm"' in preview.text
    csrf = csrf_of(client, f"/office/customers/{ANA}/edit")
    before = state(chain)
    no_reason = client.post(f"/office/customers/{ANA}/merge",
                            data={"csrf": csrf, "merged": TWIN, "reason": " "})
    assert no_reason.status_code == 422 and "[invalid_request]" in no_reason.text
    assert 'id="merge-error"' in no_reason.text and state(chain) == before
    answer = client.post(f"/office/customers/{ANA}/merge", follow_redirects=False,
                         data={"csrf": csrf, "merged": TWIN, "reason": "signed up twice"})
    assert answer.status_code == 303, answer.text
    assert admin.customer_view(chain, ANA)["points_balance"] == 100
    survivor = client.get(f"/office/customers/{ANA}").text
    assert 'id="merged-from"' in survivor and TWIN in survivor
    merged = client.get(f"/office/customers/{TWIN}").text
    assert 'id="merged-into"' in merged
    found = client.get("/office/customers", params={"q": "Novak"}).text
    assert f'class="merged" href="/office/customers/{ANA}"' in found
    again = client.get(f"/office/customers/{ANA}/merge", params={"duplicate": TWIN})
    assert again.status_code == 409 and "[customer_merged]" in again.text
    actions = [tuple(r) for r in chain.db.all("SELECT customer_id, action FROM audit WHERE "
                                              "customer_id IS NOT NULL ORDER BY audit_id")]
    assert actions == [(TWIN, "customer.merge"), (ANA, "customer.merge")]


def test_a_viewer_is_refused_every_new_customer_form(chain: Chain) -> None:
    add_twin(chain)
    client = signed_in(chain, "vera")
    before = state(chain)
    for path, data, files in (
            ("picture", {}, {"picture": ("a.png", png(10, 10), "image/png")}),
            ("replace-card", {"lost": ANA_CARD, "card": NEW_CARD}, None),
            ("merge", {"merged": TWIN, "reason": "x"}, None)):
        answer = client.post(f"/office/customers/{ANA}/{path}", data=data, files=files)
        assert answer.status_code == 403, path
        assert "role_required" in answer.text, path
    assert client.get(f"/office/customers/{ANA}/merge?duplicate={TWIN}").status_code == 403
    assert state(chain) == before
