"""The way back across a chain: HQ and outlets A and B as real processes (docs/programme.md,
"A sale from another outlet"; docs/till-api.md, "Returns and voids").

HQ is stopped to take the network away, exactly as an outage does: a return of a sale made
at A works at B from the receipt's code alone, within the card's `floor_returns`; the same
receipt twice at one outlet is refused; returned at A and at B while both are offline, both
apply and HQ flags it, the loss within the bound. HQ applies every return once and restates
the statistics every outlet then shows; a supervisor approves taking back points already
spent when the programme says so. Every test runs with HQ on a SQLite file and on PostgreSQL
(tests/e2e/conftest.py `chain_store`).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from agentkit import expect_error, line
from chainkit import ChainRig, OutletProcess, hq_ledger_check, hq_reports, until

from agent.defaults import LIMITS
from schema import reports

CHAIN_ON_BOTH_STORES = True

FLOOR_B = next(limit.floor_returns for limit in LIMITS if limit.category == "B")  # 200.00


def known_at(agent: OutletProcess, customer_id: str) -> None:
    until(lambda: agent.balance(customer_id) is not None, 15, every=0.05,
          what=f"{customer_id} known at {agent.outlet}")


def give_back(agent: OutletProcess, body: dict[str, Any]) -> Any:
    return agent.till.post("/v1/returns", {"till_id": agent.till.till_id, **body})


def synced(chain: ChainRig) -> None:
    """Every outlet has pushed everything and pulled HQ's last change."""
    chain.settled()
    head = chain.hq.rows("SELECT COALESCE(MAX(seq), 0) FROM changes")[0][0]
    for agent in chain.outlets.values():
        until(lambda a=agent: a.status()["cursor"] >= head, 15, every=0.05,
              what=f"{agent.outlet} pulled HQ's head")


def view(agent: OutletProcess, customer_id: str) -> dict[str, Any]:
    shown = agent.till.ok("GET", f"/v1/customers/{customer_id}")
    return {"statistics": shown["statistics"], "points_balance": shown["points_balance"]}


def hq_view(chain: ChainRig, customer_id: str) -> dict[str, Any]:
    held = chain.hq.customer(customer_id)
    return {"statistics": held["statistics"], "points_balance": held["points_balance"]}


def test_a_sale_made_at_a_is_returned_at_b_offline_from_its_code_within_the_floor(
        chain: ChainRig) -> None:
    a, b = chain.outlets["A"], chain.outlets["B"]
    who = a.till.register("B", surname="Abroad")
    card, cid = who["card_number"], who["customer_id"]
    known_at(b, cid)
    chain.hq.stop()  # no network from here: B never sees A's sale
    sale = a.till.sold(card, [line("TV", 15_000, name="Radio"), line("CBL", 8_000, name="Cable")])
    code = sale["receipt_code"]
    expect_error(give_back(b, {"sale_id": sale["sale_id"], "card": card,
                               "lines": [{"sku": "TV", "qty": 1}]}), 404, "sale_unknown")
    expect_error(give_back(b, {"receipt": sale["receipt_reference"], "card": card,
                               "lines": [{"sku": "TV", "qty": 1}]}), 404, "sale_unknown")
    expect_error(give_back(b, {"receipt": code, "lines": [{"sku": "TV", "qty": 1}]}),
                 422, "invalid_request")  # another outlet's sale needs the customer's card

    first = give_back(b, {"receipt": code, "card": card, "lines": [{"sku": "TV", "qty": 1}]})
    assert first.status_code == 201, first.text
    radio = first.json()
    assert radio["sale_id"] == sale["sale_id"] and radio["refunded"] == radio["value"]
    # the same receipt again at this outlet: refused, it knows its own return
    expect_error(give_back(b, {"receipt": code, "card": card, "lines": [{"sku": "TV", "qty": 1}]}),
                 409, "return_exceeds_sale")
    # the cable would take this card's refunds on other outlets' sales beyond floor_returns
    assert radio["value"] < FLOOR_B < sale["total_net"]
    over = expect_error(give_back(b, {"receipt": code, "card": card,
                                      "lines": [{"sku": "CBL", "qty": 1}]}),
                        402, "offline_limit_exceeded")
    assert over["context"] == {"floor_returns": FLOOR_B, "refunded": radio["value"]}

    # meanwhile A, offline too, takes the radio back from its own records
    home = give_back(a, {"receipt": sale["receipt_reference"], "lines": [{"sku": "TV", "qty": 1}]})
    assert home.status_code == 201, home.text

    chain.hq.start()
    synced(chain)
    flags = [r[0] for r in chain.hq.rows(
        "SELECT f.reason FROM flags f JOIN events e ON e.event_id = f.event_id"
        " WHERE e.type = 'return.recorded'")]
    rows = chain.hq.rows("SELECT outlet_id, home, refunded FROM returns WHERE sale_id = ?"
                         " ORDER BY outlet_id", (sale["sale_id"],))
    assert rows == [("A", 1, radio["value"]), ("B", 0, radio["value"])]
    assert len(flags) == 1 and "line 0 (TV): 2 returned of 1 sold" in flags[0], flags
    lost = radio["value"]  # the second refund: what no outlet could check
    assert lost <= FLOOR_B
    # both applied: HQ takes the sale's points back twice (the audit is the flag) and every
    # outlet ends showing HQ's figures
    assert view(a, cid) == view(b, cid) == hq_view(chain, cid)
    hq_ledger_check(chain.hq.db, {o: p.db for o, p in chain.outlets.items()})


def test_hq_restates_the_statistics_after_a_return_and_every_outlet_shows_them(
        chain: ChainRig) -> None:
    a, b = chain.outlets["A"], chain.outlets["B"]
    who = a.till.register("A", surname="Restated")
    card, cid = who["card_number"], who["customer_id"]
    known_at(b, cid)
    small = b.till.sold(card, [line("CBL", 800, qty=2, name="Cable")])
    big = a.till.sold(card, [line("TV", 90_000, name="Television"),
                             line("CBL", 1_000, name="Cable gold")])
    synced(chain)
    before = hq_view(chain, cid)["statistics"]
    assert before["most_expensive_purchase"]["sale_id"] == big["sale_id"]
    voided = a.till.post(f"/v1/sales/{big['sale_id']}/void",
                         {"till_id": "A-T1", "reason": "customer changed their mind"})
    assert voided.status_code == 201, voided.text
    synced(chain)
    after = hq_view(chain, cid)
    stats = after["statistics"]
    assert stats["most_expensive_purchase"] == {"sale_id": small["sale_id"],
                                                "total": small["total_net"]}
    assert stats["top_expensive_items"] == [{"sku": "CBL", "name": "Cable", "unit_price": 800}]
    assert stats["top_purchased_items"] == [{"sku": "CBL", "name": "Cable", "qty": 2}]
    assert (stats["total_purchases"], stats["purchases_count"], stats["items_bought"]) == (
        small["total_net"], 1, 2)
    assert after["points_balance"] == small["points_earned"]
    assert view(a, cid) == view(b, cid) == after
    expect_error(a.till.post(f"/v1/sales/{big['sale_id']}/void",
                             {"till_id": "A-T1", "reason": "again"}), 409, "already_reversed")

    with hq_reports(chain.hq.db) as conn:
        listed = [d for d in reports.run(conn, "returns").as_dicts()
                  if d["receipt"] == big["receipt_reference"]]
        turnover = {d["outlet"]: d for d in reports.run(conn, "turnover").as_dicts()}
    assert [(d["outlet"], d["till"], d["kind"], d["reason"], d["value"]) for d in listed] == [
        ("A", "A-T1", "void", "customer changed their mind", big["total_net"])]
    assert turnover["A"]["returned"] >= big["total_net"]


def test_points_already_spent_go_to_a_supervisor_when_the_programme_says_so(
        chain: ChainRig) -> None:
    a = chain.outlets["A"]
    chain.hq.admin("PUT", "/v1/admin/master/programme",
                   json={"returns": {"points_policy": "supervisor"}})
    until(lambda: _programme_at(a) is not None, 15, every=0.05, what="the programme at A")
    try:
        who = a.till.register("A", surname="Spender")
        card, cid = who["card_number"], who["customer_id"]
        sale = a.till.sold(card, [line("TV", 30_000)])  # 270.00 net: 540 points
        a.stock("GIFT-MUG", 1)
        a.till.ok("POST", "/v1/redemptions", 201, json={"card": card, "gift_sku": "GIFT-MUG"})
        body = {"sale_id": sale["sale_id"], "lines": [{"sku": "TV", "qty": 1}]}
        refused = expect_error(give_back(a, body), 403, "supervisor_required")
        assert refused["context"] == {"points_due": 540, "points_balance": 40, "shortfall": 500}
        approved = give_back(a, {**body, "approved_by": "Maja (shift lead)"})
        assert approved.status_code == 201, approved.text
        assert approved.json()["points_balance"] == -500
        synced(chain)
        assert chain.hq.customer(cid)["points_balance"] == -500
        with hq_reports(chain.hq.db) as conn:
            listed = [d for d in reports.run(conn, "returns").as_dicts()
                      if d["receipt"] == sale["receipt_reference"]]
        assert [d["approved_by"] for d in listed] == ["Maja (shift lead)"]
    finally:
        chain.hq.admin("PUT", "/v1/admin/master/programme", json={})
        until(lambda: (_programme_at(a) or {}).get("returns", {}).get("points_policy")
              == "negative", 15, every=0.05, what="the default programme back at A")


def _programme_at(agent: OutletProcess) -> dict[str, Any] | None:
    import json

    conn = sqlite3.connect(f"file:{agent.db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT data FROM master WHERE kind = 'programme'").fetchone()
    finally:
        conn.close()
    return None if row is None else dict(json.loads(row[0]))
