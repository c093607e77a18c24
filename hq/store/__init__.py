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
- `one_at_a_time(conn, name)`: the transaction waits for any other one that said `name`
  to end, and holds `name` until it ends itself: for work whose reads decide its writes
  (closing a period reads what is not yet invoiced) when two HQ processes may do it at
  once. PostgreSQL: a transaction advisory lock; SQLite: nothing (one writer at a time).
- `announce(conn)`: wake long polls in every HQ process once this transaction commits
  (PostgreSQL: NOTIFY; SQLite: nothing, this process's `Waiters` are woken by the caller
  and another process's changes are found by looking).

Phase 1 of issue 15 (docs/operations.md, "PostgreSQL at HQ (in progress)"): `Chain` opens
either store, and the change log (numbering, wake-ups) and the pull page run on both; the
rest of HQ still speaks to SQLite. `open_hq` is typed as returning the SQLite store because
HQ's modules are typed against `sqlite3.Connection`; a `PgStore` offers the same surface at
run time (tests/hq/test_store_seam.py checks it) until phase 2 retypes the connections.
hq/store/migrate.py moves a chain's HQ from its SQLite file into PostgreSQL (`loyalty hq
migrate`), verified.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from hq.store.base import Store, is_url, shown
from hq.store.sqlite import SqliteStore
from schema.dialect import dialect_of
from schema.errors import ConfigError

__all__ = ["SqliteStore", "Store", "announce", "is_url", "one_at_a_time", "open_hq",
           "report_source", "shown", "take"]

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


def announce(conn: Any) -> None:
    """Wake every HQ process's long polls when this transaction commits (PostgreSQL)."""
    if dialect_of(conn).postgres:
        conn.announce()


def one_at_a_time(conn: Any, name: str) -> None:
    """Wait for, then hold until this transaction ends, the chain-wide `name` (see the
    module's docstring); call it first in the transaction, before its reads."""
    if dialect_of(conn).postgres:
        from hq.store.postgres import lock_key

        conn.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(f"serial:{name}"),))


def report_source(db: Any) -> Any:
    """What reports over HQ's store read (schema.reports.reading): the SQLite file's path
    (reports open their own read-only connection, never HQ's writer) or the PostgreSQL
    store itself (a REPEATABLE READ snapshot of it)."""
    return db if db.dialect.postgres else db.path
