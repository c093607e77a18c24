"""Outlet and admin tokens: issued once, stored only as hashes (invariant 8).

A token is `lo_` (outlet) or `la_` (admin) plus 48 hex digits: safe on a command line
(never a leading `-`) and 192 bits of entropy, so a plain SHA-256 is a sufficient hash.
Must never: store or log a token, or compare hashes except in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3

from hq import store
from schema.database import Database
from schema.errors import Conflict, Forbidden, InvalidRequest, Unauthorized
from schema.events import utc_now

OUTLET_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$"


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_outlet(conn: sqlite3.Connection, outlet_id: str, card_range: int | None = None) -> tuple[str, int]:
    """Registers an outlet; returns its token and card range."""

    if not re.match(OUTLET_ID, outlet_id) or outlet_id == "HQ":
        raise InvalidRequest("an outlet id is 1-40 letters, digits, _ or - (and not HQ)")
    store.serialise(conn, "outlets")  # ranges stay dense when two HQ processes add outlets
    if conn.execute("SELECT 1 FROM outlets WHERE outlet_id = ?", (outlet_id,)).fetchone():
        raise Conflict(f"outlet {outlet_id} is registered already", outlet=outlet_id)
    if card_range is None:
        card_range = conn.execute("SELECT COALESCE(MAX(card_range), 0) + 1 FROM outlets").fetchone()[0]
    token = new_token("lo")
    conn.execute(
        "INSERT INTO outlets (outlet_id, token_hash, card_range, created_at) VALUES (?, ?, ?, ?)",
        (outlet_id, digest(token), card_range, utc_now()))
    return token, int(card_range)


def rotate_outlet(conn: sqlite3.Connection, outlet_id: str) -> str:
    """A new token for an outlet (lost or leaked); the old one stops working at once."""
    token = new_token("lo")
    if conn.execute("UPDATE outlets SET token_hash = ? WHERE outlet_id = ?",
                    (digest(token), outlet_id)).rowcount == 0:
        raise InvalidRequest(f"no outlet {outlet_id} is registered", outlet=outlet_id)
    return token


def add_admin(conn: sqlite3.Connection, label: str = "") -> str:
    token = new_token("la")
    conn.execute("INSERT INTO admin_tokens (token_hash, created_at, label) VALUES (?, ?, ?)",
                 (digest(token), utc_now(), label))
    return token


def _committed(db: Database, sql: str, token: str) -> sqlite3.Row | None:
    """A token lookup: on what is committed, never waiting for a running write (a push
    must not wait for the group of pushes being committed before it may even be parsed)."""
    with db.read_committed() as conn:
        row: sqlite3.Row | None = conn.execute(sql, (digest(token),)).fetchone()
        return row


def outlet_for(db: Database, token: str) -> str:
    row = _committed(db, "SELECT outlet_id, token_hash FROM outlets WHERE token_hash = ?", token)
    if row is None or not hmac.compare_digest(row["token_hash"], digest(token)):
        if token.startswith("la_") and is_admin(db, token):
            raise Forbidden("an admin token cannot speak for an outlet")
        raise Unauthorized("unknown outlet token")
    return str(row["outlet_id"])


def is_admin(db: Database, token: str) -> bool:
    return _committed(db, "SELECT 1 FROM admin_tokens WHERE token_hash = ?", token) is not None


def require_admin(db: Database, token: str) -> None:
    if not is_admin(db, token):
        if _committed(db, "SELECT 1 FROM outlets WHERE token_hash = ?", token):
            raise Forbidden("outlet tokens cannot use admin operations")
        raise Unauthorized("unknown admin token")
