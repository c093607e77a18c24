"""The one admin client of HQ in the tests: what a test does with an HQ, whichever tier.

`HQAdmin` is mixed into a real `loyalty hq serve` process (chainkit.HQProcess) and into an HQ
in this process (testkit.inprocess.InProcessHQ). It adds outlets and an admin token through
`loyalty hq ...` (each token is the last line of the command's output; `run_cli` runs it as
a process, or in process), calls the admin API with that token (`admin`, `customer`) and
opens HQ's file (`db_conn`), or reads HQ's database on either store (`rows`: `db` is a
file path or a postgresql:// URL). The class using it gives `db`, `url` and `session()`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from testkit.processes import cli_last_line

__all__ = ["HQAdmin"]


class HQAdmin:
    """Outlets, tokens, the admin API and the file of one HQ (see the module docstring)."""

    db: Path | str  # HQ's SQLite file, or a postgresql:// URL
    url: str
    tokens: dict[str, str]  # outlet id -> token, of the outlets added here
    _admin: str | None = None
    _http: Any = None

    def session(self) -> Any:
        """A new requests-like session to this HQ (its own headers)."""
        return requests.Session()

    @property
    def http(self) -> Any:
        if self._http is None:
            self._http = self.session()
        return self._http

    def run_cli(self, *args: str) -> str:
        return cli_last_line(*args)

    def outlet_add(self, outlet_id: str) -> str:
        token = self.run_cli("hq", "outlet-add", "--db", str(self.db), outlet_id)
        self.tokens[outlet_id] = token
        return token

    @property
    def admin_token(self) -> str:
        if self._admin is None:
            self._admin = self.run_cli("hq", "admin-token", "--db", str(self.db))
        return self._admin

    def admin(self, method: str, path: str, status: int | None = 200, **kw: Any) -> Any:
        kw.setdefault("timeout", 15)
        headers = {"Authorization": f"Bearer {self.admin_token}", **kw.pop("headers", {})}
        answer = self.http.request(method, self.url + path, headers=headers, **kw)
        if status is None:
            return answer
        assert answer.status_code == status, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    def customer(self, customer_id: str) -> dict[str, Any]:
        return self.admin("GET", f"/v1/admin/customers/{customer_id}")

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query (`?` placeholders) on HQ's database, whichever the store,
        as plain tuples (a whole number is an int on both)."""
        if isinstance(self.db, str) and "://" in self.db:
            from hq.store.postgres import PgStore

            store = PgStore(self.db, pool_size=1)
            try:
                return [tuple(r) for r in store.all(sql, params)]
            finally:
                store.close()
        conn = sqlite3.connect(self.db, timeout=10)
        try:
            return [tuple(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    def db_conn(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db, timeout=10, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn
