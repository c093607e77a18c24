"""Helpers for the agent tests: a real agent process, a till client, a look into its file.

A unique module name (the test folders are not packages), imported by tests/conftest.py and
by the test modules as `from agentkit import ...`.
"""

from __future__ import annotations

import base64
import io
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

LOYALTY = Path(sys.executable).parent / "loyalty"
START_TIMEOUT_S = 20.0

# Tables whose row counts "nothing changed" compares before and after a refusal.
COUNTED = ("outbox", "customers", "identifiers", "sales", "sale_lines", "payments", "ledger",
           "redemptions", "visits", "customer_tally", "customer_items", "customer_gifts")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AgentProcess:
    """One `loyalty agent serve` process on a SQLite file; restartable on the same file."""

    def __init__(self, db: Path, outlet: str = "T", *, host: str = "127.0.0.1",
                 till_token: str | None = None, extra: tuple[str, ...] = ()) -> None:
        self.db = Path(db)
        self.outlet = outlet
        self.host = host
        self.till_token = till_token
        self.extra = extra
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.db.with_name(self.db.name + f".{self.port}.stderr")
        self.starts = 0

    def command(self) -> list[str]:
        cmd = [str(LOYALTY), "agent", "serve", "--db", str(self.db), "--outlet", self.outlet,
               "--port", str(self.port), "--host", self.host, *self.extra]
        if self.till_token:
            cmd += ["--till-token", self.till_token]
        return cmd

    def start(self, timeout: float = START_TIMEOUT_S) -> AgentProcess:
        self.starts += 1
        log = open(self.log, "ab")  # noqa: SIM115 - the process owns it until it exits
        log.write(f"\n--- start {self.starts} ---\n".encode())
        log.flush()
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        headers = {"Authorization": f"Bearer {self.till_token}"} if self.till_token else {}
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited with {self.proc.returncode}:\n{self.stderr()}")
            try:
                if requests.get(self.url + "/v1/status", headers=headers, timeout=1).ok:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"agent did not answer within {timeout} s:\n{self.stderr()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """kill -9: no shutdown code runs, exactly like a power cut of the process."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()

    def stderr(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-6000:]
        except FileNotFoundError:
            return ""

    def till(self, till_id: str = "T1", token: str | None = None) -> Till:
        return Till(self.url, till_id, token if token is not None else self.till_token)


class Till:
    """A POS talking to the agent over HTTP with requests, as a real till does."""

    def __init__(self, url: str, till_id: str = "T1", token: str | None = None) -> None:
        self.url = url
        self.till_id = till_id
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 15)
        return self.http.request(method, self.url + path, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> requests.Response:
        return self.request("POST", path, json=json, **kw)

    def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        answer = self.request(method, path, **kw)
        assert answer.status_code == status, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    # --- the calls most tests make ------------------------------------------------------
    def register(self, category: str | None = "A", **fields: Any) -> dict[str, str]:
        body = {"kind": "person", "given_name": "Test", "surname": "Customer", **fields}
        if category is not None:
            body["category"] = category
        return self.ok("POST", "/v1/customers", 201, json=body)  # type: ignore[no-any-return]

    def quote(self, card: str, lines: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return self.ok("POST", "/v1/quotes", 201,  # type: ignore[no-any-return]
                       json={"card": card, "lines": lines, **extra})

    def sell(self, card: str, lines: list[dict[str, Any]], payments: list[dict[str, Any]] | None
             = None, key: str | None = None, mode: str = "cash") -> requests.Response:
        """A sale by card + lines; by default paid in full in `mode` (priced by a quote)."""
        if payments is None:
            total = self.quote(card, lines)["total_net"]
            payments = [{"mode": mode, "amount": total}]
        headers = {"Idempotency-Key": key} if key else {}
        return self.post("/v1/sales", {"card": card, "lines": lines, "payments": payments,
                                       "till_id": self.till_id}, headers=headers)

    def sold(self, card: str, lines: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
        answer = self.sell(card, lines, **kw)
        assert answer.status_code == 201, answer.text
        return answer.json()  # type: ignore[no-any-return]


def line(sku: str, unit_price: int, qty: int = 1, name: str | None = None,
         division: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"sku": sku, "name": name or f"Item {sku}", "qty": qty,
                           "unit_price": unit_price}
    if division:
        out["division"] = division
    return out


def expect_error(answer: requests.Response, status: int, code: str) -> dict[str, Any]:
    """Asserts the contract's error shape `{"error": {"code", "message"}}` and returns it."""
    assert answer.status_code == status, f"wanted {status} {code}, got {answer.status_code} {answer.text}"
    body = answer.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
    assert body["error"]["message"], body
    assert body["error"]["code"] == code, body
    return body["error"]  # type: ignore[no-any-return]


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


