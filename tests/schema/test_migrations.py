"""Forward-only migrations: a database written by the first agent schema (kept as the
fixture tests/fixtures/agent_v1.db, made by tests/fixtures/make_agent_v1.py) opens with the
current code with nothing lost, and the outlet still identifies, sells and redeems on it."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from agentkit import Till, line

from agent import cardnumber, customers, gifts, identification, sales
from agent.outlet import Outlet
from schema.agent_tables import migrations
from schema.api import CustomerIn, QuoteIn, RedemptionIn, SaleIn
from schema.errors import CardBlocked
from schema.events import Event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
V1 = FIXTURES / "agent_v1.db"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "agent_v1.expected.json").read_text())


@pytest.fixture
def v1_copy(tmp_path: Path) -> Path:
    path = tmp_path / "agent_v1.db"
    shutil.copyfile(V1, path)
    return path


@pytest.fixture
def upgraded(v1_copy: Path) -> Any:
    shop = Outlet(v1_copy)  # the current code: applies every pending migration
    yield shop
    shop.close()


def shape(path: Path) -> dict[str, Any]:
    """Tables with their columns, and index names: what a migration changes."""
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {
            "tables": {t: [(c[1], c[2], c[3], c[5]) for c in conn.execute(
                f"PRAGMA table_info('{t}')")] for t in sorted(tables)},
            "indexes": sorted(r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")),
        }
    finally:
        conn.close()


def test_the_fixture_is_small_and_was_written_by_the_first_schema() -> None:
    assert V1.stat().st_size < 200_000
    assert not Path(f"{V1}-wal").exists(), "the fixture is one complete file"
    conn = sqlite3.connect(f"file:{V1}?mode=ro", uri=True)
    try:
        applied = [r[0] for r in conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = ? ORDER BY rowid",
            (migrations.name,))]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        conn.close()
    assert applied == EXPECTED["migrations"] == ["m001_initial"]


def test_opening_a_v1_database_applies_every_migration(upgraded: Outlet) -> None:
    assert migrations.pending(upgraded.db.db) == []
    names = [m.name for m in migrations.applied(upgraded.db.db)]
    assert names[: len(EXPECTED["migrations"])] == EXPECTED["migrations"]


def test_an_upgraded_v1_database_has_the_same_shape_as_a_new_one(v1_copy: Path,
                                                                tmp_path: Path) -> None:
    Outlet(v1_copy).close()
    Outlet(tmp_path / "fresh.db", "NEW").close()
    assert shape(v1_copy) == shape(tmp_path / "fresh.db")


def test_opening_twice_is_harmless(v1_copy: Path) -> None:
    Outlet(v1_copy).close()
    before = shape(v1_copy)
    shop = Outlet(v1_copy)
    try:
        assert shop.db.scalar("SELECT COUNT(*) FROM outbox") == len(EXPECTED["outbox"])
    finally:
        shop.close()
    assert shape(v1_copy) == before


def test_every_v1_customer_profile_balance_and_statistic_is_still_there(
        upgraded: Outlet) -> None:
    assert upgraded.outlet_id == EXPECTED["outlet_id"]
    for customer_id, then in EXPECTED["profiles"].items():
        now = customers.profile(upgraded, customer_id)
        for key, value in then.items():
            if key == "statistics":  # every figure kept; later versions add figures
                value = dict(value, total_points_expired=0)
            assert now[key] == value, (customer_id, key)


def test_points_held_before_lots_existed_become_one_opening_lot(upgraded: Outlet) -> None:
    """m004_point_lots: the balance is exactly the lots' sum, until HQ's lots replace it."""
    for customer_id, then in EXPECTED["profiles"].items():
        lots = upgraded.db.all("SELECT lot_id, earned_on, points FROM customer_lots "
                               "WHERE customer_id = ?", (customer_id,))
        balance = then["points_balance"]
        want = [] if balance == 0 else [
            ("opening", "1970-01-01", balance) if balance > 0 else ("deficit", "0001-01-01",
                                                                     balance)]
        assert [tuple(r) for r in lots] == want, customer_id


def test_every_v1_fact_sale_and_hand_out_is_still_there(upgraded: Outlet) -> None:
    rows = [dict(r) for r in upgraded.db.all(
        "SELECT seq, event_id, type, customer_id FROM outbox ORDER BY seq")]
    assert rows == EXPECTED["outbox"]
    for r in upgraded.db.all("SELECT event FROM outbox"):
        Event.model_validate_json(r[0]).parsed()  # v1 event bodies are still readable
    for sale_id, then in EXPECTED["sales"].items():
        now = upgraded.db.one("SELECT customer_id, total_net, points_earned FROM sales "
                              "WHERE sale_id = ?", (sale_id,))
        assert now is not None and dict(now) == then
    keys = dict(upgraded.db.all("SELECT idempotency_key, sale_id FROM sales").__iter__())
    assert keys == EXPECTED["idempotency_keys"]
    assert [r[0] for r in upgraded.db.all("SELECT redemption_id FROM redemptions")] == \
        EXPECTED["redemptions"]
    assert {g["sku"]: g["stock"] for g in gifts.stock(upgraded)} == EXPECTED["gift_stock"]
    assert upgraded.db.scalar("SELECT COUNT(*) FROM visits") == EXPECTED["visits"]


def test_v1_pins_identifiers_and_card_statuses_still_work(upgraded: Outlet) -> None:
    identification.check_pin(upgraded, EXPECTED["pin"]["customer_id"], EXPECTED["pin"]["pin"])
    with pytest.raises(CardBlocked):
        identification.identify(upgraded, "card", EXPECTED["blocked_card"])
    dora = EXPECTED["people"]["dora"]["customer_id"]
    assert identification.identify(upgraded, "magstripe", ";4000123412341234=2512101?")[
        "customer_id"] == dora
    assert identification.identify(upgraded, "phone", "+386 1 555 0101")["customer_id"] == dora


def test_the_outlet_still_sells_redeems_and_issues_cards_on_a_v1_database(
        upgraded: Outlet) -> None:
    ana = EXPECTED["people"]["ana"]
    then = EXPECTED["profiles"][ana["customer_id"]]
    lines = [line("NEW-1", 10_000, 5)]
    total = sales.quote(upgraded, QuoteIn(card=ana["card_number"], lines=lines))["total_net"]  # type: ignore[arg-type]
    answer, fresh = sales.sell(upgraded, SaleIn(card=ana["card_number"], lines=lines,  # type: ignore[arg-type]
                                                payments=[{"mode": "cash", "amount": total}]),  # type: ignore[list-item]
                               "after-upgrade-1")
    assert fresh
    assert answer["points_balance"] == then["points_balance"] + answer["points_earned"]
    # a POS retrying a sale made before the upgrade gets that sale back, not a new one
    dora_card, tea = ";4000123412341234=2512101?", {"sku": "T-1", "name": "Tea", "qty": 1,
                                                   "unit_price": 350}
    old_id = EXPECTED["idempotency_keys"]["v1-sale-4"]
    old, fresh = sales.sell(upgraded, SaleIn(card=dora_card, lines=[tea], payments=[  # type: ignore[list-item]
        {"mode": "cash", "amount": EXPECTED["sales"][old_id]["total_net"]}]), "v1-sale-4")  # type: ignore[list-item]
    assert not fresh and old["sale_id"] == old_id
    seq = upgraded.db.scalar("SELECT seq FROM sales WHERE sale_id = ?", (answer["sale_id"],))
    assert seq == len(EXPECTED["outbox"]) + 1, "the outbox sequence continues without a gap"
    stats = customers.profile(upgraded, ana["customer_id"])["statistics"]
    assert stats["purchases_count"] == then["statistics"]["purchases_count"] + 1
    gifts.redeem(upgraded, RedemptionIn(card=ana["card_number"], gift_sku="GIFT-MUG"), None)
    card = customers.register(upgraded, CustomerIn(kind="person", given_name="New",
                                                   surname="Comer"))["card_number"]
    assert cardnumber.parse(card) == (EXPECTED["card_range"], len(EXPECTED["people"]) + 1)


def test_a_real_agent_process_serves_a_v1_database(v1_copy: Path, start_agent: Any) -> None:
    agent = start_agent(db=v1_copy, outlet=EXPECTED["outlet_id"])
    till: Till = agent.till()
    hotel = EXPECTED["people"]["hotel"]
    who = till.ok("POST", "/v1/identify", json={"kind": "card", "value": hotel["card_number"]})
    assert who["display_name"] == "Hotel Lipa"
    assert who["points_balance"] == EXPECTED["profiles"][hotel["customer_id"]]["points_balance"]
    sale = till.sold(hotel["card_number"], [line("HTTP-1", 1999)], key="v1-http-1")
    assert sale["points_balance"] == who["points_balance"] + sale["points_earned"]
    old_id = EXPECTED["idempotency_keys"]["v1-sale-3"]
    replay = till.post("/v1/sales", {"card": hotel["card_number"], "lines": [
        {"sku": "B-100", "name": "Sourdough loaf", "qty": 20, "unit_price": 450}],
        "payments": [{"mode": "card", "amount": EXPECTED["sales"][old_id]["total_net"]}]},
        headers={"Idempotency-Key": "v1-sale-3"})
    assert replay.status_code == 201, replay.text
    assert replay.json()["sale_id"] == old_id
    assert replay.headers.get("Idempotent-Replayed") == "true"
