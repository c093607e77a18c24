"""Helpers for the agent tests: a real agent process, a till client, a look into its file.

A unique module name (the test folders are not packages), imported by tests/conftest.py and
by the test modules as `from agentkit import ...`. The supervisor, the till client, the
in-process agent and the request helpers are testkit's (`Till`, `InProcessAgent`, `line`,
`expect_error`, `LOYALTY` and `free_port` are re-exported under their old names); what is
the agent's own stays here.
"""

from __future__ import annotations

import base64
import io
import sqlite3
from pathlib import Path
from typing import Any

from testkit import LOYALTY, Service, Till, expect_error, free_port, line
from testkit.inprocess import InProcessAgent

__all__ = ["COUNTED", "LOYALTY", "AgentProcess", "AnyAgent", "InProcessAgent", "Till", "connect",
           "db_state", "expect_error", "free_port", "line", "png", "set_customer_status"]

# Tables whose row counts "nothing changed" compares before and after a refusal.
COUNTED = ("outbox", "customers", "identifiers", "sales", "sale_lines", "payments", "ledger",
           "redemptions", "visits", "customer_tally", "customer_items", "customer_gifts",
           "returns", "return_lines", "gift_returns")


class AgentProcess(Service):
    """One `loyalty agent serve` process on a SQLite file; restartable on the same file."""

    label = "agent"

    def __init__(self, db: Path, outlet: str = "T", *, host: str = "127.0.0.1",
                 till_token: str | None = None, extra: tuple[str, ...] = ()) -> None:
        self.db = Path(db)
        self.outlet = outlet
        self.host = host
        self.till_token = till_token
        self.extra = extra
        port = free_port()
        super().__init__(self.db.with_name(f"{self.db.name}.{port}.stderr"), port,
                         headers={"Authorization": f"Bearer {till_token}"} if till_token else None)

    def command(self) -> list[str]:
        cmd = [str(LOYALTY), "agent", "serve", "--db", str(self.db), "--outlet", self.outlet,
               "--port", str(self.port), "--host", self.host, *self.extra]
        if self.till_token:
            cmd += ["--till-token", self.till_token]
        return cmd

    def till(self, till_id: str = "T1", token: str | None = None) -> Till:
        return Till(self.url, till_id, token if token is not None else self.till_token)


# An agent a test talks to: in this process (the fast tier) or a real process; both have
# `db`, `url` and `till(till_id, token)`.
AnyAgent = AgentProcess | InProcessAgent


# --- looking into the agent's SQLite file from outside, as HQ's replica update will ------
def connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, timeout=10, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


def db_state(db: Path) -> dict[str, Any]:
    """Row counts of every table a refusal must leave alone, plus stock and balances."""
    conn = connect(db)
    try:
        state: dict[str, Any] = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                                 for t in COUNTED}
        state["gift_stock"] = dict(conn.execute("SELECT gift_sku, qty FROM gift_stock").fetchall())
        state["tallies"] = [tuple(r) for r in conn.execute(
            "SELECT * FROM customer_tally ORDER BY customer_id")]
        state["identifier_status"] = [tuple(r) for r in conn.execute(
            "SELECT kind, value, status FROM identifiers ORDER BY kind, value")]
        state["customers_rows"] = [tuple(r) for r in conn.execute(
            "SELECT customer_id, note, picture, status, pin_failures FROM customers "
            "ORDER BY customer_id")]
        return state
    finally:
        conn.close()


def set_customer_status(db: Path, customer_id: str, status: str) -> None:
    """What HQ's replica update of a ban will do: change the row in the agent's file."""
    conn = connect(db)
    try:
        conn.execute("UPDATE customers SET status = ? WHERE customer_id = ?", (status, customer_id))
    finally:
        conn.close()


def png(width: int, height: int, fmt: str = "PNG") -> str:
    """A real image of the given size, base64-encoded as the API takes it."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


