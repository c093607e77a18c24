"""Many rows in one statement, on whichever store holds them (issue 15).

`insert_rows(conn, table, columns, rows, conflict="")` writes `INSERT INTO table (columns)
VALUES (...) conflict` for every row: on SQLite with `executemany` (row by row is what
SQLite does best: no round trips); on PostgreSQL as ONE statement, `INSERT ... SELECT *
FROM unnest(arrays)`, one array per column sent in binary (`conn.execute_binary`): row by
row, each statement is a round trip and PostgreSQL ran at 0.3-0.7x SQLite, and text-format
arrays of long strings (an event's JSON) were ~30x slower than binary in psycopg 3.

`columns` are (name, type) pairs, the type being the PostgreSQL type of the column's
values (`TEXT`, `BIGINT`): the array is cast to it. The `conflict` clause (`ON CONFLICT
... DO UPDATE SET ...`, naming the stored row's columns with their table) reads the same
on both. Promises: the same rows as the `executemany`; at most one row per conflict key
in `rows` (PostgreSQL refuses to update a row twice in one statement: combine first).
Never commits. Nothing else of the project is imported but schema.dialect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schema.dialect import dialect_of

TEXT = "TEXT"
BIGINT = "BIGINT"


def insert_rows(conn: Any, table: str, columns: Sequence[tuple[str, str]],
                rows: Sequence[Sequence[Any]], conflict: str = "") -> None:
    """Inserts `rows` (each in `columns` order) into `table` (see the module)."""
    if not rows:
        return
    names = ", ".join(name for name, _ in columns)
    if dialect_of(conn).postgres:
        arrays = ", ".join(f"CAST(? AS {kind}[])" for _, kind in columns)
        conn.execute_binary(f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) "
                            f"{conflict}", [list(values) for values in zip(*rows, strict=True)])
        return
    marks = ", ".join("?" for _ in columns)
    conn.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks}) {conflict}", rows)
