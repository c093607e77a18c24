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


@pytest.mark.parametrize(("day", "months", "added", "month_end"), [
    ("2024-01-31", 1, "2024-02-29", "2024-02-29"),  # a day February lacks: its last day
    ("2023-12-31", 2, "2024-02-29", "2024-02-29"),
    ("2023-01-31", 1, "2023-02-28", "2023-02-28"),
    ("2024-03-31", 1, "2024-04-30", "2024-04-30"),
    ("2024-01-15", 1, "2024-02-15", "2024-02-29"),
    ("2024-11-30", 3, "2025-02-28", "2025-02-28"),
    ("2024-02-29", 12, "2025-02-28", "2025-02-28"),
])
def test_months_are_added_to_a_day_as_schema_lots_adds_them(
        day: str, months: int, added: str, month_end: str) -> None:
    from datetime import date

    from schema.lots import add_months, end_of_month_after

    assert add_months(date.fromisoformat(day), months).isoformat() == added
    assert end_of_month_after(date.fromisoformat(day), months).isoformat() == month_end
    conn = sqlite3.connect(":memory:")
    got = conn.execute(f"SELECT {SQLITE.add_months('x.d', months)}, "
                       f"{SQLITE.end_of_month_after('x.d', months)} FROM (SELECT ? AS d) x",
                       (day,)).fetchone()
    assert got == (added, month_end)
