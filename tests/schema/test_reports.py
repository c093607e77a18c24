"""Reports (schema.reports, `loyalty report`) checked against the raw facts.

Both kinds of database are built through the real code paths: HQ by pushing events made
with `schema.events.make_event` through `hq.ingest.push` (invoices by `hq.invoices`); an
outlet by `agent.customers.register`, `agent.sales.sell` and `agent.gifts.redeem` under a
controlled clock. Every expected figure is computed here in Python from the facts (the
event bodies we pushed, or the outlet's outbox events), never from the report's tables.
"""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from reportkit import hq_reading

from schema import reports
from schema.errors import InvalidRequest, NotFound
from schema.events import (
    CreditRepaid,
    CustomerRegistered,
    CustomerUpdated,
    Event,
    GiftRedeemed,
    GiftReturned,
    Payment,
    Profile,
    ReturnRecorded,
    SaleLine,
    SaleRecorded,
    make_event,
    new_id,
)
from schema.receiptcode import reference
from schema.reversal import Asked, ReturnsSettings, plan_gift_return, plan_return, plan_void

CATEGORIES = ("A", "B", "C", "D")
# Times around the April 2024 boundaries: the period --from 2024-04-01 --to 2024-04-30
# must take exactly the ones marked True.
EDGES = [("2024-03-31T23:59:59.999999Z", False), ("2024-04-01T00:00:00.000000Z", True),
         ("2024-04-15T12:00:00.000000Z", True), ("2024-04-30T23:59:59.999999Z", True),
         ("2024-05-01T00:00:00.000000Z", False)]
APRIL = {"date_from": "2024-04-01", "date_to": "2024-04-30"}


def in_april(at: str) -> bool:
    return "2024-04-01" <= at < "2024-05-01"


# --- an HQ built from pushed events ------------------------------------------------------
@dataclass
class HQWorld:
    path: Path
    categories: dict[str, str]  # customer -> current category
    sales: list[tuple[str, str, SaleRecorded]] = field(default_factory=list)  # (outlet, at, sale)
    gifts: list[tuple[str, str, GiftRedeemed]] = field(default_factory=list)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)  # customer -> expectation
    returns: list[tuple[str, str, ReturnRecorded]] = field(default_factory=list)
    gift_returns: list[tuple[str, str, GiftReturned]] = field(default_factory=list)

    def sales_where(self, pred: Any) -> list[tuple[str, str, SaleRecorded]]:
        return [s for s in self.sales if pred(*s)]


def _sale(rng: random.Random, customer: str, credit: bool) -> SaleRecorded:
    lines = []
    for _ in range(rng.randint(1, 4)):
        qty, price = rng.randint(1, 3), rng.randint(1, 5000)
        gross = qty * price
        discount = gross * rng.choice((0, 5, 10, 15)) // 100
        lines.append(SaleLine(sku=f"S{rng.randint(1, 9)}", name="Thing", qty=qty,
                              unit_price=price, division=rng.choice(("wine", "food")),
                              gross=gross, discount=discount, net=gross - discount,
                              actions=["Category 5%"] if discount else []))
    gross = sum(ln.gross for ln in lines)
    disc = sum(ln.discount for ln in lines)
    net = gross - disc
    pays = [Payment(mode="credit", amount=net)] if credit else [Payment(mode="cash", amount=net)]
    return SaleRecorded(sale_id=new_id(), customer_id=customer, till_id=rng.choice(("T1", "T2")),
                        currency="EUR", lines=lines, payments=pays, total_gross=gross,
                        total_discount=disc, total_net=net, points_earned=net // 100)


@pytest.fixture(scope="module")
def hq_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HQWorld]:
    from hq import invoices
    from hq.audit import COMMAND_LINE
    from hq.chain import Chain
    from hq.credentials import add_outlet
    from hq.ingest import push
    from schema.sync import PushRequest

    rng = random.Random(6)
    path = tmp_path_factory.mktemp("hq") / "hq.db"
    chain = Chain(path)
    with chain.db.write() as conn:
        for outlet in ("N", "S"):
            add_outlet(conn, outlet)
            # its facts are dated years back: the outlet has traded since 2020 (before that
            # HQ would book them at receipt, docs/sync.md "Outlet clocks")
            conn.execute("UPDATE outlets SET created_at = '2020-01-01T00:00:00.000000Z'")
    seqs = {"N": 0, "S": 0}
    queued: dict[str, list[Event]] = {"N": [], "S": []}

    def emit(outlet: str, body: Any, at: str) -> None:
        seqs[outlet] += 1
        queued[outlet].append(make_event(outlet, seqs[outlet], body, at=at))

    customers = [new_id() for _ in range(14)]
    categories = {c: CATEGORIES[i % 4] for i, c in enumerate(customers)}
    for i, c in enumerate(customers):
        emit("N", CustomerRegistered(customer_id=c, card_number=f"29{i:011d}", profile=Profile(
            kind="person", given_name=f"G{i}", surname=f"S{i}", category=categories[c])),
            "2024-01-02T00:00:00.000000Z")
    # One customer moves from D to A: reports use the CURRENT category.
    moved = customers[3]
    emit("N", CustomerUpdated(customer_id=moved, changes=Profile(category="A")),
         "2024-02-01T00:00:00.000000Z")
    categories[moved] = "A"
    world = HQWorld(path, categories)
    buyers = customers[:11]  # the last three never buy: frequency's 0 bucket
    for n in range(60):
        outlet = rng.choice(("N", "S"))
        at, _ = EDGES[n % len(EDGES)] if n < 20 else (
            f"2024-{rng.randint(1, 6):02d}-{rng.randint(1, 28):02d}T10:{n:02d}:00.000000Z", None)
        customer = rng.choice(buyers)
        sale = _sale(rng, customer, credit=customer in buyers[:3] and in_april(at))
        emit(outlet, sale, at)
        world.sales.append((outlet, at, sale))
    for n in range(12):
        outlet, customer = rng.choice(("N", "S")), rng.choice(buyers)
        at = EDGES[n % len(EDGES)][0]
        sku = rng.choice(("GIFT-MUG", "GIFT-TOTE"))
        qty = rng.randint(1, 2)
        gift = GiftRedeemed(redemption_id=new_id(), customer_id=customer, gift_sku=sku,
                            gift_name=sku.title(), qty=qty, points_spent=qty * 500)
        emit(outlet, gift, at)
        world.gifts.append((outlet, at, gift))
        if n % 3 == 0:  # a mug given back at the desk, the day the edge falls on
            back = plan_gift_return(gift, [], 1, gift_return_id=new_id(), reason="chipped")
            emit(outlet, back, at)
            world.gift_returns.append((outlet, at, back))
    # Returns and voids: a third of the sales, partly or whole, at their outlet or the
    # other one (from the receipt's code), some in April, some not.
    for n, (sold_at, _at, sale) in enumerate(list(world.sales)[::3]):
        outlet = sold_at if n % 4 else ("S" if sold_at == "N" else "N")
        at = EDGES[n % len(EDGES)][0]
        first = sale.lines[0]
        ret = plan_return(sale, [], [Asked(first.sku, first.qty, line=0)], return_id=new_id(),
                          balance=10**9, settings=ReturnsSettings(), till_id="T9",
                          reason="damaged" if n % 2 else "wrong size",
                          receipt=reference(sale.sale_id), home=outlet == sold_at)
        done = [ret]
        if n % 5 in (1, 2) and not ret.closes_sale:
            done.append(plan_void(sale, done, return_id=new_id(), balance=10**9,
                                  settings=ReturnsSettings(), till_id="T9", reason="void",
                                  receipt=reference(sale.sale_id)))
        for r in done:
            emit(outlet, r, at)
            world.returns.append((outlet, at, r))
    for outlet, events in queued.items():
        for start in range(0, len(events), 50):
            push(chain, outlet, PushRequest(outlet_id=outlet, events=events[start:start + 50]))
    # Invoices for April's credit sales (buyers[:3] paid April sales on credit), issued
    # 2024-05-01 and due 2024-05-15: one paid at the bank on time, one at a till late,
    # one never (overdue on 2024-05-20, past term on 2024-06-20).
    made = invoices.close_period(chain, date(2024, 4, 1), date(2024, 5, 1), date(2024, 5, 1))
    by_customer = {m["customer_id"]: m for m in made}
    real_now = chain.clock  # HQ's clock: the bank payment is recorded on 2024-05-10
    try:
        plan = {}
        for customer, fate in zip(buyers[:3], ("on_time", "late", "unpaid"), strict=True):
            if customer not in by_customer:
                continue
            inv = by_customer[customer]
            plan[customer] = fate
            if fate == "on_time":
                chain.clock = lambda: "2024-05-10T09:00:00.000000Z"
                invoices.pay_at_bank(chain, inv["number"], inv["amount"], "STMT-1", by=COMMAND_LINE)
                chain.clock = real_now  # the till's payment reaches HQ after it was made
            elif fate == "late":
                seqs["S"] += 1
                push(chain, "S", PushRequest(outlet_id="S", events=[make_event(
                    "S", seqs["S"], CreditRepaid(payment_id=new_id(), customer_id=customer,
                                                 amount=inv["amount"],
                                                 invoice_id=inv["invoice_id"]),
                    at="2024-05-20T09:00:00.000000Z")]))
    finally:
        chain.clock = real_now
    invoices.refresh(chain, date(2024, 5, 20))
    world.invoices = {c: {"fate": f, "amount": by_customer[c]["amount"]} for c, f in plan.items()}
    chain.close()
    yield world


# HQ's stores (as tests/hq/hqkit.py STORES): PostgreSQL's cluster is a process (slow tier)
STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def hq_world_pg(hq_world: HQWorld, pg_cluster: Any) -> Iterator[str]:
    """The same HQ moved onto PostgreSQL (`loyalty hq migrate`): its database's URL."""
    from hq.store.migrate import migrate

    url = pg_cluster.database()
    migrate(hq_world.path, url)
    yield url
    pg_cluster.drop(url)


@pytest.fixture(params=STORES)
def hq_conn(request: pytest.FixtureRequest, hq_world: HQWorld) -> Iterator[sqlite3.Connection]:
    """A connection to HQ's database on each store: its file, or one REPEATABLE READ
    snapshot of HQ on PostgreSQL (what `loyalty report --db URL` reads)."""
    if request.param == "postgresql":
        from hq.store.postgres import PgStore

        store = PgStore(request.getfixturevalue("hq_world_pg"))
        try:
            with store.snapshot() as snapshot:
                yield snapshot
        finally:
            store.close()
        return
    conn = reports.connect(hq_world.path)
    yield conn
    conn.close()


def rows_by_key(report: reports.Report) -> dict[Any, dict[str, Any]]:
    return {row[report.columns[0].name]: row for row in report.as_dicts()}


def sums(sales: list[tuple[str, str, SaleRecorded]]) -> dict[str, int]:
    return {"receipts": len(sales), "gross": sum(s.total_gross for _, _, s in sales),
            "discount": sum(s.total_discount for _, _, s in sales),
            "net": sum(s.total_net for _, _, s in sales)}


def test_the_database_kind_is_detected(hq_conn: sqlite3.Connection, tmp_path: Path) -> None:
    assert reports.kind_of(hq_conn) == "hq"
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(InvalidRequest, match="not a loyalty database"):
        reports.run(reports.connect(other), "turnover")
    with pytest.raises(NotFound):
        reports.connect(tmp_path / "missing.db")


def test_hq_turnover_by_outlet_is_the_sum_of_the_sales_facts(hq_world: HQWorld,
                                                             hq_conn: sqlite3.Connection) -> None:
    report = reports.run(hq_conn, "turnover")
    got = rows_by_key(report)
    assert set(got) == {"N", "S"}
    for outlet in ("N", "S"):
        want = sums(hq_world.sales_where(lambda o, at, s, x=outlet: o == x))
        assert {k: got[outlet][k] for k in want} == want
    everything = sums(hq_world.sales)
    assert report.totals is not None
    assert report.totals[1:5] == (everything["receipts"], everything["gross"],
                                  everything["discount"], everything["net"])


def test_the_period_takes_both_boundary_days_whole_and_nothing_outside(
        hq_world: HQWorld, hq_conn: sqlite3.Connection) -> None:
    report = reports.run(hq_conn, "turnover", reports.Filters(**APRIL))
    want = sums(hq_world.sales_where(lambda o, at, s: in_april(at)))
    assert report.totals is not None
    assert report.totals[1] == want["receipts"] and report.totals[4] == want["net"]
    edge_ats = [at for at, _ in EDGES]
    taken = {at for _, at, _ in hq_world.sales_where(lambda o, at, s: in_april(at))} & set(edge_ats)
    assert taken == {at for at, inside in EDGES if inside}  # the fixture has every edge
    one_day = reports.run(hq_conn, "turnover", reports.Filters(date_from="2024-04-30",
                                                               date_to="2024-04-30"))
    assert one_day.totals is not None
    assert one_day.totals[1] == len(hq_world.sales_where(lambda o, at, s: at[:10] == "2024-04-30"))
    with pytest.raises(InvalidRequest, match="before it starts"):
        reports.run(hq_conn, "turnover", reports.Filters(date_from="2024-05-01",
                                                         date_to="2024-04-30"))
    with pytest.raises(InvalidRequest, match="YYYY-MM-DD"):
        reports.run(hq_conn, "turnover", reports.Filters(date_from="2024-04-01T00:00"))


def test_outlet_category_and_customer_filters(hq_world: HQWorld,
                                              hq_conn: sqlite3.Connection) -> None:
    cats = hq_world.categories
    got = reports.run(hq_conn, "turnover", reports.Filters(outlet="S", category="A", **APRIL))
    want = sums(hq_world.sales_where(
        lambda o, at, s: o == "S" and cats[s.customer_id] == "A" and in_april(at)))
    assert got.totals is not None and got.totals[1] == want["receipts"]
    assert got.totals[4] == want["net"] and {r[0] for r in got.rows} <= {"S"}
    customer = hq_world.sales[0][2].customer_id
    got = reports.run(hq_conn, "turnover", reports.Filters(customer=customer))
    assert got.totals is not None
    assert got.totals[4] == sums(hq_world.sales_where(
        lambda o, at, s: s.customer_id == customer))["net"]


def test_turnover_by_category_gives_buying_frequency(hq_world: HQWorld,
                                                     hq_conn: sqlite3.Connection) -> None:
    got = rows_by_key(reports.run(hq_conn, "turnover", reports.Filters(by="category")))
    per: dict[str, list[SaleRecorded]] = defaultdict(list)
    for _, _, s in hq_world.sales:
        per[hq_world.categories[s.customer_id]].append(s)
    assert set(got) == set(per)
    for cat, sales in per.items():
        buyers = len({s.customer_id for s in sales})
        assert got[cat]["customers"] == buyers
        assert got[cat]["receipts"] == len(sales)
        assert got[cat]["net"] == sum(s.total_net for s in sales)
        assert got[cat]["receipts_per_customer"] == (200 * len(sales) + buyers) // (2 * buyers)
    moved_to_a = [c for c, k in hq_world.categories.items() if k == "A"]
    assert len(moved_to_a) == 5  # 4 registered in A + the one moved from D


def test_hq_discounts_per_outlet(hq_world: HQWorld, hq_conn: sqlite3.Connection) -> None:
    report = reports.run(hq_conn, "discounts", reports.Filters(**APRIL))
    got = rows_by_key(report)
    for outlet in ("N", "S"):
        sales = hq_world.sales_where(lambda o, at, s, x=outlet: o == x and in_april(at))
        assert got[outlet]["discount"] == sum(ln.discount for _, _, s in sales for ln in s.lines)
        assert got[outlet]["discounted_receipts"] == sum(1 for _, _, s in sales if s.total_discount)
    assert any("per outlet" in n for n in report.notes)


def test_receipts_of_one_customer_line_by_line(hq_world: HQWorld,
                                               hq_conn: sqlite3.Connection) -> None:
    customer = Counter(s.customer_id for _, _, s in hq_world.sales).most_common(1)[0][0]
    report = reports.run(hq_conn, "receipts", reports.Filters(customer=customer))
    mine = sorted(hq_world.sales_where(lambda o, at, s: s.customer_id == customer),
                  key=lambda x: (x[1], x[2].sale_id))
    want = [(at, o, s.sale_id, i + 1, ln.sku, ln.qty, ln.gross, ln.discount, ln.net)
            for o, at, s in mine for i, ln in enumerate(s.lines)]
    got = [(r["at"], r["outlet"], r["sale_id"], r["line"], r["sku"], r["qty"], r["gross"],
            r["discount"], r["net"]) for r in report.as_dicts()]
    assert got == want
    assert report.totals is not None and report.totals[-1] == sum(s.total_net for _, _, s in mine)
    assert f"{len(mine)} receipts" in report.notes[-1]
    assert f"{sum(s.points_earned for _, _, s in mine)} points" in report.notes[-1]
    with pytest.raises(InvalidRequest, match="--customer"):
        reports.run(hq_conn, "receipts")
    with pytest.raises(NotFound):
        reports.run(hq_conn, "receipts", reports.Filters(customer="nobody"))
    with pytest.raises(InvalidRequest, match="--by"):
        reports.run(hq_conn, "receipts", reports.Filters(customer=customer, by="category"))


def test_frequency_is_the_distribution_of_receipts_per_customer(
        hq_world: HQWorld, hq_conn: sqlite3.Connection) -> None:
    report = reports.run(hq_conn, "frequency", reports.Filters(**APRIL))
    counts = Counter(s.customer_id for _, at, s in hq_world.sales if in_april(at))
    want = Counter(counts.values())
    want[0] = len(hq_world.categories) - len(counts)
    got = {r["receipts_per_customer"]: r["customers"] for r in report.as_dicts()}
    assert got == dict(want)
    by_cat = rows_by_key(reports.run(hq_conn, "frequency", reports.Filters(by="category")))
    for cat in CATEGORIES:
        members = [c for c, k in hq_world.categories.items() if k == cat]
        bought = [s for _, _, s in hq_world.sales if hq_world.categories[s.customer_id] == cat]
        assert by_cat[cat]["customers"] == len(members)
        assert by_cat[cat]["buying_customers"] == len({s.customer_id for s in bought})
        assert by_cat[cat]["receipts"] == len(bought)


def test_gifts_per_gift_and_outlet(hq_world: HQWorld, hq_conn: sqlite3.Connection) -> None:
    report = reports.run(hq_conn, "gifts", reports.Filters(**APRIL))
    want: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for outlet, at, g in hq_world.gifts:
        if in_april(at):
            want[(g.gift_sku, outlet)][0] += g.qty
            want[(g.gift_sku, outlet)][1] += g.points_spent
    got = {(r["gift_sku"], r["outlet"]): [r["qty"], r["points"]] for r in report.as_dicts()}
    assert got == dict(want)


def test_points_liability_is_earned_minus_used(hq_world: HQWorld,
                                               hq_conn: sqlite3.Connection) -> None:
    balance: Counter[str] = Counter()
    for _, _, s in hq_world.sales:
        balance[s.customer_id] += s.points_earned
    for _, _, g in hq_world.gifts:
        balance[g.customer_id] -= g.points_spent
    for _, _, r in hq_world.returns:
        balance[r.customer_id] -= r.points_reversed
    for _, _, back in hq_world.gift_returns:
        balance[back.customer_id] += back.points_returned
    report = reports.run(hq_conn, "points-liability")
    row = report.as_dicts()[0]
    assert row["outstanding_points"] == sum(balance.values())
    assert row["negative_points"] == sum(min(v, 0) for v in balance.values())
    assert row["customers_with_points"] == sum(1 for v in balance.values() if v > 0)
    by_cat = rows_by_key(reports.run(hq_conn, "points-liability", reports.Filters(by="category")))
    for cat in CATEGORIES:
        want = sum(v for c, v in balance.items() if hq_world.categories[c] == cat)
        assert by_cat.get(cat, {"outstanding_points": 0})["outstanding_points"] == want
    with pytest.raises(InvalidRequest, match="now"):
        reports.run(hq_conn, "points-liability", reports.Filters(**APRIL))


def test_payment_discipline_tells_on_time_late_and_overdue(
        hq_world: HQWorld, hq_conn: sqlite3.Connection) -> None:
    assert len(hq_world.invoices) == 3, "the fixture must invoice three credit customers"
    got = rows_by_key(reports.run(hq_conn, "payment-discipline"))
    assert set(got) == set(hq_world.invoices)
    for customer, plan in hq_world.invoices.items():
        credit = sum(s.total_net for _, at, s in hq_world.sales
                     if s.customer_id == customer and in_april(at)
                     and any(p.mode == "credit" for p in s.payments))
        # net of the credit the month's returns refunded (docs/invoices.md)
        credit -= sum(f.amount for _, at, r in hq_world.returns
                      if r.customer_id == customer and at < "2024-05-01"
                      for f in r.refunds if f.mode == "credit")
        row = got[customer]
        assert row["amount"] == plan["amount"] == credit
        assert (row["paid_on_time"], row["paid_late"], row["overdue"]) == {
            "on_time": (1, 0, 0), "late": (0, 1, 0), "unpaid": (0, 0, 1)}[plan["fate"]]
        assert row["outstanding"] == (credit if plan["fate"] == "unpaid" else 0)
    none = reports.run(hq_conn, "payment-discipline", reports.Filters(date_from="2024-05-02"))
    assert none.rows == []


def test_csv_parses_back_to_the_same_numbers(hq_world: HQWorld,
                                             hq_conn: sqlite3.Connection) -> None:
    customer = hq_world.sales[0][2].customer_id
    for name in reports.NAMES:
        for by in (None, *reports.GROUPS[name]):
            report = reports.run(hq_conn, name, reports.Filters(
                by=by, customer=customer if name == "receipts" else None))
            parsed = list(csv.reader(io.StringIO(reports.render_csv(report))))
            assert parsed[0] == [c.name for c in report.columns]
            assert len(parsed) == len(report.rows) + 1
            for row, back in zip(report.rows, parsed[1:], strict=True):
                for col, value, text in zip(report.columns, row, back, strict=True):
                    if col.kind in ("int", "money"):
                        assert text == ("" if value is None else str(value)), (name, col.name)
                    elif col.kind == "ratio":
                        assert round(float(text) * 100) == value, (name, col.name)


def test_the_table_shows_money_with_two_decimals_and_a_total(hq_conn: sqlite3.Connection) -> None:
    report = reports.run(hq_conn, "turnover")
    text = reports.render_table(report)
    assert report.totals is not None
    net = report.totals[4]
    total = next(line for line in text.splitlines() if line.startswith("TOTAL"))
    assert f"{net // 100:,}.{net % 100:02d}" in total
    assert reports.render_table(reports.Report("x", "X", "hq", [reports.Column("m", "money")],
                                               [(-5,)])).splitlines()[3] == "-0.05"


def test_progress_is_reported_for_long_reports(hq_world: HQWorld, hq_conn: sqlite3.Connection,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    reports.run(hq_conn, "frequency", progress=lambda d, t: calls.append((d, t)))
    assert calls == []  # a short report stays silent
    monkeypatch.setattr(reports, "PROGRESS_AFTER_S", 0.0)
    reports.run(hq_conn, "frequency", progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1] == (len(hq_world.sales), len(hq_world.sales))  # rows, not steps


def test_progress_counts_rows_read_out_of_the_rows_in_scope_during_the_scan(
        hq_world: HQWorld, hq_conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    if not isinstance(hq_conn, sqlite3.Connection):
        pytest.skip("PostgreSQL has no progress handler: progress comes after each step "
                    "(test_progress_is_reported_for_long_reports), docs/reports.md")
    plain = reports.run(hq_conn, "turnover", reports.Filters(**APRIL))
    monkeypatch.setattr(reports, "PROGRESS_AFTER_S", 0.0)
    monkeypatch.setattr(reports, "PROGRESS_EVERY_OPS", 20)  # the handler runs often...
    monkeypatch.setattr(reports, "ROW_SAMPLE", 1)  # ...and every row is counted
    calls: list[tuple[int, int]] = []
    counted = reports.run(hq_conn, "turnover", reports.Filters(**APRIL),
                          progress=lambda d, t: calls.append((d, t)))
    assert counted.rows == plain.rows and counted.totals == plain.totals
    april = len(hq_world.sales_where(lambda o, at, s: in_april(at)))
    assert calls[-1] == (april, april)
    assert all(0 <= done <= total == april for done, total in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)  # never goes back
    assert any(0 < done < april for done, _ in calls), calls  # seen during the scan


# --- the command line -------------------------------------------------------------------
def test_cli_prints_csv_and_tables_and_refuses_bad_filters(hq_world: HQWorld) -> None:
    from loyalty.cli import main

    runner = CliRunner()
    db = str(hq_world.path)
    out = runner.invoke(main, ["report", "turnover", "--db", db, "--format", "csv",
                               "--from", "2024-04-01", "--to", "2024-04-30"])
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    want = sums(hq_world.sales_where(lambda o, at, s: in_april(at)))
    assert sum(int(r["net"]) for r in rows) == want["net"]
    out = runner.invoke(main, ["report", "gifts", "--db", db, "--by", "category"])
    assert out.exit_code == 0 and "TOTAL" in out.stdout
    out = runner.invoke(main, ["report", "receipts", "--db", db])
    assert out.exit_code == 1 and "error [invalid_request]" in out.stderr
    out = runner.invoke(main, ["report", "nonsense", "--db", db])
    assert out.exit_code == 2


@pytest.mark.slow  # a PostgreSQL cluster is a process
def test_cli_reports_on_hq_on_postgresql_what_it_reports_on_the_file(
        hq_world: HQWorld, hq_world_pg: str) -> None:
    from loyalty.cli import main

    runner = CliRunner()
    for args in (["turnover", "--from", "2024-04-01", "--to", "2024-04-30"],
                 ["points-liability", "--by", "week"], ["payment-discipline"]):
        on_file = runner.invoke(main, ["report", *args, "--db", str(hq_world.path),
                                       "--format", "csv"])
        on_postgres = runner.invoke(main, ["report", *args, "--db", hq_world_pg,
                                           "--format", "csv"])
        assert on_postgres.exit_code == 0, on_postgres.output
        assert on_postgres.stdout == on_file.stdout and on_file.stdout.count("\n") > 1


# --- an outlet built through the till's own code ------------------------------------------
@dataclass
class OutletWorld:
    path: Path
    cards: dict[str, str]  # customer -> card
    events: list[dict[str, Any]]  # the outbox's facts, as JSON


@pytest.fixture(scope="module")
def outlet_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutletWorld]:
    import schema.events as ev
    from agent import customers, gifts, returns, sales
    from agent.outlet import Outlet
    from schema.api import CustomerIn, LineIn, QuoteIn, RedemptionIn, ReturnIn, SaleIn

    path = tmp_path_factory.mktemp("outlet") / "outlet.db"
    shop = Outlet(path, "T")
    clock = ["2024-01-01T00:00:00.000000Z"]
    real_now = ev.utc_now
    ev.utc_now = lambda: clock[0]
    try:
        cards = {}
        for i, cat in enumerate(("A", "B", "C", "D", "A")):
            made = customers.register(shop, CustomerIn(kind="person", given_name=f"G{i}",
                                                       surname="S", category=cat))
            cards[made["customer_id"]] = made["card_number"]
        rng = random.Random(7)
        ids = list(cards)
        for n in range(25):
            clock[0] = EDGES[n % len(EDGES)][0] if n < 10 else f"2024-04-{n:02d}T08:00:00.000000Z"
            customer = ids[n % 4]  # the fifth customer never buys
            lines = [LineIn(sku=f"S{k}", name="Wine" if k % 2 else "Bread",
                            qty=rng.randint(1, 3), unit_price=rng.randint(500, 30000),
                            division="wine" if k % 2 else "food") for k in range(rng.randint(1, 3))]
            quote = sales.quote(shop, QuoteIn(card=cards[customer], lines=lines))
            sales.sell(shop, SaleIn(card=cards[customer], lines=lines, till_id=f"T{n % 2 + 1}",
                                    payments=[{"mode": "cash", "amount": quote["total_net"]}]),
                       None)
        sold = [dict(json.loads(r[0])) for r in shop.db.all(
            "SELECT response FROM sales ORDER BY seq")]
        for n, sale in enumerate(sold[::4]):  # some goods come back, at either till
            clock[0] = f"2024-04-{n + 10:02d}T18:00:00.000000Z"
            returns.give_back(shop, ReturnIn.model_validate({
                "sale_id": sale["sale_id"], "till_id": f"T{n % 2 + 1}", "reason": "damaged",
                "lines": [{"sku": "S0", "qty": 1}]}), None)
        clock[0] = "2024-04-30T23:59:59.999999Z"
        gifts.redeem(shop, RedemptionIn(card=cards[ids[0]], gift_sku="GIFT-MUG", qty=1), None)
        clock[0] = "2024-05-01T00:00:00.000000Z"
        gifts.redeem(shop, RedemptionIn(card=cards[ids[0]], gift_sku="GIFT-MUG", qty=1), None)
    finally:
        ev.utc_now = real_now
    events = [dict(json.loads(r[0])) for r in shop.db.all("SELECT event FROM outbox ORDER BY seq")]
    shop.close()
    yield OutletWorld(path, cards, events)


def outlet_sales(world: OutletWorld, pred: Any = lambda at: True) -> list[tuple[str, dict[str, Any]]]:
    return [(e["at"], e["body"]) for e in world.events
            if e["type"] == "sale.recorded" and pred(e["at"])]


def test_outlet_turnover_by_till_and_period(outlet_world: OutletWorld) -> None:
    conn = reports.connect(outlet_world.path)
    assert reports.kind_of(conn) == "outlet"
    got = rows_by_key(reports.run(conn, "turnover", reports.Filters(**APRIL)))
    want: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for _, body in outlet_sales(outlet_world, in_april):
        want[body["till_id"]][0] += 1
        want[body["till_id"]][1] += body["total_net"]
    assert {k: [v["receipts"], v["net"]] for k, v in got.items()} == dict(want)
    back: Counter[str] = Counter()
    for e in outlet_world.events:
        if e["type"] == "return.recorded" and in_april(e["at"]):
            back[e["body"]["till_id"]] += e["body"]["value"]
    assert back and {k: v["returned"] for k, v in got.items()} == {k: back[k] for k in got}
    assert all(v["net_of_returns"] == v["net"] - v["returned"] for v in got.values())
    listed = reports.run(conn, "returns").as_dicts()
    assert sorted((d["till"], d["value"]) for d in listed) == sorted(
        (e["body"]["till_id"], e["body"]["value"]) for e in outlet_world.events
        if e["type"] == "return.recorded")
    with pytest.raises(InvalidRequest, match="HQ"):
        reports.run(conn, "turnover", reports.Filters(outlet="ELSEWHERE"))
    assert reports.run(conn, "turnover", reports.Filters(outlet="T")).rows


def test_outlet_discounts_by_action_name(outlet_world: OutletWorld) -> None:
    conn = reports.connect(outlet_world.path)
    report = reports.run(conn, "discounts")
    want: Counter[str] = Counter()
    for _, body in outlet_sales(outlet_world):
        for ln in body["lines"]:
            want[" + ".join(ln.get("actions", [])) or "(no discount)"] += ln["discount"]
    got = {r["action"]: r["discount"] for r in report.as_dicts()}
    assert got == dict(want)
    assert any(k.startswith("Wine week") for k in got), got  # the sample action by name
    assert report.totals is not None and report.totals[4] == sum(want.values())


def test_outlet_gifts_liability_receipts_and_frequency(outlet_world: OutletWorld) -> None:
    conn = reports.connect(outlet_world.path)
    gifts = [e for e in outlet_world.events if e["type"] == "gift.redeemed"]
    april = reports.run(conn, "gifts", reports.Filters(**APRIL))
    assert [(r["gift_sku"], r["qty"], r["points"]) for r in april.as_dicts()] == [
        ("GIFT-MUG", 1, gifts[0]["body"]["points_spent"])]
    earned = sum(b["points_earned"] for _, b in outlet_sales(outlet_world))
    spent = sum(e["body"]["points_spent"] for e in gifts)
    taken = sum(e["body"]["points_reversed"] for e in outlet_world.events
                if e["type"] == "return.recorded")
    liability = reports.run(conn, "points-liability").as_dicts()[0]
    assert liability["outstanding_points"] == earned - spent - taken
    customer = next(iter(outlet_world.cards))
    receipts = reports.run(conn, "receipts", reports.Filters(customer=customer))
    mine = [b for _, b in outlet_sales(outlet_world) if b["customer_id"] == customer]
    assert receipts.totals is not None
    assert receipts.totals[-1] == sum(b["total_net"] for b in mine)
    assert len(receipts.rows) == sum(len(b["lines"]) for b in mine)
    freq = {r["receipts_per_customer"]: r["customers"]
            for r in reports.run(conn, "frequency").as_dicts()}
    want = Counter(Counter(b["customer_id"] for _, b in outlet_sales(outlet_world)).values())
    want[0] = 1
    assert freq == dict(want)
    pd = reports.run(conn, "payment-discipline")
    assert pd.rows == [] and any("HQ's database" in n for n in pd.notes)


def test_turnover_and_discounts_are_net_of_the_returns_made_in_the_period(
        hq_world: HQWorld, hq_conn: sqlite3.Connection) -> None:
    april = [(o, at, r) for o, at, r in hq_world.returns if in_april(at)]
    assert april and any(r.kind == "void" for _, _, r in april)
    turnover = rows_by_key(reports.run(hq_conn, "turnover", reports.Filters(**APRIL)))
    discounts = rows_by_key(reports.run(hq_conn, "discounts", reports.Filters(**APRIL)))
    for outlet in ("N", "S"):
        mine = [r for o, _, r in april if o == outlet]
        back = sum(r.value for r in mine)
        net = sum(s.total_net for o, at, s in hq_world.sales if o == outlet and in_april(at))
        assert (turnover[outlet]["returned"], turnover[outlet]["net_of_returns"]) == (
            back, net - back)
        taken = sum(ln.discount for r in mine for ln in r.lines)
        assert discounts[outlet]["discount_returned"] == taken
        assert discounts[outlet]["discount_net"] == discounts[outlet]["discount"] - taken
    by_cat = rows_by_key(reports.run(hq_conn, "turnover", reports.Filters(by="category")))
    for cat, row in by_cat.items():
        assert row["returned"] == sum(r.value for _, _, r in hq_world.returns
                                      if hq_world.categories[r.customer_id] == cat)


def test_turnover_over_time_is_net_of_the_returns_of_each_day_where_they_were_made(
        hq_world: HQWorld, hq_conn: sqlite3.Connection) -> None:
    report = reports.run(hq_conn, "turnover", reports.Filters(**APRIL, by="day"))
    rows = {(r["day"], r["outlet"]): r for r in report.as_dicts()}
    back: dict[tuple[str, str], int] = {}
    for outlet, at, r in hq_world.returns:
        if in_april(at):
            back[(at[:10], outlet)] = back.get((at[:10], outlet), 0) + r.value
    assert back
    for key, row in rows.items():
        assert (row["returned"], row["net_of_returns"]) == (
            back.get(key, 0), row["net"] - back.get(key, 0)), key
    assert set(back) <= set(rows)
    plain = reports.run(hq_conn, "turnover", reports.Filters(**APRIL))
    names = [c.name for c in report.columns]
    assert report.totals is not None and plain.totals is not None
    assert report.totals[names.index("net_of_returns")] == \
        plain.totals[[c.name for c in plain.columns].index("net_of_returns")]


def test_the_returns_report_lists_every_return_and_void_with_its_receipt_reference(
        hq_world: HQWorld, hq_conn: sqlite3.Connection) -> None:
    report = reports.run(hq_conn, "returns", reports.Filters(**APRIL))
    want = sorted((at, o, r.kind, r.receipt, r.reason, r.value,
                   sum(x.amount for x in r.refunds), r.points_reversed,
                   "own" if r.home else "other outlet")
                  for o, at, r in hq_world.returns if in_april(at))
    got = sorted((d["at"], d["outlet"], d["kind"], d["receipt"], d["reason"], d["value"],
                  d["refunded"], d["points_reversed"], d["sale"]) for d in report.as_dicts())
    assert got == want
    assert report.totals is not None and report.totals[9] == sum(w[5] for w in want)
    only_s = reports.run(hq_conn, "returns", reports.Filters(outlet="S"))
    assert {d["outlet"] for d in only_s.as_dicts()} == {"S"}
    with pytest.raises(InvalidRequest, match="single returns"):
        reports.run(hq_conn, "returns", reports.Filters(by="category"))


def test_gift_handouts_lists_every_handout_with_a_masked_card(
        hq_world: HQWorld, hq_conn: sqlite3.Connection) -> None:
    report = reports.run(hq_conn, "gift-handouts", reports.Filters(**APRIL))
    want = sorted([(g.redemption_id, outlet, g.gift_sku, g.qty, g.points_spent)
                   for outlet, at, g in hq_world.gifts if in_april(at)]
                  + [(g.redemption_id, outlet, g.gift_sku, -g.qty, -g.points_returned)
                     for outlet, at, g in hq_world.gift_returns if in_april(at)])
    assert any(qty < 0 for *_, qty, _points in want)
    rows = report.as_dicts()
    got = sorted((r["redemption_id"], r["outlet"], r["gift_sku"], r["qty"], r["points"])
                 for r in rows)
    assert got == want
    assert all(r["card"].startswith("****") and len(r["card"]) == 8 for r in rows)
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)


# --- one chain: HQ and an outlet count the same customers ---------------------------------
def test_points_liability_counts_every_customer_the_same_at_hq_and_at_the_outlet(
        tmp_path: Path) -> None:
    """A customer who never bought anything (no tally at HQ, a zero tally at the outlet)
    is a customer on both sides, as on HQ's home page (issue 9: 8 at HQ, 10 at the outlet)."""
    from agent import customers, sales
    from agent.outlet import Outlet
    from agent.programme import default_documents
    from agent.replication import OutletReplica
    from hq import credentials
    from hq.api import create_app
    from hq.chain import Chain
    from schema.api import CustomerIn, PaymentIn, QuoteIn, SaleIn
    from sync.client import run_once
    from sync.router import RouterTransport
    from web.serving import Background

    chain = Chain(tmp_path / "hq.db", seed=default_documents())
    with chain.db.write() as conn:
        token, _ = credentials.add_outlet(conn, "NORTH")
    server = Background(create_app(chain), on_exit=chain.waiters.close)
    outlet = Outlet(tmp_path / "north.db", "NORTH", chain=True)
    replica, link = OutletReplica(outlet), RouterTransport(server.url, token)
    try:
        run_once(replica, link)
        cards = [customers.register(outlet, CustomerIn(
            kind="person", given_name=f"N{i}", surname="Chain", category=cat))["card_number"]
            for i, cat in enumerate("AABCD")]
        for card in cards[:2]:  # two buy; three never do
            quote = sales.quote(outlet, QuoteIn(card=card, lines=[
                {"sku": "S", "name": "S", "qty": 1, "unit_price": 5_000}]))  # type: ignore[list-item]
            sales.sell(outlet, SaleIn(quote_id=quote["quote_id"], payments=[
                PaymentIn(mode="cash", amount=quote["total_net"])]), None)
        run_once(replica, link)
        run_once(replica, link)
        home = int(chain.db.scalar("SELECT COUNT(*) FROM customers"))
        assert home == 5
    finally:
        link.close()
        server.stop()
        outlet.close()
        chain.close()
    figures = {}
    for place, path in (("hq", tmp_path / "hq.db"), ("outlet", tmp_path / "north.db")):
        conn = reports.connect(path)
        try:
            row = reports.run(conn, "points-liability").as_dicts()[0]
            by_cat = {r["category"]: r["customers"] for r in reports.run(
                conn, "points-liability", reports.Filters(by="category")).as_dicts()}
            one_cat = reports.run(conn, "points-liability", reports.Filters(category="A"))
        finally:
            conn.close()
        figures[place] = (row["customers"], row["customers_with_points"],
                          row["outstanding_points"], by_cat, one_cat.as_dicts()[0]["customers"])
    assert figures["hq"] == figures["outlet"]
    assert figures["hq"][:2] == (5, 2)
    assert figures["hq"][3] == {"A": 2, "B": 1, "C": 1, "D": 1}
    assert figures["hq"][4] == 2


# --- points liability split: lots, pending points, expiry (issue 11) -----------------------
@dataclass
class RefLot:
    """A lot as the test's own small model keeps it (independent of schema.lots)."""

    lot_id: str
    earned_on: date
    points: int
    last_day: date | None
    spendable_on: date


def _end_of_month_after(day: date, months: int) -> date:
    month = day.month - 1 + months + 1
    first_after = date(day.year + month // 12, month % 12 + 1, 1)
    return first_after - timedelta(days=1)


class RefBook:
    """Points earned, spent oldest-expiring first (spendable lots by last day, then
    pending ones), a deficit repaid by the next earning; an expiry run takes what is left
    of every lot past its last day."""

    def __init__(self) -> None:
        self.lots: list[RefLot] = []
        self.deficit = 0

    def earn(self, lot_id: str, on: date, points: int, last_day: date | None,
             pending_days: int) -> None:
        repaid = min(-self.deficit, points)
        self.deficit += repaid
        if points - repaid:
            self.lots.append(RefLot(lot_id, on, points - repaid, last_day,
                                    on + timedelta(days=pending_days)))

    def spend(self, on: date, points: int) -> None:
        far = date.max
        ready = sorted((x for x in self.lots if x.spendable_on <= on),
                       key=lambda x: (x.last_day or far, x.earned_on, x.lot_id))
        waiting = sorted((x for x in self.lots if x.spendable_on > on),
                         key=lambda x: (x.spendable_on, x.last_day or far, x.earned_on,
                                        x.lot_id))
        for lot in ready + waiting:
            took = min(points, lot.points)
            lot.points -= took
            points -= took
        self.lots = [x for x in self.lots if x.points]
        self.deficit -= points

    def expire(self, on: date) -> int:
        gone = sum(x.points for x in self.lots if x.last_day and x.last_day < on)
        self.lots = [x for x in self.lots if not (x.last_day and x.last_day < on)]
        return gone

    @property
    def balance(self) -> int:
        return sum(x.points for x in self.lots) + self.deficit


def test_points_liability_splits_active_pending_expiring_and_expired_at_hq(
        tmp_path: Path) -> None:
    """End of the 2nd month after earning, 14 days pending; sales and hand-outs over half
    a year, head office's corrections, an expiry run on 2024-06-01; split as of 06-10."""
    from hq import admin, expiry
    from hq.chain import Chain
    from hq.credentials import add_outlet
    from hq.ingest import push
    from schema.sync import PushRequest

    today, run_on = date(2024, 6, 10), date(2024, 6, 1)
    chain = Chain(tmp_path / "hq.db", clock=lambda: "2024-06-10T12:00:00.000000Z")
    admin.put_master(chain, "programme", {
        "expiry": {"kind": "end_of_month", "months": 2, "since": "2024-01-01",
                   "grace_days": 0},
        "returns": {"pending_points": True, "return_window_days": 14}}, by=None)
    with chain.db.write() as conn:
        add_outlet(conn, "N")
        conn.execute("UPDATE outlets SET created_at = '2020-01-01T00:00:00.000000Z'")
    rng = random.Random(11)
    customers = [new_id() for _ in range(6)]
    category = {c: CATEGORIES[i % 4] for i, c in enumerate(customers)}
    books = {c: RefBook() for c in customers}
    earned: Counter[str] = Counter()
    used: Counter[str] = Counter()
    events: list[Event] = []

    def emit(body: Any, at: str) -> None:
        events.append(make_event("N", len(events) + 1, body, at=at))

    for i, c in enumerate(customers):
        emit(CustomerRegistered(customer_id=c, card_number=f"29{i:011d}", profile=Profile(
            kind="person", given_name="L", surname=f"L{i}", category=category[c])),
            "2024-01-01T08:00:00.000000Z")
    days = sorted(date(2024, 1, 2) + timedelta(days=rng.randint(0, 158)) for _ in range(70))
    for n, day in enumerate(days):
        c = rng.choice(customers)
        at = f"{day.isoformat()}T10:{n % 60:02d}:00.000000Z"
        book = books[c]
        spendable = sum(x.points for x in book.lots if x.spendable_on <= day) + book.deficit
        if n % 5 == 4 and spendable > 0:
            points = rng.randint(1, spendable) if n != 54 else spendable + 300  # one overspends
            emit(GiftRedeemed(redemption_id=new_id(), customer_id=c, gift_sku="GIFT-MUG",
                              gift_name="Mug", qty=1, points_spent=points), at)
            book.spend(day, points)
            used[c] += points
        else:
            sale = _sale(rng, c, credit=False)
            emit(sale, at)
            book.earn(sale.sale_id, day, sale.points_earned, _end_of_month_after(day, 2), 14)
            earned[c] += sale.points_earned
    push(chain, "N", PushRequest(outlet_id="N", events=events))
    expired = sum(book.expire(run_on) for book in books.values())
    assert expiry.run(chain, run_on)["points"] == expired > 0
    plus, minus = customers[0], customers[1]
    made = admin.adjust(chain, plus, points=77, reason="goodwill", by=None)
    books[plus].earn(made["adjustment_id"], today, 77, _end_of_month_after(today, 2), 0)
    earned[plus] += 77
    admin.adjust(chain, minus, points=-30, reason="double scan", by=None)
    books[minus].spend(today, 30)
    earned[minus] -= 30
    chain.close()

    def split(which: list[str]) -> dict[str, int]:
        lots = [x for c in which for x in books[c].lots]

        def within(n: int) -> int:
            return sum(x.points for x in lots if x.last_day and x.last_day <= today
                       + timedelta(days=n))
        return {"outstanding_points": sum(books[c].balance for c in which),
                "points_earned": sum(earned[c] for c in which),
                "points_used": sum(used[c] for c in which),
                "active_points": sum(x.points for x in lots if x.spendable_on <= today),
                "pending_points": sum(x.points for x in lots if x.spendable_on > today),
                "expiring_30": within(30), "expiring_60": within(60), "expiring_90": within(90),
                "negative_points": sum(min(books[c].deficit, 0) for c in which)}

    conn = reports.connect(tmp_path / "hq.db")
    try:
        got = reports.run(conn, "points-liability", reports.Filters(today=today.isoformat()))
        row = got.as_dicts()[0]
        want = split(customers)
        assert {k: row[k] for k in want} == want
        assert row["points_expired"] == expired
        assert row["outstanding_points"] == (row["active_points"] + row["pending_points"]
                                             + row["negative_points"])
        assert want["negative_points"] < 0 and want["pending_points"] > 0
        assert 0 < want["expiring_30"] < want["expiring_60"] <= want["expiring_90"]
        by_cat = rows_by_key(reports.run(conn, "points-liability", reports.Filters(
            by="category", today=today.isoformat())))
        for cat in CATEGORIES:
            mine = split([c for c in customers if category[c] == cat])
            assert {k: by_cat[cat][k] for k in mine} == mine, cat
        later = reports.run(conn, "points-liability", reports.Filters(today="2024-08-01"))
        assert later.as_dicts()[0]["pending_points"] == 0
        with pytest.raises(InvalidRequest, match="--today"):
            reports.run(conn, "points-liability", reports.Filters(today="2024-02-30"))
    finally:
        conn.close()


# (customer, day earned) of each lot, and its last valid day under each rule turned on
# after the points were earned (so no lot carries a fixed day: the SQL decides), months=2
EXPIRY_LOTS = [
    (0, "2024-01-31", {"end_of_month": "2024-03-31", "inactivity": "2024-03-31"}),
    # the day a month lacks is its last day: 31 Dec + 2 months is 29 Feb (a leap year)
    (1, "2023-12-31", {"end_of_month": "2024-02-29", "inactivity": "2024-02-29"}),
    (2, "2024-02-10", {"end_of_month": "2024-04-30", "inactivity": "2024-04-10"}),
    # inactivity counts from the customer's last purchase: both lots live to 30 Mar
    (3, "2023-12-30", {"end_of_month": "2024-02-29", "inactivity": "2024-03-30"}),
    (3, "2024-01-30", {"end_of_month": "2024-03-31", "inactivity": "2024-03-30"}),
    (4, "2024-02-19", {"end_of_month": "2024-04-30", "inactivity": "2024-04-19"}),
]


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("kind", ["end_of_month", "inactivity"])
def test_points_liability_splits_expiring_points_by_the_rule_on_either_store(
        kind: str, store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The expiry date is computed in SQL for lots without a fixed day (the rule turned on
    after they were earned): the same days, months added to a month-end, on both stores."""
    from hq import admin
    from hq.chain import Chain
    from hq.credentials import add_outlet
    from hq.ingest import push
    from schema.sync import PushRequest

    today = date(2024, 2, 20)
    chain = Chain(tmp_path / "hq.db", clock=lambda: "2024-02-20T12:00:00.000000Z")
    with chain.db.write() as conn:
        add_outlet(conn, "N")
        conn.execute("UPDATE outlets SET created_at = '2020-01-01T00:00:00.000000Z'")
    rng = random.Random(5)
    customers = [new_id() for _ in range(5)]
    events: list[Event] = []
    for i, c in enumerate(customers):
        events.append(make_event("N", len(events) + 1, CustomerRegistered(
            customer_id=c, card_number=f"29{i:011d}", profile=Profile(
                kind="person", given_name="E", surname=f"E{i}", category="A")),
            at="2023-12-01T08:00:00.000000Z"))
    points: list[int] = []
    for i, day, _ in EXPIRY_LOTS:
        sale = _sale(rng, customers[i], credit=False)
        events.append(make_event("N", len(events) + 1, sale, at=f"{day}T10:00:00.000000Z"))
        points.append(sale.points_earned)
    push(chain, "N", PushRequest(outlet_id="N", events=events))
    admin.put_master(chain, "programme", {
        "expiry": {"kind": kind, "months": 2, "since": "2020-01-01", "grace_days": 0},
        "returns": {"pending_points": False}}, by=None)
    chain.close()
    assert all(points)

    def within(n: int) -> int:
        end = (today + timedelta(days=n)).isoformat()
        return sum(p for p, (_, _, last) in zip(points, EXPIRY_LOTS, strict=True)
                   if last[kind] <= end)

    want = {"outstanding_points": sum(points), "active_points": sum(points),
            "pending_points": 0, "expiring_30": within(30), "expiring_60": within(60),
            "expiring_90": within(90)}
    assert 0 < want["expiring_30"] < want["expiring_60"]
    with hq_reading(tmp_path / "hq.db", store, request) as conn:
        row = reports.run(conn, "points-liability", reports.Filters(
            today=today.isoformat())).as_dicts()[0]
    assert {k: row[k] for k in want} == want


def test_points_liability_at_an_outlet_is_its_view_and_hqs_once_synced(
        tmp_path: Path) -> None:
    """The same split on both databases once the outlet has synced; the outlet's counts
    its own pending sale too. Expected figures from the outlet's outbox and HQ's facts."""
    from agent import customers, sales
    from agent.outlet import Outlet
    from agent.programme import default_documents
    from agent.replication import OutletReplica
    from hq import admin, credentials
    from hq.api import create_app
    from hq.chain import Chain
    from schema.api import CustomerIn, PaymentIn, QuoteIn, SaleIn
    from sync.client import run_once
    from sync.router import RouterTransport
    from web.serving import Background

    chain = Chain(tmp_path / "hq.db", seed=default_documents())
    admin.put_master(chain, "programme", {
        "expiry": {"kind": "inactivity", "months": 1, "since": "2020-01-01"},
        "returns": {"pending_points": True, "return_window_days": 20}}, by=None)
    with chain.db.write() as conn:
        token, _ = credentials.add_outlet(conn, "NORTH")
    server = Background(create_app(chain), on_exit=chain.waiters.close)
    outlet = Outlet(tmp_path / "north.db", "NORTH", chain=True)
    replica, link = OutletReplica(outlet), RouterTransport(server.url, token)

    def sell(card: str, price: int) -> None:
        quote = sales.quote(outlet, QuoteIn(card=card, lines=[
            {"sku": "S", "name": "S", "qty": 1, "unit_price": price}]))  # type: ignore[list-item]
        sales.sell(outlet, SaleIn(quote_id=quote["quote_id"], payments=[
            PaymentIn(mode="cash", amount=quote["total_net"])]), None)

    try:
        run_once(replica, link)
        made = [customers.register(outlet, CustomerIn(
            kind="person", given_name=f"N{i}", surname="Lots", category="A")) for i in range(3)]
        for i, card in enumerate(m["card_number"] for m in made):
            sell(card, 10_000 * (i + 1))
        run_once(replica, link)
        admin.adjust(chain, made[0]["customer_id"], points=40, reason="welcome", by=None)
        run_once(replica, link)
        figures = {}
        for place, path in (("hq", tmp_path / "hq.db"), ("outlet", tmp_path / "north.db")):
            conn = reports.connect(path)
            try:
                figures[place] = reports.run(conn, "points-liability").as_dicts()[0]
            finally:
                conn.close()
        assert figures["hq"] == figures["outlet"]
        sell(made[1]["card_number"], 5_000)  # pending at the outlet: not at HQ yet
        events = [Event.model_validate_json(r[0]) for r in outlet.db.all(
            "SELECT event FROM outbox WHERE type = 'sale.recorded'")]
    finally:
        link.close()
        server.stop()
        outlet.close()
        chain.close()
    day = date.fromisoformat(events[-1].at[:10])
    as_of = reports.Filters(today=(day + timedelta(days=5)).isoformat())
    sold = sum(e.body["points_earned"] for e in events)
    conn = reports.connect(tmp_path / "north.db")
    try:
        row = reports.run(conn, "points-liability", as_of).as_dicts()[0]
    finally:
        conn.close()
    # every sale's points are pending (20 days); the correction's are spendable at once;
    # a month without a purchase: all of them are due within 30 days
    assert (row["outstanding_points"], row["pending_points"], row["active_points"]) == (
        sold + 40, sold, 40)
    assert row["expiring_30"] == row["expiring_90"] == sold + 40
    assert row["points_expired"] == 0 and row["negative_points"] == 0
