"""Outlets for administrators in HQ's back office (hq/office/outlet_admin.py), in process:
registering an outlet shows its token once (never in the audit trail), the token then
works for sync; rotating replaces it (the old one stops working); a bad or taken id is
refused on the form; an operator is refused; the health list puts stale outlets first."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import test_office_customer_edit as edits
from test_office_customer_edit import csrf_of, signed_in

from hq import admin, credentials, staff
from hq.chain import Chain
from schema.errors import Unauthorized

chain = edits.chain  # HQ with outlet A; olga (operator) and vera (viewer)


def token_of(text: str) -> str:
    found = re.search(r'id="outlet-token" class="mono">([^<]+)<', text)
    assert found, text
    return found.group(1)


def test_an_outlet_is_registered_and_its_token_shown_once_and_rotated(chain: Chain) -> None:
    with chain.db.write() as conn:
        staff.add(conn, "root", edits.PASSWORD)
    client = signed_in(chain, "root")
    csrf = csrf_of(client, "/office/outlets")
    made = client.post("/office/outlets", data={"outlet_id": "C", "reason": "new shop",
                                                "csrf": csrf})
    assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
    token = token_of(made.text)
    assert credentials.outlet_for(chain.db, token) == "C"
    assert token not in client.get("/office/outlets").text
    assert token not in client.get("/office/audit").text
    rotated = client.post("/office/outlets/C/token", data={"reason": "leaked", "csrf": csrf})
    new = token_of(rotated.text)
    assert new != token and credentials.outlet_for(chain.db, new) == "C"
    with pytest.raises(Unauthorized):  # the old token stopped working
        credentials.outlet_for(chain.db, token)
    trail = [(r["action"], r["subject"], r["staff"]) for r in chain.db.all(
        "SELECT * FROM audit WHERE subject_kind = 'outlet' ORDER BY audit_id")]
    assert trail == [("outlet.add", "C", "root"), ("outlet.token", "C", "root")]
    assert token not in str([dict(r) for r in chain.db.all("SELECT * FROM audit")])
    taken = client.post("/office/outlets", data={"outlet_id": "C", "csrf": csrf})
    assert taken.status_code == 409 and 'id="outlet-error"' in taken.text
    bad = client.post("/office/outlets", data={"outlet_id": "no spaces", "csrf": csrf})
    assert bad.status_code == 422 and 'id="outlet-token"' not in bad.text
    assert len(admin.outlets(chain)) == 2


def test_an_operator_is_refused_outlet_registration(chain: Chain) -> None:
    client = signed_in(chain, "olga")
    page = client.get("/office/outlets")
    assert page.status_code == 200 and 'id="add-outlet"' not in page.text
    csrf = csrf_of(client, "/office/outlets")
    assert client.post("/office/outlets", data={"outlet_id": "D", "csrf": csrf}
                       ).status_code == 403
    assert client.post("/office/outlets/A/token", data={"csrf": csrf}).status_code == 403
    assert [o["outlet_id"] for o in admin.outlets(chain)] == ["A"]


def test_stale_outlets_come_first_longest_out_of_touch_first() -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)

    def row(outlet_id: str, age: int | None, stale: bool, clock_off: bool = False
            ) -> dict[str, object]:
        return {"outlet_id": outlet_id, "age_s": age, "stale": stale, "clock_off": clock_off,
                "last_seen": None if age is None else (now - timedelta(seconds=age)).isoformat()}

    rows = [row("A", 10, False), row("B", 9_000, True), row("C", None, True),
            row("D", 20_000, True), row("E", 5, False, clock_off=True)]
    assert [r["outlet_id"] for r in admin.outlets_needing_care_first(rows)] == [
        "C", "D", "B", "E", "A"]
