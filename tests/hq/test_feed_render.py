"""The fast pull path equals the old one, document for document.

HQ renders a page of customers in SQL (hq.feed) and the outlet writes a page in bulk
(agent.replication): both must give exactly what rendering each entity on its own
(`feed.render`, the reference kept below as it was) and applying each change on its own
(`OutletReplica._apply_customer`) give. HQ on a SQLite file and on PostgreSQL (where the
page's SQL is the dialect's own).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.outlet import Outlet
from agent.programme import default_documents
from agent.replica import MASTER_KINDS, set_meta
from agent.replication import OutletReplica, _apply_invoice
from hq import admin, credentials, feed, store
from hq.chain import Chain
from schema.sync import Change, PullResponse

HQ_ON_BOTH_STORES = True  # HQ's pages rendered on SQLite and on PostgreSQL (conftest.py)
PNG = bytes(range(256)) * 3


def reference_page(chain: Chain, outlet_id: str, cursor: int, limit: int) -> PullResponse:
    """hq.feed._page as it was: every entity rendered on its own, in Python."""
    with chain.db.read() as conn:
        conn.execute("BEGIN")
        try:
            incorporated = int(conn.execute("SELECT last_seq FROM outlets WHERE outlet_id = ?",
                                            (outlet_id,)).fetchone()[0])
            head = chain.head(conn)
            rows = conn.execute(
                "SELECT kind, key, seq FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
                (cursor, limit)).fetchall()
            new_cursor = rows[-1]["seq"] if rows else max(cursor, 0)
            urgent = conn.execute(
                "SELECT kind, key, seq FROM changes WHERE urgent = 1 AND seq > ? "
                "ORDER BY seq LIMIT ?", (new_cursor, feed.URGENT_PER_PAGE)).fetchall()
            changes = [Change(kind=r["kind"], key=r["key"], seq=r["seq"],
                              data=feed.render(conn, r["kind"], r["key"]))
                       for r in [*urgent, *rows]]
        finally:
            conn.execute("COMMIT")
    return PullResponse(epoch=chain.epoch, cursor=new_cursor, head=head,
                        incorporated_through=incorporated, more=new_cursor < head,
                        changes=changes)


CUSTOMERS: list[dict[str, Any]] = [
    {"customer_id": "c-plain", "kind": "person", "given_name": "Ana", "surname": "Horvat",
     "category": "D"},
    {"customer_id": "c-full", "kind": "person", "given_name": "Željko \"Ž\" O'Brien",
     "surname": "Blažević\n\t\\", "name": "名前", "business_domain": "bd",
     "contact_person": "cp", "date_of_birth": "1970-01-31", "address": "Ulica 1\r\n10000",
     "phone": "+385 1 234", "fax": "0123", "email": "a@b.hr", "email_consent": 1,
     "preferences": "x" * 1024, "room": "12", "code": "007", "category": "A",
     "promo_category": "P1", "approved_actions": '["summer", "\\u00e9t\\u00e9"]',
     "note": "a note\u0001\u007f", "pin_hash": "pbkdf2$1$ab", "origin_outlet": "A",
     "status": "approved", "credit_blocked": 1},
    {"customer_id": "c-banned", "kind": "organisation", "name": "ACME d.o.o.", "category": "B",
     "status": "banned", "email_consent": 0, "origin_outlet": None},
    {"customer_id": "c-picture", "kind": "person", "surname": "Pic", "category": "D",
     "picture": PNG, "credit_blocked": 1},
    {"customer_id": "c-empty-picture", "kind": "person", "surname": "Nopic", "category": "D",
     "picture": b""},
    {"customer_id": "c-no-tally", "kind": "person", "given_name": "Tally-less", "category": "C"},
]

IDENTIFIERS = [
    ("card", "2990000000001", "c-plain", "active"),
    ("phone", "+385911111111", "c-plain", "active"),
    ("card", "2990000000002", "c-full", "blocked"),
    ("card", "2990000000003", "c-full", "active"),
    ("email", "a@b.hr", "c-full", "active"),
    ("mifare", "04:A2:2B:1C", "c-full", "lost"),
    ("card", "2990000000004", "c-banned", "active"),
    ("card", "2990000000005", "c-picture", "active"),
]

TALLIES = {
    "c-plain": {},
    "c-full": {"purchases_total": 123_456, "purchases_count": 7, "items_count": 19,
               "points_earned": 1234, "points_used": 234, "discount_total": 99,
               "paid_cash": 100, "paid_card": 200, "paid_credit": 300, "credit_repaid": 50,
               "gifts_count": 3, "points_expired": 100,
               "last_purchase_at": "2026-11-01T10:00:00.000000Z",
               "best_purchase_total": 50_000, "best_purchase_id": "sale-9"},
    "c-banned": {"points_used": 500},  # negative balance
    "c-picture": {"purchases_count": 1},
    "c-empty-picture": {},
}

ITEMS = [("c-full", "SKU-2", "Čaj \"zeleni\"", 3, 450), ("c-full", "SKU-1", "Kava", 10, 1299),
         ("c-full", "ß-ü", "Ünicode", 1, 5), ("c-picture", "SKU-1", "Kava", 1, 1299),
         ("c-banned", "SKU-3", "Mlijeko", 2, 99)]
GIFTS = [("c-full", "GIFT-2", 2), ("c-full", "GIFT-1", 1), ("c-banned", "GIFT-1", 4)]
LOTS = [("c-full", "sale-9", "2026-11-01", 600, "2027-11-30", "2026-12-01"),
        ("c-full", "opening", "1970-01-01", 300, None, None),
        ("c-full", "adj-1", "2026-11-02", 0 + 100, None, None),
        ("c-banned", "deficit", "0001-01-01", -500, None, None)]


def insert(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    conn.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                 list(row.values()))


@pytest.fixture
def chain(hq_db: str) -> Iterator[Chain]:
    the_chain = Chain(hq_db, seed=default_documents())
    with the_chain.db.write() as conn:
        credentials.add_outlet(conn, "X")
        conn.execute("UPDATE outlets SET last_seq = 42 WHERE outlet_id = 'X'")
        for doc in CUSTOMERS:
            insert(conn, "customers", {"created_at": "2026-01-01T00:00:00.000000Z", **doc})
        for ident in IDENTIFIERS:
            conn.execute("INSERT INTO identifiers (kind, value, customer_id, status) "
                         "VALUES (?, ?, ?, ?)", ident)
        for customer_id, tally in TALLIES.items():
            insert(conn, "customer_tally", {"customer_id": customer_id, **tally})
        conn.executemany("INSERT INTO customer_items (customer_id, sku, name, qty, max_unit_price)"
                         " VALUES (?, ?, ?, ?, ?)", ITEMS)
        conn.executemany("INSERT INTO customer_gifts (customer_id, sku, qty) VALUES (?, ?, ?)",
                         GIFTS)
        conn.executemany("INSERT INTO customer_lots (customer_id, lot_id, earned_on, points,"
                         " expires_on, spendable_on) VALUES (?, ?, ?, ?, ?, ?)", LOTS)
        keys = [doc["customer_id"] for doc in CUSTOMERS] + ["c-withdrawn"]
        seq = store.take(conn, "changes", len(keys)) - 1  # HQ's own numbering, on each store
        for i, key in enumerate(keys):
            conn.execute("INSERT INTO changes (kind, key, seq, urgent) VALUES (?, ?, ?, ?)",
                         ("customer", key, seq + 1 + i, int(key == "c-banned")))
    # master data after the customers, and the banned customer is urgent
    admin.put_master(the_chain, "category_rule",
                     {"category": "A", "min_turnover": 100_000, "window_days": 365}, by=None)
    with the_chain.db.write() as conn:
        the_chain.bump(conn, "customer", "c-banned", urgent=True)
    yield the_chain
    the_chain.close()


def all_pages(chain: Chain, limit: int) -> Iterator[tuple[int, PullResponse, PullResponse]]:
    cursor = 0
    while True:
        want = reference_page(chain, "X", cursor, limit)
        yield cursor, want, feed.pull(chain, "X", cursor, limit)
        if not want.more:
            return
        cursor = want.cursor


@pytest.mark.parametrize("limit", [1, 2, 3, 1000])
def test_a_page_rendered_in_sql_equals_one_rendered_entity_by_entity(chain: Chain,
                                                                      limit: int) -> None:
    seen = set()
    for cursor, want, got in all_pages(chain, limit):
        assert got == want
        assert [c.model_dump() for c in got.changes] == [c.model_dump() for c in want.changes]
        raw = json.loads(feed.pull_json(chain, "X", cursor, limit).body)
        assert raw == want.model_dump(mode="json")
        assert feed.pull_json(chain, "X", cursor, limit).changes == len(want.changes)
        seen |= {c.key for c in got.changes}
    assert {doc["customer_id"] for doc in CUSTOMERS} | {"c-withdrawn"} <= seen


def test_the_documents_cover_every_shape(chain: Chain) -> None:
    page = feed.pull(chain, "X", 0, 1000)
    docs = {c.key: c.data for c in page.changes if c.kind == "customer"}
    assert docs["c-withdrawn"] is None
    assert docs["c-picture"] is not None and docs["c-picture"]["picture"]
    assert docs["c-empty-picture"] is not None and docs["c-empty-picture"]["picture"] is None
    full = docs["c-full"]
    assert full is not None
    assert full["profile"]["email_consent"] is True
    assert full["profile"]["approved_actions"] == ["summer", "été"]
    assert [i["kind"] for i in full["identifiers"]] == ["card", "card", "email", "mifare"]
    assert full["tally"]["items"]["SKU-2"] == ["Čaj \"zeleni\"", 3, 450]
    assert full["tally"]["gifts"] == {"GIFT-1": 1, "GIFT-2": 2}
    assert full["credit_blocked"] is True
    assert full["tally"]["points_expired"] == 100
    assert full["lots"] == [["adj-1", "2026-11-02", 100, None, None],
                            ["opening", "1970-01-01", 300, None, None],
                            ["sale-9", "2026-11-01", 600, "2027-11-30", "2026-12-01"]]
    assert docs["c-banned"] is not None
    assert docs["c-banned"]["lots"] == [["deficit", "0001-01-01", -500, None, None]]
    assert "points_expired" not in docs["c-banned"]["tally"]  # 0: left out (Tally.SPARSE)
    plain = docs["c-plain"]
    assert plain is not None and "email_consent" not in plain["profile"]
    assert "name" not in plain["profile"]
    banned = docs["c-banned"]
    assert banned is not None and banned["status"] == "banned"
    assert banned["profile"]["email_consent"] is False
    assert docs["c-no-tally"] is not None and docs["c-no-tally"]["tally"]["items"] == {}


# --- the outlet: a page applied in bulk = the page applied change by change -----------------


def apply_one_by_one(replica: OutletReplica, page: PullResponse) -> None:
    """OutletReplica.apply as it was (every customer through `_apply_customer`)."""
    with replica.db.write() as conn:
        for change in page.changes:
            if change.kind == "customer":
                replica._apply_customer(conn, change, page.incorporated_through)
            elif change.kind == "invoice":
                _apply_invoice(conn, change)
            elif change.kind in MASTER_KINDS:
                replica._apply_master(conn, change)
        set_meta(conn, "cursor", page.cursor)


def dump(outlet: Outlet) -> dict[str, list[tuple[Any, ...]]]:
    tables = ["customers", "identifiers", "customer_tally", "customer_items", "customer_gifts",
              "customer_lots", "master", "invoices"]
    out = {}
    for table in tables:
        rows = outlet.db.conn.execute(f"SELECT * FROM {table}").fetchall()
        out[table] = sorted(tuple(r) for r in rows)
    out["cursor"] = [tuple(r) for r in outlet.db.conn.execute(
        "SELECT value FROM meta WHERE key = 'cursor'")]
    return out


def outlet_pair(tmp_path: Path, epoch: str) -> tuple[Outlet, Outlet]:
    pair = []
    for name in ("bulk", "single"):
        outlet = Outlet(tmp_path / f"{name}.db", "X", chain=True)
        with outlet.db.write() as conn:
            set_meta(conn, "hq_epoch", epoch)
        pair.append(outlet)
    return pair[0], pair[1]


def test_a_page_applied_in_bulk_equals_one_applied_change_by_change(chain: Chain,
                                                                     tmp_path: Path) -> None:
    bulk, single = outlet_pair(tmp_path, chain.epoch)
    try:
        for limit in (1000, 2):  # a bootstrap, then the same pages again over what is there
            for _, want, _ in all_pages(chain, limit):
                OutletReplica(bulk).apply(want)
                apply_one_by_one(OutletReplica(single), want)
                assert dump(bulk) == dump(single)
        # identifiers moving between customers inside a page, fields cleared at HQ,
        # a customer seen twice, an unknown one
        docs = {c.key: c.data for c in feed.pull(chain, "X", 0, 1000).changes
                if c.kind == "customer" and c.data}
        moved = json.loads(json.dumps(docs["c-plain"]))
        moved["identifiers"].append({"kind": "card", "value": "2990000000002", "status": "lost"})
        moved["profile"] = {"kind": "person", "surname": "Renamed", "category": "A",
                            "approved_actions": []}
        twice = json.loads(json.dumps(docs["c-full"]))
        twice["identifiers"] = [{"kind": "card", "value": "2990000000001", "status": "active"},
                                {"kind": "card", "value": "2990000000001", "status": "blocked"}]
        fresh = json.loads(json.dumps(docs["c-no-tally"]))
        fresh["customer_id"] = "c-new"
        fresh["identifiers"] = [{"kind": "email", "value": "a@b.hr", "status": "active"}]
        fresh["tally"]["gifts"] = {"G": 1}
        changes = [Change(kind="customer", key="c-plain", seq=900, data=moved),
                   Change(kind="customer", key="c-full", seq=901, data=twice),
                   Change(kind="customer", key="c-new", seq=902, data=fresh),
                   Change(kind="customer", key="c-plain", seq=903, data=docs["c-plain"]),
                   Change(kind="customer", key="gone", seq=904, data=None)]
        page = PullResponse(epoch=chain.epoch, cursor=904, head=904, incorporated_through=7,
                            more=False, changes=changes)
        OutletReplica(bulk).apply(page)
        apply_one_by_one(OutletReplica(single), page)
        assert dump(bulk) == dump(single)
    finally:
        bulk.close()
        single.close()
