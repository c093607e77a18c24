"""Head office's side of the way back (issue 11): corrections, point lots, expiry and
pending points at HQ, on a real SQLite file and on PostgreSQL (tests/hq/conftest.py), with
HQ's clock under the test's control.

- A correction (`balance.adjusted`) is HQ's own fact, in the ledger with its reason, like a
  ban; through the admin API and in process alike. An outlet cannot make one, nor an
  expiry: HQ flags it and applies nothing of it.
- HQ keeps every customer's points as dated lots (schema/lots.py), spent oldest-expiring
  first, in HQ's order.
- Expiry runs on HQ's schedule, as of HQ's own day (`hq/schedule.py` takes it from the
  chain's clock), or when asked (`POST /v1/admin/points/expire`): one `points.expired` fact
  per customer naming the lots, across a month end exactly at the last valid day; again
  the same day, nothing more.
- Turning expiry on is never retroactive by surprise: a rule put without `since` starts
  today.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest
from agentkit import expect_error
from fastapi.testclient import TestClient
from hqkit import ON_POSTGRES, at_once

from agent.programme import default_documents
from hq import admin, credentials, expiry, ingest, schedule
from hq.api import create_app
from hq.chain import Chain
from schema import lotstore, tallystore
from schema.errors import InvalidRequest
from schema.events import (
    BalanceAdjusted,
    CustomerRegistered,
    ExpiredLot,
    GiftRedeemed,
    Payment,
    PointsExpired,
    Profile,
    SaleLine,
    SaleRecorded,
    make_event,
    new_id,
)
from schema.lots import Lot
from schema.masterdata import programme_of
from schema.sync import PushRequest

HQ_ON_BOTH_STORES = True  # every test using `hq` on a SQLite file and on PostgreSQL
CUSTOMER = "c-0001"
CARD = "2900010000015"


class Clock:
    """HQ's clock, set by the test (UTC ISO 8601, as `utc_now` gives it)."""

    def __init__(self, now: str = "2026-01-15T10:00:00.000000Z") -> None:
        self.now = now

    def __call__(self) -> str:
        return self.now

    def day(self, day: str) -> None:
        self.now = f"{day}T10:00:00.000000Z"


class HQ:
    def __init__(self, db: str) -> None:
        self.clock = Clock()
        self.chain = Chain(db, seed=default_documents(), clock=self.clock)
        with self.chain.db.write() as conn:
            self.outlet_token, _ = credentials.add_outlet(conn, "X")
            self.admin_token = credentials.add_admin(conn)
            conn.execute("UPDATE outlets SET created_at = '2020-01-01T00:00:00.000000Z'")
        self.seq = 0
        self.push(CustomerRegistered(customer_id=CUSTOMER, card_number=CARD, profile=Profile(
            kind="person", given_name="Ana", surname="Novak", category="A")))

    def push(self, *bodies: Any) -> list[tuple[str, str | None]]:
        """Outlet X's facts, stamped with HQ's clock."""
        events = []
        for body in bodies:
            self.seq += 1
            events.append(make_event("X", self.seq, body, self.clock()))
        answer = ingest.push(self.chain, "X", PushRequest(outlet_id="X", events=events))
        return [(r.result, r.reason) for r in answer.results]

    def lots(self) -> dict[str, int]:
        with self.chain.db.read() as conn:
            return {lot.lot_id: lot.points for lot in lotstore.load(conn, CUSTOMER)}

    def held(self) -> tuple[Lot, ...]:
        with self.chain.db.read() as conn:
            return lotstore.load(conn, CUSTOMER)

    def balance(self) -> int:
        with self.chain.db.read() as conn:
            return tallystore.points_balance(conn, CUSTOMER)

    def facts(self, kind: str) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self.chain.db.all(
            "SELECT event FROM events WHERE type = ? ORDER BY hq_seq", (kind,))]


@pytest.fixture
def hq(hq_db: str) -> Iterator[HQ]:
    made = HQ(hq_db)
    yield made
    made.chain.close()


def sale(points: int, sale_id: str | None = None, amount: int = 1000) -> SaleRecorded:
    line = SaleLine(sku="S", name="Stuff", qty=1, unit_price=amount, gross=amount, discount=0,
                    net=amount)
    return SaleRecorded(sale_id=sale_id or new_id(), customer_id=CUSTOMER, currency="EUR",
                        lines=[line], payments=[Payment(mode="cash", amount=amount)],
                        total_gross=amount, total_discount=0, total_net=amount,
                        points_earned=points)


def gift(points: int) -> GiftRedeemed:
    return GiftRedeemed(redemption_id=new_id(), customer_id=CUSTOMER, gift_sku="GIFT-MUG",
                        gift_name="Club mug", qty=1, points_spent=points)


def run_on(hq: HQ, day: date) -> dict[str, Any]:
    """The expiry run as of `day`, on that day at HQ (a day after HQ's today is refused)."""
    hq.clock.day(day.isoformat())
    return expiry.run(hq.chain, day)


def expiry_on(hq: HQ, rule: dict[str, Any], **returns: Any) -> None:
    admin.put_master(hq.chain, "programme", {"expiry": rule, "returns": returns}, by=None)


# --- corrections ------------------------------------------------------------------------


def test_an_adjustment_is_an_hq_fact_with_its_reason_in_the_audit_of_facts(hq: HQ) -> None:
    hq.push(sale(100, "S-1"))
    made = admin.adjust(hq.chain, CUSTOMER, points=-30, credit=1250,
                        reason="receipt 0042 scanned twice", corrects="S-1", by=None)
    (fact,) = hq.facts("balance.adjusted")
    assert fact["outlet_id"] == "HQ" and fact["event_id"] == made["event_id"]
    assert fact["body"] == {"adjustment_id": made["adjustment_id"], "customer_id": CUSTOMER,
                            "points": -30, "credit": 1250,
                            "reason": "receipt 0042 scanned twice", "corrects": "S-1"}
    row = hq.chain.db.one("SELECT result, reason FROM events WHERE event_id = ?",
                          (made["event_id"],))
    assert row is not None and tuple(row) == ("applied", None)
    view = admin.customer_view(hq.chain, CUSTOMER)
    assert (view["points_balance"], view["credit_balance"]) == (70, -1250)
    assert (made["points_balance"], made["credit_balance"]) == (70, -1250)
    assert view["statistics"]["total_points_earned"] == 70  # a correction counts as earned
    assert hq.lots() == {"S-1": 70}  # fewer points are taken in spending order
    admin.adjust(hq.chain, CUSTOMER, points=25, reason="goodwill", by=None)
    assert hq.lots() == {"S-1": 70, hq.facts("balance.adjusted")[1]["body"]["adjustment_id"]: 25}
    # outlets get the customer again: HQ bumped it in the change log
    bumped = hq.chain.db.scalar("SELECT seq FROM changes WHERE kind = 'customer' AND key = ?",
                                (CUSTOMER,))
    assert bumped == hq.chain.db.scalar("SELECT MAX(seq) FROM changes")


def test_an_adjustment_of_an_unknown_customer_or_without_a_reason_changes_nothing(
        hq: HQ) -> None:
    before = hq.chain.db.scalar("SELECT COUNT(*) FROM events")
    with pytest.raises(Exception, match="no such customer"):
        admin.adjust(hq.chain, "nobody", points=5, reason="r", by=None)
    with pytest.raises(Exception, match="say why"):
        admin.adjust(hq.chain, CUSTOMER, points=5, reason=" ", by=None)
    with pytest.raises(Exception, match="both are 0"):
        admin.adjust(hq.chain, CUSTOMER, reason="nothing", by=None)
    assert hq.chain.db.scalar("SELECT COUNT(*) FROM events") == before


def test_corrections_and_expiries_sent_by_an_outlet_are_flagged_and_ignored(hq: HQ) -> None:
    hq.push(sale(100, "S-1"))
    answers = hq.push(
        BalanceAdjusted(adjustment_id="A-1", customer_id=CUSTOMER, points=10**6,
                        reason="the outlet's own idea"),
        PointsExpired(expiry_id="E-1", customer_id=CUSTOMER, on="2026-01-15",
                      lots=[ExpiredLot(lot_id="S-1", points=100, expired_on="2026-01-14")]))
    assert [result for result, _ in answers] == ["flagged", "flagged"]
    assert all("only head office makes" in (why or "") for _, why in answers)
    assert hq.balance() == 100 and hq.lots() == {"S-1": 100}
    assert admin.customer_view(hq.chain, CUSTOMER)["statistics"]["total_points_expired"] == 0


# --- lots -------------------------------------------------------------------------------


def test_hq_keeps_points_as_lots_spent_oldest_expiring_first(hq: HQ) -> None:
    expiry_on(hq, {"kind": "end_of_month", "months": 1, "since": "2026-01-01"})
    hq.push(sale(100, "S-jan"))                    # valid through 2026-02-28
    hq.clock.day("2026-02-03")
    hq.push(sale(50, "S-feb"))                     # valid through 2026-03-31
    hq.push(gift(120))                              # all of S-jan, 20 of S-feb
    assert hq.lots() == {"S-feb": 30}
    assert {lot.lot_id: lot.expires_on for lot in hq.held()} == {"S-feb": date(2026, 3, 31)}
    assert hq.balance() == 30
    hq.push(gift(40))                              # more than held: a deficit, flagged
    assert hq.lots() == {"deficit": -10} and hq.balance() == -10
    hq.push(sale(25, "S-feb-2"))                   # repays the deficit first
    assert hq.lots() == {"S-feb-2": 15} and hq.balance() == 15


def test_pending_points_become_spendable_after_the_return_window(hq: HQ) -> None:
    expiry_on(hq, {"kind": "never"}, pending_points=True, return_window_days=14)
    hq.push(sale(100, "S-1"))
    (lot,) = hq.held()
    assert (lot.earned_on, lot.spendable_on) == (date(2026, 1, 15), date(2026, 1, 29))


# --- expiry -----------------------------------------------------------------------------


def test_expiry_runs_on_hqs_clock_across_a_month_end_exactly_once(hq: HQ) -> None:
    expiry_on(hq, {"kind": "end_of_month", "months": 1, "since": "2026-01-01",
                   "grace_days": 0})
    hq.push(sale(100, "S-jan"))                    # 2026-01-15: valid through 2026-02-28
    hq.clock.day("2026-02-03")
    hq.push(sale(50, "S-feb"), gift(30))           # 30 of S-jan spent first
    hq.clock.day("2026-02-28")
    schedule.expire_points(hq.chain)               # the last valid day: nothing yet
    assert hq.facts("points.expired") == [] and hq.balance() == 120
    hq.clock.day("2026-03-01")
    schedule.expire_points(hq.chain)
    (fact,) = hq.facts("points.expired")
    assert fact["outlet_id"] == "HQ"
    assert fact["body"]["on"] == "2026-03-01"
    assert fact["body"]["lots"] == [{"lot_id": "S-jan", "points": 70, "expired_on": "2026-02-28"}]
    assert hq.lots() == {"S-feb": 50} and hq.balance() == 50
    view = admin.customer_view(hq.chain, CUSTOMER)
    assert view["statistics"]["total_points_expired"] == 70
    assert view["statistics"]["total_points_earned"] == 150  # earned stays earned
    schedule.expire_points(hq.chain)               # the same day again: nothing more
    assert len(hq.facts("points.expired")) == 1
    ran = run_on(hq, date(2026, 4, 1))   # as asked for a day
    assert ran == {"on": "2026-04-01", "customers": 1, "lots": 1, "points": 50}
    assert hq.lots() == {} and hq.balance() == 0


def test_a_redemption_made_offline_on_a_lots_last_day_and_pushed_after_the_nightly_run_keeps_the_outlets_balance(
        hq: HQ) -> None:
    expiry_on(hq, {"kind": "end_of_month", "months": 1, "since": "2025-01-01"})
    hq.clock.day("2025-01-10")
    hq.push(sale(100, "S-1"))                       # valid through 2025-02-28
    hq.clock.day("2025-02-15")
    hq.push(sale(100, "S-2"))                       # valid through 2025-03-31
    redeemed = gift(100)                            # made offline on 02-28: takes S-1
    for night in ("2025-03-01", "2025-03-02", "2025-03-05"):
        hq.clock.day(night)
        schedule.expire_points(hq.chain)            # within the grace: nothing expires
    hq.push(redeemed)                               # the outlet comes back on 03-05
    for night in ("2025-03-08", "2025-03-09"):
        hq.clock.day(night)
        schedule.expire_points(hq.chain)
    assert hq.balance() == 100 and hq.lots() == {"S-2": 100}   # as the outlet showed
    assert hq.facts("points.expired") == []


def test_a_lot_expires_after_its_last_day_plus_the_grace_and_keeps_its_printed_date(
        hq: HQ) -> None:
    expiry_on(hq, {"kind": "end_of_month", "months": 1, "since": "2026-01-01",
                   "grace_days": 3})
    hq.push(sale(100, "S-jan"))                     # valid through 2026-02-28
    assert run_on(hq, date(2026, 3, 3))["points"] == 0
    assert run_on(hq, date(2026, 3, 4))["points"] == 100
    (fact,) = hq.facts("points.expired")
    assert fact["body"]["lots"][0]["expired_on"] == "2026-02-28"


def test_an_expiry_per_customer_lot_and_day_is_recorded_once_even_if_two_runs_race(
        hq: HQ) -> None:
    """Two HQ processes (PostgreSQL, READ COMMITTED) may both compute what is due: the
    second one's expiry of the same lot on the same day records nothing."""
    expiry_on(hq, {"kind": "end_of_month", "months": 1, "since": "2026-01-01",
                   "grace_days": 0})
    hq.push(sale(100, "S-jan"))
    hq.clock.day("2026-03-01")
    with hq.chain.db.write() as conn:       # what the other process recorded meanwhile
        assert expiry.claim(conn, CUSTOMER, "2026-03-01", ["S-jan"]) == ["S-jan"]
        assert expiry.claim(conn, CUSTOMER, "2026-03-01", ["S-jan"]) == []
    assert expiry.run(hq.chain, date(2026, 3, 1))["points"] == 0
    assert hq.facts("points.expired") == [] and hq.balance() == 100


@pytest.mark.parametrize("hq_db", [ON_POSTGRES], indirect=True)
def test_two_expiry_runs_at_once_expire_each_lot_once(hq: HQ) -> None:
    """Two HQ processes (PostgreSQL, READ COMMITTED; hqkit.at_once) run the day's expiry
    together, say the schedule's and an operator's: one `points.expired` per lot."""
    expiry_on(hq, {"kind": "end_of_month", "months": 1, "since": "2026-01-01",
                   "grace_days": 0})
    hq.push(sale(100, "S-jan"))
    hq.clock.day("2026-03-01")
    done = at_once(hq.chain, *[lambda: expiry.run(hq.chain, date(2026, 3, 1))] * 2)
    assert sorted(d["points"] for d in done) == [0, 100], done
    assert len(hq.facts("points.expired")) == 1 and hq.balance() == 0


def test_the_nightly_expiry_runs_once_chain_wide(hq: HQ,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Through `schedule.once`: while another HQ process holds the day's expiry (the
    PostgreSQL store's advisory lock; SQLite has one process), this one skips it."""
    expiry_on(hq, {"kind": "end_of_month", "months": 1, "since": "2026-01-01",
                   "grace_days": 0})
    hq.push(sale(100, "S-jan"))
    hq.clock.day("2026-03-01")
    asked: list[str] = []

    @contextmanager
    def held_elsewhere(name: str) -> Iterator[bool]:
        asked.append(name)
        yield False

    monkeypatch.setattr(hq.chain.db, "exclusive", held_elsewhere)
    schedule.expire_points(hq.chain)
    assert asked == ["points-expiry:2026-03-01"] and hq.facts("points.expired") == []
    monkeypatch.undo()
    schedule.expire_points(hq.chain)
    assert len(hq.facts("points.expired")) == 1


def test_expiry_after_months_without_a_purchase(hq: HQ) -> None:
    expiry_on(hq, {"kind": "inactivity", "months": 2, "since": "2025-01-01",
                   "grace_days": 0})
    hq.push(sale(100, "S-1"))                       # 2026-01-15
    hq.clock.day("2026-03-10")
    hq.push(sale(10, "S-2"))                        # a purchase: all lots valid to 05-10
    assert run_on(hq, date(2026, 3, 20))["points"] == 0
    assert run_on(hq, date(2026, 5, 10))["points"] == 0
    assert run_on(hq, date(2026, 5, 11))["points"] == 110
    assert hq.balance() == 0


def test_turning_expiry_on_counts_existing_points_from_today(hq: HQ) -> None:
    hq.clock.day("2025-03-05")
    hq.push(sale(100, "S-old"))                     # under `never`
    hq.clock.day("2025-07-01")
    expiry_on(hq, {"kind": "end_of_month", "months": 12, "grace_days": 0})  # from today
    with hq.chain.db.read() as conn:
        assert programme_of(conn).expiry.since == date(2025, 7, 1)
    assert run_on(hq, date(2026, 7, 31))["points"] == 0
    assert run_on(hq, date(2026, 8, 1))["points"] == 100


def test_the_schedule_runs_the_expiry_every_night() -> None:
    chain = Chain(":memory:")
    try:
        scheduler = schedule.start(chain)
        try:
            job = scheduler.get_job("points-expiry")
            assert job is not None and job.func is schedule.expire_points
            assert str(job.trigger) == "cron[hour='0', minute='30']"
        finally:
            scheduler.shutdown(wait=False)
    finally:
        chain.close()


# --- the admin API ----------------------------------------------------------------------


@pytest.fixture
def http(hq: HQ) -> Iterator[TestClient]:
    client = TestClient(create_app(hq.chain))
    client.headers["Authorization"] = f"Bearer {hq.admin_token}"
    yield client
    hq.chain.waiters.close()


def test_an_adjustment_through_the_admin_api(hq: HQ, http: TestClient) -> None:
    hq.push(sale(100, "S-1"))
    answer = http.post(f"/v1/admin/customers/{CUSTOMER}/adjustments",
                       json={"points": 40, "credit": -500, "reason": "missed promotion"})
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert made["points"] == 40 and made["credit"] == -500 and made["corrects"] is None
    assert (made["points_balance"], made["credit_balance"]) == (140, 500)
    (fact,) = hq.facts("balance.adjusted")
    assert fact["event_id"] == made["event_id"] and fact["body"]["reason"] == "missed promotion"


def test_the_same_idempotency_key_answers_the_same_correction_and_another_body_conflicts(
        hq: HQ, http: TestClient) -> None:
    hq.push(sale(100, "S-1"))
    url, key = f"/v1/admin/customers/{CUSTOMER}/adjustments", {"Idempotency-Key": "corr-1"}
    body = {"points": 40, "reason": "missed promotion"}
    first = http.post(url, json=body, headers=key)
    again = http.post(url, json=body, headers=key)      # a retry after a timeout
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    assert len(hq.facts("balance.adjusted")) == 1 and hq.balance() == 140
    expect_error(http.post(url, json={**body, "points": 41}, headers=key), 409,
                 "idempotency_conflict")
    assert len(hq.facts("balance.adjusted")) == 1 and hq.balance() == 140
    other = http.post(url, json=body, headers={"Idempotency-Key": "corr-2"})
    assert other.status_code == 201 and hq.balance() == 180


def test_two_concurrent_corrections_with_one_idempotency_key_book_one_and_answer_the_same(
        hq_pg: str) -> None:
    """PostgreSQL, two HQ processes at once (hqkit.at_once), READ COMMITTED: neither may
    look the key up before the other has booked; the second answers the first's
    correction, books none and does not fail on the key's unique index."""
    hq = HQ(hq_pg)
    try:
        hq.push(sale(100, "S-1"))
        answers = at_once(hq.chain, *[lambda: admin.adjust(
            hq.chain, CUSTOMER, points=40, reason="missed", by=None, key="corr-race")] * 2)
        assert all(isinstance(a, dict) for a in answers), answers
        assert answers[0] == answers[1]
        assert len(hq.facts("balance.adjusted")) == 1 and hq.balance() == 140
    finally:
        hq.chain.close()


@pytest.mark.parametrize("body, message", [
    ({"points": 0, "credit": 0, "reason": "r"}, "a correction changes points or credit"),
    ({"points": 5}, "reason: required"),
    ({"points": 5, "reason": ""}, "reason: must not be empty"),
    ({"credit": "12.50", "reason": "r"}, "credit: expected an integer amount in cents"),
    ({"points": 1.5, "reason": "r"}, "points: expected an integer"),
    ({"points": 10**10, "reason": "r"}, "points: expected a number at most 1000000000"),
])
def test_a_bad_adjustment_is_refused_and_changes_nothing(hq: HQ, http: TestClient,
                                                         body: dict[str, Any],
                                                         message: str) -> None:
    before = hq.chain.db.scalar("SELECT COUNT(*) FROM events")
    error = expect_error(http.post(f"/v1/admin/customers/{CUSTOMER}/adjustments", json=body),
                         422, "invalid_request")
    assert message in error["message"], error
    assert hq.chain.db.scalar("SELECT COUNT(*) FROM events") == before


def test_an_adjustment_of_an_unknown_customer_is_404(hq: HQ, http: TestClient) -> None:
    expect_error(http.post("/v1/admin/customers/nobody/adjustments",
                           json={"points": 5, "reason": "r"}), 404, "customer_unknown")


def test_the_admin_expiry_refuses_a_day_after_hqs_today_and_changes_nothing(
        hq: HQ, http: TestClient) -> None:
    expiry_on(hq, {"kind": "end_of_month", "months": 1, "since": "2026-01-01"})
    hq.push(sale(100, "S-1"))                       # HQ's today: 2026-01-15
    expect_error(http.post("/v1/admin/points/expire", json={"today": "2062-01-15"}), 422,
                 "invalid_request")
    with pytest.raises(InvalidRequest):
        expiry.run(hq.chain, date(2026, 1, 16))
    assert hq.balance() == 100 and hq.facts("points.expired") == []
    assert run_on(hq, date(2026, 1, 15))["points"] == 0   # today is fine


def test_the_expiry_runs_through_the_admin_api(hq: HQ, http: TestClient) -> None:
    expiry_on(hq, {"kind": "end_of_month", "months": 1, "since": "2026-01-01", "grace_days": 0})
    hq.push(sale(100, "S-1"))
    hq.clock.day("2026-03-01")
    answer = http.post("/v1/admin/points/expire", json={"today": "2026-03-01"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"on": "2026-03-01", "customers": 1, "lots": 1, "points": 100}
    expect_error(http.post("/v1/admin/points/expire", json={"today": "2026-02-30"}), 422,
                 "invalid_request")
    outlet = http.post("/v1/admin/points/expire", json={"today": "2026-03-01"},
                       headers={"Authorization": f"Bearer {hq.outlet_token}"})
    assert outlet.status_code == 403


def test_a_programme_whose_points_would_expire_while_still_pending_is_refused(
        hq: HQ) -> None:
    """Review 11 finding 10: end of the next month, pending for 60 days: a lot earned on
    31 January would expire on 28 February and only become spendable on 1 April."""
    with hq.chain.db.read() as conn:
        before = programme_of(conn)
    with pytest.raises(InvalidRequest) as caught:
        expiry_on(hq, {"kind": "end_of_month", "months": 1, "since": "2026-01-01"},
                  pending_points=True, return_window_days=60)
    assert caught.value.code == "invalid_request"
    assert "pending" in str(caught.value)
    with hq.chain.db.read() as conn:
        assert programme_of(conn) == before
    expiry_on(hq, {"kind": "end_of_month", "months": 3, "since": "2026-01-01"},
              pending_points=True, return_window_days=60)           # 84 days > 60: fine
