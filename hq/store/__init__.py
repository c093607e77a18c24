"""HQ's storage seam: one interface, a SQLite and a PostgreSQL store (issue 15).

`open_hq(where)`: a path opens HQ's SQLite file (hq/store/sqlite.py: today's
`schema.database.Database`, unchanged); a `postgresql://` URL opens HQ's PostgreSQL database
(hq/store/postgres.py; psycopg comes with `pip install 'loyalty[postgres]'`). A URL is never
taken for a file name: one that cannot be reached is `storage_unavailable`, and nothing is
created on disk. hq/store/base.py lists what every store promises (`Store`).

Two things that differ in kind between the stores are functions of the connection at hand,
so the code that writes a transaction says them once:
- `take(conn, counter, n)`: the first of `n` new numbers of a sequence a reader follows
  with a cursor (`changes`: the change log). SQLite: the largest number so far plus one
  (one writer at a time: nothing can commit in between). PostgreSQL: the counter row,
  locked until the transaction ends, so take numbers as the last thing before committing.
- `announce(conn)`: wake long polls in every HQ process once this transaction commits
  (PostgreSQL: NOTIFY; SQLite: nothing, this process's `Waiters` are woken by the caller
  and another process's changes are found by looking).
- `ledger_numbers(conn, n)`: `n` new `events.hq_seq`, increasing. SQLite: after the
  largest. PostgreSQL: from the column's identity sequence, which concurrent transactions
  (several HQ processes) draw from without waiting for each other: unique and increasing
  in the order taken, with gaps where a transaction rolled back. Nothing follows `hq_seq`
  with a cursor (pulls follow the change log, `take`), so neither gaps nor commit order
  matter; a ledger number read as MAX()+1 would collide between concurrent transactions.
- `serialise(conn, name)`: the rest of this transaction runs alone among the transactions
  that serialise on `name` (PostgreSQL: a transaction-level advisory lock, held until
  commit; SQLite: nothing, its one writer is alone anyway). For numbering that must stay
  dense and is rare (HQ's own facts, card ranges): read the largest, then add one.
- `DB_ERRORS` / `INTEGRITY_ERRORS`: what either store's driver raises (any error / a
  constraint refused a row); `retryable(exc)`: the transaction was aborted to keep
  concurrent ones consistent (a serialization failure, a deadlock) and is to be run again
  whole (the store's `transact`, the committer's group), never swallowed by a savepoint.

Every part of HQ runs on either store (docs/operations.md, "PostgreSQL at HQ"). `open_hq`
is typed as returning the SQLite store because HQ's modules are typed against
`sqlite3.Connection`; a `PgStore` offers the same surface at run time
(tests/hq/test_store_seam.py checks it): retyping the connections to one protocol is
left to do.
hq/store/migrate.py moves a chain's HQ from its SQLite file into PostgreSQL (`loyalty hq
migrate`), verified.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, cast

from hq.store.base import Store, is_url, shown
from hq.store.sqlite import SqliteStore
from schema.dialect import dialect_of
from schema.errors import ConfigError

__all__ = ["DB_ERRORS", "INTEGRITY_ERRORS", "SqliteStore", "Store", "announce", "is_url",
           "ledger_numbers", "open_hq", "report_source", "retryable", "serialise", "shown",
           "take"]

try:
    import psycopg as _psycopg
    from psycopg import errors as _pg_errors
except ImportError:  # HQ on SQLite only: psycopg is the [postgres] extra
    DB_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error,)
    INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)
    _RETRYABLE: tuple[type[Exception], ...] = ()
else:
    DB_ERRORS = (sqlite3.Error, _psycopg.Error)
    INTEGRITY_ERRORS = (sqlite3.IntegrityError, _psycopg.IntegrityError)
    _RETRYABLE = (_pg_errors.SerializationFailure, _pg_errors.DeadlockDetected)

# The SQLite reading of each counter: the largest number given so far.
LARGEST = {"changes": "SELECT COALESCE(MAX(seq), 0) FROM changes"}


def open_hq(where: str | Path) -> SqliteStore:
    """HQ's store at `where` (a file path or a postgresql:// URL), migrated."""
    if is_url(where):
        try:
            from hq.store.postgres import PgStore
        except ImportError:
            raise ConfigError("HQ on PostgreSQL needs psycopg: pip install "
                              "'loyalty[postgres]' (./install.sh --dev installs it)") from None
        return cast(SqliteStore, PgStore(str(where)))
    return SqliteStore(where)


def take(conn: Any, counter: str, n: int = 1) -> int:
    """The first of `n` new numbers of `counter` (see the module's docstring); with
    n = 0, the number the next one would be."""
    if dialect_of(conn).postgres:
        return int(conn.take(counter, n))
    return int(conn.execute(LARGEST[counter]).fetchone()[0]) + 1


def ledger_numbers(conn: Any, n: int) -> list[int]:
    """`n` new ledger numbers (`events.hq_seq`), increasing (see the module's docstring)."""
    if n <= 0:
        return []
    if dialect_of(conn).postgres:
        return sorted(int(r[0]) for r in conn.execute(
            "SELECT nextval(pg_get_serial_sequence('events', 'hq_seq')) "
            "FROM generate_series(1, CAST(? AS INTEGER))", (n,)))
    first = int(conn.execute("SELECT COALESCE(MAX(hq_seq), 0) FROM events").fetchone()[0]) + 1
    return list(range(first, first + n))


def serialise(conn: Any, name: str) -> None:
    """The rest of this transaction alone among those serialising on `name`."""
    if dialect_of(conn).postgres:
        conn.lock(name)


def retryable(exc: BaseException) -> bool:
    """Whether `exc` aborted a transaction that is to run again whole."""
    return isinstance(exc, _RETRYABLE)


def announce(conn: Any) -> None:
    """Wake every HQ process's long polls when this transaction commits (PostgreSQL)."""
    if dialect_of(conn).postgres:
        conn.announce()


def report_source(db: Any) -> Any:
    """What reports over HQ's store read (schema.reports.reading): the SQLite file's path
    (reports open their own read-only connection, never HQ's writer) or the PostgreSQL
    store itself (a REPEATABLE READ snapshot of it)."""
    return db if db.dialect.postgres else db.path
