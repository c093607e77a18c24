"""Returns, voids and gift returns at a real agent process (docs/till-api.md, "Returns and
voids"; the rules in docs/programme.md).

Every expected figure is computed here from the sale as answered (its lines, payments,
points), never read back from the agent's return tables; every refusal is checked for its
code and that it changed nothing in the agent's file. The agent here runs alone (no HQ),
so it restates the customer's statistics itself, as HQ does in a chain
(tests/e2e/test_returns_chain.py has the chain's side).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from agentkit import AgentProcess, Till, connect, db_state, expect_error, line

from agent import customers, gifts, returns, sales
from agent.outlet import Outlet
from agent.replica import put_master
from schema import reports
from schema.api import CustomerIn, LineIn, PaymentIn, QuoteIn, RedemptionIn, ReturnIn, SaleIn
from schema.receiptcode import decode, parse_reference, sale_id_prefix


@pytest.fixture
def agent(start_agent: Any) -> AgentProcess:
    return start_agent(outlet="NORTH")  # type: ignore[no-any-return]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def basket() -> list[dict[str, Any]]:
    return [line("W-1", 1290, qty=3, name="Merlot"), line("B-1", 450, qty=1, name="Bread")]


def sold(till: Till, card: str, payments: list[tuple[str, int]] | None = None) -> dict[str, Any]:
    """A sale of `basket()`; `payments` (mode, amount) with the rest in cash."""
    total = till.quote(card, basket())["total_net"]
    pays = [{"mode": m, "amount": a} for m, a in payments or []]
    pays.append({"mode": "cash", "amount": total - sum(a for _, a in payments or [])})
    return till.sold(card, basket(), payments=pays)


def give_back(till: Till, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return till.post("/v1/returns", {"till_id": till.till_id, **body}, headers=headers)


def returned(till: Till, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    answer = give_back(till, body, key)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def customer(till: Till, customer_id: str) -> dict[str, Any]:
    return till.ok("GET", f"/v1/customers/{customer_id}")  # type: ignore[no-any-return]


def statistics_and_balances(view: dict[str, Any]) -> dict[str, Any]:
    return {"statistics": view["statistics"], "points_balance": view["points_balance"],
            "credit_balance": view["credit_balance"]}


def test_a_sale_receipt_prints_its_reference_and_the_answer_carries_its_code(
        agent: AgentProcess) -> None:
    till = agent.till()
    card = till.register("B")["card_number"]
    sale = sold(till, card)
    ref = sale["receipt_reference"]
    assert parse_reference(ref) == ref and sale["sale_id"].startswith(sale_id_prefix(ref))
    assert sale["receipt_lines"][-1].split() == ["Receipt", ref]
    assert len(sale["receipt_lines"][-1]) <= 40
    data = decode(sale["receipt_code"])
    assert (data.outlet_id, data.sale.sale_id, data.sale.total_net, data.sale.points_earned) == (
        "NORTH", sale["sale_id"], sale["total_net"], sale["points_earned"])


def test_partial_returns_refund_credit_first_and_take_the_points_back_until_the_sale_is_empty(
        agent: AgentProcess) -> None:
    till = agent.till()
    who = till.register("B")
    card = who["card_number"]
    sale = sold(till, card, [("credit", 1000), ("card", 1500)])
    total, points = sale["total_net"], sale["points_earned"]
    quote = till.quote(card, basket())
    merlot = quote["lines"][0]

    first = returned(till, {"sale_id": sale["sale_id"], "lines": [{"sku": "W-1", "qty": 1}]})
    value = (2 * merlot["net"] * 1 + 3) // 6  # the line's net shared cumulatively, half up
    assert first["value"] == value and first["kind"] == "return"
    assert first["refunds"] == [{"mode": "credit", "amount": 1000, "withheld": 0},
                                {"mode": "card", "amount": value - 1000, "withheld": 0}]
    assert first["points_reversed"] == ceil_div(points * value, total)
    assert first["points_balance"] == points - first["points_reversed"]
    assert not first["closes_sale"]

    by_reference = returned(till, {"receipt": sale["receipt_reference"].lower(),
                                   "lines": [{"sku": "W-1", "qty": 2}, {"sku": "B-1", "qty": 1}]})
    assert by_reference["sale_id"] == sale["sale_id"] and by_reference["closes_sale"]
    both = [first, by_reference]
    assert sum(r["value"] for r in both) == total
    assert sum(r["points_reversed"] for r in both) == points
    per_mode: dict[str, int] = {}
    for r in both:
        for refund in r["refunds"]:
            per_mode[refund["mode"]] = per_mode.get(refund["mode"], 0) + refund["amount"]
    assert per_mode == {"credit": 1000, "card": 1500, "cash": total - 2500}

    view = customer(till, who["customer_id"])
    assert view["points_balance"] == 0 and view["credit_balance"] == 0
    stats = view["statistics"]
    assert (stats["total_purchases"], stats["purchases_count"], stats["items_bought"],
            stats["total_discount"]) == (0, 0, 0, 0)
    assert stats["most_expensive_purchase"] is None and stats["top_purchased_items"] == []


def test_more_than_was_sold_minus_returned_is_refused_and_changes_nothing(
        agent: AgentProcess) -> None:
    till = agent.till()
    card = till.register("B")["card_number"]
    sale = sold(till, card)
    returned(till, {"sale_id": sale["sale_id"], "lines": [{"sku": "W-1", "qty": 2}]})
    before = db_state(agent.db)
    error = expect_error(give_back(till, {"sale_id": sale["sale_id"],
                                          "lines": [{"sku": "W-1", "qty": 2}]}),
                         409, "return_exceeds_sale")
    assert error["context"] == {"sku": "W-1", "sold": 3, "returned": 2, "asked": 2}
    expect_error(give_back(till, {"sale_id": sale["sale_id"], "lines": [{"sku": "NOPE", "qty": 1}]}),
                 409, "return_exceeds_sale")
    expect_error(give_back(till, {"sale_id": str(uuid.uuid4()), "lines": [{"sku": "W-1", "qty": 1}]}),
                 404, "sale_unknown")
    ref = sale["receipt_reference"]
    typo = ref[:-1] + ("0" if ref[-1] != "0" else "1")
    expect_error(give_back(till, {"receipt": typo, "lines": [{"sku": "W-1", "qty": 1}]}),
                 422, "receipt_invalid")
    expect_error(give_back(till, {"receipt": "LR1:AAAA", "lines": [{"sku": "W-1", "qty": 1}]}),
                 422, "receipt_invalid")
    expect_error(give_back(till, {"sale_id": sale["sale_id"], "receipt": ref,
                                  "lines": [{"sku": "W-1", "qty": 1}]}), 422, "invalid_request")
    assert db_state(agent.db) == before


def test_the_same_key_answers_the_same_return_and_another_body_is_a_conflict(
        agent: AgentProcess) -> None:
    till = agent.till()
    card = till.register("B")["card_number"]
    sale = sold(till, card)
    body = {"sale_id": sale["sale_id"], "lines": [{"sku": "W-1", "qty": 1}], "reason": "broken"}
    first = give_back(till, body, key="ret-1")
    again = give_back(till, body, key="ret-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    before = db_state(agent.db)
    expect_error(give_back(till, {**body, "lines": [{"sku": "W-1", "qty": 2}]}, key="ret-1"),
                 409, "idempotency_conflict")
    assert db_state(agent.db) == before
    conn = connect(agent.db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM returns").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM outbox WHERE type = 'return.recorded'"
                            ).fetchone()[0] == 1
    finally:
        conn.close()


def test_a_void_gives_back_every_line_left_and_a_second_one_is_already_reversed(
        agent: AgentProcess) -> None:
    till = agent.till()
    card = till.register("B")["card_number"]
    sale = sold(till, card, [("card", 2000)])
    part = returned(till, {"sale_id": sale["sale_id"], "lines": [{"sku": "B-1", "qty": 1}]})
    voided = till.post(f"/v1/sales/{sale['sale_id']}/void",
                       {"till_id": "T1", "reason": "wrong customer"})
    assert voided.status_code == 201, voided.text
    void = voided.json()
    assert void["kind"] == "void" and void["closes_sale"]
    assert [(x["sku"], x["qty"]) for x in void["lines"]] == [("W-1", 3)]
    assert part["value"] + void["value"] == sale["total_net"]
    assert part["points_reversed"] + void["points_reversed"] == sale["points_earned"]
    assert void["receipt_lines"][2].startswith("Void of receipt")
    before = db_state(agent.db)
    expect_error(till.post(f"/v1/sales/{sale['sale_id']}/void", {"till_id": "T1", "reason": "x"}),
                 409, "already_reversed")
    expect_error(give_back(till, {"sale_id": sale["sale_id"], "lines": [{"sku": "W-1", "qty": 1}]}),
                 409, "return_exceeds_sale")
    expect_error(till.post(f"/v1/sales/{uuid.uuid4()}/void", {"till_id": "T1", "reason": "x"}),
                 404, "sale_unknown")
    expect_error(till.post(f"/v1/sales/{sale['sale_id']}/void", {"till_id": "T1"}),
                 422, "invalid_request")
    assert db_state(agent.db) == before


def test_a_full_return_with_nothing_spent_in_between_leaves_the_customer_where_they_were(
        agent: AgentProcess) -> None:
    till = agent.till()
    who = till.register("A")
    card = who["card_number"]
    till.sold(card, [line("W-1", 990, qty=2, name="Merlot"), line("C-1", 5000, name="Cheese")],
              mode="credit")
    before = statistics_and_balances(customer(till, who["customer_id"]))
    big = till.sold(card, [line("W-1", 1590, qty=1, name="Merlot reserve"),
                           line("TV", 90_000, name="Television")], mode="credit")
    assert customer(till, who["customer_id"])["statistics"]["most_expensive_purchase"] == {
        "sale_id": big["sale_id"], "total": big["total_net"]}
    returned(till, {"sale_id": big["sale_id"], "lines": [{"sku": "TV", "qty": 1}]})
    returned(till, {"sale_id": big["sale_id"], "lines": [{"sku": "W-1", "qty": 1}]})
    assert statistics_and_balances(customer(till, who["customer_id"])) == before


def lots_of(db: Path, customer_id: str) -> dict[str, int]:
    """The customer's point lots in the agent's file: lot id -> points."""
    conn = connect(db)
    try:
        return dict(conn.execute("SELECT lot_id, points FROM customer_lots WHERE customer_id = ?"
                                 " ORDER BY lot_id", (customer_id,)).fetchall())
    finally:
        conn.close()


def test_a_return_takes_points_back_from_the_lots_its_sale_made_and_a_full_one_restores_them(
        agent: AgentProcess) -> None:
    till = agent.till()
    who = till.register("A")
    card, cid = who["card_number"], who["customer_id"]
    first = till.sold(card, [line("C-1", 5000, name="Cheese")])
    before = lots_of(agent.db, cid)
    assert before == {first["sale_id"]: first["points_earned"]}
    big = till.sold(card, [line("W-1", 1590, qty=2, name="Merlot"),
                           line("TV", 90_000, name="Television")])
    assert lots_of(agent.db, cid) == {**before, big["sale_id"]: big["points_earned"]}

    part = returned(till, {"sale_id": big["sale_id"], "lines": [{"sku": "TV", "qty": 1}]})
    assert part["points_reversed"] > 0
    assert lots_of(agent.db, cid) == {
        **before, big["sale_id"]: big["points_earned"] - part["points_reversed"]}
    rest = returned(till, {"sale_id": big["sale_id"], "lines": [{"sku": "W-1", "qty": 2}]})
    assert part["points_reversed"] + rest["points_reversed"] == big["points_earned"]
    assert lots_of(agent.db, cid) == before
    assert sum(before.values()) == customer(till, cid)["points_balance"]


def test_a_returns_receipt_shows_what_came_back_the_refund_and_the_points(
        agent: AgentProcess) -> None:
    till = agent.till()
    card = till.register("B")["card_number"]
    sale = sold(till, card, [("card", 1000)])
    done = returned(till, {"receipt": sale["receipt_reference"],
                           "lines": [{"sku": "W-1", "qty": 1}]})
    text = done["receipt_lines"]
    assert all(len(t) <= 40 for t in text)
    assert text[0] == f"Club card ****{card[-4:]}"
    assert text[2].split()[-1] == sale["receipt_reference"]
    assert "Merlot" in text and any(t.startswith("  1 x 12.90") for t in text)
    assert [t.split() for t in text if t.startswith(("Returned", "Refund"))] == [
        ["Returned", f"{done['value'] / 100:.2f}"], ["Refund", "card", "10.00"],
        ["Refund", "cash", f"{(done['value'] - 1000) / 100:.2f}"]]
    assert text[-2].split()[-1] == str(done["points_reversed"])
    assert text[-1].split()[-1] == str(done["points_balance"])


def test_a_gift_given_back_returns_to_stock_and_points_and_the_evidence_shows_it(
        agent: AgentProcess) -> None:
    till = agent.till()
    card = till.register("B")["card_number"]
    till.sold(card, [line("X", 90_000)])  # over 1,000 points in category B
    stock = {g["sku"]: g["stock"] for g in till.ok("GET", "/v1/gifts")}["GIFT-MUG"]
    handed = till.ok("POST", "/v1/redemptions", 201,
                     json={"card": card, "gift_sku": "GIFT-MUG", "qty": 2, "till_id": "T1"})
    path = f"/v1/redemptions/{handed['redemption_id']}/return"
    back = till.post(path, {"qty": 1, "till_id": "T1", "reason": "chipped"},
                     headers={"Idempotency-Key": "g-1"})
    assert back.status_code == 201, back.text
    gift = back.json()
    assert gift["points_returned"] == handed["points_spent"] // 2
    assert gift["points_balance"] == handed["points_balance"] + gift["points_returned"]
    assert gift["stock"] == stock - 1
    assert any(t.startswith("Gift returned 1 x Club mug") for t in gift["receipt_lines"])
    replay = till.post(path, {"qty": 1, "till_id": "T1", "reason": "chipped"},
                       headers={"Idempotency-Key": "g-1"})
    assert replay.json() == gift and replay.headers["Idempotent-Replayed"] == "true"
    before = db_state(agent.db)
    expect_error(till.post(path, {"qty": 2}), 409, "return_exceeds_sale")
    expect_error(till.post(f"/v1/redemptions/{uuid.uuid4()}/return", {}), 404,
                 "redemption_unknown")
    assert db_state(agent.db) == before

    conn = reports.connect(agent.db)
    try:
        evidence = reports.run(conn, "gift-handouts").as_dicts()
    finally:
        conn.close()
    mine = [(r["redemption_id"], r["qty"], r["points"]) for r in evidence
            if r["redemption_id"] == handed["redemption_id"]]
    assert mine == [(handed["redemption_id"], 2, handed["points_spent"]),
                    (handed["redemption_id"], -1, -gift["points_returned"])]


def test_returns_and_voids_reach_the_outbox_once_each_as_facts_naming_their_sale(
        agent: AgentProcess) -> None:
    till = agent.till()
    card = till.register("B")["card_number"]
    sale = sold(till, card)
    returned(till, {"sale_id": sale["sale_id"], "lines": [{"sku": "W-1", "qty": 1}]}, key="k")
    returned(till, {"sale_id": sale["sale_id"], "lines": [{"sku": "W-1", "qty": 1}]}, key="k")
    till.ok("POST", f"/v1/sales/{sale['sale_id']}/void", 201,
            json={"till_id": "T1", "reason": "test"})
    conn = connect(agent.db)
    try:
        facts = [json.loads(r[0]) for r in conn.execute(
            "SELECT event FROM outbox WHERE type = 'return.recorded' ORDER BY seq")]
    finally:
        conn.close()
    assert [(f["body"]["kind"], f["body"]["sale_id"], f["body"]["home"]) for f in facts] == [
        ("return", sale["sale_id"], True), ("void", sale["sale_id"], True)]
    assert all(f["body"]["receipt"] == sale["receipt_reference"] for f in facts)


def test_points_already_spent_are_kept_out_of_the_cash_refund_under_reduce_refund(
        tmp_path: Path) -> None:
    """docs/programme.md, "Points already spent": the policy as head office sets it in the
    programme document, applied by the till's own code on a real replica."""
    shop = Outlet(tmp_path / "outlet.db", "T")
    try:
        with shop.db.write() as conn:
            put_master(conn, "programme", "programme", {"returns": {
                "points_policy": "reduce_refund", "point_value_per_100": 100}})
        shop.reload_programme()
        card = customers.register(shop, CustomerIn(kind="person", given_name="R",
                                                   surname="Reduce", category="B"))["card_number"]
        lines = [LineIn(sku="TV", name="Radio", qty=1, unit_price=40_000)]
        net = sales.quote(shop, QuoteIn(card=card, lines=lines))["total_net"]  # 372.00
        sold, _ = sales.sell(shop, SaleIn(card=card, lines=lines, payments=[
            PaymentIn(mode="card", amount=30_000), PaymentIn(mode="cash", amount=net - 30_000)]),
            "s-1")
        spent, _ = gifts.redeem(shop, RedemptionIn(card=card, gift_sku="GIFT-MUG"), None)
        left = spent["points_balance"]
        done, _ = returns.give_back(shop, ReturnIn.model_validate({
            "sale_id": sold["sale_id"], "lines": [{"sku": "TV", "qty": 1}]}), None)
        short = sold["points_earned"] - left
        kept = ceil_div(short * 100, 100)
        assert (done["points_reversed"], done["points_withheld"]) == (left, short)
        assert done["points_balance"] == 0
        assert done["refunds"] == [
            {"mode": "card", "amount": 30_000, "withheld": 0},
            {"mode": "cash", "amount": net - 30_000 - kept, "withheld": kept}]
        assert done["refunded"] == net - kept
        assert any(t.startswith(f"Kept for {short} points spent") for t in done["receipt_lines"])
    finally:
        shop.close()


def _shop_with_a_sale(tmp_path: Path, days_ago: int) -> tuple[Outlet, str, dict[str, Any]]:
    """An outlet with one sale of `days_ago` days back (its row's time moved back: the
    till's clock is the system's) and a 30-day return window."""
    from datetime import UTC, datetime, timedelta

    shop = Outlet(tmp_path / "outlet.db", "T")
    with shop.db.write() as conn:
        put_master(conn, "programme", "programme", {"returns": {"return_window_days": 30}})
    shop.reload_programme()
    card = customers.register(shop, CustomerIn(kind="person", given_name="W",
                                               surname="Window", category="B"))["card_number"]
    lines = [LineIn(sku="TV", name="Radio", qty=2, unit_price=1_000)]
    net = sales.quote(shop, QuoteIn(card=card, lines=lines))["total_net"]
    sold, _ = sales.sell(shop, SaleIn(card=card, lines=lines, payments=[
        PaymentIn(mode="cash", amount=net)]), "s-old")
    then = (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with shop.db.write() as conn:
        conn.execute("UPDATE sales SET at = ? WHERE sale_id = ?", (then, sold["sale_id"]))
    return shop, card, {**sold, "at": then}


def test_a_return_after_the_return_window_is_refused_unless_a_supervisor_approves(
        tmp_path: Path) -> None:
    from schema.errors import ReturnWindowClosed

    shop, _card, sold = _shop_with_a_sale(tmp_path, days_ago=31)
    try:
        ask = {"sale_id": sold["sale_id"], "lines": [{"sku": "TV", "qty": 1}]}
        before = db_state(tmp_path / "outlet.db")
        with pytest.raises(ReturnWindowClosed) as caught:
            returns.give_back(shop, ReturnIn.model_validate(ask), "k-1")
        assert caught.value.code == "return_window_closed"
        assert db_state(tmp_path / "outlet.db") == before
        done, _ = returns.give_back(shop, ReturnIn.model_validate(
            {**ask, "approved_by": "Maja (supervisor)"}), "k-2")
        assert done["refunded"] > 0
    finally:
        shop.close()


def test_a_return_within_the_return_window_needs_no_approval(tmp_path: Path) -> None:
    shop, _card, sold = _shop_with_a_sale(tmp_path, days_ago=29)
    try:
        done, _ = returns.give_back(shop, ReturnIn.model_validate(
            {"sale_id": sold["sale_id"], "lines": [{"sku": "TV", "qty": 1}]}), None)
        assert done["refunded"] > 0
    finally:
        shop.close()


def test_another_outlets_sale_is_judged_by_the_time_its_receipt_code_carries(
        tmp_path: Path) -> None:
    from schema.errors import ReturnWindowClosed
    from schema.events import SaleRecorded
    from schema.receiptcode import encode

    shop, card, sold = _shop_with_a_sale(tmp_path, days_ago=0)
    try:
        with shop.db.read() as conn:
            (fact,) = [json.loads(r[0])["body"] for r in conn.execute(
                "SELECT event FROM outbox WHERE type = 'sale.recorded'")]
        sale = SaleRecorded.model_validate(fact)
        sale = sale.model_copy(update={"sale_id": str(uuid.uuid4())})
        old = encode("SOUTH", "2020-01-01T10:00:00.000000Z", sale)
        fresh = encode("SOUTH", sold["at"], sale.model_copy(update={"sale_id": str(uuid.uuid4())}))
        assert old and fresh
        with pytest.raises(ReturnWindowClosed):
            returns.give_back(shop, ReturnIn.model_validate(
                {"receipt": old, "card": card, "lines": [{"sku": "TV", "qty": 1}]}), None)
        done, _ = returns.give_back(shop, ReturnIn.model_validate(
            {"receipt": fresh, "card": card, "lines": [{"sku": "TV", "qty": 1}]}), None)
        assert done["refunded"] > 0
    finally:
        shop.close()
