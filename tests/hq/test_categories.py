"""Category assignment by the issuer's turnover rules, on a controlled clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from hqkit import ON_POSTGRES, STORES, at_once
from hypothesis import given
from hypothesis import strategies as st

from agent.programme import default_documents
from hq import admin, categories, credentials, feed, ingest
from hq.chain import Chain
from schema.events import CustomerRegistered, Payment, Profile, SaleLine, SaleRecorded, make_event
from schema.masterdata import CategoryRuleDoc
from schema.sync import PushRequest


@pytest.fixture
def chain(hq_db: str) -> Iterator[Chain]:
    """HQ on the store the test is parametrized with (hqkit.STORES)."""
    the_chain = Chain(hq_db, seed=default_documents())
    with the_chain.db.write() as conn:
        credentials.add_outlet(conn, "X")
        # its facts are dated years back: the outlet has traded since 2020 (before that
        # HQ would book them at receipt, docs/sync.md "Outlet clocks")
        conn.execute("UPDATE outlets SET created_at = '2020-01-01T00:00:00.000000Z'")
    for category, threshold in (("A", 100_000), ("B", 50_000), ("C", 10_000)):
        admin.put_master(the_chain, "category_rule",
                         {"category": category, "min_turnover": threshold, "window_days": 365}, by=None)
    yield the_chain
    the_chain.close()


def sale(n: int, customer_id: str, amount: int) -> SaleRecorded:
    line = SaleLine(sku="S", name="S", qty=1, unit_price=amount, gross=amount, discount=0, net=amount)
    return SaleRecorded(sale_id=f"s{n}", customer_id=customer_id, till_id=None, currency="EUR",
                        lines=[line], payments=[Payment(mode="cash", amount=amount)],
                        total_gross=amount, total_discount=0, total_net=amount, points_earned=0)


def register(n: int, customer_id: str) -> CustomerRegistered:
    return CustomerRegistered(customer_id=customer_id, card_number=f"card-{n}", profile=Profile(
        kind="person", given_name="G", surname=f"S{n}", category="D"))


@pytest.mark.parametrize("hq_db", STORES, indirect=True)
def test_customers_move_to_the_highest_category_their_turnover_reaches(chain: Chain) -> None:
    facts = [(register(1, "big"), "2026-01-02T00:00:00Z"), (register(2, "mid"), "2026-01-02T00:00:00Z"),
             (register(3, "old"), "2026-01-02T00:00:00Z"),
             (sale(1, "big", 60_000), "2026-10-01T10:00:00Z"), (sale(2, "big", 40_000), "2026-11-01T10:00:00Z"),
             (sale(3, "mid", 55_000), "2026-11-20T10:00:00Z"),
             (sale(4, "old", 90_000), "2025-06-01T10:00:00Z")]  # outside the 365-day window
    events = [make_event("X", i + 1, body, at) for i, (body, at) in enumerate(facts)]
    ingest.push(chain, "X", PushRequest(outlet_id="X", events=events))
    with chain.db.read() as conn:
        cursor = chain.head(conn)

    assert categories.assign(chain, date(2026, 11, 22)) == {"changed": 2, "checked": 3}
    got = {r["customer_id"]: r["category"] for r in chain.db.all("SELECT * FROM customers")}
    assert got == {"big": "A", "mid": "B", "old": "D"}
    recorded = chain.db.all("SELECT customer_id, type FROM events WHERE outlet_id = 'HQ'")
    assert sorted((r["customer_id"], r["type"]) for r in recorded) == [
        ("big", "customer.updated"), ("mid", "customer.updated")]
    page = feed.pull(chain, "X", cursor)
    pushed = {c.key: c.data["profile"]["category"] for c in page.changes
              if c.kind == "customer" and c.data}
    assert pushed == {"big": "A", "mid": "B"}
    assert categories.assign(chain, date(2026, 11, 22)) == {"changed": 0, "checked": 3}


@pytest.mark.parametrize("hq_db", [ON_POSTGRES], indirect=True)
def test_a_ban_made_while_categories_are_assigned_is_never_overwritten_by_a_move(
        chain: Chain) -> None:
    """Two HQ processes (PostgreSQL, READ COMMITTED; hqkit.at_once in order): an operator
    bans a customer while the nightly category run, reaching HQ's fact numbering just
    after, is about to move them. The run must see the ban and move nobody banned."""
    facts = [(register(1, "big"), "2026-01-02T00:00:00Z"),
             (sale(1, "big", 160_000), "2026-10-01T10:00:00Z")]
    ingest.push(chain, "X", PushRequest(outlet_id="X", events=[
        make_event("X", i + 1, body, at) for i, (body, at) in enumerate(facts)]))
    done = at_once(chain, lambda: admin.set_status(chain, "big", "banned", "fraud", by=None),
                   lambda: categories.assign(chain, date(2026, 11, 22)), in_order=True)
    assert not any(isinstance(d, Exception) for d in done), done
    assert done[1] == {"changed": 0, "checked": 1}
    moved = chain.db.all("SELECT 1 FROM events WHERE type = 'customer.updated'")
    assert moved == [] and chain.db.scalar(
        "SELECT category FROM customers WHERE customer_id = 'big'") == "D"


@given(st.integers(min_value=0, max_value=10**7))
def test_the_target_is_the_highest_threshold_reached(turnover: int) -> None:
    rules = sorted([CategoryRuleDoc(category="A", min_turnover=100_000),
                    CategoryRuleDoc(category="B", min_turnover=50_000),
                    CategoryRuleDoc(category="C", min_turnover=10_000)],
                   key=lambda r: -r.min_turnover)
    wanted = categories.target(turnover, rules)
    reached = [r for r in rules if turnover >= r.min_turnover]
    assert wanted == (reached[0].category if reached else None)
