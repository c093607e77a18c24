"""Opening a SQLite database the way every part of the product needs it.

Promises: WAL mode, `synchronous=FULL` (a sale answered 201 survives power loss, not just a
process crash), foreign keys on, a busy timeout, and forward-only named migrations applied
at open. One `Database` owns one write connection; `write()` serialises writers inside the
process with a lock and takes SQLite's write lock up front (`BEGIN IMMEDIATE`) so two
processes on the same file queue instead of failing half-way; readers share that lock, and
`read_now` lets one that must not wait (an event loop) see whether it is free. Must never: open a second
write connection to the same file in the same process, or commit part of a `write()` block.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

BUSY_TIMEOUT_MS = 10_000


class Database:
    """A SQLite file with its single write connection and its migrations applied."""

    def __init__(self, path: str | Path, migrations: Migrations) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        self.conn = conn
        self.db = sqlite_utils.Database(conn, execute_plugins=False)
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._checkpointer: threading.Thread | None = None
        with self._lock:
            migrations.apply(self.db)

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One atomic, durable write transaction; nested calls join the outer one."""
        with self._lock:
            if self.conn.in_transaction:
                yield self.conn
                return
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read: shares the connection, so it waits for a running write."""
        with self._lock:
            yield self.conn

    @contextlib.contextmanager
    def read_now(self) -> Iterator[sqlite3.Connection | None]:
        """`read()` if the connection is free at this moment, else None: never waits.

        For a caller that must not block (an event loop): a running write (a commit's
        fsync, or BEGIN IMMEDIATE waiting up to the busy timeout for another process) holds
        the connection, and the caller then reads elsewhere (a worker thread)."""
        if not self._lock.acquire(blocking=False):
            yield None
            return
        try:
            yield self.conn
        finally:
            self._lock.release()

    def one(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        with self.read() as conn:
            row: sqlite3.Row | None = conn.execute(sql, params).fetchone()
            return row

    def all(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        with self.read() as conn:
            return list(conn.execute(sql, params).fetchall())

    def scalar(self, sql: str, params: Any = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else row[0]

    def checkpoint(self) -> None:
        """Folds the WAL into the main file now (through the writer: blocks writes)."""
        with self._lock:
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def start_checkpointer(self, every_s: float = 0.25) -> None:
        """Moves WAL checkpoints off the writers' path (measured: the automatic one
        lands on every ~34th sale and sets the p99): a thread with its own connection
        checkpoints PASSIVE-ly, never blocking a writer; the writer stops checkpointing."""
        if self.path == ":memory:" or self._checkpointer is not None:
            return
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, args=(every_s,),
                                              name="wal-checkpoint", daemon=True)
        self._checkpointer.start()

    def _checkpoint_loop(self, every_s: float) -> None:
        reader = sqlite3.connect(self.path, check_same_thread=False)
        reader.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        try:
            while not self._closing.wait(every_s):
                with contextlib.suppress(sqlite3.Error):
                    reader.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            reader.close()

    def close(self) -> None:
        self._closing.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=2)
        with self._lock:
            self.conn.close()


def file_size(path: str | Path) -> int:
    """Bytes on disk of a database, its WAL included."""
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(FileNotFoundError):
            total += os.path.getsize(f"{path}{suffix}")
    return total
