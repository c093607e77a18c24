"""Starting an outlet from a snapshot of the chain (docs/sync.md, "Snapshot bootstrap").

A snapshot (hq/snapshot.py, schema/snapshotfile.py) is an outlet database holding HQ's
state up to a change-log cursor. It replaces the outlet's database only when that holds
no fact of the outlet's own (`outlet_not_empty` otherwise: a snapshot would lose them);
what the outlet knows of itself (its meta table: outlet id, HQ url and token, link, card
range and serial, seq floor...) is stamped into the new file, and the snapshot's own
entries (cursor, HQ epoch, master data version) are kept. Then the normal pass pulls what
changed after the snapshot's cursor.

The swap is all or nothing, whenever the process dies:
1. the snapshot is decompressed into `DB.snapshot-new` beside the database while its
   SHA-256 is checked (a damaged file is refused before anything is swapped), then
   stamped and fsynced;
2. the old database is checkpointed (TRUNCATE) and closed; if its WAL or shared-memory
   file is still there afterwards another process has it open, and the swap is refused;
3. `rename(DB.snapshot-new, DB)`, then the directory is fsynced.
Before 3 the old database is whole (an outlet with no facts: empty, and the next attempt
starts again, resuming a download from its part file); after 3 the new one is. Leftovers
(`DB.snapshot-new`, `DB.snapshot.part`) are removed by the next attempt.

Must never: replace a database holding the outlet's facts, apply a file that fails its
checksum, or leave a database that is neither the old one nor the new one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent import outbox
from agent.progress import Progress
from schema import snapshotfile
from schema.agent_tables import migrations
from schema.database import BUSY_TIMEOUT_MS
from schema.errors import (
    ConfigError,
    OutletNotEmpty,
    SnapshotCorrupt,
    SnapshotEpochMismatch,
    SnapshotIncompatible,
)
from schema.events import utc_now
from schema.snapshotfile import SnapshotHeader, stall

log = logging.getLogger(__name__)

NEW = ".snapshot-new"
PART = ".snapshot.part"
# meta entries the snapshot brings; every other one is the outlet's and is kept
OWNED = frozenset({"cursor", "hq_epoch", "master_version", "chain", "snapshot_cursor",
                   "snapshot_built_at"})


@dataclass
class Local:
    """What the outlet's current database holds that matters here."""

    meta: dict[str, str] = field(default_factory=dict)
    facts: int = 0

    @property
    def cursor(self) -> int:
        return int(self.meta.get("cursor") or 0)


def known_migrations() -> set[str]:
    return {m.name for m in migrations._migrations}  # sqlite_utils has no accessor for it


def read_local(db: Path) -> Local | None:
    """The outlet database at `db` (None if there is none); ConfigError if the file is
    not an outlet database."""
    if not db.exists():
        return None
    # read-write, reading only: a read-only connection to a WAL database leaves its -wal
    # and -shm behind, which would then look like another process using it
    conn = sqlite3.connect(db, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        return _local_in(conn, db)
    finally:
        conn.close()


def _local_in(conn: sqlite3.Connection, db: Path) -> Local:
    try:
        found = conn.execute("SELECT 1 FROM _sqlite_migrations WHERE migration_set = ?",
                             (migrations.name,)).fetchone()
        if found is None:
            raise ConfigError(f"{db} is not an outlet database")
        meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
        facts = outbox.last_seq(conn)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{db} is not an outlet database ({exc})") from exc
    return Local(meta, facts)


def check(local: Local | None, header: SnapshotHeader, outlet_id: str | None,
          epoch: str | None, db: Path) -> None:
    """Refuses (changing nothing) a snapshot this outlet must not take: `epoch` is the
    HQ epoch the outlet follows (None: it has met no HQ yet, any epoch will do)."""
    if local is not None and local.facts:
        raise OutletNotEmpty(
            f"{db} holds {local.facts} fact(s) of this outlet: a snapshot would lose them. "
            "A snapshot starts only a new or wiped outlet; this one catches up with "
            "`loyalty sync`", facts=local.facts)
    if epoch is not None and epoch != header.epoch:
        raise SnapshotEpochMismatch(
            f"the snapshot is of HQ epoch {header.epoch}, this outlet follows epoch {epoch} "
            "(HQ was restored from a backup in between): take a snapshot of the current HQ",
            snapshot_epoch=header.epoch, epoch=epoch)
    newer = [name for name in header.migrations if name not in known_migrations()]
    if newer:
        raise SnapshotIncompatible(
            f"the snapshot has outlet tables of a newer version ({', '.join(newer)}): "
            "upgrade this outlet first, or let it pull from HQ page by page")
    known = local.meta.get("outlet_id") if local is not None else None
    if known is None and not outlet_id:
        raise ConfigError(f"{db} is a new database: say which outlet it is (--outlet)")
    if known is not None and outlet_id and outlet_id != known:
        raise ConfigError(f"{db} is outlet {known}'s database, not {outlet_id}'s",
                          outlet=outlet_id)


def apply(db: str | Path, snapshot: str | Path, outlet_id: str | None = None,
          progress: Callable[[int, int], None] | None = None,
          epoch: str | None = None) -> SnapshotHeader:
    """Makes the snapshot file `snapshot` the outlet database at `db` (see the module
    docstring); `epoch`: HQ's current epoch when it is known (from a hello), else the
    one the outlet last followed must match."""
    db = Path(db)
    header = snapshotfile.read_header(snapshot)
    local = read_local(db)
    follows = epoch if epoch is not None else (local.meta.get("hq_epoch") if local else None)
    check(local, header, outlet_id, follows, db)
    new = Path(f"{db}{NEW}")
    _remove(new)
    try:
        snapshotfile.unpack(snapshot, new, progress)
        _check_content(new, header, snapshot)
        stall("unpacked")
        local = _close_old(db)
        follows = epoch if epoch is not None else (local.meta.get("hq_epoch") if local else None)
        check(local, header, outlet_id, follows, db)
        _stamp(new, local, outlet_id, header)
        stall("stamped")
        _not_open_elsewhere(db)  # the old WAL must never sit beside the new file
        os.replace(new, db)
        _fsync_dir(db.parent)
        stall("swapped")
    finally:
        _remove(new)
    log.info("outlet database %s replaced by the snapshot at cursor %d (%d customers)",
             db, header.cursor, header.customers)
    return header


def _remove(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _check_content(new: Path, header: SnapshotHeader, source: str | Path) -> None:
    """The unpacked file is a database saying what its header says."""
    try:
        conn = sqlite3.connect(f"file:{new}?mode=ro", uri=True)
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise SnapshotCorrupt(f"{source} does not hold an outlet database ({exc})") from exc
    if meta.get("hq_epoch") != header.epoch or meta.get("cursor") != str(header.cursor):
        raise SnapshotCorrupt(f"{source}: its database and its header disagree on the "
                              "epoch or cursor: get the file again")


def _close_old(db: Path) -> Local | None:
    """Folds the old database's WAL into its file and closes it; what it holds, read
    after the fold. Refused when another process has the database open."""
    if not db.exists():
        return None
    conn = sqlite3.connect(db, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        local = _local_in(conn, db)
    finally:
        conn.close()  # the last connection: SQLite removes the (empty) -wal and the -shm
    if busy:
        _in_use(db)
    _not_open_elsewhere(db)
    return local


def _not_open_elsewhere(db: Path) -> None:
    if any(Path(f"{db}{s}").exists() for s in ("-wal", "-shm")):
        _in_use(db)


def _in_use(db: Path) -> None:
    raise ConfigError(f"{db} is in use by another process (an agent serving it?): stop it, "
                      "then bootstrap again")


def _stamp(new: Path, local: Local | None, outlet_id: str | None,
           header: SnapshotHeader) -> None:
    """The outlet's own meta entries into the new file, then the file onto the disk."""
    rows = {k: v for k, v in (local.meta if local else {}).items() if k not in OWNED}
    if outlet_id and "outlet_id" not in rows:
        rows["outlet_id"] = outlet_id
    rows["snapshot_sha256"] = header.sha256
    rows["snapshot_applied_at"] = utc_now()
    conn = sqlite3.connect(new, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA synchronous=FULL")
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                             "DO UPDATE SET value = excluded.value", list(rows.items()))
    finally:
        conn.close()
    with open(new, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def clean(db: Path) -> None:
    """Removes what an interrupted bootstrap left beside the database (not the part
    file of a download that may still resume)."""
    _remove(Path(f"{db}{NEW}"))


@dataclass(frozen=True)
class Bootstrapped:
    header: SnapshotHeader
    resumed: bool  # the download continued a part file an earlier attempt left


def from_hq(db: str | Path, url: str | None = None, token: str | None = None,
            outlet_id: str | None = None) -> Bootstrapped | None:
    """A new or wiped outlet linked to HQ by router (`loyalty sync`, `loyalty agent
    serve`): if HQ offers a snapshot (of its current epoch) and the outlet's cursor is 0
    with no facts, download it (resuming a part file), check and apply it. HQ's url and
    token come from the database or, for one not created yet, from the arguments (with
    the outlet's id). None when no snapshot was taken (the pass then pulls page by page).
    Called with the outlet database closed."""
    from sync.router import RouterTransport

    db = Path(db)
    clean(db)
    local = read_local(db)
    part = Path(f"{db}{PART}")
    if local is None:
        if not outlet_id:
            return None
    elif local.facts or local.cursor != 0 or local.meta.get("link") == "modem":
        part.unlink(missing_ok=True)
        return None
    else:
        url, token = local.meta.get("hq_url") or url, local.meta.get("hq_token") or token
    if not url or not token:
        return None
    link = RouterTransport(url, token)
    try:
        offer = link.snapshot_offer()
        if offer is None:
            part.unlink(missing_ok=True)
            return None
        hello = link.hello()
        if offer.epoch != hello.epoch:
            return None  # HQ's epoch changed since it built this one: pages, this time
        try:
            check(local, offer, outlet_id, hello.epoch, db)
        except SnapshotIncompatible as exc:
            log.warning("%s: pulling page by page instead", exc.message)
            return None
        with Progress("snapshot", unit="B") as bar:
            resumed = link.fetch_snapshot(offer, part, bar.update)
    finally:
        link.close()
    try:
        with Progress("unpack", unit="B") as bar:
            header = apply(db, part, outlet_id, progress=bar.update, epoch=hello.epoch)
    except SnapshotCorrupt:
        part.unlink(missing_ok=True)  # the next attempt downloads it again, whole
        raise
    part.unlink(missing_ok=True)
    return Bootstrapped(header, resumed)
