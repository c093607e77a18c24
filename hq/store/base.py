"""What HQ needs of its store, whichever database holds it: the `Store` interface.

Both stores (hq/store/sqlite.py, hq/store/postgres.py) provide it:

- `write()`: one atomic, durable transaction; a nested `write()` (or `read()`, `one`, `all`,
  `scalar`) in the same thread joins it and sees its uncommitted rows.
- `read()` / `snapshot()`: a block of reads that all see one state of the database (SQLite:
  one read transaction on the store's connection; PostgreSQL: REPEATABLE READ READ ONLY,
  since READ COMMITTED takes a new snapshot per statement). `snapshot()` says the caller
  relies on it (a pull page); on SQLite a `read()` block only waits for this process's
  writers, so a page that must hold against another process takes `snapshot()`.
- `one` / `all` / `scalar`: one statement outside any block (joins an open one).
- `transact(fn)`: `fn(conn)` in a `write()`, run again (a few times, with a short random
  pause) when PostgreSQL aborts it to keep concurrent transactions serialisable (a
  serialization failure or a deadlock); SQLite's single writer never needs it. `fn` must
  therefore be safe to run again: everything it does is in the transaction it is handed.
- `exclusive(name)`: whether this process is the one to do `name` (a scheduled job for a
  period) now, chain-wide; False when another HQ process on the same database is doing it
  (PostgreSQL: an advisory lock; SQLite: always True, one HQ process per file). Never waits.
- numbering (`take`) and wake-ups (`announce`, `listen`): see hq/store/__init__.py.
- `dialect` (schema/dialect.py) and `where` (the path, or the URL with its password
  hidden: safe to log and show).

The statements themselves are SQLite's with `?` placeholders on both; schema/dialect.py
says what differs and how a statement asks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from schema.dialect import Dialect

T = TypeVar("T")

SCHEMES = ("postgresql://", "postgres://")
CHANGES = "loyalty_changes"  # the NOTIFY channel of the change log


def is_url(where: object) -> bool:
    """Whether HQ's `--db` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(where, str) and where.lower().startswith(SCHEMES)


def shown(url: str) -> str:
    """`url` with its password (in the address or as `password=`) replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the PostgreSQL URL given (not shown: it cannot be read)"
    netloc = parts.netloc
    if "@" in netloc:
        credentials, host = netloc.rsplit("@", 1)
        if ":" in credentials:
            credentials = credentials.split(":", 1)[0] + ":***"
        netloc = f"{credentials}@{host}"
    query = re.sub(r"(?i)(^|&)(password)=[^&]*", r"\1\2=***", parts.query)
    return parts._replace(netloc=netloc, query=query).geturl()


class Store(Protocol):
    """The surface HQ's code uses (see the module's docstring for each promise)."""

    kind: str  # "sqlite" | "postgresql"
    dialect: Dialect

    @property
    def where(self) -> str: ...

    def write(self) -> AbstractContextManager[Any]: ...

    def read(self) -> AbstractContextManager[Any]: ...

    def snapshot(self) -> AbstractContextManager[Any]: ...

    def read_now(self) -> AbstractContextManager[Any]: ...

    def one(self, sql: str, params: Any = ()) -> Any: ...

    def all(self, sql: str, params: Any = ()) -> list[Any]: ...

    def scalar(self, sql: str, params: Any = ()) -> Any: ...

    def transact(self, fn: Callable[[Any], T], attempts: int = 5) -> T: ...

    def exclusive(self, name: str) -> AbstractContextManager[bool]: ...

    def listen(self, callback: Callable[[], None]) -> None: ...

    def start_checkpointer(self, every_s: float = 0.25) -> None: ...

    def close(self) -> None: ...
