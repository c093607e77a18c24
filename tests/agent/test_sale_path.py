"""The sale's path at the till (agent/sales.py, `POST /v1/sales`), on a real SQLite file.

What makes it short (issue 10, till latency) without changing what it promises: a sale
checks its Idempotency-Key inside its one write transaction (no read of its own before it),
and its answer is serialised once, stored with the sale for its replays, and sent as
stored. What must not change: a retry with the same key answers the first sale, whatever
happened since (the quote was used up, the card was banned); the same key with another
body is `idempotency_conflict`, before any other refusal.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from agent import customers, sales
from agent.api import create_app
from agent.outlet import Outlet
from schema.api import CustomerIn, PaymentIn, QuoteIn, SaleIn
from schema.errors import (
    CardBanned,
    CreditLimitExceeded,
    IdempotencyConflict,
    PaymentMismatch,
    QuoteUnknown,
)

BASKET = [{"sku": "W-1", "name": "Wine", "qty": 2, "unit_price": 1250}]


def card_of(outlet: Outlet) -> str:
    joined = customers.register(outlet, CustomerIn(kind="person", given_name="Ana",
                                                   surname="Novak", category="A"))
    return str(joined["card_number"])


def quoted(outlet: Outlet, card: str) -> dict[str, object]:
    return sales.quote(outlet, QuoteIn.model_validate({"card": card, "lines": BASKET}))


def by_quote(quote: dict[str, object], paid: int | None = None, mode: str = "cash") -> SaleIn:
    amount = quote["total_net"] if paid is None else paid
    return SaleIn.model_validate({"quote_id": quote["quote_id"],
                                  "payments": [{"mode": mode, "amount": amount}]})


def by_card(outlet: Outlet, card: str) -> SaleIn:
    total = quoted(outlet, card)["total_net"]
    return SaleIn.model_validate({"card": card, "lines": BASKET,
                                  "payments": [{"mode": "cash", "amount": total}]})


class Statements:
    """Every statement the outlet's connection runs, as SQLite sees it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.seen: list[str] = []

    def __enter__(self) -> list[str]:
        self.conn.set_trace_callback(self.seen.append)
        return self.seen

    def __exit__(self, *exc: object) -> None:
        self.conn.set_trace_callback(None)


def before_the_write(seen: list[str]) -> list[str]:
    return seen[:next(i for i, sql in enumerate(seen) if sql.startswith("BEGIN"))]


def test_a_sale_by_quote_runs_every_statement_inside_its_one_write_transaction(
        outlet: Outlet) -> None:
    sale = by_quote(quoted(outlet, card_of(outlet)))
    with Statements(outlet.db.conn) as seen:
        sales.sell(outlet, sale, "key-1")
    assert before_the_write(seen) == []
    assert [sql for sql in seen if sql in ("BEGIN IMMEDIATE", "COMMIT")] == [
        "BEGIN IMMEDIATE", "COMMIT"]
    assert sum("FROM sales WHERE idempotency_key" in sql for sql in seen) == 1


def test_a_sale_by_card_reads_the_card_before_its_write_and_its_key_only_inside_it(
        outlet: Outlet) -> None:
    sale = by_card(outlet, card_of(outlet))
    with Statements(outlet.db.conn) as seen:
        sales.sell(outlet, sale, "key-1")
    read = before_the_write(seen)  # the card, to price the basket outside the write lock
    assert any("FROM identifiers" in sql for sql in read)
    assert not any("FROM sales" in sql for sql in read)
    assert sum("FROM sales WHERE idempotency_key" in sql for sql in seen) == 1


def test_a_credit_sale_checks_the_limit_without_reading_the_customers_item_history(
        outlet: Outlet) -> None:
    card = card_of(outlet)
    for _ in range(3):  # some history: items bought, credit owed
        sales.sell(outlet, by_quote(quoted(outlet, card), mode="credit"), None)
    owed = outlet.db.scalar("SELECT paid_credit FROM customer_tally")
    sale = by_quote(quoted(outlet, card), mode="credit")
    with Statements(outlet.db.conn) as seen:
        sales.sell(outlet, sale, None)
    assert not [sql for sql in seen if "FROM customer_items" in sql]
    assert outlet.db.scalar("SELECT paid_credit FROM customer_tally") > owed > 0


def test_a_credit_sale_over_the_limit_counts_what_is_owed(outlet: Outlet) -> None:
    card = card_of(outlet)
    limit = outlet.credit_limit("A")
    big = [{"sku": "BIG", "name": "Big", "qty": 1, "unit_price": limit}]
    first = sales.quote(outlet, QuoteIn.model_validate({"card": card, "lines": big}))
    sales.sell(outlet, by_quote(first, mode="credit"), None)
    second = sales.quote(outlet, QuoteIn.model_validate({"card": card, "lines": big}))
    with pytest.raises(CreditLimitExceeded) as refused:
        sales.sell(outlet, by_quote(second, mode="credit"), None)
    assert refused.value.context == {"credit_limit": limit,
                                     "credit_outstanding": first["total_net"]}


def test_a_retry_after_its_quote_was_used_up_answers_the_first_sale(outlet: Outlet) -> None:
    sale = by_quote(quoted(outlet, card_of(outlet)))
    first, fresh = sales.sell(outlet, sale, "key-1")
    assert fresh
    again, fresh = sales.sell(outlet, sale, "key-1")  # the quote is gone: sold
    assert (again, fresh) == (first, False)
    with pytest.raises(QuoteUnknown):  # without the key it is a new sale of a used quote
        sales.sell(outlet, sale, None)
    assert outlet.db.scalar("SELECT COUNT(*) FROM sales") == 1


def test_a_retry_answers_the_first_sale_even_when_the_card_was_banned_since(
        outlet: Outlet) -> None:
    card = card_of(outlet)
    sale = by_card(outlet, card)
    first, _ = sales.sell(outlet, sale, "key-1")
    with outlet.db.write() as conn:
        conn.execute("UPDATE customers SET status = 'banned'")
    assert sales.sell(outlet, sale, "key-1") == (first, False)
    with pytest.raises(CardBanned):
        sales.sell(outlet, sale, "key-2")


def test_a_key_reused_for_another_body_is_a_conflict_before_any_other_refusal(
        outlet: Outlet) -> None:
    card = card_of(outlet)
    quote = quoted(outlet, card)
    sales.sell(outlet, by_quote(quote), "key-1")
    before = outlet.db.scalar("SELECT COUNT(*) FROM outbox")
    other = quoted(outlet, card)
    with pytest.raises(IdempotencyConflict):  # payments that do not add up
        sales.sell(outlet, by_quote(other, paid=1), "key-1")
    with pytest.raises(IdempotencyConflict):  # a quote that is gone
        sales.sell(outlet, SaleIn(quote_id="no-such-quote", payments=[
            PaymentIn(mode="cash", amount=1)]), "key-1")
    with pytest.raises(PaymentMismatch):  # with a fresh key the body's own refusal
        sales.sell(outlet, by_quote(other, paid=1), "key-2")
    assert outlet.db.scalar("SELECT COUNT(*) FROM outbox") == before


@pytest.fixture
def client(outlet: Outlet) -> Iterator[TestClient]:
    with TestClient(create_app(outlet)) as http:
        yield http


def test_a_sale_is_answered_with_the_very_bytes_stored_for_its_replays(
        outlet: Outlet, client: TestClient) -> None:
    card = card_of(outlet)
    quote = client.post("/v1/quotes", json={"card": card, "lines": BASKET}).json()
    key = str(uuid.uuid4())
    body = {"quote_id": quote["quote_id"],
            "payments": [{"mode": "cash", "amount": quote["total_net"]}]}
    first = client.post("/v1/sales", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    stored = outlet.db.scalar("SELECT response FROM sales WHERE idempotency_key = ?", (key,))
    assert first.content == stored.encode()  # serialised once: what was sent is what is kept
    again = client.post("/v1/sales", json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert again.headers["content-type"] == "application/json"
