"""HQ's schema on PostgreSQL (schema/hq_tables_pg.py) is schema/hq_tables.py's: the same
migrations by name, and both stores end with the same tables, columns, kinds of column and
NOT NULLs; every PostgreSQL text column orders like SQLite (C). Opening again applies
nothing, HQ processes starting together migrate once, and a database of another program is
refused with nothing written into it."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from testkit.postgres import Cluster

from hq.store import SqliteStore
from hq.store.postgres import PgStore
from schema import hq_tables_pg
from schema.errors import ConfigError
from schema.hq_tables import migrations

# SQLite's declared type -> the PostgreSQL type it is translated to
KINDS = {"INTEGER": "bigint", "TEXT": "text", "BLOB": "bytea", "REAL": "double precision"}


def sqlite_shape(path: Path) -> dict[str, list[tuple[str, str, bool]]]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name != '_sqlite_migrations'")]
        return {t: [(c[1], KINDS[c[2]], bool(c[3]) or bool(c[5])) for c in conn.execute(
            f"PRAGMA table_info('{t}')")] for t in sorted(tables)}
    finally:
        conn.close()


def pg_shape(url: str) -> tuple[dict[str, list[tuple[str, str, bool]]], set[Any]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable = 'NO', collation_name "
            "FROM information_schema.columns WHERE table_schema = current_schema() "
            "ORDER BY table_name, ordinal_position").fetchall()
    shape: dict[str, list[tuple[str, str, bool]]] = {}
    collations = set()
    for table, column, kind, not_null, collation in rows:
        if table in hq_tables_pg.PG_ONLY:
            continue
        shape.setdefault(table, []).append((column, kind, not_null))
        if kind == "text":
            collations.add(collation)
    return shape, collations


def test_the_postgresql_migrations_are_sqlites_by_name_and_order() -> None:
    assert [name for name, _ in hq_tables_pg.MIGRATIONS] == [m.name for m in migrations._migrations]


def test_both_stores_end_with_the_same_tables_and_columns(tmp_path: Path, pg_database: str
                                                          ) -> None:
    SqliteStore(tmp_path / "hq.db").close()
    PgStore(pg_database).close()
    expected = sqlite_shape(tmp_path / "hq.db")
    found, collations = pg_shape(pg_database)
    assert sorted(found) == sorted(expected)
    for table in expected:
        assert found[table] == expected[table], table
    assert collations == {"C"}


def test_opening_again_applies_nothing_and_processes_starting_together_migrate_once(
        pg_database: str) -> None:
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            PgStore(pg_database).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    PgStore(pg_database).close()
    with psycopg.connect(pg_database) as conn:
        recorded = conn.execute("SELECT migration_set, name FROM _migrations ORDER BY name"
                                ).fetchall()
        counters = conn.execute("SELECT name, value FROM counters").fetchall()
    assert recorded == [("loyalty-hq", name) for name, _ in hq_tables_pg.MIGRATIONS]
    assert counters == [("changes", 0)]


def test_another_programs_database_is_refused_and_nothing_is_written_into_it(
        pg_cluster: Cluster) -> None:
    url = pg_cluster.database()
    try:
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE invoices_of_someone_else (id INTEGER)")
        with pytest.raises(ConfigError, match="another program's tables"):
            PgStore(url)
        with psycopg.connect(url) as conn:
            tables = {r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public'")}
        assert tables == {"invoices_of_someone_else"}
    finally:
        pg_cluster.drop(url)


def test_a_database_not_encoded_utf8_is_refused_and_left_as_it_was(pg_cluster: Cluster) -> None:
    pg_cluster.admin("CREATE DATABASE latin TEMPLATE template0 ENCODING 'LATIN1' "
                     "LC_COLLATE 'C' LC_CTYPE 'C'")
    url = pg_cluster.url("latin")
    try:
        with pytest.raises(ConfigError, match="encoded LATIN1, not UTF8"):
            PgStore(url)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT COUNT(*) FROM information_schema.tables "
                                "WHERE table_schema = 'public'").fetchone() == (0,)
    finally:
        pg_cluster.drop(url)
