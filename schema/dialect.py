"""SQL written once for SQLite and PostgreSQL: what differs between the two, in one place.

HQ's SQL is written in SQLite's dialect with `?` placeholders, as it always was. Most of it
is also valid PostgreSQL once the placeholders are PostgreSQL's: the PostgreSQL store
(hq/store/postgres.py) translates them itself (`format_placeholders`), so such a statement
stays one text for both stores. What cannot be translated mechanically is asked of the
`Dialect` of the connection at hand (`dialect_of(conn)`) by the code that writes the SQL:

- scalar `max(a, b)` / `min(a, b)`: `greatest` / `least` (PostgreSQL's max() is only an
  aggregate);
- `substr(x, -n)`: `last_chars` (on PostgreSQL a negative start silently returns the whole
  string);
- the JSON functions (`json_object`, `json_group_array`, `json_group_object`): `json_object`,
  `json_array_agg`, `json_object_agg`; `json_each(x)` and `x ->> 'key'` likewise in phase 2;
- `INSERT OR REPLACE` / `INSERT OR IGNORE`: not a hook but one text for both, built by
  `replace_into` / `insert_ignoring` (the `ON CONFLICT` forms both databases read);
- in an upsert's `DO UPDATE SET`, a column of the row already there is named with its
  table (`qty = customer_items.qty + excluded.qty`): PostgreSQL finds the bare name
  ambiguous, SQLite reads both;
- `SUM(flag)` over a 0/1 integer column works in both (HQ's flags are integers, not
  booleans, in both schemas); `SUM` of an integer is a number PostgreSQL hands out as a
  `Decimal`: the PostgreSQL store reads whole numbers back as `int`, so callers see what
  SQLite gives them;
- a `?` where nothing gives it a type (a function argument of any type, such as
  `json_build_object('k', ?)`, or `SELECT ?`) is refused by PostgreSQL ("could not
  determine data type of parameter"): write `CAST(? AS TEXT)` (or INTEGER), which SQLite
  reads too; a `?` compared with a column takes the column's type, but PostgreSQL never
  compares text with a number as SQLite does: bind the column's own type;
- claiming a row several workers may reach at once (the mail queue): `skip_locked`, a
  subquery's `FOR UPDATE SKIP LOCKED` on PostgreSQL (a row another transaction holds is
  passed over, never waited for nor taken twice); nothing on SQLite, whose one writer
  makes the claim alone;
- `SUM(condition)`: PostgreSQL has no sum of a boolean: `count_if(condition)` (a
  `CASE WHEN` both read);
- a day's bucket by week (`date(d, 'weekday 0', '-6 days')`, the Monday of `d`'s week):
  `monday_of(day_text)`, a YYYY-MM-DD text on both;
- date arithmetic on YYYY-MM-DD texts (a lot's last valid day in the reports):
  `add_months(day, n)` (a day the target month lacks is its last day, as
  `schema.lots.add_months`; SQLite's `date(d, '+n months')` would roll over into the next
  month, PostgreSQL's `date + interval` clamps) and `end_of_month_after(day, n)` (the last
  day of the n-th month after `day`'s), both YYYY-MM-DD texts, compared as text on both;
- a row read to be updated by the same transaction, which another transaction may be
  updating at the same time (an outlet's `last_seq`): `locked()` after the SELECT
  (`FOR UPDATE`: the second reader waits for the first to commit and then reads its
  row; SQLite has one writer, so nothing);
- text order: PostgreSQL's follows a collation; HQ's PostgreSQL tables declare every text
  column `COLLATE "C"` (byte order, which is SQLite's) so `ORDER BY` agrees between stores.

Promises: `format_placeholders` changes only `?` outside quotes and comments, and doubles
every `%` (psycopg reads `%` as its own); a statement with no `?` comes back with only its
`%` doubled. Pure functions over text: nothing here talks to a database.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dialect:
    """The SQL differences between SQLite and PostgreSQL that HQ's code asks about."""

    name: str  # "sqlite" | "postgresql"

    @property
    def postgres(self) -> bool:
        return self.name == "postgresql"

    def greatest(self, *exprs: str) -> str:
        """The largest of several values in a row (SQLite's scalar max)."""
        return f"{'GREATEST' if self.postgres else 'max'}({', '.join(exprs)})"

    def least(self, *exprs: str) -> str:
        """The smallest of several values in a row (SQLite's scalar min)."""
        return f"{'LEAST' if self.postgres else 'min'}({', '.join(exprs)})"

    def locked(self) -> str:
        """What ends a SELECT whose rows this transaction will update (see the module)."""
        return " FOR UPDATE" if self.postgres else ""

    def last_chars(self, expr: str, n: int) -> str:
        """The last `n` characters of a text (`substr(x, -n)` in SQLite)."""
        return f"right({expr}, {int(n)})" if self.postgres else f"substr({expr}, -{int(n)})"

    def json_object(self, *pairs: tuple[str, str]) -> str:
        """A JSON object built from (key literal, SQL expression) pairs."""
        args = ", ".join(f"'{key}', {expr}" for key, expr in pairs)
        return f"json_build_object({args})" if self.postgres else f"json_object({args})"

    def json_array_agg(self, expr: str) -> str:
        """An aggregate: the group's values as a JSON array ([] for no rows on SQLite;
        callers coalesce for PostgreSQL's NULL)."""
        return f"json_agg({expr})" if self.postgres else f"json_group_array({expr})"

    def json_object_agg(self, key: str, value: str) -> str:
        """An aggregate: the group's rows as one JSON object."""
        return (f"json_object_agg({key}, {value})" if self.postgres
                else f"json_group_object({key}, {value})")

    def add_months(self, day: str, months: int) -> str:
        """`day` (a YYYY-MM-DD text expression) plus `months` months, as YYYY-MM-DD; a day
        the target month lacks becomes its last day (31 Jan + 1 month: 28/29 Feb)."""
        n = int(months)
        if self.postgres:
            return (f"to_char(CAST({day} AS DATE) + make_interval(months => {n}), "
                    "'YYYY-MM-DD')")
        return (f"CASE WHEN strftime('%d', date({day}, '+{n} months')) = strftime('%d', {day})"
                f" THEN date({day}, '+{n} months') ELSE"
                f" date({day}, 'start of month', '+{n + 1} months', '-1 day') END")

    def end_of_month_after(self, day: str, months: int) -> str:
        """The last day of the month `months` after the month of `day` (YYYY-MM-DD texts)."""
        n = int(months)
        if self.postgres:
            return (f"to_char(date_trunc('month', CAST({day} AS DATE)) + "
                    f"make_interval(months => {n + 1}) - interval '1 day', 'YYYY-MM-DD')")
        return f"date({day}, 'start of month', '+{n + 1} months', '-1 day')"

    @property
    def skip_locked(self) -> str:
        """What ends a claiming subquery (`SELECT key ... WHERE key = ?{skip_locked}`): on
        PostgreSQL a row locked by another transaction is not selected (not waited for)."""
        return " FOR UPDATE SKIP LOCKED" if self.postgres else ""

    def monday_of(self, day: str) -> str:
        """The Monday of the week of `day` (a YYYY-MM-DD text expression), as YYYY-MM-DD."""
        if self.postgres:
            return (f"to_char(date_trunc('week', CAST({day} AS DATE)), 'YYYY-MM-DD')")
        return f"date({day}, 'weekday 0', '-6 days')"


def count_if(condition: str) -> str:
    """How many rows of the group meet `condition` (SQLite's `SUM(condition)`), for both."""
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


SQLITE = Dialect("sqlite")
POSTGRES = Dialect("postgresql")


def dialect_of(conn: Any) -> Dialect:
    """The dialect of a connection: a PostgreSQL store's connections say theirs
    (`.dialect`); anything else (a `sqlite3.Connection`) is SQLite."""
    found = getattr(conn, "dialect", None)
    return found if isinstance(found, Dialect) else SQLITE


def replace_into(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """`INSERT OR REPLACE` written once for both: the row with `key` gets every one of
    `columns` (give them all: a replaced row keeps no old value either way)."""
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    rest = [c for c in columns if c not in key]
    action = (f"DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in rest)}" if rest
              else "DO NOTHING")
    return (f"INSERT INTO {table} ({names}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(key)}) {action}")


def insert_ignoring(table: str, columns: Sequence[str]) -> str:
    """`INSERT OR IGNORE` written once for both: a row whose key is taken is skipped."""
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
            f"({', '.join('?' for _ in columns)}) ON CONFLICT DO NOTHING")


@functools.lru_cache(maxsize=4096)
def format_placeholders(sql: str) -> str:
    """`sql` with SQLite's `?` placeholders as psycopg's `%s` and every `%` doubled;
    `?` inside '...' strings, "..." names and comments is left alone."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # '' or "" inside: escaped
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i:end + 1].replace("%", "%%"))
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif ch == "?":
            out.append("%s")
            i += 1
        elif ch == "%":
            out.append("%%")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)
