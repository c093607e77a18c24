"""HQ's snapshots: the chain as a ready outlet replica, as of one change-log cursor.

A snapshot holds exactly what a pull from cursor 0 up to its cursor gives a new outlet
(customers with identifiers, status, PIN hash, tally and point lots; master data;
invoices), in the
outlet's own tables (schema/agent_tables.py), so an outlet opens it as its database
(docs/sync.md, "Snapshot bootstrap"). How it is built, with SQLite's own machinery:
- an empty outlet database gets the outlet's migrations; the secondary indexes of the
  tables about to be filled are dropped and made again at the end (a sorted build);
- HQ's file is ATTACHed on the build's own connection (never HQ's writer), and every
  table is filled by INSERT ... SELECT inside ONE transaction: in WAL mode that is one
  read snapshot of HQ, so the cursor and every row agree, and HQ's writers go on
  meanwhile (its WAL grows until the read ends);
- rows come in primary-key order, so the file is laid out compactly; then it is packed
  with schema/snapshotfile.py (compressed, SHA-256).
HQ on PostgreSQL (issue 15): the rows those statements read (the tables and columns
`STAGED` names) are first copied, all in ONE REPEATABLE READ snapshot of PostgreSQL
(`store.snapshot()`: the cursor and every row agree, HQ's writers go on), into a SQLite
work file shaped like HQ's, which is then ATTACHed as above: the snapshot is built by the
same statements from either store, and the output is still the outlet's SQLite file. The
rows stream through a server-side cursor in chunks (memory does not grow with the chain).
`confirmed_through` is 0 in a snapshot: it is applied only to an outlet with no facts of
its own, so no pending fact of it sits on top of HQ's tallies, and every fact it makes
later is numbered after what HQ holds (agent/snapshot.py).

`Snapshots` keeps the recent ones in a directory beside HQ's file (`hq.db.snapshots`; for
HQ on PostgreSQL, under the user's cache folder, one per database: `directory`):
the current one and the one before (a download that began before a rebuild can still
finish or resume), of HQ's current epoch only. `refresh` (APScheduler, every minute,
hq/schedule.py) builds a new one when the change log holds `every` changes past the
last one (or `every` in all and there is none yet); serving one never builds one.
Promises: memory does not grow with the chain (the rows go from SQLite to SQLite; the
file is packed in chunks); one build at a time. Must never: write HQ's database.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from hq import staff, store
from hq.chain import Chain
from hq.feed import tally_sql
from schema import snapshotfile
from schema.agent_tables import migrations as outlet_migrations
from schema.database import BUSY_TIMEOUT_MS
from schema.events import utc_now
from schema.masterdata import DOCS
from schema.snapshotfile import Compression, SnapshotHeader

log = logging.getLogger(__name__)

DEFAULT_EVERY = 50_000  # changes: the most an outlet pulls on top of a snapshot (~4 s)
CHECK_EVERY_S = 60
KEEP = 2
BUILD_CACHE_KIB = 32_768  # the build's page cache (and so its sorter): what memory it takes
INDEX_CACHE_KIB = 8_192  # while the indexes are made: bounds the sorter's memory too
FILLED = ("customers", "identifiers", "invoices")  # their secondary indexes: made after

_CUSTOMER_COLUMNS = ("customer_id", "kind", "given_name", "surname", "name", "business_domain",
                     "contact_person", "date_of_birth", "address", "phone", "fax", "email",
                     "email_consent", "preferences", "room", "code", "status", "category",
                     "promo_category", "approved_actions", "note", "pin_hash",
                     "origin_outlet", "created_at", "search_name", "credit_blocked",
                     "language", "first_visit_at", "merged_into")
_INVOICE_COLUMNS = ("invoice_id", "number", "customer_id", "period_from", "period_to",
                    "issued_on", "due_on", "amount", "paid_amount")
_TALLY_COLUMNS = ("purchases_total", "purchases_count", "items_count", "points_earned",
                  "points_used", "discount_total", "paid_cash", "paid_card", "paid_credit",
                  "credit_repaid", "gifts_count", "last_purchase_at", "best_purchase_total",
                  "best_purchase_id", "points_expired")
_MASTER = ", ".join(f"'{kind}'" for kind in DOCS)


# What a snapshot reads of HQ (table: its columns, the keys the build's joins look up by):
# for HQ on PostgreSQL these are copied into the SQLite work file the build ATTACHes.
STAGED: dict[str, tuple[str, tuple[str, ...]]] = {
    "meta": ("key, value", ("key",)),
    "changes": ("seq, kind, key", ("kind, key", "seq")),
    "customers": ("*", ("customer_id",)),
    "identifiers": ("kind, value, customer_id, status", ("customer_id",)),
    "customer_tally": ("*", ("customer_id",)),
    "customer_items": ("customer_id, sku, name, qty, max_unit_price", ("customer_id, sku",)),
    "customer_gifts": ("customer_id, sku, qty", ("customer_id, sku",)),
    "customer_lots": ("customer_id, lot_id, earned_on, points, expires_on, spendable_on",
                      ("customer_id, lot_id",)),
    "master": ("kind, key, data", ("kind, key",)),
    "invoices": ("*", ("invoice_id",)),
    "staff": ("*", ("username",)),
}
STAGE_CHUNK = 5_000  # rows per fetch from PostgreSQL


def directory(db: str | Path) -> Path:
    """Where HQ keeps the snapshots of the database at `db`: beside HQ's file, or for a
    PostgreSQL URL a folder of the user's cache ($XDG_CACHE_HOME or ~/.cache) named by
    the database (every HQ process on this machine for that database shares it)."""
    if store.is_url(db):
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        name = hashlib.sha256(store.shown(str(db)).encode()).hexdigest()[:16]
        return cache / "loyalty" / f"hq-{name}.snapshots"
    return Path(f"{db}.snapshots")


def _remove(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def build(db: str | Path | Any, out: str | Path, compression: Compression = "zstd"
          ) -> SnapshotHeader:
    """Builds a snapshot of the HQ database at `db` (HQ's file, or HQ's open PostgreSQL
    store) into the file `out` (replaced atomically); the replica is assembled in a work
    file beside `out`, then removed."""
    out = Path(out)
    work = out.with_name(out.name + ".building.db")
    staged = out.with_name(out.name + ".hq.db")
    _remove(work)
    _remove(staged)
    try:
        if isinstance(db, (str, Path)):
            source = Path(db)
        else:
            _stage(db, staged)
            source = staged
        epoch, cursor, customers = _fill(source, work)
        names = _migration_names(work)
        return snapshotfile.write(out, work, epoch=epoch, cursor=cursor, built_at=utc_now(),
                                  customers=customers, migrations=names,
                                  compression=compression)
    finally:
        _remove(work)
        _remove(staged)


def _stage(hq: Any, path: Path) -> None:
    """Copies what a snapshot reads of HQ (`STAGED`) from HQ's PostgreSQL store `hq` into
    a new SQLite file at `path`, all in one REPEATABLE READ snapshot, in chunks."""
    out = sqlite3.connect(path, isolation_level=None)
    try:
        out.execute("PRAGMA journal_mode=OFF")  # a work file: thrown away whole on a crash
        out.execute("PRAGMA synchronous=OFF")
        out.execute("BEGIN")
        with hq.snapshot() as conn:
            for table, (columns, keys) in STAGED.items():
                with conn.raw.cursor(name=f"snapshot_{table}") as rows:
                    rows.itersize = STAGE_CHUNK
                    rows.execute(f"SELECT {columns} FROM {table}")
                    names = [c.name for c in rows.description or ()]
                    out.execute(f"CREATE TABLE {table} ({', '.join(names)})")
                    insert = (f"INSERT INTO {table} VALUES "
                              f"({', '.join('?' for _ in names)})")
                    while chunk := rows.fetchmany(STAGE_CHUNK):
                        out.executemany(insert, chunk)
                for n, key in enumerate(keys):
                    out.execute(f"CREATE INDEX {table}_{n} ON {table} ({key})")
        out.execute("COMMIT")
    finally:
        out.close()


def _fill(hq_db: Path, work: Path) -> tuple[str, int, int]:
    if not hq_db.exists():
        raise FileNotFoundError(hq_db)
    conn = sqlite3.connect(work, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")  # a crashed build is thrown away whole
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(f"PRAGMA cache_size=-{BUILD_CACHE_KIB}")
        outlet_migrations.apply(sqlite_utils.Database(conn, execute_plugins=False))
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({', '.join('?' for _ in FILLED)}) ORDER BY name",
            FILLED).fetchall()
        for name, _sql in indexes:
            conn.execute(f"DROP INDEX {name}")
        conn.execute("ATTACH DATABASE ? AS hq", (str(hq_db),))
        conn.execute(f"PRAGMA hq.busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("BEGIN")
        # the first read of hq starts its read snapshot: everything below sees that state
        epoch = str(conn.execute("SELECT value FROM hq.meta WHERE key = 'epoch'").fetchone()[0])
        cursor = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM hq.changes").fetchone()[0])
        _copy(conn)
        conn.execute(staff.desk_accounts_copy())  # the desk's accounts, as a pull gives
        customers = int(conn.execute("SELECT COUNT(*) FROM main.customers").fetchone()[0])
        master_version = conn.execute(
            f"SELECT MAX(seq) FROM hq.changes WHERE kind IN ({_MASTER})").fetchone()[0]
        meta = {"cursor": cursor, "hq_epoch": epoch, "chain": 1, "snapshot_cursor": cursor,
                "snapshot_built_at": utc_now()}
        if master_version is not None:
            meta["master_version"] = master_version
        conn.executemany("INSERT INTO main.meta (key, value) VALUES (?, ?)",
                         [(k, str(v)) for k, v in meta.items()])
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE hq")
        conn.execute(f"PRAGMA cache_size=-{INDEX_CACHE_KIB}")  # sorts spill to temp files
        for _name, sql in indexes:
            conn.execute(sql)
        return epoch, cursor, customers
    finally:
        conn.close()


def _copy(conn: sqlite3.Connection) -> None:
    """Every table a pull from cursor 0 fills, from `hq.` into `main.`, as the pull would
    write it (agent/replication.py): only entities in the change log, a picture of no
    bytes as none, a tally row for every customer, an invoice paid in full as paid."""
    columns = ", ".join(_CUSTOMER_COLUMNS)
    selected = ", ".join(f"c.{c}" for c in _CUSTOMER_COLUMNS)
    conn.execute(f"""
        INSERT INTO main.customers ({columns}, picture, confirmed_through, confirmed_tally)
        SELECT {selected}, CASE WHEN length(c.picture) > 0 THEN c.picture END, 0,
               {tally_sql("hq.")}
        FROM hq.customers c
        JOIN hq.changes ch ON ch.kind = 'customer' AND ch.key = c.customer_id
        LEFT JOIN hq.customer_tally t ON t.customer_id = c.customer_id
        ORDER BY c.customer_id""")
    conn.execute("""
        INSERT INTO main.identifiers (kind, value, customer_id, status)
        SELECT i.kind, i.value, i.customer_id, i.status FROM hq.identifiers i
        WHERE i.customer_id IN (SELECT customer_id FROM main.customers)
        ORDER BY i.kind, i.value""")
    tally = ", ".join(_TALLY_COLUMNS)
    defaults = ", ".join(f"coalesce(t.{c}, {'0' if c not in ('last_purchase_at', 'best_purchase_id') else repr('')})"
                         for c in _TALLY_COLUMNS)
    conn.execute(f"""
        INSERT INTO main.customer_tally (customer_id, {tally})
        SELECT c.customer_id, {defaults} FROM main.customers c
        LEFT JOIN hq.customer_tally t ON t.customer_id = c.customer_id
        ORDER BY c.customer_id""")
    for table, cols in (("customer_items", "customer_id, sku, name, qty, max_unit_price"),
                        ("customer_gifts", "customer_id, sku, qty")):
        conn.execute(f"""
            INSERT INTO main.{table} ({cols}) SELECT {cols} FROM hq.{table}
            WHERE customer_id IN (SELECT customer_id FROM main.customers)
            ORDER BY customer_id, sku""")
    conn.execute("""
        INSERT INTO main.customer_lots (customer_id, lot_id, earned_on, points, expires_on,
                                        spendable_on)
        SELECT customer_id, lot_id, earned_on, points, expires_on, spendable_on
        FROM hq.customer_lots WHERE customer_id IN (SELECT customer_id FROM main.customers)
        ORDER BY customer_id, lot_id""")
    conn.execute(f"""
        INSERT INTO main.master (kind, key, data)
        SELECT m.kind, m.key, m.data FROM hq.master m
        JOIN hq.changes ch ON ch.kind = m.kind AND ch.key = m.key
        WHERE m.kind IN ({_MASTER}) ORDER BY m.kind, m.key""")
    invoice = ", ".join(_INVOICE_COLUMNS)
    conn.execute(f"""
        INSERT INTO main.invoices ({invoice}, status)
        SELECT {", ".join(f"i.{c}" for c in _INVOICE_COLUMNS)},
               CASE WHEN i.paid_amount >= i.amount THEN 'paid' ELSE i.status END
        FROM hq.invoices i JOIN hq.changes ch ON ch.kind = 'invoice' AND ch.key = i.invoice_id
        ORDER BY i.invoice_id""")


def _migration_names(work: Path) -> list[str]:
    conn = sqlite3.connect(work)
    try:
        return [r[0] for r in conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = ? ORDER BY id",
            (outlet_migrations.name,))]
    finally:
        conn.close()


@dataclass(frozen=True)
class Offer:
    """A snapshot HQ serves: its header and its file."""

    header: SnapshotHeader
    path: Path


class Snapshots:
    """The recent snapshots of one chain, in `directory(chain's file)`.

    `every`: build a new one when the change log has moved this many changes past the
    newest (0: never build; files put there by `loyalty hq snapshot` are still served)."""

    def __init__(self, chain: Chain, every: int = DEFAULT_EVERY,
                 where: str | Path | None = None, compression: Compression = "zstd") -> None:
        self.chain = chain
        self.every = every
        self.dir = Path(where) if where is not None else directory(chain.db.where)
        self.compression = compression
        self._build_lock = threading.Lock()
        self._scan_lock = threading.Lock()
        self._seen: tuple[int, int, str] | None = None
        self._offers: list[Offer] = []

    # --- what is on offer -------------------------------------------------------------
    def _scan(self) -> list[Offer]:
        """The snapshots of the current epoch, newest first; read again only when the
        directory changed (a build here, or `loyalty hq snapshot` from another process)
        or the epoch did."""
        with self._scan_lock:
            try:
                stat = self.dir.stat()
            except FileNotFoundError:
                self._offers, self._seen = [], None
                return []
            seen = (stat.st_mtime_ns, stat.st_ino, self.chain.epoch)
            if seen != self._seen:
                offers = []
                for path in self.dir.glob("*.snapshot"):
                    try:
                        header = snapshotfile.read_header(path)
                    except Exception:  # noqa: BLE001 - a damaged file is skipped, never served
                        log.warning("snapshot %s is damaged: not served", path.name)
                        continue
                    if header.epoch == self.chain.epoch and \
                            path.stat().st_size == header.file_bytes:
                        offers.append(Offer(header, path))
                offers.sort(key=lambda o: (o.header.cursor, o.header.built_at), reverse=True)
                self._offers, self._seen = offers, seen
            return list(self._offers)

    def current(self) -> Offer | None:
        offers = self._scan()
        return offers[0] if offers else None

    def find(self, sha256: str) -> Offer | None:
        """The snapshot with this checksum, if HQ still keeps it (the current one or the
        one before)."""
        for offer in self._scan()[:KEEP]:
            if offer.header.sha256 == sha256:
                return offer
        return None

    # --- building ---------------------------------------------------------------------
    def due(self) -> bool:
        if self.every <= 0:
            return False
        with self.chain.db.read() as conn:
            head = self.chain.head(conn)
        newest = self.current()
        since = head - (newest.header.cursor if newest is not None else 0)
        return since >= self.every and (newest is None or head > newest.header.cursor)

    def refresh(self) -> Offer | None:
        """The scheduled check: builds a new snapshot when one is due."""
        try:
            if self.due():
                return self.build_now()
        except Exception:  # a failed build must not stop HQ: the next check tries again
            log.exception("building a snapshot failed")
        return None

    def build_now(self) -> Offer:
        """Builds a snapshot of the chain now (one build at a time) and keeps the newest."""
        with self._build_lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.dir, 0o700)
            tmp = self.dir / f"building-{os.getpid()}.snapshot.tmp-out"  # a process's own
            source = self.chain.db if self.chain.db.dialect.postgres else self.chain.db.path
            header = build(source, tmp, self.compression)
            final = self.dir / f"{header.cursor:012d}-{header.sha256}.snapshot"
            os.replace(tmp, final)
            with contextlib.suppress(OSError):
                fd = os.open(self.dir, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            log.info("snapshot at cursor %d: %d customers, %d bytes", header.cursor,
                     header.customers, header.file_bytes)
            self._prune(final)
            return Offer(header, final)

    def _prune(self, newest: Path) -> None:
        keep = {newest}
        for offer in self._scan():
            if len(keep) >= KEEP:
                break
            keep.add(offer.path)
        for path in self.dir.glob("*.snapshot"):
            if path not in keep:
                path.unlink(missing_ok=True)
