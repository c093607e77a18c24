"""Writing and reading customer rows, in the table shape the agent and HQ share.

Promises: an identifier belongs to one customer at most (a second claim is a Conflict);
`entity`/`apply_entity` are exact inverses for the customer document HQ publishes in its
change log. Called inside the caller's transaction; never commits.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from schema.errors import Conflict
from schema.events import Profile

PROFILE_COLUMNS = [name for name in Profile.model_fields if name != "picture"]


def display_name(row: Any) -> str:
    """How a customer is addressed: an organisation's name, a person's given name and surname."""
    get = row.get if isinstance(row, dict) else (lambda k: row[k])
    if get("kind") == "organisation":
        return str(get("name") or "")
    return f"{get('given_name') or ''} {get('surname') or ''}".strip()


def search_key(fields: dict[str, Any]) -> str:
    parts = (fields.get("surname"), fields.get("given_name"), fields.get("name"))
    return " ".join(p.lower() for p in parts if p)


def upsert_customer(conn: sqlite3.Connection, customer_id: str, fields: dict[str, Any],
                    created_at: str, origin: str | None = None) -> None:
    """Creates or updates a customer row from profile fields (only those given change)."""
    values = column_values(fields)
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


def column_values(fields: dict[str, Any]) -> dict[str, Any]:
    """The columns `upsert_customer` writes for these fields (not `search_name`); a flag
    (`email_consent`) as 0/1, the integer both stores keep (PostgreSQL refuses a boolean)."""
    values = {k: int(v) if isinstance(v, bool) else v for k, v in fields.items()
              if k in _WRITTEN}
    if "approved_actions" in values:
        actions = values["approved_actions"]
        values["approved_actions"] = "[]" if actions == [] else json.dumps(actions)
    if "picture" in fields:
        values["picture"] = base64.b64decode(fields["picture"]) if fields["picture"] else None
    return values


_WRITTEN = {*PROFILE_COLUMNS, "status", "pin_hash", "credit_blocked", "first_visit_at"}


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
    """The customer document HQ publishes: profile, status, identifiers, PIN hash, the
    first visit HQ knows of (None: none yet), tally."""
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
        "first_visit_at": row["first_visit_at"],
        "identifiers": identifiers_of(conn, row["customer_id"]),
        "tally": tally,
    }


def apply_entity(conn: sqlite3.Connection, doc: dict[str, Any]) -> None:
    """Writes a published customer document (not its tally) into a replica."""
    customer_id = doc["customer_id"]
    fields = _fields_of(doc)
    upsert_customer(conn, customer_id, fields, created_at=doc.get("created_at") or "",
                    origin=doc.get("origin_outlet"))
    conn.execute("DELETE FROM identifiers WHERE customer_id = ?", (customer_id,))
    for ident in doc["identifiers"]:
        conn.execute("DELETE FROM identifiers WHERE kind = ? AND value = ?",
                     (ident["kind"], ident["value"]))
        put_identifier(conn, customer_id, ident["kind"], ident["value"], ident["status"])


def _fields_of(doc: dict[str, Any]) -> dict[str, Any]:
    fields = {**doc["profile"], "status": doc["status"], "pin_hash": doc.get("pin_hash"),
              "picture": doc.get("picture"),
              "credit_blocked": int(doc.get("credit_blocked", False))}
    if "first_visit_at" in doc:  # an HQ from before greetings does not say: keep ours
        fields["first_visit_at"] = doc["first_visit_at"]
    return fields


def apply_entities(conn: sqlite3.Connection, docs: Sequence[dict[str, Any]],
                   extra: Sequence[dict[str, Any]] | None = None) -> None:
    """`apply_entity` for documents of DISTINCT customers, a few statements for all: the
    same rows as applying them one by one in order (a later document takes an identifier
    from an earlier one, as there). `extra[i]`: more columns for document i's row."""
    if not docs:
        return
    ids = [doc["customer_id"] for doc in docs]
    if len(set(ids)) != len(ids):
        raise ValueError("apply_entities needs distinct customers")
    known = {r[0]: (r[1], r[2], r[3]) for r in conn.execute(
        "SELECT customer_id, surname, given_name, name FROM customers "
        "WHERE customer_id IN (SELECT value FROM json_each(?))", (json.dumps(ids),))}
    inserts: dict[tuple[str, ...], list[list[Any]]] = {}
    updates: dict[tuple[str, ...], list[list[Any]]] = {}
    for i, doc in enumerate(docs):
        customer_id = doc["customer_id"]
        values = column_values(_fields_of(doc))
        old = known.get(customer_id)
        if old is None:
            values.setdefault("kind", "person")
            values.setdefault("category", "D")
            values["search_name"] = search_key(values)
            if extra is not None:
                values.update(extra[i])
            cols = ("customer_id", "created_at", "origin_outlet", *values)
            inserts.setdefault(cols, []).append(
                [customer_id, doc.get("created_at") or "", doc.get("origin_outlet"),
                 *values.values()])
        else:
            merged = {"surname": old[0], "given_name": old[1], "name": old[2], **values}
            values["search_name"] = search_key(merged)
            if extra is not None:
                values.update(extra[i])
            updates.setdefault(tuple(values), []).append([*values.values(), customer_id])
    for cols, rows in inserts.items():
        conn.executemany(f"INSERT INTO customers ({', '.join(cols)}) "
                         f"VALUES ({', '.join('?' for _ in cols)})", rows)
    for cols, rows in updates.items():
        conn.executemany(f"UPDATE customers SET {', '.join(f'{k} = ?' for k in cols)} "
                         "WHERE customer_id = ?", rows)
    # one customer's identifiers go first, then each listed one is (re)claimed, in order
    conn.execute("DELETE FROM identifiers WHERE customer_id IN (SELECT value FROM json_each(?))",
                 (json.dumps(ids),))
    conn.executemany(
        "INSERT OR REPLACE INTO identifiers (kind, value, customer_id, status) VALUES (?, ?, ?, ?)",
        [(ident["kind"], ident["value"], doc["customer_id"], ident["status"])
         for doc in docs for ident in doc["identifiers"]])
