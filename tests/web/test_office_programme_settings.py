"""The programme's return and expiry settings in HQ's back office
(hq/office/programme_settings.py), in process: the preview shows each setting before →
after and what the expiry rule would do to the points held now, and changes nothing;
turning expiry on without a start date counts from today (nothing expires at once), a
start date in the past shows the points that would expire at once; the save is the
`programme` master document (put_master: it reaches outlets), audited with the reason;
a refused form shows its code and changes nothing; a viewer is refused."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import test_office_customer_edit as edit_tests
from fastapi.testclient import TestClient
from test_office_customer_edit import ANA, csrf_of, signed_in

from hq import admin
from hq.chain import Chain
from schema.lots import add_months, end_of_month_after

chain = edit_tests.chain  # the fixture: a chain with customer ANA, operator olga, viewer vera
PAGE = "/office/programme/settings"
FORM = {"points_policy": "negative", "point_value_per_100": "", "return_window_days": "30",
        "outlet_floor_returns": "5000.00", "kind": "end_of_month", "months": "2", "since": "",
        "grace_days": "3", "reason": "expiry from the new year's terms"}


def post(client: TestClient, path: str, **typed: str) -> str:
    answer = client.post(path, data={"csrf": csrf_of(client, PAGE), **FORM, **typed},
                         follow_redirects=False)
    return answer.text if answer.status_code != 303 else "303"


def programme(chain: Chain) -> dict[str, object]:
    return admin.master_docs(chain, "programme").get("programme") or {}


def test_turning_expiry_on_previews_the_points_it_would_expire_and_saves_from_today(
        chain: Chain) -> None:
    admin.adjust(chain, ANA, 3_120, 0, "opening balance", by=None)
    today = datetime.now(UTC).date()
    chain.clock = lambda: f"{today.isoformat()}T09:00:00.000000Z"
    client = signed_in(chain, "olga")
    assert "Returns and expiry" in client.get(PAGE).text
    text = post(client, PAGE + "/preview")
    assert "<td>Points expire</td><td>never</td><td>at the end of the Nth month" in text
    assert "Nothing expires at once" in text
    last_day = end_of_month_after(today, 2)
    assert f"3,120 points in 1 lot would expire on {last_day.isoformat()}" in text
    assert programme(chain) == {}  # a preview changes nothing

    assert post(client, PAGE) == "303"
    saved = programme(chain)
    assert saved["expiry"] == {"kind": "end_of_month", "months": 2, "since": today.isoformat(),
                              "grace_days": 3}
    assert saved["returns"]["outlet_floor_returns"] == 500_000  # type: ignore[index]
    [row] = chain.db.all("SELECT staff, reason FROM audit WHERE action = 'programme.put' "
                         "AND subject = 'programme'")
    assert tuple(row) == ("olga", "expiry from the new year's terms")
    assert "Saved" in client.get(PAGE + "?done=1").text
    assert f'value="{today.isoformat()}"' in client.get(PAGE).text  # the start kept on re-save


def test_a_start_date_in_the_past_shows_what_would_expire_at_once(chain: Chain) -> None:
    today = datetime.now(UTC).date()
    long_ago = add_months(today, -14)
    chain.clock = lambda: f"{long_ago.isoformat()}T09:00:00.000000Z"
    admin.adjust(chain, ANA, 700, 0, "points of an old campaign", by=None)
    chain.clock = lambda: f"{today.isoformat()}T09:00:00.000000Z"
    client = signed_in(chain, "olga")
    text = post(client, PAGE + "/preview", months="1", since=long_ago.isoformat())
    assert re.search(r"700 points in 1 lots would expire at once", text)
    assert programme(chain) == {}


def test_a_refused_settings_form_shows_why_and_changes_nothing(chain: Chain) -> None:
    client = signed_in(chain, "olga")
    for typed, says in (({"points_policy": "reduce_refund"}, "point_value_per_100"),
                        ({"months": "x"}, "Months: type a whole number"),
                        ({"since": "31.12.2026"}, "Counted from: choose a day"),
                        ({"outlet_floor_returns": "12,3,4"}, "Outlet limit")):
        text = post(client, PAGE + "/preview", **typed)
        assert says in text and "[invalid_request]" in text, (typed, text[-2000:])
    assert "Why: say why" in post(client, PAGE, reason="")
    assert programme(chain) == {}


def test_a_viewer_is_refused_the_settings_page(chain: Chain) -> None:
    answer = signed_in(chain, "vera").get(PAGE)
    assert answer.status_code == 403 and "needs the operator role" in answer.text
