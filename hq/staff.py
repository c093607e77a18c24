"""Head-office staff accounts for the web back office (invariant 8: admin operations need
an admin credential).

A password is kept only as a salted scrypt hash (`scrypt$N$r$p$salt$hash`, hex); checking
compares in constant time and spends the same work for an unknown username, so the answer
time does not tell which usernames exist. Must never: store, log or echo a password.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3

from hq.chain import Chain
from schema.database import Database
from schema.errors import Conflict, InvalidRequest
from schema.events import utc_now

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
N, R, P, DKLEN = 2**14, 8, 1, 32
_DUMMY = None  # a hash to check unknown usernames against (same cost as a real one)


def hash_password(password: str, n: int = N, r: int = R, p: int = P) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=DKLEN,
                         maxmem=256 * 1024 * 1024)
    return f"scrypt${n}${r}${p}${salt.hex()}${key.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        given = hashlib.scrypt(password.encode()[:MAX_PASSWORD * 4], salt=bytes.fromhex(salt),
                               n=int(n), r=int(r), p=int(p), dklen=len(bytes.fromhex(key)),
                               maxmem=256 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(given, bytes.fromhex(key))


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"a staff password has at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidRequest(f"a staff password has at most {MAX_PASSWORD} characters")


def add(conn: sqlite3.Connection, username: str, password: str, replace: bool = False) -> None:
    """Creates a staff account (or, with `replace`, sets a new password and ends its
    sessions)."""
    if not USERNAME.match(username):
        raise InvalidRequest("a username is 1-64 letters, digits, '.', '_', '@' or '-'")
    check_password(password)
    digest = hash_password(password)
    exists = conn.execute("SELECT 1 FROM staff WHERE username = ?", (username,)).fetchone()
    if exists and not replace:
        raise Conflict(f"staff account {username} exists already (use --replace to set a new "
                       "password)")
    if exists:
        conn.execute("UPDATE staff SET password_hash = ?, session_gen = session_gen + 1, "
                     "disabled = 0 WHERE username = ?", (digest, username))
    else:
        conn.execute("INSERT INTO staff (username, password_hash, created_at) VALUES (?, ?, ?)",
                     (username, digest, utc_now()))


def authenticate(db: Database, username: str, password: str) -> int | None:
    """The account's session generation if the password is right, else None (the slow
    hash runs outside the database lock)."""
    global _DUMMY
    row = db.one("SELECT password_hash, session_gen, disabled FROM staff WHERE username = ?",
                 (username,))
    if row is None:
        if _DUMMY is None:
            _DUMMY = hash_password(secrets.token_hex(16))
        verify_password(password, _DUMMY)
        return None
    if not verify_password(password, row["password_hash"]) or row["disabled"]:
        return None
    return int(row["session_gen"])


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


def session_key(chain: Chain) -> bytes:
    """The key that signs staff sessions: made once per database, kept in `meta.web_secret`
    (so sessions survive a restart of HQ, and a copied cookie opens no other HQ)."""
    with chain.db.write() as conn:
        secret = chain.meta(conn, "web_secret")
        if secret is None:
            secret = secrets.token_hex(32)
            chain.set_meta(conn, "web_secret", secret)
    return bytes.fromhex(secret)
