"""Gift redemptions at the desk: idempotency and stock, from the domain layer."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agent import customers, gifts, sales
from schema.api import CustomerIn, PaymentIn, QuoteIn, RedemptionIn, SaleIn
from schema.errors import ConfigError, IdempotencyConflict


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
