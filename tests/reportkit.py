"""A chain for the reports over time and the dashboards (tests/schema/test_report_series.py,
tests/web/test_dashboard.py): HQ with outlets N and S, twelve customers registered over
March and April 2024 (so weeks differ), sales and gift hand-outs on chosen days, pushed
through `hq.ingest.push` as the outlets would send them. Expected figures are computed from
the facts kept here, never from HQ's tables."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from schema.events import (
    CustomerRegistered,
    Event,
    GiftRedeemed,
    Payment,
    Profile,
    SaleLine,
    SaleRecorded,
    make_event,
    new_id,
)


@dataclass
class SeriesChain:
    path: Path
    joined: list[tuple[str, str, str, str]] = field(default_factory=list)  # id, at, outlet, cat
    sales: list[tuple[str, str, SaleRecorded]] = field(default_factory=list)  # outlet, at, sale
    gifts: list[tuple[str, str, GiftRedeemed]] = field(default_factory=list)

    def category(self, customer: str) -> str:
        return next(c for i, _, _, c in self.joined if i == customer)


def stamp(day: date, hour: int = 10) -> str:
    return f"{day.isoformat()}T{hour:02d}:00:00.000000Z"


def build(path: Path) -> SeriesChain:
    """HQ's database at `path`, made from pushed facts; the facts, for the expectations."""
    from hq.chain import Chain as HQ
    from hq.credentials import add_outlet
    from hq.ingest import push
    from schema.sync import PushRequest

    rng = random.Random(12)
    hq = HQ(path)
    with hq.db.write() as conn:
        for outlet in ("N", "S"):
            add_outlet(conn, outlet)
        conn.execute("UPDATE outlets SET created_at = '2020-01-01T00:00:00.000000Z'")
    world = SeriesChain(path)
    queued: dict[str, list[tuple[str, Any]]] = {"N": [], "S": []}

    def emit(outlet: str, body: Any, at: str) -> None:
        queued[outlet].append((at, body))

    first = date(2024, 3, 4)  # a Monday
    for i in range(12):
        customer, outlet, cat = new_id(), "NS"[i % 2], "AB"[i % 3 == 0]
        at = stamp(first + timedelta(days=4 * i), 9)
        emit(outlet, CustomerRegistered(customer_id=customer, card_number=f"29{i:011d}",
                                        profile=Profile(kind="person", given_name=f"G{i}",
                                                        surname="S", category=cat)), at)
        world.joined.append((customer, at, outlet, cat))
    buyers = [c for c, *_ in world.joined[:9]]  # the last three never buy
    for n in range(50):
        customer = rng.choice(buyers)
        joined = next(at for c, at, *_ in world.joined if c == customer)
        day = date.fromisoformat(joined[:10]) + timedelta(days=rng.randint(0, 50))
        outlet = rng.choice("NS")
        price, qty = rng.randint(100, 9000), rng.randint(1, 3)
        line = SaleLine(sku="S1", name="Thing", qty=qty, unit_price=price, gross=price * qty,
                        discount=0, net=price * qty)
        sale = SaleRecorded(sale_id=new_id(), customer_id=customer, till_id="T1",
                            currency="EUR", lines=[line],
                            payments=[Payment(mode="cash", amount=line.net)],
                            total_gross=line.net, total_discount=0, total_net=line.net,
                            points_earned=line.net // 100)
        at = stamp(day, 8 + n % 10)
        emit(outlet, sale, at)
        world.sales.append((outlet, at, sale))
    for n in range(6):
        customer = buyers[n]
        gift = GiftRedeemed(redemption_id=new_id(), customer_id=customer, gift_sku="GIFT-MUG",
                            gift_name="Mug", qty=1, points_spent=20)
        at = stamp(date(2024, 4, 10) + timedelta(days=3 * n), 18)
        emit("N", gift, at)
        world.gifts.append(("N", at, gift))
    for outlet, facts in queued.items():
        facts.sort(key=lambda f: f[0])  # an outlet sends its facts in the order it made them
        events: list[Event] = [make_event(outlet, i + 1, body, at=at)
                               for i, (at, body) in enumerate(facts)]
        for start in range(0, len(events), 50):
            push(hq, outlet, PushRequest(outlet_id=outlet, events=events[start:start + 50]))
    hq.close()
    return world




@contextmanager
def hq_reading(path: Path, store: str, request: Any) -> Iterator[sqlite3.Connection]:
    """HQ's database at `path` as a report reads it: the file (`store` "sqlite"), or the same
    HQ moved onto a new PostgreSQL database (`loyalty hq migrate`; `request` gives the
    `pg_database` fixture) read in one REPEATABLE READ snapshot, as `loyalty report --db
    URL` reads it."""
    from schema import reports

    if store != "postgresql":
        conn = reports.connect(path)
        try:
            yield conn
        finally:
            conn.close()
        return
    from hq.store.migrate import migrate
    from hq.store.postgres import PgStore

    url = request.getfixturevalue("pg_database")
    migrate(path, url)
    pg = PgStore(url)
    try:
        with pg.snapshot() as snapshot:
            yield snapshot
    finally:
        pg.close()
