"""Helpers for the snapshot tests (tests/hq, tests/agent, tests/e2e): what a replica holds
of HQ's state, to compare a snapshot-started outlet with a pull from cursor 0 and with HQ.

A unique module name (the test folders are not packages): `from snapshotkit import ...`.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import fields
from pathlib import Path
from typing import Any

import requests

from agent import cardnumber
from agent.outlet import Outlet
from agent.replication import OutletReplica
from hq import feed, ingest
from hq.chain import Chain
from schema.customerstore import PROFILE_COLUMNS
from schema.events import CustomerRegistered, Profile, make_event, new_id
from schema.ledger import Tally
from schema.sync import Hello, PullResponse, PushRequest, PushResponse
from sync import client

# HQ's state as an outlet holds it: every table a pull fills (not the outlet's own facts)
REPLICA_TABLES = {
    "customers": "customer_id",
    "identifiers": "kind, value",
    "customer_tally": "customer_id",
    "customer_items": "customer_id, sku",
    "customer_gifts": "customer_id, sku",
    "customer_lots": "customer_id, lot_id",
    "master": "kind, key",
    "invoices": "invoice_id",
}
REPLICA_META = ("cursor", "hq_epoch", "master_version")


def replica_state(db: Path) -> dict[str, Any]:
    """Every row of HQ's state in an outlet database, in key order; `confirmed_tally` as
    the JSON value it is (its text is nobody's business), `pin_failures` left out (a
    local counter), plus the meta entries that say how far the replica goes."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        state: dict[str, Any] = {}
        for table, key in REPLICA_TABLES.items():
            rows = []
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY {key}"):
                values = dict(row)
                if table == "customers":
                    values.pop("pin_failures")
                    values["confirmed_tally"] = json.loads(values["confirmed_tally"])
                rows.append(values)
            state[table] = rows
        state["meta"] = {k: v for k, v in conn.execute("SELECT key, value FROM meta")
                         if k in REPLICA_META}
        return state
    finally:
        conn.close()


def hq_state(hq_db: Path) -> dict[str, Any]:
    """HQ's authoritative rows in the same shape as `replica_state` (what every outlet's
    replica must come to once it has pulled everything)."""
    conn = sqlite3.connect(f"file:{hq_db}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        columns = ["customer_id", *PROFILE_COLUMNS, "status", "pin_hash", "credit_blocked",
                   "origin_outlet", "created_at", "search_name"]
        customers = [dict(r) for r in conn.execute(
            f"SELECT {', '.join(columns)}, picture FROM customers ORDER BY customer_id")]
        identifiers = [dict(r) for r in conn.execute(
            "SELECT kind, value, customer_id, status FROM identifiers "
            "WHERE customer_id IN (SELECT customer_id FROM customers) ORDER BY kind, value")]
        scalars = [f for f in fields(Tally) if f.name not in ("items", "gifts")]
        tallies = [dict(r) for r in conn.execute(
            "SELECT c.customer_id, " + ", ".join(f"coalesce(t.{f.name}, {f.default!r}) AS {f.name}"
                                                for f in scalars)
            + " FROM customers c LEFT JOIN customer_tally t USING (customer_id)"
            " ORDER BY c.customer_id")]
        lots = [dict(r) for r in conn.execute(
            "SELECT customer_id, lot_id, earned_on, points, expires_on, spendable_on "
            "FROM customer_lots ORDER BY customer_id, lot_id")]
        master = [dict(r) for r in conn.execute(
            "SELECT kind, key, data FROM master ORDER BY kind, key")]
        invoices = [dict(r) for r in conn.execute(
            "SELECT invoice_id, number, customer_id, amount, paid_amount FROM invoices "
            "ORDER BY invoice_id")]
        return {"customers": customers, "identifiers": identifiers, "customer_tally": tallies,
                "customer_lots": lots, "master": master, "invoices": invoices}
    finally:
        conn.close()


def as_hq_sees_it(replica: dict[str, Any]) -> dict[str, Any]:
    """A replica's state cut to the columns `hq_state` has (for an outlet with no facts
    of its own, they must be equal)."""
    hq_columns = ["customer_id", *PROFILE_COLUMNS, "status", "pin_hash", "credit_blocked",
                  "origin_outlet", "created_at", "search_name", "picture"]
    return {
        "customers": [{c: r[c] for c in hq_columns} for r in replica["customers"]],
        "identifiers": replica["identifiers"],
        "customer_tally": replica["customer_tally"],
        "customer_lots": replica["customer_lots"],
        "master": replica["master"],
        "invoices": [{c: r[c] for c in ("invoice_id", "number", "customer_id", "amount",
                                        "paid_amount")} for r in replica["invoices"]],
    }


class Direct:
    """A link that calls HQ's feed and ingest in this process on HQ's file (no network,
    no faults): the reference "pull from cursor 0" the snapshot tests compare with."""

    def __init__(self, chain: Chain, outlet_id: str) -> None:
        self.chain, self.outlet_id = chain, outlet_id

    def hello(self) -> Hello:
        return feed.hello(self.chain, self.outlet_id)

    def push(self, request: PushRequest) -> PushResponse:
        return ingest.push(self.chain, self.outlet_id, request)

    def pull(self, cursor: int, limit: int, wait: float) -> PullResponse:
        return feed.pull(self.chain, self.outlet_id, cursor, min(limit, 500))

    def close(self) -> None:
        pass


def pulled_from_zero(hq_db: Path, outlet_id: str, path: Path) -> dict[str, Any]:
    """A new outlet `outlet_id` (registered at HQ) pulls everything page by page, in this
    process; its replica's state."""
    chain = Chain(hq_db)
    shop = Outlet(path, outlet_id, chain=True)
    try:
        client.run_once(OutletReplica(shop), Direct(chain, outlet_id))
    finally:
        shop.close()
        chain.close()
    return replica_state(path)


def push_registrations(hq_url: str, token: str, outlet: str, first_seq: int, count: int,
                       start: int = 0) -> int:
    """`count` customers registered at `outlet`, pushed in batches of 1000; next seq."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    seq = first_seq
    for at in range(start, start + count, 1000):
        events = []
        for i in range(at, min(at + 1000, start + count)):
            events.append(make_event(outlet, seq, CustomerRegistered(
                customer_id=new_id(), card_number=cardnumber.make(9000, i + 1),
                profile=Profile(kind="person", given_name=f"G{i}", surname="Bulk",
                                category="ABCD"[i % 4]))))
            seq += 1
        body = {"protocol": 1, "outlet_id": outlet,
                "events": [e.model_dump(mode="json") for e in events]}
        answer = http.post(hq_url + "/v1/sync/push", json=body, timeout=120)
        assert answer.status_code == 200, answer.text
    http.close()
    return seq
