"""Helpers for the modem-link tests: the line simulator, HQ and outlets as REAL processes.

A unique module name (the test folders are not packages), imported as `from modemkit
import ...` (tests/sync and tests/ are on sys.path under pytest's rootdir-relative imports;
bench/modem.py adds them itself). Everything here runs exactly as an operator would:

- `LineSimProcess`: `python -m sync.linesim --config FILE`: pty paths from its
  `modem NAME PATH` lines, faults through its stdin (`drop`, `dialtone`, `ber`, `stats`).
- `ModemHQ`: `loyalty hq serve --modem PATH ...` (a modem bank behind one number).
- `ModemOutlet`: `loyalty agent serve --config FILE` with a `[modem]` table; `sync()` is
  `loyalty sync --db` (one call now), as a store manager or cron would run it.
- `hq_events(...)`, `outbox_flags(...)`: looks into the files, read-only.
- `wait_for(...)`: testkit's `wait_until`, returning the value only.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

from chainkit import HQProcess, OutletProcess
from testkit import cli, read_only, wait_until
from testkit.processes import log_tail, logs

from sync.linesim import Timing

REPO = Path(__file__).resolve().parents[2]
FAST = Timing(dial_delay_s=0.05, ring_interval_s=0.2, connect_delay_s=0.05)
GUARD_S = 0.2
INIT = ("ATZ", "ATE0V1", f"ATS12={int(GUARD_S * 50)}")  # short guard time: quick hangups
HQ_NUMBER = "5550100"
NEVER = "every 24h"  # a schedule that does not fire during a test


class LineSimProcess:
    """The simulator as a separate process; commands on its stdin, answers on its stdout."""

    def __init__(self, root: Path, modems: list[str], numbers: dict[str, list[str]],
                 speed_bps: int = 33_600, bit_error_rate: float = 0.0, seed: int = 0,
                 timing: Timing = FAST) -> None:
        self.config = root / "line.toml"
        self.log = root / "linesim.stderr"
        lines = [f"speed_bps = {speed_bps}", f"bit_error_rate = {bit_error_rate}",
                 f"seed = {seed}", "[timing]", f"dial_delay_s = {timing.dial_delay_s}",
                 f"ring_interval_s = {timing.ring_interval_s}",
                 f"connect_delay_s = {timing.connect_delay_s}"]
        lines += [f'[[modems]]\nname = "{m}"' for m in modems]
        lines += [f'[[numbers]]\nnumber = "{n}"\nmodems = {json.dumps(ms)}'
                  for n, ms in numbers.items()]
        self.config.write_text("\n".join(lines) + "\n")
        self.paths: dict[str, str] = {}
        self.proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._lines: queue.Queue[str] = queue.Queue()

    def start(self, timeout: float = 15.0) -> LineSimProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "sync.linesim", "--config",
                                          str(self.config)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log, text=True,
                                         cwd=REPO, bufsize=1)
        threading.Thread(target=self._pump, daemon=True, name="linesim-stdout").start()
        while True:
            line = self._readline(timeout)
            words = line.split()
            if words[:1] == ["modem"] and len(words) == 3:
                self.paths[words[1]] = words[2]
            elif words == ["ready"]:
                return self
            else:
                raise RuntimeError(f"linesim said {line!r}: {self.stderr()}")

    @classmethod
    def bank(cls, root: Path, lines: int = 2, outlets: int = 2, extra: tuple[str, ...] = (),
             **kw: Any) -> LineSimProcess:
        """HQ's lines hq1..hqN behind HQ_NUMBER (a hunt group), outlet modems o1..oM and
        `extra` modems (e.g. ones a test dials from to hold a line)."""
        hq = [f"hq{i + 1}" for i in range(lines)]
        others = [f"o{i + 1}" for i in range(outlets)] + list(extra)
        return cls(root, hq + others, {HQ_NUMBER: hq}, **kw)

    def hq_paths(self) -> list[str]:
        return [p for n, p in sorted(self.paths.items()) if n.startswith("hq")]

    def outlet_paths(self) -> list[str]:
        return [p for n, p in sorted(self.paths.items()) if n.startswith("o")]

    def name_of(self, path: str) -> str:
        return next(n for n, p in self.paths.items() if p == path)

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.strip())
        self._lines.put("\0exited")

    def _readline(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"linesim silent for {timeout} s: {self.stderr()}") from None
        if line == "\0exited":
            raise RuntimeError(f"linesim exited: {self.stderr()}")
        return line

    def command(self, text: str) -> str:
        assert self.proc is not None and self.proc.stdin is not None
        with self._lock:
            self.proc.stdin.write(text + "\n")
            self.proc.stdin.flush()
            return self._readline(10.0)

    def drop(self, name: str) -> bool:
        return self.command(f"drop {name}") == "dropped"

    def dialtone(self, name: str, on: bool) -> None:
        assert self.command(f"dialtone {name} {'on' if on else 'off'}") == "ok"

    def ber(self, rate: float) -> None:
        assert self.command(f"ber {rate}") == "ok"

    def stats(self) -> dict[str, Any]:
        return json.loads(self.command("stats"))

    def state(self, name: str) -> str:
        return str(self.stats()["modems"][name]["state"])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=5)

    def stderr(self) -> str:
        return log_tail(self.log, 4000)


class ModemHQ(HQProcess):
    """`loyalty hq serve` answering on the simulator's modems (a bank behind one number)."""

    def __init__(self, db: Path, modem_paths: list[str], port: int | None = None) -> None:
        super().__init__(db, port)
        self.modem_paths = modem_paths

    def command(self) -> list[str]:
        cmd = super().command()
        for path in self.modem_paths:
            cmd += ["--modem", path]
        return cmd + ["--modem-init", ";".join(INIT), "--modem-guard", str(GUARD_S)]


class ModemOutlet(OutletProcess):
    """`loyalty agent serve --config` with a [modem] table; `sync()` dials now."""

    def __init__(self, db: Path, outlet: str, modem_path: str, token: str,
                 number: str = HQ_NUMBER, schedule: str = NEVER, window_minutes: int = 30,
                 dial_timeout_s: float = 3.0) -> None:
        super().__init__(db, outlet, "", token)
        self.label = f"modem agent {outlet}"
        self.modem_path = modem_path
        self.config = db.with_name(f"{outlet}.toml")
        self.args = ["agent", "serve", "--config", str(self.config)]
        self.config.write_text(
            f'outlet = "{outlet}"\ndb = "{db}"\ntoken = "{token}"\nport = {self.port}\n'
            f'[modem]\nport = "{modem_path}"\nnumber = "{number}"\n'
            f"init = {json.dumps(list(INIT))}\nguard_s = {GUARD_S}\n"
            f'schedule = "{schedule}"\nwindow_minutes = {window_minutes}\n'
            f"dial_timeout_s = {dial_timeout_s}\n")

    def sync(self, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """`loyalty sync --db`: one call now; returncode 0 = everything acknowledged."""
        return cli("sync", "--db", str(self.db), timeout=timeout)

    def synced(self, timeout: float = 180) -> str:
        done = self.sync(timeout)
        assert done.returncode == 0, f"loyalty sync {self.outlet}: {done.returncode}\n" \
            f"{done.stdout}\n{done.stderr}"
        return done.stdout

    def last_session(self) -> dict[str, Any]:
        return self.status()["last_session"]


def hq_events(hq_db: Path, outlet: str | None = None) -> int:
    with read_only(hq_db) as conn:
        if outlet is None:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        return int(conn.execute("SELECT COUNT(*) FROM events WHERE outlet_id = ?",
                                (outlet,)).fetchone()[0])


def outbox_flags(db: Path) -> tuple[int, int]:
    """(acknowledged, pending) events in an outlet's outbox."""
    with read_only(db) as conn:
        acked = conn.execute("SELECT COUNT(*) FROM outbox WHERE acked = 1").fetchone()[0]
        pending = conn.execute("SELECT COUNT(*) FROM outbox WHERE acked = 0").fetchone()[0]
        return int(acked), int(pending)


def wait_for(condition: Any, timeout: float = 10.0, every: float = 0.05,
             what: str = "condition") -> Any:
    return wait_until(condition, timeout, every, what)[1]


# --- a shop's day, written in process into an outlet's file (the agent not running) ------
WORDS = ("Milk", "Bread", "Cheese", "Apple", "Rioja", "Coffee", "Butter", "Ham", "Olive oil",
         "Water", "Tomato", "Yogurt", "Chocolate", "Beer", "Pasta", "Rice", "Tea", "Salmon")
SIZES = ("250g", "500g", "1kg", "0.75l", "1l", "1.5l", "6x0.33l", "200g", "pack of 4")


def catalogue(seed: int = 1, size: int = 300) -> list[dict[str, Any]]:
    """A shop's products: EAN-13 SKUs, names, prices; the same shop for every seed=1 run."""
    import random

    rng = random.Random(seed)
    products = []
    for i in range(size):
        ean = f"40{rng.randrange(10**10):010d}"
        ean += str((10 - sum(int(d) * (3 if k % 2 else 1) for k, d in enumerate(ean)) % 10) % 10)
        name = f"{rng.choice(WORDS)} {rng.choice(WORDS).lower()} {rng.choice(SIZES)} #{i}"
        products.append({"sku": ean, "name": name, "unit_price": rng.randrange(49, 3999)})
    return products


def shop_day(db: Path, outlet_id: str, sales: int, lines: int = 10, customers: int = 0,
             seed: int = 0, cards: list[str] | None = None) -> list[str]:
    """Registers `customers` and makes `sales` sales of `lines` lines each (Zipf-like
    popular products, so SKUs repeat as in a real shop) through the outlet's own domain
    code, as the till API would. Returns the cards used. The agent must not be running."""
    import random

    from agent import customers as customer_service
    from agent import sales as sale_service
    from agent.outlet import Outlet
    from schema.api import CustomerIn, LineIn, QuoteIn, SaleIn

    rng = random.Random(seed)
    products = catalogue()
    weights = [1 / (k + 1) for k in range(len(products))]
    shop = Outlet(db)
    shop.db.conn.execute("PRAGMA synchronous=OFF")  # test data: no fsync per sale
    try:
        cards = list(cards or [])
        for i in range(customers):
            doc = customer_service.register(shop, CustomerIn(
                kind="person", given_name=f"G{seed}x{i}", surname=f"S{outlet_id}",
                category=rng.choice("AABC")))
            cards.append(doc["card_number"])
        for i in range(sales):
            basket = [LineIn(sku=p["sku"], name=p["name"], qty=rng.choice((1, 1, 1, 2, 3)),
                             unit_price=p["unit_price"])
                      for p in rng.choices(products, weights, k=lines)]
            card = rng.choice(cards)
            quote = sale_service.quote(shop, QuoteIn(card=card, lines=basket))
            pay = [{"mode": rng.choice(("cash", "card", "card")), "amount": quote["total_net"]}]
            sale_service.sell(shop, SaleIn(card=card, lines=basket, payments=pay),
                              f"{outlet_id}-{uuid.uuid4()}")
        return cards
    finally:
        shop.close()


# --- the modem transport where the conformance suite wants a Transport --------------------
NOBODY = "5550199"  # a number no modem answers: rings until S7 runs out (NO ANSWER)
_free_lock = threading.Lock()
_in_use: set[str] = set()


class LazyModemLink:
    """`sync.transport.Transport` over one dial-up call, dialled at the first exchange.

    The conformance suite makes transports from (url, token) and calls hello/push/pull on
    them; a modem transport is a call, so it is opened (dial, CONNECT, auth) on first use
    and hung up at `close`. HQ's URL dials HQ's number; any other dials `NOBODY`. A call
    that cannot be made (NO ANSWER, BUSY...) is `LinkDown`, as an unreachable HQ is on the
    router link; HQ's refusals (an unknown token at auth) keep their codes.
    """

    def __init__(self, sim: LineSimProcess, hq_url: str, url: str, token: str) -> None:
        self.sim = sim
        self.number = HQ_NUMBER if url == hq_url else NOBODY
        self.token = token
        self.port: str | None = None
        self.link: Any = None

    def _open(self) -> Any:
        from sync.hayes import ModemError
        from sync.modem import ModemSettings, ModemTransport
        from sync.transport import LinkDown

        if self.link is not None:
            return self.link
        with _free_lock:
            self.port = next(p for p in self.sim.outlet_paths() if p not in _in_use)
            _in_use.add(self.port)
        link = ModemTransport(ModemSettings(self.port, self.number, INIT, GUARD_S,
                                            dial_timeout_s=2.0), self.token)
        try:
            link.open()
        except ModemError as exc:
            self._free()
            raise LinkDown(f"no call to HQ: {exc}") from exc
        except BaseException:
            link.close()
            self._free()
            raise
        self.link = link
        return link

    def _free(self) -> None:
        with _free_lock:
            _in_use.discard(self.port or "")
        self.port = None

    def hello(self) -> Any:
        return self._open().hello()

    def push(self, request: Any) -> Any:
        return self._open().push(request)

    def pull(self, cursor: int, limit: int, wait: float) -> Any:
        return self._open().pull(cursor, limit, wait)

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None
            self._free()


# --- a chain on modems --------------------------------------------------------------------
class ModemRig:
    """The simulator, HQ on a modem bank, and outlet agents on modems (all processes).

    `outlets`: modem outlets, each on its own modem o1, o2...; `extra`: modems the test
    dials from itself (e.g. to hold HQ's lines).
    """

    def __init__(self, root: Path, outlets: list[str], lines: int = 2,
                 extra: tuple[str, ...] = (), speed_bps: int = 33_600,
                 schedules: dict[str, str] | None = None, spare_outlets: int = 0) -> None:
        self.root = root
        self.sim = LineSimProcess.bank(root, lines=lines,
                                       outlets=len(outlets) + spare_outlets, extra=extra,
                                       speed_bps=speed_bps)
        self.outlet_ids = outlets
        self.schedules = schedules or {}
        self.hq: ModemHQ | None = None
        self.outlets: dict[str, ModemOutlet] = {}
        self.others: list[Any] = []

    def start(self) -> ModemRig:
        self.sim.start()
        self.hq = ModemHQ(self.root / "hq.db", self.sim.hq_paths())
        for outlet_id in self.outlet_ids:
            self.hq.outlet_add(outlet_id)
        _ = self.hq.admin_token
        self.hq.spawn()
        paths = self.sim.outlet_paths()
        for i, outlet_id in enumerate(self.outlet_ids):
            self.outlets[outlet_id] = ModemOutlet(
                self.root / f"{outlet_id}.db", outlet_id, paths[i], self.hq.tokens[outlet_id],
                schedule=self.schedules.get(outlet_id, NEVER))
        for agent in self.outlets.values():
            agent.spawn()
        self.hq.wait_ready()
        for agent in self.outlets.values():
            agent.wait_ready()
        return self

    def sync_all(self, outlet_ids: list[str] | None = None,
                 timeout: float = 180) -> dict[str, subprocess.CompletedProcess[str]]:
        """`loyalty sync` at these outlets at the same time; their results by outlet."""
        done: dict[str, subprocess.CompletedProcess[str]] = {}
        jobs = [threading.Thread(target=lambda o=o: done.__setitem__(
            o, self.outlets[o].sync(timeout))) for o in (outlet_ids or self.outlet_ids)]
        for job in jobs:
            job.start()
        for job in jobs:
            job.join()
        return done

    def synced_all(self, outlet_ids: list[str] | None = None) -> None:
        for outlet_id, done in self.sync_all(outlet_ids).items():
            assert done.returncode == 0, f"loyalty sync {outlet_id}: {done.returncode}\n" \
                f"{done.stdout}\n{done.stderr}"

    def processes(self) -> list[Any]:
        return [p for p in [self.hq, *self.outlets.values(), *self.others] if p is not None]

    def close(self) -> None:
        for process in self.processes():
            process.kill()
        self.sim.stop()

    def logs(self) -> str:
        return f"{logs(self.processes())}\n--- linesim ---\n{self.sim.stderr()}"
