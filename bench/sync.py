#!/usr/bin/env python3
"""Sync between outlets and HQ: propagation and ban latency, HQ ingest, bootstrap of an outlet.

What it does (issue 3, bench/README.md):

1. Propagation: HQ (`loyalty hq serve`) and agents A and B (`loyalty agent serve --hq`) as
   real processes on loopback. Repeatedly: issue a card at A (POST /v1/customers), then poll
   B's POST /v1/identify until it answers 200. The time runs from just before A's request
   to B's first 200 (conservative: includes issuing the card). Then for each of those cards:
   ban the customer at HQ (POST /v1/admin/customers/{id}/ban, admin token) and poll B until
   it refuses with `card_banned`. Goal: p99 under 1 s for both (the old system promised 10 s).
2. HQ ingest: a fresh HQ database with some customers and 20 registered outlets; 20 threads,
   each with its own outlet token and kept-alive `requests.Session`, push pre-built batches
   (500 events each, serialised before the clock starts) of realistic `sale.recorded`
   events (10 lines each, for existing customers) to POST /v1/sync/push, all at once.
   ingest_eps = events applied at HQ / wall time from the first push to the last answer.
   Goal: 5,000 events/s. Beside it, in the same run, the raw floor: plain sqlite3 (WAL,
   synchronous=FULL) on a copy of the same database inserting the same event rows into
   HQ's `events` table (its UNIQUE indexes are the dedupe), plus the outlet's `last_seq`
   read and update, one transaction per batch of 500. A second, "projection" floor also
   writes what HQ derives from each sale (sales, sale_lines, tally and item upserts, the
   change-log bump) to show how much of the gap is SQL and how much is Python; it is run
   before and after HQ's run (the mean is the floor: the machine's load moves), and
   ingest_projection_ratio = ingest_eps / that floor (goal: >= 0.9; HQ commits pushes
   that wait together as one group, docs/sync.md "Group commit").
3. Bootstrap: an HQ database with N customers (1,000,000; `--quick` 20,000) in HQ's own
   schema, built with raw sqlite3 (customers + a club card + a tally row + a `changes` row
   each; schema and master data first through `hq.chain.Chain`). Cached in `--dir` like
   bench/till.py does. A new outlet is registered on a fresh copy; `loyalty hq snapshot`
   (a process of its own) builds HQ's snapshot, HQ is served on the copy, and
   `loyalty sync --db NEW.db` on an empty outlet database (a real process, the real
   RouterTransport and OutletReplica) downloads, checks and swaps in the snapshot and pulls
   the rest; bootstrap_s is the wall time of that command (goal: <= 20 s for 1M). The
   baseline in the same run: the same command page by page from an HQ offering no
   snapshot (bootstrap_pages_s). The same is done at a tenth of N (`--small-customers`)
   without the baseline, for the per-customer cost at two sizes (goal: flat) and the peak
   RSS of the three processes (building, HQ serving, the outlet; goal: flat):
   bootstrap_peak_rss_mb is the largest of the three at full size.
4. Sales during a pull (after the ingest, before the bootstrap): an outlet bootstrapped
   from a chain of N customers (100,000; `--quick` 10,000) runs as a real agent
   (`loyalty agent serve --hq`); one till sells over HTTP, one sale after another (a quote,
   then POST /v1/sales, whose round trip is timed), while the agent applies a re-pull of
   all N customers (HQ re-bumps each in its change log, as a mass category change does).
   sale_p99_during_pull_ms beside sale_p99_without_pull_ms, the same stream before and
   after the pull (goal: <= 15 ms; docs/sync.md "Sliced pull application").
5. `--store postgres` (issue 15): the same ingest (same customers, moved in with `loyalty hq
   migrate`'s code, same outlets and batches) on a throwaway PostgreSQL cluster the bench
   starts and removes itself (tests/testkit/postgres.py: a unix socket, fsync off like the
   tests' clusters), served by 1 and then 4 `loyalty hq serve` processes (the 20 outlets
   spread round-robin over them), and propagation with A pushing to one HQ process and B
   pulling from another. Extra figures: sqlite_ingest_eps= (= ingest_eps), pg_ingest_eps=,
   pg_4proc_ingest_eps=, pg_propagation_p99_s=. Goal: 4 processes >= the SQLite HQ.

Last line:
`sync: propagation_p50_s= propagation_p99_s= ban_p50_s= ban_p99_s= ingest_eps=
ingest_floor_eps= ingest_floor_ratio= bootstrap_s= bootstrap_customers=` (+ a few extras:
bootstrap_pages_s=, bootstrap_us_per_customer=, bootstrap_small_us_per_customer=,
bootstrap_peak_rss_mb=, ingest_projection_ratio=, sale_p99_during_pull_ms=,
sale_p99_without_pull_ms=, ...),
where ingest_floor_ratio = ingest_eps / ingest_floor_eps (1.0 would be HQ as fast as bare
sqlite3 inserting the same rows; lower is slower).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import os
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
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent import cardnumber
from agent.programme import default_documents
from hq import credentials
from hq.chain import Chain
from schema.database import file_size
from schema.events import Payment, SaleLine, SaleRecorded, make_event, new_id
from schema.sync import PushRequest

EXE = ROOT / ".venv" / "bin" / "loyalty"
LOYALTY = str(EXE) if EXE.exists() else shutil.which("loyalty") or "loyalty"
FIRST_RANGE = 9000  # bench customers carry cards of ranges no registered outlet uses
CATEGORIES = ("A", "B", "C", "D")
GIVEN = ("Ana", "Marko", "Ivana", "Luka", "Petra", "Josip", "Maja", "Ivan", "Sara", "Tomislav")
SURNAMES = ("Horvat", "Kovačević", "Babić", "Marić", "Jurić", "Novak", "Knežević", "Vuković",
            "Marković", "Petrović", "Matić", "Tomić", "Pavlović", "Božić", "Blažević")
DIVISIONS = ("wine", "food", "drinks", "deli", "bakery", None)
BUILD_BATCH = 50_000
OUTLETS = 20
PUSH_BATCH = 500
LINES = 10
POLL_S = 0.002  # pause between two polls of B: the resolution of the latency figures
GIVE_UP_S = 15.0  # a card/ban not seen at B after this long counts as this long (and a miss)
NOW = "2024-01-01T00:00:00.000000Z"
START_S = 2.0  # a `loyalty sync` process's start, hello and last page: scaled goals add it


# --- statistics -----------------------------------------------------------------------------


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A real `loyalty ...` server process, answering `probe` (GET) before we go on."""

    def __init__(self, args: list[str], port: int, probe: str, log_path: Path,
                 headers: dict[str, str] | None = None) -> None:
        import requests

        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.log: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen([LOYALTY, *args, "--port", str(port)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{args[:2]} exited with {self.proc.returncode}: see {log_path}")
            try:
                if requests.get(self.url + probe, headers=headers, timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{args[:2]} did not answer {probe}: see {log_path}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def hq_proc(db: Path | str, where: Path, name: str, token: str) -> Proc:
    return Proc(["hq", "serve", "--db", str(db)], free_port(), "/v1/sync/hello",
                where / f"{name}.log", {"Authorization": f"Bearer {token}"})


def agent_proc(db: Path, outlet: str, hq_url: str, token: str, where: Path) -> Proc:
    return Proc(["agent", "serve", "--db", str(db), "--outlet", outlet, "--hq", hq_url,
                 "--token", token], free_port(), "/v1/status", where / f"agent-{outlet}.log")


def new_chain(path: Path | str, outlets: Sequence[str]) -> tuple[dict[str, str], str]:
    """Creates (or opens) HQ's database; registers outlets; returns their tokens and an admin token."""
    chain = Chain(path, seed=default_documents())
    try:
        with chain.db.write() as conn:
            tokens = {o: credentials.add_outlet(conn, o)[0] for o in outlets}
            admin = credentials.add_admin(conn, "bench")
    finally:
        chain.close()
    return tokens, admin


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def fresh_copy(src: Path, dst: Path) -> None:
    remove_db(dst)
    shutil.copyfile(src, dst)
    with open(dst, "rb+") as f:  # so the copy's dirty pages do not flush during a measurement
        os.fsync(f.fileno())


# --- 1. propagation and ban latency ---------------------------------------------------------


def until(check: Any, limit: float = GIVE_UP_S) -> tuple[float, bool]:
    """Polls check() every POLL_S; (seconds from the call, whether it came true)."""
    t0 = time.perf_counter()
    while True:
        if check():
            return time.perf_counter() - t0, True
        if time.perf_counter() - t0 > limit:
            return time.perf_counter() - t0, False
        time.sleep(POLL_S)


def run_propagation(where: Path, cards: int, warmup: int, url: str | None = None,
                    bans: bool = True) -> dict[str, Any]:
    """On HQ's SQLite file; or with `url`, on that PostgreSQL database with TWO HQ
    processes, A pushing to the first and B pulling from the second (a change crosses
    processes: LISTEN/NOTIFY wakes B's long poll)."""
    import requests

    label = "prop-pg" if url else "prop"
    db: Path | str = url or where / "prop-hq.db"
    if url is None:
        remove_db(where / "prop-hq.db")
    tokens, admin = new_chain(db, ["A", "B"])
    procs: list[Proc] = []
    try:
        hq = hq_proc(db, where, f"{label}-hq", tokens["A"])
        procs.append(hq)
        hq_b = hq_proc(db, where, f"{label}-hq2", tokens["B"]) if url else hq
        if url:
            procs.append(hq_b)
        agents = []
        for outlet, at in (("A", hq), ("B", hq_b)):
            remove_db(where / f"{label}-{outlet}.db")
            agents.append(agent_proc(where / f"{label}-{outlet}.db", outlet, at.url,
                                     tokens[outlet], where))
            procs.append(agents[-1])
        a, b = agents[0].url, agents[1].url
        sa, sb, shq = requests.Session(), requests.Session(), requests.Session()
        shq.headers["Authorization"] = f"Bearer {admin}"
        # A needs HQ's master data (categories) before it can issue cards.
        deadline = time.monotonic() + 60
        rng = random.Random(3)

        def issue() -> requests.Response:
            return sa.post(a + "/v1/customers", json={
                "kind": "person", "given_name": rng.choice(GIVEN), "surname": rng.choice(SURNAMES),
                "category": rng.choice(CATEGORIES[:3])})

        while True:
            r = issue()
            if r.status_code == 201:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"A cannot issue cards: {r.status_code} {r.text}")
            time.sleep(0.1)

        def at_b(card: str, want: int, code: str | None = None) -> bool:
            r = sb.post(b + "/v1/identify", json={"kind": "card", "value": card})
            if r.status_code != want:
                return False
            return code is None or r.json().get("error", {}).get("code") == code

        issued: list[tuple[str, str]] = []
        prop: list[float] = []
        issue_ms: list[float] = []
        misses = 0
        for k in range(warmup + cards):
            t0 = time.perf_counter()
            r = issue()
            t1 = time.perf_counter()
            if r.status_code != 201:
                raise RuntimeError(f"issuing a card at A: {r.status_code} {r.text}")
            card, cid = r.json()["card_number"], r.json()["customer_id"]
            dt, ok = until(lambda card=card: at_b(card, 200))
            if k >= warmup:
                prop.append(dt + (t1 - t0))
                issue_ms.append((t1 - t0) * 1000)
                misses += not ok
                issued.append((card, cid))
        say(f"propagation: {cards} cards, p50 {pct(prop, 50) * 1000:.1f} ms,"
            f" p99 {pct(prop, 99) * 1000:.1f} ms")
        ban: list[float] = []
        ban_misses = 0
        for card, cid in issued if bans else []:
            t0 = time.perf_counter()
            r = shq.post(hq.url + f"/v1/admin/customers/{cid}/ban", json={"reason": "bench"})
            t1 = time.perf_counter()
            if r.status_code != 200:
                raise RuntimeError(f"ban at HQ: {r.status_code} {r.text}")
            dt, ok = until(lambda card=card: at_b(card, 403, "card_banned"))
            ban.append(dt + (t1 - t0))
            ban_misses += not ok
        ban = ban or [float("nan")]
        say(f"ban: {len(ban)} bans, p50 {pct(ban, 50) * 1000:.1f} ms,"
            f" p99 {pct(ban, 99) * 1000:.1f} ms")
        for s in (sa, sb, shq):
            s.close()
    finally:
        for p in reversed(procs):
            p.stop()
    return {"prop": prop, "issue_ms": issue_ms, "misses": misses, "ban": ban,
            "ban_misses": ban_misses}


# --- HQ database with many customers --------------------------------------------------------


def card_of(i: int) -> str:
    """Card number of customer i (0-based): ranges of 999,999 serials from FIRST_RANGE."""
    return cardnumber.make(FIRST_RANGE + i // cardnumber.MAX_SERIAL, i % cardnumber.MAX_SERIAL + 1)


def schema_of(conn: sqlite3.Connection) -> str:
    rows = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL"
                        " AND name NOT LIKE 'sqlite_stat%' ORDER BY type, name").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def current_schema() -> str:
    """Fingerprint of HQ's schema as the code creates it now (a cached file must match)."""
    chain = Chain(":memory:")
    try:
        return schema_of(chain.db.conn)
    finally:
        chain.close()


def cached_size(path: Path) -> int | None:
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'bench_customers'").fetchone()
            schema = conn.execute("SELECT value FROM meta WHERE key = 'bench_schema'").fetchone()
            if schema is None or schema[0] != current_schema():
                return None
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return None if row is None else int(row[0])


def build_hq(path: Path, n: int, desc: str) -> tuple[float, list[str]]:
    """HQ's database with n customers (reused if cached); (seconds, customer ids)."""
    if cached_size(path) == n:
        say(f"reusing {path} ({n:,} customers)")
        conn = sqlite3.connect(path)
        cached = [r[0] for r in conn.execute("SELECT customer_id FROM customers")]
        conn.close()
        return 0.0, cached
    remove_db(path)
    started = time.perf_counter()
    Chain(path, seed=default_documents()).close()  # schema, migrations and master data
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")  # only while building
    conn.execute("PRAGMA cache_size=-262144")  # 256 MiB
    head = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]
    rng = random.Random(1)
    from tqdm import tqdm

    bar = tqdm(total=n, unit="customer", unit_scale=True, disable=not sys.stderr.isatty(),
               desc=desc)
    ids: list[str] = []
    for start in range(0, n, BUILD_BATCH):
        stop = min(n, start + BUILD_BATCH)
        customers, idents, tallies, changes = [], [], [], []
        for i in range(start, stop):
            cid = new_id()
            ids.append(cid)
            given, surname = rng.choice(GIVEN), rng.choice(SURNAMES)
            customers.append((cid, "person", given, surname, rng.choice(CATEGORIES), NOW,
                              f"{surname} {given}".lower(), "HQ"))
            idents.append(("card", card_of(i), cid, "active"))
            tallies.append((cid,))
            changes.append(("customer", cid, head + 1 + i))
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO customers (customer_id, kind, given_name, surname, category, created_at,"
            " search_name, origin_outlet) VALUES (?,?,?,?,?,?,?,?)", customers)
        conn.executemany(
            "INSERT INTO identifiers (kind, value, customer_id, status) VALUES (?,?,?,?)", idents)
        conn.executemany("INSERT INTO customer_tally (customer_id) VALUES (?)", tallies)
        conn.executemany("INSERT INTO changes (kind, key, seq, urgent) VALUES (?,?,?,0)", changes)
        conn.execute("COMMIT")
        bar.update(stop - start)
    bar.close()
    conn.execute("INSERT INTO meta (key, value) VALUES ('bench_customers', ?)", (str(n),))
    conn.execute("INSERT INTO meta (key, value) VALUES ('bench_schema', ?)", (current_schema(),))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    took = time.perf_counter() - started
    say(f"built {path} with {n:,} customers in {took:.1f} s")
    return took, ids


# --- 2. HQ ingest ---------------------------------------------------------------------------


def sale_event(outlet: str, seq: int, customer_id: str, rng: random.Random) -> Any:
    lines = []
    for k in range(LINES):
        qty, price = rng.randrange(1, 4), rng.randrange(150, 5000)
        gross = qty * price
        lines.append(SaleLine(sku=f"SKU{rng.randrange(200):05d}", name=f"Item {k} blue",
                              qty=qty, unit_price=price, division=rng.choice(DIVISIONS),
                              gross=gross, discount=gross // 20, net=gross - gross // 20,
                              actions=[]))
    gross = sum(ln.gross for ln in lines)
    discount = sum(ln.discount for ln in lines)
    net = gross - discount
    body = SaleRecorded(sale_id=new_id(), customer_id=customer_id, till_id="T1", currency="EUR",
                        lines=lines, payments=[Payment(mode="card", amount=net)],
                        total_gross=gross, total_discount=discount, total_net=net,
                        points_earned=net // 100)
    return make_event(outlet, seq, body)


def build_batches(outlets: Sequence[str], per_outlet: int, customer_ids: Sequence[str],
                  seed: int) -> dict[str, list[tuple[bytes, list[Any]]]]:
    """Per outlet: its push batches, each (the request body, its events)."""
    rng = random.Random(seed)
    out: dict[str, list[tuple[bytes, list[Any]]]] = {}
    for outlet in outlets:
        events = [sale_event(outlet, seq, rng.choice(customer_ids), rng)
                  for seq in range(1, per_outlet + 1)]
        out[outlet] = [
            (PushRequest(outlet_id=outlet, events=events[i:i + PUSH_BATCH]).model_dump_json().encode(),
             events[i:i + PUSH_BATCH])
            for i in range(0, per_outlet, PUSH_BATCH)]
    return out


def push_all(url: str | dict[str, str], tokens: dict[str, str],
             batches: dict[str, list[tuple[bytes, list[Any]]]]
             ) -> tuple[float, dict[str, int], list[float]]:
    """Every outlet pushes its batches at once from its own thread, to `url` (or to its
    own HQ process: `url[outlet]`); (wall s, results, batch s)."""
    import requests

    urls = url if isinstance(url, dict) else dict.fromkeys(tokens, url)
    sessions = {}
    for outlet, token in tokens.items():
        url = urls[outlet]
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        s.headers["Content-Type"] = "application/json"
        s.get(url + "/v1/sync/hello").raise_for_status()  # connect before the clock starts
        sessions[outlet] = s
    counts: dict[str, int] = {"applied": 0, "duplicate": 0, "flagged": 0}
    batch_s: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    gate = threading.Barrier(len(tokens) + 1)

    def run(outlet: str) -> None:
        try:
            gate.wait()
            for body, _events in batches[outlet]:
                t0 = time.perf_counter()
                r = sessions[outlet].post(urls[outlet] + "/v1/sync/push", data=body,
                                          timeout=300)
                dt = time.perf_counter() - t0
                if r.status_code != 200:
                    raise RuntimeError(f"push from {outlet}: {r.status_code} {r.text[:300]}")
                answer = r.json()
                with lock:
                    batch_s.append(dt)
                    for res in answer["results"]:
                        counts[res["result"]] += 1
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(o,)) for o in tokens]
    for th in threads:
        th.start()
    gate.wait()
    started = time.perf_counter()
    for th in threads:
        th.join()
    wall = time.perf_counter() - started
    for s in sessions.values():
        s.close()
    if errors:
        raise errors[0]
    return wall, counts, batch_s


class IngestFloor:
    """Plain sqlite3 on a copy of HQ's database: the rows HQ's push writes, batch by batch."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")

    def batch(self, outlet: str, rows: list[tuple[Any, ...]],
              projection: list[tuple[Any, ...]] | None) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        c.execute("SELECT last_seq FROM outlets WHERE outlet_id = ?", (outlet,)).fetchone()
        c.executemany(
            "INSERT INTO events (event_id, outlet_id, seq, type, version, customer_id, at,"
            " received_at, event, result) VALUES (?,?,?,?,?,?,?,?,?,'applied')", rows)
        if projection is not None:
            for sale_row, line_rows, tally_row, item_rows, cid in projection:
                c.execute("SELECT 1 FROM customers WHERE customer_id = ?", (cid,)).fetchone()
                c.execute("INSERT INTO sales (sale_id, hq_seq, outlet_id, customer_id, till_id,"
                          " at, total_gross, total_discount, total_net, points_earned,"
                          " paid_credit) VALUES (?,?,?,?,?,?,?,?,?,?,?)", sale_row)
                c.executemany("INSERT INTO sale_lines (sale_id, line_no, sku, name, division,"
                              " qty, unit_price, gross, discount, net) VALUES (?,?,?,?,?,?,?,?,?,?)",
                              line_rows)
                c.execute("INSERT INTO customer_tally (customer_id, purchases_total,"
                          " purchases_count, items_count, points_earned, discount_total,"
                          " paid_card) VALUES (?,?,?,?,?,?,?) ON CONFLICT (customer_id) DO UPDATE"
                          " SET purchases_total = purchases_total + excluded.purchases_total,"
                          " purchases_count = purchases_count + 1,"
                          " items_count = items_count + excluded.items_count,"
                          " points_earned = points_earned + excluded.points_earned,"
                          " discount_total = discount_total + excluded.discount_total,"
                          " paid_card = paid_card + excluded.paid_card", tally_row)
                c.executemany("INSERT INTO customer_items (customer_id, sku, name, qty,"
                              " max_unit_price) VALUES (?,?,?,?,?) ON CONFLICT (customer_id, sku)"
                              " DO UPDATE SET qty = qty + excluded.qty, max_unit_price ="
                              " max(max_unit_price, excluded.max_unit_price)", item_rows)
                seq = c.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM changes").fetchone()[0]
                c.execute("INSERT INTO changes (kind, key, seq, urgent) VALUES ('customer', ?, ?, 0)"
                          " ON CONFLICT (kind, key) DO UPDATE SET seq = excluded.seq,"
                          " urgent = excluded.urgent", (cid, seq))
        c.execute("UPDATE outlets SET last_seq = ?, last_push_at = ? WHERE outlet_id = ?",
                  (rows[-1][2], NOW, outlet))
        c.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def floor_rows(events: list[Any], with_projection: bool) -> tuple[list[tuple[Any, ...]], Any]:
    rows = [(e.event_id, e.outlet_id, e.seq, e.type, e.version, e.customer_id, e.at, NOW,
             e.model_dump_json()) for e in events]
    if not with_projection:
        return rows, None
    proj = []
    for e in events:
        b = e.body
        cid = b["customer_id"]
        sale_row = (b["sale_id"], 0, e.outlet_id, cid, b.get("till_id"), e.at, b["total_gross"],
                    b["total_discount"], b["total_net"], b["points_earned"], 0)
        line_rows = [(b["sale_id"], i, ln["sku"], ln["name"], ln.get("division"), ln["qty"],
                      ln["unit_price"], ln["gross"], ln["discount"], ln["net"])
                     for i, ln in enumerate(b["lines"])]
        tally_row = (cid, b["total_net"], 1, sum(ln["qty"] for ln in b["lines"]),
                     b["points_earned"], b["total_discount"], b["total_net"])
        item_rows = [(cid, ln["sku"], ln["name"], ln["qty"], ln["unit_price"]) for ln in b["lines"]]
        proj.append((sale_row, line_rows, tally_row, item_rows, cid))
    return rows, proj


def run_floor(db: Path, batches: dict[str, list[tuple[bytes, list[Any]]]],
              with_projection: bool) -> tuple[float, int]:
    """Round-robin over the outlets' batches, as the pushes interleave at HQ; (s, events)."""
    prepared = {o: [floor_rows(ev, with_projection) for _b, ev in bl] for o, bl in batches.items()}
    floor = IngestFloor(db)
    total, elapsed = 0, 0.0
    try:
        rounds = max(len(v) for v in prepared.values())
        for k in range(rounds):
            for outlet, bl in prepared.items():
                if k < len(bl):
                    rows, proj = bl[k]
                    t0 = time.perf_counter()
                    floor.batch(outlet, rows, proj)
                    elapsed += time.perf_counter() - t0
                    total += len(rows)
    finally:
        floor.close()
    return elapsed, total


def run_ingest(where: Path, customers: int, per_outlet: int, seed: int,
               profile: str | None) -> dict[str, Any]:
    base = where / f"ingest-base-{customers}.db"
    _took, ids = build_hq(base, customers, "building HQ for ingest")
    db, floor_db = where / "ingest-hq.db", where / "ingest-floor.db"
    fresh_copy(base, db)
    outlets = [f"O{k:02d}" for k in range(1, OUTLETS + 1)]
    tokens, _admin = new_chain(db, outlets)
    say(f"ingest: building {OUTLETS} x {per_outlet:,} sale events ({LINES} lines each)")
    batches = build_batches(outlets, per_outlet, ids, seed)
    event_bytes = sum(len(b) for bl in batches.values() for b, _ in bl) / (OUTLETS * per_outlet)

    def projection_floor() -> tuple[float, int]:
        # on a database in the same state as HQ's before the push
        fresh_copy(base, floor_db)
        new_chain(floor_db, outlets)
        say("ingest floor: events + projection (sales, lines, tally, items, change log)")
        return run_floor(floor_db, batches, with_projection=True)

    # the projection floor brackets HQ's run (before and after it): the machine's load
    # moves, and the ratio must compare like with like
    proj_before = projection_floor()
    fresh_copy(db, floor_db)  # the same database, outlets registered, nothing pushed yet
    hq = hq_proc(db, where, "ingest-hq", tokens[outlets[0]])
    spy = start_spy(hq.pid, where / f"{profile}-ingest-hq.svg") if profile else None
    try:
        say(f"ingest: {OUTLETS} outlets pushing {per_outlet:,} events each in batches of"
            f" {PUSH_BATCH} at once")
        wall, counts, batch_s = push_all(hq.url, tokens, batches)
    finally:
        stop_spy(spy)
        hq.stop()
    events = OUTLETS * per_outlet
    check = sqlite3.connect(db)
    stored = check.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    check.close()
    if stored != events or counts["applied"] != events:
        raise RuntimeError(f"ingest: {stored} events stored, results {counts}, expected {events}")
    say("ingest floor: the same event rows with plain sqlite3")
    floor_s, floor_n = run_floor(floor_db, batches, with_projection=False)
    proj_after = projection_floor()
    remove_db(floor_db)
    remove_db(db)
    proj_eps = [n / s for s, n in (proj_before, proj_after)]
    say(f"ingest: {events / wall:.0f} events/s; floor {floor_n / floor_s:.0f} events/s,"
        f" with projection {proj_eps[0]:.0f} before HQ's run, {proj_eps[1]:.0f} after it")
    return {"eps": events / wall, "wall": wall, "events": events, "counts": counts,
            "batch_s": batch_s, "floor_eps": floor_n / floor_s,
            "proj_floor_eps": sum(proj_eps) / 2, "proj_floor_runs": proj_eps,
            "event_bytes": event_bytes, "customers": customers}


def run_ingest_pg(where: Path, cluster: Any, customers: int, per_outlet: int, seed: int,
                  processes: int) -> dict[str, Any]:
    """The same ingest (`run_ingest`: the same customers, outlets and batches) on a fresh
    PostgreSQL database of `cluster`, served by `processes` HQ processes, the outlets spread
    over them round-robin; events/s as `run_ingest` counts them."""
    from hq.store import migrate as moving

    base = where / f"ingest-base-{customers}.db"
    _took, ids = build_hq(base, customers, "building HQ for ingest")
    url = cluster.database()
    say(f"ingest on PostgreSQL ({processes} HQ process(es)): moving {customers:,} customers in")
    moving.migrate(base, url)
    outlets = [f"O{k:02d}" for k in range(1, OUTLETS + 1)]
    tokens, _admin = new_chain(url, outlets)
    batches = build_batches(outlets, per_outlet, ids, seed)
    procs = []
    try:
        for k in range(processes):
            procs.append(hq_proc(url, where, f"ingest-pg{processes}-hq{k + 1}", tokens[outlets[0]]))
        urls = {o: procs[i % processes].url for i, o in enumerate(outlets)}
        say(f"ingest on PostgreSQL: {OUTLETS} outlets over {processes} HQ process(es),"
            f" {per_outlet:,} events each")
        wall, counts, batch_s = push_all(urls, tokens, batches)
    finally:
        for proc in procs:
            proc.stop()
    events = OUTLETS * per_outlet
    import psycopg

    with psycopg.connect(url) as check:
        row = check.execute("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM events "
                            "WHERE outlet_id LIKE 'O%'").fetchone()
    cluster.drop(url)
    if row is None or tuple(row) != (events, events) or counts["applied"] != events:
        raise RuntimeError(f"ingest on PostgreSQL: {row} events stored, results {counts},"
                           f" expected {events}")
    say(f"ingest on PostgreSQL, {processes} HQ process(es): {events / wall:.0f} events/s")
    return {"eps": events / wall, "wall": wall, "events": events, "counts": counts,
            "batch_s": batch_s, "processes": processes}


def pg_cluster() -> Any:
    """A throwaway PostgreSQL cluster (tests/testkit/postgres.py), removed by the caller."""
    sys.path.insert(0, str(ROOT / "tests"))
    from testkit.postgres import Cluster, missing

    reason = missing()
    if reason is not None:
        raise SystemExit(f"--store postgres: {reason}")
    return Cluster.start()


# --- 3. bootstrap ---------------------------------------------------------------------------


def run_child(args: list[str], out: Path) -> tuple[float, int, float]:
    """`loyalty ARGS` with stdout to `out`; (wall s, exit status, its peak RSS in MB).

    The peak is the child's own VmHWM, read from /proc while it runs (it only grows): the
    rusage of a child would count this benchmark's own memory, which Linux carries over
    from the forked parent into the child's maximum across exec."""
    t0 = time.perf_counter()
    peak = 0.0
    with open(out, "w") as f:
        proc = subprocess.Popen([LOYALTY, *args], stdout=f, stdin=subprocess.DEVNULL)
        while proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                peak = max(peak, peak_rss_mb(proc.pid))
            time.sleep(0.01)
    took = time.perf_counter() - t0
    return took, proc.returncode, peak


def peak_rss_mb(pid: int) -> float:
    """The peak RSS (VmHWM) of a running process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def new_outlet(path: Path, url: str, token: str) -> None:
    """An empty outlet database that knows its HQ (what `agent serve --hq` creates)."""
    from agent.outlet import Outlet
    from agent.replica import set_meta

    remove_db(path)
    Path(f"{path}.snapshot.part").unlink(missing_ok=True)
    outlet = Outlet(path, "NEW", chain=True)
    with outlet.db.write() as conn:
        set_meta(conn, "hq_url", url)
        set_meta(conn, "hq_token", token)
        set_meta(conn, "link", "router")
    outlet.close()


def run_bootstrap(where: Path, n: int, profile: str | None, pages: bool = True,
                  ) -> dict[str, Any]:
    """A new outlet from an empty database to `loyalty sync` exit 0, twice on the same
    chain: from HQ's snapshot (built first by `loyalty hq snapshot`, a process of its own),
    and, as the baseline (`pages`), page by page from an HQ that offers no snapshot."""
    base = where / f"hq-{n}.db"
    build_s, _ids = build_hq(base, n, "building HQ")
    base_bytes = file_size(base)
    db = where / "boot-hq.db"
    say(f"bootstrap: copying the {base_bytes / 1e6:.0f} MB HQ database")
    fresh_copy(base, db)
    shutil.rmtree(f"{db}.snapshots", ignore_errors=True)
    tokens, _admin = new_chain(db, ["NEW"])
    new_db = where / "boot-new.db"
    say(f"snapshot: loyalty hq snapshot --db {db.name} ({n:,} customers)")
    snap_s, status, build_rss = run_child(["hq", "snapshot", "--db", str(db)],
                                          where / "snapshot.out")
    if status != 0:
        raise RuntimeError(f"loyalty hq snapshot failed ({status})")
    snap_bytes = sum(f.stat().st_size for f in Path(f"{db}.snapshots").glob("*.snapshot"))
    result: dict[str, Any] = {"customers": n, "build_s": build_s, "hq_bytes": base_bytes,
                              "snapshot_build_s": snap_s, "snapshot_bytes": snap_bytes,
                              "build_rss_mb": build_rss}
    spies = []
    hq = hq_proc(db, where, "boot-hq", tokens["NEW"])  # serves the snapshot just built
    try:
        new_outlet(new_db, hq.url, tokens["NEW"])
        say(f"bootstrap from the snapshot: loyalty sync --db {new_db.name}")
        if profile:
            spies = [start_spy(hq.pid, where / f"{profile}-snap-hq.svg")]
        took, status, outlet_rss = run_child(["sync", "--db", str(new_db)], where / "sync.out")
        if status != 0:
            raise RuntimeError(f"loyalty sync failed ({status}): {(where / 'sync.out').read_text()}")
        result.update(s=took, outlet_rss_mb=outlet_rss, serve_rss_mb=peak_rss_mb(hq.pid),
                      out=(where / "sync.out").read_text().strip())
    finally:
        for spy in spies:
            stop_spy(spy)
        hq.stop()
    result["got"] = _customers(new_db)
    result["outlet_bytes"] = file_size(new_db)
    if result["got"] != n:
        raise RuntimeError(f"bootstrap: the new outlet has {result['got']} customers, HQ {n}")
    result["pages_s"] = float("nan")
    if pages:
        shutil.rmtree(f"{db}.snapshots", ignore_errors=True)  # HQ offers none: page by page
        hq = hq_proc(db, where, "boot-hq-pages", tokens["NEW"])
        spies = []
        try:
            new_outlet(new_db, hq.url, tokens["NEW"])
            say(f"bootstrap page by page (the baseline): loyalty sync --db {new_db.name}")
            if profile:
                spies = [start_spy(hq.pid, where / f"{profile}-boot-hq.svg")]
            took, status, _rss = run_child(["sync", "--db", str(new_db)], where / "sync.out")
            if status != 0:
                raise RuntimeError(f"loyalty sync (pages) failed ({status})")
            result["pages_s"] = took
        finally:
            for spy in spies:
                stop_spy(spy)
            hq.stop()
        if _customers(new_db) != n:
            raise RuntimeError("bootstrap page by page: customers missing")
    remove_db(new_db)
    remove_db(db)
    shutil.rmtree(f"{db}.snapshots", ignore_errors=True)
    result["peak_rss_mb"] = max(result["build_rss_mb"], result["serve_rss_mb"],
                                result["outlet_rss_mb"])
    say(f"bootstrap of {n:,}: snapshot {result['s']:.2f} s (built in {snap_s:.1f} s),"
        f" pages {result['pages_s']:.2f} s; peak RSS build {build_rss:.0f} MB, HQ serving"
        f" {result['serve_rss_mb']:.0f} MB, outlet {result['outlet_rss_mb']:.0f} MB")
    return result


def _customers(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM customers").fetchone()[0])
    finally:
        conn.close()


# --- 4. sales while an outlet applies a big pull -------------------------------------------


def outlet_cursor(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
        return int(row[0]) if row else 0
    finally:
        conn.close()


class SaleStream:
    """One till selling over HTTP, one sale after another: POST /v1/quotes (untimed), then
    POST /v1/sales, whose round trip is what is measured (the sale's write transaction)."""

    def __init__(self, url: str, customers: int, seed: int) -> None:
        import requests

        self.url = url
        self.session = requests.Session()
        self.rng = random.Random(seed)
        self.customers = customers
        self.items = [(f"SKU{k:05d}", f"Item {k}", self.rng.randrange(150, 5000))
                      for k in range(200)]

    def sale(self) -> tuple[float, float]:
        """One sale: (when its POST /v1/sales started, its round trip in ms)."""
        card = card_of(self.rng.randrange(self.customers))
        lines = [{"sku": sku, "name": name, "qty": self.rng.randrange(1, 4), "unit_price": price}
                 for sku, name, price in self.rng.sample(self.items, LINES)]
        r = self.session.post(self.url + "/v1/quotes",
                              json={"card": card, "lines": lines, "till_id": "T1"}, timeout=60)
        if r.status_code != 201:
            raise RuntimeError(f"quote: {r.status_code} {r.text[:300]}")
        q = r.json()
        started = time.perf_counter()
        r = self.session.post(self.url + "/v1/sales", timeout=60,
                              json={"quote_id": q["quote_id"], "till_id": "T1",
                                    "payments": [{"mode": "card", "amount": q["total_net"]}]},
                              headers={"Idempotency-Key": new_id()})
        took = (time.perf_counter() - started) * 1000
        if r.status_code != 201:
            raise RuntimeError(f"sale: {r.status_code} {r.text[:300]}")
        return started, took

    def run(self, n: int) -> list[float]:
        return [self.sale()[1] for _ in range(n)]

    def close(self) -> None:
        self.session.close()


def run_pull_stall(where: Path, n: int, sales: int, seed: int) -> dict[str, Any]:
    """A real agent (`loyalty agent serve --hq`) on an outlet bootstrapped from a chain of
    n customers sells, one sale after another, while it applies a re-pull of all n
    customers (HQ re-bumps each in its change log, as a mass category change does); the
    same stream before and after the pull is the baseline. (sale ms while pulling, sale
    ms without, the pull's changes and seconds)."""
    base = where / f"hq-{n}.db"
    build_hq(base, n, "building HQ for the pull")
    db, outlet_db = where / "stall-hq.db", where / "stall-outlet.db"
    fresh_copy(base, db)
    shutil.rmtree(f"{db}.snapshots", ignore_errors=True)
    tokens, _admin = new_chain(db, ["NEW"])
    _s, status, _rss = run_child(["hq", "snapshot", "--db", str(db)], where / "snapshot.out")
    if status != 0:
        raise RuntimeError("loyalty hq snapshot failed")
    hq = hq_proc(db, where, "stall-hq", tokens["NEW"])
    agent = None
    stream = None
    try:
        new_outlet(outlet_db, hq.url, tokens["NEW"])
        say(f"pull: bootstrapping an outlet with {n:,} customers")
        _s, status, _rss = run_child(["sync", "--db", str(outlet_db)], where / "sync.out")
        if status != 0:
            raise RuntimeError(f"loyalty sync failed: {(where / 'sync.out').read_text()}")
        agent = agent_proc(outlet_db, "NEW", hq.url, tokens["NEW"], where)
        stream = SaleStream(agent.url, n, seed)
        stream.run(20)  # warm-up
        say(f"pull: {sales} sales without a pull (the baseline)")
        before = stream.run(sales)
        conn = sqlite3.connect(db, timeout=30)
        with conn:
            head = conn.execute("SELECT MAX(seq) FROM changes").fetchone()[0]
            conn.execute("UPDATE changes SET seq = seq + ? WHERE kind = 'customer'", (head,))
            target = conn.execute("SELECT MAX(seq) FROM changes").fetchone()[0]
        conn.close()
        say(f"pull: HQ re-bumped {n:,} customers; selling while the agent pulls them")
        during: list[float] = []
        seen: list[tuple[float, float]] = []
        started_at = ended_at = float("nan")
        give_up = time.monotonic() + 600
        while time.monotonic() < give_up:
            seen.append(stream.sale())
            cursor = outlet_cursor(outlet_db)
            if math.isnan(started_at) and cursor > head:
                started_at = seen[-1][0]
            if cursor >= target:
                ended_at = time.perf_counter()
                break
        else:
            raise RuntimeError("pull: the agent did not catch up within 600 s")
        during = [took for at, took in seen if at >= started_at]
        say(f"pull: {sales} sales after the pull (the baseline)")
        after = stream.run(sales)
    finally:
        if stream is not None:
            stream.close()
        if agent is not None:
            agent.stop()
        hq.stop()
    remove_db(outlet_db)
    remove_db(db)
    shutil.rmtree(f"{db}.snapshots", ignore_errors=True)
    pull_s = ended_at - started_at
    say(f"pull: {n:,} changes in {pull_s:.1f} s; sale p99 {pct(during, 99):.1f} ms during"
        f" ({len(during)} sales), {pct(before + after, 99):.1f} ms without")
    return {"during": during, "without": before + after, "changes": n, "s": pull_s}


# --- profiling (optional: py-spy, outside the project's venv) -------------------------------


def start_spy(pid: int, svg: Path) -> subprocess.Popen[bytes] | None:
    exe = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if not exe:
        say("--profile: py-spy not found (pip install py-spy, or set PY_SPY=/path/to/py-spy)")
        return None
    raw = svg.with_suffix(".txt")
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", "200", "--format",
                             "raw", "--output", str(raw), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_spy(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is None:
        return
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()


# --- main -----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="30 cards, 20 x 500 events, bootstrap of 20,000 customers")
    ap.add_argument("--cards", type=int, help="cards issued at A and banned at HQ [200]")
    ap.add_argument("--events", type=int, help="events pushed per outlet (20 outlets) [2,500]")
    ap.add_argument("--customers", type=int, help="customers at HQ for the bootstrap [1,000,000]")
    ap.add_argument("--small-customers", type=int,
                    help="the second, smaller bootstrap size (per-customer cost and memory"
                         " are compared with it) [a tenth of --customers]")
    ap.add_argument("--ingest-customers", type=int, default=None,
                    help="customers at HQ for the ingest [100,000; quick 20,000]")
    ap.add_argument("--dir", help="where to build and cache the HQ databases [a temp dir]")
    ap.add_argument("--pull-customers", type=int, default=None,
                    help="changes the agent re-pulls while it sells [100,000; quick 10,000]")
    ap.add_argument("--pull-sales", type=int, default=None,
                    help="sales before and after the pull, the baseline [300; quick 100]")
    ap.add_argument("--skip", action="append", default=[],
                    choices=["propagation", "ingest", "bootstrap", "pull"])
    ap.add_argument("--profile", metavar="NAME",
                    help="py-spy the HQ and outlet processes (raw folded stacks NAME-*.txt in --dir)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite",
                    help="postgres: also ingest with 1 and 4 HQ processes and propagation"
                         " across two HQ processes on a throwaway PostgreSQL cluster the bench"
                         " starts and removes, beside the SQLite HQ in the same run")
    args = ap.parse_args()
    cards = args.cards or (30 if args.quick else 200)
    per_outlet = args.events or (500 if args.quick else 2_500)
    n = args.customers or (20_000 if args.quick else 1_000_000)
    ingest_customers = args.ingest_customers or (20_000 if args.quick else 100_000)
    small = args.small_customers or max(1, n // 10)
    pull_n = args.pull_customers or (10_000 if args.quick else 100_000)
    pull_sales = args.pull_sales or (100 if args.quick else 300)

    load_before = os.getloadavg()[0]
    tmp = None
    if args.dir:
        where = Path(args.dir)
        where.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-sync-")
        where = Path(tmp.name)
    nan = float("nan")
    prop: dict[str, Any] = {"prop": [nan], "ban": [nan], "misses": 0, "ban_misses": 0,
                            "issue_ms": [nan]}
    ing: dict[str, Any] = {"eps": nan, "floor_eps": nan, "proj_floor_eps": nan,
                           "proj_floor_runs": [nan], "batch_s": [nan],
                           "event_bytes": nan, "wall": nan, "events": 0, "customers": 0,
                           "counts": {}}
    boot: dict[str, Any] = {"s": nan, "customers": 0, "build_s": 0.0, "hq_bytes": 0,
                            "outlet_bytes": 0, "out": "", "pages_s": nan, "snapshot_build_s": nan,
                            "snapshot_bytes": 0, "build_rss_mb": nan, "serve_rss_mb": nan,
                            "outlet_rss_mb": nan, "peak_rss_mb": nan}
    boot_small = dict(boot)
    stall: dict[str, Any] = {"during": [nan], "without": [nan], "changes": 0, "s": nan}
    pg: dict[int, dict[str, Any]] = {n: {"eps": nan, "wall": nan, "events": 0, "counts": {},
                                         "batch_s": [nan]} for n in (1, 4)}
    pg_prop: dict[str, Any] = dict(prop)
    cluster = pg_cluster() if args.store == "postgres" else None
    try:
        if "propagation" not in args.skip:
            say(f"propagation: HQ + agents A and B, {cards} cards issued at A")
            prop = run_propagation(where, cards, warmup=3)
        if "ingest" not in args.skip:
            ing = run_ingest(where, ingest_customers, per_outlet, args.seed, args.profile)
            if cluster is not None:
                for procs in (1, 4):
                    pg[procs] = run_ingest_pg(where, cluster, ingest_customers, per_outlet,
                                              args.seed, procs)
        if cluster is not None and "propagation" not in args.skip:
            say(f"propagation on PostgreSQL: two HQ processes, {cards} cards issued at A")
            url = cluster.database()
            # no bans: a ban is audited, and the audit trail is not on PostgreSQL yet
            pg_prop = run_propagation(where, cards, warmup=3, url=url, bans=False)
            cluster.drop(url)
        if "pull" not in args.skip:
            stall = run_pull_stall(where, pull_n, pull_sales, args.seed)
        if "bootstrap" not in args.skip:
            boot_small = run_bootstrap(where, small, None, pages=False)
            boot = run_bootstrap(where, n, args.profile)
    finally:
        if cluster is not None:
            cluster.stop()
        if tmp is not None:
            tmp.cleanup()

    def s(v: float) -> str:
        return f"{v:.3f}"

    p, b = prop["prop"], prop["ban"]
    print(f"machine: {os.cpu_count()} CPUs, load average {load_before:.2f} before the run,"
          f" {os.getloadavg()[0]:.2f} after (other processes' work lands in the tails)")
    print(f"propagation (card issued at A -> identify 200 at B; {len(p)} cards, polled every"
          f" {POLL_S * 1000:.0f} ms): p50 {s(pct(p, 50))} s, p99 {s(pct(p, 99))} s,"
          f" max {s(max(p))} s; issuing at A p50 {pct(prop['issue_ms'], 50):.1f} ms;"
          f" not seen within {GIVE_UP_S:.0f} s: {prop['misses']}")
    print(f"ban (POST ban at HQ -> card_banned at B; {len(b)} bans): p50 {s(pct(b, 50))} s,"
          f" p99 {s(pct(b, 99))} s, max {s(max(b))} s; not seen: {prop['ban_misses']}")
    print(f"ingest: {OUTLETS} outlets x {ing['events'] // OUTLETS:,} sale events"
          f" ({LINES} lines, {ing['event_bytes']:.0f} B JSON each) in batches of {PUSH_BATCH},"
          f" HQ with {ing['customers']:,} customers: {ing['eps']:.0f} events/s"
          f" ({ing['wall']:.1f} s); batch round trip p50 {pct(ing['batch_s'], 50):.2f} s,"
          f" p99 {pct(ing['batch_s'], 99):.2f} s; results {ing['counts']}")
    print(f"ingest floor (plain sqlite3, WAL, synchronous=FULL, {PUSH_BATCH} per transaction):"
          f" event rows + dedupe {ing['floor_eps']:.0f} events/s; with HQ's projection"
          f" (sales, lines, tally, items, change log) {ing['proj_floor_eps']:.0f} events/s"
          f" (the mean of {', '.join(f'{v:.0f}' for v in ing['proj_floor_runs'])}: before and"
          f" after HQ's run); HQ / projection floor {ing['eps'] / ing['proj_floor_eps']:.2f}")
    if args.store == "postgres":
        for procs, run in pg.items():
            print(f"ingest on PostgreSQL (throwaway cluster, fsync off like the tests'), {procs}"
                  f" HQ process(es), the same batches: {run['eps']:.0f} events/s"
                  f" ({run['wall']:.1f} s), {run['eps'] / ing['eps']:.2f}x the SQLite HQ;"
                  f" batch round trip p50 {pct(run['batch_s'], 50):.2f} s,"
                  f" p99 {pct(run['batch_s'], 99):.2f} s; results {run['counts']}")
        pp = pg_prop["prop"]
        print(f"propagation on PostgreSQL (A -> HQ process 1, HQ process 2 -> B; {len(pp)}"
              f" cards): p50 {s(pct(pp, 50))} s, p99 {s(pct(pp, 99))} s; bans not measured"
              f" (a ban is audited: the audit trail is not on PostgreSQL yet)")
    during, without = stall["during"], stall["without"]
    print(f"sales while the agent applies a re-pull of {stall['changes']:,} changes"
          f" ({stall['s']:.1f} s, {len(during)} sales, one till over HTTP): POST /v1/sales"
          f" p50 {pct(during, 50):.1f} ms, p99 {pct(during, 99):.1f} ms, max {max(during):.1f} ms;"
          f" the same stream without a pull ({len(without)} sales, before and after it):"
          f" p50 {pct(without, 50):.1f} ms, p99 {pct(without, 99):.1f} ms,"
          f" max {max(without):.1f} ms")
    built = f" (built in {boot['build_s']:.0f} s)" if boot["build_s"] else ""

    def us(run: dict[str, Any], key: str = "s") -> float:
        return float(run[key]) / max(1, run["customers"]) * 1e6

    print(f"bootstrap: {boot['customers']:,} customers, HQ database {boot['hq_bytes'] / 1e6:.0f} MB"
          f"{built}; from an empty database to `loyalty sync` exit 0: from HQ's snapshot"
          f" {s(boot['s'])} s ({us(boot):.1f} us/customer), page by page (the baseline, same"
          f" chain, HQ offering no snapshot) {s(boot['pages_s'])} s"
          f" ({us(boot, 'pages_s'):.1f} us/customer); outlet database"
          f" {boot['outlet_bytes'] / 1e6:.0f} MB; it said: {boot['out']}")
    for run in (boot_small, boot):
        print(f"snapshot of {run['customers']:,} customers: built by `loyalty hq snapshot` in"
              f" {run['snapshot_build_s']:.1f} s, {run['snapshot_bytes'] / 1e6:.1f} MB (zstd);"
              f" bootstrap {s(run['s'])} s = {us(run):.1f} us/customer; peak RSS: building"
              f" {run['build_rss_mb']:.0f} MB, HQ serving {run['serve_rss_mb']:.0f} MB,"
              f" outlet `loyalty sync` {run['outlet_rss_mb']:.0f} MB")
    flat = us(boot) / us(boot_small) if boot_small["customers"] else nan
    rss_growth = boot["peak_rss_mb"] / boot_small["peak_rss_mb"]
    goals = [
        ("propagation p99 < 1 s", pct(p, 99) < 1),
        ("ban p99 < 1 s", pct(b, 99) < 1),
        ("ingest >= 5,000 events/s", ing["eps"] >= 5000),
        ("ingest >= 0.9x the projection floor", ing["eps"] / ing["proj_floor_eps"] >= 0.9),
        ("sale p99 during a pull <= 15 ms", pct(during, 99) <= 15),
        ("bootstrap of 1,000,000 <= 20 s" if n == 1_000_000 else
         f"bootstrap <= 20 s (scaled to {n:,}: <= {20 * n / 1e6 + START_S:.1f} s, with"
         f" {START_S:.0f} s to start the process)", boot["s"] <= 20 * n / 1e6 + START_S),
        (f"cost per customer flat from {small:,} to {n:,} (ratio <= 1.2)", flat <= 1.2),
        ("bootstrap memory flat (peak RSS ratio <= 1.2)", rss_growth <= 1.2),
    ]
    measured = [not math.isnan(v)  # nan: that part was skipped
                for v in (pct(p, 99), pct(b, 99), ing["eps"], ing["eps"], pct(during, 99),
                          boot["s"], flat, rss_growth)]
    if args.store == "postgres":
        goals.append(("PostgreSQL ingest with 4 HQ processes >= the SQLite HQ",
                      pg[4]["eps"] >= ing["eps"]))
        measured.append(not math.isnan(pg[4]["eps"]))
        goals.append(("propagation p99 < 1 s across two HQ processes on PostgreSQL",
                      pct(pg_prop["prop"], 99) < 1))
        measured.append(not math.isnan(pct(pg_prop["prop"], 99)))
    print("goals: " + "; ".join(f"{g}: {('met' if ok else 'MISSED') if m else 'skipped'}"
                                for (g, ok), m in zip(goals, measured, strict=True)))
    # ingest_floor_ratio = ingest_eps / ingest_floor_eps (HQ over HTTP vs bare sqlite3 inserting
    # the same event rows with dedupe; 1.0 = as fast as the floor, lower = slower).
    print(f"sync: propagation_p50_s={s(pct(p, 50))} propagation_p99_s={s(pct(p, 99))}"
          f" ban_p50_s={s(pct(b, 50))} ban_p99_s={s(pct(b, 99))} ingest_eps={ing['eps']:.0f}"
          f" ingest_floor_eps={ing['floor_eps']:.0f}"
          f" ingest_floor_ratio={ing['eps'] / ing['floor_eps']:.3f}"
          f" ingest_projection_floor_eps={ing['proj_floor_eps']:.0f}"
          f" ingest_projection_ratio={ing['eps'] / ing['proj_floor_eps']:.3f}"
          f" bootstrap_s={s(boot['s'])} bootstrap_customers={boot['customers']}"
          f" bootstrap_pages_s={s(boot['pages_s'])}"
          f" bootstrap_us_per_customer={us(boot):.2f}"
          f" bootstrap_small_customers={boot_small['customers']}"
          f" bootstrap_small_us_per_customer={us(boot_small):.2f}"
          f" bootstrap_peak_rss_mb={boot['peak_rss_mb']:.0f}"
          f" bootstrap_small_peak_rss_mb={boot_small['peak_rss_mb']:.0f}"
          f" snapshot_build_s={boot['snapshot_build_s']:.2f}"
          f" sale_p99_during_pull_ms={pct(during, 99):.1f}"
          f" sale_p99_without_pull_ms={pct(without, 99):.1f}"
          f" pull_changes={stall['changes']} pull_s={stall['s']:.2f} pull_sales={len(during)}"
          f" cards={len(p)} ingest_events={ing['events']}"
          + (f" sqlite_ingest_eps={ing['eps']:.0f} pg_ingest_eps={pg[1]['eps']:.0f}"
             f" pg_4proc_ingest_eps={pg[4]['eps']:.0f}"
             f" pg_4proc_ratio={pg[4]['eps'] / ing['eps']:.3f}"
             f" pg_propagation_p50_s={s(pct(pg_prop['prop'], 50))}"
             f" pg_propagation_p99_s={s(pct(pg_prop['prop'], 99))}"
             if args.store == "postgres" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
