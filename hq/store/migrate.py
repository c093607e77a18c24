"""Moving a chain's HQ from its SQLite file into PostgreSQL: `loyalty hq migrate`.

`migrate(source, url)`, in this order:
1. holds the source's serving lock (schema/dblock.py) for the whole run, so HQ must be
   stopped first (`database_in_use` names it otherwise); outlets keep selling and queue
   their facts meanwhile, and push them to HQ once it serves again;
2. reads the source read-only (SQLite `mode=ro`, one read transaction: one state of it),
   refusing a file that is not HQ's, or whose migrations are not this software's (`config_error`
   saying how to bring it up to date);
3. opens the target as HQ does (hq/store/postgres.py: reachable, HQ's tables created, not
   another program's database), and then, in ONE PostgreSQL transaction: locks every HQ
   table (nobody else writes meanwhile), refuses if any holds a row (`target_not_empty`,
   naming them), COPYs every table of the source (binary COPY, columns by name; the list of
   tables is read from the source's own schema, so a table a later migration adds comes
   along without a change here), sets each identity sequence past the largest number
   copied and each `counters` row to the source's reading of it (hq.store.LARGEST: the
   change log's next number follows the last one copied), checks the copy (`verify`'s
   checks, on the uncommitted copy) and only then commits.

So a crash, a kill, a lost connection or a failed check anywhere before the commit leaves
the target as it was, empty: run the command again. One transaction rather than one per
table because a partly copied HQ is not a state any HQ may start on.

`verify(source, url)` (also run by `migrate` before it commits) compares, table by table:
the row count, the sum of every integer column (money, points, quantities, sequences), and
the ledger fold: every customer's tally (balance, credit, statistics, items, gifts) folded
from that side's `events` with `schema.events.tally_of` at each fact's booking time, both
sides read in customer order and compared customer by customer (memory for one customer,
whatever the chain's size). A difference is `migration_mismatch` naming the table (and the
customer, for the fold).

Must never: write into the source file; commit a partial or unverified copy; copy into a
database holding rows; show the URL's password.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import psycopg

from hq.store import LARGEST
from hq.store.base import is_url
from hq.store.postgres import PgStore
from schema.dblock import DatabaseLock
from schema.errors import ConfigError, MigrationMismatch, TargetNotEmpty
from schema.events import Event, tally_of
from schema.hq_tables_pg import MIGRATION_SET, MIGRATIONS, PG_ONLY
from schema.ledger import Tally

BATCH = 5_000  # rows between progress updates


class Bar(Protocol):
    def update(self, done: int, total: int) -> None: ...


# `progress(name, unit)`: a context manager whose `update(done, total)` shows how far a
# table is (the composition root hands in agent/progress.py's `Progress`)
ProgressFactory = Callable[[str, str], AbstractContextManager[Bar]]


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    integers: tuple[str, ...]  # the INTEGER columns, whose sums are compared

    @property
    def column_list(self) -> str:
        return ", ".join(f'"{c}"' for c in self.columns)


@dataclass
class Moved:
    """What `migrate` did: rows per table (in copy order), how long each part took, and
    what `verify` compared."""

    tables: dict[str, int] = field(default_factory=dict)
    copy_s: float = 0.0
    verify_s: float = 0.0
    customers: int = 0  # whose ledger fold was compared
    events: int = 0

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


# --- the source --------------------------------------------------------------------------
def _quoted(name: str) -> str:
    return f'"{name}"'


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """The source, read-only, in one read transaction for the block."""
    try:
        conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True,
                               isolation_level=None, timeout=10)
    except sqlite3.Error as exc:
        raise ConfigError(f"{path} cannot be opened ({exc}): give HQ's SQLite file") from None
    try:
        conn.execute("BEGIN")
        yield conn
    finally:
        conn.close()


def _check_source(conn: sqlite3.Connection, path: Path) -> None:
    try:
        applied = [r[0] for r in conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", (MIGRATION_SET,))]
    except sqlite3.DatabaseError:
        applied = []
    if not applied:
        raise ConfigError(f"{path} is not HQ's database (no record of HQ's migrations): "
                          "give --from the file `loyalty hq serve --db` uses")
    known = [name for name, _ in MIGRATIONS]
    newer = [name for name in applied if name not in known]
    if newer:
        raise ConfigError(f"{path} was written by a newer loyalty (migrations "
                          f"{', '.join(newer)}): migrate with that version")
    missing = [name for name in known if name not in applied]
    if missing:
        raise ConfigError(f"{path} is missing HQ's migrations {', '.join(missing)}: bring it "
                          "up to date by opening it once with this version (for example "
                          f"`loyalty hq outlets --db {path}`), then migrate")


def tables_of(conn: sqlite3.Connection) -> list[Table]:
    """Every HQ table of a SQLite HQ file, in creation order, read from its schema."""
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name != '_sqlite_migrations' ORDER BY rowid")]
    found = []
    for name in names:
        info = conn.execute(f"PRAGMA table_info({_quoted(name)})").fetchall()
        found.append(Table(name, tuple(c[1] for c in info),
                           tuple(c[1] for c in info if str(c[2]).upper() == "INTEGER")))
    return found


# --- the target --------------------------------------------------------------------------
def _target_columns(conn: psycopg.Connection[Any]) -> dict[str, dict[str, str]]:
    """table -> column -> PostgreSQL type, for HQ's tables in the target."""
    shape: dict[str, dict[str, str]] = defaultdict(dict)
    for table, column, kind in conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"):
        if table not in PG_ONLY:
            shape[table][column] = kind
    return dict(shape)


def _check_shapes(tables: Sequence[Table], target: dict[str, dict[str, str]]) -> None:
    mine = {t.name for t in tables}
    for table in tables:
        if table.name not in target:
            raise MigrationMismatch(f"the PostgreSQL database has no table {table.name}: "
                                    "its migrations lag this software's (report this)",
                                    table=table.name)
        if set(table.columns) != set(target[table.name]):
            raise MigrationMismatch(
                f"table {table.name} has columns {sorted(table.columns)} in the SQLite file "
                f"and {sorted(target[table.name])} in PostgreSQL (report this)",
                table=table.name)
    extra = sorted(set(target) - mine)
    if extra:
        raise MigrationMismatch(f"PostgreSQL has tables the SQLite file lacks: "
                                f"{', '.join(extra)} (report this)", table=extra[0])


def _refuse_rows(conn: psycopg.Connection[Any], names: Iterable[str], where: str) -> None:
    holding = [name for name in names if conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM {_quoted(name)})").fetchone()[0]]  # type: ignore[index]
    if holding:
        raise TargetNotEmpty(
            f"{where} holds rows already (in {', '.join(holding)}): HQ is copied only into an "
            "empty database, nothing was written; create a new one (createdb ... loyalty) or "
            "drop this one's tables, then run the command again", tables=holding)


def _copy(conn: psycopg.Connection[Any], source: sqlite3.Connection, table: Table,
          types: dict[str, str], total: int, bar: Bar | None) -> int:
    done = 0
    try:
        with conn.cursor().copy(f"COPY {_quoted(table.name)} ({table.column_list}) "
                                "FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([types[c] for c in table.columns])
            rows = source.execute(f"SELECT {table.column_list} FROM {_quoted(table.name)}")
            while batch := rows.fetchmany(BATCH):
                for row in batch:
                    copy.write_row(row)
                done += len(batch)
                if bar is not None:
                    bar.update(done, total)
    except (psycopg.DataError, TypeError, ValueError, OverflowError) as exc:
        words = " ".join(str(exc).split())
        raise MigrationMismatch(
            f"the rows of {table.name} cannot be copied into PostgreSQL ({words}): nothing "
            "was written; correct that row in the SQLite file (a value of the wrong kind for "
            "its column), then run the command again", table=table.name) from None
    if bar is not None and done == 0:
        bar.update(0, total)  # an empty table is said too
    return done


def _set_numbering(conn: psycopg.Connection[Any], source: sqlite3.Connection) -> None:
    """Identity columns continue after the largest number copied; each counter is the
    source's reading of it (hq.store.LARGEST)."""
    for table, column in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND is_identity = 'YES'").fetchall():
        conn.execute(f"SELECT setval(pg_get_serial_sequence(%s, %s), "
                     f"COALESCE((SELECT MAX({_quoted(column)}) FROM {_quoted(table)}), 0) + 1, "
                     "false)", (table, column))
    for counter, sql in LARGEST.items():
        value = int(source.execute(sql).fetchone()[0])
        conn.execute("UPDATE counters SET value = %s WHERE name = %s", (value, counter))


# --- checks --------------------------------------------------------------------------------
def _figures(rows: Iterable[Sequence[Any]]) -> list[int | None]:
    row = next(iter(rows))
    return [None if v is None else int(v) for v in row]


# every fact about a customer, customer by customer (the events_customer index on both sides;
# "C" order on PostgreSQL is SQLite's byte order)
LEDGER = ("SELECT customer_id, event, booked_at FROM events WHERE customer_id IS NOT NULL "
          "ORDER BY customer_id, hq_seq")


def _folds(rows: Iterable[Sequence[Any]]) -> Iterator[tuple[str, Tally, int]]:
    """(customer, the tally folded from the customer's facts, how many), one customer at a
    time from `LEDGER` rows: memory for one customer, not for the chain."""
    for customer, facts in itertools.groupby(rows, key=lambda row: str(row[0])):
        tally, count = Tally(), 0
        for _, text, booked_at in facts:
            event = Event.model_validate_json(text)
            tally = tally.combine(tally_of(event.parsed(), booked_at or event.at))
            count += 1
        yield customer, tally, count


def _compare_ledgers(source: sqlite3.Connection, target: psycopg.Connection[Any],
                     moved: Moved, progress: ProgressFactory | None) -> None:
    total = int(source.execute("SELECT COUNT(*) FROM events WHERE customer_id IS NOT NULL")
                .fetchone()[0])
    done, shown_at = 0, 0
    with (progress("verify ledger fold", "events") if progress is not None
          else contextlib.nullcontext()) as bar, \
            target.cursor(name="loyalty_migrate_ledger") as cursor:
        cursor.itersize = BATCH
        cursor.execute(LEDGER)
        for mine, theirs in itertools.zip_longest(_folds(source.execute(LEDGER)),
                                                  _folds(cursor)):
            if mine is None or theirs is None or mine[0] != theirs[0]:
                first = min(x[0] for x in (mine, theirs) if x is not None)
                raise MigrationMismatch(f"table events: the facts of customer {first} are in "
                                        "one database and not in the other",
                                        table="events", customer_id=first)
            customer, here, count = mine
            there = theirs[1]
            if here != there:
                same = (here.points_balance, here.credit_outstanding) == (
                    there.points_balance, there.credit_outstanding)
                raise MigrationMismatch(
                    f"table events: the ledger of customer {customer} folds to points balance "
                    f"{here.points_balance}, credit {here.credit_outstanding} in the SQLite "
                    f"file and {there.points_balance}, credit {there.credit_outstanding} in "
                    f"PostgreSQL{' (other figures of the tally differ)' if same else ''}",
                    table="events", customer_id=customer)
            moved.customers += 1
            done += count
            if bar is not None and done - shown_at >= BATCH:
                bar.update(done, total)
                shown_at = done
        if bar is not None and (done != shown_at or done == 0):
            bar.update(done, total)
    moved.events = done


def _compare(source: sqlite3.Connection, target: psycopg.Connection[Any],
             tables: Sequence[Table], moved: Moved,
             progress: ProgressFactory | None = None) -> None:
    for table in tables:
        sums = ", ".join(f"SUM({_quoted(c)})" for c in table.integers)
        sql = f"SELECT COUNT(*){', ' + sums if sums else ''} FROM {_quoted(table.name)}"
        mine = _figures(source.execute(sql))
        theirs = _figures(target.execute(sql))
        if mine[0] != theirs[0]:
            raise MigrationMismatch(f"table {table.name}: {mine[0]} rows in the SQLite file, "
                                    f"{theirs[0]} in PostgreSQL", table=table.name)
        for column, a, b in zip(table.integers, mine[1:], theirs[1:], strict=True):
            if a != b:
                raise MigrationMismatch(f"table {table.name}: the sum of {column} is {a} in "
                                        f"the SQLite file, {b} in PostgreSQL",
                                        table=table.name)
    for counter, sql in LARGEST.items():
        row = target.execute("SELECT value FROM counters WHERE name = %s", (counter,)).fetchone()
        expected = _figures(source.execute(sql))[0]
        if row is None or int(row[0]) != expected:
            raise MigrationMismatch(f"the PostgreSQL counter {counter} is "
                                    f"{None if row is None else row[0]}, the SQLite file's "
                                    f"last number {expected}", table="counters")
    if not any(t.name == "events" for t in tables):
        return
    _compare_ledgers(source, target, moved, progress)


# --- the commands ---------------------------------------------------------------------------
def _target_url(url: str) -> str:
    if not is_url(url):
        raise ConfigError(f"--to {url} is not a PostgreSQL URL: give "
                          "postgresql://USER@HOST:PORT/DATABASE (an empty database)")
    return url


def _source_path(path: str | Path) -> Path:
    found = Path(path)
    if not found.is_file():
        raise ConfigError(f"--from {found}: no such file (give HQ's SQLite file)")
    return found


def migrate(source: str | Path, url: str, progress: ProgressFactory | None = None) -> Moved:
    """Copies HQ from the SQLite file `source` into the empty PostgreSQL database at `url`
    (see the module's docstring); returns what it did."""
    url = _target_url(url)
    path = _source_path(source)
    with DatabaseLock(path, "loyalty hq migrate").held(
            "stop HQ before moving it (outlets keep selling and queue meanwhile), then run "
            "the command again"), _read_only(path) as src:
        _check_source(src, path)
        tables = tables_of(src)
        counts = {t.name: int(src.execute(f"SELECT COUNT(*) FROM {_quoted(t.name)}")
                              .fetchone()[0]) for t in tables}
        store = PgStore(url)
        try:
            with store.session() as conn:
                return _copy_all(conn, src, tables, counts, store.where, progress)
        finally:
            store.close()


def _copy_all(conn: psycopg.Connection[Any], src: sqlite3.Connection, tables: Sequence[Table],
              counts: dict[str, int], where: str, progress: ProgressFactory | None) -> Moved:
    moved = Moved()
    with conn.transaction():
        shape = _target_columns(conn)
        _check_shapes(tables, shape)
        names = ", ".join(_quoted(n) for n in [*shape, *sorted(PG_ONLY - {"_migrations"})])
        conn.execute(f"LOCK TABLE {names} IN EXCLUSIVE MODE")
        _refuse_rows(conn, shape, where)
        started = time.perf_counter()
        for i, table in enumerate(tables, start=1):
            name = f"migrate {i}/{len(tables)} {table.name}"
            with (progress(name, "rows") if progress is not None
                  else contextlib.nullcontext()) as bar:
                moved.tables[table.name] = _copy(conn, src, table, shape[table.name],
                                                 counts[table.name], bar)
        _set_numbering(conn, src)
        moved.copy_s = time.perf_counter() - started
        started = time.perf_counter()
        _compare(src, conn, tables, moved, progress)
        moved.verify_s = time.perf_counter() - started
    return moved


def verify(source: str | Path, url: str) -> Moved:
    """Compares HQ's SQLite file with its PostgreSQL copy (see the module's docstring);
    raises `MigrationMismatch` naming the first table that differs."""
    url = _target_url(url)
    path = _source_path(source)
    moved = Moved()
    with _read_only(path) as src:
        _check_source(src, path)
        tables = tables_of(src)
        store = PgStore(url)
        try:
            with store.session() as conn, conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                _check_shapes(tables, _target_columns(conn))
                started = time.perf_counter()
                _compare(src, conn, tables, moved)
                moved.verify_s = time.perf_counter() - started
        finally:
            store.close()
    return moved
