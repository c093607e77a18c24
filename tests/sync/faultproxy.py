"""Fault injection between outlet agents and HQ, and the chain harness the fault tests share.

- `FaultProxy`: an HTTP-aware asyncio proxy on loopback (in a thread of the test process).
  Agents are started with `--hq http://127.0.0.1:<proxy port>`. Per request, on a seeded
  random schedule, it forwards normally or: drops the connection before forwarding
  (`drop`), delays (`delay`), sends the request to HQ twice at once (`dup`), replays it to
  HQ again a little later (`replay`), forwards only half of the request (`cut_request`),
  forwards it but cuts the response midway (`cut_response`) or drops the whole response
  (`drop_response`: HQ applied it, the agent never learns), or answers 502 itself (`bad_gateway`).
- `Chain`: HQ (`loyalty hq serve`) and N agents (`loyalty agent serve`) as real processes
  (chainkit's `HQProcess` and `OutletProcess`), restartable on the same files (kill -9 and
  start again); HQ on a file in the chain's folder, or on PostgreSQL (`db`, a URL).
- `Workload`: tills at every outlet registering cards, selling (Idempotency-Keys, retried
  until answered), redeeming gifts, editing profiles, and taking goods back: returns at the
  sale's outlet (by sale id or receipt reference) and at others (from the receipt's code,
  within floor_returns), and voids. Hot customers every outlet spends at once make the
  offline floor limits matter (their sales are never returned, so the balances
  `BalanceWatch` sees stay within the floors). Its `Till` wraps testkit's `Till`.
- `check_chain`: the invariants after healing (testkit's `check_files`: exactly once, HQ =
  fold, convergence, the floor bound, every sale, redemption, return and void answered 201
  exactly once everywhere).

`store_seeds`: the (store, seed) cases of a soak: HQ on a SQLite file or on PostgreSQL.

A unique module name (test folders are not packages), imported as `import faultproxy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Self

import pytest
import requests
import testkit
from chainkit import HQProcess, OutletProcess, Process
from testkit import Ledger, check_files, wait_until
from testkit.ledger import floor_points, hq_reader
from testkit.processes import logs

__all__ = ["FAULTS", "BalanceWatch", "Chain", "Down", "FaultProxy", "Ledger", "Sold", "Till",
           "Workload", "check_chain", "check_files", "floor_points", "seeds"]

FAULTS = ("drop", "delay", "dup", "replay", "cut_request", "cut_response", "drop_response",
          "bad_gateway")


def seeds(default: int) -> list[int]:
    """Seeds for a test: `LOYALTY_FAULT_SEEDS` = a count ("20") or a list ("3,17,42")."""
    raw = os.environ.get("LOYALTY_FAULT_SEEDS", "").strip()
    if not raw:
        return list(range(1, default + 1))
    if "," in raw:
        return [int(s) for s in raw.split(",") if s.strip()]
    return list(range(1, int(raw) + 1))


def store_seeds(default: int, on_postgres: int | None = None) -> list[Any]:
    """The cases of a chain soak, as (store, seed) parameters with ids like "postgresql-1":
    every seed of `seeds(default)` with HQ on SQLite and with HQ on PostgreSQL; without
    LOYALTY_FAULT_SEEDS, only the first `on_postgres` seeds on PostgreSQL (the CI budget)."""
    chosen = seeds(default)
    on_pg = chosen if on_postgres is None or os.environ.get("LOYALTY_FAULT_SEEDS", "").strip() \
        else chosen[:on_postgres]
    return [pytest.param(store, seed, id=f"{store}-{seed}")
            for store, some in (("sqlite", chosen), ("postgresql", on_pg)) for seed in some]


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


# --- the chain ---------------------------------------------------------------------------
@dataclass
class Chain:
    """HQ + outlets on loopback; the agents talk to HQ through `proxy` if one is given."""

    root: Path
    outlets: list[str]
    proxy_seed: int | None = None
    fault_rate: float = 0.3
    db: str | None = None  # HQ on this postgresql:// URL; None: on a file in `root`
    hq: HQProcess = field(init=False)
    agents: dict[str, OutletProcess] = field(init=False, default_factory=dict)
    proxy: FaultProxy | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.hq = (HQProcess(self.root / "hq.db") if self.db is None
                   else HQProcess(self.db, stderr=self.root / "hq.stderr"))

    @property
    def hq_db(self) -> Path | str:
        """HQ's `--db`: its file, or its PostgreSQL URL."""
        return self.root / "hq.db" if self.db is None else self.db

    def agent_db(self, outlet: str) -> Path:
        return self.root / f"{outlet}.db"

    def start(self) -> Chain:
        from agent.programme import default_documents
        from hq.chain import Chain as HQChain

        HQChain(self.hq_db, seed=default_documents()).close()  # once, as `loyalty hq` would
        jobs = [threading.Thread(target=self.hq.outlet_add, args=(o,)) for o in self.outlets]
        jobs.append(threading.Thread(target=lambda: self.hq.admin_token))
        for job in jobs:  # side by side: python start-up dominates each `loyalty hq` command
            job.start()
        for job in jobs:
            job.join()
        assert len(self.hq.tokens) == len(self.outlets), "a `loyalty hq outlet-add` failed"
        self.hq.start()
        hq_url = self.hq.url
        if self.proxy_seed is not None:
            self.proxy = FaultProxy(self.hq.port, self.proxy_seed, self.fault_rate).start()
            hq_url = self.proxy.url
        for outlet in self.outlets:
            self.agents[outlet] = OutletProcess(self.agent_db(outlet), outlet, hq_url,
                                                self.hq.tokens[outlet])
        for agent in self.agents.values():
            agent.spawn()
        for agent in self.agents.values():
            agent.wait_ready()
        return self

    def faults(self, on: bool) -> None:
        if self.proxy is not None:
            self.proxy.faults_on = on

    def stop(self) -> None:
        for process in self.processes():
            process.kill()
        if self.proxy is not None:
            self.proxy.stop()

    def processes(self) -> list[Process]:
        return [self.hq, *self.agents.values()]

    def logs(self) -> str:
        proxy = f"\n--- proxy ---\n{dict(self.proxy.stats)}" if self.proxy is not None else ""
        return logs(self.processes()) + proxy

    # --- HQ, read directly ---------------------------------------------------------------
    def admin_get(self, path: str) -> Any:  # a session per call: BalanceWatch's thread too
        answer = requests.get(self.hq.url + path, timeout=10,
                              headers={"Authorization": f"Bearer {self.hq.admin_token}"})
        answer.raise_for_status()
        return answer.json()

    def admin_post(self, path: str) -> requests.Response:
        return requests.post(self.hq.url + path, timeout=10,
                             headers={"Authorization": f"Bearer {self.hq.admin_token}"})

    def hq_head(self) -> int:
        with hq_reader(self.hq_db) as conn:
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
        times, last = 0, None  # times in a row synced, at this head

        def settled() -> bool:
            nonlocal times, last
            head = self.hq_head()
            done = all(s is not None and s["pending_events"] == 0 and s["cursor"] == head
                       for s in (self.status(o) for o in self.outlets))
            times = times + 1 if done and head == last else 0
            last = head if done else None
            return times >= 2

        try:
            wait_until(settled, timeout, every=0.3, what="every outlet synced")
        except AssertionError:
            raise AssertionError(f"not synced after {timeout} s: head {self.hq_head()}, "
                                 f"{ {o: self.status(o) for o in self.outlets} }\n"
                                 f"{self.logs()}") from None


# --- the workload ------------------------------------------------------------------------
class Down(Exception):
    """The agent did not answer (killed, restarting): the till retries later."""


@dataclass(frozen=True)
class Sold:
    """A sale a till was answered 201 for, kept so a till may take it back later."""

    outlet: str
    card: str
    answer: dict[str, Any]
    lines: list[dict[str, Any]]


class Till:
    """A till at one outlet; every call is retried until the agent answers (same body, same
    Idempotency-Key), so a sale whose answer was lost in a crash is never made twice."""

    def __init__(self, chain: Chain, outlet: str, rng: random.Random, ledger: Ledger,
                 patience: float = 60.0, sold: list[Sold] | None = None) -> None:
        self.chain, self.outlet, self.rng, self.ledger = chain, outlet, rng, ledger
        self.patience = patience
        self.sold = sold if sold is not None else []  # shared by the workload's tills
        self.client = testkit.Till(chain.agents[outlet].url, "T1")

    def call(self, method: str, path: str, body: Any = None,
             key: str | None = None) -> requests.Response:
        headers = {"Idempotency-Key": key} if key else {}

        def answered() -> list[requests.Response]:  # a list: a 4xx answer is an answer too
            try:
                return [self.client.request(method, path, json=body, headers=headers)]
            except requests.RequestException:
                self.client.http.close()  # no kept-alive connection to a dead process
                raise

        try:
            return wait_until(answered, self.patience, every=0.1, what="an answer")[1][0]
        except AssertionError:
            raise Down(f"{self.outlet} {method} {path}") from None

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
            self.sold.append(Sold(self.outlet, card, answer.json(), lines))

    def give_back(self, sale: Sold) -> None:
        """Part of a sale back: here by sale id or reference if it was sold here, else from
        the receipt's code with the card (another outlet's sale)."""
        item = self.rng.choice(sale.lines)
        body: dict[str, Any] = {"lines": [{"sku": item["sku"],
                                           "qty": self.rng.randint(1, item["qty"])}],
                                "till_id": "T1", "reason": "workload"}
        if sale.outlet == self.outlet:
            which = "sale_id" if self.rng.random() < 0.5 else "receipt"
            body[which] = sale.answer["sale_id" if which == "sale_id" else "receipt_reference"]
        else:
            body.update(receipt=sale.answer["receipt_code"], card=sale.card)
        self._reversed(self.call("POST", "/v1/returns", body, key=str(uuid.uuid4())),
                       "/v1/returns", body)

    def void(self, sale: Sold) -> None:
        body = {"till_id": "T1", "reason": "workload"}
        path = f"/v1/sales/{sale.answer['sale_id']}/void"
        self._reversed(self.call("POST", path, body, key=str(uuid.uuid4())), path, body)

    def _reversed(self, answer: requests.Response, path: str, body: dict[str, Any]) -> None:
        if answer.status_code != 201:
            self.refused(answer)
            return
        if self.rng.random() < 0.1:  # a retry of an answered return: the same return again
            key = answer.request.headers["Idempotency-Key"]
            again = self.call("POST", path, body, key=str(key))
            assert again.status_code == 201 and again.json() == answer.json(), again.text
        with self.ledger.lock:
            self.ledger.returns[self.outlet].append(answer.json()["return_id"])

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
        self.sold: list[Sold] = []  # every till's sales, for returns anywhere

    def till(self, outlet: str, salt: int) -> Till:
        return Till(self.chain, outlet, random.Random(f"{self.seed}/{outlet}/{salt}"), self.ledger,
                    sold=self.sold)

    def returnable(self, rng: random.Random) -> Sold | None:
        """A sale of a customer who is not hot (their balances stay the floors' business)."""
        with self.ledger.lock:
            mine = [s for s in self.sold if s.card not in self.hot]
        return rng.choice(mine) if mine else None

    def setup(self) -> None:
        first = self.chain.outlets[0]
        for outlet in self.chain.outlets:  # until the agent met HQ (card range, programme)
            till = self.till(outlet, 0)
            wait_until(partial(till.register, "A"), 30, every=0.2,
                       what=f"{outlet} registers a card")
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
                elif roll < 0.40:
                    till.sell(rng.choice(cards))
                elif roll < 0.50:
                    till.sell(rng.choice(self.hot), big=rng.random() < 0.3)
                elif roll < 0.75:
                    till.redeem(rng.choice(self.hot) if rng.random() < 0.7 else rng.choice(cards))
                elif roll < 0.87:
                    sale = self.returnable(rng)
                    if sale is not None and rng.random() < 0.8:
                        till.give_back(sale)
                    elif sale is not None and sale.outlet == outlet:
                        till.void(sale)
                else:
                    till.edit(rng.choice(cards))
                time.sleep(rng.uniform(0, 0.03))
        except BaseException as exc:  # noqa: BLE001 - reported by run()
            self.errors.append(exc)


class BalanceWatch:
    """Polls HQ's balances of the hot customers while the workload runs (HQ directly), and
    its push groups (`GET /v1/admin/push-groups`): `grouped` is the most pushes HQ wrote
    beyond one per commit in any of its lives (0: no commit ever held two pushes)."""

    def __init__(self, chain: Chain, cards: dict[str, tuple[str, str]], hot: list[str]) -> None:
        self.chain = chain
        self.ids = {cards[c][0]: cards[c][1] for c in hot}
        self.lowest: dict[str, int] = {}
        self.grouped = 0
        self.largest = 0
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
            with contextlib.suppress(Exception):  # HQ may be down (killed): next time
                groups = self.chain.admin_get("/v1/admin/push-groups")
                self.grouped = max(self.grouped, groups["pushes"] - groups["groups"])
                self.largest = max(self.largest, groups["largest"])
            for cid in self.ids:
                with contextlib.suppress(Exception):
                    balance = self.chain.admin_get(f"/v1/admin/customers/{cid}")["points_balance"]
                    self.lowest[cid] = min(balance, self.lowest.get(cid, balance))


# --- the checks --------------------------------------------------------------------------
def check_chain(chain: Chain, ledger: Ledger | None = None,
                lowest_seen: dict[str, int] | None = None) -> dict[str, Any]:
    """Every invariant of a healed chain, read from the files (processes may be stopped)."""
    return check_files(chain.hq_db, {o: chain.agent_db(o) for o in chain.outlets}, ledger,
                       lowest_seen)
