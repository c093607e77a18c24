"""End to end: head office's corrections and point expiry reach real outlets (issue 11).

HQ and outlets A and B are real processes on loopback. A correction made through the
admin API, and one made with `loyalty hq adjust` beside the running HQ, are HQ facts with
their reason in the ledger and change the balance every outlet shows. With expiry turned
on (no `since`: from today), the outlets print "N points expire on DATE" on receipts and
on the card statement, and HQ's expiry run takes the points away at every outlet.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from chainkit import ChainRig, OutletProcess, buy, cli, until

from schema.lots import add_months

PRICE = 100_000  # category A: 1000.00 -> 900.00 net -> 1800 points
POINTS = 1_800


def balance_becomes(agent: OutletProcess, customer_id: str, points: int) -> None:
    until(lambda: agent.balance(customer_id) == points, 30, every=0.05,
          what=f"balance {points} at {agent.outlet}")


def statement(agent: OutletProcess, customer_id: str) -> list[str]:
    lines: list[str] = agent.till.ok("GET", f"/v1/customers/{customer_id}/statement")[
        "receipt_lines"]
    return lines


def test_a_correction_at_hq_reaches_every_outlet_with_its_reason_in_the_ledger(
        chain: ChainRig) -> None:
    a, b = chain.outlets["A"], chain.outlets["B"]
    card = a.till.register("A", surname="Corrected")
    buy(a.till, card["card_number"], PRICE)
    balance_becomes(b, card["customer_id"], POINTS)

    made = chain.hq.admin("POST", f"/v1/admin/customers/{card['customer_id']}/adjustments",
                          201, json={"points": -300, "reason": "receipt 0042 scanned twice"})
    assert made["points_balance"] == POINTS - 300
    for agent in (a, b):
        balance_becomes(agent, card["customer_id"], POINTS - 300)

    # the command line, beside the running HQ, by club card number
    done = cli("hq", "adjust", "--db", str(chain.hq.db), card["card_number"], "--points", "50",
               "--credit", "-2,50", "--reason", "goodwill for the wait")
    assert done.returncode == 0, done.stderr
    for agent in (a, b):
        balance_becomes(agent, card["customer_id"], POINTS - 250)
    view = b.till.ok("GET", f"/v1/customers/{card['customer_id']}")
    assert view["credit_balance"] == 250  # -2.50 in the customer's favour is 2.50 owed

    conn = chain.hq.db_conn()
    try:
        facts = [(r[0], json.loads(r[1])["body"]["reason"]) for r in conn.execute(
            "SELECT outlet_id, event FROM events WHERE type = 'balance.adjusted' AND "
            "customer_id = ? ORDER BY hq_seq", (card["customer_id"],))]
    finally:
        conn.close()
    assert facts == [("HQ", "receipt 0042 scanned twice"), ("HQ", "goodwill for the wait")]


def test_expiry_turned_on_is_announced_on_receipts_and_taken_at_every_outlet(
        chain: ChainRig) -> None:
    a, b = chain.outlets["A"], chain.outlets["B"]
    card = a.till.register("A", surname="Expiring")
    buy(a.till, card["card_number"], PRICE)
    balance_becomes(b, card["customer_id"], POINTS)
    today = datetime.now(UTC).date()
    # points expire a month after the last purchase; no `since`: from today
    chain.hq.admin("PUT", "/v1/admin/master/programme", json={
        "expiry": {"kind": "inactivity", "months": 1}})
    last_day = add_months(today, 1)
    notice = f"{POINTS} points expire on {last_day.isoformat()}"
    until(lambda: notice in statement(b, card["customer_id"]), 30, every=0.05,
          what="B's statement names the points that expire")

    sale = buy(a.till, card["card_number"], PRICE)
    assert sale["receipt_lines"][-2] == f"{2 * POINTS} points expire on {last_day.isoformat()}"
    balance_becomes(b, card["customer_id"], 2 * POINTS)

    # HQ expires after the last day plus the grace (7 days), and never ahead of its own
    # today: HQ's clock moves on to that day (TEST-ONLY skew, schema/events.py)
    run_day = last_day + timedelta(days=8)
    chain.hq.env["LOYALTY_TEST_CLOCK_SKEW_S"] = str((run_day - today).days * 86_400)
    chain.hq.restart()
    ran = chain.hq.admin("POST", "/v1/admin/points/expire", json={"today": run_day.isoformat()})
    assert ran["points"] >= 2 * POINTS and ran["on"] == run_day.isoformat()
    for agent in (a, b):
        balance_becomes(agent, card["customer_id"], 0)
    view = b.till.ok("GET", f"/v1/customers/{card['customer_id']}")
    assert view["statistics"]["total_points_expired"] == 2 * POINTS
    assert view["statistics"]["total_points_earned"] == 2 * POINTS
    lines = statement(a, card["customer_id"])
    assert f"Points expired{' ' * (40 - 14 - len(str(2 * POINTS)))}{2 * POINTS}" in lines
    assert not any("expire on" in line for line in lines)
    chain.hq.admin("PUT", "/v1/admin/master/programme", json={"expiry": {"kind": "never"}})
