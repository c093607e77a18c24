"""The audit trail (docs/backoffice.md, "The audit trail"): every change staff make through
the back office - who, when, what it was before and after, why - kept at HQ, searchable per
customer and per member of staff, and printable (hq/office/audit.py).

How a change gets audited, by construction: an hq/ operation that staff run takes the
`Actor` making it as a parameter with no default (a caller cannot forget it; None only where
no member of staff acts: the scheduler, a customer's own unsubscribe link) and calls
`record(conn, actor, ...)` inside the SAME write transaction as the change, so a change and
its audit row are committed together or not at all. Three places make an `Actor`: the back
office's `office.form(role)` dependency (the signed-in member of staff), the admin API's
token dependency (hq/api/auth.py: `api_actor`, the token's holder as its label names them)
and the command line (`COMMAND_LINE`: `cli:` and the operating-system user running it). `before` / `after` are JSON objects of
the fields the change touched (None: nothing before, as for a new account); an amount is in
minor units under a name ending in `amount` (shown as money). A change that records an HQ
fact names the fact's `event_id`, so the fact itself stays as the contract fixes it (no
field added to its body) and the audit row says which member of staff made it.

Rows are numbered by HQ's own sequence (`audit_id`) and times are HQ's clock, UTC.
Must never: change or delete a row (the database refuses: migration m008's triggers), or
hold a password or its hash (a new password is recorded as `"password": "set"`).
"""

from __future__ import annotations

import getpass
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from hq.chain import Chain
from schema import reports
from schema.events import utc_now
from schema.money import money
from schema.roles import Role

SHOWN = 500  # rows on one page of the trail (newest first); narrow the filters for older
FORM_NAMES = {"date_from": "From", "date_to": "To"}


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a member of staff signed in to the back office (their username
    and role), or one of the non-personal actors below."""

    username: str
    role: Role


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a name (a container)
        import os

        return f"uid{os.getuid()}"


# Not valid usernames (hq/staff.py USERNAME: no ':'), so no account can pass for them.
COMMAND_LINE = Actor(f"cli:{_os_user()}", Role.administrator)  # someone on HQ's machine


def api_actor(label: str) -> Actor:
    """The holder of an admin token, as the label given when it was made names them
    (`loyalty hq admin-token --label`); `api:(no label)` for a token made without one."""
    return Actor(f"api:{label.strip() or '(no label)'}", Role.administrator)


def record(conn: sqlite3.Connection, actor: Actor, action: str, subject: tuple[str, str],
           before: dict[str, Any] | None, after: dict[str, Any] | None, reason: str = "",
           customer_id: str | None = None, event_id: str | None = None) -> int:
    """Records one change inside the caller's write transaction; its `audit_id`.

    `action` names what was done (`invoice.bank_payment`, `staff.role`...), `subject` what
    it was done to as (kind, key) (`("invoice", "2026-000012")`), `customer_id` the
    customer it concerns (so the customer's trail finds it)."""
    if not action or not subject[0] or not subject[1]:
        raise ValueError("an audited change names its action and subject")
    cursor = conn.execute(
        "INSERT INTO audit (at, staff, role, action, subject_kind, subject, customer_id, before,"
        " after, reason, event_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING audit_id",
        (utc_now(), actor.username, str(actor.role), action, subject[0], subject[1],
         customer_id, _json(before), _json(after), reason.strip(), event_id))
    return int(cursor.fetchone()[0])


def _json(doc: dict[str, Any] | None) -> str | None:
    return None if doc is None else json.dumps(doc, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class Search:
    """What the trail is filtered by (every filter optional): the customer concerned, the
    member of staff, the action, what it was done to (kind, key), a period of UTC days
    (both inclusive)."""

    customer_id: str | None = None
    staff: str | None = None
    action: str | None = None
    subject: tuple[str, str] | None = None
    date_from: str | None = None
    date_to: str | None = None


def search(chain: Chain, wanted: Search = Search(), limit: int = SHOWN) -> list[dict[str, Any]]:
    """The changes that match, newest first, at most `limit`; each with `changes`, the list
    of (field, before, after) that differ. A bad date is InvalidRequest naming the field."""
    lo, hi = reports.period(wanted.date_from, wanted.date_to, FORM_NAMES)
    where, params = [], []
    for column, value in (("customer_id", wanted.customer_id), ("staff", wanted.staff),
                          ("action", wanted.action)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if wanted.subject:
        where.append("subject_kind = ? AND subject = ?")
        params.extend(wanted.subject)
    if lo:
        where.append("at >= ?")
        params.append(lo)
    if hi:
        where.append("at < ?")
        params.append(hi)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = chain.db.all(f"SELECT * FROM audit {clause} ORDER BY audit_id DESC LIMIT ?",
                        (*params, limit))
    found = []
    for row in rows:
        entry = dict(row)
        entry["before"] = json.loads(row["before"]) if row["before"] else None
        entry["after"] = json.loads(row["after"]) if row["after"] else None
        entry["changes"] = changes(entry["before"], entry["after"])
        found.append(entry)
    return found


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None
            ) -> list[tuple[str, Any, Any]]:
    """(field, before, after) for each field whose value differs, in field order; a field
    missing on one side is None there."""
    old, new = before or {}, after or {}
    return [(name, old.get(name), new.get(name)) for name in sorted(old.keys() | new.keys())
            if old.get(name) != new.get(name)]


def shown(name: str, value: Any) -> str:
    """A value of the trail as the page shows it: an amount as money, nothing as '-'."""
    if value is None or value == "":
        return "-"
    if name.endswith("amount") and isinstance(value, int) and not isinstance(value, bool):
        return money(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def choices(chain: Chain) -> dict[str, list[str]]:
    """What the filter form offers: every member of staff and every action in the trail."""
    return {"people": [r[0] for r in chain.db.all("SELECT DISTINCT staff FROM audit ORDER BY 1")],
            "actions": [r[0] for r in chain.db.all(
                "SELECT DISTINCT action FROM audit ORDER BY 1")]}

