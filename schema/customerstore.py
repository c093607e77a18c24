"""Writing and reading customer rows, in the table shape the agent and HQ share.

Promises: an identifier belongs to one customer at most (a second claim is a Conflict);
`entity`/`apply_entity` are exact inverses for the customer document HQ publishes in its
change log. Called inside the caller's transaction; never commits.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from typing import Any

from schema.errors import Conflict
from schema.events import Profile

PROFILE_COLUMNS = [name for name in Profile.model_fields if name != "picture"]


def search_key(fields: dict[str, Any]) -> str:
    parts = (fields.get("surname"), fields.get("given_name"), fields.get("name"))
    return " ".join(p.lower() for p in parts if p)


def upsert_customer(conn: sqlite3.Connection, customer_id: str, fields: dict[str, Any],
                    created_at: str, origin: str | None = None) -> None:
    """Creates or updates a customer row from profile fields (only those given change)."""
    values = {k: v for k, v in fields.items() if k in PROFILE_COLUMNS or k in ("status", "pin_hash", "credit_blocked")}
    if "approved_actions" in values:
        values["approved_actions"] = json.dumps(values["approved_actions"])
    if "picture" in fields:
        values["picture"] = base64.b64decode(fields["picture"]) if fields["picture"] else None
    exists = conn.execute("SELECT 1 FROM customers WHERE customer_id = ?", (customer_id,)).fetchone()
    if exists is None:
        values.setdefault("kind", "person")
        values.setdefault("category", "D")
        cols = ["customer_id", "created_at", "origin_outlet", *values]
        conn.execute(
            f"INSERT INTO customers ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            [customer_id, created_at, origin, *values.values()],
        )
    elif values:
        conn.execute(
            f"UPDATE customers SET {', '.join(f'{k} = ?' for k in values)} WHERE customer_id = ?",
            [*values.values(), customer_id],
        )
    row = conn.execute("SELECT surname, given_name, name FROM customers WHERE customer_id = ?",
                       (customer_id,)).fetchone()
    conn.execute("UPDATE customers SET search_name = ? WHERE customer_id = ?",
                 (search_key(dict(row)), customer_id))


def put_identifier(conn: sqlite3.Connection, customer_id: str, kind: str, value: str,
                   status: str) -> None:
    owner = conn.execute("SELECT customer_id FROM identifiers WHERE kind = ? AND value = ?",
                         (kind, value)).fetchone()
    if owner is not None and owner[0] != customer_id:
        raise Conflict(f"this {kind} already belongs to another customer", kind=kind)
    conn.execute(
        "INSERT INTO identifiers (kind, value, customer_id, status) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (kind, value) DO UPDATE SET status = excluded.status",
        (kind, value, customer_id, status),
    )


def profile_of(row: sqlite3.Row) -> dict[str, Any]:
    data = {k: row[k] for k in PROFILE_COLUMNS if row[k] is not None}
    data["approved_actions"] = json.loads(row["approved_actions"])
    if row["email_consent"] is not None:
        data["email_consent"] = bool(row["email_consent"])
    return data


def identifiers_of(conn: sqlite3.Connection, customer_id: str) -> list[dict[str, str]]:
    rows = conn.execute(
        "SELECT kind, value, status FROM identifiers WHERE customer_id = ? ORDER BY kind, value",
        (customer_id,)).fetchall()
    return [dict(r) for r in rows]


def entity(conn: sqlite3.Connection, row: sqlite3.Row, tally: dict[str, Any]) -> dict[str, Any]:
    """The customer document HQ publishes: profile, status, identifiers, PIN hash, tally."""
    picture = row["picture"]
    return {
        "customer_id": row["customer_id"],
        "profile": profile_of(row),
        "status": row["status"],
        "credit_blocked": bool(row["credit_blocked"]),
        "pin_hash": row["pin_hash"],
        "picture": base64.b64encode(picture).decode() if picture else None,
        "origin_outlet": row["origin_outlet"],
        "created_at": row["created_at"],
        "identifiers": identifiers_of(conn, row["customer_id"]),
        "tally": tally,
    }


def apply_entity(conn: sqlite3.Connection, doc: dict[str, Any]) -> None:
    """Writes a published customer document (not its tally) into a replica."""
    customer_id = doc["customer_id"]
    fields = {**doc["profile"], "status": doc["status"], "pin_hash": doc.get("pin_hash"),
              "picture": doc.get("picture"), "credit_blocked": int(doc.get("credit_blocked", False))}
    upsert_customer(conn, customer_id, fields, created_at=doc.get("created_at") or "",
                    origin=doc.get("origin_outlet"))
    conn.execute("DELETE FROM identifiers WHERE customer_id = ?", (customer_id,))
    for ident in doc["identifiers"]:
        conn.execute("DELETE FROM identifiers WHERE kind = ? AND value = ?",
                     (ident["kind"], ident["value"]))
        put_identifier(conn, customer_id, ident["kind"], ident["value"], ident["status"])
