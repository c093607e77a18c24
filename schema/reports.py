"""Reports over an HQ or an outlet database (issue 6; `loyalty report NAME`, docs/reports.md).

One library for both kinds of database: only SQL over the tables of schema/hq_tables.py and
schema/agent_tables.py, so it imports nothing from agent/ or hq/. The kind is detected from
the tables (HQ has `outlets` and `events`; an outlet has `outbox`).

Reports (docs/reports.md has the details and examples):
- `turnover`: receipts, gross, discount, net; by outlet at HQ, by till at an outlet; with
  `by="category"` per customer category with buying customers and receipts per customer;
  then what returns and voids in the period gave back and the net of returns.
- `discounts`: discount given; by action at an outlet (sale_lines.actions), by outlet at HQ
  (HQ keeps no per-line actions); or by category; then the discount returned goods took
  back and the discount net of returns.
- `receipts`: one customer's receipts, line by line (needs `customer`).
- `frequency`: how many customers made 0, 1, 2, ... receipts in the period; or by category.
- `payment-discipline`: consolidated invoices per customer: issued, paid on time, paid
  late, unpaid, overdue, past term, outstanding.
- `gifts`: gifts handed out, per gift and outlet (HQ) or per gift (outlet): qty and points.
- `gift-handouts`: every hand-out, and every gift given back (negative qty and points).
- `returns`: every return and void, one row each (where, which till, kind, the receipt's
  reference, reason, who approved, value, refund, points), for fraud control.
- `points-liability`: outstanding points now (customer_tally: earned - used - expired), and
  from the point lots (customer_lots) split into active (spendable), pending, expiring
  within 30/60/90 days of `today` under the programme's expiry rule, and negative; by day,
  week or month: the points earned and used in each and the balance at its end.
- `members`: customers joining per week (or day, month) and the running count.
- `activity`: members active (a receipt in the last ACTIVE_DAYS days), lapsed and never
  buying, as of the end of a day.
- `invoice-ageing`: what is owed on consolidated invoices, current, overdue and past term.

Over time (`by` = day, week or month: turnover, members, points-liability): one row per
bucket of the period, every bucket listed (0 when nothing happened in it), so a chart of the
report is the report itself; a week starts on Monday and is named by that day.

Filters: period (`date_from`/`date_to`, both dates INCLUSIVE, UTC: rows with
`date_from <= at < date_to + 1 day`), outlet (HQ only), category (the customer's CURRENT
category), customer; `today`, the day a balance "now" is split as of (the UTC date when
not given). A refusal names a filter the way the caller shows it: `--from` on the
command line (`CLI_NAMES`), the form's "From" on a web page (`FORM_NAMES`), never a pattern.
Amounts are integers in minor units; ratios are integers in
hundredths (rendered with 2 decimals). Promises: every figure is one SQL aggregate over the
rows the filters select (no Python loop over sales); the database is never written.
Must never: use floats for money, or count a receipt twice.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from schema.database import storage_error
from schema.dialect import Dialect, count_if, dialect_of
from schema.errors import InvalidRequest, NotFound, mask_card
from schema.lots import ExpiryRule
from schema.masterdata import programme_of
from schema.money import hundredths, money

NAMES = ("turnover", "discounts", "receipts", "frequency", "payment-discipline", "gifts",
         "points-liability", "gift-handouts", "returns", "members", "activity",
         "invoice-ageing")
GRAINS = ("day", "week", "month")  # the groupings over time
GROUPINGS = ("category", *GRAINS)
# the groupings each report takes besides its default (receipts, gift-handouts and returns
# take none and say why in their own words)
GROUPS: dict[str, tuple[str, ...]] = {
    "turnover": GROUPINGS, "discounts": ("category",), "receipts": (),
    "frequency": ("category",), "payment-discipline": ("category",), "gifts": ("category",),
    "points-liability": GROUPINGS, "gift-handouts": (), "returns": (), "members": GRAINS,
    "activity": ("category",), "invoice-ageing": ("category",)}
ACTIVE_DAYS = 90  # a member with a receipt in the last 90 days is active (docs/reports.md)
MAX_DAYS = 3700  # about ten years: a longer series is refused (choose a coarser grain)
ProgressFn = Callable[[int, int], None]  # (rows read, rows in scope)
PROGRESS_AFTER_S = 1.0  # short reports stay silent
PROGRESS_EVERY_OPS = 100_000  # SQLite VM instructions between progress checks
ROW_SAMPLE = 1024  # during a scan, one row in this many (by rowid) is counted in Python
# the tables a report scans whose rows progress counts (rowid tables), by their alias
_COUNTED = {"s": "sales", "r": "redemptions", "i": "invoices"}


@dataclass(frozen=True)
class Filters:
    date_from: str | None = None  # YYYY-MM-DD, inclusive
    date_to: str | None = None  # YYYY-MM-DD, inclusive (the whole day)
    outlet: str | None = None
    category: str | None = None
    customer: str | None = None
    by: str | None = None  # None, "category" or a grain over time: "day", "week", "month"
    today: str | None = None  # YYYY-MM-DD: "now" for points-liability (default: UTC today)


# How each filter is called where a person sets it: in a refusal's message
CLI_NAMES = {"date_from": "--from", "date_to": "--to", "outlet": "--outlet",
             "category": "--category", "customer": "--customer", "by": "--by",
             "today": "--today"}
FORM_NAMES = {"date_from": "From", "date_to": "To", "outlet": "Outlet",
              "category": "Category", "customer": "Customer id", "by": "Group",
              "today": "Today"}
EXPIRING_DAYS = (30, 60, 90)  # points-liability: what expires within these many days


@dataclass(frozen=True)
class Column:
    name: str  # CSV header
    kind: str = "int"  # text | int | money (minor units) | ratio (hundredths)
    label: str = ""  # table header (defaults to name)


@dataclass
class Report:
    name: str
    title: str
    kind: str  # "hq" or "outlet"
    columns: list[Column]
    rows: list[tuple[Any, ...]]
    totals: tuple[Any, ...] | None = None
    notes: list[str] = field(default_factory=list)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip((c.name for c in self.columns), row, strict=True)) for row in self.rows]


# --- opening ------------------------------------------------------------------------------
def connect(path: str | Path) -> sqlite3.Connection:
    """A read-only use of an existing database (no migrations run, nothing written)."""
    if not Path(path).is_file():
        raise NotFound(f"no database at {path}: give the path of HQ's or an outlet's database")
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA query_only=ON")
        # Reports read much of the file: a big page cache and memory-mapped reads (read-only
        # use, so mmap cannot corrupt anything) keep index lookups out of system calls.
        conn.execute("PRAGMA cache_size=-262144")
        conn.execute("PRAGMA mmap_size=4294967296")
    except sqlite3.Error as exc:
        conn.close()
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
            raise InvalidRequest(f"{path} is not a loyalty database (not even SQLite): check "
                                 "the --db path") from exc
        raise storage_error(exc, where=str(path)) or exc
    return conn


@contextlib.contextmanager
def reading(database: str | Path | Any) -> Iterator[sqlite3.Connection]:
    """A connection to run reports on: a database file's own read-only connection (closed
    after), or, given HQ's store instead of a path (HQ on PostgreSQL), one snapshot of it
    (`snapshot()`: every report of the block sees the same state)."""
    if isinstance(database, (str, Path)):
        conn = connect(database)
        try:
            yield conn
        finally:
            conn.close()
        return
    with database.snapshot() as conn:
        yield conn


def kind_of(conn: sqlite3.Connection) -> str:
    if dialect_of(conn).postgres:  # only HQ's store is ever PostgreSQL
        return "hq"
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise InvalidRequest(f"not a loyalty database: {exc}") from exc
    if {"outlets", "events"} <= tables:
        return "hq"
    if "outbox" in tables:
        return "outlet"
    raise InvalidRequest("not a loyalty database (neither HQ's nor an outlet's tables)")


# --- running ------------------------------------------------------------------------------
class _Ctx:
    """What every report needs: the connection, its kind, the checked filters, progress.

    Progress counts ROWS: the rows in scope of each table a step scans (sales, redemptions,
    invoices) are counted first (an index-only COUNT), and the scan itself reports every
    ROW_SAMPLE-th row it reads (a rowid test in its WHERE clause calls back into Python),
    so a long report says how far it got out of a known total; the CLI adds the ETA."""

    def __init__(self, conn: sqlite3.Connection, kind: str, f: Filters,
                 progress: ProgressFn | None, names: Mapping[str, str] = CLI_NAMES) -> None:
        self.conn, self.kind, self.f, self.names = conn, kind, f, names
        self.lo, self.hi = _period(f, names)
        self.today = _day(f.today, "today", names) or datetime.now(UTC).date()
        self.progress = progress
        self.started = time.monotonic()
        self.last = 0.0
        self.base = 0  # rows of the scans finished
        self.seen = 0  # rows read by the scan running (sampled)
        self.scan = 0  # rows in scope of the scan running
        self.counting: tuple[str, list[Any]] | None = None  # COUNT(*) of the next scan
        self.dialect = dialect_of(conn)
        # SQLite reports progress during a scan (a callback per sampled row, a progress
        # handler); PostgreSQL, which has neither, after each step (rows in scope counted)
        self.sampled = progress is not None and not self.dialect.postgres
        if self.sampled:
            conn.create_function("_report_row", 1, self._row)

    def _row(self, _rowid: int) -> int:
        self.seen += ROW_SAMPLE
        return 1

    @property
    def rows(self) -> tuple[int, int]:
        """(rows read, rows in scope) so far."""
        return self.base + min(self.seen, self.scan), self.base + self.scan

    @property
    def hq(self) -> bool:
        return self.kind == "hq"

    def indexed(self, name: str) -> str:
        """`INDEXED BY name` when the database has that index (HQ after m003), else ''
        (always on PostgreSQL, which has no such clause and plans by itself)."""
        if self.dialect.postgres:
            return ""
        found = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                                  (name,)).fetchone()
        return f" INDEXED BY {name}" if found else ""

    def has(self, table: str) -> bool:
        """The database has `table` (one written before the way back has no `returns`;
        HQ's PostgreSQL schema is always current)."""
        if self.dialect.postgres:
            return self.conn.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema()"
                " AND table_name = ?", (table,)).fetchone() is not None
        return self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                 (table,)).fetchone() is not None

    def customers(self) -> str:
        """`customers c` read through the narrow (customer_id, category) index if present."""
        return "customers c" + self.indexed("customers_category")

    def _tick(self) -> int:
        now = time.monotonic()
        if now - self.started >= PROGRESS_AFTER_S and now - self.last >= 0.25 and self.scan:
            self.last = now
            assert self.progress is not None
            self.progress(*self.rows)
        return 0

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One step of the report: an aggregate query, reported as progress if it is long."""
        counting, self.counting = self.counting, None
        if self.progress is not None:
            if counting is not None:
                self.scan = int(self.conn.execute(*counting).fetchone()[0])
                self.seen = 0
            if self.sampled:
                self.conn.set_progress_handler(self._tick, PROGRESS_EVERY_OPS)
        try:
            rows = [tuple(r) for r in self.conn.execute(sql, list(params)).fetchall()]
        finally:
            if self.sampled:
                self.conn.set_progress_handler(None, 0)
        scanned, self.base, self.scan, self.seen = self.scan, self.base + self.scan, 0, 0
        if (self.progress is not None and scanned
                and time.monotonic() - self.started >= PROGRESS_AFTER_S):
            self.progress(*self.rows)
        return rows

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        return self.query(sql, params)[0]

    def scope(self, alias: str, *, at: str | None = "at", outlet: bool = True,
              join_category: bool = False, by_customer: bool = False
              ) -> tuple[str, str, list[Any]]:
        """(JOIN clause, WHERE clause, parameters) selecting the rows of `alias` in scope.

        by_customer: the rows are aggregated per customer, so the period must not steer
        SQLite to the `at` index (a unary + keeps it on the customer-ordered covering index,
        sales_customer_totals, instead of one table lookup per sale)."""
        where: list[str] = []
        params: list[Any] = []
        plus = "+" if by_customer and not self.dialect.postgres else ""
        if at and self.lo:
            where.append(f"{plus}{alias}.{at} >= ?")
            params.append(self.lo)
        if at and self.hi:
            where.append(f"{plus}{alias}.{at} < ?")
            params.append(self.hi)
        if outlet and self.f.outlet and self.hq:
            where.append(f"{alias}.outlet_id = ?")
            params.append(self.f.outlet)
        if self.f.customer:
            where.append(f"{alias}.customer_id = ?")
            params.append(self.f.customer)
        join = ""
        if join_category:
            join = f" JOIN {self.customers()} ON c.customer_id = {alias}.customer_id"
        if self.f.category and join_category:
            where.append("c.category = ?")
            params.append(self.f.category)
        elif self.f.category:  # one set of ids, probed per row: no lookup per row
            where.append(f"{alias}.customer_id IN (SELECT customer_id FROM customers"
                         " WHERE category = ?)")
            params.append(self.f.category)
        if self.progress is not None and alias in _COUNTED:  # the next query scans these
            clause = (" WHERE " + " AND ".join(where)) if where else ""
            self.counting = (f"SELECT COUNT(*) FROM {_COUNTED[alias]} {alias}{join}{clause}",
                             list(params))
            if self.sampled:
                where.append(f"({alias}.rowid % {ROW_SAMPLE} != 0 OR "
                             f"_report_row({alias}.rowid))")
        return join, (" WHERE " + " AND ".join(where)) if where else "", params


def _day(value: str | None, what: str, names: Mapping[str, str]) -> date | None:
    if value is None:
        return None
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{names[what]}: enter a date as YYYY-MM-DD (a real day), "
                             f"not {value[:40]!r}") from None


def _period(f: Filters, names: Mapping[str, str]) -> tuple[str | None, str | None]:
    def day(value: str | None, what: str) -> date | None:
        return _day(value, what, names)

    lo, hi = day(f.date_from, "date_from"), day(f.date_to, "date_to")
    if lo and hi and hi < lo:
        raise InvalidRequest(f"the period ends ({hi}) before it starts ({lo})")
    return (lo.isoformat() if lo else None,
            (hi + timedelta(days=1)).isoformat() if hi else None)


def period(date_from: str | None, date_to: str | None,
           names: Mapping[str, str] = CLI_NAMES) -> tuple[str | None, str | None]:
    """Two inclusive UTC days as the half-open range [from, to + 1 day) of ISO texts (what
    the reports filter by, for any page that filters by a period, e.g. the audit trail);
    InvalidRequest naming the fields by `names`."""
    return _period(Filters(date_from=date_from, date_to=date_to), names)


def run(conn: sqlite3.Connection, name: str, filters: Filters = Filters(),
        progress: ProgressFn | None = None, names: Mapping[str, str] = CLI_NAMES) -> Report:
    """Runs report `name` over the database behind `conn` (HQ's or an outlet's); a refusal
    calls the filters by `names` (CLI_NAMES or FORM_NAMES)."""
    if name not in NAMES:
        raise InvalidRequest(f"unknown report {name!r} (known: {', '.join(NAMES)})")
    by = filters.by
    if by is not None and by not in GROUPINGS:
        raise InvalidRequest(f"reports can be grouped by {', '.join(GROUPINGS)}, not {by!r}")
    if by and name == "receipts":
        raise InvalidRequest(f"the receipts report lists one customer's lines: {names['by']} "
                             "does not apply")
    if by and GROUPS[name] and by not in GROUPS[name]:
        takers = ", ".join(n for n in NAMES if by in GROUPS[n])
        raise InvalidRequest(f"{names['by']} {by} does not apply to {name}: it works for "
                             f"{takers}")
    kind = kind_of(conn)
    if filters.outlet and kind == "outlet":
        own = conn.execute("SELECT value FROM meta WHERE key = 'outlet_id'").fetchone()
        if own is None or own[0] != filters.outlet:
            raise InvalidRequest("an outlet's database holds only its own figures: "
                                 f"{names['outlet']} {filters.outlet} needs HQ's database")
    builder = _REPORTS[name]
    ctx = _Ctx(conn, kind, filters, progress, names)
    report = builder(ctx)
    report.notes[:0] = _describe(ctx)
    return report


def _describe(ctx: _Ctx) -> list[str]:
    f = ctx.f
    where = "headquarters (whole chain)" if ctx.hq else "this outlet"
    parts = [f"database: {where}"]
    if ctx.lo or ctx.hi:
        parts.append(f"period: {f.date_from or 'start'} .. {f.date_to or 'now'} (inclusive, UTC)")
    for label, value in (("outlet", f.outlet), ("category", f.category),
                         ("customer", f.customer)):
        if value:
            parts.append(f"{label}: {value}")
    return ["; ".join(parts)]


def _hundredths(num: int, den: int) -> int:
    """num/den in hundredths, rounded half up (integers only)."""
    if den == 0:
        return 0
    return (200 * num + den) // (2 * den)


def _pct(part: int, whole: int) -> int:
    """part as a percentage of whole, in hundredths of a percent (12.34 % -> 1234)."""
    return _hundredths(100 * part, whole)


def _avg(num: int, den: int) -> int:
    """num/den rounded half up to a minor unit."""
    return 0 if den == 0 else (2 * num + den) // (2 * den)


# --- the reports --------------------------------------------------------------------------
def _turnover(ctx: _Ctx) -> Report:
    if ctx.f.by in GRAINS:
        return _turnover_over_time(ctx, ctx.f.by)
    if ctx.f.by == "category":
        rows = ctx.query(
            "SELECT c.category, COUNT(*), SUM(a.n), SUM(a.g), SUM(a.d), SUM(a.t)"
            f" FROM ({_per_customer(ctx)}) a JOIN {ctx.customers()}"
            " ON c.customer_id = a.customer_id GROUP BY c.category ORDER BY c.category",
            _per_customer_params(ctx))
        back = _returned_by(ctx, "c.category", category=True)
        found = {r[0]: r[1:] for r in rows}
        out: list[tuple[Any, ...]] = []
        for cat in sorted(set(found) | set(back)):
            cust, n, g, d, t = found.get(cat, (0, 0, 0, 0, 0))
            r = back.get(cat, (0, 0, 0))[0]
            out.append((cat, cust, n, _hundredths(n, cust), g, d, t, _avg(t, cust), r, t - r))
        cust, n = sum(r[1] for r in out), sum(r[2] for r in out)
        g, d, t, r = (sum(row[i] for row in out) for i in (4, 5, 6, 8))
        return Report("turnover", "Turnover by customer category", ctx.kind, [
            Column("category", "text"), Column("customers"), Column("receipts"),
            Column("receipts_per_customer", "ratio"), Column("gross", "money"),
            Column("discount", "money"), Column("net", "money"),
            Column("net_per_customer", "money"), Column("returned", "money"),
            Column("net_of_returns", "money")],
            out, ("TOTAL", cust, n, _hundredths(n, cust), g, d, t, _avg(t, cust), r, t - r),
            [("customers = customers with at least one receipt in the period, by their current "
             "category; receipts_per_customer = buying frequency"), _RETURNS_NOTE])
    key, label = ("outlet_id", "outlet") if ctx.hq else ("COALESCE(till_id, '-')", "till")
    join, where, params = ctx.scope("s")
    rows = ctx.query(
        f"SELECT {key}, COUNT(*), SUM(s.total_gross), SUM(s.total_discount), SUM(s.total_net)"
        f" FROM sales s{join}{where} GROUP BY 1 ORDER BY 1", params)
    back = _returned_by(ctx, "rt.outlet_id" if ctx.hq else "COALESCE(rt.till_id, '-')")
    found = {r[0]: r[1:] for r in rows}
    out = []
    for k in sorted(set(found) | set(back)):
        n, g, d, t = found.get(k, (0, 0, 0, 0))
        r = back.get(k, (0, 0, 0))[0]
        out.append((k, n, g, d, t, _avg(t, n), r, t - r))
    n, g, d, t, r = (sum(row[i] for row in out) for i in (1, 2, 3, 4, 6))
    return Report("turnover", f"Turnover by {label}", ctx.kind, [
        Column(label, "text"), Column("receipts"), Column("gross", "money"),
        Column("discount", "money"), Column("net", "money"), Column("average_receipt", "money"),
        Column("returned", "money"), Column("net_of_returns", "money")],
        out, ("TOTAL", n, g, d, t, _avg(t, n), r, t - r), [_RETURNS_NOTE])


_RETURNS_NOTE = ("returned = the net value returns and voids made in the period gave back, "
                 "where and when they were made (by the returning outlet or till); "
                 "net_of_returns = net - returned")


def _returned_by(ctx: _Ctx, key: str, category: bool = False) -> dict[Any, tuple[int, int, int]]:
    """Per `key` (an expression over `rt`, the returns, or `c.category`): the value, the
    discount and the number of the returns and voids in scope; {} when the database has
    no returns table yet."""
    if not ctx.has("returns"):
        return {}
    join, where, params = ctx.scope("rt", join_category=category)
    return {r[0]: (r[1], r[2], r[3]) for r in ctx.query(
        f"SELECT {key}, SUM(rt.value), SUM(rt.discount), COUNT(*) FROM returns rt{join}{where}"
        " GROUP BY 1", params)}


def _turnover_over_time(ctx: _Ctx, grain: str) -> Report:
    """Per bucket and outlet (HQ) or till (outlet): every bucket of the period for each
    outlet with a receipt in it, 0 where it had none."""
    key, label = ("s.outlet_id", "outlet") if ctx.hq else ("COALESCE(s.till_id, '-')", "till")
    join, where, params = ctx.scope("s")
    found = {(b, k): tuple(v) for b, k, *v in ctx.query(
        f"SELECT {_bucket_sql(ctx, 's.at', grain)}, {key}, COUNT(*), SUM(s.total_gross),"
        f" SUM(s.total_discount), SUM(s.total_net) FROM sales s{join}{where} GROUP BY 1, 2",
        params)}
    back: dict[tuple[str, str], int] = {}
    if ctx.has("returns"):
        rkey = "rt.outlet_id" if ctx.hq else "COALESCE(rt.till_id, '-')"
        join, where, params = ctx.scope("rt")
        back = {(b, k): int(v) for b, k, v in ctx.query(
            f"SELECT {_bucket_sql(ctx, 'rt.at', grain)}, {rkey}, SUM(rt.value) FROM returns rt"
            f"{join}{where} GROUP BY 1, 2", params)}
    keys = sorted({k for _, k in found} | {k for _, k in back})
    out: list[tuple[Any, ...]] = []
    for b in _buckets(ctx, grain, {b for b, _ in found} | {b for b, _ in back}):
        for k in keys:
            n, g, d, t = found.get((b, k), (0, 0, 0, 0))
            r = back.get((b, k), 0)
            out.append((b, k, n, g, d, t, r, t - r))
    totals = ("TOTAL", "", *(sum(r[i] for r in out) for i in (2, 3, 4, 5, 6, 7)))
    return Report("turnover", f"Turnover per {grain} by {label}", ctx.kind, [
        Column(grain, "text"), Column(label, "text"), Column("receipts"),
        Column("gross", "money"), Column("discount", "money"), Column("net", "money"),
        Column("returned", "money"), Column("net_of_returns", "money")],
        out, totals, [_grain_note(grain) + f"; every {grain} is listed for each {label} with a "
                      f"receipt or a return in the period (0 when it had none)", _RETURNS_NOTE])


def _per_customer(ctx: _Ctx) -> str:
    """Receipts and totals per customer in scope, read in customer order (covering index)."""
    _, where, _ = ctx.scope("s", by_customer=True)
    return ("SELECT s.customer_id, COUNT(*) AS n, SUM(s.total_gross) AS g,"
            f" SUM(s.total_discount) AS d, SUM(s.total_net) AS t, {count_if('s.total_discount > 0')}"
            " AS nd"
            f" FROM sales s{where} GROUP BY s.customer_id")


def _per_customer_params(ctx: _Ctx) -> list[Any]:
    return ctx.scope("s", by_customer=True)[2]


def _action_label(actions: str) -> str:
    try:
        labels = json.loads(actions)
    except (TypeError, ValueError):
        labels = [str(actions)]
    return " + ".join(labels) if labels else "(no discount)"


def _discounts(ctx: _Ctx) -> Report:
    columns = [Column("receipts"), Column("discounted_receipts"), Column("gross", "money"),
               Column("discount", "money"), Column("discount_pct", "ratio")]
    if ctx.f.by == "category" or ctx.hq:
        by_cat = ctx.f.by == "category"
        label = "category" if by_cat else "outlet"
        if by_cat:
            rows = ctx.query(
                "SELECT c.category, SUM(a.n), SUM(a.nd), SUM(a.g), SUM(a.d)"
                f" FROM ({_per_customer(ctx)}) a JOIN {ctx.customers()}"
                " ON c.customer_id = a.customer_id GROUP BY 1", _per_customer_params(ctx))
        else:
            join, where, params = ctx.scope("s")
            rows = ctx.query(
                f"SELECT s.outlet_id, COUNT(*), {count_if('s.total_discount > 0')},"
                " SUM(s.total_gross),"
                f" SUM(s.total_discount) FROM sales s{join}{where} GROUP BY 1", params)
        back = _returned_by(ctx, "c.category" if by_cat else "rt.outlet_id", category=by_cat)
        found = {k: (n, nd, g, d) for k, n, nd, g, d in rows}
        out = []
        for k in set(found) | set(back):
            n, nd, g, d = found.get(k, (0, 0, 0, 0))
            dr = back.get(k, (0, 0, 0))[1]
            out.append((k, n, nd, g, d, _pct(d, g), dr, d - dr))
        out.sort(key=lambda r: (-r[4], str(r[0])))
        n, nd, g, d, dr = (sum(r[i] for r in out) for i in (1, 2, 3, 4, 6))
        notes = [] if by_cat else [
            ("HQ keeps no per-line action names (sale_lines has no actions column): discounts "
            "are shown per outlet; an outlet's own report shows them per action")]
        return Report("discounts", f"Discounts by {label}", ctx.kind,
                      [Column(label, "text"), *columns, *_DISCOUNT_BACK], out,
                      ("TOTAL", n, nd, g, d, _pct(d, g), dr, d - dr), [*notes, _DISCOUNT_NOTE])
    join, where, params = ctx.scope("s")
    rows = ctx.query(
        "SELECT l.actions, COUNT(*), COUNT(DISTINCT l.sale_id), SUM(l.gross), SUM(l.discount)"
        f" FROM sales s JOIN sale_lines l ON l.sale_id = s.sale_id{join}{where}"
        " GROUP BY l.actions", params)
    merged: dict[str, list[int]] = {}
    for actions, lines, receipts, g, d in rows:
        acc = merged.setdefault(_action_label(actions), [0, 0, 0, 0, 0])
        for i, v in enumerate((lines, receipts, g, d)):
            acc[i] += v
    if ctx.has("returns"):
        rjoin, rwhere, rparams = ctx.scope("rt")
        for actions, dr in ctx.query(
                "SELECT l.actions, SUM(rl.discount) FROM returns rt"
                " JOIN return_lines rl ON rl.return_id = rt.return_id"
                " LEFT JOIN sale_lines l ON l.sale_id = rt.sale_id AND l.line_no = rl.line_no"
                f"{rjoin}{rwhere} GROUP BY 1", rparams):
            label = _OTHER_OUTLETS if actions is None else _action_label(actions)
            merged.setdefault(label, [0, 0, 0, 0, 0])[4] += dr
    out = sorted(((k, ln, r, g, d, _pct(d, g), dr, d - dr)
                  for k, (ln, r, g, d, dr) in merged.items()), key=lambda r: (-r[4], r[0]))
    tot = ctx.one(f"SELECT COUNT(*), {count_if('s.total_discount > 0')},"
                  " COALESCE(SUM(s.total_gross), 0),"
                  f" COALESCE(SUM(s.total_discount), 0) FROM sales s{join}{where}", params)
    taken_back = sum(r[6] for r in out)
    return Report("discounts", "Discounts by action", ctx.kind, [
        Column("action", "text"), Column("lines"), Column("receipts"), Column("gross", "money"),
        Column("discount", "money"), Column("discount_pct", "ratio"), *_DISCOUNT_BACK],
        out, ("TOTAL", sum(r[1] for r in out), tot[0], tot[2], tot[3], _pct(tot[3], tot[2]),
              taken_back, tot[3] - taken_back),
        [("a line priced by several rules counts under their combination; "
         f"receipts with a discount: {tot[1]}"), _DISCOUNT_NOTE])


_DISCOUNT_BACK = (Column("discount_returned", "money"), Column("discount_net", "money"))
_DISCOUNT_NOTE = ("discount_returned = the discount of the goods returns and voids in the period "
                  "gave back (a returned unit takes its discount with it); discount_net = "
                  "discount - discount_returned")
_OTHER_OUTLETS = "(returned here, sold at another outlet)"


def _receipts(ctx: _Ctx) -> Report:
    customer = ctx.f.customer
    if not customer:
        raise InvalidRequest(f"the receipts report needs a customer ({ctx.names['customer']})")
    who = ctx.query("SELECT kind, given_name, surname, name FROM customers WHERE customer_id = ?",
                    (customer,))
    join, where, params = ctx.scope("s")
    place = "s.outlet_id" if ctx.hq else "COALESCE(s.till_id, '-')"
    found = ctx.query(
        f"SELECT s.at, {place}, s.sale_id, l.line_no + 1, l.sku, l.name, l.qty, l.unit_price,"
        " l.gross, l.discount, l.net, s.total_gross, s.total_discount, s.total_net,"
        " s.points_earned FROM sales s JOIN sale_lines l ON l.sale_id = s.sale_id"
        f"{join}{where} ORDER BY s.at, s.sale_id, l.line_no", params)
    if not who and not found:
        raise NotFound(f"no customer {customer}")
    rows = [r[:11] for r in found]
    receipts = {r[2]: r[11:] for r in found}  # the receipt's own totals, once per receipt
    head = (len(receipts), *(sum(t[i] for t in receipts.values()) for i in range(4)))
    name = ""
    if who:
        kind, given, surname, org = who[0]
        name = org if kind == "organisation" else f"{given or ''} {surname or ''}".strip()
    qty = sum(r[6] for r in rows)
    return Report("receipts", f"Receipts of customer {customer}", ctx.kind, [
        Column("at", "text"), Column("outlet" if ctx.hq else "till", "text"),
        Column("sale_id", "text"), Column("line"), Column("sku", "text"), Column("name", "text"),
        Column("qty"), Column("unit_price", "money"), Column("gross", "money"),
        Column("discount", "money"), Column("net", "money")],
        rows, ("TOTAL", "", f"{head[0]} receipts", None, "", "", qty, None, head[1], head[2],
               head[3]),
        [f"customer {customer} {name}".rstrip() + f": {head[0]} receipts, "
         f"{head[4]} points earned"])


def _frequency(ctx: _Ctx) -> Report:
    by_cat = ctx.f.by == "category"
    per_customer, params = _per_customer(ctx), _per_customer_params(ctx)
    cw, cparams = _customer_filter(ctx)
    if by_cat:
        rows = ctx.query(f"SELECT c.category, COUNT(*), SUM(a.n), SUM(a.t) FROM ({per_customer})"
                         f" a JOIN {ctx.customers()} ON c.customer_id = a.customer_id"
                         " GROUP BY 1", params)
        members = dict(ctx.query(f"SELECT category, COUNT(*) FROM {ctx.customers()}{cw}"
                                 " GROUP BY category", cparams))
        active = {r[0]: r[1:] for r in rows}
        out: list[tuple[Any, ...]] = []
        for cat in sorted(set(members) | set(active)):
            a, n, t = active.get(cat, (0, 0, 0))
            out.append((cat, members.get(cat, 0), a, n, _hundredths(n, a), t, _avg(t, a)))
        tc, ta, tn, tt = (sum(r[i] for r in out) for i in (1, 2, 3, 5))
        return Report("frequency", "Purchase frequency by customer category", ctx.kind, [
            Column("category", "text"), Column("customers"), Column("buying_customers"),
            Column("receipts"), Column("receipts_per_buying_customer", "ratio"),
            Column("net", "money"), Column("net_per_buying_customer", "money")],
            out, ("TOTAL", tc, ta, tn, _hundredths(tn, ta), tt, _avg(tt, ta)))
    rows = ctx.query(f"SELECT n, COUNT(*), SUM(t) FROM ({per_customer}) a GROUP BY n"
                     " ORDER BY n",
                     params)
    everyone = int(ctx.one(f"SELECT COUNT(*) FROM {ctx.customers()}{cw}", cparams)[0])
    active = sum(r[1] for r in rows)
    receipts = sum(r[0] * r[1] for r in rows)
    net = sum(r[2] for r in rows)
    dist: list[tuple[Any, ...]] = [(0, max(everyone - active, 0), 0, 0)]
    dist += [(n, c, n * c, t) for n, c, t in rows]
    return Report("frequency", "Purchase frequency: customers by number of receipts", ctx.kind, [
        Column("receipts_per_customer"), Column("customers"), Column("receipts"),
        Column("net", "money")],
        dist, ("TOTAL", sum(r[1] for r in dist), receipts, net),
        [(f"buying customers: {active} of {everyone}; receipts per buying customer: "
         f"{hundredths_text(_hundredths(receipts, active))}")])


def _customer_filter(ctx: _Ctx) -> tuple[str, list[Any]]:
    """(WHERE clause, parameters) choosing the customers (table `customers`) in scope."""
    where, params = [], []
    if ctx.f.category:
        where.append("category = ?")
        params.append(ctx.f.category)
    if ctx.f.customer:
        where.append("customer_id = ?")
        params.append(ctx.f.customer)
    return (" WHERE " + " AND ".join(where)) if where else "", params


def _payment_discipline(ctx: _Ctx) -> Report:
    by_cat = ctx.f.by == "category"
    join, where, params = ctx.scope("i", at="issued_on", outlet=False, join_category=by_cat)
    if ctx.f.outlet and ctx.hq:
        raise InvalidRequest("invoices are consolidated over every outlet: "
                             f"{ctx.names['outlet']} does not apply to payment-discipline")
    has_paid_on = ctx.hq
    settled = "i.status = 'paid' AND substr(i.paid_on, 1, 10)"
    on_time = (f"{count_if(settled + ' <= i.due_on')}, {count_if(settled + ' > i.due_on')}"
               if has_paid_on else "NULL, NULL")
    key = "c.category" if by_cat else "i.customer_id"
    paid, unpaid, overdue, past_term = (count_if(f"i.status = '{status}'") for status in (
        "paid", "unpaid", "overdue", "past_term"))
    figures = (f"SELECT {key} AS k, COUNT(*), SUM(i.amount), {paid}, {on_time},"
               f" {unpaid}, {overdue}, {past_term},"
               " SUM(CASE WHEN i.status = 'paid' THEN 0 ELSE i.amount - i.paid_amount END)"
               f" FROM invoices i{join}{where} GROUP BY 1")
    if by_cat:
        rows = ctx.query(f"SELECT a.k, NULL, a.* FROM ({figures}) a ORDER BY 1", params)
        rows = [(r[0], r[1], *r[3:]) for r in rows]
    else:  # names looked up once per customer, after the figures
        rows = ctx.query(f"SELECT a.k, {_name_sql('c')}, a.* FROM ({figures}) a LEFT JOIN"
                         " customers c ON c.customer_id = a.k ORDER BY 1", params)
        rows = [(r[0], r[1], *r[3:]) for r in rows]
    cols = [Column("category" if by_cat else "customer_id", "text")]
    if not by_cat:
        cols.append(Column("name", "text"))
    cols += [Column("invoices"), Column("amount", "money"), Column("paid"),
             Column("paid_on_time"), Column("paid_late"), Column("unpaid"), Column("overdue"),
             Column("past_term"), Column("outstanding", "money")]
    out = [r if not by_cat else (r[0], *r[2:]) for r in rows]
    first = 1 if by_cat else 2
    totals: list[Any] = ["TOTAL"] + ([""] if not by_cat else [])
    for i in range(first, len(cols)):
        vals = [r[i] for r in out]
        totals.append(None if vals and vals[0] is None else sum(v or 0 for v in vals))
    notes = [("period filters on the invoice's issue date; paid on time = paid in full on or "
             "before the due date")]
    if not has_paid_on:
        notes.append("an outlet's copy of invoices has no payment date: paid_on_time and "
                     "paid_late need HQ's database")
    return Report("payment-discipline", "Payment discipline (consolidated invoices)", ctx.kind,
                  cols, out, tuple(totals), notes)


def _name_sql(alias: str) -> str:
    return (f"CASE WHEN {alias}.kind = 'organisation' THEN {alias}.name ELSE "
            f"trim(COALESCE({alias}.given_name, '') || ' ' || COALESCE({alias}.surname, '')) END")


def _gifts(ctx: _Ctx) -> Report:
    by_cat = ctx.f.by == "category"
    join, where, params = ctx.scope("r", join_category=by_cat)
    second = ("c.category", "category") if by_cat else (
        ("r.outlet_id", "outlet") if ctx.hq else (None, None))
    cols_sql = "r.gift_sku, MAX(r.gift_name)" + (f", {second[0]}" if second[0] else "")
    group = "r.gift_sku" + (f", {second[0]}" if second[0] else "")
    rows = ctx.query(f"SELECT {cols_sql}, COUNT(*), SUM(r.qty), SUM(r.points_spent)"
                     f" FROM redemptions r{join}{where} GROUP BY {group} ORDER BY {group}", params)
    cols = [Column("gift_sku", "text"), Column("gift_name", "text")]
    if second[1]:
        cols.append(Column(second[1], "text"))
    cols += [Column("handouts"), Column("qty"), Column("points")]
    width = len(cols)
    totals = ("TOTAL", "", *([""] if second[1] else []),
              *(sum(r[i] for r in rows) for i in range(width - 3, width)))
    per_gift: dict[str, list[int]] = {}
    for r in rows:
        acc = per_gift.setdefault(r[0], [0, 0])
        acc[0] += r[-2]
        acc[1] += r[-1]
    notes = ["per gift: " + ", ".join(f"{sku} {q} for {p} points"
                                      for sku, (q, p) in sorted(per_gift.items()))] if (
        second[1] and per_gift) else []
    title = "Gifts handed out" + (f" by gift and {second[1]}" if second[1] else " by gift")
    return Report("gifts", title, ctx.kind, cols, rows, totals, notes)


def _gift_handouts(ctx: _Ctx) -> Report:
    """Every hand-out, one row each: the evidence the tax office asks for. The card number
    is masked to its last 4 digits, like on receipts."""
    if ctx.f.by:
        raise InvalidRequest("the hand-out evidence lists single hand-outs: "
                             f"{ctx.names['by']} does not apply")
    def handouts(alias: str, table: str, qty: str, points: str, kind: str) -> tuple[str, list[Any]]:
        join, where, params = ctx.scope(alias)
        outlet = (f"{alias}.outlet_id" if ctx.hq
                  else "(SELECT value FROM meta WHERE key = 'outlet_id')")
        return ((f"SELECT {alias}.at, {outlet}, {alias}.redemption_id, {_name_sql('c')},"
                " (SELECT i.value FROM identifiers i WHERE i.customer_id = "
                f"{alias}.customer_id AND i.kind = 'card' ORDER BY i.value LIMIT 1),"
                f" {alias}.gift_sku, {alias}.gift_name, {qty}, {points}, '{kind}'"
                f" FROM {table} {alias} LEFT JOIN customers c ON c.customer_id ="
                f" {alias}.customer_id{join}{where}"), params)

    sql, params = handouts("r", "redemptions", "r.qty", "r.points_spent", "handout")
    if ctx.has("gift_returns"):
        back, more = handouts("g", "gift_returns", "-g.qty", "-g.points_returned", "return")
        sql, params = f"{sql} UNION ALL {back}", [*params, *more]
    rows = ctx.query(f"{sql} ORDER BY 1, 3, 10", params)
    rows = [(*r[:4], mask_card(r[4]) or None, *r[5:]) for r in rows]  # the one masked form
    cols = [Column("at", "text"), Column("outlet", "text"), Column("redemption_id", "text"),
            Column("customer", "text"), Column("card", "text"), Column("gift_sku", "text"),
            Column("gift_name", "text"), Column("qty"), Column("points"), Column("kind", "text")]
    totals = ("TOTAL", "", "", "", "", "", "", sum(r[7] for r in rows), sum(r[8] for r in rows),
              "")
    return Report("gift-handouts", "Gift hand-outs (evidence)", ctx.kind, cols, rows, totals,
                  [("a gift given back at the desk is a row of its own (kind return): negative "
                   "qty and points, under the hand-out it returns")])


def _returns(ctx: _Ctx) -> Report:
    """Every return and void in scope, one row each: for fraud control (who gives back
    what, where, on which receipt, why, and who approved points already spent)."""
    if ctx.f.by:
        raise InvalidRequest("the returns report lists single returns: "
                             f"{ctx.names['by']} does not apply")
    cols = [Column("at", "text"), Column("outlet", "text"), Column("till", "text"),
            Column("kind", "text"), Column("receipt", "text"), Column("sale", "text"),
            Column("reason", "text"), Column("approved_by", "text"), Column("lines"),
            Column("value", "money"), Column("refunded", "money"), Column("withheld", "money"),
            Column("points_reversed")]
    if not ctx.has("returns"):
        return Report("returns", "Returns and voids", ctx.kind, cols, [],
                      ("TOTAL", "", "", "", "", "", "", "", 0, 0, 0, 0, 0))
    join, where, params = ctx.scope("rt")
    outlet = "rt.outlet_id" if ctx.hq else "(SELECT value FROM meta WHERE key = 'outlet_id')"
    rows = ctx.query(
        f"SELECT rt.at, {outlet}, COALESCE(rt.till_id, '-'), rt.kind, rt.receipt,"
        " CASE WHEN rt.home = 1 THEN 'own' ELSE 'other outlet' END, rt.reason, rt.approved_by,"
        " (SELECT COUNT(*) FROM return_lines rl WHERE rl.return_id = rt.return_id),"
        " rt.value, rt.refunded, rt.withheld, rt.points_reversed"
        f" FROM returns rt{join}{where} ORDER BY rt.at, rt.return_id", params)
    totals = ("TOTAL", "", "", "", "", "", "", "", *(sum(r[i] for r in rows)
                                                      for i in range(8, 13)))
    kinds = {k: sum(1 for r in rows if r[3] == k) for k in ("return", "void")}
    abroad = sum(r[10] for r in rows if r[5] == "other outlet")
    return Report("returns", "Returns and voids", ctx.kind, cols, rows, totals, [
        (f"{kinds['return']} returns, {kinds['void']} voids; refunded on other outlets' sales "
        f"(known from the receipt's code, within floor_returns): {money(abroad)}"),
        ("sale: own = a sale of the outlet that took it back; receipt = the reference printed "
        "on the sale's receipt")])


def _last_day_sql(rule: ExpiryRule, dialect: Dialect) -> str:
    """SQL for a lot's last valid day (`schema.lots.ExpiryRule.expiry_of`) over the lot `l`
    and the customer's tally `t`: the day fixed on the lot, else the rule's. The months are
    added as `schema.lots.add_months` does: a day the target month lacks is its last day
    (the dialect's date arithmetic: schema/dialect.py)."""
    if rule.kind == "never":
        return "l.expires_on"
    since, months = f"'{rule.since.isoformat()}'", rule.months
    if rule.kind == "end_of_month":
        start = dialect.greatest("l.earned_on", since)
        return f"coalesce(l.expires_on, {dialect.end_of_month_after(start, months)})"
    # a customer who never bought has '' (or NULL): the lot's own day or `since` is later
    start = dialect.greatest("l.earned_on", since,
                             "coalesce(substr(t.last_purchase_at, 1, 10), '')")
    return f"coalesce(l.expires_on, {dialect.add_months(start, months)})"


def _points_liability(ctx: _Ctx) -> Report:
    if ctx.f.by in GRAINS:
        return _points_over_time(ctx, ctx.f.by)
    if ctx.lo or ctx.hi:
        raise InvalidRequest("points-liability is the balance outstanding now: "
                             f"{ctx.names['date_from']}/{ctx.names['date_to']} do not apply "
                             f"(group it by day, week or month to see it over time)")
    if ctx.f.outlet and ctx.hq:
        raise InvalidRequest(f"points are chain-wide: {ctx.names['outlet']} does not apply to "
                             "points-liability")
    by_cat = ctx.f.by == "category"
    join, where, params = ctx.scope("t", at=None, outlet=False, join_category=by_cat)
    key = "c.category" if by_cat else "'all'"
    group = " GROUP BY 1" if by_cat else ""
    # customers: every customer of the database, whether or not it has a tally (HQ keeps
    # none for a customer who never bought; an outlet keeps one for each) -- counted from
    # `customers`, like HQ's home page and `loyalty status`; points: from the tallies
    cw, cparams = _customer_filter(ctx)
    counts = dict(ctx.query(f"SELECT {key}, COUNT(*) FROM"
                            f" {ctx.customers()}{cw}{group}", cparams))
    balance = "t.points_earned - t.points_used - t.points_expired"
    sums = {r[0]: tuple(v or 0 for v in r[1:]) for r in ctx.query(
        f"SELECT {key}, {count_if(f'{balance} > 0')}, SUM(t.points_earned),"
        f" SUM(t.points_used), SUM(t.points_expired), SUM({balance})"
        f" FROM customer_tally t{join}{where}{group}", params)}
    # the split, from the lots (their sum is the balance): spendable or pending on
    # `today`, and what expires within 30/60/90 days of it (cumulative)
    settings = programme_of(ctx.conn)
    today = ctx.today
    last = _last_day_sql(settings.expiry, ctx.dialect)
    ljoin, lwhere, lparams = ctx.scope("l", at=None, outlet=False, join_category=by_cat)
    tally = " LEFT JOIN customer_tally t ON t.customer_id = l.customer_id" if (
        settings.expiry.kind == "inactivity") else ""
    ahead = ", ".join(
        f"SUM(CASE WHEN l.points > 0 AND {last} <= '{(today + timedelta(days=n)).isoformat()}'"
        " THEN l.points ELSE 0 END)" for n in EXPIRING_DAYS)
    day = f"'{today.isoformat()}'"
    split = {r[0]: tuple(v or 0 for v in r[1:]) for r in ctx.query(
        f"SELECT {key}, SUM(CASE WHEN l.points > 0 AND (l.spendable_on IS NULL OR"
        f" l.spendable_on <= {day}) THEN l.points ELSE 0 END),"
        f" SUM(CASE WHEN l.points > 0 AND l.spendable_on > {day} THEN l.points ELSE 0 END),"
        f" {ahead}, SUM({ctx.dialect.least('l.points', '0')})"
        f" FROM customer_lots l{ljoin}{tally}{lwhere}{group}", lparams)}
    keys = sorted(k for k in set(counts) | set(sums) | set(split)
                  if counts.get(k) or any(sums.get(k, ())) or any(split.get(k, ())))
    if not by_cat:
        keys = ["all"]
    rows = [(k, counts.get(k, 0), *sums.get(k, (0, 0, 0, 0, 0)),
             *split.get(k, (0, 0, 0, 0, 0, 0))) for k in keys]
    totals = ("TOTAL", *(sum(r[i] for r in rows) for i in range(1, 13)))
    rule = settings.expiry
    notes = [("customers = every customer registered in this database, with or without "
              "points (as HQ's home page counts them); outstanding = points earned - points "
              "used - points expired, summed over every customer = active + pending + "
              "negative (negative balances, i.e. overspent points awaiting repayment, "
              "included and shown apart)"),
             (f"as of {today.isoformat()}: active = spendable now, pending = earned but "
              "spendable only after the return window; expiring_30/60/90 = points whose last "
              "valid day is at most 30/60/90 days after it (cumulative; points past their "
              "last day that the nightly run has not expired yet included); expiry rule: "
              f"{rule.kind}" + (f", {rule.months} months from {rule.since.isoformat()}"
                                if rule.kind != "never" else ""))]
    if not ctx.hq:
        notes.append("an outlet's figures are its view: HQ-confirmed balances plus its own "
                     "pending events")
    return Report("points-liability", "Outstanding points liability", ctx.kind, [
        Column("category" if by_cat else "scope", "text"), Column("customers"),
        Column("customers_with_points"), Column("points_earned"), Column("points_used"),
        Column("points_expired"), Column("outstanding_points"), Column("active_points"),
        Column("pending_points"), Column("expiring_30"), Column("expiring_60"),
        Column("expiring_90"), Column("negative_points")],
        rows, totals if by_cat else None, notes)


# What moves a points balance, by table, as the tallies count it (schema.events tally_of):
# (table, alias, points column, figure, sign). Head office's corrections and expiries are
# facts of the ledger only (`_hq_point_facts`).
POINT_MOVES = (("sales", "s", "points_earned", "earned", 1),
               ("returns", "rt", "points_reversed", "earned", -1),
               ("redemptions", "r", "points_spent", "used", 1),
               ("gift_returns", "gr", "points_returned", "used", -1))
# Head office's own facts that move points (made only at HQ: one an outlet sent counts for
# nothing, as in the tallies).
HQ_POINT_FACTS = ("balance.adjusted", "points.expired")


def _hq_point_facts(ctx: _Ctx) -> list[tuple[str, int, int, int]]:
    """Head office's corrections and expiries in scope, from the period's first day on:
    (booked time, earned, used, expired) each, from its fact (a correction's points count
    as earned, fewer when negative)."""
    from schema.events import HQ_OUTLET, Event, tally_of

    _, who, params = ctx.scope("e", at=None, outlet=False)
    glue = " AND " if who else " WHERE "
    marks = ", ".join("?" for _ in HQ_POINT_FACTS)
    since, after = "", []
    if ctx.lo:  # facts before the period move none of its figures (the balance walks back)
        since, after = " AND COALESCE(e.booked_at, e.at) >= ?", [ctx.lo]
    out = []
    for booked, event in ctx.query(
            f"SELECT COALESCE(e.booked_at, e.at), e.event FROM events e{who}{glue}"
            f"e.outlet_id = ? AND e.type IN ({marks}){since}",
            [*params, HQ_OUTLET, *HQ_POINT_FACTS, *after]):
        delta = tally_of(Event.model_validate_json(event).parsed())
        out.append((str(booked), delta.points_earned, delta.points_used, delta.points_expired))
    return out


def _points_over_time(ctx: _Ctx, grain: str) -> Report:
    """Points earned, used and (at HQ) expired per bucket and, at HQ, the liability at each
    bucket's end (or at the period's end, for a last bucket cut by it).

    At HQ the figures are the tallies' (what the plain report sums): earned net of the
    points returns took back and of head office's corrections, used net of gifts given
    back, expired by HQ's expiry runs. HQ computes the balance backwards from the tallies
    (today's points-liability): the balance at time T is today's minus every change booked
    at or after T, so the series ends exactly on the liability the plain report shows. An
    outlet holds only its own sales and hand-outs, not the chain's balances: there the
    balance and expired columns stay empty."""
    if ctx.f.outlet and ctx.hq:
        raise InvalidRequest(f"points are chain-wide: {ctx.names['outlet']} does not apply to "
                             "points-liability")
    figures: dict[str, dict[str, int]] = {"earned": {}, "used": {}, "expired": {}}
    later = 0  # at HQ: the balance's change booked after the period
    for table, alias, column, figure, sign in POINT_MOVES:
        if not ctx.hq and table not in ("sales", "redemptions"):
            continue  # an outlet's own receipts and hand-outs (see the docstring)
        if not ctx.has(table):
            continue
        bucket = _bucket_sql(ctx, f"{alias}.at", grain)
        join, where, params = ctx.scope(alias)
        into = figures[figure]
        for b, n in ctx.query(f"SELECT {bucket}, SUM({alias}.{column}) FROM {table} {alias}"
                              f"{join}{where} GROUP BY 1", params):
            into[b] = into.get(b, 0) + sign * int(n or 0)
        if ctx.hq and ctx.hi:  # changes booked after the period are not in its balances
            _, who, params = ctx.scope(alias, at=None, outlet=False)
            glue = " AND " if who else " WHERE "
            n = ctx.one(f"SELECT COALESCE(SUM({alias}.{column}), 0) FROM {table} {alias}"
                        f"{who}{glue}{alias}.at >= ?", [*params, ctx.hi])[0]
            later += sign * int(n) * (1 if figure == "earned" else -1)
    if ctx.hq:
        for booked, earned_, used_, expired_ in _hq_point_facts(ctx):
            if ctx.hi and booked >= ctx.hi:
                later += earned_ - used_ - expired_
            elif not ctx.lo or booked >= ctx.lo:
                b = bucket_start(date.fromisoformat(booked[:10]), grain).isoformat()
                for figure, n in (("earned", earned_), ("used", used_), ("expired", expired_)):
                    if n:
                        figures[figure][b] = figures[figure].get(b, 0) + n
    earned, used, expired = figures["earned"], figures["used"], figures["expired"]
    buckets = _buckets(ctx, grain, set(earned) | set(used) | set(expired))
    balances: list[int | None] = [None] * len(buckets)
    notes = [_grain_note(grain)]
    if ctx.hq:
        _, who, params = ctx.scope("t", at=None, outlet=False)
        balance = int(ctx.one("SELECT COALESCE(SUM(t.points_earned - t.points_used"
                              " - t.points_expired), 0)"
                              f" FROM customer_tally t{who}", params)[0]) - later
        for i in range(len(buckets) - 1, -1, -1):  # backwards from the period's end
            balances[i] = balance
            b = buckets[i]
            balance -= earned.get(b, 0) - used.get(b, 0) - expired.get(b, 0)
        notes.append("outstanding = the points liability at the end of each "
                     f"{grain} (today's liability minus every change booked after it)")
        notes.append("earned = net of the points returns took back and of head office's "
                     "corrections; used = net of gifts given back; expired = HQ's expiry runs "
                     "(the tallies' figures: each bucket's outstanding is the one before plus "
                     "earned - used - expired)")
    else:
        notes.append("an outlet's database holds its own sales and hand-outs, not the chain's "
                     "balances: outstanding points over time need HQ's database")
    rows = [(b, earned.get(b, 0), used.get(b, 0), expired.get(b, 0) if ctx.hq else None,
             balances[i]) for i, b in enumerate(buckets)]
    return Report("points-liability", f"Points earned and used per {grain}" + (
        ", and the liability" if ctx.hq else ""), ctx.kind, [
        Column(grain, "text"), Column("points_earned"), Column("points_used"),
        Column("points_expired"), Column("outstanding_points")], rows,
        ("TOTAL", sum(r[1] for r in rows), sum(r[2] for r in rows),
         sum(r[3] or 0 for r in rows) if ctx.hq else None,
         rows[-1][4] if rows else None), notes)


def _members(ctx: _Ctx) -> Report:
    """Customers joining per bucket (registration time, booked at HQ) and the running count
    of members at each bucket's end. An outlet counts those registered there."""
    grain = ctx.f.by or "week"
    where, params = ["c.created_at != ''"], []
    if ctx.hq and ctx.f.outlet:
        where.append("c.origin_outlet = ?")
        params.append(ctx.f.outlet)
    elif not ctx.hq:
        where.append("c.origin_outlet = (SELECT value FROM meta WHERE key = 'outlet_id')")
    cw, cparams = _customer_filter(ctx)
    if cw:
        where.append(cw.removeprefix(" WHERE "))
        params += cparams
    base = " AND ".join(where)
    period, pparams = [], []
    if ctx.lo:
        period.append("c.created_at >= ?")
        pparams.append(ctx.lo)
    if ctx.hi:
        period.append("c.created_at < ?")
        pparams.append(ctx.hi)
    joined = dict(ctx.query(f"SELECT {_bucket_sql(ctx, 'c.created_at', grain)}, COUNT(*)"
                            f" FROM customers c WHERE {' AND '.join([base, *period])}"
                            " GROUP BY 1", [*params, *pparams]))
    before = int(ctx.one(f"SELECT COUNT(*) FROM customers c WHERE {base} AND c.created_at < ?",
                         [*params, ctx.lo])[0]) if ctx.lo else 0
    rows: list[tuple[Any, ...]] = []
    for b in _buckets(ctx, grain, set(joined)):
        before += joined.get(b, 0)
        rows.append((b, joined.get(b, 0), before))
    notes = [_grain_note(grain) + "; joined = registered in it (at HQ: when HQ booked the "
             "registration); members = registered by its end"]
    if not ctx.hq:
        notes.append("an outlet counts the customers registered at this outlet")
    return Report("members", f"Members joining per {grain}", ctx.kind, [
        Column(grain, "text"), Column("joined"), Column("members")], rows,
        ("TOTAL", sum(r[1] for r in rows), rows[-1][2] if rows else before), notes)


def _activity(ctx: _Ctx) -> Report:
    """Members (registered by the end of the day) split into active (a receipt in the
    ACTIVE_DAYS days up to the end of the day), lapsed (receipts, none since) and never
    bought, as of the end of `date_to` (default: today, UTC)."""
    if ctx.lo:
        raise InvalidRequest("activity is counted as of the end of one day: give "
                             f"{ctx.names['date_to']} alone, not {ctx.names['date_from']}")
    end = date.fromisoformat(ctx.hi) if ctx.hi else datetime.now(UTC).date() + timedelta(days=1)
    since = (end - timedelta(days=ACTIVE_DAYS)).isoformat()
    by_cat = ctx.f.by == "category"
    _, where, params = ctx.scope("s", by_customer=True)  # the period's end, outlet, customer
    key = "c.category" if by_cat else "'all'"
    cw, cparams = _customer_filter(ctx)
    cw = (cw + " AND " if cw else " WHERE ") + "c.created_at < ?"
    rows = ctx.query(
        f"SELECT {key}, COUNT(*), COALESCE({count_if('l.last >= ?')}, 0),"
        f" COALESCE({count_if('l.last < ?')}, 0),"
        f" COALESCE({count_if('l.last IS NULL')}, 0) FROM customers c LEFT JOIN (SELECT s.customer_id,"
        f" MAX(s.at) AS last FROM sales s{where} GROUP BY s.customer_id) l"
        f" ON l.customer_id = c.customer_id{cw} GROUP BY 1 ORDER BY 1",
        [since, since, *params, *cparams, end.isoformat()])
    if not by_cat:
        rows = rows or [("all", 0, 0, 0, 0)]
    day = (end - timedelta(days=1)).isoformat()
    notes = [(f"as of the end of {day} (UTC): members = customers registered by then; active = "
              f"a receipt in the {ACTIVE_DAYS} days up to then (from {since}); lapsed = "
              "receipts, but none since; never bought = no receipt at all")]
    if not ctx.hq:
        notes.append("an outlet holds every customer of the chain but only its own sales: "
                     "active and lapsed here mean buying at this outlet")
    elif ctx.f.outlet:
        notes.append(f"receipts at outlet {ctx.f.outlet} only")
    totals = ("TOTAL", *(sum(r[i] for r in rows) for i in range(1, 5))) if by_cat else None
    return Report("activity", f"Active and lapsed members on {day}", ctx.kind, [
        Column("category" if by_cat else "scope", "text"), Column("members"), Column("active"),
        Column("lapsed"), Column("never_bought")], rows, totals, notes)


AGEING = (("unpaid", "current"), ("overdue", "overdue"), ("past_term", "past_term"))


def _invoice_ageing(ctx: _Ctx) -> Report:
    """What is owed on the consolidated invoices not paid in full, by status: current (not
    yet due), overdue, past term; every status listed (0 when none)."""
    if ctx.f.outlet and ctx.hq:
        raise InvalidRequest("invoices are consolidated over every outlet: "
                             f"{ctx.names['outlet']} does not apply to invoice-ageing")
    by_cat = ctx.f.by == "category"
    join, where, params = ctx.scope("i", at="issued_on", outlet=False, join_category=by_cat)
    where = (where + " AND " if where else " WHERE ") + (
        "i.status IN ('unpaid', 'overdue', 'past_term')")
    key = "c.category" if by_cat else "'all'"
    found = {(k, status): tuple(v) for k, status, *v in ctx.query(
        f"SELECT {key}, i.status, COUNT(*), SUM(i.amount), SUM(i.amount - i.paid_amount)"
        f" FROM invoices i{join}{where} GROUP BY 1, 2", params)}
    rows: list[tuple[Any, ...]] = []
    for k in sorted({k for k, _ in found}) if by_cat else ["all"]:
        for status, bucket in AGEING:
            rows.append(((k,) if by_cat else ()) + (bucket, *found.get((k, status), (0, 0, 0))))
    width = 2 if by_cat else 1
    totals = ("TOTAL", *([""] if by_cat else []),
              *(sum(r[i] for r in rows) for i in range(width, width + 3)))
    cols = [Column("category", "text")] if by_cat else []
    cols += [Column("status", "text"), Column("invoices"), Column("amount", "money"),
             Column("outstanding", "money")]
    return Report("invoice-ageing", "Invoice ageing: what is owed", ctx.kind, cols, rows, totals,
                  [("current = not yet due; overdue = past its due date; past_term = past the "
                    "payment term (the customer's credit is blocked); statuses as HQ last "
                    "refreshed them; the period filters on the issue date")])


# --- time buckets ---------------------------------------------------------------------------
def _bucket_sql(ctx: _Ctx, column: str, grain: str) -> str:
    """SQL naming the bucket of a stored UTC time: its day, its week's Monday or its
    month's first day (YYYY-MM-DD)."""
    day = f"substr({column}, 1, 10)"
    if grain == "day":
        return day
    if grain == "week":
        return ctx.dialect.monday_of(day)
    return f"substr({column}, 1, 7) || '-01'"


def bucket_start(day: date, grain: str) -> date:
    """The first day of the bucket holding `day` (what `_bucket_sql` computes)."""
    if grain == "week":
        return day - timedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    return day


def next_bucket(start: date, grain: str) -> date:
    if grain == "week":
        return start + timedelta(days=7)
    if grain == "month":
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start + timedelta(days=1)


def _buckets(ctx: _Ctx, grain: str, found: set[str]) -> list[str]:
    """Every bucket of the period, first to last: its ends where given, else the first and
    last bucket with something in it. A series over more than MAX_DAYS is refused."""
    seen = sorted(date.fromisoformat(b) for b in found if b)
    start = bucket_start(date.fromisoformat(ctx.lo), grain) if ctx.lo else (
        seen[0] if seen else None)
    end = bucket_start(date.fromisoformat(ctx.hi) - timedelta(days=1), grain) if ctx.hi else (
        max(seen[-1], start) if seen and start else start)
    if start is None or end is None or end < start:
        return []
    if (end - start).days > MAX_DAYS:
        raise InvalidRequest(f"{(end - start).days + 1} days are too long a series to group by "
                             f"{grain}: group by {'week or month' if grain == 'day' else 'month'}"
                             f" or choose a shorter period ({ctx.names['date_from']}, "
                             f"{ctx.names['date_to']})")
    out = []
    while start <= end:
        out.append(start.isoformat())
        start = next_bucket(start, grain)
    return out


def _grain_note(grain: str) -> str:
    return {"day": "days are UTC days",
            "week": "a week runs Monday to Sunday (UTC) and is named by its Monday; the first "
                    "and last week of a period may be partial",
            "month": "a month is named by its first day; the first and last month of a "
                     "period may be partial"}[grain]


_REPORTS: dict[str, Callable[[_Ctx], Report]] = {
    "turnover": _turnover,
    "discounts": _discounts,
    "receipts": _receipts,
    "frequency": _frequency,
    "payment-discipline": _payment_discipline,
    "gifts": _gifts,
    "points-liability": _points_liability,
    "gift-handouts": _gift_handouts,
    "members": _members,
    "activity": _activity,
    "invoice-ageing": _invoice_ageing,
    "returns": _returns,
}


# --- rendering ----------------------------------------------------------------------------
def hundredths_text(v: int) -> str:
    return hundredths(v, grouped=False)


def cell(col: Column, v: Any, table: bool = True) -> str:
    """A report value as text: for a person (`table`) or for CSV (integers kept raw)."""
    if v is None:
        return ""
    if col.kind == "money" and isinstance(v, int):
        return money(v) if table else str(v)
    if col.kind == "ratio" and isinstance(v, int):
        return hundredths(v, grouped=False)
    if col.kind == "int" and isinstance(v, int) and table:
        return f"{v:,}"
    return str(v)


def render_csv(report: Report) -> str:
    """A header row and one row per report row (no totals row: scripts sum what they need).
    Money as integers in minor units, ratios with 2 decimals."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow([c.name for c in report.columns])
    ratios = [i for i, c in enumerate(report.columns) if c.kind == "ratio"]
    if not ratios:  # ints and text print as they are, None as an empty field
        out.writerows(report.rows)
        return buf.getvalue()
    for row in report.rows:
        cells = list(row)
        for i in ratios:
            if isinstance(cells[i], int):
                cells[i] = hundredths_text(cells[i])
        out.writerow(cells)
    return buf.getvalue()


def render_table(report: Report) -> str:
    """A text table for a terminal: money with 2 decimals, a totals line, then notes."""
    cols = report.columns
    head = [c.label or c.name for c in cols]
    body = [[cell(c, v, True) for c, v in zip(cols, row, strict=True)] for row in report.rows]
    foot = ([cell(c, v, True) for c, v in zip(cols, report.totals, strict=True)]
            if report.totals else None)
    every = [head, *body, *([foot] if foot else [])]
    widths = [max(len(r[i]) for r in every) for i in range(len(cols))]
    right = [c.kind in ("int", "money", "ratio") for c in cols]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w)
                         for c, w, r in zip(cells, widths, right, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [report.title, line(head), rule, *(line(r) for r in body)]
    if not body:
        lines.append("(no rows)")
    if foot:
        lines += [rule, line(foot)]
    lines += [f"* {n}" for n in report.notes]
    return "\n".join(lines)
