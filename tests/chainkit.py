"""Helpers for the chain tests: HQ and outlet agents as REAL processes on loopback.

A unique module name (the test folders are not packages), imported by tests/hq, tests/e2e
and tests/sync as `from chainkit import ...`. Every process is `loyalty ...` from this
virtual environment, exactly as an operator starts it; its stderr goes to a file that the
conftests attach to the report of a failing test.

- `HQProcess`: `loyalty hq serve` on its own file and port; `outlet_add` / `admin_token`
  go through the CLI (the token is the last line of its output); stop/start on the same
  port simulates HQ going down and coming back.
- `OutletProcess`: `loyalty agent serve --hq URL --token T` with a `Till` on it.
- `until(...)`: polls a condition, returns (seconds it took, value) or fails the test.
- `hq_ledger_check(...)`: HQ's balances equal the fold of its events, every event once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests
from agentkit import LOYALTY, Till, free_port

START_TIMEOUT_S = 20.0
T = TypeVar("T")


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`loyalty ARGS...`; the caller checks returncode."""
    return subprocess.run([str(LOYALTY), *args], check=False, capture_output=True, text=True,
                          timeout=timeout,
                          stdin=subprocess.DEVNULL)


def cli_last_line(*args: str) -> str:
    done = cli(*args)
    assert done.returncode == 0, f"loyalty {' '.join(args)}: {done.returncode}\n{done.stderr}"
    return done.stdout.strip().splitlines()[-1]


def until(condition: Callable[[], T], timeout: float = 10.0, every: float = 0.01,
          what: str = "condition") -> tuple[float, T]:
    """Polls `condition` until it returns something truthy; (elapsed seconds, value)."""
    start = time.monotonic()
    last: Any = None
    while True:
        try:
            last = condition()
        except requests.RequestException as exc:
            last = exc
        else:
            if last:
                return time.monotonic() - start, last
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what} not met within {timeout} s (last: {last!r})")
        time.sleep(every)


class Process:
    """One long-lived `loyalty` process, restartable on the same port and files."""

    label = "process"

    def __init__(self, log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.env: dict[str, str] = {}  # added to the environment it starts with

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def spawn(self) -> None:
        self.starts += 1
        with open(self.log, "ab") as log:
            log.write(f"\n--- start {self.starts} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, env={**os.environ, **self.env})

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.proc.returncode}:\n"
                                   f"{self.stderr()}")
            try:
                if self.ready():
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.label} did not answer within {timeout} s:\n"
                                   f"{self.stderr()}")
            time.sleep(0.03)

    def start(self, timeout: float = START_TIMEOUT_S) -> Process:
        self.spawn()
        self.wait_ready(timeout)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.running:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, grace: float = 1.0) -> None:
        """A graceful stop (SIGTERM), kill -9 if it does not go within `grace` seconds
        (uvicorn waits for open long polls otherwise)."""
        if self.running:
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()

    def stderr(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-8000:]
        except FileNotFoundError:
            return ""


class HQProcess(Process):
    label = "HQ"

    def __init__(self, db: Path, port: int | None = None) -> None:
        super().__init__(db.with_name(db.name + ".stderr"), port)
        self.db = db
        self._admin: str | None = None
        self.tokens: dict[str, str] = {}  # outlet id -> token, of the outlets added here
        self.http = requests.Session()

    def command(self) -> list[str]:
        return [str(LOYALTY), "hq", "serve", "--db", str(self.db), "--port", str(self.port)]

    def ready(self) -> bool:
        # any answer from the app (401 without a token) means it is serving
        return requests.get(self.url + "/openapi.json", timeout=1).status_code == 200

    def outlet_add(self, outlet_id: str) -> str:
        token = cli_last_line("hq", "outlet-add", "--db", str(self.db), outlet_id)
        self.tokens[outlet_id] = token
        return token

    @property
    def admin_token(self) -> str:
        if self._admin is None:
            self._admin = cli_last_line("hq", "admin-token", "--db", str(self.db))
        return self._admin

    def admin(self, method: str, path: str, status: int | None = 200, **kw: Any) -> Any:
        kw.setdefault("timeout", 15)
        headers = {"Authorization": f"Bearer {self.admin_token}", **kw.pop("headers", {})}
        answer = self.http.request(method, self.url + path, headers=headers, **kw)
        if status is None:
            return answer
        assert answer.status_code == status, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    def customer(self, customer_id: str) -> dict[str, Any]:
        return self.admin("GET", f"/v1/admin/customers/{customer_id}")  # type: ignore[no-any-return]

    def db_conn(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db, timeout=10, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn


class OutletProcess(Process):
    label = "agent"

    def __init__(self, db: Path, outlet: str, hq_url: str, token: str,
                 port: int | None = None) -> None:
        super().__init__(db.with_name(db.name + ".stderr"), port)
        self.db = db
        self.outlet = outlet
        self.hq_url = hq_url
        self.token = token
        self.till = Till(self.url, f"{outlet}-T1")
        self.label = f"agent {outlet}"

    def command(self) -> list[str]:
        return [str(LOYALTY), "agent", "serve", "--db", str(self.db), "--outlet", self.outlet,
                "--hq", self.hq_url, "--token", self.token, "--port", str(self.port)]

    def ready(self) -> bool:
        return requests.get(self.url + "/v1/status", timeout=1).ok

    def status(self) -> dict[str, Any]:
        return self.till.ok("GET", "/v1/status")  # type: ignore[no-any-return]

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
        conn = sqlite3.connect(self.db, timeout=10)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        finally:
            conn.close()


class ChainRig:
    """HQ plus outlets of one test, all real processes; everything killed at `close`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hq = HQProcess(root / "hq.db")
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
            until(lambda a=agent: a.status().get("hq_epoch"), 15, what=f"{agent.outlet} meets HQ")
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
                until(lambda a=agent: a.status()["pending_events"] == 0, timeout,
                      every=0.05, what=f"outlet {agent.outlet} pushed everything")


# --- sales ------------------------------------------------------------------------------
def buy(till: Till, card: str, unit_price: int, sku: str = "SKU-1") -> dict[str, Any]:
    """A cash sale of one line (priced through a quote); returns the sale answer."""
    lines = [{"sku": sku, "name": f"Item {sku}", "qty": 1, "unit_price": unit_price}]
    return till.sold(card, lines)


# --- looking into HQ's file ---------------------------------------------------------------
def hq_ledger_check(hq_db: Path, outboxes: dict[str, Path]) -> dict[str, Any]:
    """Asserts HQ holds every outlet event exactly once and balances = fold of events."""
    from schema.events import Event, tally_of
    from schema.ledger import Tally

    conn = sqlite3.connect(hq_db, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        per_outlet = Counter(r[0] for r in conn.execute("SELECT outlet_id FROM events"))
        ids = [r[0] for r in conn.execute("SELECT event_id FROM events")]
        assert len(ids) == len(set(ids)), "an event id is stored twice at HQ"
        folded: dict[str, Tally] = {}
        for row in conn.execute("SELECT event, booked_at FROM events ORDER BY hq_seq"):
            event = Event.model_validate_json(row[0])
            if event.customer_id:  # periods and "last purchase" go by the booking time
                delta = tally_of(event.parsed(), row[1] or event.at)
                folded[event.customer_id] = folded.get(event.customer_id, Tally()).combine(delta)
        from schema import tallystore

        for customer_id, tally in folded.items():
            stored = tallystore.load(conn, customer_id)
            assert stored.points_balance == tally.points_balance, customer_id
            assert stored.to_dict() == tally.to_dict(), customer_id
        hq_ids_by_outlet: dict[str, set[str]] = {}
        for r in conn.execute("SELECT outlet_id, event_id FROM events"):
            hq_ids_by_outlet.setdefault(r[0], set()).add(r[1])
    finally:
        conn.close()
    for outlet_id, path in outboxes.items():
        oc = sqlite3.connect(path, timeout=10)
        try:
            local = {r[0] for r in oc.execute("SELECT event_id FROM outbox")}
        finally:
            oc.close()
        assert per_outlet[outlet_id] == len(local), (outlet_id, per_outlet[outlet_id], len(local))
        assert hq_ids_by_outlet.get(outlet_id, set()) == local, outlet_id
    return {"events": dict(per_outlet), "customers": len(folded)}


def wal_safe_copy(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite file (the backup API; sees committed data only)."""
    source = sqlite3.connect(src, timeout=10)
    target = sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True)
