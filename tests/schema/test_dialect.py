"""SQL written once for SQLite and PostgreSQL (schema/dialect.py): the placeholder
translation leaves quoted text alone, and the hooks say each database's words. What they
do on a real PostgreSQL is checked in tests/hq/test_store_seam.py."""

from __future__ import annotations

import sqlite3

import pytest

from schema.dialect import (
    POSTGRES,
    SQLITE,
    dialect_of,
    format_placeholders,
    insert_ignoring,
    replace_into,
)


@pytest.mark.parametrize(("sqlite", "psycopg"), [
    ("SELECT a FROM t WHERE b = ? AND c > ?", "SELECT a FROM t WHERE b = %s AND c > %s"),
    ("SELECT '?', \"we?ird\" FROM t WHERE x = ?", "SELECT '?', \"we?ird\" FROM t WHERE x = %s"),
    ("SELECT 'it''s ?' WHERE a LIKE '50%' AND b = ?", "SELECT 'it''s ?' WHERE a LIKE '50%%' AND b = %s"),
    ("SELECT 1 -- why?\nWHERE a = ?", "SELECT 1 -- why?\nWHERE a = %s"),
    ("SELECT /* a ? here */ ? % 2", "SELECT /* a ? here */ %s %% 2"),
    ("SELECT 1", "SELECT 1"),
])
def test_placeholders_become_psycopgs_outside_quotes_and_comments(sqlite: str, psycopg: str) -> None:
    assert format_placeholders(sqlite) == psycopg


def test_each_dialect_says_its_own_words() -> None:
    assert SQLITE.greatest("a", "b") == "max(a, b)"
    assert POSTGRES.greatest("a", "b") == "GREATEST(a, b)"
    assert POSTGRES.least("a", "b", "c") == "LEAST(a, b, c)"
    assert SQLITE.last_chars("value", 4) == "substr(value, -4)"
    assert POSTGRES.last_chars("value", 4) == "right(value, 4)"
    assert POSTGRES.json_object(("k", "t.k")) == "json_build_object('k', t.k)"
    assert SQLITE.json_object_agg("sku", "qty") == "json_group_object(sku, qty)"


def test_a_sqlite_connection_is_sqlite_and_a_connection_that_says_its_dialect_is_that() -> None:
    class Said:
        dialect = POSTGRES

    assert dialect_of(sqlite3.connect(":memory:")) is SQLITE
    assert dialect_of(Said()) is POSTGRES


def test_the_hooks_run_on_sqlite_as_sqlites_own_words_do() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, a INTEGER, b TEXT)")
    conn.execute(replace_into("t", ["k", "a", "b"], ["k"]), ("x", 1, "one"))
    conn.execute(replace_into("t", ["k", "a", "b"], ["k"]), ("x", 2, "two"))
    conn.execute(insert_ignoring("t", ["k", "a", "b"]), ("x", 3, "three"))
    row = conn.execute(f"SELECT a, b, {SQLITE.greatest('a', '5')}, {SQLITE.last_chars('b', 2)} "
                       "FROM t").fetchall()
    assert row == [(2, "two", 5, "wo")]
