"""A pull page is the same on both stores (issue 15, phase 1's slice): the same chain state
written into a SQLite HQ and a PostgreSQL HQ gives the same pages, page for page: master
data, customers with their identifiers, tally, items and gifts, with and without a picture,
urgent changes riding at the head of every page, the outlet's `incorporated_through`.
(SQLite renders customers in SQL, PostgreSQL through `feed.render` for now: this also holds
the two renderings to one document.)"""

from __future__ import annotations

import json
from typing import Any

from hq import credentials, feed
from hq.chain import Chain

CUSTOMERS: list[dict[str, Any]] = [
    {"customer_id": "C1", "kind": "person", "given_name": "Ana", "surname": "Novak",
     "email": "ana@example.com", "email_consent": 1, "category": "STD",
     "approved_actions": '["SPRING"]', "pin_hash": "h$1", "created_at": "2026-01-02T03:04:05Z",
     "origin_outlet": "A", "date_of_birth": "1990-05-06"},
    {"customer_id": "C2", "kind": "organisation", "name": "Žito d.o.o.", "category": "STD",
     "picture": b"\x89PNG\r\n\x1a\n-a-picture", "credit_blocked": 1,
     "created_at": "2026-01-03T00:00:00Z"},
    {"customer_id": "C3", "kind": "person", "given_name": "Bo", "status": "banned",
     "category": "STD", "email_consent": 0, "created_at": "2026-01-04T00:00:00Z"},
]


def build(chain: Chain) -> None:
    """The same state, written through the store's connections with portable SQL."""
    with chain.db.write() as conn:
        credentials.add_outlet(conn, "A")
        conn.execute("UPDATE outlets SET last_seq = 5 WHERE outlet_id = 'A'")
        chain.put_master(conn, "category", {"code": "STD", "name": "Standard",
                                            "discount_bp": 0, "points_per_100": 5})
        for customer in CUSTOMERS:
            names = ", ".join(customer)
            marks = ", ".join("?" for _ in customer)
            conn.execute(f"INSERT INTO customers ({names}) VALUES ({marks})",
                         tuple(customer.values()))
        conn.executemany("INSERT INTO identifiers (kind, value, customer_id, status) "
                         "VALUES (?, ?, ?, ?)",
                         [("card", "100000000017", "C1", "active"),
                          ("phone", "+38640111222", "C1", "active"),
                          ("card", "100000000025", "C2", "lost"),
                          ("card", "100000000033", "C3", "active")])
        conn.execute("INSERT INTO customer_tally (customer_id, purchases_total, "
                     "purchases_count, points_earned, last_purchase_at, best_purchase_total, "
                     "best_purchase_id) VALUES ('C1', 12345, 2, 61, '2026-02-01T10:00:00Z', "
                     "10000, 'S1')")
        conn.executemany("INSERT INTO customer_items (customer_id, sku, name, qty, "
                         "max_unit_price) VALUES (?, ?, ?, ?, ?)",
                         [("C1", "MILK", "Milk", 3, 129), ("C1", "BREAD", "Bread", 1, 250)])
        conn.execute("INSERT INTO customer_gifts (customer_id, sku, qty) VALUES ('C1', 'MUG', 1)")
        for customer in ("C1", "C2"):
            chain.bump(conn, "customer", customer)
        chain.put_master(conn, "gift", {"sku": "MUG", "name": "Mug", "points_cost": 100})
        chain.bump(conn, "customer", "C3", urgent=True)
        chain.bump(conn, "customer", "GONE")  # withdrawn: no row any more
        chain.put_master(conn, "category", {"code": "GOLD", "name": "Gold",
                                            "discount_bp": 500, "points_per_100": 10})


def pages(chain: Chain, cursor: int, limit: int) -> list[dict[str, Any]]:
    out = []
    while True:
        page = json.loads(feed.pull_json(chain, "A", cursor, limit).body)
        del page["epoch"]
        out.append(page)
        cursor = page["cursor"]
        if not page["more"]:
            return out


def test_the_same_state_gives_the_same_pages_on_both_stores(tmp_path: Any, hq_pg: str) -> None:
    on_sqlite, on_postgres = Chain(tmp_path / "hq.db"), Chain(hq_pg)
    try:
        build(on_sqlite)
        build(on_postgres)
        for cursor, limit in ((0, 2), (0, 1000), (3, 1), (5, 2)):
            expected = pages(on_sqlite, cursor, limit)
            assert pages(on_postgres, cursor, limit) == expected, (cursor, limit)
        whole = pages(on_postgres, 0, 1000)[0]
        assert [c["key"] for c in whole["changes"]] == ["STD", "C1", "C2", "MUG", "C3", "GONE",
                                                         "GOLD"]
        assert whole["incorporated_through"] == 5 and whole["head"] == 7
        first = pages(on_postgres, 0, 1)[0]
        assert [c["key"] for c in first["changes"]] == ["C3", "STD"], "urgent rides at the head"
        c1 = next(c["data"] for c in whole["changes"] if c["key"] == "C1")
        assert c1["tally"]["items"] == {"BREAD": ["Bread", 1, 250], "MILK": ["Milk", 3, 129]}
        assert c1["profile"]["email_consent"] is True
    finally:
        on_sqlite.close()
        on_postgres.close()
