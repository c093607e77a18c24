"""Fault injection between outlet agents and HQ, and the chain harness the fault tests share.

- `FaultProxy`: an HTTP-aware asyncio proxy on loopback (in a thread of the test process).
  Agents are started with `--hq http://127.0.0.1:<proxy port>`. Per request, on a seeded
  random schedule, it forwards normally or: drops the connection before forwarding
  (`drop`), delays (`delay`), sends the request to HQ twice at once (`dup`), replays it to
  HQ again a little later (`replay`), forwards only half of the request (`cut_request`),
  forwards it but cuts the response midway (`cut_response`) or drops the whole response
  (`drop_response`: HQ applied it, the agent never learns), or answers 502 itself (`bad_gateway`).
- `Chain`: HQ (`loyalty hq serve`) and N agents (`loyalty agent serve`) as real processes,
  restartable on the same files (kill -9 and start again).
- `Workload`: tills at every outlet registering cards, selling (Idempotency-Keys, retried
  until answered), redeeming gifts and editing profiles, with hot customers every outlet
  spends at once so the offline floor limits matter.
- `check_chain`: the invariants after healing (exactly once, HQ = fold, convergence, the
  floor bound, every sale answered 201 exactly once everywhere).

A unique module name (test folders are not packages), imported as `import faultproxy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import requests

LOYALTY = Path(sys.executable).parent / "loyalty"
FAULTS = ("drop", "delay", "dup", "replay", "cut_request", "cut_response", "drop_response",
          "bad_gateway")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seeds(default: int) -> list[int]:
    """Seeds for a test: `LOYALTY_FAULT_SEEDS` = a count ("20") or a list ("3,17,42")."""
    raw = os.environ.get("LOYALTY_FAULT_SEEDS", "").strip()
    if not raw:
        return list(range(1, default + 1))
    if "," in raw:
        return [int(s) for s in raw.split(",") if s.strip()]
    return list(range(1, int(raw) + 1))


# --- the proxy --------------------------------------------------------------------------
class FaultProxy:
    """Loopback HTTP/1.1 proxy to `upstream_port`; one request per client connection."""

    def __init__(self, upstream_port: int, seed: int, rate: float = 0.3,
                 kinds: tuple[str, ...] = FAULTS) -> None:
        self.upstream_port = upstream_port
        self.rng = random.Random(seed)
        self.rate = rate
        self.kinds = kinds
        self.faults_on = False
        self.stats: Counter[str] = Counter()
        self.log: list[tuple[int, str, str]] = []
        self._n = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="faultproxy")
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop)
        self._server = started.result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if not self._loop.is_running():
            return

        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _choose(self, method: str, path: str) -> str:
        self._n += 1
        fault = "pass"
        if self.faults_on and self.rng.random() < self.rate:
            fault = self.rng.choice(self.kinds)
        self.stats[fault] += 1
        self.log.append((self._n, f"{method} {path}", fault))
        return fault

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path = lines[0].split(" ")[:2]
        length = 0
        kept = [lines[0]]
        for line in lines[1:]:
            if not line:
                continue
            name = line.split(":", 1)[0].strip().lower()
            if name == "content-length":
                length = int(line.split(":", 1)[1])
            if name in ("connection", "keep-alive"):
                continue
            kept.append(line)
        body = await reader.readexactly(length) if length else b""
        request = ("\r\n".join([*kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1") + body
        fault = self._choose(method, path.split("?")[0])
        if fault == "drop":
            return
        if fault == "bad_gateway":
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\n"
                         b"Content-Type: text/plain\r\nConnection: close\r\n\r\nbad gateway")
            await writer.drain()
            return
        if fault == "cut_request":
            await self._forward(request[: max(1, len(request) // 2)], partial=True)
            return
        if fault == "delay":
            await asyncio.sleep(self.rng.uniform(0.05, 1.2))
        if fault == "dup":
            answers = await asyncio.gather(self._forward(request), self._forward(request))
            response = answers[self.rng.randrange(2)]
        else:
            response = await self._forward(request)
        if fault == "replay":
            self._later(self.rng.uniform(0.2, 2.0), request)
        if fault == "drop_response" or not response:
            return
        if fault == "cut_response":
            response = response[: self.rng.randrange(1, len(response))]
        writer.write(response)
        await writer.drain()

    def _later(self, delay: float, request: bytes) -> None:
        async def replay() -> None:
            await asyncio.sleep(delay)
            with contextlib.suppress(Exception):
                await self._forward(request)

        task = asyncio.ensure_future(replay())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, request: bytes, partial: bool = False) -> bytes:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            return b""
        try:
            up_writer.write(request)
            await up_writer.drain()
            if partial:
                await asyncio.sleep(0.05)
                return b""
            return await asyncio.wait_for(up_reader.read(-1), 90)
        except (TimeoutError, OSError):
            return b""
        finally:
            with contextlib.suppress(Exception):
                up_writer.close()


# --- processes ---------------------------------------------------------------------------
def _run(*args: str) -> str:
    out = subprocess.run([str(LOYALTY), *args], capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


class Process:
    """A `loyalty ...` server process on a fixed port, restartable on the same files."""

    def __init__(self, name: str, args: list[str], port: int, ready_path: str,
                 log: Path, headers: dict[str, str] | None = None) -> None:
        self.name, self.args, self.port, self.ready_path = name, args, port, ready_path
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.headers = headers or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def start(self, timeout: float = 30.0) -> Process:
        self.starts += 1
        with open(self.log, "ab") as log:
            log.write(f"\n--- start {self.starts} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen([str(LOYALTY), *self.args], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                if time.monotonic() < deadline:  # e.g. the port still held for a moment
                    time.sleep(0.2)
                    with open(self.log, "ab") as log:
                        self.proc = subprocess.Popen([str(LOYALTY), *self.args], stdout=log,
                                                     stderr=log, stdin=subprocess.DEVNULL)
                    continue
                raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
            try:
                if requests.get(self.url + self.ready_path, headers=self.headers, timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name} did not answer in {timeout} s:\n{self.tail()}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.alive():
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.kills += 1

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return ""


@dataclass
class Chain:
    """HQ + outlets on loopback; the agents talk to HQ through `proxy` if one is given."""

    root: Path
    outlets: list[str]
    proxy_seed: int | None = None
    fault_rate: float = 0.3
    hq: Process = field(init=False)
    agents: dict[str, Process] = field(init=False, default_factory=dict)
    tokens: dict[str, str] = field(init=False, default_factory=dict)
    admin: str = field(init=False, default="")
    proxy: FaultProxy | None = field(init=False, default=None)

    @property
    def hq_db(self) -> Path:
        return self.root / "hq.db"

    def agent_db(self, outlet: str) -> Path:
        return self.root / f"{outlet}.db"

    def start(self) -> Chain:
        db = str(self.hq_db)
        from agent.programme import default_documents
        from hq.chain import Chain as HQChain

        HQChain(db, seed=default_documents()).close()  # created once, as `loyalty hq` would
        answers: dict[str, str] = {}
        jobs = [threading.Thread(target=lambda o=o: answers.__setitem__(
            o, _run("hq", "outlet-add", "--db", db, o))) for o in self.outlets]
        jobs.append(threading.Thread(target=lambda: answers.__setitem__(
            "", _run("hq", "admin-token", "--db", db))))
        for job in jobs:
            job.start()
        for job in jobs:
            job.join()
        assert len(answers) == len(self.outlets) + 1, "a `loyalty hq` command failed"
        self.admin = answers.pop("")
        self.tokens.update(answers)
        port = free_port()
        self.hq = Process("hq", ["hq", "serve", "--db", db, "--port", str(port)], port,
                          "/v1/sync/hello", self.root / "hq.log",
                          {"Authorization": f"Bearer {self.tokens[self.outlets[0]]}"})
        self.hq.start()
        hq_url = self.hq.url
        if self.proxy_seed is not None:
            self.proxy = FaultProxy(port, self.proxy_seed, self.fault_rate).start()
            hq_url = self.proxy.url
        starting = []
        for outlet in self.outlets:
            aport = free_port()
            agent = Process(outlet, ["agent", "serve", "--db", str(self.agent_db(outlet)),
                                     "--outlet", outlet, "--port", str(aport), "--hq", hq_url,
                                     "--token", self.tokens[outlet]],
                            aport, "/v1/status", self.root / f"{outlet}.log")
            self.agents[outlet] = agent
            starting.append(threading.Thread(target=agent.start))
        for t in starting:
            t.start()
        for t in starting:
            t.join()
        for outlet, agent in self.agents.items():
            assert agent.alive(), f"agent {outlet} did not start:\n{agent.tail()}"
        return self

    def faults(self, on: bool) -> None:
        if self.proxy is not None:
            self.proxy.faults_on = on

    def stop(self) -> None:
        for agent in self.agents.values():
            agent.kill()
        if getattr(self, "hq", None) is not None:
            self.hq.kill()
        if self.proxy is not None:
            self.proxy.stop()

    def logs(self) -> str:
        parts = [f"--- {p.name} ---\n{p.tail(3000)}" for p in [self.hq, *self.agents.values()]]
        if self.proxy is not None:
            parts.append(f"--- proxy ---\n{dict(self.proxy.stats)}")
        return "\n".join(parts)

    # --- HQ, read directly ---------------------------------------------------------------
    def admin_get(self, path: str) -> Any:
        answer = requests.get(self.hq.url + path, timeout=10,
                              headers={"Authorization": f"Bearer {self.admin}"})
        answer.raise_for_status()
        return answer.json()

    def admin_post(self, path: str) -> requests.Response:
        return requests.post(self.hq.url + path, timeout=10,
                             headers={"Authorization": f"Bearer {self.admin}"})

    def hq_head(self) -> int:
        with closing_ro(self.hq_db) as conn:
            return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0])

    def status(self, outlet: str) -> dict[str, Any] | None:
        try:
            answer = requests.get(self.agents[outlet].url + "/v1/status", timeout=5)
            return answer.json() if answer.ok else None
        except requests.RequestException:
            return None

    def wait_synced(self, timeout: float = 90.0) -> None:
        """Until every outlet has nothing pending and has pulled up to HQ's head, twice in a row
        (so nothing moved in between)."""
        deadline = time.monotonic() + timeout
        calm = 0
        last: Any = None
        while time.monotonic() < deadline:
            head = self.hq_head()
            states = {o: self.status(o) for o in self.outlets}
            done = all(s is not None and s["pending_events"] == 0 and s["cursor"] == head
                       for s in states.values())
            calm = calm + 1 if done and head == last else 0
            last = head if done else None
            if calm >= 2:
                return
            time.sleep(0.3)
        raise AssertionError(f"not synced after {timeout} s: head {self.hq_head()}, "
                             f"{ {o: self.status(o) for o in self.outlets} }\n{self.logs()}")


@contextlib.contextmanager
def closing_ro(path: Path) -> Any:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


# --- the workload ------------------------------------------------------------------------
class Down(Exception):
    """The agent did not answer (killed, restarting): the till retries later."""


@dataclass
class Ledger:
    """What the tills were told: every sale and redemption answered 201, per outlet."""

    sales: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    redemptions: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    cards: dict[str, tuple[str, str]] = field(default_factory=dict)  # card -> (id, category)
    refusals: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Till:
    """A till at one outlet; every call is retried until the agent answers (same body, same
    Idempotency-Key), so a sale whose answer was lost in a crash is never made twice."""

    def __init__(self, chain: Chain, outlet: str, rng: random.Random, ledger: Ledger,
                 patience: float = 60.0) -> None:
        self.chain, self.outlet, self.rng, self.ledger = chain, outlet, rng, ledger
        self.patience = patience
        self.http = requests.Session()

    def call(self, method: str, path: str, body: Any = None,
             key: str | None = None) -> requests.Response:
        deadline = time.monotonic() + self.patience
        headers = {"Idempotency-Key": key} if key else {}
        while True:
            try:
                return self.http.request(method, self.chain.agents[self.outlet].url + path,
                                         json=body, headers=headers, timeout=15)
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise Down(f"{self.outlet} {method} {path}") from None
                self.http.close()
                time.sleep(0.1)

    def refused(self, answer: requests.Response) -> None:
        try:
            code = answer.json()["error"]["code"]
        except Exception:  # noqa: BLE001
            code = str(answer.status_code)
        with self.ledger.lock:
            self.ledger.refusals[code] += 1
        assert answer.status_code < 500, f"{self.outlet}: {answer.status_code} {answer.text}"

    def register(self, category: str) -> str | None:
        answer = self.call("POST", "/v1/customers", {
            "kind": "person", "given_name": f"G{self.rng.randrange(10**6)}",
            "surname": f"S{self.outlet}", "category": category})
        if answer.status_code != 201:
            self.refused(answer)
            return None
        doc = answer.json()
        with self.ledger.lock:
            self.ledger.cards[doc["card_number"]] = (doc["customer_id"], category)
        return str(doc["card_number"])

    def stock(self, sku: str, qty: int) -> None:
        answer = self.call("POST", f"/v1/gifts/{sku}/stock", {"qty": qty, "reason": "receipt"})
        assert answer.status_code == 200, answer.text

    def sell(self, card: str, big: bool = False) -> None:
        lines = [{"sku": f"SKU{self.rng.randrange(12)}", "name": "Thing",
                  "qty": self.rng.randint(1, 3),
                  "unit_price": self.rng.randint(20_000, 60_000) if big
                  else self.rng.randint(500, 20_000)}]
        quote = self.call("POST", "/v1/quotes", {"card": card, "lines": lines})
        if quote.status_code != 201:
            self.refused(quote)
            return
        total = quote.json()["total_net"]
        payments = [{"mode": "cash", "amount": total}]
        if self.rng.random() < 0.15 and total > 10:
            payments = [{"mode": "credit", "amount": total // 3},
                        {"mode": "card", "amount": total - total // 3}]
        body = {"card": card, "lines": lines, "payments": payments, "till_id": "T1"}
        key = str(uuid.uuid4())
        answer = self.call("POST", "/v1/sales", body, key=key)
        if answer.status_code != 201:
            self.refused(answer)
            return
        if self.rng.random() < 0.1:  # the till retries an answered sale: a replay, not a sale
            again = self.call("POST", "/v1/sales", body, key=key)
            assert again.status_code == 201 and again.json() == answer.json(), again.text
        with self.ledger.lock:
            self.ledger.sales[self.outlet].append(answer.json()["sale_id"])

    def redeem(self, card: str) -> None:
        sku = self.rng.choice(["GIFT-MUG", "GIFT-MUG", "GIFT-TOTE"])
        answer = self.call("POST", "/v1/redemptions", {"card": card, "gift_sku": sku,
                                                        "till_id": "T1"}, key=str(uuid.uuid4()))
        if answer.status_code != 201:
            self.refused(answer)
            return
        with self.ledger.lock:
            self.ledger.redemptions[self.outlet].append(answer.json()["redemption_id"])

    def edit(self, card: str) -> None:
        with self.ledger.lock:
            customer_id = self.ledger.cards[card][0]
        answer = self.call("PATCH", f"/v1/customers/{customer_id}",
                           {"note": f"{self.outlet} {self.rng.randrange(1000)}"})
        if answer.status_code != 200:
            self.refused(answer)


class Workload:
    """Setup (faults off): cards at every outlet, gift stock, points on hot customers. Then
    `run` makes `ops` random operations per outlet in parallel threads."""

    def __init__(self, chain: Chain, seed: int, ledger: Ledger | None = None) -> None:
        self.chain = chain
        self.seed = seed
        self.ledger = ledger or Ledger()
        self.hot: list[str] = []
        self.errors: list[BaseException] = []

    def till(self, outlet: str, salt: int) -> Till:
        return Till(self.chain, outlet, random.Random(f"{self.seed}/{outlet}/{salt}"), self.ledger)

    def setup(self) -> None:
        first = self.chain.outlets[0]
        deadline = time.monotonic() + 30
        for outlet in self.chain.outlets:  # until the agent met HQ (card range, programme)
            till = self.till(outlet, 0)
            while till.register("A") is None:
                assert time.monotonic() < deadline, self.chain.logs()
                time.sleep(0.2)
            till.stock("GIFT-MUG", 200)
            till.stock("GIFT-TOTE", 100)
        till = self.till(first, 1)
        for category in ("A", "A", "C"):
            card = till.register(category)
            assert card is not None
            self.hot.append(card)
            for _ in range(2):
                till.sell(card, big=True)
        self.chain.wait_synced(60)

    def run(self, ops: int, stop: threading.Event | None = None) -> None:
        threads = [threading.Thread(target=self._outlet, args=(o, ops, stop), name=f"till-{o}")
                   for o in self.chain.outlets]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self.errors:
            raise self.errors[0]

    def _outlet(self, outlet: str, ops: int, stop: threading.Event | None) -> None:
        till = self.till(outlet, 2)
        rng = till.rng
        try:
            for _ in range(ops):
                if stop is not None and stop.is_set():
                    return
                with self.ledger.lock:
                    cards = sorted(self.ledger.cards)
                roll = rng.random()
                if roll < 0.07:
                    till.register(rng.choice("AABCD"))
                elif roll < 0.45:
                    till.sell(rng.choice(cards))
                elif roll < 0.55:
                    till.sell(rng.choice(self.hot), big=rng.random() < 0.3)
                elif roll < 0.85:
                    till.redeem(rng.choice(self.hot) if rng.random() < 0.7 else rng.choice(cards))
                else:
                    till.edit(rng.choice(cards))
                time.sleep(rng.uniform(0, 0.03))
        except BaseException as exc:  # noqa: BLE001 - reported by run()
            self.errors.append(exc)


class BalanceWatch:
    """Polls HQ's balances of the hot customers while the workload runs (HQ directly)."""

    def __init__(self, chain: Chain, cards: dict[str, tuple[str, str]], hot: list[str]) -> None:
        self.chain = chain
        self.ids = {cards[c][0]: cards[c][1] for c in hot}
        self.lowest: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="balance-watch")

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for cid in self.ids:
                with contextlib.suppress(Exception):
                    balance = self.chain.admin_get(f"/v1/admin/customers/{cid}")["points_balance"]
                    self.lowest[cid] = min(balance, self.lowest.get(cid, balance))


# --- the checks --------------------------------------------------------------------------
def floor_points() -> dict[str, int]:
    from agent.defaults import LIMITS

    return {limit.category: limit.floor_points for limit in LIMITS}


def check_chain(chain: Chain, ledger: Ledger | None = None,
                lowest_seen: dict[str, int] | None = None) -> dict[str, Any]:
    """Every invariant of a healed chain, read from the files (processes may be stopped)."""
    return check_files(chain.hq_db, {o: chain.agent_db(o) for o in chain.outlets}, ledger,
                       lowest_seen)


def check_files(hq_db: Path, outlet_dbs: dict[str, Path], ledger: Ledger | None = None,
                lowest_seen: dict[str, int] | None = None, floor_bound: bool = True
                ) -> dict[str, Any]:
    """The checks of `check_chain` on HQ's file and the outlets' files. `floor_bound` off
    when HQ was restored from a backup (its order of events is then not one history)."""
    from schema import tallystore
    from schema.customerstore import identifiers_of, profile_of
    from schema.events import Event, fold, tally_of
    from schema.ledger import Tally

    figures: dict[str, Any] = {}
    with closing_ro(hq_db) as hq:
        rows = hq.execute("SELECT hq_seq, event_id, outlet_id, seq, customer_id, event "
                          "FROM events ORDER BY hq_seq").fetchall()
        events = [Event.model_validate_json(r["event"]) for r in rows]
        ids = [r["event_id"] for r in rows]
        assert len(ids) == len(set(ids)), "an event is in HQ's ledger twice"
        figures["hq_events"] = len(ids)

        # 1. every outlet event at HQ exactly once, (outlet, seq) gap-free 1..N
        for outlet, path in outlet_dbs.items():
            with closing_ro(path) as db:
                outbox = [(r[0], r[1]) for r in db.execute(
                    "SELECT seq, event_id FROM outbox ORDER BY seq")]
                pending = db.execute("SELECT COUNT(*) FROM outbox WHERE acked = 0").fetchone()[0]
            at_hq = [(r["seq"], r["event_id"]) for r in rows if r["outlet_id"] == outlet]
            assert pending == 0, f"{outlet}: {pending} events still pending"
            assert [s for s, _ in outbox] == list(range(1, len(outbox) + 1)), \
                f"{outlet}: local sequence has gaps"
            assert at_hq == outbox, f"{outlet}: HQ holds {len(at_hq)} events, outlet made " \
                f"{len(outbox)}; first difference at " \
                f"{next((a, b) for a, b in zip(at_hq + [None] * 9, outbox + [None] * 9) if a != b)}"
            last_seq = hq.execute("SELECT last_seq FROM outlets WHERE outlet_id = ?",
                                  (outlet,)).fetchone()[0]
            assert last_seq == len(outbox), (outlet, last_seq, len(outbox))

        # 2. HQ's tallies are the fold of its events, per customer
        by_customer: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            if event.customer_id:
                by_customer[event.customer_id].append(event)
        customers = [r[0] for r in hq.execute("SELECT customer_id FROM customers ORDER BY 1")]
        for cid in set(customers) | set(by_customer):
            assert tallystore.load(hq, cid) == fold(by_customer.get(cid, [])), \
                f"HQ tally of {cid} is not the fold of its events"
        figures["customers"] = len(customers)
        figures["flags"] = hq.execute("SELECT COUNT(*) FROM flags").fetchone()[0]

        # 3. the lowest balance HQ ever held stays above minus the sum of the floors
        floors = floor_points()
        categories = dict(hq.execute("SELECT customer_id, category FROM customers").fetchall())
        bound = {cid: -len(outlet_dbs) * floors[cat] for cid, cat in categories.items()}
        lowest: dict[str, int] = {}
        running: dict[str, Tally] = defaultdict(Tally)
        for event in events:
            cid = event.customer_id
            if not cid:
                continue
            running[cid] = running[cid].combine(tally_of(event.parsed(), event.at))
            lowest[cid] = min(lowest.get(cid, 0), running[cid].points_balance)
        for cid, low in lowest.items() if floor_bound else ():
            assert low >= bound[cid], f"{cid} reached {low} at HQ, bound {bound[cid]}"
        for cid, low in (lowest_seen or {}).items():
            assert low >= bound[cid], f"{cid} was seen at {low} at HQ, bound {bound[cid]}"
        figures["lowest_balance"] = min(lowest.values(), default=0)

        # 4. every outlet converged to HQ
        head = hq.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]
        hq_view = {}
        for cid in customers:
            row = hq.execute("SELECT * FROM customers WHERE customer_id = ?", (cid,)).fetchone()
            hq_view[cid] = (profile_of(row), row["status"], row["category"],
                            identifiers_of(hq, cid), tallystore.load(hq, cid))
        for outlet, path in outlet_dbs.items():
            with closing_ro(path) as db:
                cursor = db.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
                assert cursor is not None and int(cursor[0]) == head, (outlet, cursor, head)
                local = [r[0] for r in db.execute("SELECT customer_id FROM customers ORDER BY 1")]
                assert local == customers, f"{outlet} knows other customers than HQ"
                for cid in customers:
                    row = db.execute("SELECT * FROM customers WHERE customer_id = ?",
                                     (cid,)).fetchone()
                    view = (profile_of(row), row["status"], row["category"],
                            identifiers_of(db, cid), tallystore.load(db, cid))
                    assert view == hq_view[cid], f"{outlet} differs from HQ on {cid}:\n" \
                        f"{view}\n{hq_view[cid]}"

        # 5. every sale / redemption the tills were told about: once at its outlet, once at HQ
        if ledger is not None:
            hq_sales = Counter(r[0] for r in hq.execute("SELECT sale_id FROM sales"))
            hq_reds = Counter(r[0] for r in hq.execute("SELECT redemption_id FROM redemptions"))
            event_sales = Counter(e.body.get("sale_id") for e in events
                                  if e.type == "sale.recorded")
            assert all(n == 1 for n in hq_sales.values()), "a sale is at HQ twice"
            assert all(n == 1 for n in event_sales.values()), "a sale event is at HQ twice"
            for outlet, path in outlet_dbs.items():
                with closing_ro(path) as db:
                    local = Counter(r[0] for r in db.execute("SELECT sale_id FROM sales"))
                    local_reds = Counter(r[0] for r in db.execute(
                        "SELECT redemption_id FROM redemptions"))
                    outbox_sales = Counter(json.loads(r[0])["body"]["sale_id"] for r in db.execute(
                        "SELECT event FROM outbox WHERE type = 'sale.recorded'"))
                told = ledger.sales[outlet]
                assert len(told) == len(set(told)), f"{outlet} answered one sale twice"
                for sale_id in told:
                    assert local[sale_id] == 1 and outbox_sales[sale_id] == 1, (outlet, sale_id)
                    assert hq_sales[sale_id] == 1 and event_sales[sale_id] == 1, (outlet, sale_id)
                for red in ledger.redemptions[outlet]:
                    assert local_reds[red] == 1 and hq_reds[red] == 1, (outlet, red)
                # and nothing the outlet recorded is missing at HQ either
                assert set(local) <= set(hq_sales), f"{outlet} has sales HQ lacks"
            figures["sales_told"] = sum(len(v) for v in ledger.sales.values())
            figures["redemptions_told"] = sum(len(v) for v in ledger.redemptions.values())
            figures["refusals"] = dict(ledger.refusals)
    return figures
