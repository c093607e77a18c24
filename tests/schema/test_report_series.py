"""Reports over time and the dashboard's other reports (schema.reports, `loyalty report`):
turnover per day/week/month, members joining, active and lapsed members, the points
liability over time, invoice ageing. Checked against the facts pushed, never against the
report's own tables (the convention of tests/schema/test_reports.py, whose worlds these
tests reuse where they fit).

The world here: tests/reportkit.py (HQ with two outlets, registrations, sales and
hand-outs over March and April 2024, pushed as the outlets would send them).
"""

from __future__ import annotations

import random
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from reportkit import SeriesChain, build, hq_reading
from test_reports import (  # noqa: F401  (fixtures)
    STORES,
    HQWorld,
    hq_conn,
    hq_world,
    hq_world_pg,
    outlet_world,
)

from schema import reports
from schema.errors import InvalidRequest
from schema.events import new_id


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> SeriesChain:
    return build(tmp_path_factory.mktemp("series") / "hq.db")


@pytest.fixture(scope="module")
def chain_pg(chain: SeriesChain, pg_cluster: Any) -> Iterator[str]:
    """The same chain moved onto PostgreSQL (`loyalty hq migrate`): its database's URL."""
    from hq.store.migrate import migrate

    url = pg_cluster.database()
    migrate(chain.path, url)
    yield url
    pg_cluster.drop(url)


@pytest.fixture(params=STORES)
def conn(request: pytest.FixtureRequest, chain: SeriesChain) -> Iterator[sqlite3.Connection]:
    """HQ's database on each store (test_reports.hq_conn)."""
    if request.param == "postgresql":
        from hq.store.postgres import PgStore

        store = PgStore(request.getfixturevalue("chain_pg"))
        try:
            with store.snapshot() as snapshot:
                yield snapshot
        finally:
            store.close()
        return
    c = reports.connect(chain.path)
    yield c
    c.close()


def days(first: str, last: str) -> list[str]:
    d, end, out = date.fromisoformat(first), date.fromisoformat(last), []
    while d <= end:
        out.append(d.isoformat())
        d += timedelta(days=1)
    return out


APRIL = {"date_from": "2024-04-01", "date_to": "2024-04-30"}


# --- turnover over time ----------------------------------------------------------------------
def test_turnover_by_day_has_every_day_of_the_period_for_each_outlet_that_sold(
        chain: SeriesChain, conn: sqlite3.Connection) -> None:
    report = reports.run(conn, "turnover", reports.Filters(by="day", **APRIL))
    assert [c.name for c in report.columns] == ["day", "outlet", "receipts", "gross", "discount",
                                                "net", "returned", "net_of_returns"]
    want: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for outlet, at, sale in chain.sales:
        if "2024-04-01" <= at < "2024-05-01":
            want[(at[:10], outlet)][0] += 1
            want[(at[:10], outlet)][1] += sale.total_net
    outlets = sorted({o for _, o in want})
    got = {(r["day"], r["outlet"]): [r["receipts"], r["net"]] for r in report.as_dicts()}
    assert set(got) == {(d, o) for d in days("2024-04-01", "2024-04-30") for o in outlets}
    assert {k: v for k, v in got.items() if v != [0, 0]} == dict(want)
    assert [r["day"] for r in report.as_dicts()] == sorted(r["day"] for r in report.as_dicts())
    assert report.totals is not None and report.totals[-1] == sum(v[1] for v in want.values())
    one = reports.run(conn, "turnover", reports.Filters(by="day", outlet="S", **APRIL))
    assert {r["outlet"] for r in one.as_dicts()} == {"S"}


def test_turnover_by_week_and_month_are_the_sums_of_their_days(conn: sqlite3.Connection) -> None:
    period = {"date_from": "2024-03-01", "date_to": "2024-05-31"}
    by_day = reports.run(conn, "turnover", reports.Filters(by="day", **period)).as_dicts()
    for grain, start in (("week", lambda d: d - timedelta(days=d.weekday())),
                         ("month", lambda d: d.replace(day=1))):
        want: Counter[tuple[str, str]] = Counter()
        for r in by_day:
            want[(start(date.fromisoformat(r["day"])).isoformat(), r["outlet"])] += r["net"]
        got = reports.run(conn, "turnover", reports.Filters(by=grain, **period)).as_dicts()
        assert {(r[grain], r["outlet"]): r["net"] for r in got} == dict(want), grain
    weeks = [r["week"] for r in reports.run(conn, "turnover", reports.Filters(
        by="week", **period)).as_dicts()]
    assert weeks[0] == "2024-02-26" and all(date.fromisoformat(w).weekday() == 0 for w in weeks)


# --- members ----------------------------------------------------------------------------------
def test_members_joining_per_week_with_the_running_count(chain: SeriesChain,
                                                        conn: sqlite3.Connection) -> None:
    report = reports.run(conn, "members", reports.Filters(date_from="2024-03-11",
                                                          date_to="2024-04-14"))
    assert [c.name for c in report.columns] == ["week", "joined", "members"]
    rows = report.as_dicts()
    assert [r["week"] for r in rows] == [(date(2024, 3, 11) + timedelta(weeks=i)).isoformat()
                                         for i in range(5)]
    for r in rows:
        start = r["week"]
        end = (date.fromisoformat(start) + timedelta(days=7)).isoformat()
        lo = max(start, "2024-03-11")
        assert r["joined"] == sum(1 for _, at, _, _ in chain.joined if lo <= at[:10] < end)
        assert r["members"] == sum(1 for _, at, _, _ in chain.joined if at[:10] < end)
    north = reports.run(conn, "members", reports.Filters(outlet="N", by="month"))
    assert {r["month"]: r["joined"] for r in north.as_dicts()} == dict(Counter(
        at[:7] + "-01" for _, at, outlet, _ in chain.joined if outlet == "N"))
    a = reports.run(conn, "members", reports.Filters(category="A", by="month")).as_dicts()
    assert a[-1]["members"] == sum(1 for *_, cat in chain.joined if cat == "A")


# --- active and lapsed ------------------------------------------------------------------------
def expected_activity(chain: SeriesChain, as_of: str) -> dict[str, int]:
    """Members by the end of `as_of`, and who bought in the ACTIVE_DAYS days up to then."""
    end = (date.fromisoformat(as_of) + timedelta(days=1)).isoformat()
    since = (date.fromisoformat(end) - timedelta(days=reports.ACTIVE_DAYS)).isoformat()
    last: dict[str, str] = {}
    for _, at, sale in chain.sales:
        if at < end:
            last[sale.customer_id] = max(last.get(sale.customer_id, ""), at)
    members = [c for c, at, _, _ in chain.joined if at < end]
    return {"members": len(members),
            "active": sum(1 for c in members if last.get(c, "") >= since),
            "lapsed": sum(1 for c in members if c in last and last[c] < since),
            "never_bought": sum(1 for c in members if c not in last)}


def test_activity_tells_active_lapsed_and_never_as_of_the_end_of_a_day(
        chain: SeriesChain, conn: sqlite3.Connection) -> None:
    want = expected_activity(chain, "2024-04-20")
    row = reports.run(conn, "activity", reports.Filters(date_to="2024-04-20")).as_dicts()[0]
    assert {k: row[k] for k in want} == want
    assert want["active"] and want["never_bought"] and not want["lapsed"]
    # later on, the 90 days have moved past some customers' last receipt
    later = expected_activity(chain, "2024-08-10")
    assert later["lapsed"] and later["active"] < want["active"]
    row = reports.run(conn, "activity", reports.Filters(date_to="2024-08-10")).as_dicts()[0]
    assert {k: row[k] for k in later} == later
    by_cat = {r["category"]: r for r in reports.run(conn, "activity", reports.Filters(
        date_to="2024-04-20", by="category")).as_dicts()}
    assert sum(r["members"] for r in by_cat.values()) == want["members"]
    assert by_cat["A"]["members"] == sum(
        1 for c, at, _, cat in chain.joined if cat == "A" and at < "2024-04-21")
    with pytest.raises(InvalidRequest, match="--to"):
        reports.run(conn, "activity", reports.Filters(date_from="2024-04-01"))


# --- points over time -------------------------------------------------------------------------
def test_points_liability_over_time_is_the_balance_at_the_end_of_each_bucket(
        chain: SeriesChain, conn: sqlite3.Connection) -> None:
    changes = [(at, s.points_earned) for _, at, s in chain.sales]
    changes += [(at, -g.points_spent) for _, at, g in chain.gifts]
    report = reports.run(conn, "points-liability", reports.Filters(by="week", **APRIL))
    assert [c.name for c in report.columns] == ["week", "points_earned", "points_used",
                                                "points_expired", "outstanding_points"]
    rows = report.as_dicts()
    assert [r["week"] for r in rows] == ["2024-04-01", "2024-04-08", "2024-04-15",
                                         "2024-04-22", "2024-04-29"]
    for r in rows:
        start = max(r["week"], APRIL["date_from"])
        end = min((date.fromisoformat(r["week"]) + timedelta(days=7)).isoformat(), "2024-05-01")
        assert r["outstanding_points"] == sum(p for at, p in changes if at[:10] < end)
        assert r["points_earned"] == sum(p for at, p in changes if start <= at[:10] < end and p > 0)
        assert r["points_used"] == -sum(p for at, p in changes if start <= at[:10] < end and p < 0)
    now = reports.run(conn, "points-liability").as_dicts()[0]["outstanding_points"]
    every_day = reports.run(conn, "points-liability", reports.Filters(by="day")).as_dicts()
    assert every_day[-1]["outstanding_points"] == now == sum(p for _, p in changes)
    assert [r["day"] for r in every_day] == days(every_day[0]["day"], every_day[-1]["day"])


def test_an_outlet_knows_the_points_it_gave_and_took_not_the_chains_balance(
        outlet_world: Any) -> None:  # noqa: F811
    conn = reports.connect(outlet_world.path)
    report = reports.run(conn, "points-liability", reports.Filters(by="month"))
    rows = report.as_dicts()
    earned = Counter(e["at"][:7] + "-01" for e in outlet_world.events if e["type"] == "sale.recorded"
                     for _ in range(e["body"]["points_earned"]))
    assert {r["month"]: r["points_earned"] for r in rows if r["points_earned"]} == dict(earned)
    assert all(r["outstanding_points"] is None for r in rows)
    assert any("HQ" in n for n in report.notes)


# --- invoice ageing ---------------------------------------------------------------------------
def test_invoice_ageing_sums_what_is_owed_per_status(hq_world: HQWorld,  # noqa: F811
                                                   hq_conn: sqlite3.Connection) -> None:  # noqa: F811
    report = reports.run(hq_conn, "invoice-ageing")
    rows = {r["status"]: r for r in report.as_dicts()}
    assert list(rows) == ["current", "overdue", "past_term"]
    unpaid = [p["amount"] for p in hq_world.invoices.values() if p["fate"] == "unpaid"]
    assert (rows["overdue"]["invoices"], rows["overdue"]["outstanding"]) == (1, sum(unpaid))
    assert rows["current"]["outstanding"] == rows["past_term"]["outstanding"] == 0
    assert report.totals is not None and report.totals[-1] == sum(unpaid)
    assert reports.run(hq_conn, "invoice-ageing", reports.Filters(
        date_from="2024-05-02")).as_dicts()[1]["invoices"] == 0


# --- refusals and the command line --------------------------------------------------------------
def test_a_grouping_a_report_does_not_have_is_refused_naming_the_filter(
        conn: sqlite3.Connection) -> None:
    with pytest.raises(InvalidRequest, match="--by day") as refused:
        reports.run(conn, "discounts", reports.Filters(by="day"))
    assert "turnover" in refused.value.message
    with pytest.raises(InvalidRequest, match="Group"):
        reports.run(conn, "gifts", reports.Filters(by="week"), names=reports.FORM_NAMES)
    with pytest.raises(InvalidRequest, match="week or month"):
        reports.run(conn, "turnover", reports.Filters(by="day", date_from="1990-01-01",
                                                      date_to="2024-01-01"))
    with pytest.raises(InvalidRequest, match="grouped"):
        reports.run(conn, "turnover", reports.Filters(by="year"))


def test_the_command_line_groups_by_day(chain: SeriesChain) -> None:
    from loyalty.cli import main

    out = CliRunner().invoke(main, ["report", "turnover", "--db", str(chain.path), "--by", "day",
                                    "--from", "2024-04-01", "--to", "2024-04-30", "--format",
                                    "csv"])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0] == "day,outlet,receipts,gross,discount,net,returned,net_of_returns"
    assert sum(int(x.split(",")[5]) for x in lines[1:]) == sum(
        s.total_net for _, at, s in chain.sales if "2024-04-01" <= at < "2024-05-01")
    for name in ("members", "activity", "invoice-ageing"):
        done = CliRunner().invoke(main, ["report", name, "--db", str(chain.path)])
        assert done.exit_code == 0, (name, done.output)


# --- points over time with every kind of fact that moves a balance ------------------------------
def ledger_chain(path: Path) -> None:
    """HQ on `path` where points move by every kind of fact between January and April 2024:
    sales, a return taking points back, a hand-out and a gift given back, head office's
    corrections (March and April) and an expiry run (1 April: what was left of the
    January lots, under "end of the month after")."""
    from test_reports import _sale

    from hq import admin, expiry
    from hq.chain import Chain
    from hq.credentials import add_outlet
    from hq.ingest import push
    from schema.events import CustomerRegistered, GiftRedeemed, Profile, make_event
    from schema.receiptcode import reference
    from schema.reversal import Asked, ReturnsSettings, plan_gift_return, plan_return
    from schema.sync import PushRequest

    now = ["2024-01-01T08:00:00.000000Z"]
    chain = Chain(path, clock=lambda: now[0])
    admin.put_master(chain, "programme", {
        "expiry": {"kind": "end_of_month", "months": 1, "since": "2024-01-01",
                   "grace_days": 0}, "returns": {"pending_points": False}}, by=None)
    with chain.db.write() as conn:
        add_outlet(conn, "N")
        conn.execute("UPDATE outlets SET created_at = '2020-01-01T00:00:00.000000Z'")
    rng = random.Random(3)
    ana, ben = "0190c0de-0000-7000-8000-00000000a001", "0190c0de-0000-7000-8000-00000000b001"
    events = [make_event("N", i + 1, CustomerRegistered(
        customer_id=c, card_number=f"29000100{i:05d}", profile=Profile(
            kind="person", given_name="P", surname=f"P{i}", category="A")),
        at="2024-01-02T08:00:00.000000Z") for i, c in enumerate((ana, ben))]

    def emit(body: Any, at: str) -> None:
        events.append(make_event("N", len(events) + 1, body, at=at))

    sales = []
    for customer, day in ((ana, "2024-01-10"), (ben, "2024-01-20"), (ana, "2024-02-03"),
                          (ben, "2024-03-07")):
        sale = _sale(rng, customer, credit=False)
        emit(sale, f"{day}T10:00:00.000000Z")
        sales.append(sale)
    first = sales[1].lines[0]
    emit(plan_return(sales[1], [], [Asked(first.sku, first.qty, line=0)], return_id=new_id(),
                     balance=10**9, settings=ReturnsSettings(), till_id="T1", reason="broken",
                     receipt=reference(sales[1].sale_id)), "2024-02-05T10:00:00.000000Z")
    gift = GiftRedeemed(redemption_id=new_id(), customer_id=ana, gift_sku="MUG", gift_name="Mug",
                        qty=2, points_spent=2 * max(1, sales[0].points_earned // 4))
    emit(gift, "2024-02-10T10:00:00.000000Z")
    emit(plan_gift_return(gift, [], 1, gift_return_id=new_id(), reason="chipped"),
         "2024-02-12T10:00:00.000000Z")
    now[0] = "2024-03-08T09:00:00.000000Z"  # HQ's clock when the outlet pushes them
    push(chain, "N", PushRequest(outlet_id="N", events=events))
    now[0] = "2024-03-08T09:00:01.000000Z"
    admin.adjust(chain, ben, points=-7, reason="double scan", by=None)
    now[0] = "2024-04-01T01:00:00.000000Z"
    assert expiry.run(chain, date(2024, 4, 1))["points"] > 0
    now[0] = "2024-04-03T09:00:00.000000Z"
    admin.adjust(chain, ana, points=25, reason="goodwill", by=None)
    chain.close()


@pytest.mark.parametrize("store", STORES)
def test_points_liability_over_time_counts_returns_corrections_and_expiries(
        store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The balance at each month's end, and each month's figures, as the tallies count
    them: earned net of returns and corrections, used net of gifts given back, expired;
    checked against the ledger's facts (schema.events.tally_of), on both stores."""
    from schema.events import Event, tally_of

    ledger_chain(tmp_path / "hq.db")
    raw = sqlite3.connect(tmp_path / "hq.db")
    moves = []  # (booked day, earned, used, expired)
    for event, booked in raw.execute("SELECT event, COALESCE(booked_at, at) FROM events"):
        t = tally_of(Event.model_validate_json(event).parsed())
        if t.points_earned or t.points_used or t.points_expired:
            moves.append((booked[:10], t.points_earned, t.points_used, t.points_expired))
    raw.close()
    assert {m[0][:7] for m in moves if m[3]} == {"2024-04"}  # the expiry
    assert any(m[1] < 0 for m in moves)  # the return and the negative correction

    def month(first: str, end: str) -> dict[str, int]:
        inside = [m for m in moves if first <= m[0] < end]
        return {"points_earned": sum(m[1] for m in inside),
                "points_used": sum(m[2] for m in inside),
                "points_expired": sum(m[3] for m in inside),
                "outstanding_points": sum(m[1] - m[2] - m[3] for m in moves if m[0] < end)}

    with hq_reading(tmp_path / "hq.db", store, request) as conn:
        whole, cut, april, now = series_of(conn)
    ends = {"2024-01-01": "2024-02-01", "2024-02-01": "2024-03-01",
            "2024-03-01": "2024-04-01", "2024-04-01": "2024-05-01"}
    assert [r["month"] for r in whole] == list(ends)
    for r in whole:
        want = month(r["month"], ends[r["month"]])
        assert {k: r.get(k) for k in want} == want, r["month"]
    # a period ending before the corrections and the expiry: the balance then
    assert cut[-1]["outstanding_points"] == month("2024-02-01", "2024-03-01")[
        "outstanding_points"]
    assert whole[-1]["outstanding_points"] == now
    # a period starting after earlier corrections: the same April
    assert april == whole[-1:]


Rows = list[dict[str, Any]]


def series_of(conn: Any) -> tuple[Rows, Rows, Rows, int]:
    """points-liability by month over January-April, January-February and April, and now."""
    def by_month(first: str, last: str) -> Rows:
        return reports.run(conn, "points-liability", reports.Filters(
            by="month", date_from=first, date_to=last)).as_dicts()

    now = reports.run(conn, "points-liability").as_dicts()[0]["outstanding_points"]
    return (by_month("2024-01-01", "2024-04-30"), by_month("2024-01-01", "2024-02-29"),
            by_month("2024-04-01", "2024-04-30"), int(now))
