"""End to end: HQ and outlet agents as real processes on loopback (issue 3, "Done means").

Every test drives the tills over HTTP and HQ over its admin API, as a POS and head office
do, and stops the HQ process to take the network away. Latencies are printed (`-s`). Every test runs
with HQ on a SQLite file and on PostgreSQL (tests/e2e/conftest.py `chain_store`).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from typing import Any

import pytest
from agentkit import expect_error
from chainkit import ChainRig, OutletProcess, buy, cli, hq_ledger_check, until

CHAIN_ON_BOTH_STORES = True

# Category A (the default "Gold"): 10 % off, 200 points per 100.00 net, floor_points 2000.
PRICE = 100_000          # 1000.00 -> 900.00 net -> 1800 points
POINTS = 1_800


def register(agent: OutletProcess, **fields: Any) -> dict[str, str]:
    return agent.till.register("A", **fields)


def seen_at(agent: OutletProcess, card: str, timeout: float = 10.0) -> float:
    elapsed, _ = until(lambda: agent.identify(card).status_code == 200, timeout,
                       every=0.005, what=f"card {card} known at {agent.outlet}")
    return elapsed


def balance_becomes(agent: OutletProcess, customer_id: str, points: int,
                    timeout: float = 30.0) -> float:
    elapsed, _ = until(lambda: agent.balance(customer_id) == points, timeout, every=0.02,
                       what=f"balance {points} at {agent.outlet}")
    return elapsed


def test_card_issued_at_a_is_identified_at_b_within_2s(chain: ChainRig) -> None:
    a, b = chain.outlets["A"], chain.outlets["B"]
    latencies = []
    for i in range(3):
        issued = register(a, surname=f"Novak{i}")
        latencies.append(seen_at(b, issued["card_number"], timeout=2.0))
        found = b.identify(issued["card_number"]).json()
        assert found["customer_id"] == issued["customer_id"]
        assert found["display_name"] == f"Test Novak{i}"
    print(f"\ncard issued at A -> identified at B: {', '.join(f'{x:.3f}s' for x in latencies)}")
    # and the points of a sale at A reach B as well
    sale = buy(a.till, issued["card_number"], PRICE)
    assert sale["points_earned"] == POINTS
    elapsed = balance_becomes(b, issued["customer_id"], POINTS, timeout=2.0)
    print(f"sale at A -> balance at B: {elapsed:.3f}s")


@pytest.mark.slow
def test_points_earned_while_hq_is_down_are_spendable_at_b_after(chain: ChainRig) -> None:
    a, b = chain.outlets["A"], chain.outlets["B"]
    issued = register(a)
    card, cid = issued["card_number"], issued["customer_id"]
    seen_at(b, card)
    b.stock("GIFT-VOUCHER-10", 5)
    chain.settled()

    chain.hq.stop()
    took = []
    for _ in range(3):
        start = time.monotonic()
        buy(a.till, card, PRICE)
        took.append(time.monotonic() - start)
    print(f"\nsales at A with HQ down took {', '.join(f'{x * 1000:.0f}ms' for x in took)}")
    assert max(took) < 1.0, f"the till waited for the network: {took}"
    assert a.balance(cid) == 3 * POINTS          # counted at A before HQ knows
    expect_error(b.redeem(card, "GIFT-VOUCHER-10"), 402, "insufficient_points")

    # loyalty status, while HQ is down: the pending sales and the error
    def status_shows_error() -> dict[str, Any]:
        done = cli("status", "--db", str(a.db), "--json")
        assert done.returncode == 0, done.stderr
        figures = json.loads(done.stdout)
        return figures if figures["last_sync_error"] else {}
    _, figures = until(status_shows_error, 15, every=0.2, what="last_sync_error at A")
    assert figures["pending_events"] == 3, figures
    table = cli("status", "--db", str(a.db))
    assert table.returncode == 0
    assert re.search(r"^Pending events\s+3$", table.stdout, re.MULTILINE), table.stdout
    assert re.search(r"^Last sync error\s+\S", table.stdout, re.MULTILINE), table.stdout

    chain.hq.start()
    elapsed = balance_becomes(b, cid, 3 * POINTS)
    print(f"HQ back -> A's offline points at B after {elapsed:.3f}s")
    spent = b.redeem(card, "GIFT-VOUCHER-10")
    assert spent.status_code == 201, spent.text
    assert spent.json()["points_balance"] == 3 * POINTS - 1500
    balance_becomes(a, cid, 3 * POINTS - 1500)
    chain.settled()
    done = cli("status", "--db", str(a.db), "--json")
    after = json.loads(done.stdout)
    assert after["pending_events"] == 0 and not after["last_sync_error"], after
    assert chain.hq.customer(cid)["points_balance"] == 3 * POINTS - 1500


@pytest.mark.slow
def test_local_sale_counts_exactly_once_before_and_after_hq_confirms(chain: ChainRig) -> None:
    """Invariant 4, watched continuously while HQ goes down, comes back and confirms."""
    a = chain.outlets["A"]
    issued = register(a)
    card, cid = issued["card_number"], issued["customer_id"]
    buy(a.till, card, PRICE)
    chain.settled()
    until(lambda: chain.hq.customer(cid)["points_balance"] == POINTS, 5)
    assert a.balance(cid) == POINTS

    chain.hq.stop()
    buy(a.till, card, PRICE, sku="SKU-2")
    expected = 2 * POINTS
    assert a.balance(cid) == expected

    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(a.balance(cid))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        time.sleep(0.3)
        chain.hq.start()
        until(lambda: chain.hq.customer(cid)["points_balance"] == expected, 30, every=0.02)
        chain.settled()
        # the pull that brings HQ's confirmation lands at A (after the pull loop's back-off)
        until(lambda: confirmed_through(a, cid) == last_seq(a), 30, every=0.02,
              what="HQ's confirmation of the offline sale at A")
        time.sleep(0.2)
    finally:
        stop.set()
        watcher.join()
    assert len(seen) > 20 and set(seen) == {expected}, \
        f"A showed {sorted(set(seen))} (wanted {expected})"
    assert a.balance(cid) == expected


def confirmed_through(agent: OutletProcess, customer_id: str) -> int:
    conn = sqlite3.connect(agent.db, timeout=10)
    try:
        return int(conn.execute("SELECT confirmed_through FROM customers WHERE customer_id = ?",
                                (customer_id,)).fetchone()[0])
    finally:
        conn.close()


def last_seq(agent: OutletProcess) -> int:
    conn = sqlite3.connect(agent.db, timeout=10)
    try:
        return int(conn.execute("SELECT MAX(seq) FROM outbox").fetchone()[0])
    finally:
        conn.close()


def test_ban_at_hq_is_refused_at_both_outlets(chain: ChainRig) -> None:
    a, b = chain.outlets["A"], chain.outlets["B"]
    issued = register(a)
    card, cid = issued["card_number"], issued["customer_id"]
    seen_at(b, card)
    start = time.monotonic()
    chain.hq.admin("POST", f"/v1/admin/customers/{cid}/ban", json={"reason": "fraud"})
    took = {}
    for agent in (b, a):
        until(lambda ag=agent: ag.identify(card).status_code == 403, 2.0, every=0.005,
              what=f"ban at {agent.outlet}")
        took[agent.outlet] = time.monotonic() - start
    print(f"\nban at HQ -> refused at B {took['B']:.3f}s, at A {took['A']:.3f}s")
    line = [{"sku": "X", "name": "X", "qty": 1, "unit_price": 1000}]
    for agent in (a, b):
        expect_error(agent.identify(card), 403, "card_banned")
        expect_error(agent.till.post("/v1/quotes", {"card": card, "lines": line}), 403,
                     "card_banned")
        expect_error(agent.till.sell(card, line, payments=[{"mode": "cash", "amount": 1000}]),
                     403, "card_banned")
    assert chain.hq.customer(cid)["status"] == "banned"


def test_ban_and_unban_on_the_command_line_by_card_number_reach_an_outlet(
        chain: ChainRig) -> None:
    """`loyalty hq ban|unban --db hq.db CARD` beside the running HQ: HQ facts like the
    admin API's, reaching the outlet's till within seconds (HQ's waiting pulls look for
    changes made by another process every second)."""
    a = chain.outlets["A"]
    issued = register(a)
    card, cid = issued["card_number"], issued["customer_id"]
    until(lambda: chain.hq.admin("GET", f"/v1/admin/customers/{cid}", None).status_code == 200,
          10, what="HQ knows the customer")
    start = time.monotonic()
    done = cli("hq", "ban", "--db", str(chain.hq.db), card, "--reason", "fraud")
    assert done.returncode == 0, done.stderr
    until(lambda: a.identify(card).status_code == 403, 10, every=0.05, what="ban at A")
    expect_error(a.identify(card), 403, "card_banned")
    banned_after = time.monotonic() - start
    done = cli("hq", "unban", "--db", str(chain.hq.db), card)
    assert done.returncode == 0, done.stderr
    until(lambda: a.identify(card).status_code == 200, 10, every=0.05, what="unban at A")
    print(f"\nCLI ban -> refused at A {banned_after:.2f}s; "
          f"unban -> accepted {time.monotonic() - start - banned_after:.2f}s")
    assert chain.hq.customer(cid)["status"] == "approved"


def test_card_blocked_at_hq_is_refused_at_both_outlets(chain: ChainRig) -> None:
    a, b = chain.outlets["A"], chain.outlets["B"]
    issued = register(a)
    card = issued["card_number"]
    other = register(b)  # a second customer stays usable
    seen_at(b, card)
    seen_at(a, other["card_number"])
    chain.hq.admin("POST", "/v1/admin/identifiers/status",
                   json={"kind": "card", "value": card, "status": "blocked"})
    for agent in (a, b):
        until(lambda ag=agent: ag.identify(card).status_code == 403, 2.0, every=0.005)
        expect_error(agent.identify(card), 403, "card_blocked")
        line = [{"sku": "X", "name": "X", "qty": 1, "unit_price": 1000}]
        expect_error(agent.till.sell(card, line, payments=[{"mode": "cash", "amount": 1000}]),
                     403, "card_blocked")
        assert agent.identify(other["card_number"]).status_code == 200
    chain.hq.admin("POST", "/v1/admin/identifiers/status",
                   json={"kind": "card", "value": card, "status": "active"})
    for agent in (a, b):
        until(lambda ag=agent: ag.identify(card).status_code == 200, 2.0, every=0.005)


def test_master_data_change_at_hq_changes_the_quote_at_an_outlet(chain: ChainRig) -> None:
    a = chain.outlets["A"]
    mint = {"code": "M", "name": "Mint", "discount_bp": 500, "points_per_100": 100,
            "floor_points": 300}
    chain.hq.admin("PUT", "/v1/admin/master/category", json=mint)
    body = {"kind": "person", "given_name": "Mint", "surname": "Julep", "category": "M"}
    elapsed, issued = until(lambda: (r := a.till.post("/v1/customers", body)).status_code == 201
                            and r.json(), 5.0, what="category M known at A")
    print(f"\nnew category at HQ -> usable at A after {elapsed:.3f}s")
    card = issued["card_number"]
    line = [{"sku": "X", "name": "X", "qty": 1, "unit_price": 10_000}]
    before = a.till.quote(card, line)
    assert before["total_discount"] == 500 and before["points_to_earn"] == 95
    chain.hq.admin("PUT", "/v1/admin/master/category",
                   json={**mint, "discount_bp": 2_500, "points_per_100": 300})
    elapsed, after = until(lambda: (q := a.till.quote(card, line))["total_discount"] == 2_500
                           and q, 5.0, every=0.01, what="the new discount at A")
    print(f"master data at HQ -> quote at A after {elapsed:.3f}s")
    assert after["total_net"] == 7_500
    assert after["points_to_earn"] == 225  # 300 per 100.00 of 75.00
    # a document HQ cannot validate is refused, and nothing reaches the outlet
    bad = chain.hq.admin("PUT", "/v1/admin/master/category", status=None,
                         json={**mint, "discount_bp": 20_000})
    expect_error(bad, 422, "invalid_request")
    unknown = chain.hq.admin("PUT", "/v1/admin/master/planet", status=None, json=mint)
    expect_error(unknown, 422, "invalid_request")
    time.sleep(0.3)
    assert a.till.quote(card, line)["total_discount"] == 2_500


@pytest.mark.slow
def test_new_outlet_bootstraps_the_whole_chain(chain: ChainRig) -> None:
    a, b = chain.outlets["A"], chain.outlets["B"]
    cards = [register(a, surname=f"A{i}")["card_number"] for i in range(8)]
    cards += [register(b, surname=f"B{i}")["card_number"] for i in range(7)]
    buy(a.till, cards[0], PRICE)
    chain.hq.admin("PUT", "/v1/admin/master/category",
                   json={"code": "P", "name": "Platinum", "discount_bp": 1_500,
                         "points_per_100": 300, "floor_points": 3_000})
    chain.hq.admin("PUT", "/v1/admin/master/gift",
                   json={"sku": "GIFT-BIKE", "name": "Bicycle", "points_cost": 90_000})
    chain.settled()

    c = chain.outlet("C")
    until(lambda: c.status()["pending_events"] == 0 and c.status()["cursor"] > 0, 10)

    def c_has_everything() -> bool:
        return all(c.identify(card).status_code == 200 for card in cards)

    elapsed, _ = until(c_has_everything, 10, every=0.05, what="every card at C")
    print(f"\nC bootstrapped {len(cards)} customers in {elapsed:.3f}s after start")
    hq_master = {(r[0], r[1]) for r in chain.hq.rows("SELECT kind, key FROM master")}
    hq_customers = {r[0] for r in chain.hq.rows("SELECT customer_id FROM customers")}
    cc = sqlite3.connect(c.db)
    try:
        c_master = {(r[0], r[1]) for r in cc.execute("SELECT kind, key FROM master")}
        c_customers = {r[0] for r in cc.execute("SELECT customer_id FROM customers")}
    finally:
        cc.close()
    assert ("category", "P") in c_master and ("gift", "GIFT-BIKE") in c_master
    assert c_master == hq_master
    assert c_customers == hq_customers and len(c_customers) >= 15
    assert c.identify(cards[0]).json()["points_balance"] == POINTS
    # C issues cards from its own range
    new = register(c)
    assert new["card_number"][:6] != cards[0][:6] and new["card_number"] not in cards
    c.stop()  # `loyalty sync` by hand is for an outlet whose agent is not serving
    done = cli("sync", "--db", str(c.db))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pending 0" in done.stdout


@pytest.mark.slow
def test_offline_floor_limits_bound_what_an_outlet_spends_unconfirmed(chain: ChainRig) -> None:
    a = chain.outlets["A"]
    issued = register(a)
    card, cid = issued["card_number"], issued["customer_id"]
    buy(a.till, card, 2 * PRICE)                      # 3600 points, confirmed by HQ
    a.stock("GIFT-VOUCHER-10", 10)
    a.stock("GIFT-MUG", 10)
    chain.settled()
    until(lambda: chain.hq.customer(cid)["points_balance"] == 2 * POINTS, 5)

    chain.hq.stop()
    # 2 vouchers = 3000 points: the card has them, but the floor of Gold is 2000
    err = expect_error(a.redeem(card, "GIFT-VOUCHER-10", qty=2), 402, "offline_limit_exceeded")
    assert "2000" in err["message"]
    small = a.redeem(card, "GIFT-MUG")                 # 500 unconfirmed: fine
    assert small.status_code == 201, small.text
    upto = a.redeem(card, "GIFT-VOUCHER-10")           # 500 + 1500 = exactly the floor
    assert upto.status_code == 201, upto.text
    expect_error(a.redeem(card, "GIFT-MUG"), 402, "offline_limit_exceeded")  # 2500 > 2000
    assert a.balance(cid) == 2 * POINTS - 2000

    chain.hq.start()
    until(lambda: chain.hq.customer(cid)["points_balance"] == 2 * POINTS - 2000, 30, every=0.05)
    chain.settled()
    # once HQ has confirmed them, the unconfirmed amount is back to zero
    def mug_again() -> bool:
        return a.redeem(card, "GIFT-MUG").status_code == 201
    until(mug_again, 10, every=0.1, what="a redemption once HQ confirmed")
    assert a.balance(cid) == 2 * POINTS - 2500


@pytest.mark.slow
def test_two_offline_outlets_spending_the_same_points_are_applied_and_flagged(
        chain: ChainRig) -> None:
    a, b = chain.outlets["A"], chain.outlets["B"]
    issued = register(a)
    card, cid = issued["card_number"], issued["customer_id"]
    buy(a.till, card, PRICE)                           # 1800 points
    a.stock("GIFT-VOUCHER-10", 3)
    b.stock("GIFT-VOUCHER-10", 3)
    balance_becomes(b, cid, POINTS)
    chain.settled()

    chain.hq.stop()
    for agent in (a, b):                               # each spends 1500 of the same 1800
        spent = agent.redeem(card, "GIFT-VOUCHER-10")
        assert spent.status_code == 201, spent.text
        assert spent.json()["points_balance"] == POINTS - 1500
    chain.hq.start()
    final = POINTS - 2 * 1500
    until(lambda: chain.hq.customer(cid)["points_balance"] == final, 30, every=0.05)
    chain.settled()
    floors = 2 * 2_000
    assert -floors <= final < 0
    flags = chain.hq.admin("GET", "/v1/admin/flags")
    mine = [f for f in flags if f["customer_id"] == cid]
    assert mine and "overspent" in mine[0]["reason"], flags
    assert chain.hq.customer(cid)["flags"], "the flag shows on HQ's customer view"
    for agent in (a, b):                               # both converge to HQ's balance
        balance_becomes(agent, cid, final)
    # future earnings repay it
    buy(b.till, card, PRICE)
    balance_becomes(a, cid, final + POINTS)
    hq_ledger_check(chain.hq.db, {o: p.db for o, p in chain.outlets.items()})
