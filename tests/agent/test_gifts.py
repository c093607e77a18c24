"""Gift redemptions at the desk: idempotency and stock, from the domain layer."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent import customers, gifts, sales
from schema.api import CustomerIn, PaymentIn, QuoteIn, RedemptionIn, SaleIn
from schema.errors import ConfigError, IdempotencyConflict, InsufficientPoints
from schema.lots import add_months


def rich_customer(outlet: Any) -> str:
    card = customers.register(outlet, CustomerIn(kind="person", given_name="A", surname="B",
                                                 category="A"))["card_number"]
    quote = sales.quote(outlet, QuoteIn(card=card, lines=[
        {"sku": "X", "name": "X", "qty": 1, "unit_price": 200_000}]))  # type: ignore[list-item]
    sales.sell(outlet, SaleIn(quote_id=quote["quote_id"],
                              payments=[PaymentIn(mode="cash", amount=quote["total_net"])]), None)
    return str(card)


def test_reusing_a_redemption_key_for_another_gift_is_a_conflict_and_hands_out_nothing(
        outlet: Any) -> None:
    card = rich_customer(outlet)
    first, fresh = gifts.redeem(outlet, RedemptionIn(card=card, gift_sku="GIFT-MUG"), "desk-1")
    assert fresh
    assert gifts.redeem(outlet, RedemptionIn(card=card, gift_sku="GIFT-MUG"), "desk-1") == (
        first, False)
    stock_before = {g["sku"]: g["stock"] for g in gifts.stock(outlet)}
    with pytest.raises(IdempotencyConflict):
        gifts.redeem(outlet, RedemptionIn(card=card, gift_sku="GIFT-TOTE"), "desk-1")
    assert {g["sku"]: g["stock"] for g in gifts.stock(outlet)} == stock_before
    assert outlet.db.scalar("SELECT COUNT(*) FROM redemptions") == 1


def test_status_never_writes_into_a_database_that_is_not_an_outlets(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    from agent.replica import open_replica

    with pytest.raises(ConfigError):
        open_replica(other)
    assert other.read_bytes() == before


def test_card_status_printout_shows_balances_and_masks_the_card(outlet: Any) -> None:
    card = rich_customer(outlet)
    gifts.redeem(outlet, RedemptionIn(card=card, gift_sku="GIFT-MUG"), None)
    customer_id = outlet.db.scalar("SELECT customer_id FROM identifiers WHERE value = ?", (card,))
    lines = customers.statement(outlet, customer_id)
    text = "\n".join(lines)
    balance = customers.profile(outlet, customer_id)["points_balance"]
    assert card not in text and card[-4:] in text
    assert any(line.startswith("Points balance") and line.split()[-1] == str(balance)
               for line in lines)
    assert "Gifts collected" in text and all(len(line) <= 40 for line in lines)


# --- points as lots at the desk and on receipts (docs/programme.md) ------------------------


def run_programme(outlet: Any, doc: dict[str, Any]) -> None:
    """The programme's settings as HQ would publish them (master data `programme`)."""
    from agent.replica import put_master

    with outlet.db.write() as conn:
        put_master(conn, "programme", "programme", doc)
    outlet.reload_programme()


def sell_for(outlet: Any, card: str, unit_price: int) -> dict[str, Any]:
    quote = sales.quote(outlet, QuoteIn(card=card, lines=[
        {"sku": "X", "name": "X", "qty": 1, "unit_price": unit_price}]))  # type: ignore[list-item]
    answer, _ = sales.sell(outlet, SaleIn(quote_id=quote["quote_id"], payments=[
        PaymentIn(mode="cash", amount=quote["total_net"])]), None)
    return answer


def new_card(outlet: Any) -> tuple[str, str]:
    made = customers.register(outlet, CustomerIn(kind="person", given_name="A", surname="B",
                                                 category="A"))
    return made["card_number"], made["customer_id"]


def test_pending_points_cannot_be_spent_before_the_return_window_ends(outlet: Any) -> None:
    run_programme(outlet, {"returns": {"pending_points": True, "return_window_days": 30}})
    card, customer_id = new_card(outlet)
    sale = sell_for(outlet, card, 200_000)
    earned = sale["points_earned"]
    assert f"Points pending {earned}".replace(" ", "") in [
        line.replace(" ", "") for line in sale["receipt_lines"]]
    before = outlet.db.scalar("SELECT COUNT(*) FROM outbox")
    with pytest.raises(InsufficientPoints, match="pending") as refused:
        gifts.redeem(outlet, RedemptionIn(card=card, gift_sku="GIFT-MUG"), None)
    assert refused.value.context["points_pending"] == earned
    assert outlet.db.scalar("SELECT COUNT(*) FROM outbox") == before  # nothing recorded
    assert customers.profile(outlet, customer_id)["points_balance"] == earned
    spendable_on = outlet.db.scalar("SELECT spendable_on FROM customer_lots WHERE "
                                    "customer_id = ?", (customer_id,))
    assert spendable_on == (date.fromisoformat(sale_day(outlet)) + timedelta(days=30)).isoformat()


def sale_day(outlet: Any) -> str:
    return str(outlet.db.scalar("SELECT substr(MAX(at), 1, 10) FROM sales"))


def test_receipts_and_the_statement_say_which_points_expire_within_60_days(
        outlet: Any) -> None:
    card, customer_id = new_card(outlet)
    plain = sell_for(outlet, card, 100_000)  # expiry `never`: no such line
    assert not any("expire" in line for line in plain["receipt_lines"])
    run_programme(outlet, {"expiry": {"kind": "inactivity", "months": 1,
                                      "since": "2020-01-01"}})
    sale = sell_for(outlet, card, 100_000)
    last_day = add_months(date.fromisoformat(sale_day(outlet)), 1).isoformat()
    balance = sale["points_balance"]
    notice = f"{balance} points expire on {last_day}"
    # the notice follows the balance; the receipt reference is the last line
    assert sale["receipt_lines"][-2] == notice, sale["receipt_lines"]
    assert sale["receipt_lines"][-1].split() == ["Receipt", sale["receipt_reference"]]
    gift, _ = gifts.redeem(outlet, RedemptionIn(card=card, gift_sku="GIFT-MUG"), None)
    left = gift["points_balance"]
    assert gift["receipt_lines"][-1] == f"{left} points expire on {last_day}"
    lines = customers.statement(outlet, customer_id)
    assert f"{left} points expire on {last_day}" in lines
    assert all(len(line) <= 40 for line in lines)
    # twelve months: nothing within 60 days, nothing printed
    run_programme(outlet, {"expiry": {"kind": "inactivity", "months": 12,
                                      "since": "2020-01-01"}})
    assert not any("expire" in line for line in customers.statement(outlet, customer_id))
