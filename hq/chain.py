"""The chain as HQ holds it: the database, its epoch, the change log and who waits on it,
and the group commit its outlets' pushes go through (`pushes`, hq/committer.py).

Promises: the epoch is fixed when the database is created and changes only when HQ is
restored from a backup (`restore_epoch`), so outlets can tell HQ went back in time; every
entity change bumps its row in the compacted change log inside the caller's transaction,
numbered by `hq.store.take` (on PostgreSQL the counter row, locked until commit: a puller
never passes a change that commits later, so bump as late in a transaction as you can);
`notify` wakes long-polling outlets after a commit, and on PostgreSQL a bump also wakes
those of other HQ processes. The database is a SQLite file or a postgresql:// URL
(hq/store). Must never: reuse a change sequence.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hq import store
from hq.committer import GroupCommit
from schema.bulk import BIGINT, TEXT, insert_rows
from schema.events import utc_now
from schema.masterdata import DOCS, key_of
from schema.timing import DEFAULT_TOLERANCE_S

MasterSeed = Iterable[tuple[str, dict[str, Any]]]
# Group commit of pushes (docs/sync.md, "Group commit"): a group takes the pushes waiting,
# up to this many events; while it is written SQLite may cache this much of the file, so
# the pages a group dirties are written once, at its commit, not spilled and rewritten.
GROUP_EVENTS = 5_000
GROUP_CACHE_KIB = 65_536


class Waiters:
    """Long-poll waiters across threads: `notify` (any thread) wakes every waiting pull."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._closing = False

    def register(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._closing:
                future.set_result(None)
            else:
                self._futures.append((loop, future))
        return future

    def close(self) -> None:
        """HQ is shutting down: answer every long poll now, and every later one at once."""
        with self._lock:
            self._closing = True
        self.notify()

    def notify(self) -> None:
        with self._lock:
            futures, self._futures = self._futures, []
        for loop, future in futures:
            loop.call_soon_threadsafe(_wake, future)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Chain:
    """`clock` is HQ's own clock (UTC ISO 8601, canonical): the receive time of facts and
    of outlets' clock readings; `clock_tolerance_s` is how far an outlet's clock may be
    from it before facts are re-dated and the outlet flagged (docs/sync.md, "Outlet clocks")."""

    def __init__(self, path: str | Path, seed: MasterSeed = (), *,
                 clock: Callable[[], str] = utc_now,
                 clock_tolerance_s: float = DEFAULT_TOLERANCE_S) -> None:
        self.db = store.open_hq(path)  # a file path or a postgresql:// URL (hq/store)
        self.waiters = Waiters()
        self.db.listen(self.waiters.notify)  # changes committed by other HQ processes
        self.pushes = GroupCommit(self.db, max_weight=GROUP_EVENTS, cache_kib=GROUP_CACHE_KIB)
        self.clock = clock
        self.clock_tolerance_s = clock_tolerance_s
        with self.db.write() as conn:
            if self.meta(conn, "epoch") is None:
                self.set_meta(conn, "epoch", uuid.uuid4().hex)
                for kind, doc in seed:
                    self.put_master(conn, kind, DOCS[kind].model_validate(doc).model_dump(mode="json"))
        self.epoch = str(self.db.scalar("SELECT value FROM meta WHERE key = 'epoch'"))

    @staticmethod
    def meta(conn: sqlite3.Connection, key: str) -> str | None:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def set_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                     "DO UPDATE SET value = excluded.value", (key, str(value)))

    @staticmethod
    def bump(conn: sqlite3.Connection, kind: str, key: str, urgent: bool = False) -> int:
        seq = store.take(conn, "changes")
        conn.execute("INSERT INTO changes (kind, key, seq, urgent) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (kind, key) DO UPDATE SET seq = excluded.seq, "
                     "urgent = excluded.urgent", (kind, key, seq, int(urgent)))
        store.announce(conn)
        return seq

    @staticmethod
    def bump_many(conn: sqlite3.Connection, entities: Iterable[tuple[str, str, bool]]) -> int:
        """`bump` for several entities at once, in the order given (each at most once:
        a batch bumps an entity once, at the place of its last change in the batch, with
        that change's urgency); returns the new head."""
        wanted = list(entities)
        first = store.take(conn, "changes", len(wanted))
        rows = [(kind, key, first + i, int(urgent))
                for i, (kind, key, urgent) in enumerate(wanted)]
        insert_rows(conn, "changes", (("kind", TEXT), ("key", TEXT), ("seq", BIGINT),
                                      ("urgent", BIGINT)), rows,
                    "ON CONFLICT (kind, key) DO UPDATE SET seq = excluded.seq, "
                    "urgent = excluded.urgent")
        if rows:
            store.announce(conn)
        return first + len(rows) - 1

    def put_master(self, conn: sqlite3.Connection, kind: str, doc: dict[str, Any]) -> str:
        key = key_of(kind, DOCS[kind].model_validate(doc))

        conn.execute("INSERT INTO master (kind, key, data) VALUES (?, ?, ?) ON CONFLICT (kind, key) "
                     "DO UPDATE SET data = excluded.data", (kind, key, json.dumps(doc, sort_keys=True)))
        self.bump(conn, kind, key)
        return key

    def head(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0])

    def restore_epoch(self) -> str:
        """After restoring this database from a backup: a new epoch tells every outlet."""
        with self.db.write() as conn:
            self.epoch = uuid.uuid4().hex
            self.set_meta(conn, "epoch", self.epoch)
        return self.epoch

    def close(self) -> None:
        self.db.close()
