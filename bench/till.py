#!/usr/bin/env python3
"""Till latency on a big replica: identify + quote + sale over HTTP, in process, and the floor.

What it does (issue 2, bench/README.md):

1. Builds (or reuses, from `--dir`) an outlet replica with N customers (1,000,000; `--quick`
   20,000), each with a club card and an empty `customer_tally` row. The schema and default
   master data come from `agent.outlet.Outlet`; the customers are bulk-inserted with raw
   sqlite3 (synchronous=OFF only while building). The built file is kept as a cache; each
   run works on fresh copies of it, so runs do not drift as sales pile up.
2. HTTP: starts the real agent (`loyalty agent serve`) on a copy and, with one kept-alive
   `requests.Session` per till, runs a stream of random customers, each: POST /v1/identify,
   POST /v1/quotes (10 lines), POST /v1/sales by quote_id with an Idempotency-Key; then,
   untimed in the steps, a no-op GET (an async endpoint) as the transport+framework floor.
3. Domain: the same stream in process through `agent.identification.identify`,
   `agent.sales.quote` and `agent.sales.sell` (schema.api bodies built before the clock
   starts) on that copy, after the agent has stopped.
4. Floor: interleaved with (3), iteration by iteration so noise hits both, plain sqlite3
   on a second copy of the same file (WAL, synchronous=FULL, BEGIN IMMEDIATE ... COMMIT)
   writing the same rows as a sale: the card lookup and customer read, 1 sales row, 10
   sale_lines, 2 payments, 3 ledger rows, the customer_tally upsert, 10 customer_items
   upserts and 1 outbox row, with the outbox event and the stored response exactly as long
   as the domain layer's (copied from a real sale made in the warm-up).

Every customer is in category A, B or C and pays 1.00 on internal credit and the rest by
bank card, so every sale writes three ledger rows (points, discount, credit charge) and
runs the credit-limit check: the heaviest common sale.

Last line: `till: p99_ms=... floor_ratio=...` where p99_ms is identify+quote+sale over HTTP
(client-side wall time of the three requests) and floor_ratio = domain commit p50 / floor
p50 (the p50 ratio is the fair one: a p99 on this noisy 2-vCPU disk is dominated by
fsync/checkpoint stalls that hit whichever transaction is running; floor_ratio_p99 is
printed too).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent import cardnumber, identification, returns, sales
from agent.outlet import Outlet
from schema.api import QuoteIn, ReturnIn, SaleIn
from schema.database import file_size
from schema.events import new_id

OUTLET = "BENCH"
FIRST_RANGE = 9000  # the replica's customers carry cards of other outlets' ranges
CATEGORIES = ("A", "B", "C")  # D has no internal credit (credit_limit 0)
CREDIT_PART = 100  # minor units paid on internal credit in every sale
LINES = 10
SKUS = 200
DIVISIONS = ("wine", "food", "drinks", "deli", "bakery", None)
GIVEN = ("Ana", "Marko", "Ivana", "Luka", "Petra", "Josip", "Maja", "Ivan", "Sara", "Tomislav")
SURNAMES = ("Horvat", "Kovačević", "Babić", "Marić", "Jurić", "Novak", "Knežević", "Vuković",
            "Marković", "Petrović", "Matić", "Tomić", "Pavlović", "Božić", "Blažević")
BUILD_BATCH = 50_000
RETURNED = 3  # lines of each sale given back whole, right after it (domain and floor)


# --- statistics -----------------------------------------------------------------------------


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ms(ns: float) -> float:
    return ns / 1e6


# --- the replica ----------------------------------------------------------------------------


def card_of(i: int) -> str:
    """Card number of customer i (0-based): ranges of 999,999 serials from FIRST_RANGE."""
    return cardnumber.make(FIRST_RANGE + i // cardnumber.MAX_SERIAL, i % cardnumber.MAX_SERIAL + 1)


def cached_size(path: Path) -> int | None:
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'bench_customers'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return None if row is None else int(row[0])


def build_replica(path: Path, n: int, say: Any) -> float:
    """Builds the replica at `path` with n customers; returns the seconds it took (0 if reused)."""
    if cached_size(path) == n:
        say(f"reusing {path} ({n:,} customers)")
        return 0.0
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    Outlet(path, OUTLET).close()  # schema, migrations and default master data
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")  # only while building: nothing here is a sale
    conn.execute("PRAGMA cache_size=-262144")  # 256 MiB
    rng = random.Random(1)
    now = "2024-01-01T00:00:00.000000Z"
    try:
        from tqdm import tqdm
        bar = tqdm(total=n, unit="customer", unit_scale=True, disable=not sys.stderr.isatty(),
                   desc="building replica")
    except ImportError:  # pragma: no cover - tqdm is a dependency of the package
        bar = None
    for start in range(0, n, BUILD_BATCH):
        stop = min(n, start + BUILD_BATCH)
        customers, idents, tallies = [], [], []
        for i in range(start, stop):
            cid = new_id()
            given, surname = rng.choice(GIVEN), rng.choice(SURNAMES)
            customers.append((cid, "person", given, surname, rng.choice(CATEGORIES), now,
                              f"{surname} {given}".lower(), "HQ"))
            idents.append(("card", card_of(i), cid, "active"))
            tallies.append((cid,))
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO customers (customer_id, kind, given_name, surname, category, created_at,"
            " search_name, origin_outlet) VALUES (?,?,?,?,?,?,?,?)", customers)
        conn.executemany(
            "INSERT INTO identifiers (kind, value, customer_id, status) VALUES (?,?,?,?)", idents)
        conn.executemany("INSERT INTO customer_tally (customer_id) VALUES (?)", tallies)
        conn.execute("COMMIT")
        if bar is not None:
            bar.update(stop - start)
    if bar is not None:
        bar.close()
    conn.execute("INSERT INTO meta (key, value) VALUES ('bench_customers', ?)", (str(n),))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    took = time.perf_counter() - started
    say(f"built {path} with {n:,} customers in {took:.1f} s")
    return took


def fresh_copy(src: Path, dst: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{dst}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(src, dst)
    with open(dst, "rb+") as f:  # so the copy's dirty pages do not flush during a measurement
        os.fsync(f.fileno())


# --- the stream -----------------------------------------------------------------------------


def catalogue(rng: random.Random) -> list[dict[str, Any]]:
    return [{"sku": f"SKU{k:05d}", "name": f"Item {k} {rng.choice(('red', 'blue', 'big'))}",
             "unit_price": rng.randrange(150, 5000), "division": rng.choice(DIVISIONS)}
            for k in range(SKUS)]


def stream(n_customers: int, iterations: int, seed: int) -> list[tuple[str, list[dict[str, Any]]]]:
    """(card, basket of LINES distinct items) for each iteration."""
    rng = random.Random(seed)
    items = catalogue(random.Random(0))
    out = []
    for _ in range(iterations):
        basket = [{**item, "qty": rng.randrange(1, 4)} for item in rng.sample(items, LINES)]
        out.append((card_of(rng.randrange(n_customers)), basket))
    return out


def payments(total_net: int) -> list[dict[str, Any]]:
    return [{"mode": "credit", "amount": CREDIT_PART},
            {"mode": "card", "amount": total_net - CREDIT_PART}]


# --- 1. over HTTP ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Agent:
    """The real agent process on `db`."""

    def __init__(self, db: Path, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 - closed by stop()
        exe = ROOT / ".venv" / "bin" / "loyalty"
        cmd = [str(exe) if exe.exists() else shutil.which("loyalty") or "loyalty",
               "agent", "serve", "--db", str(db), "--outlet", OUTLET, "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        import requests

        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the agent exited with {self.proc.returncode}: see {log_path}")
            try:
                if requests.get(self.url + "/v1/status", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the agent did not answer /v1/status: see {log_path}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def http_till(url: str, till: str, work: list[tuple[str, list[dict[str, Any]]]], warmup: int,
              out: dict[str, list[int]], session: Any = None) -> None:
    import requests

    own = session is None
    session = session or requests.Session()
    for k, (card, basket) in enumerate(work):
        t0 = time.perf_counter_ns()
        r = session.post(url + "/v1/identify", json={"kind": "card", "value": card, "till_id": till})
        t1 = time.perf_counter_ns()
        if r.status_code != 200:
            raise RuntimeError(f"identify: {r.status_code} {r.text}")
        r = session.post(url + "/v1/quotes", json={"card": card, "lines": basket, "till_id": till})
        t2 = time.perf_counter_ns()
        if r.status_code != 201:
            raise RuntimeError(f"quote: {r.status_code} {r.text}")
        q = r.json()
        r = session.post(url + "/v1/sales",
                         json={"quote_id": q["quote_id"], "payments": payments(q["total_net"]),
                               "till_id": till},
                         headers={"Idempotency-Key": str(uuid.uuid4())})
        t3 = time.perf_counter_ns()
        if r.status_code != 201:
            raise RuntimeError(f"sale: {r.status_code} {r.text}")
        # The transport + framework floor in the same run: an async endpoint that does nothing.
        t4 = time.perf_counter_ns()
        r = session.get(url + f"/v1/tills/{till}-idle/identification", params={"wait": 0})
        t5 = time.perf_counter_ns()
        if r.status_code != 204:
            raise RuntimeError(f"no-op: {r.status_code} {r.text}")
        if k < warmup:
            continue
        out["noop"].append(t5 - t4)
        out["identify"].append(t1 - t0)
        out["quote"].append(t2 - t1)
        out["sale"].append(t3 - t2)
        out["total"].append(t3 - t0)
    if own:
        session.close()


def run_http(db: Path, work: list[tuple[str, list[dict[str, Any]]]], tills: int, warmup: int,
             log_path: Path) -> tuple[dict[str, list[int]], float]:
    agent = Agent(db, log_path)
    try:
        results: list[dict[str, list[int]]] = [
            {"identify": [], "quote": [], "sale": [], "total": [], "noop": []} for _ in range(tills)]
        shares = [work[t::tills] for t in range(tills)]
        # Warm-up, untimed for sales/s: each till's first `warmup` iterations.
        errors: list[Exception] = []

        def run(t: int) -> None:
            try:
                http_till(agent.url, f"T{t + 1}", shares[t], warmup, results[t])
            except Exception as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

        started = time.perf_counter()  # sales/s: every sale / wall time (no-op calls included)
        threads = [threading.Thread(target=run, args=(t,)) for t in range(tills)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - started
        if errors:
            raise errors[0]
    finally:
        agent.stop()
    merged: dict[str, list[int]] = {k: [] for k in results[0]}
    for res in results:
        for k, v in res.items():
            merged[k].extend(v)
    return merged, len(work) / wall


# --- 2 and 3. domain layer and raw floor, interleaved ----------------------------------------


def domain_iteration(outlet: Outlet, card: str, basket: list[dict[str, Any]],
                     out: dict[str, list[int]] | None) -> dict[str, Any]:
    quote_body = QuoteIn.model_validate({"card": card, "lines": basket, "till_id": "T1"})
    t0 = time.perf_counter_ns()
    identification.identify(outlet, "card", card, "T1")
    t1 = time.perf_counter_ns()
    q = sales.quote(outlet, quote_body)
    t2 = time.perf_counter_ns()
    sale_body = SaleIn.model_validate(
        {"quote_id": q["quote_id"], "payments": payments(q["total_net"]), "till_id": "T1"})
    key = str(uuid.uuid4())
    t3 = time.perf_counter_ns()
    answer, fresh = sales.sell(outlet, sale_body, key)
    t4 = time.perf_counter_ns()
    assert fresh
    return_body = ReturnIn.model_validate(
        {"sale_id": answer["sale_id"], "till_id": "T1", "reason": "bench",
         "lines": [{"sku": ln["sku"], "qty": ln["qty"]} for ln in basket[:RETURNED]]})
    key = str(uuid.uuid4())
    t5 = time.perf_counter_ns()
    _, fresh = returns.give_back(outlet, return_body, key)
    t6 = time.perf_counter_ns()
    assert fresh
    if out is not None:
        out["identify"].append(t1 - t0)
        out["quote"].append(t2 - t1)
        out["sale"].append(t4 - t3)
        out["total"].append((t4 - t3) + (t2 - t0))
        out["return"].append(t6 - t5)
    return answer


class Floor:
    """The same rows as a sale, and as a return of RETURNED of its lines, written with plain
    sqlite3 on a copy of the replica (the texts as long as the domain layer's)."""

    TALLY_COLS = ("purchases_total", "purchases_count", "items_count", "points_earned",
                  "discount_total", "paid_card", "paid_credit")

    def __init__(self, path: Path, event_text: str, response_text: str,
                 return_texts: tuple[str, str, str]) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.return_event, self.return_fact, self.return_response = return_texts
        self.last: tuple[str, str, list[tuple[str, str, Any, int, int, int]]] | None = None
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.event_text = event_text
        self.response_text = response_text
        cols = ", ".join(self.TALLY_COLS)
        sets = ", ".join(f"{c} = {c} + excluded.{c}" for c in self.TALLY_COLS)
        self.tally_sql = (
            f"INSERT INTO customer_tally (customer_id, {cols}, last_purchase_at,"
            f" best_purchase_total, best_purchase_id) VALUES (?, {', '.join('?' * len(self.TALLY_COLS))}, ?, ?, ?)"
            f" ON CONFLICT (customer_id) DO UPDATE SET {sets},"
            " last_purchase_at = max(last_purchase_at, excluded.last_purchase_at),"
            " best_purchase_id = CASE WHEN excluded.best_purchase_total > best_purchase_total"
            " THEN excluded.best_purchase_id ELSE best_purchase_id END,"
            " best_purchase_total = max(best_purchase_total, excluded.best_purchase_total)")

    def sale(self, card: str, basket: list[dict[str, Any]]) -> int:
        """One sale transaction; returns its duration in ns (BEGIN to COMMIT returned)."""
        lines = [(ln["sku"], ln["name"], ln["division"], ln["qty"], ln["unit_price"],
                  ln["qty"] * ln["unit_price"]) for ln in basket]
        gross = sum(ln[5] for ln in lines)
        discount = gross // 20
        net = gross - discount
        sale_id, event_id = new_id(), new_id()
        at = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        c = self.conn
        t0 = time.perf_counter_ns()
        c.execute("BEGIN IMMEDIATE")
        cid, _status = c.execute("SELECT customer_id, status FROM identifiers"
                                " WHERE kind = 'card' AND value = ?", (card,)).fetchone()
        c.execute("SELECT * FROM customers WHERE customer_id = ?", (cid,)).fetchone()
        seq = c.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox").fetchone()[0]
        c.execute("INSERT INTO outbox (seq, event_id, type, customer_id, at, event)"
                  " VALUES (?, ?, 'sale_recorded', ?, ?, ?)", (seq, event_id, cid, at, self.event_text))
        c.execute("INSERT INTO sales (sale_id, idempotency_key, request_hash, seq, customer_id,"
                  " till_id, at, total_gross, total_discount, total_net, points_earned, response)"
                  " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                  (sale_id, str(uuid.uuid4()), "0" * 64, seq, cid, "T1", at, gross, discount, net,
                   net // 100, self.response_text))
        c.executemany("INSERT INTO sale_lines (sale_id, line_no, sku, name, division, qty,"
                      " unit_price, gross, discount, net, actions) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                      [(sale_id, i, sku, name, div, qty, up, g, g // 20, g - g // 20, "[]")
                       for i, (sku, name, div, qty, up, g) in enumerate(lines)])
        c.executemany("INSERT INTO payments (sale_id, mode, amount) VALUES (?, ?, ?)",
                      [(sale_id, "credit", CREDIT_PART), (sale_id, "card", net - CREDIT_PART)])
        c.executemany("INSERT INTO ledger (seq, customer_id, kind, points, amount, at)"
                      " VALUES (?,?,?,?,?,?)",
                      [(seq, cid, "points_earned", net // 100, 0, at),
                       (seq, cid, "discount", 0, discount, at),
                       (seq, cid, "credit_charge", 0, CREDIT_PART, at)])
        c.execute(self.tally_sql, (cid, net, 1, sum(ln[3] for ln in lines), net // 100, discount,
                                   net - CREDIT_PART, CREDIT_PART, at, net, sale_id))
        for sku, name, _div, qty, up, _g in lines:
            c.execute("INSERT INTO customer_items (customer_id, sku, name, qty, max_unit_price)"
                      " VALUES (?, ?, ?, ?, ?) ON CONFLICT (customer_id, sku) DO UPDATE SET"
                      " qty = qty + excluded.qty, max_unit_price = max(max_unit_price,"
                      " excluded.max_unit_price)", (cid, sku, name, qty, up))
        c.execute("COMMIT")
        took = time.perf_counter_ns() - t0
        self.last = (sale_id, cid, lines)
        return took

    def give_back(self) -> int:
        """A return of the first RETURNED lines of the last sale, as the agent writes it on
        this standalone replica (agent/returns.py): the replay check, the sale, the
        customer, earlier returns, the outbox fact, the tally and item upserts, the
        `returns` row, its lines, 2 ledger rows, then the customer restated (what the
        customer still holds read back, the tally rows deleted and written again).
        Returns its duration in ns (BEGIN to COMMIT returned)."""
        assert self.last is not None
        sale_id, cid, lines = self.last
        back = lines[:RETURNED]
        gross = sum(ln[5] for ln in back)
        discount = sum(ln[5] // 20 for ln in back)
        value = gross - discount
        credit = min(CREDIT_PART, value)
        points = value // 100
        return_id, event_id, key = new_id(), new_id(), str(uuid.uuid4())
        at = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        c = self.conn
        t0 = time.perf_counter_ns()
        c.execute("BEGIN IMMEDIATE")
        c.execute("SELECT request_hash, response FROM returns WHERE idempotency_key = ?",
                  (key,)).fetchone()
        c.execute("SELECT * FROM sales WHERE sale_id = ?", (sale_id,)).fetchone()
        c.execute("SELECT * FROM sale_lines WHERE sale_id = ? ORDER BY line_no",
                  (sale_id,)).fetchall()
        c.execute("SELECT mode, amount FROM payments WHERE sale_id = ? ORDER BY rowid",
                  (sale_id,)).fetchall()
        c.execute("SELECT * FROM customers WHERE customer_id = ?", (cid,)).fetchone()
        c.execute("SELECT fact FROM returns WHERE sale_id = ? ORDER BY seq", (sale_id,)).fetchall()
        c.execute("SELECT points_earned - points_used FROM customer_tally WHERE customer_id = ?",
                  (cid,)).fetchone()
        seq = c.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox").fetchone()[0]
        c.execute("INSERT INTO outbox (seq, event_id, type, customer_id, at, event)"
                  " VALUES (?, ?, 'return_recorded', ?, ?, ?)",
                  (seq, event_id, cid, at, self.return_event))
        c.execute(self.tally_sql, (cid, -value, 0, -sum(ln[3] for ln in back), -points,
                                   -discount, -(value - credit), -credit, "", 0, ""))
        for sku, name, _div, qty, up, _g in back:
            c.execute("INSERT INTO customer_items (customer_id, sku, name, qty, max_unit_price)"
                      " VALUES (?, ?, ?, ?, ?) ON CONFLICT (customer_id, sku) DO UPDATE SET"
                      " qty = qty + excluded.qty, max_unit_price = max(max_unit_price,"
                      " excluded.max_unit_price)", (cid, sku, name, -qty, up))
        c.execute("SELECT points_earned - points_used FROM customer_tally WHERE customer_id = ?",
                  (cid,)).fetchone()
        c.execute("INSERT INTO returns (return_id, idempotency_key, request_hash, seq, sale_id,"
                  " customer_id, kind, till_id, reason, receipt, home, at, gross, discount,"
                  " value, refunded, refund_cash, refund_card, refund_credit, withheld,"
                  " points_reversed, points_withheld, closes_sale, approved_by, fact, response)"
                  " VALUES (?,?,?,?,?,?,'return','T1','bench',?,1,?,?,?,?,?,0,?,?,0,?,0,0,NULL,?,?)",
                  (return_id, key, "0" * 64, seq, sale_id, cid, sale_id[:16], at, gross, discount,
                   value, value, value - credit, credit, points, self.return_fact,
                   self.return_response))
        c.executemany("INSERT INTO return_lines (return_id, line_no, sku, name, qty, unit_price,"
                      " gross, discount, net) VALUES (?,?,?,?,?,?,?,?,?)",
                      [(return_id, i, sku, name, qty, up, g, g // 20, g - g // 20)
                       for i, (sku, name, _div, qty, up, g) in enumerate(back)])
        c.executemany("INSERT INTO ledger (seq, customer_id, kind, points, amount, at)"
                      " VALUES (?,?,?,?,?,?)",
                      [(seq, cid, "points_reversed", -points, 0, at),
                       (seq, cid, "refund", 0, -value, at)])
        # the customer restated: what they still hold, then their tally rows written again
        c.execute("SELECT s.sale_id, s.at, s.total_net, l.sku, l.name, l.unit_price, l.qty"
                  " FROM sales s JOIN sale_lines l ON l.sale_id = s.sale_id"
                  " WHERE s.customer_id = ? ORDER BY s.sale_id, l.line_no", (cid,)).fetchall()
        c.execute("SELECT sale_id, SUM(value) FROM returns WHERE customer_id = ?"
                  " GROUP BY sale_id", (cid,)).fetchall()
        c.execute("SELECT r.sale_id, l.line_no, l.sku, l.qty FROM returns r JOIN return_lines l"
                  " ON l.return_id = r.return_id WHERE r.customer_id = ?", (cid,)).fetchall()
        tally = c.execute("SELECT * FROM customer_tally WHERE customer_id = ?",
                          (cid,)).fetchone()
        items = c.execute("SELECT sku, name, qty, max_unit_price FROM customer_items"
                          " WHERE customer_id = ?", (cid,)).fetchall()
        c.execute("SELECT sku, qty FROM customer_gifts WHERE customer_id = ?", (cid,)).fetchall()
        for table in ("customer_tally", "customer_items", "customer_gifts"):
            c.execute(f"DELETE FROM {table} WHERE customer_id = ?", (cid,))
        names = list(tally.keys())
        c.execute(f"INSERT INTO customer_tally ({', '.join(names)})"
                  f" VALUES ({', '.join('?' * len(names))})", tuple(tally))
        c.executemany("INSERT INTO customer_items (customer_id, sku, name, qty, max_unit_price)"
                      " VALUES (?, ?, ?, ?, ?)", [(cid, *tuple(r)) for r in items if r["qty"]])
        c.execute("COMMIT")
        return time.perf_counter_ns() - t0

    def close(self) -> None:
        self.conn.close()


def run_domain_and_floor(db: Path, floor_db: Path, work: list[tuple[str, list[dict[str, Any]]]],
                         warmup: int, seed: int, profile: bool
                         ) -> tuple[dict[str, list[int]], dict[str, list[int]], dict[str, int],
                                    str | None]:
    outlet = Outlet(db, OUTLET)
    try:
        # Warm-up (untimed), also giving the real sizes the floor must write.
        for card, basket in work[:warmup]:
            domain_iteration(outlet, card, basket, None)
        with outlet.db.read() as conn:
            event_text, response_text = conn.execute(
                "SELECT o.event, s.response FROM sales s JOIN outbox o ON o.seq = s.seq"
                " ORDER BY s.seq DESC LIMIT 1").fetchone()
            return_texts = conn.execute(
                "SELECT o.event, r.fact, r.response FROM returns r JOIN outbox o ON o.seq = r.seq"
                " ORDER BY r.seq DESC LIMIT 1").fetchone()
        sizes = {"event_bytes": len(event_text.encode()), "response_bytes": len(response_text.encode()),
                 "return_event_bytes": len(return_texts[0].encode()),
                 "return_response_bytes": len(return_texts[2].encode())}
        floor = Floor(floor_db, event_text, response_text, tuple(return_texts))
        for card, basket in work[:warmup]:
            floor.sale(card, basket)
            floor.give_back()
        out: dict[str, list[int]] = {"identify": [], "quote": [], "sale": [], "total": [],
                                     "return": []}
        floor_ns: dict[str, list[int]] = {"sale": [], "return": []}

        def on_floor(card: str, basket: list[dict[str, Any]]) -> None:
            floor_ns["sale"].append(floor.sale(card, basket))
            floor_ns["return"].append(floor.give_back())

        rng = random.Random(seed + 1)
        profiler = cProfile.Profile() if profile else None
        for card, basket in work[warmup:]:
            if rng.random() < 0.5:  # alternate the order so neither always follows the other
                on_floor(card, basket)
                if profiler:
                    profiler.enable()
                domain_iteration(outlet, card, basket, out)
                if profiler:
                    profiler.disable()
            else:
                if profiler:
                    profiler.enable()
                domain_iteration(outlet, card, basket, out)
                if profiler:
                    profiler.disable()
                on_floor(card, basket)
        floor.close()
    finally:
        outlet.close()
    report = None
    if profiler:
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(25)
        report = buf.getvalue()
    return out, floor_ns, sizes, report


# --- main -----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="20,000 customers, 300 iterations")
    ap.add_argument("--customers", type=int, help="customers in the replica [1,000,000]")
    ap.add_argument("--iterations", type=int, help="identify+quote+sale iterations [2,000]")
    ap.add_argument("--warmup", type=int, default=20, help="untimed iterations first [20]")
    ap.add_argument("--tills", type=int, default=1, help="concurrent HTTP tills [1]")
    ap.add_argument("--dir", help="where to build and cache the replica [a temp dir]")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--keep", action="store_true", help="keep the working copies")
    ap.add_argument("--profile", action="store_true",
                    help="cProfile the in-process stream and print the top functions")
    args = ap.parse_args()
    n = args.customers or (20_000 if args.quick else 1_000_000)
    iterations = args.iterations or (300 if args.quick else 2_000)
    say = (lambda msg: print(msg, file=sys.stderr, flush=True))

    load_before = os.getloadavg()[0]
    tmp = None
    if args.dir:
        where = Path(args.dir)
        where.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-till-")
        where = Path(tmp.name)
    base = where / f"till-replica-{n}.db"
    run_db, floor_db = where / "till-run.db", where / "till-floor.db"
    try:
        build_s = build_replica(base, n, say)
        base_bytes = file_size(base)
        work = stream(n, iterations + args.warmup * args.tills, args.seed)

        say(f"HTTP: {iterations} x identify+quote+sale, {args.tills} till(s)")
        fresh_copy(base, run_db)
        http, sales_per_s = run_http(run_db, work, args.tills, args.warmup, where / "agent.log")

        say(f"domain + floor: {iterations} iterations, interleaved")
        fresh_copy(base, run_db)
        fresh_copy(base, floor_db)
        domain_work = stream(n, iterations + args.warmup, args.seed + 7)
        dom, floor_ns, sizes, report = run_domain_and_floor(
            run_db, floor_db, domain_work, args.warmup, args.seed, args.profile)
        domain_wall_s = sum(dom["total"]) / 1e9
    finally:
        if not args.keep:
            for p in (run_db, floor_db):
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{p}{suffix}").unlink(missing_ok=True)
        if tmp is not None:
            tmp.cleanup()

    def row(name: str, values: list[int]) -> str:
        return (f"{name:<34} {ms(pct(values, 50)):>9.3f} {ms(pct(values, 99)):>9.3f}"
                f" {ms(max(values)):>9.3f}")

    print(f"replica: {n:,} customers, {base_bytes / 1e6:.1f} MB on disk"
          f" ({base_bytes / n:.0f} B/customer){'' if build_s == 0 else f', built in {build_s:.1f} s'}")
    print(f"machine: {os.cpu_count()} CPUs, load average {load_before:.2f} before the run,"
          f" {os.getloadavg()[0]:.2f} after (other processes' work lands in the tails)")
    print(f"stream: {iterations} iterations x {LINES} lines, {args.tills} HTTP till(s);"
          f" sale event {sizes['event_bytes']} B, stored response {sizes['response_bytes']} B;"
          f" a return of {RETURNED} lines after each in-process sale: event"
          f" {sizes['return_event_bytes']} B, stored response {sizes['return_response_bytes']} B")
    print(f"{'step (ms)':<34} {'p50':>9} {'p99':>9} {'max':>9}")
    for step in ("identify", "quote", "sale", "total"):
        print(row(f"HTTP {step if step != 'total' else 'identify+quote+sale'}", http[step]))
    print(row("HTTP no-op round trip (floor)", http["noop"]))
    for step in ("identify", "quote", "sale", "total"):
        label = {"sale": "sell (the commit)", "total": "identify+quote+sell"}.get(step, step)
        print(row(f"domain {label}", dom[step]))
    print(row("raw sqlite3 floor (same rows)", floor_ns["sale"]))
    print(row("domain give_back (the return)", dom["return"]))
    print(row("raw sqlite3 floor (return's rows)", floor_ns["return"]))
    domain_commit_p50, domain_commit_p99 = ms(pct(dom["sale"], 50)), ms(pct(dom["sale"], 99))
    floor_p50, floor_p99 = ms(pct(floor_ns["sale"], 50)), ms(pct(floor_ns["sale"], 99))
    return_p50, return_p99 = ms(pct(dom["return"], 50)), ms(pct(dom["return"], 99))
    return_floor_p50 = ms(pct(floor_ns["return"], 50))
    return_floor_p99 = ms(pct(floor_ns["return"], 99))
    print(f"sales/s over HTTP: {sales_per_s:.0f}; in process: {iterations / domain_wall_s:.0f}")
    print(f"goals: HTTP p99 {ms(pct(http['total'], 99)):.2f} ms (< 15 ms:"
          f" {'met' if ms(pct(http['total'], 99)) < 15 else 'MISSED'}); domain commit / floor at"
          f" p50 {domain_commit_p50 / floor_p50:.2f}x (<= 3x:"
          f" {'met' if domain_commit_p50 / floor_p50 <= 3 else 'MISSED'}),"
          f" at p99 {domain_commit_p99 / floor_p99:.2f}x; return / its floor at p50"
          f" {return_p50 / return_floor_p50:.2f}x (<= 3x:"
          f" {'met' if return_p50 / return_floor_p50 <= 3 else 'MISSED'}),"
          f" at p99 {return_p99 / return_floor_p99:.2f}x")
    if report:
        print(report)
    # floor_ratio uses the p50s (domain commit p50 / floor p50); floor_ratio_p99 the p99s.
    print(f"till: p99_ms={ms(pct(http['total'], 99)):.2f} p50_ms={ms(pct(http['total'], 50)):.2f}"
          f" sales_per_s={sales_per_s:.0f} domain_commit_p50_ms={domain_commit_p50:.3f}"
          f" domain_commit_p99_ms={domain_commit_p99:.3f} floor_p50_ms={floor_p50:.3f}"
          f" floor_p99_ms={floor_p99:.3f} floor_ratio={domain_commit_p50 / floor_p50:.2f}"
          f" floor_ratio_p99={domain_commit_p99 / floor_p99:.2f}"
          f" return_p50_ms={return_p50:.3f} return_p99_ms={return_p99:.3f}"
          f" return_floor_p50_ms={return_floor_p50:.3f} return_floor_p99_ms={return_floor_p99:.3f}"
          f" return_floor_ratio={return_p50 / return_floor_p50:.2f}"
          f" return_floor_ratio_p99={return_p99 / return_floor_p99:.2f}"
          f" customers={n} iterations={iterations}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
