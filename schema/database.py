"""Opening a SQLite database the way every part of the product needs it.

Promises: WAL mode, `synchronous=FULL` (a sale answered 201 survives power loss, not just a
process crash), foreign keys on, a busy timeout, and forward-only named migrations applied
at open. One `Database` owns one write connection; `write()` serialises writers inside the
process with a lock and takes SQLite's write lock up front (`BEGIN IMMEDIATE`) so two
processes on the same file queue instead of failing half-way; readers share that lock, and
`read_now` lets one that must not wait (an event loop) see whether it is free. Must never: open a second
write connection to the same file in the same process, or commit part of a `write()` block.
`read_committed` is the one way to read beside a running write (each thread's own
read-only connection: it sees only what is committed).

Faults: opening refuses, with a `LoyaltyError` naming the file, what is not a SQLite file,
the other side's database (HQ's given to an agent, an outlet's given to HQ: nothing is
written into it), and a file or folder it cannot write; at any time a storage fault (disk
full, I/O error, read-only, damaged) is told apart from a bug by `storage_error`.

Secrets at rest: an outlet's database holds its HQ token, HQ's holds token hashes. A new
database is created readable by its owner only (0600, whatever the umask); SQLite gives its
-wal and -shm files the main file's mode. An existing file others may read (group/other
bits) is tightened to owner-only on open, with a warning (a warning only when this user
does not own it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from schema.errors import ConfigError, StorageUnavailable

BUSY_TIMEOUT_MS = 10_000
PRIVATE = 0o600

log = logging.getLogger(__name__)


# The databases by migration set, to name them when one is given for the other.
KINDS = {"loyalty-agent": "an outlet database", "loyalty-hq": "HQ's database"}

# SQLite's primary result codes that are storage faults, not bugs:
# code -> (fault, what happened to {where}, what a person can do about it)
FAULTS = {
    13: ("disk_full", "the disk holding {where} is full", "free space on it, then try again"),
    10: ("io_error", "the disk holding {where} reported an I/O error",
         "check the disk (the system log says more), then restart the service"),
    15: ("io_error", "{where} could not be locked (I/O error)",
         "check the disk, then restart the service"),
    22: ("io_error", "{where} outgrew what this filesystem can hold",
         "move it to another disk"),
    8: ("read_only", "{where} cannot be written (read-only file, folder or disk)",
        "give the user running loyalty write access to it and its folder"),
    3: ("read_only", "{where} cannot be written (access denied)",
        "give the user running loyalty write access to it and its folder"),
    14: ("cannot_open", "{where} cannot be opened",
         ("check that it and its folder exist and that the user running loyalty may read and "
          "write both (SQLite keeps -wal and -shm files beside the database)")),
    5: ("busy", "{where} is busy: another program holds a long write on it",
        "try again in a moment"),
    6: ("busy", "{where} is locked by another connection", "try again in a moment"),
    11: ("damaged", "{where} is damaged",
         "stop the service and restore the database from a backup (docs/operations.md)"),
    26: ("damaged", "{where} is damaged or not a database",
         "stop the service and restore the database from a backup (docs/operations.md)"),
}


def storage_error(exc: BaseException, where: str = "the database") -> StorageUnavailable | None:
    """The storage fault behind a SQLite error, said so a person can act; None when the
    error is not one (a bug: wrong SQL, a constraint)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.Error) or code is None or code & 0xFF not in FAULTS:
        return None
    fault, what, todo = FAULTS[code & 0xFF]
    return StorageUnavailable(f"{what.format(where=where)}: {todo}", fault=fault)


def opening_error(path: str, exc: sqlite3.Error) -> Exception:
    """Why `path` cannot be opened as a database, for the person who named it."""
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
        return ConfigError(f"{path} is not a SQLite database: check the --db path")
    return storage_error(exc, where=path) or ConfigError(f"cannot open {path}: {exc}")


def _os_error(path: str, exc: OSError, doing: str) -> StorageUnavailable:
    return StorageUnavailable(
        f"{path} cannot be {doing} ({exc.strerror}): give the user running loyalty write access "
        "to it and its folder (SQLite keeps -wal and -shm files beside the database)",
        fault="read_only")


def create_private(path: str) -> None:
    """Creates `path` owner-only if it does not exist yet (see the module's promise)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE))
    except FileExistsError:
        pass
    except OSError as exc:
        raise _os_error(path, exc, "created") from exc


def require_writable(path: str) -> None:
    """Refuses a file this process cannot open for writing, as SQLite would silently open
    it read-only (EACCES; EROFS on a read-only disk; EPERM for an immutable file, even for
    root)."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CLOEXEC))
    except OSError as exc:
        raise _os_error(path, exc, "written") from exc


def tighten(path: str) -> None:
    """Makes `path` and its -wal/-shm owner-only if others may read them, with a warning."""
    for name in (path, f"{path}-wal", f"{path}-shm"):
        try:
            info = os.stat(name)
        except FileNotFoundError:
            continue
        wide = stat.S_IMODE(info.st_mode)
        if not stat.S_ISREG(info.st_mode) or not wide & 0o077:
            continue
        try:
            os.chmod(name, wide & 0o700)
        except PermissionError:
            log.warning("%s is readable by other users (mode %o) and holds secrets; this user "
                        "cannot change that: have its owner run chmod 600 on it", name, wide)
        else:
            log.warning("%s was readable by other users (mode %o) and holds secrets: now %o",
                        name, wide, wide & 0o700)


def _refuse_foreign(conn: sqlite3.Connection, path: str, mine: str) -> None:
    """Refuses a database that has tables but not our migrations: the other side's, or
    another program's (our migrations would be written into it)."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return
    sets: set[str] = set()
    if "_sqlite_migrations" in tables:
        sets = {r[0] for r in conn.execute("SELECT DISTINCT migration_set FROM _sqlite_migrations")}
    if mine in sets:
        return
    wanted = KINDS.get(mine, mine)
    other = next((KINDS[s] for s in sorted(sets) if s in KINDS), None)
    if other is not None:
        raise ConfigError(f"{path} is {other}, not {wanted}: check the --db path")
    raise ConfigError(f"{path} is another program's SQLite database, not {wanted}: check the "
                      "--db path")


class Database:
    """A SQLite file with its single write connection and its migrations applied."""

    def __init__(self, path: str | Path, migrations: Migrations) -> None:
        self.path = str(path)
        on_disk = self.path != ":memory:"
        if on_disk:
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _os_error(str(Path(self.path).parent), exc, "created") from exc
            create_private(self.path)
            require_writable(self.path)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            _refuse_foreign(conn, self.path, migrations.name)  # before anything is written
            if on_disk:
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self.conn = conn
            self.db = sqlite_utils.Database(conn, execute_plugins=False)
            self._lock = threading.RLock()
            self._count_lock = threading.Lock()
            self._local = threading.local()  # each thread's `read_committed` connection
            self._readers: list[sqlite3.Connection] = []
            self._waiters = 0  # threads waiting for `_lock` (read or write)
            self._closing = threading.Event()
            self._checkpointer: threading.Thread | None = None
            with self._lock:
                migrations.apply(self.db)
        except sqlite3.Error as exc:
            conn.close()
            raise opening_error(self.path, exc) from exc
        except BaseException:
            conn.close()
            raise
        if on_disk:
            tighten(self.path)

    @contextlib.contextmanager
    def write(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One atomic, durable write transaction; nested calls join the outer one.

        `durable=False`: the commit does not wait for the disk (synchronous=NORMAL, for
        that transaction only), for writes that can be made again (a pulled page): a
        power cut may undo it, whole, never anything before it, and a durable commit
        after it makes it durable too (both are in the same write-ahead log)."""
        with self._waiting():
            self._lock.acquire()
        try:
            if self.conn.in_transaction:
                yield self.conn
                return
            if not durable:
                self.conn.execute("PRAGMA synchronous=NORMAL")
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                    self.conn.execute("COMMIT")
                except BaseException:
                    # a failed COMMIT (disk full, I/O error) may leave the transaction
                    # open: the next write() would join it and never commit
                    if self.conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            self.conn.execute("ROLLBACK")
                    raise
            finally:
                if not durable:
                    self.conn.execute("PRAGMA synchronous=FULL")
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def _waiting(self) -> Iterator[None]:
        """Counts a thread waiting for the connection (see `let_others_in`)."""
        with self._count_lock:
            self._waiters += 1
        try:
            yield
        finally:
            with self._count_lock:
                self._waiters -= 1

    def others_waiting(self) -> int:
        """How many threads wait for the connection now."""
        return self._waiters

    def let_others_in(self, grace_s: float = 0.002, at_most_s: float = 0.05) -> None:
        """Between two parts of a long job: if other threads wait for the connection, they
        go first (a lock is not fair: the thread that just released it would get it back
        before a waiting one wakes up). Returns at once if none waits; else once the
        connection has been free, with none waiting, for `grace_s` (a sale takes it two or
        three times in a row), or after `at_most_s` at most."""
        if not self._waiters:
            return
        deadline = time.monotonic() + at_most_s
        quiet_since: float | None = None
        while (now := time.monotonic()) < deadline:
            if self._waiters or not self._free():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= grace_s:
                return
            time.sleep(0.0002)

    def _free(self) -> bool:
        if not self._lock.acquire(blocking=False):
            return False
        self._lock.release()
        return True

    def writing_here(self) -> bool:
        """True inside a `write()` block of this thread (a `write()` here would join it)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            return self.conn.in_transaction
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read: shares the connection, so it waits for a running write."""
        with self._waiting():
            self._lock.acquire()
        try:
            yield self.conn
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def read_committed(self) -> Iterator[sqlite3.Connection]:
        """A read that never waits for a running write: on a read-only connection of this
        thread's own (WAL lets it read beside the writer) it sees what is committed, not
        the write in progress. For a lookup that must not queue behind a long write (an
        outlet's token while HQ commits a group of pushes). A database in memory has no
        second connection: that is `read()`."""
        if self.path == ":memory:":
            with self.read() as shared:
                yield shared
            return
        conn: sqlite3.Connection | None = getattr(self._local, "reader", None)
        if conn is None:
            conn = sqlite3.connect(f"{Path(self.path).resolve().as_uri()}?mode=ro", uri=True,
                                   check_same_thread=False, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._local.reader = conn
            with self._count_lock:
                self._readers.append(conn)
        yield conn

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
        with self._count_lock:
            readers, self._readers = self._readers, []
        for reader in readers:
            reader.close()
        with self._lock:
            self.conn.close()


def file_size(path: str | Path) -> int:
    """Bytes on disk of a database, its WAL included."""
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(FileNotFoundError):
            total += os.path.getsize(f"{path}{suffix}")
    return total
