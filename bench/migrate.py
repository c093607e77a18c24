#!/usr/bin/env python3
"""Moving HQ from SQLite to PostgreSQL (`loyalty hq migrate`) beside a plain read of the rows.

What it does (issue 15, bench/README.md):

1. Builds (or reuses, from `--dir`) an HQ SQLite file with N customers (100,000; `--quick`
   20,000; bench/sync.py's `build_hq`: a card and a tally row each) and then pushes E sale
   events (20,000; `--quick` 4,000; bench/sync.py's `build_batches`, 10 lines each) from 20
   outlets through HQ's own ingest in this process, so the ledger, sales, sale lines, items
   and the change log are real.
2. Starts a throwaway PostgreSQL cluster (tests/testkit/postgres.py: a unix socket in a
   temporary folder, fsync off, removed at the end) and an empty database in it.
3. The baseline, in the same run: a plain `SELECT` of every column of every HQ table of the
   same file through sqlite3, every row fetched (what the copy must read anyway).
4. `hq.store.migrate.migrate` into the empty database: the copy (binary COPY, one
   transaction) and the verification (counts, sums, the ledger fold) timed apart.

Last line: `MIGRATE: copy_rows_per_s=.. read_rows_per_s=.. copy_vs_read=.. rows=.. copy_s=..
verify_s=.. total_s=.. customers=.. events=.. fsync=off`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))

from testkit.postgres import Cluster, missing

from hq import credentials, ingest
from hq.chain import Chain
from hq.store import migrate as moving
from schema.sync import PushRequest

OUTLETS = [f"O{i:02d}" for i in range(1, 21)]


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def loadavg() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


def sync_bench() -> object:
    """bench/sync.py as a module (its name would shadow the project's `sync` package)."""
    spec = importlib.util.spec_from_file_location("bench_sync", ROOT / "bench" / "sync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(path: Path, customers: int, events: int) -> None:
    bench: object = sync_bench()
    marker = path.with_name(path.name + ".done")
    if path.exists() and marker.exists():
        say(f"reusing {path}")
        return
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), marker):
        stale.unlink(missing_ok=True)
    _, ids = bench.build_hq(path, customers, "customers")  # type: ignore[attr-defined]
    batches = bench.build_batches(  # type: ignore[attr-defined]
        OUTLETS, max(1, events // len(OUTLETS)), ids, 1)
    chain = Chain(path)
    try:
        with chain.db.write() as conn:
            for outlet in OUTLETS:
                credentials.add_outlet(conn, outlet)
        started = time.perf_counter()
        for outlet, pushes in batches.items():
            for _, batch in pushes:
                ingest.push(chain, outlet, PushRequest(outlet_id=outlet, events=batch))
        say(f"ingested {events:,} events in {time.perf_counter() - started:.1f} s")
    finally:
        chain.close()
    marker.write_text("built\n")


def read_all(path: Path) -> tuple[int, float]:
    """The baseline: every row of every HQ table, every column, read through sqlite3."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")
        tables = moving.tables_of(conn)
        rows = 0
        started = time.perf_counter()
        for table in tables:
            cursor = conn.execute(f'SELECT {table.column_list} FROM "{table.name}"')
            while batch := cursor.fetchmany(moving.BATCH):
                rows += len(batch)
        return rows, time.perf_counter() - started
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 customers, 4,000 events")
    parser.add_argument("--customers", type=int)
    parser.add_argument("--events", type=int)
    parser.add_argument("--dir", type=Path, help="keep (and reuse) the built file here")
    args = parser.parse_args()
    customers = args.customers or (20_000 if args.quick else 100_000)
    events = args.events or (4_000 if args.quick else 20_000)
    reason = missing()
    if reason is not None:
        say(reason)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-migrate-") as tmp:
        where = args.dir or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        path = where / f"migrate-hq-{customers}-{events}.db"
        build(path, customers, events)
        say(f"load average before: {loadavg()}")
        rows, read_s = read_all(path)
        cluster = Cluster.start()
        try:
            url = cluster.database()
            started = time.perf_counter()
            moved = moving.migrate(path, url)
            total_s = time.perf_counter() - started
        finally:
            cluster.stop()
        say(f"load average after: {loadavg()}")
    assert moved.rows == rows, (moved.rows, rows)
    for name, count in moved.tables.items():
        say(f"  {name:<20} {count:>10,}")
    copy_rate = rows / moved.copy_s
    read_rate = rows / read_s
    print(f"MIGRATE: copy_rows_per_s={copy_rate:.0f} read_rows_per_s={read_rate:.0f} "
          f"copy_vs_read={copy_rate / read_rate:.3f} rows={rows} copy_s={moved.copy_s:.2f} "
          f"read_s={read_s:.2f} verify_s={moved.verify_s:.2f} total_s={total_s:.2f} "
          f"customers={customers} events={moved.events} fsync=off")
    return 0


if __name__ == "__main__":
    sys.exit(main())
