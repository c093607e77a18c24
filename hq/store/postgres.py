"""HQ's PostgreSQL store: the `Store` interface over psycopg 3 and a connection pool.

Opening: the URL is read (`postgresql://user:password@host:port/database?...`, libpq's
form: `?host=/run/postgresql` for a unix socket); one connection checks that the server
answers and applies HQ's migrations (schema/hq_tables_pg.py) under an advisory lock, so
HQ processes starting together migrate once; then a pool serves the threads.

- `write()`: READ COMMITTED (PostgreSQL's default), on the thread's own pooled connection;
  a nested block joins it. `read()` / `snapshot()`: REPEATABLE READ READ ONLY, one snapshot
  for the block. `one` / `all` / `scalar`: one statement in its own transaction.
- Statements are SQLite's: `?` becomes `%s` (schema.dialect.format_placeholders); rows
  answer `row[0]`, `row["name"]`, `dict(row)` and `row.keys()` like `sqlite3.Row`; a whole
  number PostgreSQL hands out as `numeric` (what `SUM(bigint)` is) comes back as `int`; a
  Python bool is bound as the integer 1 or 0, as sqlite3 binds it.
- Numbering (`PgConnection.take`): the counter row of `counters`, updated and so locked
  until the transaction ends: numbers become visible in the order they were taken, so a
  reader following `seq > cursor` never passes one that commits later.
- Chain-wide work (`exclusive(name)`): a session advisory lock per name, tried, never
  waited for: of several HQ processes reaching the same scheduled job for the same period,
  one runs it (hq/schedule.py `once`).
- Serving (`serving(label)` / `alone(hint)`): a serving HQ process holds the shared
  advisory lock "hq serve" for its life on a connection of its own named `label` (its
  application_name: the command, its pid and address), taken again after a reconnect; a
  command that must run with no HQ serving (`loyalty hq restore-epoch`) takes it exclusively,
  tried, never waited for, and otherwise is refused (`database_in_use`) naming each serving
  process, as a SQLite file's lock names its one.
- Wake-ups: `announce` queues a NOTIFY on `loyalty_changes` (sent at commit, once per
  transaction); `listen(callback)` keeps a connection LISTENing in a thread and calls
  `callback` on each one (and after reconnecting, for what it may have missed). LISTEN does
  not pass through PgBouncer's transaction pooling: connect HQ to PostgreSQL itself.

Faults: a server that cannot be reached at open, or lost later (no connection within
`wait_s`, 10 s), is `storage_unavailable` naming the URL without its password; a pooled
connection the server dropped (a restart, a failover) is replaced when it is handed out;
a URL that cannot be read is `config_error`; a database holding other tables and not HQ's
migrations, or not encoded UTF-8, is refused (`config_error`), nothing written into it.
Must never: show a password, or write into another program's database.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Dumper
from psycopg.postgres import types as postgres_types
from psycopg.rows import RowMaker
from psycopg.types.numeric import NumericLoader
from psycopg_pool import ConnectionPool, PoolTimeout

from hq.store.base import CHANGES, shown
from schema.dialect import POSTGRES, format_placeholders
from schema.errors import ConfigError, DatabaseInUse, StorageUnavailable
from schema.hq_tables_pg import MIGRATION_SET, MIGRATIONS

T = TypeVar("T")

CONNECT_TIMEOUT_S = 10
POOL_SIZE = 20
POOL_WAIT_S = 10.0  # as long as SQLite's busy timeout: then storage_unavailable
RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
MIGRATION_LOCK = 0x6C6F79616C7479  # pg_advisory_lock key: "loyalty"
SERVING = "hq serve"  # the advisory lock every serving HQ process holds shared
SERVING_WAIT_S = 60.0
_BINARY = re.compile(r"(?<!%)%s")  # a placeholder format_placeholders made (not a %%s)


class Row(tuple[Any, ...]):
    """A result row read like `sqlite3.Row`: by position, by column name, `keys()`."""

    __slots__ = ()
    _names: ClassVar[dict[str, int]] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


@functools.lru_cache(maxsize=1024)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"_names": {n: i for i, n in enumerate(names)},
                                "__slots__": ()})


def _rows(cursor: Any) -> RowMaker[Row]:
    description = cursor.description
    cls = _row_class(tuple(c.name for c in description) if description else ())
    return cls


class WholeNumbers(NumericLoader):
    """`numeric` without a fraction (`SUM(bigint)`, `COUNT(*) * 2`...) as `int`, as
    SQLite answers; anything with a fraction stays a `Decimal`."""

    def load(self, data: Any) -> Any:
        raw = bytes(data)
        if raw[:1] in b"-0123456789" and b"." not in raw:
            return int(raw)
        return super().load(data)


class BoolAsInteger(Dumper):
    """A Python bool bound as the integer 1 or 0, as sqlite3 binds it: HQ's flags are
    integer columns in both schemas (`email_consent = ?` with False)."""

    oid = postgres_types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.adapters.register_loader("numeric", WholeNumbers)
    conn.adapters.register_dumper(bool, BoolAsInteger)


def lock_key(name: str) -> int:
    """The 64-bit advisory lock key of a chain-wide piece of work (`PgStore.exclusive`)."""
    digest = hashlib.sha256(f"loyalty:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def unreachable(where: str, exc: BaseException) -> StorageUnavailable:
    """`exc` (psycopg's, libpq's words) said for a person, without any password."""
    words = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return StorageUnavailable(
        f"PostgreSQL at {where} cannot be reached ({words or type(exc).__name__}): check "
        "that the server runs and the URL's host, port, database, user and password "
        "(docs/operations.md, \"PostgreSQL at HQ\")", fault="unreachable")


class PgConnection:
    """A pooled connection as HQ's code uses a `sqlite3.Connection`: `execute`,
    `executemany` (SQLite's statements), plus the store's numbering and wake-ups."""

    dialect = POSTGRES

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self.raw.execute(format_placeholders(sql), tuple(params))

    def execute_binary(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        """`execute` with every parameter sent in binary (schema/bulk.py: arrays of long
        strings go ~30x faster than in text)."""
        return self.raw.execute(_BINARY.sub("%b", format_placeholders(sql)), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> psycopg.Cursor[Any]:
        cursor = self.raw.cursor()
        cursor.executemany(format_placeholders(sql), [tuple(r) for r in rows])
        return cursor

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def take(self, counter: str, n: int = 1) -> int:
        """The first of `n` new numbers of `counter`; its row stays locked until this
        transaction ends, so take them as late in it as you can."""
        if n <= 0:
            row = self.raw.execute("SELECT value FROM counters WHERE name = %s",
                                   (counter,)).fetchone()
        else:
            row = self.raw.execute("UPDATE counters SET value = value + %s WHERE name = %s "
                                   "RETURNING value", (n, counter)).fetchone()
        if row is None:
            raise ConfigError(f"the counter {counter!r} is missing from the counters table")
        return int(row[0]) - max(n, 0) + 1

    def lock(self, name: str) -> None:
        """Waits until no other transaction holds `name`, then holds it until this one ends
        (hq.store.serialise)."""
        self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(name),))

    def announce(self) -> None:
        """Wake every listener when this transaction commits (nothing if it rolls back)."""
        self.raw.execute("SELECT pg_notify(%s, '')", (CHANGES,))


def migrate(conn: psycopg.Connection[Any], where: str,
            migrations: Sequence[tuple[str, str]] = MIGRATIONS,
            migration_set: str = MIGRATION_SET) -> list[str]:
    """Applies what is missing of `migrations`, each in its own transaction with its
    record; returns the names applied. Refuses a database with other tables and no
    record of `migration_set` (another program's)."""
    conn.autocommit = True
    encoding = conn.execute("SHOW server_encoding").fetchone()
    if encoding is None or encoding[0] != "UTF8":
        raise ConfigError(f"{where} is encoded {encoding and encoding[0]}, not UTF8: HQ keeps "
                          "names in every European script; create its database with "
                          "ENCODING 'UTF8' (docs/operations.md, \"PostgreSQL at HQ\")")
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")}
        done: set[str] = set()
        if "_migrations" in tables:
            done = {r[0] for r in conn.execute(
                "SELECT name FROM _migrations WHERE migration_set = %s", (migration_set,))}
        if tables and not done:
            raise ConfigError(f"{where} holds another program's tables, not HQ's: give HQ "
                              "a database of its own (CREATE DATABASE loyalty ...)")
        applied = []
        for name, sql in migrations:
            if name in done:
                continue
            with conn.transaction():
                conn.execute("CREATE TABLE IF NOT EXISTS _migrations (migration_set TEXT, "
                             "name TEXT, applied_at TEXT, PRIMARY KEY (migration_set, name))")
                conn.execute(sql.encode())  # several statements, no parameters
                conn.execute("INSERT INTO _migrations (migration_set, name, applied_at) "
                             "VALUES (%s, %s, to_char(now() AT TIME ZONE 'UTC', "
                             "'YYYY-MM-DD\"T\"HH24:MI:SS.US'))", (migration_set, name))
            applied.append(name)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def _checked_url(url: str) -> dict[str, Any]:
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error as exc:
        words = " ".join(str(exc).split()).replace(url, shown(url))
        raise ConfigError(f"--db {shown(url)} is not a PostgreSQL URL libpq can read "
                          f"({words}): give postgresql://USER@HOST:PORT/DATABASE") from None
    params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    params.setdefault("application_name", "loyalty-hq")
    return params


class PgStore:
    """HQ's database on a PostgreSQL server (see the module's docstring)."""

    kind = "postgresql"
    dialect = POSTGRES

    def __init__(self, url: str, pool_size: int = POOL_SIZE, wait_s: float = POOL_WAIT_S
                 ) -> None:
        self.url = url
        self._where = shown(url)
        self._params = _checked_url(url)
        self._local = threading.local()
        self._closing = threading.Event()
        self._listeners: list[threading.Thread] = []
        try:
            with psycopg.connect(**self._params) as conn:
                migrate(conn, self._where)
        except psycopg.OperationalError as exc:
            raise unreachable(self._where, exc) from None
        self._wait_s = wait_s
        # check: a connection the server dropped (a restart, a failover) is replaced when
        # it is handed out, not found broken by the request that gets it
        self._pool = ConnectionPool(
            kwargs={**self._params, "autocommit": True}, min_size=1, max_size=pool_size,
            configure=_configure, check=ConnectionPool.check_connection, timeout=wait_s,
            name="loyalty-hq", open=False)
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except PoolTimeout as exc:
            raise unreachable(self._where, exc) from None

    @property
    def where(self) -> str:
        return self._where

    # --- connections and transactions -------------------------------------------
    @contextlib.contextmanager
    def _connection(self) -> Iterator[PgConnection]:
        try:
            with self._pool.connection() as raw:
                raw.row_factory = _rows
                yield PgConnection(raw)
        except RETRYABLE:
            raise  # serialization failure or deadlock: transact() runs it again
        except PoolTimeout as exc:
            raise StorageUnavailable(
                f"no connection to PostgreSQL at {self._where} could be had within "
                f"{self._wait_s:g} s (every one busy, or the server is down): check that "
                "it runs, then try again", fault="unreachable") from exc
        except psycopg.OperationalError as exc:
            raise unreachable(self._where, exc) from exc

    @contextlib.contextmanager
    def _transaction(self, begin: str, mode: str) -> Iterator[PgConnection]:
        current: PgConnection | None = getattr(self._local, "conn", None)
        if current is not None:
            if mode == "write" and self._local.mode != "write":
                raise RuntimeError("a write() inside a read() block: PostgreSQL's read "
                                   "blocks are read-only; write first, or after")
            yield current
            return
        with self._connection() as conn:
            conn.raw.execute(begin)
            self._local.conn, self._local.mode = conn, mode
            try:
                yield conn
            except BaseException:
                self._local.conn = None
                if not conn.raw.closed:
                    with contextlib.suppress(psycopg.Error):
                        conn.raw.execute("ROLLBACK")
                raise
            self._local.conn = None
            conn.raw.execute("COMMIT")

    @contextlib.contextmanager
    def session(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection for the caller alone, outside the store's transactions
        (autocommit until the caller begins one): for work that drives its own transaction
        (hq/store/migrate.py) or holds a session-level lock (`exclusive`)."""
        with self._connection() as conn:
            yield conn.raw

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Whether this process is the one to do `name` now, chain-wide: a session advisory
        lock keyed by `name` (pg_try_advisory_lock), held on a connection of its own until
        the block ends, never waited for. Another process holding it: False at once. The
        server drops it with its connection, so a process that dies never leaves it held."""
        key = lock_key(name)
        with self.session() as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            mine = bool(row and row[0])
            try:
                yield mine
            finally:
                if mine and not conn.closed:
                    with contextlib.suppress(psycopg.Error):
                        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def serving(self, label: str) -> None:
        """Marks this process as serving the database until `close`: the shared advisory
        lock SERVING on a connection of its own whose application_name is `label` (at most
        63 bytes: PostgreSQL cuts it there), taken again after the connection was lost.
        Returns once it is held (waiting while an `alone` block runs)."""
        held = threading.Event()
        thread = threading.Thread(target=self._serve, args=(label, held), daemon=True,
                                  name="pg-serving")
        self._listeners.append(thread)
        thread.start()
        deadline = time.monotonic() + SERVING_WAIT_S
        while not held.wait(0.1):
            if self._closing.is_set():
                return
            if time.monotonic() > deadline:
                raise StorageUnavailable(
                    f"PostgreSQL at {self._where} did not let this process mark it as served "
                    f"within {SERVING_WAIT_S:g} s (a long `loyalty hq restore-epoch`, or the "
                    "server is down): try again", fault="unreachable")

    def _serve(self, label: str, held: threading.Event) -> None:
        key = lock_key(SERVING)
        while not self._closing.is_set():
            try:
                with psycopg.connect(**{**self._params, "application_name": label},
                                     autocommit=True) as conn:
                    conn.execute("SELECT pg_advisory_lock_shared(%s)", (key,))
                    held.set()
                    while not self._closing.wait(1.0):
                        conn.execute("SELECT 1")  # a lost connection is found, and re-made
            except psycopg.Error:
                self._closing.wait(1.0)

    @contextlib.contextmanager
    def alone(self, hint: str) -> Iterator[None]:
        """A block no HQ process serves this database in (none holds SERVING; one starting
        meanwhile waits for the block to end); else `DatabaseInUse` naming every serving
        process by its label, and `hint` saying what to do."""
        key = lock_key(SERVING)
        with self.session() as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if not (row and row[0]):
                # a bigint key is held as (classid, objid): its high and low 32 bits
                labels = [str(r[0]) for r in conn.execute(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                    "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND "
                    "l.objsubid = 1 AND l.classid = %s::bigint::oid AND "
                    "l.objid = %s::bigint::oid AND l.database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database()) ORDER BY a.backend_start",
                    ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF)).fetchall()]
                named = "; ".join(label or "a process whose name this role may not read"
                                  for label in labels) or "an HQ process"
                raise DatabaseInUse(f"{self._where} is in use by {len(labels) or 1} HQ "
                                    f"process(es) ({named}): {hint}",
                                    holder="loyalty hq serve", serving=len(labels))
            try:
                yield
            finally:
                if not conn.closed:
                    with contextlib.suppress(psycopg.Error):
                        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def write(self) -> contextlib.AbstractContextManager[PgConnection]:
        """One atomic transaction (READ COMMITTED); nested calls join the outer one."""
        return self._transaction("BEGIN", "write")

    def read(self) -> contextlib.AbstractContextManager[PgConnection]:
        """A block of reads on one snapshot (REPEATABLE READ READ ONLY)."""
        return self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "read")

    snapshot = read

    @contextlib.contextmanager
    def read_committed(self) -> Iterator[PgConnection]:
        """A read that never waits for a running write: a pooled connection of its own, each
        statement in its own transaction (autocommit), seeing what is committed. Inside a
        block of this thread, that block (as on SQLite, a read beside the caller's write
        would not see what it wrote, and nothing here waits for it anyway)."""
        current: PgConnection | None = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        with self._connection() as conn:
            yield conn

    def writing_here(self) -> bool:
        """True inside a `write()` block of this thread (a `write()` here would join it)."""
        return getattr(self._local, "conn", None) is not None and self._local.mode == "write"

    @contextlib.contextmanager
    def read_now(self) -> Iterator[PgConnection | None]:
        """Never a connection: every PostgreSQL read waits on the network, so a caller
        that must not wait (an event loop) reads in a worker thread."""
        yield None

    def transact(self, fn: Callable[[PgConnection], T], attempts: int = 5) -> T:
        """`fn(conn)` in one `write()`, run again when PostgreSQL aborts it for a
        serialization failure or a deadlock (not inside another block: that one is
        what would have to run again)."""
        nested = getattr(self._local, "conn", None) is not None
        for attempt in range(1, attempts + 1):
            try:
                with self.write() as conn:
                    return fn(conn)
            except RETRYABLE:
                if nested or attempt == attempts:
                    raise
                time.sleep(random.uniform(0, 0.005 * 2 ** attempt))
        raise AssertionError("unreachable")

    # --- one statement ----------------------------------------------------------
    def _statement(self, sql: str, params: Any) -> list[Row]:
        current: PgConnection | None = getattr(self._local, "conn", None)
        if current is not None:
            return list(current.execute(sql, params).fetchall())
        with self._connection() as conn:
            return list(conn.execute(sql, params).fetchall())

    def one(self, sql: str, params: Any = ()) -> Row | None:
        rows = self._statement(sql, params)
        return rows[0] if rows else None

    def all(self, sql: str, params: Any = ()) -> list[Row]:
        return self._statement(sql, params)

    def scalar(self, sql: str, params: Any = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else row[0]

    # --- wake-ups ---------------------------------------------------------------
    def listen(self, callback: Callable[[], None]) -> None:
        """Calls `callback` whenever a transaction that `announce`d commits, in any
        process on this database (from a thread of its own, until `close`)."""
        thread = threading.Thread(target=self._listen, args=(callback,), daemon=True,
                                  name="pg-listen")
        self._listeners.append(thread)
        thread.start()

    def _listen(self, callback: Callable[[], None]) -> None:
        while not self._closing.is_set():
            try:
                with psycopg.connect(**self._params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANGES}")
                    callback()  # what changed while no one listened
                    while not self._closing.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            callback()
            except psycopg.Error:
                self._closing.wait(1.0)

    # --- what SQLite needs and PostgreSQL does itself ------------------------------
    def checkpoint(self) -> None:
        """Nothing: PostgreSQL checkpoints its WAL itself."""

    def start_checkpointer(self, every_s: float = 0.25) -> None:
        """Nothing: PostgreSQL checkpoints its WAL itself."""

    def close(self) -> None:
        self._closing.set()
        for thread in self._listeners:
            thread.join(timeout=2)
        self._pool.close()
