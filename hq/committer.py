"""Group commit: writes that wait at the same time share one durable transaction.

HQ's pushes used to commit one by one, each paying its own fsync and rewriting the same
index pages (tallies, items, the change log) that the next push rewrote again. Here the
pushes that queue while a transaction is being written go into the next one together
(docs/sync.md, "Group commit").

Promises:
- `run` returns only once the transaction holding the job's writes has committed
  (durable: synchronous=FULL), or raises; a job that raises kept nothing (each job runs in
  its own savepoint) and the other jobs of its group go on unaffected;
- when the transaction itself fails (BEGIN, a storage fault that undid it, COMMIT), every
  job of the group raises that error and none of them kept anything;
- jobs run in the order they arrived, each seeing what the jobs before it wrote;
- what jobs only add up (`Shared`) is merged after each job's savepoint is released and
  written once, after the last job, before the commit;
- a job alone waits for nobody: no thread of its own, no timer. The first caller that
  finds no group running leads: it runs what is waiting (its own job first, up to
  `max_weight`), commits, answers the others, and hands the lead to the next caller
  waiting, whose group is what queued meanwhile;
- a caller already inside a `write()` of the same database runs its job there (joined to
  the outer transaction, which commits it);
- on PostgreSQL (several HQ processes writing at once), a group the server aborts to keep
  concurrent transactions consistent (a deadlock, a serialization failure: `store.retryable`)
  is run again whole, every job from the start, by the store's `transact`; such an error in
  a job is the group's, never caught by the job's savepoint. So a job must be safe to run
  again: everything it does is in the transaction it is handed.
Must never: answer a job before its commit, keep any part of a job that raised, or let a
job's failure undo another job.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, Self, TypeVar

from hq import store
from schema.database import Database
from schema.dialect import dialect_of

R = TypeVar("R")


class Shared(Protocol):
    """What the jobs of a group add up, written once before the group commits."""

    def merge(self, part: Self) -> None: ...

    def flush(self, conn: sqlite3.Connection) -> None: ...


S = TypeVar("S", bound=Shared)
Job = Callable[[sqlite3.Connection, S], tuple[R, S]]


@dataclass(eq=False)
class _Waiting(Generic[R, S]):
    job: Job[S, R]
    shared: Callable[[], S]
    weight: int
    woken: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    answer: R | None = None
    error: BaseException | None = None

    def outcome(self) -> R:
        if self.error is not None:
            raise self.error
        return self.answer  # type: ignore[return-value]


class GroupCommit:
    """Group commit over one `Database` (see the module's promises)."""

    def __init__(self, db: Database, max_weight: int, cache_kib: int = 0) -> None:
        self.db = db
        self.max_weight = max_weight  # a group stops growing at this weight (events)
        self.cache_kib = cache_kib  # the page cache while a group is written (0: as is)
        self._mutex = threading.Lock()
        self._queue: deque[_Waiting[Any, Any]] = deque()
        self._leading = False
        self._writing = 0  # jobs in the group being written
        self.groups = 0  # committed groups and the jobs in them (for tests and benches)
        self.jobs = 0

    def pending(self) -> int:
        """Jobs submitted and not answered yet (queued, or in the group being written)."""
        with self._mutex:
            return len(self._queue) + self._writing

    def run(self, job: Job[S, R], shared: Callable[[], S], weight: int = 1) -> R:
        """`job(conn, group_shared)` in a shared transaction; it returns its answer and
        its own `shared()` part (merged into the group's if it does not raise)."""
        me: _Waiting[R, S] = _Waiting(job, shared, max(1, weight))
        if self.db.writing_here():  # inside the caller's transaction, which commits it
            with self.db.write() as conn:
                waiting = [me]
                self._run_jobs(conn, waiting)
            return me.outcome()
        with self._mutex:
            self._queue.append(me)
            leads = not self._leading
            self._leading = True
        if not leads:
            me.woken.wait()
            if not me.leads:
                return me.outcome()
        self._lead()
        return me.outcome()

    def _lead(self) -> None:
        with self._mutex:
            group = [self._queue.popleft()]  # the leader's own job
            weight = group[0].weight
            while self._queue and weight + self._queue[0].weight <= self.max_weight:
                group.append(self._queue.popleft())
                weight += group[-1].weight
            self._writing = len(group)
        try:
            self._commit(group)
        finally:
            with self._mutex:
                self._writing = 0
                if self._queue:  # the next group is what queued meanwhile: its first leads
                    self._queue[0].leads = True
                    self._queue[0].woken.set()
                else:
                    self._leading = False
            for waiting in group[1:]:
                waiting.woken.set()

    def _commit(self, group: list[_Waiting[Any, Any]]) -> None:
        def write(conn: sqlite3.Connection) -> None:
            tune = self.cache_kib and not dialect_of(conn).postgres  # SQLite's page cache
            if tune:
                default = conn.execute("PRAGMA cache_size").fetchone()[0]
                conn.execute(f"PRAGMA cache_size = -{self.cache_kib}")
            try:
                self._run_jobs(conn, group)
            finally:
                if tune:
                    conn.execute(f"PRAGMA cache_size = {int(default)}")

        try:
            transact = getattr(self.db, "transact", None)  # HQ's stores (hq/store) have it
            if transact is not None:
                transact(write)  # run again whole when PostgreSQL aborted it
            else:
                with self.db.write() as conn:
                    write(conn)
        except BaseException as exc:  # the transaction failed: nothing of the group stays
            for waiting in group:
                waiting.answer, waiting.error = None, exc
            if not isinstance(exc, Exception):
                raise
        else:
            self.groups += 1
            self.jobs += len(group)

    @staticmethod
    def _run_jobs(conn: sqlite3.Connection, group: list[_Waiting[Any, Any]]) -> None:
        shared: dict[Callable[[], Any], Any] = {}  # per kind of job: its group's sums
        for waiting in group:
            waiting.answer, waiting.error = None, None  # the group may be running again
            sums = shared.get(waiting.shared)
            if sums is None:
                sums = shared[waiting.shared] = waiting.shared()
            conn.execute("SAVEPOINT grouped_job")
            try:
                answer, part = waiting.job(conn, sums)
            except Exception as exc:
                if not conn.in_transaction or store.retryable(exc):
                    raise  # a storage fault undid the whole transaction, or it runs again
                conn.execute("ROLLBACK TO grouped_job")
                conn.execute("RELEASE grouped_job")
                waiting.error = exc
                continue
            conn.execute("RELEASE grouped_job")
            sums.merge(part)
            waiting.answer = answer
        for sums in shared.values():
            sums.flush(conn)
