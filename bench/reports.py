#!/usr/bin/env python3
"""Reports at HQ over a big chain: each `loyalty report` beside a plain SQL floor.

What it does (issue 6, bench/README.md):

1. Builds (or reuses, from `--dir`) an HQ database with N customers (1,000,000; `--quick`
   20,000) and L sale lines (10,000,000; `--quick` 200,000) in 10-line receipts, spread over
   the year 2024 across 20 outlets and 4 tills each, plus one `customer_tally` row per
   customer, redemptions (one per 10 receipts), invoices (one per 10 customers) and the
   customers' point lots (one per receipt, the oldest spent by the redemptions; a deficit
   where they overspent), under an expiry rule (end of the 12th month). The
   schema comes from `hq.chain.Chain(path)`; the rows are generated inside SQLite with
   recursive CTEs (synchronous=OFF, no journal, only while building). Figures are
   consistent: each receipt's totals are the sums of its lines. The built file is kept
   (`reports-hq-N-L.db`) and reused by later runs of the same size.
2. Opens it the way HQ does (`hq.chain.Chain`, so every migration, report indexes included,
   is applied once), then for every report: the report through `schema.reports.run` and
   its rendering to CSV, and the floor: one plain SQL statement computing the same figures
   from the same rows (the best plain SQL known for them; for most reports the very
   statement the report runs), straight through sqlite3 on the same connection. Report and
   floor alternate: one untimed warm-up round, then `--repeat` rounds (order flipped every
   round), medians kept.

Last line: `reports: worst_floor_ratio=.. worst_s=.. <name>_s=.. <name>_floor_s=.. ...`
Goals: every report within 3x of its floor and under 10 s.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hq.chain import Chain

OUTLETS = 20
TILLS = 4
LINES_PER_SALE = 10
YEAR_S = 366 * 86400


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def loadavg() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


# --- building ---------------------------------------------------------------------------
def _ids(expr: str, prefix: str) -> str:
    """A 36-character id that sorts like `expr` (UUIDv7 ids sort by time, as here)."""
    return f"printf('{prefix}%07x-0000-7000-8000-%012x', {expr}, ({expr}) * 2654435761 % 281474976710656)"


def build(path: Path, customers: int, lines: int) -> None:
    sales = lines // LINES_PER_SALE
    tmp = path.with_name(path.name + ".building")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    Chain(tmp).close()  # schema and every migration, as HQ creates it
    conn = sqlite3.connect(tmp, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    t0 = time.monotonic()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO outlets (outlet_id, token_hash, card_range, created_at) VALUES (?,?,?,?)",
        [(f"O{i:02d}", f"hash{i}", i, "2023-12-01T00:00:00.000000Z") for i in range(1, OUTLETS + 1)])
    cid = _ids("i", "c")
    log(f"build: {customers:,} customers")
    conn.execute(f"""
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {customers})
        INSERT INTO customers (customer_id, kind, given_name, surname, category, created_at,
                               origin_outlet, search_name)
        SELECT {cid}, 'person', 'Given' || i, 'Surname' || i,
               char(65 + (i * 7 % 10 + 3) / 4 % 4),
               '2023-12-01T00:00:00.000000Z', printf('O%02d', 1 + i % {OUTLETS}),
               'surname' || i || ' given' || i
        FROM n""")
    log(f"build: {lines:,} sale lines in {sales:,} receipts ({time.monotonic() - t0:.0f} s)")
    sid = _ids("s.i", "s")
    # sale_lines first, in sale_id order (an append-only B-tree), computed from (sale, line).
    conn.execute(f"""
        WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < {sales}),
        l(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM l WHERE n + 1 < {LINES_PER_SALE}),
        v AS (SELECT {sid} AS sale_id, s.i AS i, l.n AS n,
                     1 + (s.i + l.n) % 3 AS qty, 50 + (s.i * 31 + l.n * 977) % 4950 AS unit_price,
                     (s.i * 7 + l.n) % 4 AS disc
              FROM s, l)
        INSERT INTO sale_lines (sale_id, line_no, sku, name, division, qty, unit_price, gross,
                                discount, net)
        SELECT sale_id, n, printf('SKU%04d', (i * 13 + n * 101) % 2000),
               printf('Item %04d', (i * 13 + n * 101) % 2000),
               printf('div%d', (i + n) % 10), qty, unit_price, qty * unit_price,
               qty * unit_price * disc * 5 / 100, qty * unit_price - qty * unit_price * disc * 5 / 100
        FROM v ORDER BY sale_id, n""")
    log(f"build: receipts ({time.monotonic() - t0:.0f} s)")
    # A customer's receipt count varies (a random customer per receipt: ~Poisson).
    conn.execute(f"""
        INSERT INTO sales (sale_id, hq_seq, outlet_id, customer_id, till_id, at, total_gross,
                           total_discount, total_net, points_earned, paid_credit)
        SELECT sale_id, rn, printf('O%02d', 1 + abs(random()) % {OUTLETS}),
               printf('c%07x-0000-7000-8000-%012x', c, c * 2654435761 % 281474976710656),
               printf('T%d', 1 + abs(random()) % {TILLS}),
               strftime('%Y-%m-%dT%H:%M:%S', '2024-01-01', '+' || ((rn - 1) * {YEAR_S} / {sales})
                        || ' seconds') || '.000000Z',
               g, d, t, t / 100, CASE WHEN rn % 7 = 0 THEN t ELSE 0 END
        FROM (SELECT sale_id, row_number() OVER (ORDER BY sale_id) AS rn,
                     abs(random()) % {customers} AS c,
                     SUM(gross) AS g, SUM(discount) AS d, SUM(net) AS t
              FROM sale_lines GROUP BY sale_id)""")
    log(f"build: tallies, redemptions, invoices ({time.monotonic() - t0:.0f} s)")
    conn.execute("""
        INSERT INTO customer_tally (customer_id, purchases_total, purchases_count, points_earned,
                                    points_used, discount_total)
        SELECT customer_id, SUM(total_net), COUNT(*), SUM(points_earned), 0, SUM(total_discount)
        FROM sales GROUP BY customer_id""")
    conn.execute("""
        INSERT INTO customer_tally (customer_id)
        SELECT customer_id FROM customers WHERE customer_id NOT IN
            (SELECT customer_id FROM customer_tally)""")
    rid = _ids("rowid", "r")
    conn.execute(f"""
        INSERT INTO redemptions (redemption_id, hq_seq, outlet_id, customer_id, gift_sku,
                                 gift_name, qty, points_spent, at)
        SELECT {rid}, hq_seq, outlet_id, customer_id,
               'GIFT-' || (rowid % 4), 'Gift ' || (rowid % 4), 1 + rowid % 2,
               (1 + rowid % 2) * (500 + 300 * (rowid % 4)), at
        FROM sales WHERE rowid % 10 = 0""")
    conn.execute("""
        UPDATE customer_tally SET points_used = r.p
        FROM (SELECT customer_id, SUM(points_spent) AS p FROM redemptions GROUP BY customer_id) r
        WHERE customer_tally.customer_id = r.customer_id""")
    # point lots: one per receipt; what was spent comes off the oldest (their sum is the
    # balance); a balance below zero is one deficit lot
    conn.execute("""
        INSERT INTO customer_lots (customer_id, lot_id, earned_on, points, expires_on)
        SELECT customer_id, sale_id, day, kept,
               date(day, 'start of month', '+13 months', '-1 day')
        FROM (SELECT s.customer_id, s.sale_id, substr(s.at, 1, 10) AS day,
                     MIN(s.points_earned, SUM(s.points_earned) OVER (
                         PARTITION BY s.customer_id ORDER BY s.at, s.sale_id)
                         - t.points_used) AS kept
              FROM sales s JOIN customer_tally t ON t.customer_id = s.customer_id)
        WHERE kept > 0""")
    conn.execute("""
        INSERT INTO customer_lots (customer_id, lot_id, earned_on, points)
        SELECT customer_id, 'deficit', '0001-01-01', points_earned - points_used
        FROM customer_tally WHERE points_earned < points_used""")
    conn.execute("""INSERT INTO master (kind, key, data) VALUES ('programme', 'programme',
        '{"expiry": {"kind": "end_of_month", "months": 12, "since": "2024-01-01"}}')""")
    iid = _ids("i", "v")
    conn.execute(f"""
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {customers // 10})
        INSERT INTO invoices (invoice_id, number, customer_id, period_from, period_to, issued_on,
                              due_on, amount, paid_amount, status, paid_on, paid_via)
        SELECT {iid}, printf('2024-%07d', i),
               printf('c%07x-0000-7000-8000-%012x', i * 10 % {customers},
                      (i * 10 % {customers}) * 2654435761 % 281474976710656),
               date('2024-01-01', '+' || (i % 12) || ' months'),
               date('2024-01-01', '+' || (i % 12 + 1) || ' months'),
               date('2024-01-01', '+' || (i % 12 + 1) || ' months'),
               date('2024-01-01', '+' || (i % 12 + 1) || ' months', '+14 days'),
               1000 + i % 50000,
               CASE WHEN i % 5 < 3 THEN 1000 + i % 50000 ELSE 0 END,
               CASE i % 5 WHEN 0 THEN 'paid' WHEN 1 THEN 'paid' WHEN 2 THEN 'paid'
                          WHEN 3 THEN 'overdue' ELSE 'past_term' END,
               CASE i % 5 WHEN 0 THEN date('2024-01-01', '+' || (i % 12 + 1) || ' months', '+3 days')
                          WHEN 1 THEN date('2024-01-01', '+' || (i % 12 + 1) || ' months', '+20 days')
                          WHEN 2 THEN date('2024-01-01', '+' || (i % 12 + 1) || ' months', '+10 days')
                          END,
               CASE WHEN i % 5 < 3 THEN 'bank' END
        FROM n""")
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    os.replace(tmp, path)
    log(f"build: done in {time.monotonic() - t0:.0f} s, {path.stat().st_size / 1e6:.0f} MB")


# --- measuring --------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="20,000 customers, 200,000 sale lines")
    ap.add_argument("--customers", type=int)
    ap.add_argument("--lines", type=int)
    ap.add_argument("--dir", default="/var/tmp/loyalty-bench", help="where built files are kept")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--build-only", action="store_true")
    args = ap.parse_args(argv)
    customers = args.customers or (20_000 if args.quick else 1_000_000)
    lines = args.lines or (200_000 if args.quick else 10_000_000)
    path = Path(args.dir) / f"reports-hq-lots-{customers}-{lines}.db"  # "lots": issue 11
    path.parent.mkdir(parents=True, exist_ok=True)
    log(f"load average before: {loadavg()}")
    if not path.exists():
        build(path, customers, lines)
    else:
        log(f"reusing {path}")
    if args.build_only:
        return 0
    return measure(path, customers, lines, args.repeat)


def measure(path: Path, customers: int, lines: int, repeat: int) -> int:
    from schema import reports

    t0 = time.monotonic()
    Chain(path).close()  # migrations (report indexes included) applied once, as HQ does
    log(f"opened as HQ (migrations) in {time.monotonic() - t0:.1f} s")
    conn = reports.connect(path)
    busiest = conn.execute("SELECT customer_id FROM sales GROUP BY customer_id "
                           "ORDER BY COUNT(*) DESC LIMIT 1").fetchone()[0]
    cases = cases_for(busiest)
    # Warm the page cache once (both sides then read from memory, as a repeated report does).
    t0 = time.monotonic()
    conn.execute("SELECT SUM(net) FROM sale_lines").fetchone()
    lines_sum_s = time.monotonic() - t0
    conn.execute("SELECT COUNT(*), SUM(total_net) FROM sales").fetchone()
    conn.execute("SELECT COUNT(*), MAX(category) FROM customers").fetchone()
    conn.execute("SELECT SUM(points_earned - points_used) FROM customer_tally").fetchone()
    results: dict[str, tuple[float, float]] = {}
    for name, report, opts, floor_sql, floor_params in cases:
        rep_times: list[float] = []
        floor_times: list[float] = []
        for round_no in range(-1, repeat):  # round -1: untimed warm-up of both
            def run_report(report: str = report, opts: dict[str, Any] = opts) -> None:
                out = reports.run(conn, report, reports.Filters(**opts))
                reports.render_csv(out)

            def run_floor(sql: str = floor_sql, params: tuple[Any, ...] = floor_params) -> None:
                conn.execute(sql, params).fetchall()

            pair: list[tuple[Callable[[], Any], list[float]]] = [
                (run_report, rep_times), (run_floor, floor_times)]
            if round_no % 2:
                pair.reverse()
            for fn, bucket in pair:
                spent = timed(fn)
                if round_no >= 0:
                    bucket.append(spent)
        rep, flo = statistics.median(rep_times), statistics.median(floor_times)
        results[name] = (rep, flo)
        log(f"{name:<28} report {rep:9.4f} s   floor {flo:9.4f} s   ratio {rep / flo:6.2f}")
    worst_ratio = max(r / f for r, f in results.values())
    worst_s = max(r for r, _ in results.values())
    log(f"reference: SELECT SUM(net) FROM sale_lines (cold-ish first read) {lines_sum_s:.3f} s")
    log(f"load average after: {loadavg()}")
    fields = [f"worst_floor_ratio={worst_ratio:.2f}", f"worst_s={worst_s:.3f}"]
    for name, (rep, flo) in results.items():
        fields += [f"{name}_s={rep:.4f}", f"{name}_floor_s={flo:.4f}"]
    fields += [f"lines_sum_s={lines_sum_s:.3f}", f"customers={customers}", f"sale_lines={lines}",
               f"goals_met={'yes' if worst_ratio <= 3 and worst_s < 10 else 'no'}"]
    print("reports: " + " ".join(fields))
    return 0


def cases_for(customer: str) -> list[tuple[str, str, dict[str, Any], str, tuple[Any, ...]]]:
    """(bench name, report, filters, floor SQL, floor parameters). Each floor is one plain SQL
    statement computing the same figures from the same rows (the best plain SQL we know for
    them, index hints included), run straight through sqlite3: what is left between the
    report and its floor is the library (several statements, rows to Python, CSV)."""
    year = "+s.at >= '2024-01-01' AND +s.at < '2025-01-01'"
    per_customer = ("SELECT s.customer_id, COUNT(*) AS n, SUM(s.total_gross) AS g, "
                    "SUM(s.total_discount) AS d, SUM(s.total_net) AS t, "
                    "SUM(s.total_discount > 0) AS nd FROM sales s WHERE " + year +
                    " GROUP BY s.customer_id")
    cust = "customers c INDEXED BY customers_category"
    balance = "t.points_earned - t.points_used - t.points_expired"
    last = ("coalesce(l.expires_on, date(max(l.earned_on, '2024-01-01'), 'start of month', "
            "'+13 months', '-1 day'))")
    split = ("SUM(CASE WHEN l.points > 0 AND (l.spendable_on IS NULL OR l.spendable_on <= "
             "'2024-12-31') THEN l.points ELSE 0 END), SUM(CASE WHEN l.points > 0 AND "
             "l.spendable_on > '2024-12-31' THEN l.points ELSE 0 END), " + ", ".join(
                 f"SUM(CASE WHEN l.points > 0 AND {last} <= '{day}' THEN l.points ELSE 0 END)"
                 for day in ("2025-01-30", "2025-03-01", "2025-03-31"))
             + ", SUM(MIN(l.points, 0))")
    return [
        ("turnover", "turnover", {"date_from": "2024-01-01", "date_to": "2024-12-31"},
         ("SELECT outlet_id, COUNT(*), SUM(total_gross), SUM(total_discount), SUM(total_net) "
         "FROM sales WHERE at >= '2024-01-01' AND at < '2025-01-01' GROUP BY outlet_id"), ()),
        ("turnover_month", "turnover", {"date_from": "2024-03-01", "date_to": "2024-03-31"},
         ("SELECT outlet_id, COUNT(*), SUM(total_gross), SUM(total_discount), SUM(total_net) "
         "FROM sales WHERE at >= '2024-03-01' AND at < '2024-04-01' GROUP BY outlet_id"), ()),
        ("turnover_by_category", "turnover",
         {"date_from": "2024-01-01", "date_to": "2024-12-31", "by": "category"},
         (f"SELECT c.category, COUNT(*), SUM(a.n), SUM(a.g), SUM(a.d), SUM(a.t) FROM "
         f"({per_customer}) a JOIN {cust} ON c.customer_id = a.customer_id GROUP BY 1"), ()),
        ("turnover_category_filter", "turnover",
         {"date_from": "2024-01-01", "date_to": "2024-12-31", "category": "A"},
         ("SELECT outlet_id, COUNT(*), SUM(total_gross), SUM(total_discount), SUM(total_net) "
         "FROM sales WHERE at >= '2024-01-01' AND at < '2025-01-01' AND customer_id IN "
         "(SELECT customer_id FROM customers WHERE category = 'A') GROUP BY outlet_id"), ()),
        ("discounts", "discounts", {"date_from": "2024-01-01", "date_to": "2024-12-31"},
         ("SELECT outlet_id, COUNT(*), SUM(total_discount > 0), SUM(total_gross), "
         "SUM(total_discount) FROM sales WHERE at >= '2024-01-01' AND at < '2025-01-01' "
         "GROUP BY outlet_id"), ()),
        ("receipts", "receipts", {"customer": customer},
         ("SELECT s.at, s.outlet_id, l.*, s.total_net FROM sales s "
         "JOIN sale_lines l ON l.sale_id = s.sale_id WHERE s.customer_id = ? "
         "ORDER BY s.at, s.sale_id, l.line_no"), (customer,)),
        ("frequency", "frequency", {"date_from": "2024-01-01", "date_to": "2024-12-31"},
         f"SELECT n, COUNT(*), SUM(t) FROM ({per_customer}) GROUP BY n", ()),
        ("frequency_by_category", "frequency",
         {"date_from": "2024-01-01", "date_to": "2024-12-31", "by": "category"},
         (f"SELECT c.category, COUNT(*), SUM(a.n), SUM(a.t) FROM ({per_customer}) a "
         f"JOIN {cust} ON c.customer_id = a.customer_id GROUP BY 1"), ()),
        ("payment_discipline", "payment-discipline", {},
         ("SELECT a.*, CASE WHEN c.kind = 'organisation' THEN c.name ELSE c.given_name || ' ' "
         "|| c.surname END FROM (SELECT customer_id, COUNT(*), SUM(amount), "
         "SUM(status = 'paid'), SUM(status = 'paid' AND substr(paid_on, 1, 10) <= due_on), "
         "SUM(status = 'paid' AND substr(paid_on, 1, 10) > due_on), SUM(status = 'unpaid'), "
         "SUM(status = 'overdue'), SUM(status = 'past_term'), "
         "SUM(CASE WHEN status = 'paid' THEN 0 ELSE amount - paid_amount END) "
         "FROM invoices GROUP BY customer_id) a LEFT JOIN customers c "
         "ON c.customer_id = a.customer_id ORDER BY 1"), ()),
        ("gifts", "gifts", {"date_from": "2024-01-01", "date_to": "2024-12-31"},
         ("SELECT gift_sku, MAX(gift_name), outlet_id, COUNT(*), SUM(qty), SUM(points_spent) "
         "FROM redemptions WHERE at >= '2024-01-01' AND at < '2025-01-01' "
         "GROUP BY gift_sku, outlet_id"), ()),
        ("points_liability", "points-liability", {"today": "2024-12-31"},
         ("SELECT (SELECT COUNT(*) FROM customers), a.*, b.* FROM (SELECT "
          f"SUM({balance} > 0), SUM(points_earned), SUM(points_used), SUM(points_expired), "
          f"SUM({balance}) FROM customer_tally t) a, (SELECT {split} FROM customer_lots l) b"),
         ()),
        # the dashboard's series and snapshots (web/dashboard.py)
        ("turnover_by_day", "turnover",
         {"date_from": "2024-01-01", "date_to": "2024-12-31", "by": "day"},
         ("SELECT substr(at, 1, 10), outlet_id, COUNT(*), SUM(total_gross), "
          "SUM(total_discount), SUM(total_net) FROM sales WHERE at >= '2024-01-01' "
          "AND at < '2025-01-01' GROUP BY 1, 2"), ()),
        ("members_by_week", "members", {"date_from": "2024-01-01", "date_to": "2024-12-31"},
         ("SELECT date(substr(created_at, 1, 10), 'weekday 0', '-6 days'), COUNT(*) "
          "FROM customers WHERE created_at >= '2024-01-01' AND created_at < '2025-01-01' "
          "GROUP BY 1"), ()),
        ("activity_by_category", "activity", {"date_to": "2024-12-31", "by": "category"},
         ("SELECT c.category, COUNT(*), SUM(l.last >= '2024-10-02'), "
          "SUM(l.last < '2024-10-02'), SUM(l.last IS NULL) FROM customers c LEFT JOIN "
          "(SELECT customer_id, MAX(at) AS last FROM sales WHERE +at < '2025-01-01' "
          "GROUP BY customer_id) l ON l.customer_id = c.customer_id "
          "WHERE c.created_at < '2025-01-01' GROUP BY 1"), ()),
        ("points_by_week", "points-liability",
         {"date_from": "2024-01-01", "date_to": "2024-12-31", "by": "week"},
         ("SELECT date(substr(at, 1, 10), 'weekday 0', '-6 days'), SUM(points_earned) "
          "FROM sales WHERE at >= '2024-01-01' AND at < '2025-01-01' GROUP BY 1"), ()),
        ("invoice_ageing", "invoice-ageing", {},
         ("SELECT status, COUNT(*), SUM(amount), SUM(amount - paid_amount) FROM invoices "
          "WHERE status IN ('unpaid', 'overdue', 'past_term') GROUP BY status"), ()),
        ("points_liability_by_category", "points-liability",
         {"by": "category", "today": "2024-12-31"},
         ("SELECT a.*, b.* FROM (SELECT c.category, COUNT(*), SUM(t.points_earned > "
          "t.points_used), SUM(t.points_earned), SUM(t.points_used), SUM(t.points_expired), "
          f"SUM({balance}) FROM {cust} LEFT JOIN customer_tally t ON t.customer_id = "
          f"c.customer_id GROUP BY 1) a LEFT JOIN (SELECT c.category AS k, {split} FROM "
          f"customer_lots l JOIN {cust} ON c.customer_id = l.customer_id GROUP BY 1) b "
          "ON b.k = a.category"), ()),
    ]


if __name__ == "__main__":
    sys.exit(main())
