"""Who may sign in at this outlet's reception desk, and checking their logins offline
(docs/backoffice.md, "Roles"; docs/sync.md).

Staff accounts are HQ's master data: HQ's feed sends the accounts whose role may use the
desk (schema.roles.DESK_ROLES: `desk`) as `desk_account` changes - the username, role,
scrypt password hash and HQ's session generation, never a password - and withdraws one
(data None) when it is disabled or no longer may. `apply` keeps them in `desk_accounts`,
inside the pull's transaction (agent/replication.py). `DeskLogins.sign_in` checks a login
against them with no network: the same password check as HQ's (schema/passwords.py, the
same work for an unknown username) and the same lock-out, LOGIN_FAILURES wrong passwords
for one username within LOGIN_WINDOW_S lock it for the rest of the window.

An account disabled at HQ can sign in here until the outlet's next pull brings the
withdrawal (it rides at the head of the feed, like a ban). Must never: hold or log a
password; let a role that may not use the desk sign in, whatever a page of the feed says.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from pydantic import ValidationError

from schema import passwords
from schema.database import Database
from schema.errors import LoginFailed, LoginLocked
from schema.roles import DeskAccount, may_use_desk

log = logging.getLogger(__name__)


def apply(conn: sqlite3.Connection, username: str, data: dict[str, Any] | None) -> None:
    """One `desk_account` change of a pull page, in its transaction: stored, or (withdrawn,
    or a role that may not use the desk) removed."""
    try:
        account = None if data is None else DeskAccount.model_validate(data)
    except ValidationError:  # a newer HQ's form this agent cannot read: nobody signs in
        log.warning("desk account %s not understood: withdrawn here", username)
        account = None
    if account is None or not may_use_desk(account.role) or account.username != username:
        conn.execute("DELETE FROM desk_accounts WHERE username = ?", (username,))
        return
    conn.execute("INSERT INTO desk_accounts (username, role, password_hash, session_gen) "
                 "VALUES (?, ?, ?, ?) ON CONFLICT (username) DO UPDATE SET "
                 "role = excluded.role, password_hash = excluded.password_hash, "
                 "session_gen = excluded.session_gen",
                 (username, account.role, account.password_hash, account.session_gen))


def accounts(db: Database) -> list[dict[str, Any]]:
    """The accounts that may sign in here (username, role, session_gen; no hashes)."""
    return [dict(r) for r in db.all("SELECT username, role, session_gen FROM desk_accounts "
                                    "ORDER BY username")]


class DeskLogins:
    """Sign-ins at this outlet's desk, against the accounts replicated from HQ. Keep one
    per outlet process (its lock-out counts are in memory, like HQ's)."""

    def __init__(self, db: Database, throttle: passwords.Throttle | None = None) -> None:
        self.db = db
        self.throttle = throttle or passwords.Throttle()

    def sign_in(self, username: str, password: str) -> DeskAccount:
        """The account, when `password` is its password; `login_locked` (429) after too
        many failures, `login_failed` (401) otherwise (never saying which part was wrong)."""
        if self.throttle.throttled(username):
            raise LoginLocked("too many failed attempts for this username: wait a few "
                              "minutes, then try again")
        row = self.db.one("SELECT username, role, password_hash, session_gen FROM "
                          "desk_accounts WHERE username = ?", (username,))
        stored = None if row is None else str(row["password_hash"])
        if not passwords.check(password, stored) or row is None \
                or not may_use_desk(row["role"]):
            self.throttle.failed(username)
            raise LoginFailed("wrong username or password")
        self.throttle.succeeded(username)
        return DeskAccount.model_validate(dict(row))

    def session_gen(self, username: str) -> int | None:
        """The account's current session generation (None: it may not sign in here any
        more), for the desk's session cookies (web/office.py `Sessions`): HQ bumps it with a
        new password or a disabled account, so the desk's sessions end too."""
        row = self.db.one("SELECT session_gen FROM desk_accounts WHERE username = ?",
                          (username,))
        return None if row is None else int(row["session_gen"])
