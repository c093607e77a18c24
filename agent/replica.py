"""The outlet's SQLite replica: opening it, its identity, and master data in it.

Promises: an outlet database belongs to exactly one outlet id (opening it as another is a
ConfigError); master data (categories, promotion categories, actions, gifts, greeting
settings, announcements, the programme's settings) is stored as HQ publishes it, one JSON
document per entity, and a new replica starts with the default programme so a fresh
install already earns points. Must never: change a fact or a balance (those come only from
events).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from schema.agent_tables import migrations
from schema.database import Database, opening_error
from schema.errors import ConfigError

# What an outlet keeps of HQ's master data (HQ's category rules are HQ's alone).
MASTER_KINDS = ("category", "promo_category", "action", "division_promo", "gift", "greetings",
                "announcement", "programme")


def open_replica(path: str | Path, outlet_id: str | None = None) -> Database:
    """Opens (creating if new) the replica at `path` for `outlet_id`; without an outlet id
    only an existing outlet database is opened (nothing is written into another file)."""
    if outlet_id is None:
        if path != ":memory:" and not Path(path).exists():
            raise ConfigError(f"{path} does not exist: a new outlet database needs --outlet "
                              "(this outlet's id, as registered at HQ)")
        _require_outlet_database(path)
    db = Database(path, migrations)  # refuses what is not SQLite, HQ's file, a read-only one
    known = get_meta(db, "outlet_id")
    if outlet_id and known and outlet_id != known:
        db.close()
        raise ConfigError(
            f"{path} is outlet {known}'s database, not {outlet_id}'s", outlet=outlet_id
        )
    if known is None:
        if not outlet_id:
            db.close()
            raise ConfigError(f"{path} is a new database: say which outlet it is (--outlet)")
        with db.write() as conn:
            set_meta(conn, "outlet_id", outlet_id)
    return db


def _require_outlet_database(path: str | Path) -> None:
    try:
        probe = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            found = probe.execute("SELECT 1 FROM _sqlite_migrations WHERE migration_set = ?",
                                  (migrations.name,)).fetchone()
        finally:
            probe.close()
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_ERROR):
            raise ConfigError(f"{path} is not an outlet database") from exc  # no such table
        raise opening_error(str(path), exc) from exc
    if found is None:
        raise ConfigError(f"{path} is not an outlet database")


def get_meta(db: Database, key: str, default: str | None = None) -> str | None:
    value = db.scalar("SELECT value FROM meta WHERE key = ?", (key,))
    return default if value is None else str(value)


def meta_in(conn: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return default if row is None else str(row[0])


def set_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, str(value)),
    )


def put_master(conn: sqlite3.Connection, kind: str, key: str, data: dict[str, Any]) -> None:
    if kind not in MASTER_KINDS:
        raise ValueError(f"unknown master data kind {kind}")
    conn.execute(
        "INSERT INTO master (kind, key, data) VALUES (?, ?, ?) "
        "ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data",
        (kind, key, json.dumps(data, sort_keys=True)),
    )


def delete_master(conn: sqlite3.Connection, kind: str, key: str) -> None:
    conn.execute("DELETE FROM master WHERE kind = ? AND key = ?", (kind, key))


def master(db: Database, kind: str) -> dict[str, dict[str, Any]]:
    return {
        r["key"]: json.loads(r["data"])
        for r in db.all("SELECT key, data FROM master WHERE kind = ? ORDER BY key", (kind,))
    }
