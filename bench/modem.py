#!/usr/bin/env python3
"""A day's sales over a dial-up call, end to end, at 33,600 bit/s (issue 5, "Done means").

What runs (all real, as in the tests of tests/sync/test_modem_link.py): the line
simulator process (`python -m sync.linesim`: two Hayes modems and a telephone line
throttled to `--speed` bit/s at 10 bits per byte), HQ (`loyalty hq serve --modem ...`) and
one outlet whose sales go out with `loyalty sync --db` (dial, CONNECT, auth, push
everything pending in the dialer's batches of 1,000, pull, hang up).

The outlet's file is filled in process through the outlet's own domain code (the till
API's `sales.quote` + `sales.sell`): 200 customers (synced in an untimed call first), then
N sales of 10 lines each from a 300-product shop with Zipf-like popularity (SKUs and names
repeat as in a real shop), 1-3 of each, cash or card. Then one timed call pushes them.

Measured in the same run:
- `bytes_per_event`: bytes the outlet's modem carried to the line during the call
  (the simulator's counter: AT commands, frames, CRCs, ACKs, retransmissions: everything)
  / N. `channel_bytes_per_event`: the channel's own count (framed messages + ACKs).
- `s_per_1000`: wall time of `loyalty sync` (process start to exit: start-up, dial,
  training, auth, push, pull, hang-up) / N * 1000. `call_s`: the call alone (the
  session's started_at..ended_at).
- `json_bytes_per_event`: the uncompressed JSON push bodies of the same events (what the
  router link POSTs, in the same batches of 1,000) / N; `json_s_per_1000`: their time on
  the same line at 10 bits per byte, computed (not dialled: it would take minutes).
Goals: bytes_per_event <= 80; 5,000 sales in < 150 s (`s_per_5000`).

    .venv/bin/python bench/modem.py --quick      # 500 sales, ~40 s
    .venv/bin/python bench/modem.py              # 5,000 sales (a busy shop's day)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "sync"))

from modemkit import (
    GUARD_S,
    HQ_NUMBER,
    INIT,
    LineSimProcess,
    ModemHQ,
    hq_events,
    shop_day,
)

LOYALTY = Path(sys.executable).parent / "loyalty"
BATCH = 1_000  # the dialer's push batch (sync.dialer.Dialer.call)


def sync(db: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run([str(LOYALTY), "sync", "--db", str(db)], capture_output=True,
                          text=True, timeout=1800, stdin=subprocess.DEVNULL, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"loyalty sync failed ({done.returncode}): {done.stderr}")
    return took, done


def meta(db: Path, key: str) -> str | None:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])
    finally:
        conn.close()


def json_push_bytes(db: Path, outlet: str, first_seq: int) -> tuple[int, int]:
    """(events, bytes of their uncompressed JSON push bodies in batches of 1,000)."""
    from schema.events import Event
    from schema.sync import PushRequest

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        events = [Event.model_validate_json(r[0]) for r in conn.execute(
            "SELECT event FROM outbox WHERE seq >= ? ORDER BY seq", (first_seq,))]
    finally:
        conn.close()
    total = sum(len(PushRequest(outlet_id=outlet, events=events[i:i + BATCH])
                    .model_dump_json().encode()) for i in range(0, len(events), BATCH))
    return len(events), total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="500 sales instead of 5,000")
    ap.add_argument("--events", type=int, help="sales in the call [5,000; quick 500]")
    ap.add_argument("--lines", type=int, default=10, help="lines per sale [10]")
    ap.add_argument("--speed", type=int, default=33_600, help="line speed, bit/s [33,600]")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    args = ap.parse_args()
    n = args.events or (500 if args.quick else 5_000)
    load_before = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="bench-modem-"))
    sim = LineSimProcess.bank(root, lines=1, outlets=1, speed_bps=args.speed)
    hq: ModemHQ | None = None
    try:
        sim.start()
        hq = ModemHQ(root / "hq.db", sim.hq_paths())
        token = hq.outlet_add("OUT1")
        hq.spawn()

        from agent.config import ModemEntry
        from agent.outlet import Outlet
        from agent.runtime import modem_dialer

        db = root / "OUT1.db"
        shop = Outlet(db, "OUT1", chain=True)
        modem_dialer(shop, ModemEntry(port=sim.outlet_paths()[0], number=HQ_NUMBER,
                                      init=list(INIT), guard_s=GUARD_S), token)
        shop.close()
        hq.wait_ready()
        sync(db)  # untimed: card range and master data
        shop_day(db, "OUT1", 0, customers=200, seed=args.seed)
        sync(db)  # untimed: the customers reach HQ
        first_seq = int(hq_events(root / "hq.db", "OUT1")) + 1

        made = time.perf_counter()
        shop_day(db, "OUT1", n, lines=args.lines, seed=args.seed,
                 cards=[r[0] for r in sqlite3.connect(db).execute(
                     "SELECT value FROM identifiers WHERE kind = 'card'")])
        made_s = time.perf_counter() - made

        before = sim.stats()["modems"]["o1"]
        wall_s, done = sync(db)
        after = sim.stats()["modems"]["o1"]
        session = json.loads(meta(db, "last_session") or "{}")
        at_hq = hq_events(root / "hq.db", "OUT1") - first_seq + 1
        assert at_hq == n, f"HQ holds {at_hq} of the {n} sales"
        events, json_bytes = json_push_bytes(db, "OUT1", first_seq)
        assert events == n

        line_up = after["from_device"] - before["from_device"]
        line_down = after["to_device"] - before["to_device"]
        call_s = (datetime.fromisoformat(session["ended_at"])
                  - datetime.fromisoformat(session["started_at"])
                  ).total_seconds()
        bytes_per_event = line_up / n
        s_per_1000 = wall_s / n * 1000
        json_per_event = json_bytes / n
        json_s_per_1000 = json_per_event * 1000 * 10 / args.speed
        ideal_s_per_1000 = bytes_per_event * 1000 * 10 / args.speed
        load_after = os.getloadavg()[0]

        print(f"machine: {os.cpu_count()} CPUs, load average {load_before:.2f} before, "
              f"{load_after:.2f} after")
        print(f"{n} sales of {args.lines} lines made in {made_s:.1f} s (in process, not timed)")
        print(f"one call at {args.speed} bit/s: `loyalty sync` {wall_s:.1f} s wall, the call "
              f"{call_s:.1f} s; {done.stdout.strip().splitlines()[-1]}")
        print(f"{'':<34}{'bytes/event':>12}{'s/1000':>9}{'s/5000':>9}")
        print(f"{'modem call (measured, wall)':<34}{bytes_per_event:>12.1f}{s_per_1000:>9.1f}"
              f"{s_per_1000 * 5:>9.0f}")
        print(f"{'  its bytes at line speed':<34}{'':>12}{ideal_s_per_1000:>9.1f}"
              f"{ideal_s_per_1000 * 5:>9.0f}")
        print(f"{'uncompressed JSON (computed)':<34}{json_per_event:>12.1f}"
              f"{json_s_per_1000:>9.1f}{json_s_per_1000 * 5:>9.0f}")
        print(f"line bytes outlet->HQ {line_up:,}, HQ->outlet {line_down:,}; channel: sent "
              f"{session.get('bytes_sent', 0):,}, received {session.get('bytes_received', 0):,}; "
              f"JSON/modem = {json_per_event / bytes_per_event:.1f}x")
        print(f"goals: <= 80 B/event ({'met' if bytes_per_event <= 80 else 'MISSED'}), "
              f"5,000 sales < 150 s ({'met' if s_per_1000 * 5 < 150 else 'MISSED'})")
        print(f"modem: bytes_per_event={bytes_per_event:.1f} s_per_1000={s_per_1000:.1f} "
              f"json_bytes_per_event={json_per_event:.0f} json_s_per_1000={json_s_per_1000:.0f} "
              f"events={n} speed_bps={args.speed} lines={args.lines} "
              f"s_per_5000={s_per_1000 * 5:.0f} call_s={call_s:.1f} wall_s={wall_s:.1f} "
              f"line_s_per_1000={ideal_s_per_1000:.1f} "
              f"channel_bytes_per_event={session.get('bytes_sent', 0) / n:.1f} "
              f"json_ratio={json_per_event / bytes_per_event:.1f} load={load_after:.2f}")
        return 0
    finally:
        if hq is not None:
            hq.kill()
        sim.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
