"""Head-office staff accounts and their roles (invariant 8: admin operations need an admin
credential; docs/backoffice.md, "Staff accounts" and "Roles").

An account has a username, a role (schema/roles.py) and a password kept only as a salted
scrypt hash (schema/passwords.py: the check spends the same work for an unknown username,
so the answer time does not tell which usernames exist). Accounts are made on HQ's machine
(`loyalty hq staff-add`, `add`) or by an administrator on the staff page (`create`,
`set_role`, `set_disabled`, `set_password`); every change is recorded in the audit trail
(hq/audit.py) in the same transaction, by whoever made it.

Desk accounts are master data for the outlets: an account whose role may use the reception
desk (schema.roles.DESK_ROLES) is sent to every outlet by HQ's feed as a `desk_account`
change (`desk_account`: the username, role, password hash and session generation, never a
password), and withdrawn from them when it is disabled or its role changes to one that may
not; such changes ride at the head of the feed (urgent), like a ban. Accounts of the back
office never leave HQ. Must never: store, log or echo a password; leave the back office
without an active administrator.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
from typing import Any

from hq.audit import COMMAND_LINE, Actor, record
from hq.chain import Chain
from schema import passwords
from schema.database import Database
from schema.errors import Conflict, InvalidRequest, NotFound
from schema.events import utc_now
from schema.roles import DESK_ACCOUNT_KIND, DESK_ROLES, ROLES, Role, may_use_desk

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def check_password(password: str) -> None:
    if len(password) < passwords.MIN_PASSWORD:
        raise InvalidRequest(f"a staff password has at least {passwords.MIN_PASSWORD} "
                             "characters")
    if len(password) > passwords.MAX_PASSWORD:
        raise InvalidRequest(f"a staff password has at most {passwords.MAX_PASSWORD} "
                             "characters")


def check_username(username: str) -> None:
    if not USERNAME.match(username):
        raise InvalidRequest("a username is 1-64 letters, digits, '.', '_', '@' or '-'")


def _row(conn: sqlite3.Connection, username: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT username, role, disabled, session_gen FROM staff WHERE username = ?",
        (username,)).fetchone()
    return row


def _state(row: sqlite3.Row | None) -> dict[str, Any] | None:
    """An account as the audit trail records it (never its password hash)."""
    return None if row is None else {"role": row["role"], "disabled": bool(row["disabled"])}


def _changed(conn: sqlite3.Connection, username: str, roles: tuple[str | None, ...]) -> None:
    """Tells the outlets when an account that may use the desk (before or after) changed."""
    if any(may_use_desk(r) for r in roles):
        Chain.bump(conn, DESK_ACCOUNT_KIND, username, urgent=True)


def _keep_an_administrator(conn: sqlite3.Connection, username: str) -> None:
    """After a change of `username` in this transaction: refuses it (Conflict) when no
    active administrator would be left to manage staff."""
    if conn.execute("SELECT 1 FROM staff WHERE role = ? AND disabled = 0",
                    (Role.administrator,)).fetchone() is None:
        raise Conflict(f"{username} is the last active administrator: make another account "
                       "administrator first")


def add(conn: sqlite3.Connection, username: str, password: str, replace: bool = False,
        role: Role | None = None, by: Actor = COMMAND_LINE, reason: str = "") -> None:
    """Creates a staff account holding `role` (administrator when not given: the command
    line makes the first administrator), or, with `replace`, sets a new password for an
    existing one (and `role` when given), enables it and ends its sessions."""
    check_username(username)
    check_password(password)
    digest = passwords.hash_password(password)
    old = _row(conn, username)
    if old and not replace:
        raise Conflict(f"staff account {username} exists already (use --replace to set a new "
                       "password)")
    if old:
        new_role = role or Role(old["role"])
        conn.execute("UPDATE staff SET password_hash = ?, session_gen = session_gen + 1, "
                     "disabled = 0, role = ? WHERE username = ?", (digest, new_role, username))
        _keep_an_administrator(conn, username)
        action, before = "staff.password", {**(_state(old) or {}), "password": "old"}
    else:
        new_role = role or Role.administrator
        conn.execute("INSERT INTO staff (username, password_hash, created_at, role) "
                     "VALUES (?, ?, ?, ?)", (username, digest, utc_now(), new_role))
        action, before = "staff.add", None
    record(conn, by, action, ("staff", username), before,
           {**(_state(_row(conn, username)) or {}), "password": "new" if old else "set"},
           reason)
    _changed(conn, username, (old["role"] if old else None, new_role))


def create(chain: Chain, by: Actor, username: str, role: Role, password: str,
           reason: str = "") -> None:
    """A new account made on the staff page (Conflict if the username is taken)."""
    with chain.db.write() as conn:
        add(conn, username, password, role=role, by=by, reason=reason)
    chain.waiters.notify()


def _account_row(conn: sqlite3.Connection, username: str) -> sqlite3.Row:
    row = _row(conn, username)
    if row is None:
        raise NotFound(f"no staff account {username}")
    return row


def set_role(chain: Chain, by: Actor, username: str, role: Role, reason: str = "") -> None:
    """Gives `username` another role; it takes effect on their next page."""
    with chain.db.write() as conn:
        old = _account_row(conn, username)
        if old["role"] == role:
            return
        conn.execute("UPDATE staff SET role = ? WHERE username = ?", (role, username))
        _keep_an_administrator(conn, username)
        record(conn, by, "staff.role", ("staff", username), _state(old),
               _state(_row(conn, username)), reason)
        _changed(conn, username, (old["role"], role))
    chain.waiters.notify()


def set_disabled(chain: Chain, by: Actor, username: str, disabled: bool,
                 reason: str = "") -> None:
    """Disables an account (ending its sessions, at HQ and at the desks) or enables it."""
    with chain.db.write() as conn:
        old = _account_row(conn, username)
        if bool(old["disabled"]) == disabled:
            return
        conn.execute("UPDATE staff SET disabled = ?, session_gen = session_gen + 1 "
                     "WHERE username = ?", (int(disabled), username))
        _keep_an_administrator(conn, username)
        record(conn, by, "staff.disable" if disabled else "staff.enable", ("staff", username),
               _state(old), _state(_row(conn, username)), reason)
        _changed(conn, username, (old["role"],))
    chain.waiters.notify()


def set_password(chain: Chain, by: Actor, username: str, password: str,
                 reason: str = "") -> None:
    """A new password for `username` (a forgotten one): every session of the account ends."""
    check_password(password)
    digest = passwords.hash_password(password)
    with chain.db.write() as conn:
        old = _account_row(conn, username)
        conn.execute("UPDATE staff SET password_hash = ?, session_gen = session_gen + 1 "
                     "WHERE username = ?", (digest, username))
        record(conn, by, "staff.password", ("staff", username), {"password": "old"},
               {"password": "new"}, reason)
        _changed(conn, username, (old["role"],))
    chain.waiters.notify()


def accounts(chain: Chain) -> list[dict[str, Any]]:
    """Every account with its role and state, by username (never a password hash)."""
    rows = chain.db.all("SELECT username, role, disabled, created_at, last_login_at FROM staff "
                        "ORDER BY username")
    return [dict(r) for r in rows]


def account(chain: Chain, username: str) -> dict[str, Any]:
    found = [a for a in accounts(chain) if a["username"] == username]
    if not found:
        raise NotFound(f"no staff account {username}")
    return found[0]


def role(db: Database, username: str) -> Role | None:
    """The role of an active account; None for a disabled or unknown one (or a role this
    version does not know)."""
    row = db.one("SELECT role, disabled FROM staff WHERE username = ?", (username,))
    if row is None or row["disabled"] or row["role"] not in ROLES:
        return None
    return Role(row["role"])


def authenticate(db: Database, username: str, password: str) -> int | None:
    """The account's session generation if the password is right, else None (the slow
    hash runs outside the database lock)."""
    row = db.one("SELECT password_hash, session_gen, disabled FROM staff WHERE username = ?",
                 (username,))
    if not passwords.check(password, None if row is None else row["password_hash"]):
        return None
    if row is None or row["disabled"]:
        return None
    return int(row["session_gen"])


def logged_in(db: Database, username: str) -> None:
    """Notes a successful login (the staff page shows when each account last logged in)."""
    with db.write() as conn:
        conn.execute("UPDATE staff SET last_login_at = ? WHERE username = ?",
                     (utc_now(), username))


def session_gen(db: Database, username: str) -> int | None:
    row = db.one("SELECT session_gen, disabled FROM staff WHERE username = ?", (username,))
    return None if row is None or row["disabled"] else int(row["session_gen"])


def end_sessions(conn: sqlite3.Connection, username: str) -> None:
    conn.execute("UPDATE staff SET session_gen = session_gen + 1 WHERE username = ?", (username,))


def log_out(db: Database, username: str) -> None:
    """Ends every session `username` has open, in every browser (`end_sessions` in a
    transaction of its own)."""
    with db.write() as conn:
        end_sessions(conn, username)


def desk_account(conn: sqlite3.Connection, username: str) -> dict[str, Any] | None:
    """The account as HQ's feed sends it to the outlets (schema.roles.DeskAccount); None
    (withdrawn) when it may not use the desk: disabled, gone, or a back-office role."""
    row = conn.execute("SELECT username, role, password_hash, session_gen, disabled FROM staff "
                       "WHERE username = ?", (username,)).fetchone()
    if row is None or row["disabled"] or not may_use_desk(row["role"]):
        return None
    return {"username": row["username"], "role": row["role"],
            "password_hash": row["password_hash"], "session_gen": row["session_gen"]}


def desk_accounts_copy(hq: str = "hq") -> str:
    """The SQL that fills an outlet database's `desk_accounts` (the connection's `main`)
    from HQ's file ATTACHed as `hq`: exactly the accounts a pull from cursor 0 gives
    (`desk_account`), for a snapshot of the chain built as an outlet database."""
    roles = ", ".join(f"'{r}'" for r in sorted(DESK_ROLES))
    return ("INSERT INTO main.desk_accounts (username, role, password_hash, session_gen) "
            f"SELECT username, role, password_hash, session_gen FROM {hq}.staff "
            f"WHERE disabled = 0 AND role IN ({roles}) ORDER BY username")


def session_key(chain: Chain) -> bytes:
    """The key that signs staff sessions: made once per database, kept in `meta.web_secret`
    (so sessions survive a restart of HQ, and a copied cookie opens no other HQ)."""
    with chain.db.write() as conn:
        secret = chain.meta(conn, "web_secret")
        if secret is None:
            secret = secrets.token_hex(32)
            chain.set_meta(conn, "web_secret", secret)
    return bytes.fromhex(secret)
