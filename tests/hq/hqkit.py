"""Talking to HQ as an outlet would, with hand-made events (tests/hq).

`HQClient` pushes raw JSON, so a test can send anything a broken or hostile outlet might,
over a session of its own to that HQ (`hq.session()`: requests for a real process, a
TestClient for `InProcessHQ`, testkit's HQ in this process); `snapshot` reads HQ's file to
prove a refused request changed nothing. `AnyHQ`: either kind of HQ.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
import requests
from chainkit import HQProcess
from testkit.hqadmin import HQAdmin
from testkit.inprocess import TIERS, InProcessHQ
from testkit.waiting import wait_until

from hq import store
from hq.chain import Chain
from hq.ingest import HQ_FACTS
from schema.dialect import dialect_of
from schema.events import (
    Body,
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

__all__ = ["HQ_STORES", "HQ_TIERS", "ON_POSTGRES", "STORES", "AnyHQ", "HQClient", "InProcessHQ",
           "at_once", "hold_hq_facts", "hold_the_change_log", "hold_the_writer", "redeemed", "registered", "sale", "snapshot"]

# An HQ a test talks to: in this process (the fast tier) or a real `loyalty hq serve`.
AnyHQ = InProcessHQ | HQProcess

# HQ's stores, for `@pytest.mark.parametrize("hq_db", STORES, indirect=True)`: PostgreSQL's
# cluster is a process, so that case is in the slow tier.
STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]
# The module's `hq` (tests/hq/conftest.py) in this process on each store: a module that sets
# `HQ_ON_BOTH_STORES = True` runs every test using `hq` on both (conftest's
# pytest_generate_tests); a test parametrizing `hq` itself takes `HQ_TIERS`: in process on
# each store, and the real process on SQLite.
ON_POSTGRES = pytest.param("postgresql", marks=pytest.mark.slow)
HQ_STORES = ["in process", ON_POSTGRES]
HQ_TIERS = [*TIERS, ON_POSTGRES]


class HQClient:
    def __init__(self, hq: HQAdmin, outlet_id: str, token: str, session: Any = None) -> None:
        self.hq = hq
        self.outlet_id = outlet_id
        self.token = token
        self.http: Any = session if session is not None else hq.session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def hello(self) -> dict[str, Any]:
        answer = self.http.get(self.hq.url + "/v1/sync/hello", timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def next_seq(self) -> int:
        return int(self.hello()["last_seq"]) + 1

    def event(self, body: Body, seq: int | None = None) -> Event:
        return make_event(self.outlet_id, seq if seq is not None else self.next_seq(), body)

    def events(self, *bodies: Body) -> list[Event]:
        first = self.next_seq()
        return [make_event(self.outlet_id, first + i, body) for i, body in enumerate(bodies)]

    def push_raw(self, payload: Any = None, data: bytes | None = None,
                 **kw: Any) -> requests.Response:
        if data is None:
            return self.http.post(self.hq.url + "/v1/sync/push", json=payload, timeout=30, **kw)
        return self.http.post(self.hq.url + "/v1/sync/push", data=data, timeout=30,
                              headers={"Content-Type": "application/json"}, **kw)

    def push(self, events: list[Event], outlet_id: str | None = None, protocol: int = 1,
             ) -> requests.Response:
        payload = {"protocol": protocol, "outlet_id": outlet_id or self.outlet_id,
                   "events": [e.model_dump(mode="json") for e in events]}
        return self.push_raw(payload)

    def pushed(self, events: list[Event]) -> dict[str, Any]:
        answer = self.push(events)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def pull(self, cursor: int = 0, **params: Any) -> requests.Response:
        return self.http.get(self.hq.url + "/v1/sync/pull",
                             params={"cursor": cursor, **params}, timeout=30)


def registered(name: str = "Test") -> CustomerRegistered:
    card = "".join(random.choice("0123456789") for _ in range(13))
    return CustomerRegistered(customer_id=new_id(), card_number=card,
                              profile=Profile(kind="person", given_name=name, surname="Hq",
                                              category="A"))


def sale(customer_id: str, net: int = 10_000, points: int = 200) -> SaleRecorded:
    return SaleRecorded(
        sale_id=new_id(), customer_id=customer_id, currency="EUR",
        lines=[SaleLine(sku="X", name="X", qty=1, unit_price=net, gross=net, discount=0,
                        net=net)],
        payments=[Payment(mode="cash", amount=net)], total_gross=net, total_discount=0,
        total_net=net, points_earned=points)


def redeemed(customer_id: str, points: int) -> GiftRedeemed:
    return GiftRedeemed(redemption_id=new_id(), customer_id=customer_id, gift_sku="GIFT-MUG",
                        gift_name="Club mug", qty=1, points_spent=points)


def hold_the_writer(conn: Any) -> None:
    """Makes the caller's open write transaction hold HQ's writer until it ends, on either
    store: on SQLite it does already (one writer per file); on PostgreSQL it locks
    `outlets` against every other writer, so a push waits at its first statement (which
    locks its outlet's row), as on SQLite, while reads (a token's check) go on."""
    if dialect_of(conn).postgres:
        conn.execute("LOCK TABLE outlets IN EXCLUSIVE MODE")


def hold_hq_facts(conn: Any) -> None:
    """What HQ's own facts wait for: HQ's fact numbering (ingest.making_hq_facts)."""
    store.serialise(conn, HQ_FACTS)


def hold_the_change_log(conn: Any) -> None:
    """What every writing transaction waits for last: the change log's counter row."""
    conn.execute("UPDATE counters SET value = value WHERE name = 'changes'")


def at_once(chain: Chain, *calls: Callable[[], Any],
            hold: Callable[[Any], None] = hold_hq_facts, in_order: bool = False) -> list[Any]:
    """Runs `calls` together as several HQ processes would (PostgreSQL only): each in a
    thread of its own (a connection of its own), all held by what `hold` locks in this
    thread's transaction (HQ's fact numbering unless said) until every one of them still
    running waits on a lock, then let go at once. `in_order`: each call is started once the
    one before it waits, so they queue for the same lock in the order given (PostgreSQL
    grants it in that order). Each call's answer, or the exception it raised."""
    outcomes: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            outcomes[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - the caller checks what each one gave
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    with chain.db.write() as conn:
        hold(conn)
        with chain.db.session() as watcher:
            def all_wait(started: list[threading.Thread]) -> bool:
                row = watcher.execute(
                    "SELECT COUNT(DISTINCT pid) FROM pg_locks WHERE NOT granted").fetchone()
                return bool(row[0] >= sum(t.is_alive() for t in started))

            for n, thread in enumerate(threads, start=1):
                thread.start()
                if in_order or n == len(threads):
                    wait_until(lambda n=n: all_wait(threads[:n]),  # type: ignore[misc]
                               what="every call still running waiting on a lock")
    for thread in threads:
        thread.join(30)
    return outcomes


def snapshot(hq: HQAdmin) -> dict[str, Any]:
    """Everything a refused push must leave alone (on either store)."""
    def one(sql: str) -> Any:
        return hq.rows(sql)[0][0]

    return {
        "events": one("SELECT COUNT(*) FROM events"),
        "flags": one("SELECT COUNT(*) FROM flags"),
        "customers": one("SELECT COUNT(*) FROM customers"),
        "identifiers": one("SELECT COUNT(*) FROM identifiers"),
        "sales": one("SELECT COUNT(*) FROM sales"),
        "tallies": hq.rows("SELECT * FROM customer_tally ORDER BY customer_id"),
        "last_seq": hq.rows("SELECT outlet_id, last_seq FROM outlets ORDER BY 1"),
        "changes": one("SELECT COALESCE(MAX(seq), 0) FROM changes"),
        "stock": hq.rows("SELECT * FROM gift_stock ORDER BY 1, 2"),
    }
