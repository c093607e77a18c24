"""A merge of two profiles at HQ reaches the outlets (issue 12), with HQ and outlets A and B
as real processes (the module's shared chain): the old card identifies the survivor at an
online outlet, and an outlet that sold on the old card while it did not know of the merge
(HQ down) has its sale applied to the survivor at HQ, never rejected, counted once at the
outlet. HQ's tallies stay the fold of its ledger."""

from __future__ import annotations

from typing import Any

import pytest
from chainkit import ChainRig, OutletProcess, hq_ledger_check, until
from testkit import line

pytestmark = pytest.mark.timeout(180)


def owner(agent: OutletProcess, card: str) -> str | None:
    answer = agent.identify(card)
    return answer.json()["customer_id"] if answer.status_code == 200 else None


def test_a_merge_reaches_an_outlet_and_an_offline_sale_on_the_old_card_counts_for_the_survivor(
        chain: ChainRig) -> None:
    a, b = chain.outlets["A"], chain.outlets["B"]
    keep = a.till.register("A", given_name="Mila", surname="Dvojnik")
    dup = b.till.register("A", given_name="Mila", surname="Dvojnik", phone="040 555 111")
    kept, gone = keep["customer_id"], dup["customer_id"]
    a.till.sold(keep["card_number"], [line("COF", 450, 2, "Coffee")])
    b.till.sold(dup["card_number"], [line("TEA", 300, 3, "Tea")])
    chain.settled()
    until(lambda: owner(a, dup["card_number"]) == gone, 15, what="A knows the duplicate")

    def hq_points(cid: str) -> int:
        return int(chain.hq.customer(cid)["points_balance"])

    until(lambda: hq_points(kept) > 0 and hq_points(gone) > 0, 15, what="HQ has both sales")
    both = hq_points(kept) + hq_points(gone)

    a.stop()  # A will sell on the old card without having heard of the merge
    merged: dict[str, Any] = chain.hq.admin(
        "POST", f"/v1/admin/customers/{kept}/merge",
        json={"merged": gone, "reason": "one person, two sign-ups"})
    assert merged["points_balance"] == both and merged["merged_from"] == [gone]

    # B is online: the duplicate's card identifies the survivor, with both balances
    until(lambda: owner(b, dup["card_number"]) == kept, 10, what="B resolves the old card")
    until(lambda: b.balance(kept) == both, 10, what="B shows the summed balance")

    chain.hq.stop()
    a.start()
    assert owner(a, dup["card_number"]) == gone  # A's replica is from before the merge
    offline = a.till.sold(dup["card_number"], [line("CAKE", 500, 1, "Cake")])
    assert offline["points_earned"] > 0
    chain.hq.start()
    chain.settled()

    total = both + offline["points_earned"]
    until(lambda: hq_points(kept) == total, 15, what="HQ applies the sale to the survivor")
    assert hq_points(gone) == 0
    conn = chain.hq.db_conn()
    try:
        result = conn.execute("SELECT result FROM events WHERE customer_id = ? AND "
                              "type = 'sale.recorded' ORDER BY hq_seq DESC LIMIT 1",
                              (gone,)).fetchone()[0]
    finally:
        conn.close()
    assert result == "applied"
    until(lambda: owner(a, dup["card_number"]) == kept, 15, what="A resolves the old card")
    until(lambda: a.balance(kept) == total, 15, what="A shows the sale once, on the survivor")
    until(lambda: b.balance(kept) == total, 15, what="B too")
    hq_ledger_check(chain.hq.db, {o.outlet: o.db for o in chain.outlets.values()})
