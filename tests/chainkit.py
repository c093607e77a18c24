"""Helpers for the chain tests: HQ and outlet agents as REAL processes on loopback.

A unique module name (the test folders are not packages), imported by tests/hq, tests/e2e
and tests/sync as `from chainkit import ...`. Every process is a testkit `Service` running
`loyalty ...` from this virtual environment, exactly as an operator starts it; its stderr
goes to a file that tests/conftest.py attaches to the report of a failing test.

- `HQProcess`: `loyalty hq serve` on its own file and port, with testkit's `HQAdmin`
  (outlets and tokens through `loyalty hq ...`, the admin API, its file); stop/start on the
  same port simulates HQ going down and coming back. `db` may be a postgresql:// URL
  (several HQ processes on one database), its stderr then in `stderr`.
- `OutletProcess`: `loyalty agent serve --hq URL --token T` with a `Till` on it.
- `ChainRig`: HQ plus outlets of one test; HQ on a SQLite file in the rig's folder, or on
  the postgresql:// URL given as `db`.
- `STORES` / `hq_store(request, store)`: the chain suites run on both of HQ's stores
  (ids "sqlite", "postgresql"): `hq_store` gives None (a file) or the URL of a new database
  with HQ's tables in the test run's cluster (tests/conftest.py `pg_cluster`), dropped after.
- `until(...)` (testkit's `wait_until`): polls a condition, returns (seconds it took, value).
- `hq_reports(db)`: a connection to run schema.reports on HQ's database, either store.
- `hq_ledger_check(...)`: testkit's `check_files` on a live chain: every outlet event at HQ
  exactly once, HQ's balances = the fold of its events.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from agentkit import Till
from testkit import Service, check_files, cli, cli_last_line, free_port, line, read_only
from testkit import wait_until as until
from testkit.hqadmin import HQAdmin
from testkit.postgres import hq_database

__all__ = ["STORES", "ChainRig", "HQAdmin", "HQProcess", "OutletProcess", "Process", "Till", "buy",
           "cli", "cli_last_line", "free_port", "hq_ledger_check", "hq_reports", "hq_store", "until",
           "wal_safe_copy"]

# HQ's stores the chain suites run on, as parameter ids
STORES = ["sqlite", "postgresql"]


class Process(Service):
    """A chain's process: a graceful stop gives up after a second (open long polls)."""

    start_timeout_s = 30.0  # several start side by side on a busy machine
    stop_grace_s = 1.0


class HQProcess(HQAdmin, Process):
    label = "HQ"
    ready_path = "/openapi.json"  # the sync and admin routes want a token

    def __init__(self, db: Path | str, port: int | None = None,
                 stderr: Path | None = None) -> None:
        port = port or free_port()
        if stderr is None:
            assert isinstance(db, Path), "an HQ on PostgreSQL needs stderr= (a file)"
            stderr = db.with_name(db.name + ".stderr")
        super().__init__(stderr, port,
                         args=["hq", "serve", "--db", str(db), "--port", str(port)])
        self.db = db
        self.tokens = {}


class OutletProcess(Process):
    def __init__(self, db: Path, outlet: str, hq_url: str, token: str,
                 port: int | None = None) -> None:
        port = port or free_port()
        super().__init__(db.with_name(db.name + ".stderr"), port, label=f"agent {outlet}",
                         args=["agent", "serve", "--db", str(db), "--outlet", outlet, "--hq",
                               hq_url, "--token", token, "--port", str(port)])
        self.db = db
        self.outlet = outlet
        self.hq_url = hq_url
        self.token = token
        self.till = Till(self.url, f"{outlet}-T1")

    def status(self) -> dict[str, Any]:
        return self.till.ok("GET", "/v1/status")

    def met_hq(self) -> str | None:
        return self.status().get("hq_epoch")

    def pushed_all(self) -> bool:
        return bool(self.status()["pending_events"] == 0)

    def balance(self, customer_id: str) -> int | None:
        """The points balance the till shows; None while this outlet does not know the customer."""
        answer = self.till.get(f"/v1/customers/{customer_id}")
        if answer.status_code == 404:
            return None
        assert answer.status_code == 200, answer.text
        return int(answer.json()["points_balance"])

    def identify(self, card: str) -> requests.Response:
        return self.till.post("/v1/identify", {"kind": "card", "value": card})

    def stock(self, sku: str, qty: int) -> Any:
        return self.till.ok("POST", f"/v1/gifts/{sku}/stock", json={"qty": qty, "reason": "receipt"})

    def redeem(self, card: str, sku: str, qty: int = 1) -> requests.Response:
        return self.till.post("/v1/redemptions", {"card": card, "gift_sku": sku, "qty": qty})

    def outbox_count(self) -> int:
        with read_only(self.db) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


class ChainRig:
    """HQ plus outlets of one test, all real processes; everything killed at `close`.
    HQ serves `db` (a postgresql:// URL, its stderr in the rig's folder) or, without one,
    a SQLite file in the rig's folder."""

    def __init__(self, root: Path, db: str | None = None) -> None:
        self.root = root
        self.hq = (HQProcess(root / "hq.db") if db is None
                   else HQProcess(db, stderr=root / "hq.stderr"))
        self.tokens: dict[str, str] = {}
        self.outlets: dict[str, OutletProcess] = {}

    def register(self, *outlet_ids: str) -> None:
        for outlet_id in outlet_ids:
            self.tokens[outlet_id] = self.hq.outlet_add(outlet_id)

    def outlet(self, outlet_id: str, start: bool = True) -> OutletProcess:
        if outlet_id not in self.tokens:
            self.register(outlet_id)
        agent = OutletProcess(self.root / f"{outlet_id}.db", outlet_id, self.hq.url,
                              self.tokens[outlet_id])
        self.outlets[outlet_id] = agent
        if start:
            agent.start()
        return agent

    def start(self, outlet_ids: tuple[str, ...] = ("A", "B")) -> ChainRig:
        self.register(*outlet_ids)
        _ = self.hq.admin_token
        self.hq.start()
        agents = [OutletProcess(self.root / f"{o}.db", o, self.hq.url, self.tokens[o])
                  for o in outlet_ids]
        for agent in agents:  # start them side by side: python start-up dominates
            self.outlets[agent.outlet] = agent
            agent.spawn()
        for agent in agents:
            agent.wait_ready()
        for agent in agents:  # each has met HQ (hello gives its card range)
            until(agent.met_hq, 15, what=f"{agent.outlet} meets HQ")
        return self

    def processes(self) -> list[Process]:
        return [self.hq, *self.outlets.values()]

    def close(self) -> None:
        for process in self.processes():
            process.kill()

    def settled(self, timeout: float = 30.0) -> None:
        """Waits until every running outlet has nothing pending."""
        for agent in self.outlets.values():
            if agent.running:
                until(agent.pushed_all, timeout, every=0.05,
                      what=f"outlet {agent.outlet} pushed everything")


@contextlib.contextmanager
def hq_store(request: pytest.FixtureRequest, store: str) -> Iterator[str | None]:
    """HQ's `db` for a chain on `store` (one of STORES): None for a SQLite file, or the URL
    of a new database with HQ's tables, dropped after the block (its processes killed)."""
    if store == "sqlite":
        yield None
        return
    assert store == "postgresql", store
    cluster = request.getfixturevalue("pg_cluster")
    url = hq_database(cluster)
    try:
        yield url
    finally:
        cluster.drop(url)


# --- sales ------------------------------------------------------------------------------
def buy(till: Till, card: str, unit_price: int, sku: str = "SKU-1") -> dict[str, Any]:
    """A cash sale of one line (priced through a quote); returns the sale answer."""
    return till.sold(card, [line(sku, unit_price)])


# --- looking into HQ's database ---------------------------------------------------------------
def hq_ledger_check(hq_db: Path | str, outboxes: dict[str, Path]) -> dict[str, Any]:
    """Asserts HQ holds every outlet event exactly once and balances = fold of events; the
    outlets may still be pulling and HQ may have been restored (no floor bound)."""
    figures = check_files(hq_db, outboxes, floor_bound=False, converged=False)
    return {"events": figures["events_by_outlet"], "customers": figures["customers"]}


@contextlib.contextmanager
def hq_reports(db: Path | str) -> Iterator[Any]:
    """A connection to run `schema.reports` on HQ's database, either store (`reading`: the
    file read-only, or one snapshot of the PostgreSQL database)."""
    from schema import reports

    if isinstance(db, str) and "://" in db:
        from hq.store.postgres import PgStore

        store = PgStore(db, pool_size=1)
        try:
            with reports.reading(store) as conn:
                yield conn
        finally:
            store.close()
        return
    with reports.reading(db) as conn:
        yield conn


def wal_safe_copy(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite file (the backup API; sees committed data only)."""
    source = sqlite3.connect(src, timeout=10)
    target = sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
