"""HQ's SQLite store: today's `schema.database.Database`, with the seam's few additions.

Nothing of `Database` changes (WAL, synchronous=FULL, one write connection serialised by a
lock, BEGIN IMMEDIATE, the checkpointer, the refusals at open): this class only adds what
the PostgreSQL store needs callers to say (`snapshot`, `transact`) as what SQLite already
did, so HQ's code can say it once for both.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from schema.database import Database
from schema.dialect import SQLITE
from schema.hq_tables import migrations

T = TypeVar("T")


class SqliteStore(Database):
    """HQ's database in one SQLite file (the default: small chains, demo, development)."""

    kind = "sqlite"
    dialect = SQLITE

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, migrations)

    @property
    def where(self) -> str:
        return self.path

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every statement in the block sees the same state, even
        against another process writing the file (inside a `write()`: that transaction)."""
        with self.read() as conn:
            if conn.in_transaction:
                yield conn
                return
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def transact(self, fn: Callable[[sqlite3.Connection], T], attempts: int = 5) -> T:
        """`fn(conn)` in one `write()`: SQLite's single writer never has to run it again."""
        with self.write() as conn:
            return fn(conn)

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Always this process: one HQ process serves a SQLite file (its serving lock,
        schema/dblock.py), so its scheduler is alone on it."""
        yield True

    def listen(self, callback: Callable[[], None]) -> None:
        """Nothing to listen to: a change made by another process on the file is found by
        looking (hq/api/sync.py looks at the change log every second while a pull waits)."""
