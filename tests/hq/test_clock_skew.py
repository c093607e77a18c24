"""Outlet clocks years off, at HQ (issue 9, item 2; docs/sync.md "Outlet clocks").

Outlets are played by `HQClient`s pushing hand-made batches whose stamps come from a clock
years off (2031, 2001) or are not times at all, each push carrying that clock's `sent_at`
as a current outlet does. HQ must book such facts at its own receive time (this month's
invoice close, today's turnover, a sane "last purchase"), keep the stamps as sent in its
ledger, measure each outlet's clock offset and raise ONE flag per outlet while it lasts.
HQ answers in this process (hqkit.InProcessHQ, on each store) and `loyalty report` runs in
process; the tolerance option is checked on a real `loyalty hq serve --clock-tolerance`
(the slow tier).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from chainkit import HQProcess
from hqkit import AnyHQ, HQClient, registered
from testkit.inprocess import cli

from schema.events import Event, Payment, SaleLine, SaleRecorded, make_event, new_id

HQ_ON_BOTH_STORES = True  # `hq` (tests/hq/conftest.py) in process on SQLite and PostgreSQL
HQ_OUTLETS = ("FUTURE", "PAST", "OLD", "BACK")
YEAR = timedelta(days=365)
AHEAD = 5 * YEAR + timedelta(days=1)  # a clock saying 2031
BEHIND = -(26 * YEAR)  # a clock saying 2000/2001


def client(hq: AnyHQ, outlet_id: str) -> HQClient:
    return HQClient(hq, outlet_id, hq.tokens[outlet_id])


def clock(skew: timedelta) -> str:
    """What an outlet whose clock is `skew` off reads now."""
    moment = datetime.now(UTC) + skew
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def today() -> date:
    return datetime.now(UTC).date()


def credit_sale(customer_id: str, net: int) -> SaleRecorded:
    return SaleRecorded(
        sale_id=new_id(), customer_id=customer_id, till_id="T1", currency="EUR",
        lines=[SaleLine(sku="OIL", name="Olive oil", qty=1, unit_price=net, gross=net,
                        discount=0, net=net)],
        payments=[Payment(mode="credit", amount=net)], total_gross=net, total_discount=0,
        total_net=net, points_earned=net // 100)


def stamped(client: HQClient, skew: timedelta, *bodies: Any) -> list[Event]:
    first = client.next_seq()
    return [make_event(client.outlet_id, first + i, body, at=clock(skew))
            for i, body in enumerate(bodies)]


def push(client: HQClient, events: list[Event], skew: timedelta | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"protocol": 1, "outlet_id": client.outlet_id,
                               "events": [e.model_dump(mode="json") for e in events]}
    if skew is not None:
        payload["sent_at"] = clock(skew)
    answer = client.push_raw(payload)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def hello(client: HQClient, skew: timedelta | None) -> dict[str, Any]:
    params = {} if skew is None else {"sent_at": clock(skew)}
    answer = client.http.get(client.hq.url + "/v1/sync/hello", params=params, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def outlet_flags(hq: AnyHQ, outlet_id: str, every: bool = False) -> list[dict[str, Any]]:
    flags = hq.admin("GET", "/v1/admin/flags" + ("?all=true" if every else ""))
    return [f for f in flags if f["outlet_id"] == outlet_id and f["event_id"] is None]


def outlet_row(hq: AnyHQ, outlet_id: str) -> dict[str, Any]:
    return next(o for o in hq.admin("GET", "/v1/admin/outlets") if o["outlet_id"] == outlet_id)


def close_this_month(hq: AnyHQ) -> list[dict[str, Any]]:
    first = today().replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return hq.admin("POST", "/v1/admin/invoices/close", 201, json={  # type: ignore[no-any-return]
        "period_from": first.isoformat(), "period_to": following.isoformat(),
        "issued_on": following.isoformat()})


def turnover_today(hq: AnyHQ, outlet_id: str) -> dict[str, str]:
    done = cli("report", "turnover", "--db", str(hq.db), "--from", today().isoformat(),
               "--to", today().isoformat(), "--outlet", outlet_id, "--format", "csv")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    rows = [dict(zip(lines[0].split(","), row.split(","), strict=True)) for row in lines[1:]]
    return next((r for r in rows if outlet_id in r.values()), {})


def everything_hq_shows(hq: AnyHQ, customer_id: str) -> str:
    """The customer's view, its invoices, its receipts report and the outlets, as text."""
    shown = [json.dumps(hq.customer(customer_id)),
             json.dumps(hq.admin("GET", f"/v1/admin/invoices?customer={customer_id}")),
             json.dumps(hq.admin("GET", "/v1/admin/outlets")),
             json.dumps(hq.admin("GET", "/v1/admin/flags"))]
    done = cli("report", "receipts", "--db", str(hq.db), "--customer", customer_id)
    assert done.returncode == 0, done.stderr
    shown.append(done.stdout)
    return "\n".join(shown)


def test_a_2031_clock_credit_sale_is_billed_this_month_counted_today_and_flagged_once(
        hq: AnyHQ) -> None:
    outlet = client(hq, "FUTURE")
    who = registered("Future")
    first = stamped(outlet, AHEAD, who, credit_sale(who.customer_id, 5_000))
    answer = push(outlet, first, AHEAD)
    assert [r["result"] for r in answer["results"]] == ["flagged", "flagged"]
    assert all("booked at HQ's receive time" in r["reason"] for r in answer["results"])
    assert answer["clock_offset_s"] > 4 * YEAR.total_seconds()  # HQ tells the outlet
    assert answer["clock_tolerance_s"] == 300
    assert hello(outlet, AHEAD)["clock_offset_s"] > 4 * YEAR.total_seconds()
    second = stamped(outlet, AHEAD, credit_sale(who.customer_id, 2_500))
    push(outlet, second, AHEAD)

    flags = outlet_flags(hq, "FUTURE")
    assert len(flags) == 1, flags  # once per outlet while it lasts, not once per push
    assert "ahead of HQ" in flags[0]["reason"] and "3 facts" in flags[0]["reason"]
    row = outlet_row(hq, "FUTURE")
    assert row["clock_offset_s"] > 4 * YEAR.total_seconds()
    assert row["clock_measured_at"][:10] == today().isoformat()

    made = [m for m in close_this_month(hq) if m["customer_id"] == who.customer_id]
    assert [(m["amount"], m["items"]) for m in made] == [(7_500, 2)]
    items = hq.admin("GET", f"/v1/admin/invoices/{made[0]['number']}")["items"]
    assert {i["at"][:10] for i in items} == {today().isoformat()}
    assert turnover_today(hq, "FUTURE").get("net") == "7500"
    view = hq.customer(who.customer_id)
    assert view["statistics"]["last_purchase_at"][:10] == today().isoformat()
    assert view["credit_balance"] == 7_500
    # the ledger keeps the facts as they were sent
    kept = {r[0]: (r[1], r[2]) for r in hq.rows(
        "SELECT event_id, at, booked_at FROM events WHERE outlet_id = 'FUTURE'")}
    for event in first + second:
        at, booked = kept[event.event_id]
        assert at == event.at and at[:4] > "2030" and booked[:10] == today().isoformat()
    assert not re.search(r"20[34]\d-\d\d-\d\d", everything_hq_shows(hq, who.customer_id))


def test_a_2001_clock_is_invoiced_with_a_sane_date_and_flagged(hq: AnyHQ) -> None:
    outlet = client(hq, "PAST")
    assert hello(outlet, BEHIND)["clock_offset_s"] < -25 * YEAR.total_seconds()
    who = registered("Past")
    answer = push(outlet, stamped(outlet, BEHIND, who, credit_sale(who.customer_id, 1_234)),
                  BEHIND)
    assert [r["result"] for r in answer["results"]] == ["flagged", "flagged"]
    assert "before the outlet was registered" in answer["results"][1]["reason"]

    made = [m for m in close_this_month(hq) if m["customer_id"] == who.customer_id]
    assert [(m["amount"], m["items"]) for m in made] == [(1_234, 1)]
    items = hq.admin("GET", f"/v1/admin/invoices/{made[0]['number']}")["items"]
    assert [i["at"][:10] for i in items] == [today().isoformat()]
    assert turnover_today(hq, "PAST").get("net") == "1234"
    assert hq.customer(who.customer_id)["statistics"]["last_purchase_at"][:10] == \
        today().isoformat()
    flags = outlet_flags(hq, "PAST")
    assert len(flags) == 1 and "behind HQ" in flags[0]["reason"], flags


def test_a_time_that_does_not_parse_is_applied_flagged_and_never_shown(hq: AnyHQ) -> None:
    outlet = client(hq, "OLD")  # an outlet of the previous version: no sent_at at all
    who = registered("Old")
    good = stamped(outlet, timedelta(0), who)
    assert [r["result"] for r in push(outlet, good, None)["results"]] == ["applied"]
    bad = stamped(outlet, timedelta(0), credit_sale(who.customer_id, 990))[0]
    bad = bad.model_copy(update={"at": "not-a-time"})
    answer = push(outlet, [bad], None)
    assert answer["acked_through"] == bad.seq
    assert answer["results"][0]["result"] == "flagged"
    assert "does not parse" in answer["results"][0]["reason"]
    assert set(answer) == {"protocol", "epoch", "acked_through", "results"}  # as before
    assert set(hello(outlet, None)) == {"protocol", "outlet_id", "epoch", "last_seq", "head",
                                        "card_range"}
    view = hq.customer(who.customer_id)  # applied: the sale counts
    assert view["statistics"]["purchases_count"] == 1
    assert view["statistics"]["last_purchase_at"][:10] == today().isoformat()
    assert len(outlet_flags(hq, "OLD")) == 1
    assert outlet_row(hq, "OLD")["clock_offset_s"] is None  # never measured
    assert turnover_today(hq, "OLD").get("net") == "990"
    assert "not-a-time" not in everything_hq_shows(hq, who.customer_id)


def test_the_clock_flag_is_resolved_once_the_clock_is_back(hq: AnyHQ) -> None:
    outlet = client(hq, "BACK")
    hello(outlet, AHEAD)
    hello(outlet, AHEAD)
    assert len(outlet_flags(hq, "BACK")) == 1
    who = registered("Back")
    answer = push(outlet, stamped(outlet, timedelta(seconds=2), who), timedelta(seconds=2))
    assert answer["results"][0]["result"] == "applied"
    assert abs(answer["clock_offset_s"]) < 60
    assert outlet_flags(hq, "BACK") == []
    resolved = outlet_flags(hq, "BACK", every=True)
    assert len(resolved) == 1 and resolved[0]["resolved_at"] and "in step" in resolved[0]["detail"]
    hello(outlet, AHEAD)  # off again: a new flag, one
    hello(outlet, AHEAD)
    assert len(outlet_flags(hq, "BACK")) == 1


class TolerantHQ(HQProcess):
    """`loyalty hq serve --clock-tolerance 3600`: an operator's wider tolerance."""

    def command(self) -> list[str]:
        return [*super().command(), "--clock-tolerance", "3600"]


def test_the_tolerance_is_an_hq_setting(tmp_path: Path) -> None:
    hq = TolerantHQ(tmp_path / "hq.db")
    hq.outlet_add("SLOW")
    _ = hq.admin_token
    hq.start()
    try:
        outlet = client(hq, "SLOW")
        half_hour = timedelta(minutes=-30)
        answer = hello(outlet, half_hour)
        assert answer["clock_tolerance_s"] == 3600 and -1810 < answer["clock_offset_s"] < -1790
        who = registered("Slow")
        made = push(outlet, stamped(outlet, half_hour, who), half_hour)
        assert made["results"][0]["result"] == "applied"
        assert outlet_flags(hq, "SLOW") == []
        assert hello(outlet, timedelta(hours=2))["clock_offset_s"] > 7000
        assert len(outlet_flags(hq, "SLOW")) == 1
    finally:
        hq.kill()
