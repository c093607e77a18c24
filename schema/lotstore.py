"""Persisting point lots (schema/lots.py) in `customer_lots`, and at HQ what each redemption
took from them in `lot_spends`.

Both HQ (its fold of every fact, in HQ's order) and an outlet (its view: HQ's lots with
its own pending facts applied) keep a customer's lots in a table of this shape; HQ
publishes them in the customer document (`wire` / `from_wire`), so an outlet can print
"N points expire on DATE", take pending points out of what may be spent and spend
oldest-expiring first without asking HQ. `write` stores only what changed between two
states of a customer's lots (a sale adds one row); `apply` is the one way a fact moves a
customer's stored lots outside HQ's batch (an outlet's own facts, and what it folds back
over HQ's lots). Called inside the caller's write transaction; never commits.
Must never: store an empty lot, or lots whose sum differs from the lots it was given.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from schema import lots as lotmath
from schema.events import Body
from schema.lots import Allocation, Book, ExpiryRule, Lot, Lots, tidy

WireLot = list[Any]  # [lot_id, earned_on, points, expires_on | None, spendable_on | None]
OPENING = "opening"
"""The lot of points held before lots existed (the migrations that made these tables, and
a customer document from an HQ that publishes no lots), dated 1970-01-01."""


def _day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def _text(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _lot(row: Sequence[Any]) -> Lot:
    return Lot(str(row[0]), date.fromisoformat(row[1]), int(row[2]), _day(row[3]), _day(row[4]))


def _row(customer_id: str, lot: Lot) -> tuple[Any, ...]:
    return (customer_id, lot.lot_id, lot.earned_on.isoformat(), lot.points,
            _text(lot.expires_on), _text(lot.spendable_on))


# --- wire form (the customer document HQ publishes) -----------------------------------


def wire(lots: Sequence[Lot]) -> list[WireLot]:
    return [[lot.lot_id, lot.earned_on.isoformat(), lot.points, _text(lot.expires_on),
             _text(lot.spendable_on)] for lot in lots]


def from_wire(rows: Iterable[Sequence[Any]]) -> Lots:
    return tidy(_lot(r) for r in rows)


def opening(balance: int) -> Lots:
    """A balance whose lots are not known as lots: one `opening` lot (or a deficit)."""
    if balance < 0:
        return (Lot(lotmath.DEFICIT, date.min, balance),)
    return (Lot(OPENING, date(1970, 1, 1), balance),) if balance else ()


def of_document(doc: Mapping[str, Any], balance: int) -> Lots:
    """The lots of a customer document HQ published; `balance` (its tally's) when it has
    none (an HQ from before lots)."""
    wired = doc.get("lots")
    return opening(balance) if wired is None else from_wire(wired)


# --- reading --------------------------------------------------------------------------

_COLUMNS = "lot_id, earned_on, points, expires_on, spendable_on"


def load(conn: sqlite3.Connection, customer_id: str) -> Lots:
    return tidy(_lot(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM customer_lots WHERE customer_id = ?", (customer_id,)))


def load_many(conn: sqlite3.Connection, customer_ids: Iterable[str]) -> dict[str, Lots]:
    """Every given customer's lots (an empty tuple for one without any)."""
    ids = sorted(set(customer_ids))
    found: dict[str, list[Lot]] = {cid: [] for cid in ids}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        for r in conn.execute(
                f"SELECT customer_id, {_COLUMNS} FROM customer_lots WHERE customer_id IN "
                f"({','.join('?' * len(chunk))})", chunk):
            found[r[0]].append(_lot(r[1:]))
    return {cid: tidy(held) for cid, held in found.items()}


def load_spends(conn: sqlite3.Connection, customer_ids: Iterable[str]
                ) -> dict[str, dict[str, Allocation]]:
    """Per customer, per redemption, what it took and has not been given back (HQ)."""
    ids = sorted(set(customer_ids))
    found: dict[str, dict[str, list[Lot]]] = {cid: {} for cid in ids}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        for r in conn.execute(
                f"SELECT customer_id, redemption_id, {_COLUMNS} FROM lot_spends WHERE "
                f"customer_id IN ({','.join('?' * len(chunk))}) ORDER BY redemption_id, n",
                chunk):
            found[r[0]].setdefault(r[1], []).append(_lot(r[2:]))
    return {cid: {rid: tuple(taken) for rid, taken in spends.items()}
            for cid, spends in found.items()}


# --- writing --------------------------------------------------------------------------


def write(conn: sqlite3.Connection, changes: Iterable[tuple[str, Lots, Lots]]) -> None:
    """Stores each (customer_id, lots before, lots after): the rows of lots that changed
    or appeared are upserted, those of lots gone deleted."""
    upserts: list[tuple[Any, ...]] = []
    deletes: list[tuple[str, str]] = []
    for customer_id, before, after in changes:
        old = {lot.lot_id: lot for lot in before}
        new = {lot.lot_id: lot for lot in after}
        deletes += [(customer_id, lot_id) for lot_id in old if lot_id not in new]
        upserts += [_row(customer_id, lot) for lot_id, lot in new.items()
                    if old.get(lot_id) != lot]
    if deletes:
        conn.executemany("DELETE FROM customer_lots WHERE customer_id = ? AND lot_id = ?",
                         deletes)
    if upserts:
        conn.executemany(
            "INSERT INTO customer_lots (customer_id, lot_id, earned_on, points, expires_on,"
            " spendable_on) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (customer_id, lot_id) DO"
            " UPDATE SET earned_on = excluded.earned_on, points = excluded.points,"
            " expires_on = excluded.expires_on, spendable_on = excluded.spendable_on",
            upserts)


def write_spends(conn: sqlite3.Connection,
                 changes: Iterable[tuple[str, Mapping[str, Allocation], Mapping[str, Allocation]]]
                 ) -> None:
    """Stores each (customer_id, spends before, spends after): a redemption whose
    allocation changed is written again whole, one that is gone is deleted."""
    gone: list[tuple[str]] = []
    rows: list[tuple[Any, ...]] = []
    for customer_id, before, after in changes:
        for rid in before:
            if after.get(rid) != before[rid]:
                gone.append((rid,))
        for rid, taken in after.items():
            if before.get(rid) != taken:
                rows += [(rid, n, *_row(customer_id, lot)) for n, lot in enumerate(taken)]
    if gone:
        conn.executemany("DELETE FROM lot_spends WHERE redemption_id = ?", gone)
    if rows:
        conn.executemany(
            "INSERT INTO lot_spends (redemption_id, n, customer_id, lot_id, earned_on, points,"
            " expires_on, spendable_on) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)


def replace_many(conn: sqlite3.Connection, customers: Sequence[tuple[str, Lots]]) -> None:
    """Sets DISTINCT customers' lots to exactly these (an outlet writing HQ's lots)."""
    if not customers:
        return
    conn.execute("DELETE FROM customer_lots WHERE customer_id IN (SELECT value FROM json_each(?))",
                 (json.dumps([cid for cid, _ in customers]),))
    conn.executemany(
        "INSERT INTO customer_lots (customer_id, lot_id, earned_on, points, expires_on,"
        " spendable_on) VALUES (?, ?, ?, ?, ?, ?)",
        [_row(cid, lot) for cid, held in customers for lot in held])


def apply(conn: sqlite3.Connection, customer_id: str, body: Body, on: date, rule: ExpiryRule,
          pending_days: int = 0, last_purchase: date | None = None) -> Lots:
    """The customer's stored lots after the fact `body` applied on `on` (schema.lots.apply,
    without the redemptions' allocations: a gift given back here refills nothing until HQ's
    lots come); returns them."""
    before = load(conn, customer_id)
    after = lotmath.apply(Book(before), body, on, rule, pending_days=pending_days,
                          last_purchase=last_purchase).lots
    write(conn, [(customer_id, before, after)])
    return after
